//! `cron-health`: heartbeats of scheduled jobs, and the slots they missed or failed.
//!
//! A job has a schedule (a cron expression in a time zone, or a period), a grace and optionally a
//! maximum runtime. Jobs report with pings (`annexa ping JOB [--start|--fail]`); annexa's own
//! collectors are jobs too, each of their runs a heartbeat for its slot. The semantics follow
//! Healthchecks.io and Cronitor: a slot passes with a success ping inside its window, and silence
//! is a failure.
//!
//! - Cron slot `s`: the window is `[s − 60 s, s + grace]`.
//! - Period slot `s` (slots every `period` since the Unix epoch): the window is
//!   `[s, s + period + grace]`: one success per period.
//! - A heartbeat that names its slot (a collector run) counts for that slot whenever it arrived.
//!
//! `collect` reads the heartbeats of the window from a [`HeartbeatSource`]; `check` is pure.
//! The facts carry a horizon, the latest moment the heartbeats are known up to, which never moves
//! backwards (a clock that jumps back does not reopen a closed slot).
//!
//! Storage grows with heartbeats, not with snapshots × window: a snapshot stores the heartbeats
//! that entered the window since the previous snapshot, the hashes of those that left it, and a
//! digest of the whole window (count, first, last, SHA-256 over the records). The engine rebuilds
//! the window from the chain of snapshots ([`Collector::join`]), and the digest proves it got
//! back what was read. A snapshot stores the whole window again once the changes since the last
//! whole one hold as many records, or after [`MAX_CHAIN`] deltas, so a chain stays short;
//! snapshots stored before this (no digest) are whole windows too.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, FactsRef, Finding, FindingCode,
    Snapshot, Source,
};

/// The most snapshots in a row that store only what changed (a month of hourly snapshots);
/// the next stores the whole window. It comes sooner when the changes stored since the last
/// whole window hold as many records as the window: storage stays within twice the changes,
/// and rebuilding reads at most twice a window.
pub const MAX_CHAIN: u32 = 720;

/// Pings within this long before a cron slot count for it (clock skew between hosts).
const EARLY_SECONDS: i64 = 60;

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PingKind {
    Start,
    Success,
    Fail,
}

impl PingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Start => "start",
            PingKind::Success => "success",
            PingKind::Fail => "fail",
        }
    }
}

impl FromStr for PingKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(PingKind::Start),
            "success" => Ok(PingKind::Success),
            "fail" => Ok(PingKind::Fail),
            other => Err(format!("unknown ping kind `{other}`")),
        }
    }
}

/// One heartbeat of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub job: String,
    pub kind: PingKind,
    pub at: DateTime<Utc>,
    /// The slot this heartbeat is for, when its sender knows (annexa's own runs do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `cli`, `http` or `run`.
    pub source: String,
}

/// Where heartbeats are read from; the engine provides it in the [`CollectContext`].
#[async_trait::async_trait]
pub trait HeartbeatSource: Send + Sync {
    /// Every heartbeat of `job` with `since <= at <= until`, oldest first.
    async fn heartbeats(
        &self,
        job: &JobSpec,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Heartbeat>, String>;

    /// When `job` first reported at all.
    async fn first_seen(&self, job: &JobSpec) -> Result<Option<DateTime<Utc>>, String>;
}

/// When a job is expected to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum JobSchedule {
    /// A cron expression (5 or 6 fields, or @daily …) in an IANA time zone.
    Cron {
        expression: String,
        timezone: String,
    },
    /// One success every `seconds`, in slots aligned to the Unix epoch.
    Period { seconds: i64 },
}

/// One monitored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    pub schedule: JobSchedule,
    pub grace_seconds: i64,
    pub max_runtime_seconds: Option<i64>,
    /// `job` (from `[[job]]`) or `collector` (one of annexa's own collectors).
    pub origin: String,
    /// Slots before this are not expected (default: the job's first heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

impl JobSpec {
    /// Checks the schedule can be evaluated.
    pub fn validate(&self) -> Result<(), String> {
        match &self.schedule {
            JobSchedule::Cron {
                expression,
                timezone,
            } => {
                croner::Cron::from_str(expression)
                    .map_err(|e| format!("schedule `{expression}`: {e}"))?;
                timezone.parse::<chrono_tz::Tz>().map_err(|_| {
                    format!("timezone `{timezone}` is not an IANA time zone (e.g. Europe/Berlin)")
                })?;
                Ok(())
            }
            JobSchedule::Period { seconds } if *seconds <= 0 => {
                Err("period must be positive".into())
            }
            JobSchedule::Period { .. } => Ok(()),
        }
    }

    /// The scheduled slots `s` with `from <= s <= to`, in UTC.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        match &self.schedule {
            JobSchedule::Cron {
                expression,
                timezone,
            } => {
                let (Ok(cron), Ok(tz)) = (
                    croner::Cron::from_str(expression),
                    timezone.parse::<chrono_tz::Tz>(),
                ) else {
                    return out;
                };
                let mut cursor = from.with_timezone(&tz);
                let mut inclusive = true;
                while let Ok(next) = cron.find_next_occurrence(&cursor, inclusive) {
                    let utc = next.with_timezone(&Utc);
                    if utc > to {
                        break;
                    }
                    out.push(utc);
                    cursor = next;
                    inclusive = false;
                }
            }
            JobSchedule::Period { seconds } => {
                let first = from.timestamp().div_euclid(*seconds) * seconds
                    + if from.timestamp().rem_euclid(*seconds) == 0 {
                        0
                    } else {
                        *seconds
                    };
                let mut t = first;
                while t <= to.timestamp() {
                    out.push(Utc.timestamp_opt(t, 0).single().expect("in range"));
                    t += seconds;
                }
            }
        }
        out
    }

    /// The window in which a success satisfies slot `s`.
    fn window(&self, s: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let grace = Duration::seconds(self.grace_seconds);
        match &self.schedule {
            JobSchedule::Cron { .. } => (s - Duration::seconds(EARLY_SECONDS), s + grace),
            JobSchedule::Period { seconds } => (s, s + Duration::seconds(*seconds) + grace),
        }
    }

    fn describe(&self) -> String {
        match &self.schedule {
            JobSchedule::Cron {
                expression,
                timezone,
            } => format!("`{expression}` ({timezone})"),
            JobSchedule::Period { seconds } => format!("every {seconds} s"),
        }
    }
}

/// Configuration of one `cron-health` collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronHealthConfig {
    /// How many days of heartbeats each snapshot covers.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// The jobs to watch, by name (default: every `[[job]]` and every collector).
    pub jobs: Option<Vec<String>>,
}

impl CronHealthConfig {
    /// Whether this collector watches the job of that name (with no `jobs` list, every one).
    pub fn watches(&self, job: &str) -> bool {
        self.jobs
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == job))
    }
}

fn default_window_days() -> u32 {
    30
}

/// One job's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFacts {
    pub spec: JobSpec,
    pub first_seen: Option<DateTime<Utc>>,
    pub heartbeats: Vec<Heartbeat>,
}

/// The facts of one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronHealthFacts {
    pub window_start: DateTime<Utc>,
    /// Heartbeats are known up to here.
    pub horizon: DateTime<Utc>,
    /// Each job's heartbeats in the window; in a snapshot with a [`Delta`], only those that
    /// entered it since the previous snapshot.
    pub jobs: Vec<JobFacts>,
    /// Set when the snapshot stores only what changed since an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// The whole window's digest, as read (absent in snapshots stored before deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowDigest>,
    /// How many snapshots in a row, up to this one, store only changes (0: it is whole).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain: u32,
    /// How many records (entered and left) those snapshots store.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain_records: usize,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// What a snapshot changed in the window of the one it continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub previous: FactsRef,
    /// The SHA-256 of each heartbeat ([`record_hash`]) that left the window.
    pub removed: Vec<String>,
}

/// The whole window in a few figures: every job's heartbeats, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowDigest {
    pub count: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// SHA-256 over the records' hashes, job by job, each job's heartbeats in order.
    pub sha256: String,
}

/// The SHA-256 of one heartbeat's JSON.
pub fn record_hash(h: &Heartbeat) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(h).expect("a heartbeat serializes"),
    ))
}

/// The one order of heartbeats: by time, then kind, slot, source, message.
fn order(a: &Heartbeat, b: &Heartbeat) -> std::cmp::Ordering {
    (a.at, a.kind.as_str(), a.slot, &a.source, &a.message).cmp(&(
        b.at,
        b.kind.as_str(),
        b.slot,
        &b.source,
        &b.message,
    ))
}

fn sort(beats: &mut [Heartbeat]) {
    beats.sort_by(order);
}

/// The digest of a window: its records, each with its hash ([`record_hash`]), in order.
fn digest_of<'a>(records: impl Iterator<Item = (&'a String, &'a Heartbeat)>) -> WindowDigest {
    let mut hasher = Sha256::new();
    let (mut count, mut first, mut last) = (0, None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for (hash, h) in records {
        hasher.update(hash.as_bytes());
        count += 1;
        first = Some(first.map_or(h.at, |f| f.min(h.at)));
        last = Some(last.map_or(h.at, |l| l.max(h.at)));
    }
    WindowDigest {
        count,
        first,
        last,
        sha256: hex::encode(hasher.finalize()),
    }
}

impl CronHealthFacts {
    /// The snapshot to store for `whole` (the window as read), given the previous snapshot's
    /// window (complete) and where it is stored: only what changed, or the whole window when
    /// there is nothing to continue or the chain is long enough.
    pub fn stored_form(
        whole: CronHealthFacts,
        previous: Option<(&CronHealthFacts, &FactsRef)>,
    ) -> CronHealthFacts {
        // Each record hashed once: for the digest, and to tell what entered and what left.
        let hashes: Vec<Vec<String>> = whole
            .jobs
            .iter()
            .map(|j| j.heartbeats.iter().map(record_hash).collect())
            .collect();
        let window = digest_of(
            whole
                .jobs
                .iter()
                .zip(&hashes)
                .flat_map(|(j, hs)| hs.iter().zip(&j.heartbeats)),
        );
        let whole_form = |whole: CronHealthFacts, window: WindowDigest| CronHealthFacts {
            delta: None,
            window: Some(window),
            chain: 0,
            chain_records: 0,
            ..whole
        };
        let Some((prev, link)) = previous.filter(|(p, _)| p.chain < MAX_CHAIN) else {
            return whole_form(whole, window);
        };
        let before: std::collections::HashSet<String> = prev
            .jobs
            .iter()
            .flat_map(|j| &j.heartbeats)
            .map(record_hash)
            .collect();
        let now: std::collections::HashSet<&String> = hashes.iter().flatten().collect();
        let mut removed: Vec<String> = before
            .iter()
            .filter(|h| !now.contains(h))
            .cloned()
            .collect();
        removed.sort();
        let added = now.iter().filter(|h| !before.contains(h.as_str())).count();
        let chain_records = prev.chain_records + added + removed.len();
        if chain_records >= window.count.max(1) {
            return whole_form(whole, window);
        }
        let jobs = whole
            .jobs
            .into_iter()
            .zip(&hashes)
            .map(|(j, hs)| JobFacts {
                heartbeats: j
                    .heartbeats
                    .into_iter()
                    .zip(hs)
                    .filter(|(_, hash)| !before.contains(hash.as_str()))
                    .map(|(h, _)| h)
                    .collect(),
                ..j
            })
            .collect();
        CronHealthFacts {
            jobs,
            delta: Some(Delta {
                previous: link.clone(),
                removed,
            }),
            window: Some(window),
            chain: prev.chain + 1,
            chain_records,
            ..whole
        }
    }

    /// A chain made complete: `chain[0]` complete, each next one a [`Delta`] on the one before.
    /// Each record is hashed once; each step's count and the newest step's digest are checked
    /// against what its snapshot read.
    pub fn joined(mut chain: Vec<CronHealthFacts>) -> Result<CronHealthFacts, String> {
        let mut newest = chain.pop().ok_or("no facts to join")?;
        if chain.is_empty() {
            return Ok(newest);
        }
        // Each job's window, as (hash, heartbeat) in order.
        type Window = Vec<(String, Heartbeat)>;
        let hashed = |jobs: &[JobFacts]| -> Vec<(String, Window)> {
            jobs.iter()
                .map(|j| {
                    let beats = j.heartbeats.iter().map(|h| (record_hash(h), h.clone()));
                    (j.spec.name.clone(), beats.collect())
                })
                .collect()
        };
        let mut windows = hashed(&chain[0].jobs);
        let steps: Vec<&CronHealthFacts> = chain.iter().skip(1).chain([&newest]).collect();
        for (i, step) in steps.iter().enumerate() {
            let Some(delta) = &step.delta else {
                return Err("a whole snapshot stands where a delta was expected".into());
            };
            let removed: std::collections::HashSet<&str> =
                delta.removed.iter().map(String::as_str).collect();
            let mut next = hashed(&step.jobs);
            for (name, added) in &mut next {
                let mut beats: Window = windows
                    .iter_mut()
                    .find(|(n, _)| n == name)
                    .map(|(_, w)| std::mem::take(w))
                    .unwrap_or_default();
                beats.retain(|(hash, _)| !removed.contains(hash.as_str()));
                beats.append(added);
                beats.sort_by(|(_, a), (_, b)| order(a, b));
                *added = beats;
            }
            windows = next;
            let count: usize = windows.iter().map(|(_, w)| w.len()).sum();
            let read = step.window.as_ref().map_or(count, |w| w.count);
            let last = i + 1 == steps.len();
            let got = if last {
                Some(digest_of(
                    windows
                        .iter()
                        .flat_map(|(_, w)| w.iter().map(|(hash, h)| (hash, h))),
                ))
            } else {
                None
            };
            let digest_differs = last && step.window.as_ref() != got.as_ref();
            if count != read || (digest_differs && step.window.is_some()) {
                return Err(format!(
                    "the heartbeats rebuilt from run {} and the runs before it ({count} records{}) are not the window this snapshot read ({read} records{})",
                    delta.previous.run_id,
                    got.as_ref()
                        .map_or(String::new(), |g| format!(", digest {}", &g.sha256[..12])),
                    step.window
                        .as_ref()
                        .filter(|_| last)
                        .map_or(String::new(), |w| format!(", digest {}", &w.sha256[..12]))
                ));
            }
        }
        for job in &mut newest.jobs {
            job.heartbeats = windows
                .iter_mut()
                .find(|(n, _)| *n == job.spec.name)
                .map(|(_, w)| std::mem::take(w).into_iter().map(|(_, h)| h).collect())
                .unwrap_or_default();
        }
        newest.delta = None;
        Ok(newest)
    }
}

pub struct CronHealth {
    config: CronHealthConfig,
    jobs: Vec<JobSpec>,
}

impl CronHealth {
    /// `jobs`: every job the engine knows; the config's `jobs` list selects among them.
    pub fn new(config: CronHealthConfig, jobs: Vec<JobSpec>) -> Self {
        let jobs = jobs
            .into_iter()
            .filter(|j| config.watches(&j.name))
            .collect();
        CronHealth { config, jobs }
    }
}

#[async_trait::async_trait]
impl Collector for CronHealth {
    fn kind(&self) -> &'static str {
        "cron-health"
    }

    fn reads_previous(&self) -> bool {
        true
    }

    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
        let unavailable = |reason: String| CollectError::SourceUnavailable {
            what: "heartbeats".into(),
            reason,
        };
        let source: Arc<dyn HeartbeatSource> = ctx
            .heartbeats
            .clone()
            .ok_or_else(|| unavailable("no heartbeat store in this context".into()))?;
        let now = ctx.now();
        // Never move the horizon backwards: a clock that jumped back must not reopen slots.
        let previous = ctx
            .previous_facts
            .as_ref()
            .and_then(|f| serde_json::from_value::<CronHealthFacts>(f.clone()).ok());
        let horizon = previous.as_ref().map_or(now, |p| p.horizon.max(now));
        let window_start = horizon - Duration::days(i64::from(self.config.window_days));
        let mut jobs = Vec::new();
        for spec in &self.jobs {
            // Starts up to one max runtime before the window can still end inside it.
            let lookback =
                Duration::seconds(spec.max_runtime_seconds.unwrap_or(0) + spec.grace_seconds);
            let mut heartbeats = source
                .heartbeats(spec, window_start - lookback, horizon)
                .await
                .map_err(unavailable)?;
            sort(&mut heartbeats);
            let first_seen = source.first_seen(spec).await.map_err(unavailable)?;
            jobs.push(JobFacts {
                spec: spec.clone(),
                first_seen,
                heartbeats,
            });
        }
        let whole = CronHealthFacts {
            window_start,
            horizon,
            jobs,
            delta: None,
            window: None,
            chain: 0,
            chain_records: 0,
        };
        let read = whole.jobs.iter().map(|j| j.heartbeats.len()).sum::<usize>();
        // A previous snapshot stored under another window length is not continued.
        let continued = previous
            .as_ref()
            .filter(|p| p.horizon - p.window_start == horizon - window_start)
            .zip(ctx.previous_run.as_ref());
        let facts = CronHealthFacts::stored_form(whole, continued);
        let all: Vec<&Heartbeat> = facts.jobs.iter().flat_map(|j| &j.heartbeats).collect();
        let raw = serde_json::to_vec(&all).expect("heartbeats serialize");
        let query = match &facts.delta {
            Some(d) => format!(
                "heartbeats of {} jobs that entered the window since {} (run {}); the window since {} holds {read}",
                self.jobs.len(),
                previous
                    .as_ref()
                    .map_or(window_start, |p| p.horizon)
                    .to_rfc3339(),
                d.previous.run_id,
                window_start.to_rfc3339()
            ),
            None => format!(
                "heartbeats of {} jobs since {}",
                self.jobs.len(),
                window_start.to_rfc3339()
            ),
        };
        ctx.emit(EvidenceItem {
            name: "heartbeats.json".into(),
            media_type: "application/json".into(),
            body: Body::Bytes(raw),
            observed_at: now,
            effective_at: None,
            source: Source {
                query,
                filters: self.jobs.iter().map(|j| j.name.clone()).collect(),
                total: Some(all.len() as u64),
            },
        })
        .await?;
        Ok(Snapshot::of(
            serde_json::to_value(&facts).expect("facts serialize"),
        ))
    }

    fn continues(&self, facts: &serde_json::Value) -> Option<FactsRef> {
        serde_json::from_value::<FactsRef>(facts.pointer("/delta/previous")?.clone()).ok()
    }

    fn join(&self, chain: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
        let chain = chain
            .into_iter()
            .map(serde_json::from_value::<CronHealthFacts>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("stored cron-health facts cannot be read: {e}"))?;
        let joined = CronHealthFacts::joined(chain)?;
        Ok(serde_json::to_value(joined).expect("facts serialize"))
    }

    fn check(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<Finding> {
        crate::check_stored::<CronHealthFacts>("cron-health", facts, |f| {
            evaluate(f, as_of)
                .into_iter()
                .flat_map(|j| j.findings)
                .collect()
        })
    }

    fn figures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Box<dyn crate::FigureFold> {
        Box::new(JobFold {
            from,
            to,
            jobs: std::collections::BTreeMap::new(),
            covered_from: None,
        })
    }
}

/// Every job's slots in the period, each as judged by the newest snapshot whose heartbeat
/// window holds it: a snapshot keeps a window of days, so the month is the union of them.
/// Newest first: each older snapshot judges only the slots before the windows already read,
/// and none is read once they reach back to the period's start.
struct JobFold {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// By job name: its schedule, each judged slot's state, and the snapshots that judged one.
    jobs: std::collections::BTreeMap<String, (JobSlots, crate::Seen)>,
    /// Where the windows read so far start.
    covered_from: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct JobSlots {
    schedule: String,
    slots: std::collections::BTreeMap<DateTime<Utc>, SlotState>,
    /// The snapshot that judged each slot (each is judged once: by the newest window that
    /// holds it).
    judged_by: std::collections::BTreeMap<DateTime<Utc>, crate::SnapshotRef>,
}

impl crate::FigureFold for JobFold {
    fn add(&mut self, at: &crate::SnapshotRef, facts: &serde_json::Value) {
        let Some(f) = crate::parse_stored::<CronHealthFacts>(facts) else {
            return;
        };
        for job in &f.jobs {
            let s = evaluate_slots_before(
                job,
                self.from.max(f.window_start),
                self.to.min(f.horizon),
                f.horizon,
                self.covered_from,
            );
            let (mut kept, seen) = self.jobs.remove(&s.job).map_or_else(
                || (JobSlots::default(), crate::Seen::new(at)),
                |(k, mut seen)| {
                    seen.again(at);
                    (k, seen)
                },
            );
            if kept.schedule.is_empty() {
                // A table cell, not Markdown: the expression without its code quotes.
                kept.schedule = s.schedule.replace('`', "");
            }
            kept.judged_by
                .extend(s.slots.iter().map(|(slot, _)| (*slot, at.clone())));
            kept.slots.extend(s.slots);
            self.jobs.insert(s.job, (kept, seen));
        }
        self.covered_from = Some(
            self.covered_from
                .map_or(f.window_start, |c| c.min(f.window_start)),
        );
    }

    fn newest_first(&self) -> bool {
        true
    }

    fn enough(&self) -> bool {
        self.covered_from.is_some_and(|c| c <= self.from)
    }

    fn members(&self) -> Vec<crate::Member> {
        let mut members = Vec::new();
        for (job, (kept, _)) in &self.jobs {
            for (slot, state) in &kept.slots {
                let time = slot.format("%Y-%m-%dT%H:%M:%SZ");
                members.push(crate::Member {
                    population: "job-slots",
                    id: format!("{job} {time}"),
                    at: *slot,
                    summary: format!(
                        "{job}, slot {time}: {}",
                        match state {
                            SlotState::Succeeded => "succeeded",
                            SlotState::Missed => "missed",
                            SlotState::Failed => "failed",
                        }
                    ),
                    snapshot: kept.judged_by[slot].clone(),
                });
            }
        }
        members
    }

    fn tables(self: Box<Self>) -> Vec<crate::FigureTable> {
        let mut table = crate::FigureTable::new(
            "Scheduled jobs in the period",
            &[
                "Job",
                "Schedule",
                "Expected",
                "Succeeded",
                "Missed",
                "Failed",
                "Coverage",
                "Slots missed or failed",
                "Evidence",
            ],
        );
        for (job, (kept, seen)) in self.jobs {
            let count = |state| kept.slots.values().filter(|s| **s == state).count();
            let (succeeded, missed, failed) = (
                count(SlotState::Succeeded),
                count(SlotState::Missed),
                count(SlotState::Failed),
            );
            let expected = kept.slots.len();
            let coverage = if expected == 0 {
                "no run due yet".to_string()
            } else {
                format!(
                    "{succeeded} of {expected} runs, {:.1} %",
                    succeeded as f64 * 100.0 / expected as f64
                )
            };
            let slots: Vec<_> = kept.slots.into_iter().collect();
            table = table.row([
                job,
                kept.schedule,
                expected.to_string(),
                succeeded.to_string(),
                missed.to_string(),
                failed.to_string(),
                coverage,
                bad_slots(&slots),
                seen.text(),
            ]);
        }
        vec![table]
    }
}

/// The slots that were missed or failed, runs of consecutive ones folded: "missed 2026-11-12
/// 00:00 to 23:00 (24 slots), failed 2026-11-20 03:00".
fn bad_slots(slots: &[(DateTime<Utc>, SlotState)]) -> String {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < slots.len() {
        let state = slots[i].1;
        let mut j = i;
        while j + 1 < slots.len() && slots[j + 1].1 == state {
            j += 1;
        }
        let what = match state {
            SlotState::Succeeded => None,
            SlotState::Missed => Some("missed"),
            SlotState::Failed => Some("failed"),
        };
        if let Some(what) = what {
            parts.push(if i == j {
                format!("{what} {}", time(slots[i].0))
            } else {
                format!(
                    "{what} {} to {} ({} slots)",
                    time(slots[i].0),
                    time(slots[j].0),
                    j - i + 1
                )
            });
        }
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// How one slot went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Succeeded,
    Missed,
    Failed,
}

/// One job's slots, as judged at a point in time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    pub job: String,
    pub origin: String,
    pub schedule: String,
    /// Slots whose window closed by the horizon.
    pub expected: usize,
    pub succeeded: usize,
    pub missed: usize,
    pub failed: usize,
    /// `succeeded / expected` in percent; None when nothing was expected yet.
    pub coverage_percent: Option<f64>,
    /// Start-to-end durations of runs that pinged both, in seconds.
    pub durations_seconds: Vec<i64>,
    pub findings: Vec<Finding>,
    /// Each expected slot and how it went.
    #[serde(skip)]
    pub slots: Vec<(DateTime<Utc>, SlotState)>,
}

impl JobSummary {
    /// "29 of 30 runs, 96.7 %".
    pub fn coverage_text(&self) -> String {
        match self.coverage_percent {
            Some(p) => format!("{} of {} runs, {p:.1} %", self.succeeded, self.expected),
            None => "no run due yet".to_string(),
        }
    }
}

fn slot_subject(job: &str, at: DateTime<Utc>) -> String {
    format!(
        "{job}@{}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Judges every job at `as_of`: up to the facts' horizon, or, looking ahead, up to `as_of` with
/// every slot after the horizon silent ([`crate::AsOf::judged_until`]).
pub fn evaluate(facts: &CronHealthFacts, as_of: crate::AsOf) -> Vec<JobSummary> {
    let until = as_of.judged_until(facts.horizon);
    facts
        .jobs
        .iter()
        .map(|job| evaluate_job(job, facts.window_start, until, facts.horizon))
        .collect()
}

/// One job's slots that closed by `horizon`; `known_until` is where the heartbeats end (a slot
/// closing after it is judged only when looking ahead, and says so).
fn evaluate_job(
    job: &JobFacts,
    window_start: DateTime<Utc>,
    horizon: DateTime<Utc>,
    known_until: DateTime<Utc>,
) -> JobSummary {
    evaluate_slots_before(job, window_start, horizon, known_until, None)
}

/// [`evaluate_job`], judging only the slots before `before` when given (a later snapshot
/// judges the rest).
fn evaluate_slots_before(
    job: &JobFacts,
    window_start: DateTime<Utc>,
    horizon: DateTime<Utc>,
    known_until: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
) -> JobSummary {
    let spec = &job.spec;
    let mut summary = JobSummary {
        job: spec.name.clone(),
        origin: spec.origin.clone(),
        schedule: spec.describe(),
        expected: 0,
        succeeded: 0,
        missed: 0,
        failed: 0,
        coverage_percent: None,
        durations_seconds: Vec::new(),
        findings: Vec::new(),
        slots: Vec::new(),
    };
    let Some(since) = spec.since.or(job.first_seen) else {
        summary.findings.push(Finding::new(
            FindingCode::HeartbeatMissed,
            format!("{}@never", spec.name),
            format!(
                "{} ({}) has never reported a heartbeat",
                spec.name,
                spec.describe()
            ),
        ));
        return summary;
    };
    let mut beats: Vec<&Heartbeat> = job.heartbeats.iter().filter(|h| h.at <= horizon).collect();
    beats.sort_by_key(|h| h.at);
    // No slot before the first heartbeat is expected: the first expected slot is the first
    // whose window had not closed when the job first reported. A collector's first heartbeat
    // names its slot exactly, so its first expected slot is that one.
    let collector = spec.origin == "collector";
    let (open, close) = spec.window(since);
    let reach = if collector {
        Duration::zero()
    } else {
        close - open
    };
    let last = before.map_or(horizon, |b| horizon.min(b));
    for slot in spec.slots((since - reach).max(window_start), last) {
        if before.is_some_and(|b| slot >= b) {
            break;
        }
        let (open, close) = spec.window(slot);
        if close > horizon {
            continue; // still open
        }
        if (collector && slot < since) || (!collector && close < since) {
            continue; // before the job was set up
        }
        let in_slot = |h: &Heartbeat| h.slot.map_or(h.at >= open && h.at <= close, |s| s == slot);
        summary.expected += 1;
        if let Some(fail) = beats
            .iter()
            .find(|h| h.kind == PingKind::Fail && in_slot(h))
        {
            summary.failed += 1;
            summary.slots.push((slot, SlotState::Failed));
            summary.findings.push(Finding::new(
                FindingCode::HeartbeatFailed,
                slot_subject(&spec.name, slot),
                format!(
                    "{} reported failure at {}{}",
                    spec.name,
                    fail.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    fail.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            ));
        } else if beats
            .iter()
            .any(|h| h.kind == PingKind::Success && in_slot(h))
        {
            summary.succeeded += 1;
            summary.slots.push((slot, SlotState::Succeeded));
        } else {
            summary.missed += 1;
            summary.slots.push((slot, SlotState::Missed));
            summary.findings.push(Finding::new(
                FindingCode::HeartbeatMissed,
                slot_subject(&spec.name, slot),
                format!(
                    "{} did not report success for its {} slot by {} (grace {} s){}",
                    spec.name,
                    slot.format("%Y-%m-%d %H:%M UTC"),
                    close.format("%Y-%m-%d %H:%M UTC"),
                    spec.grace_seconds,
                    if close > known_until {
                        format!(
                            "; looking ahead: no heartbeat is collected after {}",
                            known_until.format("%Y-%m-%d %H:%M UTC")
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
    // Runs that started and never ended within their maximum runtime.
    for (i, start) in beats
        .iter()
        .enumerate()
        .filter(|(_, h)| h.kind == PingKind::Start)
    {
        let end = beats[i + 1..]
            .iter()
            .find(|h| h.kind != PingKind::Start && h.at >= start.at);
        match (end, spec.max_runtime_seconds) {
            (Some(end), _) => summary
                .durations_seconds
                .push((end.at - start.at).num_seconds()),
            (None, Some(max))
                if start.at + Duration::seconds(max) <= horizon && start.at >= window_start =>
            {
                summary.findings.push(Finding::new(
                    FindingCode::HeartbeatFailed,
                    slot_subject(&spec.name, start.at),
                    format!(
                        "{} started at {} and did not finish within its maximum runtime of {max} s",
                        spec.name,
                        start.at.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                ));
            }
            _ => {}
        }
    }
    if summary.expected > 0 {
        summary.coverage_percent = Some(summary.succeeded as f64 * 100.0 / summary.expected as f64);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AsOf;

    #[test]
    fn missed_and_failed_slots_are_listed_as_ranges() {
        let slots: Vec<(DateTime<Utc>, SlotState)> = (0..8)
            .map(|h| {
                let state = match h {
                    2..=4 => SlotState::Missed,
                    6 => SlotState::Failed,
                    _ => SlotState::Succeeded,
                };
                (t(h, 0), state)
            })
            .collect();
        assert_eq!(
            bad_slots(&slots),
            "missed 2026-11-22 02:00 to 2026-11-22 04:00 (3 slots), failed 2026-11-22 06:00"
        );
        assert_eq!(bad_slots(&slots[..2]), "none");
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    /// Snapshots whose windows hold four hours each: the fold reads them newest first, judges
    /// each slot by the newest window that holds it, and reads nothing older than the window
    /// that reaches the period's start.
    #[test]
    fn the_period_s_slots_are_the_union_of_the_snapshots_windows() {
        // Pings every hour but 03:00; the 03:00 ping arrives late, at 03:40, after the window
        // of the snapshot of 04:30 was read: only a later snapshot knows it.
        let beats: Vec<Heartbeat> = (0..10)
            .filter(|h| *h != 3)
            .map(|h| beat(PingKind::Success, t(h, 5)))
            .collect();
        let window = |horizon: DateTime<Utc>, late: bool| {
            let mut f = facts(hourly(45), beats.clone(), horizon);
            f.window_start = horizon - Duration::hours(4);
            f.jobs[0].first_seen = Some(t(0, 5));
            f.jobs[0]
                .heartbeats
                .retain(|b| b.at >= f.window_start && b.at <= horizon);
            if late {
                f.jobs[0].heartbeats.push(beat(PingKind::Success, t(3, 40)));
            }
            f
        };
        let config = serde_json::from_value(serde_json::json!({})).unwrap();
        let mut fold = CronHealth::new(config, Vec::new()).figures(t(0, 0), t(10, 0));
        assert!(fold.newest_first());
        // As the engine hands them over: newest first.
        let snapshots = [
            (t(9, 50), true),
            (t(6, 30), true),
            (t(4, 30), false),
            (t(2, 30), false),
            (t(1, 30), false),
        ];
        let mut read = 0;
        for (i, (at, late)) in snapshots.into_iter().enumerate() {
            if fold.enough() {
                break;
            }
            read += 1;
            let at_ref = crate::SnapshotRef {
                run_id: format!("r{i}"),
                collected_at: at,
            };
            fold.add(&at_ref, &serde_json::to_value(window(at, late)).unwrap());
        }
        // Newest first: 09:50 (window from 05:50), 06:30 (from 02:30), 04:30 (from 00:30, not
        // yet the period's start), 02:30 (from 22:30 the day before: enough); 01:30 is not read.
        assert_eq!(read, 4);
        let tables = fold.tables();
        let row = &tables[0].rows[0];
        assert_eq!(
            row[2], "10",
            "slots 00:00 to 09:00 closed by 09:50: {row:?}"
        );
        assert_eq!(
            row[4], "0",
            "03:00's late ping counts, as the newer window says: {row:?}"
        );
    }

    fn hourly(grace_minutes: i64) -> JobSpec {
        JobSpec {
            name: "db-backup".into(),
            schedule: JobSchedule::Cron {
                expression: "0 * * * *".into(),
                timezone: "UTC".into(),
            },
            grace_seconds: grace_minutes * 60,
            max_runtime_seconds: Some(30 * 60),
            origin: "job".into(),
            since: None,
        }
    }

    fn beat(kind: PingKind, at: DateTime<Utc>) -> Heartbeat {
        Heartbeat {
            job: "db-backup".into(),
            kind,
            at,
            slot: None,
            message: None,
            source: "cli".into(),
        }
    }

    fn facts(spec: JobSpec, beats: Vec<Heartbeat>, horizon: DateTime<Utc>) -> CronHealthFacts {
        CronHealthFacts {
            window_start: horizon - Duration::days(30),
            horizon,
            jobs: vec![JobFacts {
                first_seen: beats.iter().map(|b| b.slot.unwrap_or(b.at)).min(),
                spec,
                heartbeats: beats,
            }],
            delta: None,
            window: None,
            chain: 0,
            chain_records: 0,
        }
    }

    /// Pings at 00:05, 01:05 and 02:05; none after.
    fn stopped_at_two() -> Vec<Heartbeat> {
        (0..3).map(|h| beat(PingKind::Success, t(h, 5))).collect()
    }

    #[test]
    fn an_hourly_job_whose_pings_stop_at_two_misses_each_hour_exactly_once_after_grace() {
        let missed_at = |as_of: DateTime<Utc>| -> Vec<String> {
            let f = facts(hourly(15), stopped_at_two(), as_of);
            evaluate(&f, AsOf::now(as_of))[0]
                .findings
                .iter()
                .filter(|f| f.code == FindingCode::HeartbeatMissed)
                .map(|f| f.subject.clone())
                .collect()
        };
        // 03:00's grace ends 03:15: nothing before.
        assert!(missed_at(t(3, 14)).is_empty());
        assert_eq!(missed_at(t(3, 15)), ["db-backup@2026-11-22T03:00:00Z"]);
        assert_eq!(
            missed_at(t(5, 20)),
            [
                "db-backup@2026-11-22T03:00:00Z",
                "db-backup@2026-11-22T04:00:00Z",
                "db-backup@2026-11-22T05:00:00Z"
            ]
        );
    }

    #[test]
    fn coverage_matches_a_hand_count() {
        let f = facts(hourly(15), stopped_at_two(), t(5, 20));
        let s = &evaluate(&f, AsOf::now(t(5, 20)))[0];
        // Slots 00:00 … 05:00 are due (05:00 closed at 05:15); 00, 01, 02 succeeded.
        assert_eq!((s.expected, s.succeeded, s.missed, s.failed), (6, 3, 3, 0));
        assert_eq!(s.coverage_text(), "3 of 6 runs, 50.0 %");
    }

    #[test]
    fn duplicate_and_out_of_order_pings_count_once() {
        let mut beats = stopped_at_two();
        beats.push(beat(PingKind::Success, t(1, 6)));
        beats.push(beat(PingKind::Success, t(1, 7)));
        beats.reverse();
        let f = facts(hourly(15), beats, t(2, 30));
        let s = &evaluate(&f, AsOf::now(t(2, 30)))[0];
        assert_eq!((s.expected, s.succeeded), (3, 3));
        assert!(s.findings.is_empty());
    }

    #[test]
    fn a_fail_ping_fails_its_slot_and_a_start_without_end_fails_after_max_runtime() {
        let beats = vec![
            beat(PingKind::Success, t(0, 5)),
            Heartbeat {
                message: Some("pg_dump: connection refused".into()),
                ..beat(PingKind::Fail, t(1, 2))
            },
            beat(PingKind::Start, t(2, 0)),
        ];
        let f = facts(hourly(15), beats.clone(), t(2, 29));
        let findings = &evaluate(&f, AsOf::now(t(2, 29)))[0].findings;
        assert_eq!(findings.len(), 2, "{findings:?}"); // 01:00 failed, 02:00 missed; start not yet overdue
        assert_eq!(findings[0].code, FindingCode::HeartbeatFailed);
        assert_eq!(findings[0].subject, "db-backup@2026-11-22T01:00:00Z");
        assert!(findings[0].message.contains("connection refused"));
        let f = facts(hourly(15), beats, t(2, 30));
        let findings = &evaluate(&f, AsOf::now(t(2, 30)))[0].findings;
        assert!(
            findings
                .iter()
                .any(|f| f.code == FindingCode::HeartbeatFailed
                    && f.subject == "db-backup@2026-11-22T02:00:00Z"
                    && f.message.contains("maximum runtime"))
        );
    }

    #[test]
    fn a_job_that_never_reported_is_missed_not_silently_fine() {
        let f = facts(hourly(15), vec![], t(5, 0));
        let findings = &evaluate(&f, AsOf::now(t(5, 0)))[0].findings;
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "db-backup@never");
    }

    #[test]
    fn slots_follow_daylight_saving_in_the_jobs_time_zone() {
        let daily = JobSpec {
            schedule: JobSchedule::Cron {
                expression: "30 2 * * *".into(),
                timezone: "Europe/Berlin".into(),
            },
            ..hourly(15)
        };
        // Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls back on 2026-10-25.
        let from = Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).unwrap();
        let slots = daily.slots(from, from + Duration::days(4));
        let hours: Vec<String> = slots
            .iter()
            .map(|s| s.format("%m-%d %H:%M").to_string())
            .collect();
        // 02:30 CET = 01:30 UTC; on the 29th 02:30 does not exist: the run is at 03:00 CEST = 01:00 UTC;
        // after that 02:30 CEST = 00:30 UTC.
        assert_eq!(
            hours,
            ["03-27 01:30", "03-28 01:30", "03-29 01:00", "03-30 00:30"]
        );
        let from = Utc.with_ymd_and_hms(2026, 10, 24, 0, 0, 0).unwrap();
        let slots = daily.slots(from, from + Duration::days(3));
        assert_eq!(
            slots.len(),
            3,
            "02:30 on the fall-back day runs once: {slots:?}"
        );
    }

    #[test]
    fn period_jobs_need_one_success_per_period() {
        let spec = JobSpec {
            schedule: JobSchedule::Period { seconds: 86_400 },
            grace_seconds: 3600,
            ..hourly(0)
        };
        let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let beats = vec![
            beat(PingKind::Success, day(20, 3)),
            beat(PingKind::Success, day(21, 23)),
        ];
        let f = facts(spec, beats, day(23, 2));
        let s = &evaluate(&f, AsOf::now(day(23, 2)))[0];
        // Slots: the 20th (window to the 21st 01:00) and the 21st (to the 22nd 01:00) passed;
        // the 22nd's window closes on the 23rd at 01:00 with no ping: missed.
        assert_eq!((s.expected, s.succeeded, s.missed), (3, 2, 1), "{s:?}");
    }

    #[test]
    fn a_heartbeat_naming_its_slot_counts_for_it_whenever_it_arrived() {
        let mut late = beat(PingKind::Success, t(4, 40));
        late.slot = Some(t(3, 0));
        let f = facts(hourly(15), vec![late], t(4, 50));
        let s = &evaluate(&f, AsOf::now(t(4, 50)))[0];
        assert_eq!((s.expected, s.succeeded, s.missed), (2, 1, 1)); // 03:00 ok, 04:00 missed
    }

    #[test]
    fn a_collectors_first_run_expects_no_slot_before_its_own() {
        let spec = JobSpec {
            name: "backups".into(),
            origin: "collector".into(),
            max_runtime_seconds: None,
            ..hourly(60)
        };
        let mut run = beat(PingKind::Success, t(3, 20));
        run.job = "backups".into();
        run.slot = Some(t(3, 0));
        let f = CronHealthFacts {
            window_start: t(0, 0),
            horizon: t(4, 30),
            jobs: vec![JobFacts {
                spec,
                first_seen: Some(t(3, 0)),
                heartbeats: vec![run],
            }],
            delta: None,
            window: None,
            chain: 0,
            chain_records: 0,
        };
        let s = &evaluate(&f, AsOf::now(t(4, 30)))[0];
        // 03:00 ran; 04:00 is still within its hour of grace; 02:00 was before the first run.
        assert_eq!((s.expected, s.succeeded), (1, 1), "{s:?}");
        assert!(s.findings.is_empty());
    }

    fn missed(f: &CronHealthFacts, as_of: AsOf) -> Vec<String> {
        evaluate(f, as_of)[0]
            .findings
            .iter()
            .filter(|f| f.code == FindingCode::HeartbeatMissed)
            .map(|f| f.subject.clone())
            .collect()
    }

    #[test]
    fn no_slot_before_the_first_heartbeat_is_expected_at_any_minute() {
        let at = |h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap();
        let slot = |h: u32| format!("db-backup@2026-11-22T{h:02}:00:00Z");
        // Hourly, 10 minutes of grace: the 03:00 slot's window is [02:59, 03:10].
        for (first, succeeded, expected_missed) in [
            (at(3, 0, 0), 1, vec![slot(4), slot(5)]),
            (at(3, 9, 59), 1, vec![slot(4), slot(5)]),
            (at(3, 10, 0), 1, vec![slot(4), slot(5)]),
            (at(3, 10, 30), 0, vec![slot(4), slot(5)]),
            (at(3, 59, 59), 1, vec![slot(5)]),
        ] {
            let f = facts(hourly(10), vec![beat(PingKind::Success, first)], t(5, 30));
            let s = &evaluate(&f, AsOf::now(t(5, 30)))[0];
            assert_eq!(
                missed(&f, AsOf::now(t(5, 30))),
                expected_missed,
                "first ping {first}"
            );
            assert_eq!(s.succeeded, succeeded, "first ping {first}");
            assert_eq!(
                s.expected,
                succeeded + expected_missed.len(),
                "first ping {first}"
            );
        }
    }

    #[test]
    fn the_first_heartbeat_boundary_holds_for_daily_and_daylight_saving_schedules() {
        let daily = |expression: &str, timezone: &str| JobSpec {
            schedule: JobSchedule::Cron {
                expression: expression.into(),
                timezone: timezone.into(),
            },
            ..hourly(10)
        };
        let utc =
            |d: u32, h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap();
        // Daily at 03:00 UTC: a first ping at 03:10:30 is too late for that day's slot.
        for (first, expected) in [(utc(20, 3, 10, 0), 2), (utc(20, 3, 10, 30), 1)] {
            let f = facts(
                daily("0 3 * * *", "UTC"),
                vec![beat(PingKind::Success, first)],
                utc(21, 4, 0, 0),
            );
            let s = &evaluate(&f, AsOf::now(utc(21, 4, 0, 0)))[0];
            assert_eq!(s.expected, expected, "{first}");
            assert_eq!(
                missed(&f, AsOf::now(utc(21, 4, 0, 0))),
                ["db-backup@2026-03-21T03:00:00Z"],
                "{first}"
            );
        }
        // 02:30 Berlin: on 2026-03-29 (spring forward) the slot is 03:00 CEST = 01:00 UTC.
        let berlin = daily("30 2 * * *", "Europe/Berlin");
        for (first, expected) in [
            (utc(29, 1, 10, 0), 2),  // counts for the 29th's slot
            (utc(29, 1, 10, 30), 1), // too late for it: the 30th's slot is the first
        ] {
            let f = facts(
                berlin.clone(),
                vec![beat(PingKind::Success, first)],
                utc(30, 1, 0, 0),
            );
            let s = &evaluate(&f, AsOf::now(utc(30, 1, 0, 0)))[0];
            assert_eq!(s.expected, expected, "{first}");
            assert_eq!(
                missed(&f, AsOf::now(utc(30, 1, 0, 0))),
                ["db-backup@2026-03-30T00:30:00Z"],
                "{first}"
            );
        }
    }

    #[test]
    fn looking_ahead_every_silent_slot_whose_grace_passed_is_missed_once() {
        let f = facts(hourly(15), stopped_at_two(), t(3, 0));
        let ahead = AsOf {
            at: t(9, 0),
            now: t(3, 0),
        };
        let expected: Vec<String> = (3..=8)
            .map(|h| format!("db-backup@2026-11-22T{h:02}:00:00Z"))
            .collect();
        assert_eq!(missed(&f, ahead), expected);
        let findings = &evaluate(&f, ahead)[0].findings;
        assert!(findings.iter().all(|f| f.message.contains("looking ahead")));
        // 09:00's grace runs to 09:15: not yet missed at 09:14, missed at 09:15.
        assert_eq!(
            missed(
                &f,
                AsOf {
                    at: t(9, 14),
                    now: t(3, 0)
                }
            )
            .len(),
            6
        );
        assert_eq!(
            missed(
                &f,
                AsOf {
                    at: t(9, 15),
                    now: t(3, 0)
                }
            )
            .len(),
            7
        );
    }

    #[test]
    fn the_horizon_caps_what_is_judged() {
        let f = facts(hourly(15), stopped_at_two(), t(3, 0));
        // Asked about a later moment, only what was known at collection time is judged.
        assert!(evaluate(&f, AsOf::now(t(9, 0)))[0].findings.is_empty());
    }

    /// A window sliding over hourly pings, stored as deltas: each joined back is the window as
    /// read; a delta that lost a heartbeat does not join; a whole window comes once the changes
    /// add up to one, or after MAX_CHAIN deltas.
    #[test]
    fn deltas_join_back_to_the_window_they_were_taken_from() {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let window = |n: i64| {
            let horizon = start + Duration::hours(n);
            let beats: Vec<Heartbeat> = (0..=n)
                .map(|h| beat(PingKind::Success, start + Duration::hours(h)))
                .filter(|b| b.at >= horizon - Duration::hours(24))
                .collect();
            CronHealthFacts {
                window_start: horizon - Duration::hours(24),
                ..facts(hourly(15), beats, horizon)
            }
        };
        // The chain since the last whole snapshot, as stored, oldest first.
        let mut chain: Vec<CronHealthFacts> = Vec::new();
        let mut previous: Option<(CronHealthFacts, FactsRef)> = None;
        let mut wholes = Vec::new();
        for n in 0..80 {
            let whole = window(n);
            let stored =
                CronHealthFacts::stored_form(whole.clone(), previous.as_ref().map(|(f, r)| (f, r)));
            match &stored.delta {
                None => {
                    wholes.push(n);
                    chain = vec![stored.clone()];
                }
                Some(d) => {
                    assert_eq!(d.previous.run_id, format!("run-{}", n - 1));
                    // One heartbeat entered; one left once the window is full.
                    assert_eq!(stored.jobs[0].heartbeats.len(), 1);
                    assert_eq!(d.removed.len(), usize::from(n > 24));
                    let mut lost = chain.clone();
                    let mut broken = stored.clone();
                    broken.jobs[0].heartbeats.clear();
                    lost.push(broken);
                    let err = CronHealthFacts::joined(lost).unwrap_err();
                    assert!(
                        err.contains("are not the window this snapshot read"),
                        "{err}"
                    );
                    chain.push(stored.clone());
                }
            }
            let complete = CronHealthFacts::joined(chain.clone()).unwrap();
            assert_eq!(complete.jobs, whole.jobs, "snapshot {n}");
            assert_eq!(complete.delta, None);
            let at = FactsRef {
                run_id: format!("run-{n}"),
                sha256: "ab".repeat(32),
            };
            previous = Some((complete, at));
        }
        // The window holds 25 records; deltas store 1 (then 2) each: a whole one every ~13.
        assert_eq!(wholes[..3], [0, 25, 38], "{wholes:?}");

        // After MAX_CHAIN deltas, a whole window whatever the changes.
        let (mut earlier, at) = previous.unwrap();
        earlier.chain = MAX_CHAIN;
        earlier.chain_records = 0;
        let whole = window(80);
        let next = CronHealthFacts::stored_form(whole.clone(), Some((&earlier, &at)));
        assert!(next.delta.is_none());
        assert_eq!(next.jobs, whole.jobs);
    }
}
