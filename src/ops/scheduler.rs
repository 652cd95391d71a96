//! Scheduling: which slots are due, who runs them, and the worker's loop.
//!
//! One [`tick`] does everything that is due now, deciding from the database alone: the slots
//! of each collector without a finished run, the worker tasks (daily checkpoint, daily verify,
//! the configured report) not yet done for their slot, then the gap evaluation and alert
//! delivery. `annexa run` is one tick; `annexa worker` ticks, then sleeps until the next slot.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What one tick did.
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

/// One pass of the scheduler: every due slot, each of `tasks` if due, then gaps and alerts. `stop`
/// turning true stops it from starting anything new. Errors of single slots and tasks are
/// collected in the report, not returned: one failing source does not stop the others.
#[allow(clippy::too_many_arguments)]
pub async fn tick(
    app: &Annexa,
    tasks: &[Task],
    holder: &str,
    client: &reqwest::Client,
    out: &dyn Output,
    delivery: Delivery<'_>,
    stop: &watch::Receiver<bool>,
    current: &Mutex<Option<(String, DateTime<Utc>)>>,
) -> Result<TickReport, TickError> {
    // A database restored from an older copy must not grow a second history.
    crate::ledger::checkpoint::guard_append(app).await?;
    let mut report = TickReport {
        swept: sweep_stuck_runs(app).await?,
        ..TickReport::default()
    };
    let now = app.clock.now();
    let mut next = now + chrono::Duration::from_std(app.config.worker.evaluate_every)?;

    for c in in_run_order(app.config.collectors.iter()) {
        if let Some(n) = c.schedule.next_after(now) {
            next = next.min(n);
        }
        let (slots, retry_at) = due_slots(app, c, now).await?;
        if let Some(r) = retry_at {
            next = next.min(r);
        }
        if slots.is_empty()
            && let Some(latest) = c.schedule.slot_at(now)
        {
            report.not_due.push((c.name.clone(), latest));
        }
        for slot in slots {
            if *stop.borrow() {
                return Ok(report);
            }
            *current.lock().expect("not poisoned") = Some((c.name.clone(), slot));
            let outcome = run_slot(app, c, slot, holder).await;
            *current.lock().expect("not poisoned") = None;
            match outcome {
                Ok(SlotOutcome::Ran(o)) => {
                    report.runs.push(*o);
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
                    next = next.min(held.until);
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
    }

    for &task in tasks {
        let Some(schedule) = task.schedule(app) else {
            continue;
        };
        if let Some(n) = schedule.next_after(now) {
            next = next.min(n);
        }
        let Some(slot) = schedule.slot_at(now) else {
            continue;
        };
        if *stop.borrow() || app.db.task_done(task.name(), slot).await? {
            continue;
        }
        match run_task(app, task, slot, holder).await {
            Ok(Some(done)) => report.tasks.push((task, done)),
            Ok(None) => {}
            Err(e) => report.errors.push(format!("{}: {e:#}", task.name())),
        }
    }

    let lease_name = "alerts";
    let ttl = chrono::Duration::from_std(app.config.worker.lease)?;
    let t = app.clock.now();
    if let Ok(lease) = app.db.acquire_lease(lease_name, holder, t, t + ttl).await? {
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
            Ok(Some(n)) => next = next.min(n),
            Ok(None) => {}
            Err(e) => report.errors.push(format!("alerts: {e:#}")),
        }
    }
    report.next = Some(next);
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

/// The worker: ticks until told to stop, then drains.
pub struct Worker {
    pub app: Arc<Annexa>,
    pub holder: String,
    client: reqwest::Client,
    out: Arc<dyn Output>,
    delivery: Arc<Background>,
    /// The slot being run now, to record it as cancelled if the drain deadline cuts it.
    current: Mutex<Option<(String, DateTime<Utc>)>>,
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
            current: Mutex::new(None),
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

    /// Ticks until `stop` turns true; then stops taking new work, lets the run in flight
    /// finish within `[worker] drain`, and records a run cut by the deadline as `cancelled`.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let app = &self.app;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let view = stop.clone();
            let tick = tick(
                app,
                &Task::ALL,
                &self.holder,
                &self.client,
                self.out.as_ref(),
                Delivery::Beside(&self.delivery),
                &view,
                &self.current,
            );
            tokio::pin!(tick);
            let report = tokio::select! {
                r = &mut tick => r,
                _ = stop.changed() => {
                    let drain = app.config.worker.drain;
                    self.out.note(&format!(
                        "stopping: no new work; waiting up to {} for the work in flight",
                        humantime::format_duration(drain)
                    ));
                    let real = drain.div_f64(app.speed);
                    match tokio::time::timeout(real, &mut tick).await {
                        Ok(r) => {
                            self.print(&r?);
                        }
                        Err(_) => self.cancel_current(drain).await?,
                    }
                    return Ok(());
                }
            };
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    let text = format!("{e:#}; retrying at the next wake-up");
                    let _ =
                        self.out
                            .event(Level::Error, &text, serde_json::json!({ "error": text }));
                    TickReport {
                        next: Some(
                            app.clock.now()
                                + chrono::Duration::from_std(app.config.worker.evaluate_every)?,
                        ),
                        ..TickReport::default()
                    }
                }
            };
            self.print(&report);
            let now = app.clock.now();
            let next = report.next.unwrap_or(now);
            tokio::select! {
                _ = app.sleep(next - now) => {}
                _ = stop.changed() => {}
                // A delivery pass ended: report it, and start the next if one is due.
                _ = self.delivery.done.notified() => {}
            }
        }
    }

    /// Records the run the drain deadline cut as `cancelled` and gives its lease up.
    async fn cancel_current(&self, drain: std::time::Duration) -> anyhow::Result<()> {
        let current = self.current.lock().expect("not poisoned").take();
        let Some((collector, slot)) = current else {
            self.out
                .note("stopped: the drain deadline cut a task; it is retried by the next worker");
            return Ok(());
        };
        let db = &self.app.db;
        let now = self.app.clock.now();
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
