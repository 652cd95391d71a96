//! Scheduling: which slots are due, who runs them, and the worker's loop.
//!
//! What is due now is decided from the database alone: the slots of each collector without a
//! finished run, the worker tasks (daily checkpoint, daily verify, the configured report) not
//! yet done for their slot. `annexa run` is one [`tick`]: those jobs one after the other, then
//! the gap evaluation and alert delivery. The [`Worker`] starts each due job as its own task,
//! `[worker] concurrency` at once, evaluates gaps between them, and sleeps until the next slot.
//! So catch-up after a restart and a wake-up that comes twice are the same, idempotent code.
//!
//! Exactly one run per (collector, slot): the unique key on `runs` is the guarantee. A lease
//! per collector (with a fencing token) keeps two workers from doing the same work: the
//! holder renews it while it runs; a worker that dies stops renewing, and once the lease
//! expires another worker takes it, marks the dead worker's `running` run `cancelled` (which
//! fences it: a late commit of that run fails) and runs the slot itself.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::app::Annexa;
use crate::base::Schedule;
use crate::config::{CollectorConfig, Kind};
use crate::db::{HeldBy, Lease, ts};
use crate::evidence::runner::{RunOutcome, run_collector};
use crate::ledger::checkpoint::CheckpointError;
pub use crate::ops::delivery::{Background, Delivery};
use crate::ops::{Level, Output};

/// Missed slots are caught up while a run would still be on time for them (within the
/// collector's `grace`); older ones stay missed, a lapse the report shows. At most this many.
const MAX_CATCH_UP: usize = 100;

/// Who this process is, in leases and messages: host, pid and a random tag.
pub fn holder_id() -> String {
    crate::base::holder::this_process().to_string()
}

/// Marks `cancelled` (with the reason, its slot given up) every run left `running` by a
/// process that is gone: on this host a process that no longer runs, on-demand runs included;
/// anywhere a scheduled run whose collector lease expired (its worker stopped renewing it). An
/// on-demand run of another host is left: nothing says whether its process still works.
pub async fn sweep_stuck_runs(app: &Annexa) -> anyhow::Result<Vec<String>> {
    use crate::base::holder;
    let now = app.clock.now();
    let mut swept = Vec::new();
    for run in app.db.running_runs().await? {
        let gone = run.holder.as_deref().filter(|h| holder::is_gone(h));
        let reason = if let Some(h) = gone {
            Some(format!(
                "cancelled: the process running it ({h}) is gone; its slot is free again"
            ))
        } else if run.slot.is_some() && run.holder.as_deref() != Some(holder::this_process()) {
            match app.db.lease_holder(&collector_lease(&run.collector)).await? {
                Some(lease) if lease.until > now => None,
                _ => Some(
                    "cancelled: no worker holds its collector's lease any more (it stopped renewing it); its slot is free again"
                        .to_string(),
                ),
            }
        } else {
            None
        };
        if let Some(reason) = reason
            && app.db.cancel_run(&run.id, &reason, now).await?
        {
            tracing::warn!(run = %run.id, collector = %run.collector, "{reason}");
            swept.push(format!("run {} of `{}` {reason}", run.id, run.collector));
        }
    }
    Ok(swept)
}

fn collector_lease(name: &str) -> String {
    format!("collector:{name}")
}

/// Collectors in the order a cycle runs them: cron-health last, so it sees the heartbeats of
/// the runs of the same cycle.
pub fn in_run_order<'a>(
    collectors: impl Iterator<Item = &'a CollectorConfig>,
) -> Vec<&'a CollectorConfig> {
    let mut ordered: Vec<&CollectorConfig> = collectors.collect();
    ordered.sort_by_key(|c| c.kind.kind() == Kind::CronHealth);
    ordered
}

/// What happened to one slot.
#[derive(Debug)]
pub enum SlotOutcome {
    Ran(Box<RunOutcome>),
    /// Another run already filled it.
    Filled,
    /// Another process is working on this collector.
    Busy(HeldBy),
}

/// How many runs a slot gets at most: the first, and retries after a failure (a store or a
/// source away for a while) while the slot is within its `grace`.
const MAX_ATTEMPTS: i64 = 4;

/// How long after its `attempts`-th failure a slot is tried again: 1, 4, then 16 minutes.
fn retry_after(attempts: i64) -> chrono::Duration {
    chrono::Duration::minutes(4i64.pow(attempts.clamp(1, 3) as u32 - 1))
}

/// The slots of a collector due at `now`, oldest first: the latest slot, and the slots missed
/// since the newest one filled that are still within `grace`; and when a failed slot is next
/// retried. A slot whose run failed is due again after [`retry_after`], while it is within
/// `grace`, up to [`MAX_ATTEMPTS`] runs: a failed run does not fill its slot.
pub async fn due_slots(
    app: &Annexa,
    c: &CollectorConfig,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let Some(latest) = c.schedule.slot_at(now) else {
        return Ok((Vec::new(), None));
    };
    let grace = chrono::Duration::from_std(c.grace).unwrap_or(chrono::Duration::zero());
    let mut slots = Vec::new();
    if let Some(after) = app.db.catch_up_from(&c.name).await? {
        let mut t = c.schedule.next_after(after.max(now - grace));
        while let Some(s) = t.filter(|s| *s < latest && slots.len() < MAX_CATCH_UP) {
            slots.push(s);
            t = c.schedule.next_after(s);
        }
    }
    slots.push(latest);
    let mut filled = app.db.filled_slots(&c.name, slots[0], latest).await?;
    let mut retry_at: Option<DateTime<Utc>> = None;
    for failed in app.db.failed_slots(&c.name, now - grace, latest).await? {
        let at = failed.failed_at + retry_after(failed.attempts);
        let within_grace = parse_slot(&failed.slot).is_some_and(|s| at <= s + grace);
        if failed.attempts >= MAX_ATTEMPTS || !within_grace {
            continue;
        }
        if at > now {
            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
        } else if app.db.release_failed_slot(&failed.run).await? {
            tracing::info!(collector = %c.name, slot = %failed.slot, attempts = failed.attempts, "retrying a failed slot");
            filled.retain(|s| *s != failed.slot);
            if let Some(s) = parse_slot(&failed.slot)
                && !slots.contains(&s)
            {
                slots.push(s);
            }
        }
    }
    slots.sort();
    slots.retain(|s| !filled.contains(&ts(*s)));
    Ok((slots, retry_at))
}

fn parse_slot(slot: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(slot).ok().map(|t| t.to_utc())
}

/// Runs one collector for one slot under its lease, taking over a run whose worker died.
pub async fn run_slot(
    app: &Annexa,
    c: &CollectorConfig,
    slot: DateTime<Utc>,
    holder: &str,
) -> anyhow::Result<SlotOutcome> {
    let ttl = chrono::Duration::from_std(app.config.worker.lease)?;
    let now = app.clock.now();
    let lease = match app
        .db
        .acquire_lease(&collector_lease(&c.name), holder, now, now + ttl)
        .await?
    {
        Ok(lease) => lease,
        Err(held) => return Ok(SlotOutcome::Busy(held)),
    };
    let result = async {
        // Holding the collector's lease, a scheduled run still `running` has no live worker.
        for orphan in app.db.running_in_slots(&c.name).await? {
            let reason = format!(
                "cancelled: the worker running it stopped renewing its lease; the slot was taken over by {holder} (fencing token {})",
                lease.token
            );
            if app.db.cancel_run(&orphan, &reason, now).await? {
                tracing::warn!(run = %orphan, collector = %c.name, "took over the slot of a dead worker");
            }
        }
        tokio::select! {
            outcome = run_collector(app, c, Some(slot)) => Ok::<_, anyhow::Error>(outcome?),
            never = keep_renewing(app, &lease) => match never {},
        }
    }
    .await;
    if let Err(e) = app.db.release_lease(&lease, app.clock.now()).await {
        tracing::warn!("could not release lease {}: {e}", lease.name);
    }
    Ok(match result? {
        Some(outcome) => SlotOutcome::Ran(Box::new(outcome)),
        None => SlotOutcome::Filled,
    })
}

/// Renews a lease every third of its life, forever (the caller stops polling it). A lease
/// lost anyway is logged; the run it covers is fenced by its `running` row.
pub async fn keep_renewing(app: &Annexa, lease: &Lease) -> std::convert::Infallible {
    let ttl = chrono::Duration::from_std(app.config.worker.lease).unwrap_or_default();
    loop {
        app.sleep(ttl / 3).await;
        match app.db.renew_lease(lease, app.clock.now() + ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(lease = %lease.name, "lost the lease: another worker took over")
            }
            Err(e) => tracing::warn!(lease = %lease.name, "could not renew the lease: {e}"),
        }
    }
}

/// A worker task with a schedule of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Checkpoint,
    Verify,
    Report,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Checkpoint, Task::Verify, Task::Report];

    pub fn name(self) -> &'static str {
        match self {
            Task::Checkpoint => "checkpoint",
            Task::Verify => "verify",
            Task::Report => "report",
        }
    }

    fn schedule(self, app: &Annexa) -> Option<&Schedule> {
        match self {
            Task::Checkpoint => Some(&app.config.worker.checkpoint),
            Task::Verify => Some(&app.config.worker.verify),
            Task::Report => app.config.report_schedule.as_ref().map(|(s, _)| s),
        }
    }
}

/// Does a task for its slot; returns what to record and print.
async fn do_task(app: &Annexa, task: Task) -> anyhow::Result<String> {
    Ok(match task {
        Task::Checkpoint => {
            let _one = CHECKPOINTING.lock().await;
            if crate::ledger::checkpoint::due(app).await? {
                let made = crate::ledger::checkpoint::create(app).await?;
                format!(
                    "checkpoint of tree size {} signed by key {} at {}",
                    made.checkpoint.tree_size, made.checkpoint.key_id, made.checkpoint.object_key
                )
            } else {
                "no checkpoint needed (one was made today)".into()
            }
        }
        Task::Verify => {
            let report =
                crate::ledger::verify::verify(app, None, app.config.verify.rolling).await?;
            crate::ledger::verify::record(app, &report).await?;
            if report.violations.is_empty() {
                format!(
                    "verified a ledger of {} leaves, re-hashing {} of {} objects ({}): no violations",
                    report.ledger_size,
                    report.objects_checked,
                    report.objects_in_store,
                    report
                        .coverage
                        .as_ref()
                        .map_or("full", |c| c.scope.as_str())
                )
            } else {
                format!(
                    "VERIFY FOUND {} INTEGRITY VIOLATION(S): run `annexa verify` for the list",
                    report.violations.len()
                )
            }
        }
        Task::Report => {
            let formats = app
                .config
                .report_schedule
                .as_ref()
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            let bundle =
                crate::views::report::write_bundle(app, None, &formats, None, None).await?;
            format!(
                "report {} for {} written to {}",
                bundle.id,
                bundle.model.period.label(),
                bundle.dir.display()
            )
        }
    })
}

/// What one tick did (or, in the worker, one pass or one job).
#[derive(Debug, Default)]
pub struct TickReport {
    pub runs: Vec<RunOutcome>,
    /// Slots skipped because another process holds the collector, with who and until when.
    pub busy: Vec<(String, HeldBy)>,
    /// Collectors whose due slots were already filled.
    pub not_due: Vec<(String, DateTime<Utc>)>,
    pub tasks: Vec<(Task, String)>,
    /// Runs left `running` by a process that is gone, now marked cancelled.
    pub swept: Vec<String>,
    /// Tree sizes of the checkpoints signed after runs.
    pub checkpointed: Vec<i64>,
    pub errors: Vec<String>,
    pub evaluation: Option<crate::ops::alerts::Evaluation>,
    pub delivery: Option<crate::ops::alerts::DeliveryReport>,
    /// When there is next something to do.
    pub next: Option<DateTime<Utc>>,
}

impl TickReport {
    /// Adds `other`'s lines to these, and the earlier of the two next times.
    fn merge(&mut self, other: TickReport) {
        self.runs.extend(other.runs);
        self.busy.extend(other.busy);
        self.not_due.extend(other.not_due);
        self.tasks.extend(other.tasks);
        self.swept.extend(other.swept);
        self.checkpointed.extend(other.checkpointed);
        self.errors.extend(other.errors);
        self.evaluation = other.evaluation.or(self.evaluation);
        self.delivery = other.delivery.or(self.delivery);
        self.next_at(other.next);
    }

    /// Brings `next` forward to `at`.
    fn next_at(&mut self, at: Option<DateTime<Utc>>) {
        self.next = match (self.next, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Why a tick did nothing at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TickError {
    /// The ledger disagrees with a published checkpoint: nothing may be appended.
    #[error(transparent)]
    Ledger(#[from] CheckpointError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::db::DbError> for TickError {
    fn from(e: crate::db::DbError) -> Self {
        TickError::Other(e.into())
    }
}

impl From<chrono::OutOfRangeError> for TickError {
    fn from(e: chrono::OutOfRangeError) -> Self {
        TickError::Other(e.into())
    }
}

/// One piece of work the worker runs on its own: a collector's due slots, or a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Job {
    Collector(String),
    Task(Task),
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Collector(name) => write!(f, "collector `{name}`"),
            Job::Task(task) => write!(f, "the {} task", task.name()),
        }
    }
}

/// What is due now, in the order a tick does it.
struct Due<'a> {
    collectors: Vec<(&'a CollectorConfig, Vec<DateTime<Utc>>)>,
    tasks: Vec<(Task, DateTime<Utc>)>,
    /// The first things of the report: the collectors with nothing due, and when to look again.
    report: TickReport,
}

/// The due slots of every collector and the due tasks, leaving out the `skip`ped jobs (the
/// worker's in flight): deciding from the database alone.
async fn due_now<'a>(
    app: &'a Annexa,
    tasks: &[Task],
    skip: impl Fn(&Job) -> bool,
) -> Result<Due<'a>, TickError> {
    let now = app.clock.now();
    let mut due = Due {
        collectors: Vec::new(),
        tasks: Vec::new(),
        report: TickReport {
            next: Some(now + chrono::Duration::from_std(app.config.worker.evaluate_every)?),
            ..TickReport::default()
        },
    };
    for c in in_run_order(app.config.collectors.iter()) {
        due.report.next_at(c.schedule.next_after(now));
        if skip(&Job::Collector(c.name.clone())) {
            continue;
        }
        let (slots, retry_at) = due_slots(app, c, now).await?;
        due.report.next_at(retry_at);
        if !slots.is_empty() {
            due.collectors.push((c, slots));
        } else if let Some(latest) = c.schedule.slot_at(now) {
            due.report.not_due.push((c.name.clone(), latest));
        }
    }
    for &task in tasks {
        let Some(schedule) = task.schedule(app) else {
            continue;
        };
        due.report.next_at(schedule.next_after(now));
        if let Some(slot) = schedule.slot_at(now)
            && !skip(&Job::Task(task))
            && !app.db.task_done(task.name(), slot).await?
        {
            due.tasks.push((task, slot));
        }
    }
    Ok(due)
}

/// One checkpoint at a time in a process (after a run, or the daily one): two at once would
/// sign the same tree twice.
static CHECKPOINTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The slots a collector is running in this process now, to record one cut by the drain
/// deadline as `cancelled`.
#[derive(Debug, Default)]
pub struct Running(Mutex<std::collections::BTreeMap<String, DateTime<Utc>>>);

impl Running {
    fn set(&self, collector: &str, slot: Option<DateTime<Utc>>) {
        let mut map = self.0.lock().expect("not poisoned");
        match slot {
            Some(s) => map.insert(collector.to_string(), s),
            None => map.remove(collector),
        };
    }

    fn take(&self) -> Vec<(String, DateTime<Utc>)> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
            .into_iter()
            .collect()
    }
}

/// Runs a collector's due slots, oldest first, each under the collector's lease and followed by
/// its checkpoint. Stops at a slot another process holds or one that cannot be run, and when
/// `stop` turns true.
async fn collect_slots(
    app: &Annexa,
    c: &CollectorConfig,
    slots: &[DateTime<Utc>],
    holder: &str,
    stop: &watch::Receiver<bool>,
    running: &Running,
) -> TickReport {
    let mut report = TickReport::default();
    for &slot in slots {
        if *stop.borrow() {
            break;
        }
        running.set(&c.name, Some(slot));
        let outcome = run_slot(app, c, slot, holder).await;
        running.set(&c.name, None);
        match outcome {
            Ok(SlotOutcome::Ran(o)) => {
                report.runs.push(*o);
                let _one = CHECKPOINTING.lock().await;
                match crate::ledger::checkpoint::after_run(app).await {
                    Ok(Some(made)) => report.checkpointed.push(made.checkpoint.tree_size),
                    Ok(None) => {}
                    Err(e) => report
                        .errors
                        .push(format!("checkpoint after the run of {}: {e:#}", c.name)),
                }
            }
            Ok(SlotOutcome::Filled) => {}
            Ok(SlotOutcome::Busy(held)) => {
                report.next = Some(held.until);
                report.busy.push((c.name.clone(), held));
                break;
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("{} (slot {}): {e:#}", c.name, ts(slot)));
                break;
            }
        }
    }
    report
}

/// A task for its slot under its lease, as a report.
async fn task_report(app: &Annexa, task: Task, slot: DateTime<Utc>, holder: &str) -> TickReport {
    let mut report = TickReport::default();
    match run_task(app, task, slot, holder).await {
        Ok(Some(done)) => report.tasks.push((task, done)),
        Ok(None) => {}
        Err(e) => report.errors.push(format!("{}: {e:#}", task.name())),
    }
    report
}

/// Refuses to append to a ledger a published checkpoint contradicts, then sweeps the runs of
/// processes that are gone.
async fn begin_pass(app: &Annexa) -> Result<Vec<String>, TickError> {
    // A database restored from an older copy must not grow a second history.
    crate::ledger::checkpoint::guard_append(app).await?;
    Ok(sweep_stuck_runs(app).await?)
}

/// Evaluates the gaps and delivers the alerts that are due, under the `alerts` lease.
async fn alerts_pass(
    app: &Annexa,
    holder: &str,
    client: &reqwest::Client,
    out: &dyn Output,
    delivery: Delivery<'_>,
    report: &mut TickReport,
) -> Result<(), TickError> {
    let ttl = chrono::Duration::from_std(app.config.worker.lease)?;
    let t = app.clock.now();
    let Ok(lease) = app.db.acquire_lease("alerts", holder, t, t + ttl).await? else {
        return Ok(());
    };
    let result = async {
        let evaluation = crate::ops::alerts::evaluate(app, t).await?;
        report.evaluation = Some(evaluation);
        match delivery {
            Delivery::Inline => {
                let d = crate::ops::alerts::deliver_due(app, client, out).await?;
                report.delivery = Some(d);
                anyhow::Ok(d.next_attempt)
            }
            Delivery::Beside(background) => {
                match background.step(evaluation.queued > 0, app.clock.now()) {
                    Some(Ok(d)) => report.delivery = Some(d),
                    Some(Err(e)) => report.errors.push(format!("alerts: {e}")),
                    None => {}
                }
                Ok(background.next_attempt())
            }
        }
    }
    .await;
    app.db.release_lease(&lease, app.clock.now()).await?;
    match result {
        Ok(next) => report.next_at(next),
        Err(e) => report.errors.push(format!("alerts: {e:#}")),
    }
    Ok(())
}

/// One pass of the scheduler, one thing after the other: every due slot, each of `tasks` if
/// due, then gaps and alerts (`annexa run`). `stop` turning true stops it from starting
/// anything new. Errors of single slots and tasks are collected in the report, not returned:
/// one failing source does not stop the others.
pub async fn tick(
    app: &Annexa,
    tasks: &[Task],
    holder: &str,
    client: &reqwest::Client,
    out: &dyn Output,
    delivery: Delivery<'_>,
    stop: &watch::Receiver<bool>,
) -> Result<TickReport, TickError> {
    let swept = begin_pass(app).await?;
    let due = due_now(app, tasks, |_| false).await?;
    let mut report = due.report;
    report.swept = swept;
    let running = Running::default();
    for (c, slots) in due.collectors {
        if *stop.borrow() {
            return Ok(report);
        }
        report.merge(collect_slots(app, c, &slots, holder, stop, &running).await);
    }
    for (task, slot) in due.tasks {
        if *stop.borrow() {
            break;
        }
        report.merge(task_report(app, task, slot, holder).await);
    }
    alerts_pass(app, holder, client, out, delivery, &mut report).await?;
    Ok(report)
}

/// Does a task under its lease and records its slot as done. None when another worker has it.
async fn run_task(
    app: &Annexa,
    task: Task,
    slot: DateTime<Utc>,
    holder: &str,
) -> anyhow::Result<Option<String>> {
    let ttl = chrono::Duration::from_std(app.config.worker.lease)?;
    let now = app.clock.now();
    let name = format!("task:{}", task.name());
    let Ok(lease) = app.db.acquire_lease(&name, holder, now, now + ttl).await? else {
        return Ok(None);
    };
    let result = async {
        // Checked again under the lease: another worker may have just finished it.
        if app.db.task_done(task.name(), slot).await? {
            return Ok(None);
        }
        let done = tokio::select! {
            done = do_task(app, task) => done?,
            never = keep_renewing(app, &lease) => match never {},
        };
        app.db
            .mark_task_done(task.name(), slot, &done, app.clock.now())
            .await?;
        Ok(Some(done))
    }
    .await;
    app.db.release_lease(&lease, app.clock.now()).await?;
    result
}

/// The jobs a worker runs at once, each a tokio task: `[worker] concurrency` of them work, the
/// rest wait for a permit.
struct InFlight {
    set: tokio::task::JoinSet<TickReport>,
    jobs: std::collections::HashMap<tokio::task::Id, Job>,
    /// A job that found its collector busy or failed is not started again before this.
    not_before: std::collections::HashMap<Job, DateTime<Utc>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl InFlight {
    fn has(&self, job: &Job, now: DateTime<Utc>) -> bool {
        self.jobs.values().any(|j| j == job) || self.not_before.get(job).is_some_and(|t| *t > now)
    }
}

/// The worker: starts each due job as its own task (a long drill or verify delays nothing
/// else), evaluates gaps and alerts between them, until told to stop; then drains.
pub struct Worker {
    pub app: Arc<Annexa>,
    pub holder: String,
    client: reqwest::Client,
    out: Arc<dyn Output>,
    delivery: Arc<Background>,
    /// The slots being run now, to record them as cancelled if the drain deadline cuts them.
    running: Arc<Running>,
}

impl Worker {
    pub fn new(app: Arc<Annexa>, out: Arc<dyn Output>) -> Worker {
        let client = crate::ops::alerts::http_client(&app.config);
        let holder = holder_id();
        let delivery = Background::new(app.clone(), client.clone(), out.clone(), holder.clone());
        Worker {
            app,
            holder,
            client,
            out,
            delivery,
            running: Arc::default(),
        }
    }

    /// On SQLite only one worker runs: waits until this one holds the `worker` lease, saying
    /// who holds it meanwhile.
    pub async fn hold_single_lease(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Lease>> {
        let ttl = chrono::Duration::from_std(self.app.config.worker.lease)?;
        let mut said = false;
        loop {
            let now = self.app.clock.now();
            match self
                .app
                .db
                .acquire_lease("worker", &self.holder, now, now + ttl)
                .await?
            {
                Ok(lease) => {
                    if said {
                        self.out.note(&format!(
                            "this worker ({}) now holds the worker lease",
                            self.holder
                        ));
                    }
                    return Ok(Some(lease));
                }
                Err(held) => {
                    if !said {
                        self.out.note(&format!(
                            "another worker ({}) holds the lease on this SQLite database until {}; waiting for it (only one worker runs on SQLite; use PostgreSQL for several)",
                            held.holder,
                            held.until.format("%Y-%m-%d %H:%M:%S UTC")
                        ));
                        said = true;
                    }
                    let wait =
                        (held.until - now).max(chrono::Duration::milliseconds(10)) + ttl / 10;
                    tokio::select! {
                        _ = self.app.sleep(wait) => {}
                        _ = stop.changed() => return Ok(None),
                    }
                }
            }
        }
    }

    /// Passes until `stop` turns true, each starting the jobs that are due and not in flight,
    /// and again whenever a job ends; then stops taking new work, lets the jobs in flight finish
    /// within `[worker] drain`, and records a run cut by the deadline as `cancelled`.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let app = &self.app;
        let mut flight = InFlight {
            set: tokio::task::JoinSet::new(),
            jobs: std::collections::HashMap::new(),
            not_before: std::collections::HashMap::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(app.config.worker.concurrency)),
        };
        loop {
            if *stop.borrow() {
                return self.drain(&mut flight).await;
            }
            let next = match self.pass(&mut flight, &stop).await {
                Ok(next) => next,
                Err(e) => {
                    let text = format!("{e:#}; retrying at the next wake-up");
                    let _ =
                        self.out
                            .event(Level::Error, &text, serde_json::json!({ "error": text }));
                    app.clock.now() + chrono::Duration::from_std(app.config.worker.evaluate_every)?
                }
            };
            let now = app.clock.now();
            tokio::select! {
                _ = app.sleep(next - now) => {}
                _ = stop.changed() => {}
                // A delivery pass ended: report it, and start the next if one is due.
                _ = self.delivery.done.notified() => {}
                Some(ended) = flight.set.join_next_with_id() => self.ended(&mut flight, ended),
            }
        }
    }

    /// Starts every due job not in flight, then evaluates gaps and alerts; when to pass next.
    async fn pass(
        &self,
        flight: &mut InFlight,
        stop: &watch::Receiver<bool>,
    ) -> Result<DateTime<Utc>, TickError> {
        let app = &self.app;
        let swept = begin_pass(app).await?;
        let now = app.clock.now();
        flight.not_before.retain(|_, t| *t > now);
        let due = due_now(app, &Task::ALL, |job| flight.has(job, now)).await?;
        let mut report = TickReport {
            swept,
            next: due.report.next,
            ..TickReport::default()
        };
        for (c, slots) in due.collectors {
            let (app, c, holder) = (app.clone(), c.clone(), self.holder.clone());
            let (stop, running) = (stop.clone(), self.running.clone());
            let job = Job::Collector(c.name.clone());
            self.start(flight, job, async move {
                collect_slots(&app, &c, &slots, &holder, &stop, &running).await
            });
        }
        for (task, slot) in due.tasks {
            let (app, holder) = (app.clone(), self.holder.clone());
            self.start(flight, Job::Task(task), async move {
                task_report(&app, task, slot, &holder).await
            });
        }
        let delivery = Delivery::Beside(&self.delivery);
        alerts_pass(
            app,
            &self.holder,
            &self.client,
            self.out.as_ref(),
            delivery,
            &mut report,
        )
        .await?;
        for t in flight.not_before.values() {
            report.next_at(Some(*t));
        }
        self.print(&report);
        Ok(report.next.unwrap_or(now))
    }

    /// Starts `work` as a task that waits for one of the worker's permits first.
    fn start(
        &self,
        flight: &mut InFlight,
        job: Job,
        work: impl std::future::Future<Output = TickReport> + Send + 'static,
    ) {
        let permits = flight.permits.clone();
        let handle = flight.set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            work.await
        });
        flight.jobs.insert(handle.id(), job);
    }

    /// A job ended: prints what it did; a busy or failing one waits before it is started again.
    fn ended(
        &self,
        flight: &mut InFlight,
        ended: Result<(tokio::task::Id, TickReport), tokio::task::JoinError>,
    ) {
        let (id, report) = match ended {
            Ok(done) => done,
            Err(e) => {
                let job = flight.jobs.remove(&e.id());
                let job = job.map_or_else(|| "a job".to_string(), |j| j.to_string());
                let text = format!("{job} stopped: {e}; it is started again at the next pass");
                let _ = self
                    .out
                    .event(Level::Error, &text, serde_json::json!({ "error": text }));
                return;
            }
        };
        let Some(job) = flight.jobs.remove(&id) else {
            return;
        };
        if !report.errors.is_empty() || !report.busy.is_empty() {
            let pause = chrono::Duration::from_std(self.app.config.worker.evaluate_every)
                .unwrap_or(chrono::Duration::minutes(5));
            let at = report.next.unwrap_or(self.app.clock.now() + pause);
            flight.not_before.insert(job, at);
        }
        self.print(&report);
    }

    /// Stops starting jobs, waits up to `[worker] drain` for those in flight, and records the
    /// runs the deadline cuts as `cancelled`.
    async fn drain(&self, flight: &mut InFlight) -> anyhow::Result<()> {
        if flight.set.is_empty() {
            return Ok(());
        }
        let drain = self.app.config.worker.drain;
        self.out.note(&format!(
            "stopping: no new work; waiting up to {} for the work in flight",
            humantime::format_duration(drain)
        ));
        let real = drain.div_f64(self.app.speed);
        let all = async {
            while let Some(ended) = flight.set.join_next_with_id().await {
                self.ended(flight, ended);
            }
        };
        if tokio::time::timeout(real, all).await.is_err() {
            self.cancel_cut(drain, flight).await?;
        }
        Ok(())
    }

    /// Records the runs the drain deadline cut as `cancelled` and gives their leases up.
    async fn cancel_cut(
        &self,
        drain: std::time::Duration,
        flight: &mut InFlight,
    ) -> anyhow::Result<()> {
        let cut = self.running.take();
        if flight.jobs.values().any(|job| matches!(job, Job::Task(_))) {
            self.out
                .note("stopped: the drain deadline cut a task; it is retried by the next worker");
        }
        flight.set.abort_all();
        let db = &self.app.db;
        let now = self.app.clock.now();
        for (collector, slot) in cut {
            if let Some(run) = db.running_in_slot(&collector, &ts(slot)).await? {
                let reason = format!(
                    "cancelled: the worker was stopped and the run did not finish within the {} drain deadline; the slot is free for the next worker",
                    humantime::format_duration(drain)
                );
                db.cancel_run(&run, &reason, now)
                    .await
                    .context("recording the cut run as cancelled")?;
                self.out.note(&format!(
                    "{collector}: run {run} for slot {} cancelled at shutdown",
                    ts(slot)
                ));
            }
            db.release_held(&collector_lease(&collector), &self.holder, now)
                .await?;
        }
        Ok(())
    }

    /// One line per thing the tick did: text, or with --json one JSON object per line.
    fn print(&self, r: &TickReport) {
        use serde_json::json;
        let mut lines: Vec<(Level, String, serde_json::Value)> = Vec::new();
        for o in &r.runs {
            let slot = o.run.slot.as_deref().unwrap_or("-");
            lines.push((
                if o.succeeded() {
                    Level::Info
                } else {
                    Level::Error
                },
                format!("{} slot {slot}: run {} {}", o.run.collector, o.run.id, o.run.status),
                json!({"run": o.run.id, "collector": o.run.collector, "slot": o.run.slot, "status": o.run.status}),
            ));
        }
        for size in &r.checkpointed {
            lines.push((
                Level::Info,
                format!("checkpoint after the run: tree size {size}"),
                json!({ "checkpoint": size }),
            ));
        }
        for s in &r.swept {
            lines.push((Level::Warn, format!("swept: {s}"), json!({ "swept": s })));
        }
        for (task, done) in &r.tasks {
            lines.push((
                Level::Info,
                format!("{}: {done}", task.name()),
                json!({"task": task.name(), "outcome": done}),
            ));
        }
        for e in &r.errors {
            lines.push((Level::Error, e.clone(), json!({ "error": e })));
        }
        if let Some(e) = r.evaluation.filter(|e| e.queued > 0) {
            lines.push((
                Level::Info,
                format!("gaps: {} open; {} alert(s) queued", e.open_gaps, e.queued),
                json!({"open_gaps": e.open_gaps, "alerts_queued": e.queued}),
            ));
        }
        if let Some(d) = r.delivery.filter(|d| d.delivered > 0 || d.failed > 0) {
            lines.push((
                Level::Info,
                format!(
                    "alerts: {} delivered, {} attempts failed (retried with backoff)",
                    d.delivered, d.failed
                ),
                json!({"alerts_delivered": d.delivered, "alert_attempts_failed": d.failed}),
            ));
        }
        for (level, text, value) in lines {
            // Best effort: a closed stdout must not stop the worker.
            let _ = self.out.event(level, &text, value);
        }
    }
}
