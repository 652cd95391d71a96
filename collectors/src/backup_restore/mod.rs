//! `backup-restore`: backup freshness, and real restore drills, for A.8.13 and A.5.30.
//!
//! Every collection lists the backups (a local folder or an S3 prefix, filtered by a file-name
//! pattern) with name, size, modified time and SHA-256 (from a `.sha256` sidecar, else computed
//! once). When a drill is due (its `every` period passed, or `annexa collect` asks), the newest
//! backup is restored into a scratch target that annexa creates and removes:
//!
//! - PostgreSQL custom dumps (`pg_restore`) and plain dumps (`psql`) into a fresh database
//!   named `annexa_drill_<uuid>`, marked with a comment and dropped afterwards;
//! - SQLite files: a copy, `PRAGMA integrity_check`;
//! - `.tar`, `.tar.gz`/`.tgz`, `.zst`/`.tar.zst`: extracted into a scratch folder, every file
//!   listed and hashed.
//!
//! Then the verification queries run with their expectations. The drill report (restore time,
//! backup age, tool versions, every query and result, the log) is stored as evidence. annexa
//! never drops a database it did not create: it drops only names with its prefix that carry its
//! mark, and on start it removes such leftovers of a drill that was killed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, Finding, FindingCode, Level,
    Snapshot, Source,
};

mod drill;
use drill::{judge, parse_expect};
mod listing;
#[cfg(feature = "s3")]
mod s3;
#[cfg(not(feature = "s3"))]
#[path = "s3_unavailable.rs"]
mod s3;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Location {
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "yes")]
    pub path_style: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    pub sql: String,
    /// A comparison with a number: `>= 1`, `= 42`, `< 10`.
    pub expect: Option<String>,
    /// The result is a time that must be within this of the drill (the RPO), e.g. `26h`.
    pub within: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Drill when the last successful drill is older than this (e.g. `30d`).
    #[serde(default = "default_every")]
    pub every: String,
    /// `restore-drill-overdue` when no drill succeeded within this.
    #[serde(default = "default_required")]
    pub required_within: String,
    /// The environment variable holding an admin URL of the PostgreSQL server scratch databases
    /// are created on (PostgreSQL dumps only).
    pub postgres_url_env: Option<String>,
    #[serde(default)]
    pub queries: Vec<VerifyQuery>,
}

fn default_every() -> String {
    "30d".into()
}
fn default_required() -> String {
    "35d".into()
}

/// Configuration of one `backup-restore` collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRestoreConfig {
    /// A local folder of backups…
    pub path: Option<PathBuf>,
    /// …or an S3 prefix (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    pub s3: Option<S3Location>,
    /// File names taken, with `*` and `?` (default `*`). `.sha256` sidecars are never backups.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// The newest backup may be this old (plus `grace`), e.g. `1h` for hourly dumps. (Not
    /// `max_age`: that common key is how old this collector's evidence may be.)
    pub max_backup_age: String,
    #[serde(default = "default_grace")]
    pub grace: String,
    /// `backup-size-anomaly` when the newest is smaller than this fraction of the median of the
    /// previous `size_window` backups.
    #[serde(default = "default_fraction")]
    pub size_anomaly_fraction: f64,
    #[serde(default = "default_window")]
    pub size_window: usize,
    pub drill: Option<DrillConfig>,
}

fn default_pattern() -> String {
    "*".into()
}
fn default_grace() -> String {
    "15m".into()
}
fn default_fraction() -> f64 {
    0.5
}
fn default_window() -> usize {
    10
}

pub(super) fn seconds(text: &str) -> Result<i64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs() as i64)
        .map_err(|e| format!("`{text}`: {e}"))
}

impl BackupRestoreConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match (&self.path, &self.s3) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => p.push("set exactly one of `path` (a folder) and `s3` (a bucket prefix)".into()),
        }
        if self.s3.is_some() && !cfg!(feature = "s3") {
            p.push("`s3`: backups in S3 are not available in this build: rebuild annexa with `--features s3`".into());
        }
        for (k, v) in [
            ("max_backup_age", &self.max_backup_age),
            ("grace", &self.grace),
        ] {
            if let Err(e) = seconds(v) {
                p.push(format!("{k}: {e}"));
            }
        }
        if !(0.0..=1.0).contains(&self.size_anomaly_fraction) {
            p.push("size_anomaly_fraction must be between 0 and 1".into());
        }
        if let Some(d) = &self.drill {
            for (k, v) in [
                ("drill.every", &d.every),
                ("drill.required_within", &d.required_within),
            ] {
                if let Err(e) = seconds(v) {
                    p.push(format!("{k}: {e}"));
                }
            }
            for q in &d.queries {
                if let Some(e) = &q.expect
                    && parse_expect(e).is_none()
                {
                    p.push(format!(
                        "drill.queries: expect `{e}` must be a comparison such as `>= 1`"
                    ));
                }
                if let Some(w) = &q.within
                    && let Err(e) = seconds(w)
                {
                    p.push(format!("drill.queries: within {e}"));
                }
            }
        }
        p
    }
}

/// One backup as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub name: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub sha256: Option<String>,
    /// `sidecar` or `computed`.
    pub sha256_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResult {
    pub sql: String,
    pub value: Option<String>,
    pub expectation: String,
    pub passed: bool,
}

impl QueryResult {
    fn judged(q: &VerifyQuery, value: Option<String>, now: DateTime<Utc>) -> QueryResult {
        let (expectation, passed) = judge(q, value.as_deref(), now);
        QueryResult {
            sql: q.sql.clone(),
            value,
            expectation,
            passed,
        }
    }
}

/// What one restore drill did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    pub backup: String,
    pub backup_sha256: Option<String>,
    pub format: String,
    pub started_at: DateTime<Utc>,
    /// The restore time (RTO), in seconds.
    pub duration_seconds: i64,
    /// The backup's age at the drill (RPO), in seconds.
    pub backup_age_seconds: i64,
    pub restored: bool,
    pub error: Option<String>,
    pub queries: Vec<QueryResult>,
    pub tools: Vec<String>,
    /// What the restore printed, without credentials.
    pub log: Vec<String>,
    pub scratch: String,
}

impl DrillReport {
    fn succeeded(&self) -> bool {
        self.restored && self.queries.iter().all(|q| q.passed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupFacts {
    pub location: String,
    pub pattern: String,
    /// Newest first.
    pub backups: Vec<BackupFile>,
    pub max_age_seconds: i64,
    pub grace_seconds: i64,
    pub size_anomaly_fraction: f64,
    pub size_window: usize,
    /// The drill of this collection, if one was due.
    pub drill: Option<DrillReport>,
    pub last_successful_drill_at: Option<DateTime<Utc>>,
    /// Set when drills are configured.
    pub drill_required_within_seconds: Option<i64>,
    pub collected_at: DateTime<Utc>,
}

pub struct BackupRestore {
    config: BackupRestoreConfig,
}

impl BackupRestore {
    pub fn new(config: BackupRestoreConfig) -> Self {
        BackupRestore { config }
    }

    /// Where the backups are, as facts, findings and reports name it.
    fn location(&self, ctx: &CollectContext) -> String {
        match (&self.config.path, &self.config.s3) {
            (Some(p), _) => ctx.shown(p),
            (_, Some(s)) => s3_location(s),
            _ => String::new(),
        }
    }
}

fn s3_location(s: &S3Location) -> String {
    format!("s3://{}/{}", s.bucket, s.prefix)
}

/// `*` and `?` glob on a file name.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &name.chars().collect::<Vec<_>>(),
    )
}

fn unavailable(what: impl Into<String>, reason: impl Into<String>) -> CollectError {
    CollectError::SourceUnavailable {
        what: what.into(),
        reason: reason.into(),
    }
}

#[async_trait::async_trait]
impl Collector for BackupRestore {
    fn kind(&self) -> &'static str {
        "backup-restore"
    }

    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
        let now = ctx.now();
        let previous: Option<BackupFacts> = ctx
            .previous_facts
            .clone()
            .and_then(|f| serde_json::from_value(f).ok());
        let backups = self
            .list(previous.as_ref().map_or(&[][..], |p| &p.backups[..]))
            .await?;
        let mut last_successful = previous.as_ref().and_then(|p| p.last_successful_drill_at);
        let mut drill = None;
        if let (Some(d), Some(newest)) = (&self.config.drill, backups.first()) {
            let every = Duration::seconds(seconds(&d.every).unwrap_or(30 * 86_400));
            let due = ctx.on_demand || last_successful.is_none_or(|t| now - t >= every);
            if due && ctx.rehearsal {
                drill::ready(d).map_err(|reason| CollectError::SourceUnavailable {
                    what: "restore drill".into(),
                    reason,
                })?;
            } else if due {
                let report = self.drill(d, newest, ctx).await;
                if report.succeeded() {
                    last_successful = Some(report.started_at);
                }
                drill = Some(report);
            }
        }
        let facts = BackupFacts {
            location: self.location(ctx),
            pattern: self.config.pattern.clone(),
            max_age_seconds: seconds(&self.config.max_backup_age).unwrap_or(0),
            grace_seconds: seconds(&self.config.grace).unwrap_or(0),
            size_anomaly_fraction: self.config.size_anomaly_fraction,
            size_window: self.config.size_window,
            drill_required_within_seconds: self
                .config
                .drill
                .as_ref()
                .and_then(|d| seconds(&d.required_within).ok()),
            backups,
            drill,
            last_successful_drill_at: last_successful,
            collected_at: now,
        };
        ctx.emit(EvidenceItem {
            name: "backups.json".into(),
            media_type: "application/json".into(),
            body: Body::Bytes(serde_json::to_vec_pretty(&facts.backups).expect("serializes")),
            observed_at: now,
            effective_at: None,
            source: Source {
                query: facts.location.clone(),
                filters: vec![format!("name matches {}", facts.pattern)],
                total: Some(facts.backups.len() as u64),
            },
        })
        .await?;
        if let Some(report) = &facts.drill {
            ctx.emit(EvidenceItem {
                name: "restore-drill.json".into(),
                media_type: "application/json".into(),
                body: Body::Bytes(serde_json::to_vec_pretty(report).expect("serializes")),
                observed_at: now,
                effective_at: None,
                source: Source {
                    query: format!("restore drill of {}", report.backup),
                    ..Source::default()
                },
            })
            .await?;
        }
        Ok(Snapshot::of(
            serde_json::to_value(facts).expect("facts serialize"),
        ))
    }

    fn reads_previous(&self) -> bool {
        true
    }

    fn provides(&self) -> Vec<&'static str> {
        let mut kinds = vec![self.kind()];
        if self.config.drill.is_some() {
            kinds.push("restore-drill");
        }
        kinds
    }

    fn check(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<Finding> {
        crate::check_stored::<BackupFacts>("backup", facts, |f| check(f, as_of.at))
    }

    fn upcoming(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<crate::Due> {
        crate::read_stored::<BackupFacts, _>(facts, |f| upcoming(f, as_of.at))
    }

    fn figures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Box<dyn crate::FigureFold> {
        Box::new(BackupFold {
            from,
            to,
            backups: BTreeMap::new(),
            drills: BTreeMap::new(),
            newest: None,
            seen: None,
        })
    }
}

/// Every restore drill run in the period, and the backups made in it (how many, the longest
/// interval between two, their sizes), each as the newest snapshot that shows it.
struct BackupFold {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// By modification time and name; the newest one before the period too, for the first
    /// interval.
    backups: BTreeMap<(DateTime<Utc>, String), u64>,
    drills: BTreeMap<(DateTime<Utc>, String), (DrillReport, crate::Seen)>,
    /// The location and the last successful drill, as the newest snapshot says.
    newest: Option<(String, Option<DateTime<Utc>>)>,
    /// Every snapshot added: each lists the backups of its time.
    seen: Option<crate::Seen>,
}

impl crate::FigureFold for BackupFold {
    fn add(&mut self, at: &crate::SnapshotRef, facts: &serde_json::Value) {
        let Some(f) = crate::parse_stored::<BackupFacts>(facts) else {
            return;
        };
        for b in f.backups.iter().filter(|b| b.modified < self.to) {
            self.backups.insert((b.modified, b.name.clone()), b.size);
        }
        // Of the backups before the period, only the newest bears on its first interval.
        let before: Vec<_> = self
            .backups
            .keys()
            .take_while(|(modified, _)| *modified <= self.from)
            .cloned()
            .collect();
        for key in before.iter().rev().skip(1) {
            self.backups.remove(key);
        }
        if let Some(d) = f
            .drill
            .filter(|d| d.started_at >= self.from && d.started_at < self.to)
        {
            let key = (d.started_at, d.backup.clone());
            crate::Seen::record(&mut self.drills, key, d, at);
        }
        self.newest = Some((f.location, f.last_successful_drill_at));
        match &mut self.seen {
            Some(seen) => seen.again(at),
            None => self.seen = Some(crate::Seen::new(at)),
        }
    }

    fn members(&self) -> Vec<crate::Member> {
        self.drills
            .iter()
            .map(|((started, backup), (d, seen))| crate::Member {
                population: "drills",
                id: format!("{} {backup}", started.format("%Y-%m-%dT%H:%M:%SZ")),
                at: *started,
                summary: format!(
                    "restore drill of {backup}: {}",
                    if d.restored && d.error.is_none() {
                        "succeeded".to_string()
                    } else {
                        format!("failed ({})", d.error.as_deref().unwrap_or("not restored"))
                    }
                ),
                snapshot: seen.newest.clone(),
            })
            .collect()
    }

    fn tables(self: Box<Self>) -> Vec<crate::FigureTable> {
        let (Some((location, last_successful)), Some(seen)) = (self.newest, self.seen) else {
            return Vec::new();
        };
        let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let in_period: Vec<_> = self
            .backups
            .iter()
            .filter(|((modified, _), _)| *modified >= self.from)
            .collect();
        let mut backups = crate::FigureTable::new(
            &format!("Backups made in the period in {location}"),
            &[
                "Backups",
                "First",
                "Newest",
                "Longest interval",
                "Sizes (bytes)",
                "Evidence",
            ],
        );
        if let (Some(((first, first_name), _)), Some(((last, last_name), _))) =
            (in_period.first(), in_period.last())
        {
            // From the newest backup before the period (or its start) to each next one, and
            // from the newest to the newest snapshot.
            let mut times: Vec<DateTime<Utc>> = self.backups.keys().map(|(t, _)| *t).collect();
            if times[0] > self.from {
                times.insert(0, self.from);
            }
            times.push(seen.newest.collected_at.min(self.to).max(*last));
            let longest = times
                .windows(2)
                .map(|w| (w[1] - w[0], w[0]))
                .max()
                .map(|(gap, after)| {
                    format!(
                        "{} (after {})",
                        crate::human_duration(gap.num_seconds()),
                        time(after)
                    )
                })
                .unwrap_or_else(|| "–".into());
            let sizes = in_period.iter().map(|(_, size)| **size);
            let (min, max) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
            backups = backups.row([
                in_period.len().to_string(),
                format!("{first_name}, {}", time(*first)),
                format!("{last_name}, {}", time(*last)),
                longest,
                if min == max {
                    min.to_string()
                } else {
                    format!("{min} to {max}")
                },
                seen.text(),
            ]);
        }
        let mut drills = crate::FigureTable::new(
            &match last_successful {
                Some(t) => format!(
                    "Restore drills in the period (last successful: {})",
                    time(t)
                ),
                None => "Restore drills in the period (none has succeeded yet)".into(),
            },
            &[
                "Started",
                "Backup",
                "Result",
                "Restore time (RTO)",
                "Backup age (RPO)",
                "Checks passed",
                "Evidence",
            ],
        );
        for (d, seen) in self.drills.into_values() {
            let passed = d.queries.iter().filter(|q| q.passed).count();
            let result = if !d.restored {
                format!("failed: {}", d.error.as_deref().unwrap_or("not restored"))
            } else if d.succeeded() {
                "succeeded".into()
            } else {
                format!(
                    "failed: {} of {} checks failed",
                    d.queries.len() - passed,
                    d.queries.len()
                )
            };
            drills = drills.row([
                time(d.started_at),
                d.backup.clone(),
                result,
                crate::human_duration(d.duration_seconds),
                crate::human_duration(d.backup_age_seconds),
                format!("{passed} of {}", d.queries.len()),
                seen.text(),
            ]);
        }
        vec![backups, drills]
    }
}

/// The newest backup's end of life and the next drill's due date, while not passed. Pure.
pub fn upcoming(f: &BackupFacts, as_of: DateTime<Utc>) -> Vec<crate::Due> {
    let mut due = Vec::new();
    if let Some(newest) = f.backups.first() {
        let at = newest.modified + Duration::seconds(f.max_age_seconds + f.grace_seconds);
        if at > as_of {
            due.push(crate::Due {
                code: FindingCode::BackupStale,
                subject: newest.name.clone(),
                due: at,
                what: format!(
                    "a backup newer than {} (from {})",
                    newest.name,
                    newest.modified.format("%Y-%m-%d %H:%M UTC")
                ),
                controls: Vec::new(),
            });
        }
    }
    if let (Some(required), Some(last)) =
        (f.drill_required_within_seconds, f.last_successful_drill_at)
    {
        let at = last + Duration::seconds(required);
        if at > as_of {
            due.push(crate::Due {
                code: FindingCode::RestoreDrillOverdue,
                subject: f.location.clone(),
                due: at,
                what: format!(
                    "the next restore drill (the last successful one was {})",
                    last.format("%Y-%m-%d")
                ),
                controls: Vec::new(),
            });
        }
    }
    due
}

/// The judgement: pure over the facts and `as_of`.
pub fn check(f: &BackupFacts, as_of: DateTime<Utc>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(newest) = f.backups.first() else {
        findings.push(Finding::new(
            FindingCode::BackupMissing,
            f.location.clone(),
            format!("no backup matching `{}` in {}", f.pattern, f.location),
        ));
        return findings;
    };
    let limit = Duration::seconds(f.max_age_seconds + f.grace_seconds);
    if as_of - newest.modified > limit {
        findings.push(Finding::new(
            FindingCode::BackupStale,
            newest.name.clone(),
            format!(
                "the newest backup {} is from {}; backups may be {} old (plus {} grace)",
                newest.name,
                newest.modified.format("%Y-%m-%d %H:%M UTC"),
                crate::human_duration(f.max_age_seconds),
                crate::human_duration(f.grace_seconds)
            ),
        ));
    }
    let mut previous: Vec<u64> = f
        .backups
        .iter()
        .skip(1)
        .take(f.size_window)
        .map(|b| b.size)
        .collect();
    if !previous.is_empty() {
        previous.sort_unstable();
        let median = previous[previous.len() / 2] as f64;
        if (newest.size as f64) < f.size_anomaly_fraction * median {
            findings.push(
                Finding::new(
                    FindingCode::BackupSizeAnomaly,
                    newest.name.clone(),
                    format!("the newest backup {} is {} bytes, under {:.0} % of the median {} bytes of the previous {}", newest.name, newest.size, f.size_anomaly_fraction * 100.0, median, previous.len()),
                )
                .with_level(Level::Warn),
            );
        }
    }
    if let Some(d) = &f.drill {
        if !d.restored || d.error.is_some() {
            findings.push(Finding::new(
                FindingCode::RestoreFailed,
                d.backup.clone(),
                format!(
                    "the restore drill of {} failed: {}",
                    d.backup,
                    d.error.as_deref().unwrap_or("no reason recorded")
                ),
            ));
        }
        if d.restored {
            for q in d.queries.iter().filter(|q| !q.passed) {
                findings.push(Finding::new(
                    FindingCode::RestoreVerificationFailed,
                    format!("{}: {}", d.backup, q.sql),
                    format!(
                        "after restoring {}, `{}` gave {} where {} was expected",
                        d.backup,
                        q.sql,
                        q.value.as_deref().unwrap_or("no value"),
                        q.expectation
                    ),
                ));
            }
        }
    }
    if let Some(required) = f.drill_required_within_seconds {
        let overdue = f
            .last_successful_drill_at
            .is_none_or(|t| as_of - t > Duration::seconds(required));
        if overdue {
            findings.push(Finding::new(
                FindingCode::RestoreDrillOverdue,
                f.location.clone(),
                match f.last_successful_drill_at {
                    Some(t) => format!(
                        "the last successful restore drill was {}; one is required every {} days",
                        t.format("%Y-%m-%d"),
                        required / 86_400
                    ),
                    None => format!("no restore drill of {} has succeeded yet", f.location),
                },
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots of a week: each lists the backups of its time, one a drill. The fold counts
    /// each backup once, measures the longest interval (across the period's start too) and
    /// keeps the drill once however many snapshots show it.
    #[test]
    fn the_period_s_backups_and_drills_are_folded_from_every_snapshot() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let backup = |day: u32| BackupFile {
            name: format!("app-{day:02}.dump"),
            size: 100 + u64::from(day),
            // Day 31: of October, before the period.
            modified: t(&format!(
                "2026-{}-{day:02}T02:00:00Z",
                if day == 31 { 10 } else { 11 }
            )),
            sha256: None,
            sha256_source: None,
        };
        let drill = DrillReport {
            backup: "app-03.dump".into(),
            backup_sha256: None,
            format: "sqlite".into(),
            started_at: t("2026-11-03T04:00:00Z"),
            duration_seconds: 12,
            backup_age_seconds: 7200,
            restored: true,
            error: None,
            queries: Vec::new(),
            tools: Vec::new(),
            log: Vec::new(),
            scratch: String::new(),
        };
        let facts = |days: &[u32], drill: Option<DrillReport>, at: &str| BackupFacts {
            location: "backups".into(),
            pattern: "*.dump".into(),
            backups: days.iter().rev().map(|d| backup(*d)).collect(),
            max_age_seconds: 86_400,
            grace_seconds: 0,
            size_anomaly_fraction: 0.5,
            size_window: 7,
            drill,
            last_successful_drill_at: Some(t("2026-11-03T04:00:00Z")),
            drill_required_within_seconds: Some(30 * 86_400),
            collected_at: t(at),
        };
        let (from, to) = (t("2026-11-01T00:00:00Z"), t("2026-11-08T00:00:00Z"));
        let config = serde_json::json!({"path": "backups", "max_backup_age": "25h"});
        let mut fold =
            BackupRestore::new(serde_json::from_value(config).unwrap()).figures(from, to);
        // The snapshot before the period knows the backup of 31 October.
        let snapshots = [
            (vec![31], None, "2026-10-31T23:00:00Z"),
            (vec![1, 2, 3], Some(drill.clone()), "2026-11-03T05:00:00Z"),
            (vec![1, 2, 3], Some(drill), "2026-11-03T06:00:00Z"),
            (vec![1, 2, 3, 7], None, "2026-11-07T05:00:00Z"),
        ];
        for (i, (days, drill, at)) in snapshots.into_iter().enumerate() {
            let f = facts(&days, drill, at);
            let at = crate::SnapshotRef {
                run_id: format!("r{i}"),
                collected_at: t(at),
            };
            fold.add(&at, &serde_json::to_value(f).unwrap());
        }
        let tables = fold.tables();
        let backups = &tables[0].rows;
        assert_eq!(backups.len(), 1);
        assert_eq!(
            backups[0][0], "4",
            "four backups in the period: {backups:?}"
        );
        assert_eq!(backups[0][3], "4 d (after 2026-11-03 02:00 UTC)");
        assert_eq!(backups[0][4], "101 to 107");
        assert!(
            backups[0][5].starts_with(
                "4 snapshots, 2026-10-31 23:00 to 2026-11-07 05:00 UTC; newest run r3"
            )
        );
        let drills = &tables[1].rows;
        assert_eq!(
            drills.len(),
            1,
            "one drill, shown by two snapshots: {drills:?}"
        );
        assert_eq!(drills[0][2], "succeeded");
        assert_eq!(drills[0][3], "12 s");
        assert!(drills[0][6].starts_with("2 snapshots"), "{}", drills[0][6]);
    }

    /// The newest backup's end of life and the next drill fall due exactly when `check` starts
    /// to report them; past that moment they are findings, not due dates.
    #[test]
    fn due_dates_are_the_moments_the_check_starts_to_fail() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let f = BackupFacts {
            location: "backups".into(),
            pattern: "*.dump".into(),
            backups: vec![BackupFile {
                name: "app-1122.dump".into(),
                size: 10,
                modified: t("2026-11-22T03:00:00Z"),
                sha256: None,
                sha256_source: None,
            }],
            max_age_seconds: 26 * 3600,
            grace_seconds: 3600,
            size_anomaly_fraction: 0.5,
            size_window: 7,
            drill: None,
            last_successful_drill_at: Some(t("2026-11-01T04:00:00Z")),
            drill_required_within_seconds: Some(30 * 86_400),
            collected_at: t("2026-11-22T04:00:00Z"),
        };
        let due = upcoming(&f, t("2026-11-22T12:00:00Z"));
        let got: Vec<(FindingCode, &str, DateTime<Utc>)> = due
            .iter()
            .map(|d| (d.code, d.subject.as_str(), d.due))
            .collect();
        assert_eq!(
            got,
            [
                (
                    FindingCode::BackupStale,
                    "app-1122.dump",
                    t("2026-11-23T06:00:00Z")
                ),
                (
                    FindingCode::RestoreDrillOverdue,
                    "backups",
                    t("2026-12-01T04:00:00Z")
                ),
            ]
        );
        for d in &due {
            let codes = |at| {
                check(&f, at)
                    .into_iter()
                    .map(|x| x.code)
                    .collect::<Vec<_>>()
            };
            assert!(
                !codes(d.due).contains(&d.code),
                "{:?} not yet at {}",
                d.code,
                d.due
            );
            let after = d.due + Duration::seconds(1);
            assert!(
                codes(after).contains(&d.code),
                "{:?} after {}",
                d.code,
                d.due
            );
            assert!(upcoming(&f, after).iter().all(|u| u.code != d.code));
        }
    }

    #[test]
    fn globs_match_backup_names() {
        assert!(glob("app-*.dump", "app-2026-11-22T0300.dump"));
        assert!(!glob("app-*.dump", "app-2026.sql"));
        assert!(glob("*", "x"));
        assert!(glob("db-??.sqlite", "db-01.sqlite"));
    }

    #[test]
    fn expectations_compare_numbers_and_times() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let q = |expect: Option<&str>, within: Option<&str>| VerifyQuery {
            sql: "x".into(),
            expect: expect.map(String::from),
            within: within.map(String::from),
        };
        assert!(judge(&q(Some(">= 1"), None), Some("3"), now).1);
        assert!(!judge(&q(Some(">= 10"), None), Some("3"), now).1);
        assert!(judge(&q(Some("= 3"), None), Some("3"), now).1);
        assert!(
            !judge(&q(Some(">= 1"), None), None, now).1,
            "no value never passes"
        );
        assert!(judge(&q(None, Some("26h")), Some("2026-11-22 01:00:00+00"), now).1);
        assert!(!judge(&q(None, Some("1h")), Some("2026-11-22T01:00:00Z"), now).1);
    }
}
