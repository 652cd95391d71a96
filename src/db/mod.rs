//! The database: SQLite (embedded default) or PostgreSQL, one schema, one set of queries.
//!
//! Queries go through sqlx's `Any` driver and are checked at run time; they use `$n`
//! placeholders and portable SQL only, so the same text runs on both engines. Where the engines
//! differ (how to serialize ledger appends) the [`Engine`] decides. Migrations for each engine
//! live in `migrations/<engine>/` with the same version numbers, embedded and run on connect.

use std::time::Duration;

use annexa_collectors::cron_health::{Heartbeat, PingKind};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
// Dynamic SQL here is only ever built from the column-list constants below, never from input.
use sqlx::{AnyPool, AssertSqlSafe, Connection, Row};

use crate::base::{Secret, closed_set, redact};

mod alerts;
mod worker;

pub use alerts::{AlertRow, EvaluationWrite, GapRow, NewAlert, SinkCounts};
pub use worker::{FailedSlot, HeldBy, Lease, RunCount};

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error(
        "database {location} is unreachable: {reason}; check that it is running and that the URL (ANNEXA_DATABASE__URL) is right"
    )]
    Unreachable { location: String, reason: String },
    #[error("database migration failed on {location}: {reason}")]
    Migration { location: String, reason: String },
    /// The message shows the cause, so it is not also the error's source (printed once).
    #[error(
        "database query failed: {0}; check that the database ([database] url, or ANNEXA_DATABASE__URL) is running and reachable, then run again"
    )]
    Query(sqlx::Error),
    #[error("database holds an unreadable value in {what}: {value}")]
    Corrupt { what: String, value: String },
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Query(e)
    }
}

/// A timestamp as the database stores it.
pub fn ts(t: DateTime<Utc>) -> String {
    // Times compare as text: beyond year 9999 RFC 3339 would print `+262143-…`, which sorts
    // before every real time. The end of year 9999 stands for "no bound".
    if t.year() > 9999 {
        return "9999-12-31T23:59:59.999999Z".to_string();
    }
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored timestamp.
pub fn parse_ts(what: &str, s: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| DbError::Corrupt {
            what: what.to_string(),
            value: s.to_string(),
        })
}

closed_set! {
    /// Where a run is: `running` until it is recorded (or swept), then one of the others.
    pub enum RunStatus {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Its worker died or was cut by the drain deadline; its slot is free again.
        Cancelled = "cancelled",
    }
}

closed_set! {
    /// What an evidence object is to its run.
    pub enum Role {
        /// Raw bytes as the source gave them.
        Item = "item",
        /// The run's normalized facts, which checks judge.
        Facts = "facts",
    }
}

closed_set! {
    /// A signing key's state.
    pub enum KeyState {
        /// Signs.
        Active = "active",
        /// Replaced by rotation; its signatures stay valid.
        Retired = "retired",
        /// Compromised: it never signs again.
        Revoked = "revoked",
    }
}

closed_set! {
    /// What a ledger leaf stands for.
    pub enum LeafKind {
        Run = "run",
        AuditEvent = "audit_event",
    }
}

/// A closed-set column: an unknown string is a corrupt row.
fn closed<T: std::str::FromStr>(row: &AnyRow, column: &str, table: &str) -> Result<T, DbError> {
    let value: String = row.try_get(column)?;
    value.parse().map_err(|_| DbError::Corrupt {
        what: format!("{table}.{column}"),
        value,
    })
}

/// One run row.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub collector: String,
    pub kind: String,
    pub collector_version: String,
    pub slot: Option<String>,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub manifest_key: Option<String>,
    pub manifest_sha256: Option<String>,
    pub ledger_index: Option<i64>,
    /// The process running it (`base::holder`); None for runs recorded before it was kept.
    pub holder: Option<String>,
}

const RUN_COLUMNS: &str = "id, collector, kind, collector_version, slot, status, started_at, \
     finished_at, error_code, error, manifest_key, manifest_sha256, ledger_index, holder";

impl RunRow {
    /// A run of `collector` starting now in this process, for [`Db::start_run`].
    pub fn running(
        collector: &str,
        kind: &str,
        version: &str,
        slot: Option<DateTime<Utc>>,
        started_at: DateTime<Utc>,
    ) -> RunRow {
        RunRow {
            id: uuid::Uuid::now_v7().to_string(),
            collector: collector.to_string(),
            kind: kind.to_string(),
            collector_version: version.to_string(),
            slot: slot.map(ts),
            status: RunStatus::Running,
            started_at,
            finished_at: None,
            error_code: None,
            error: None,
            manifest_key: None,
            manifest_sha256: None,
            ledger_index: None,
            holder: Some(crate::base::holder::this_process().to_string()),
        }
    }

    /// The scheduled slot this run filled, as a time.
    pub fn slot_time(&self) -> Option<DateTime<Utc>> {
        self.slot
            .as_deref()
            .and_then(|s| parse_ts("runs.slot", s).ok())
    }

    fn from_row(row: &AnyRow) -> Result<RunRow, DbError> {
        let finished: Option<String> = row.try_get("finished_at")?;
        Ok(RunRow {
            id: row.try_get("id")?,
            collector: row.try_get("collector")?,
            kind: row.try_get("kind")?,
            collector_version: row.try_get("collector_version")?,
            slot: row.try_get("slot")?,
            status: closed(row, "status", "runs")?,
            started_at: parse_ts("runs.started_at", &row.try_get::<String, _>("started_at")?)?,
            finished_at: finished
                .map(|f| parse_ts("runs.finished_at", &f))
                .transpose()?,
            error_code: row.try_get("error_code")?,
            error: row.try_get("error")?,
            manifest_key: row.try_get("manifest_key")?,
            manifest_sha256: row.try_get("manifest_sha256")?,
            ledger_index: row.try_get("ledger_index")?,
            holder: row.try_get("holder")?,
        })
    }
}

/// One evidence row: an object a run stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRow {
    pub run_id: String,
    pub collector: String,
    pub name: String,
    pub role: Role,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub object_key: String,
    pub observed_at: DateTime<Utc>,
    pub effective_at: Option<DateTime<Utc>>,
    pub collected_at: DateTime<Utc>,
}

const EVIDENCE_COLUMNS: &str = "run_id, collector, name, role, media_type, size, sha256, \
     object_key, observed_at, effective_at, collected_at";

impl EvidenceRow {
    fn from_row(row: &AnyRow) -> Result<EvidenceRow, DbError> {
        let effective: Option<String> = row.try_get("effective_at")?;
        Ok(EvidenceRow {
            run_id: row.try_get("run_id")?,
            collector: row.try_get("collector")?,
            name: row.try_get("name")?,
            role: closed(row, "role", "evidence")?,
            media_type: row.try_get("media_type")?,
            size: row.try_get("size")?,
            sha256: row.try_get("sha256")?,
            object_key: row.try_get("object_key")?,
            observed_at: parse_ts(
                "evidence.observed_at",
                &row.try_get::<String, _>("observed_at")?,
            )?,
            effective_at: effective
                .map(|e| parse_ts("evidence.effective_at", &e))
                .transpose()?,
            collected_at: parse_ts(
                "evidence.collected_at",
                &row.try_get::<String, _>("collected_at")?,
            )?,
        })
    }
}

/// One ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub idx: i64,
    pub leaf_hash: String,
    pub kind: String,
    pub ref_id: String,
}

/// The one of two runs that finished later (by id when they finished together).
pub fn newer(a: Option<RunRow>, b: Option<RunRow>) -> Option<RunRow> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (b.finished_at, &b.id) > (a.finished_at, &a.id) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// The object of an evidence row, as reports list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub run_id: String,
    pub name: String,
    pub role: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub object_key: String,
}

/// One signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub tree_size: i64,
    /// Base64.
    pub root_hash: String,
    pub origin: String,
    pub key_id: String,
    /// The signed note, verbatim.
    pub note: String,
    pub created_at: DateTime<Utc>,
    pub object_key: String,
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The signed-note key id, hex.
    pub id: String,
    pub name: String,
    /// The signed-note verifier text.
    pub verifier: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One finding a run recorded. Its texts are shared with every identical one read in the
/// same call: an hourly collector repeats the same finding in every run.
#[derive(Debug, Clone)]
pub struct FindingRow {
    pub run_id: String,
    pub collector: std::sync::Arc<str>,
    pub code: std::sync::Arc<str>,
    pub subject: std::sync::Arc<str>,
    pub message: std::sync::Arc<str>,
    pub controls: std::sync::Arc<[String]>,
}

/// One audit event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventRow {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// Canonical JSON.
    pub details: String,
    pub ledger_index: i64,
}

impl AuditEventRow {
    fn from_row(r: &AnyRow) -> Result<AuditEventRow, DbError> {
        Ok(AuditEventRow {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            subject: r.try_get("subject")?,
            details: r.try_get("details")?,
            ledger_index: r.try_get("ledger_index")?,
        })
    }
}

/// The database handle.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
}

/// The file of a `sqlite://PATH?…` URL.
fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .and_then(|p| p.split('?').next())
        .filter(|p| !p.is_empty() && *p != ":memory:")
}

/// An exclusive lock on `<database>.migrate-lock`, held while migrations run.
async fn lock_for_migration(path: &str, location: &str) -> Result<std::fs::File, DbError> {
    let lock_path = format!("{path}.migrate-lock");
    let unreachable = |e: std::io::Error| DbError::Unreachable {
        location: location.to_string(),
        reason: format!("cannot lock {lock_path} for the migrations: {e}"),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(unreachable)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .expect("the lock task does not panic")
        .map_err(unreachable)
}

impl Db {
    /// Closes every connection, waiting for them: SQLite folds its write-ahead log into the
    /// database file as the last one closes. A dropped pool closes its connections only
    /// eventually, and a process that keeps SQLite connections open while it opens and closes
    /// the database file itself (a copy) drops their locks, so another process's commits can
    /// be lost.
    pub async fn close(&self) {
        self.pool.close().await
    }

    /// Connects and runs the embedded migrations.
    pub async fn connect(url: &Secret<String>) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let url = url.expose();
        let location = redact::location(url);
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            Engine::Postgres
        };
        if engine == Engine::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(parent) = std::path::Path::new(path).parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| DbError::Unreachable {
                location: location.clone(),
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let pool = open_pool(url, engine, false).await?;
        let migrator = migrator(engine);
        // PostgreSQL migrations take an advisory lock; SQLite's take none, so two processes
        // opening a fresh file at once would both create the tables. A lock file beside the
        // database serializes them.
        let _migrating = match (engine, sqlite_path(url)) {
            (Engine::Sqlite, Some(path)) => Some(lock_for_migration(path, &location).await?),
            _ => None,
        };
        migrator.run(&pool).await.map_err(|e| DbError::Migration {
            location: location.clone(),
            reason: redact::scrub(url, &e.to_string()),
        })?;
        Ok(Db { pool, engine })
    }

    /// Opens the database to read only (`annexa check`): no migration, and every connection
    /// refuses writes (SQLite `mode=ro`, PostgreSQL `default_transaction_read_only`). None when
    /// an SQLite file does not exist yet (the first run creates it); else the database and how
    /// many of annexa's migrations it still lacks.
    pub async fn open_read_only(url: &Secret<String>) -> Result<Option<(Db, usize)>, DbError> {
        sqlx::any::install_default_drivers();
        let url = url.expose();
        let (engine, url) = match sqlite_path(url) {
            Some(path) if !std::path::Path::new(path).exists() => return Ok(None),
            Some(path) => (Engine::Sqlite, format!("sqlite://{path}?mode=ro")),
            None if url.starts_with("sqlite:") => return Ok(None),
            None => (Engine::Postgres, url.to_string()),
        };
        let pool = open_pool(&url, engine, true).await?;
        // A database annexa never opened has no migrations table: all of them are pending.
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
        let pending = migrator(engine)
            .iter()
            .count()
            .saturating_sub(applied as usize);
        Ok(Some((Db { pool, engine }, pending)))
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Records a run as started. False when the (collector, slot) is already taken.
    pub async fn start_run(&self, run: &RunRow) -> Result<bool, DbError> {
        let result = sqlx::query(
            "INSERT INTO runs (id, collector, kind, collector_version, slot, status, started_at, holder) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.collector)
        .bind(&run.kind)
        .bind(&run.collector_version)
        .bind(&run.slot)
        .bind(ts(run.started_at))
        .bind(&run.holder)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a run failed that could not be recorded in full (its evidence could not be
    /// stored). It has no manifest and no ledger leaf.
    pub async fn abandon_run(
        &self,
        id: &str,
        code: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = $1, error_code = $2, error = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(ts(at))
        .bind(code)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest finished run of a collector at or before `as_of`; only successful ones when
    /// `succeeded_only`.
    pub async fn latest_run(
        &self,
        collector: &str,
        as_of: DateTime<Utc>,
        succeeded_only: bool,
    ) -> Result<Option<RunRow>, DbError> {
        if succeeded_only {
            return self.latest_with_status(collector, as_of, "succeeded").await;
        }
        let (succeeded, failed) = self.latest_runs(collector, as_of).await?;
        Ok(newer(succeeded, failed))
    }

    /// The newest successful and the newest failed run of a collector at or before `as_of`.
    /// One indexed lookup per status: `status IN (…)` would sort every run of the collector.
    pub async fn latest_runs(
        &self,
        collector: &str,
        as_of: DateTime<Utc>,
    ) -> Result<(Option<RunRow>, Option<RunRow>), DbError> {
        futures::try_join!(
            self.latest_with_status(collector, as_of, "succeeded"),
            self.latest_with_status(collector, as_of, "failed"),
        )
    }

    async fn latest_with_status(
        &self,
        collector: &str,
        as_of: DateTime<Utc>,
        status: &str,
    ) -> Result<Option<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE collector = $1 AND status = $2 \
             AND finished_at IS NOT NULL AND finished_at <= $3 \
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(collector)
            .bind(status)
            .bind(ts(as_of))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(RunRow::from_row).transpose()
    }

    /// The newest finished run of any collector at or before `as_of` (the custody log's head).
    pub async fn latest_manifest(&self, as_of: DateTime<Utc>) -> Result<Option<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE manifest_key IS NOT NULL AND finished_at <= $1 \
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(ts(as_of))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(RunRow::from_row).transpose()
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(RunRow::from_row).transpose()
    }

    /// Every finished run, oldest first.
    pub async fn finished_runs(&self) -> Result<Vec<RunRow>, DbError> {
        finished_runs(&self.pool).await
    }

    pub async fn evidence_of_run(&self, run_id: &str) -> Result<Vec<EvidenceRow>, DbError> {
        let sql = format!("SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE run_id = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(EvidenceRow::from_row).collect()
    }

    /// What status lists of a run: its first `limit` items in the order they were stored, then
    /// its facts row; and how many rows the run has in all. Index ranges only, however many
    /// items the run holds.
    pub async fn evidence_listed(
        &self,
        run_id: &str,
        limit: usize,
    ) -> Result<(Vec<EvidenceRow>, u64), DbError> {
        // Items from the first stored, the facts from the last (a run stores them last).
        let page = |role: Role, limit: usize| {
            let order = if role == Role::Facts { "DESC" } else { "" };
            let sql = format!(
                "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE run_id = $1 AND role = $2 \
                 ORDER BY id {order} LIMIT $3"
            );
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(run_id)
                    .bind(role.as_str())
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await
            }
        };
        let mut rows = page(Role::Item, limit).await?;
        rows.extend(page(Role::Facts, 1).await?);
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM evidence WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await?;
        let rows = rows
            .iter()
            .map(EvidenceRow::from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total as u64))
    }

    /// Every evidence row, in insertion order.
    pub async fn all_evidence(&self) -> Result<Vec<EvidenceRow>, DbError> {
        all_evidence(&self.pool).await
    }

    /// When a run of `collector` first recorded a finding of `code` on `subject`, by `until`.
    pub async fn first_recorded(
        &self,
        collector: &str,
        code: &str,
        subject: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbError> {
        let first: Option<String> = sqlx::query_scalar(
            "SELECT MIN(created_at) FROM findings \
             WHERE collector = $1 AND code = $2 AND subject = $3 AND created_at <= $4",
        )
        .bind(collector)
        .bind(code)
        .bind(subject)
        .bind(ts(until))
        .fetch_one(&self.pool)
        .await?;
        first
            .map(|t| parse_ts("findings.created_at", &t))
            .transpose()
    }

    /// A read-only snapshot for verify: every read through it sees the database as of one
    /// moment, whatever runs record meanwhile.
    pub async fn snapshot(&self) -> Result<Snapshot, DbError> {
        let begin = match self.engine {
            // In WAL mode a read transaction sees the database as of its first read.
            Engine::Sqlite => "BEGIN",
            Engine::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        Ok(Snapshot {
            tx: self.pool.begin_with(begin).await?,
        })
    }

    /// Every ledger leaf, in order.
    pub async fn ledger(&self) -> Result<Vec<LedgerRow>, DbError> {
        ledger(&self.pool).await
    }

    /// The successful runs of `collector` that finished by `until`, oldest first.
    pub async fn successes_of(
        &self,
        collector: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE collector = $1 AND status = 'succeeded' \
             AND finished_at <= $2 ORDER BY finished_at, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(collector)
            .bind(ts(until))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// Finished runs (succeeded or failed) with `from <= finished_at < to`, oldest first.
    pub async fn runs_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('succeeded', 'failed') \
             AND finished_at >= $1 AND finished_at < $2 ORDER BY finished_at, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(ts(from))
            .bind(ts(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// The `fail` findings recorded by runs that finished in `[from, to)`.
    pub async fn fail_findings_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FindingRow>, DbError> {
        let mut rows = sqlx::query(
            "SELECT f.run_id, f.collector, f.code, f.subject, f.message, f.controls              FROM findings f JOIN runs r ON r.id = f.run_id              WHERE f.level = 'fail' AND r.finished_at >= $1 AND r.finished_at < $2              ORDER BY f.id",
        )
        .bind(ts(from))
        .bind(ts(to))
        .fetch(&self.pool);
        // Streamed and interned: a month of hourly runs repeats one finding thousands of times
        // (a month with 240,000 of them held 880 MiB as rows and owned strings).
        use futures::TryStreamExt;
        use std::sync::Arc;
        let mut texts: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
        let mut intern = |s: String| -> Arc<str> {
            if let Some(t) = texts.get(s.as_str()) {
                return t.clone();
            }
            let t: Arc<str> = s.into();
            texts.insert(t.clone());
            t
        };
        let mut lists: std::collections::HashMap<String, Arc<[String]>> =
            std::collections::HashMap::new();
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let controls: String = r.try_get("controls")?;
            let controls = match lists.get(&controls) {
                Some(l) => l.clone(),
                None => {
                    let l: Arc<[String]> = serde_json::from_str::<Vec<String>>(&controls)
                        .unwrap_or_default()
                        .into();
                    lists.insert(controls, l.clone());
                    l
                }
            };
            out.push(FindingRow {
                run_id: r.try_get("run_id")?,
                collector: intern(r.try_get("collector")?),
                code: intern(r.try_get("code")?),
                subject: intern(r.try_get("subject")?),
                message: intern(r.try_get("message")?),
                controls,
            });
        }
        Ok(out)
    }

    /// The objects of the evidence rows with `from <= collected_at < to`, in no particular
    /// order. Rows come back one per run, the run's objects joined in one text column: a
    /// month holds many objects, and the drivers pay per row far more than per byte.
    pub async fn objects_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ObjectRow>, DbError> {
        // Unit (31) and record (30) separators never occur in names, types, hashes or keys.
        let (unit, record, join) = match self.engine {
            Engine::Sqlite => ("char(31)", "char(30)", "group_concat"),
            Engine::Postgres => ("chr(31)", "chr(30)", "string_agg"),
        };
        let sql = format!(
            "SELECT run_id, {join}(name || {unit} || role || {unit} || media_type || {unit} || \
             CAST(size AS TEXT) || {unit} || sha256 || {unit} || object_key, {record}) AS objects \
             FROM evidence WHERE collected_at >= $1 AND collected_at < $2 GROUP BY run_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(ts(from))
            .bind(ts(to))
            .fetch_all(&self.pool)
            .await?;
        let mut objects = Vec::with_capacity(rows.len() * 5);
        for r in &rows {
            let run_id: String = r.try_get("run_id")?;
            let joined: String = r.try_get("objects")?;
            for object in joined.split('\u{1e}') {
                let f: Vec<&str> = object.split('\u{1f}').collect();
                let [name, role, media_type, size, sha256, object_key] = f[..] else {
                    return Err(DbError::Corrupt {
                        what: format!("the evidence of run {run_id}"),
                        value: "a field separator inside a value".into(),
                    });
                };
                objects.push(ObjectRow {
                    run_id: run_id.clone(),
                    name: name.to_string(),
                    role: role.to_string(),
                    media_type: media_type.to_string(),
                    size: size.parse().map_err(|_| DbError::Corrupt {
                        what: format!("the size of an object of run {run_id}"),
                        value: size.to_string(),
                    })?,
                    sha256: sha256.to_string(),
                    object_key: object_key.to_string(),
                });
            }
        }
        Ok(objects)
    }

    /// Every leaf hash (hex) of the ledger, in order.
    pub async fn leaves(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT leaf_hash FROM ledger ORDER BY idx")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("leaf_hash")?))
            .collect()
    }

    /// The highest ledger index a run or an audit event says it holds.
    pub async fn highest_claimed_index(&self) -> Result<Option<i64>, DbError> {
        let row = sqlx::query(
            "SELECT MAX(i) AS i FROM (SELECT MAX(ledger_index) AS i FROM runs \
             UNION ALL SELECT MAX(ledger_index) AS i FROM audit_events) AS claimed",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("i")?)
    }

    /// The leaf hashes (hex) of the ledger as it stood at `as_of`, in order.
    pub async fn leaves_until(&self, as_of: DateTime<Utc>) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT leaf_hash FROM ledger WHERE created_at <= $1 ORDER BY idx")
            .bind(ts(as_of))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("leaf_hash")?))
            .collect()
    }

    /// Every checkpoint, smallest tree first.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, DbError> {
        self.checkpoints_where("", None).await
    }

    /// The newest checkpoint made at or before `as_of`.
    pub async fn latest_checkpoint(
        &self,
        as_of: DateTime<Utc>,
    ) -> Result<Option<CheckpointRow>, DbError> {
        Ok(self
            .checkpoints_where(
                "WHERE created_at <= $1 ORDER BY tree_size DESC LIMIT 1",
                Some(as_of),
            )
            .await?
            .pop())
    }

    async fn checkpoints_where(
        &self,
        clause: &str,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Vec<CheckpointRow>, DbError> {
        let sql = format!(
            "SELECT tree_size, root_hash, origin, key_id, note, created_at, object_key \
             FROM checkpoints {} ",
            if clause.is_empty() {
                "ORDER BY tree_size"
            } else {
                clause
            }
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(t) = as_of {
            query = query.bind(ts(t));
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRow {
                    tree_size: r.try_get("tree_size")?,
                    root_hash: r.try_get("root_hash")?,
                    origin: r.try_get("origin")?,
                    key_id: r.try_get("key_id")?,
                    note: r.try_get("note")?,
                    created_at: parse_ts(
                        "checkpoints.created_at",
                        &r.try_get::<String, _>("created_at")?,
                    )?,
                    object_key: r.try_get("object_key")?,
                })
            })
            .collect()
    }

    pub async fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root_hash, origin, key_id, note, created_at, object_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.tree_size)
        .bind(&c.root_hash)
        .bind(&c.origin)
        .bind(&c.key_id)
        .bind(&c.note)
        .bind(ts(c.created_at))
        .bind(&c.object_key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every signing key, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, name, verifier, state, created_at, retired_at, revoked_at FROM keys \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let time = |col: &str| -> Result<Option<DateTime<Utc>>, DbError> {
                    r.try_get::<Option<String>, _>(col)?
                        .map(|t| parse_ts(col, &t))
                        .transpose()
                };
                Ok(KeyRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    verifier: r.try_get("verifier")?,
                    state: closed(r, "state", "keys")?,
                    created_at: time("created_at")?.unwrap_or_default(),
                    retired_at: time("retired_at")?,
                    revoked_at: time("revoked_at")?,
                })
            })
            .collect()
    }

    /// Retires or revokes a key, at `at`.
    pub async fn set_key_state(
        &self,
        id: &str,
        state: KeyState,
        at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let column = match state {
            KeyState::Retired => "retired_at",
            KeyState::Revoked => "revoked_at",
            KeyState::Active => unreachable!("a key is active only when it is inserted"),
        };
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE keys SET state = $1, {column} = $2 WHERE id = $3"
        )))
        .bind(state.as_str())
        .bind(ts(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a new active key.
    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO keys (id, name, verifier, state, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.verifier)
        .bind(key.state.as_str())
        .bind(ts(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn audit_events(&self) -> Result<Vec<AuditEventRow>, DbError> {
        audit_events(&self.pool).await
    }

    pub async fn insert_heartbeat(
        &self,
        job: &str,
        kind: &str,
        at: DateTime<Utc>,
        message: Option<&str>,
        source: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO heartbeats (job, kind, at, message, source) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(job)
        .bind(kind)
        .bind(ts(at))
        .bind(message)
        .bind(source)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pings of a job with `since <= at <= until`, oldest first.
    pub async fn heartbeats(
        &self,
        job: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Heartbeat>, DbError> {
        let rows = sqlx::query(
            "SELECT kind, at, message, source FROM heartbeats WHERE job = $1 AND at >= $2 AND at <= $3 ORDER BY at, id",
        )
        .bind(job)
        .bind(ts(since))
        .bind(ts(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(Heartbeat {
                    job: job.to_string(),
                    kind: kind.parse().map_err(|_| DbError::Corrupt {
                        what: "heartbeats.kind".into(),
                        value: kind.clone(),
                    })?,
                    at: parse_ts("heartbeats.at", &r.try_get::<String, _>("at")?)?,
                    slot: None,
                    message: r.try_get("message")?,
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    pub async fn first_heartbeat(&self, job: &str) -> Result<Option<DateTime<Utc>>, DbError> {
        let row = sqlx::query("SELECT MIN(at) AS first FROM heartbeats WHERE job = $1")
            .bind(job)
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<String>, _>("first")?
            .map(|f| parse_ts("heartbeats.at", &f))
            .transpose()
    }

    /// A collector's runs as heartbeats: a start when it started, a success or fail when it
    /// finished, each tagged with the slot it filled.
    pub async fn runs_as_heartbeats(
        &self,
        collector: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Heartbeat>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE collector = $1 AND started_at >= $2 AND started_at <= $3 \
             ORDER BY started_at, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(collector)
            .bind(ts(since))
            .bind(ts(until))
            .fetch_all(&self.pool)
            .await?;
        let mut beats = Vec::new();
        for row in &rows {
            let run = RunRow::from_row(row)?;
            let slot = run
                .slot
                .as_deref()
                .map(|s| parse_ts("runs.slot", s))
                .transpose()?;
            let beat = |kind, at, message: Option<String>| Heartbeat {
                job: collector.to_string(),
                kind,
                at,
                slot,
                message,
                source: "run".to_string(),
            };
            beats.push(beat(PingKind::Start, run.started_at, None));
            match (run.status.as_str(), run.finished_at) {
                ("succeeded", Some(at)) if at <= until => {
                    beats.push(beat(PingKind::Success, at, None))
                }
                ("failed", Some(at)) if at <= until => {
                    beats.push(beat(PingKind::Fail, at, run.error.clone()))
                }
                _ => {}
            }
        }
        Ok(beats)
    }

    pub async fn first_run(&self, collector: &str) -> Result<Option<DateTime<Utc>>, DbError> {
        let row = sqlx::query(
            "SELECT MIN(COALESCE(slot, started_at)) AS first FROM runs WHERE collector = $1",
        )
        .bind(collector)
        .fetch_one(&self.pool)
        .await?;
        row.try_get::<Option<String>, _>("first")?
            .map(|f| parse_ts("runs.started_at", &f))
            .transpose()
    }

    /// Every audit event with this action, oldest first.
    pub async fn audit_events_with_action(
        &self,
        action: &str,
    ) -> Result<Vec<AuditEventRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, details, ledger_index FROM audit_events \
             WHERE action = $1 ORDER BY ledger_index",
        )
        .bind(action)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditEventRow::from_row).collect()
    }

    /// The newest audit event with this action.
    pub async fn latest_audit_event(&self, action: &str) -> Result<Option<AuditEventRow>, DbError> {
        let row = sqlx::query(
            "SELECT id, at, actor, action, subject, details, ledger_index FROM audit_events \
             WHERE action = $1 ORDER BY ledger_index DESC LIMIT 1",
        )
        .bind(action)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(AuditEventRow::from_row).transpose()
    }

    /// Starts a transaction that appends to the ledger. Appends are serialized: SQLite takes
    /// the write lock up front (`BEGIN IMMEDIATE`), PostgreSQL locks the ledger table, so two
    /// writers never claim the same index.
    pub async fn begin_append(&self) -> Result<AppendTx, DbError> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("LOCK TABLE ledger IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        let row = sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) AS next FROM ledger")
            .fetch_one(&mut *tx)
            .await?;
        let next_index = row.try_get::<i64, _>("next")?;
        Ok(AppendTx {
            tx,
            next_index,
            engine: self.engine,
        })
    }

    /// Appends one audit event and its ledger leaf (the leaf hash is the ledger's to compute:
    /// `ledger::audit`); the event gets the next ledger index.
    pub async fn append_audit_event(
        &self,
        mut event: AuditEventRow,
        leaf_hash: &str,
    ) -> Result<AuditEventRow, DbError> {
        let mut tx = self.begin_append().await?;
        event.ledger_index = tx.next_index;
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor, action, subject, details, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&event.id)
        .bind(&event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.subject)
        .bind(&event.details)
        .bind(event.ledger_index)
        .execute(&mut *tx.tx)
        .await?;
        let at = parse_ts("audit_events.at", &event.at)?;
        tx.append_leaf(leaf_hash, "audit_event", &event.id, at)
            .await?;
        tx.commit().await?;
        Ok(event)
    }
}

/// A transaction that appends ledger leaves (and the rows they stand for).
pub struct AppendTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    /// The index the next leaf gets.
    pub next_index: i64,
    engine: Engine,
}

impl AppendTx {
    async fn append_leaf(
        &mut self,
        leaf_hash: &str,
        kind: &str,
        ref_id: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, DbError> {
        let idx = self.next_index;
        sqlx::query("INSERT INTO ledger (idx, leaf_hash, kind, ref_id, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(idx)
            .bind(leaf_hash)
            .bind(kind)
            .bind(ref_id)
            .bind(ts(at))
            .execute(&mut *self.tx)
            .await?;
        self.next_index += 1;
        Ok(idx)
    }

    /// Inserts evidence rows of the run being recorded, many to a statement.
    pub async fn insert_evidence(&mut self, evidence: &[EvidenceRow]) -> Result<(), DbError> {
        // PostgreSQL: many rows to a round trip. SQLite, in process, gains little from long
        // statements; its parameters are anonymous (`?`), because sqlx looks up each named
        // parameter's name in a list as long as the statement's.
        let rows = match self.engine {
            Engine::Sqlite => 32,
            Engine::Postgres => 500,
        };
        for batch in evidence.chunks(rows) {
            let values: Vec<String> = (0..batch.len())
                .map(|r| {
                    let cols: Vec<String> = (1..=11)
                        .map(|c| match self.engine {
                            Engine::Sqlite => "?".to_string(),
                            Engine::Postgres => format!("${}", r * 11 + c),
                        })
                        .collect();
                    format!("({})", cols.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO evidence ({EVIDENCE_COLUMNS}) VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for e in batch {
                query = query
                    .bind(&e.run_id)
                    .bind(&e.collector)
                    .bind(&e.name)
                    .bind(e.role.as_str())
                    .bind(&e.media_type)
                    .bind(e.size)
                    .bind(&e.sha256)
                    .bind(&e.object_key)
                    .bind(ts(e.observed_at))
                    .bind(e.effective_at.map(ts))
                    .bind(ts(e.collected_at));
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Records a finished run: its final row, evidence rows, findings and ledger leaf (the hash
    /// of its manifest, already in the store at `run.manifest_key`).
    pub async fn record_run(
        &mut self,
        run: &RunRow,
        evidence: &[EvidenceRow],
        findings: &[(annexa_collectors::Finding, String)],
        manifest_leaf_hash: &str,
    ) -> Result<(), DbError> {
        let finished = run.finished_at.expect("a recorded run is finished");
        let idx = self
            .append_leaf(manifest_leaf_hash, "run", &run.id, finished)
            .await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, error_code = $3, error = $4, \
             manifest_key = $5, manifest_sha256 = $6, ledger_index = $7 WHERE id = $8 AND status = 'running'",
        )
        .bind(run.status.as_str())
        .bind(ts(finished))
        .bind(&run.error_code)
        .bind(&run.error)
        .bind(&run.manifest_key)
        .bind(&run.manifest_sha256)
        .bind(idx)
        .bind(&run.id)
        .execute(&mut *self.tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(DbError::Corrupt {
                what: "runs".into(),
                value: format!("run {} is not running any more", run.id),
            });
        }
        self.insert_evidence(evidence).await?;
        for (f, collector) in findings {
            sqlx::query(
                "INSERT INTO findings (run_id, collector, code, level, subject, message, controls, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&run.id)
            .bind(collector)
            .bind(f.code.as_str())
            .bind(f.level.as_str())
            .bind(&f.subject)
            .bind(&f.message)
            .bind(serde_json::to_string(&f.controls).expect("strings serialize"))
            .bind(ts(finished))
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// The embedded migrations of an engine.
fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
    match engine {
        Engine::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Engine::Postgres => sqlx::migrate!("migrations/postgres"),
    }
}

/// A pool on `url`, after one direct connection that says why the server cannot be reached.
/// `read_only`: every connection refuses writes.
async fn open_pool(url: &str, engine: Engine, read_only: bool) -> Result<AnyPool, DbError> {
    let location = redact::location(url);
    // One direct connection first: a pool only reports "timed out" when the server is down
    // or refuses the login, a direct connection says which.
    sqlx::AnyConnection::connect(url)
        .await
        .map_err(|e| DbError::Unreachable {
            location: location.clone(),
            reason: redact::scrub(url, &e.to_string()),
        })?
        .close()
        .await?;
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        // A ping before every query doubles the round trips of a command's many small
        // queries; a dead connection fails its query instead, and the next run reconnects.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let setup = match (engine, read_only) {
                    (Engine::Sqlite, false) => {
                        "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;"
                    }
                    (Engine::Sqlite, true) => "PRAGMA busy_timeout = 10000;",
                    (Engine::Postgres, false) => return Ok(()),
                    (Engine::Postgres, true) => "SET default_transaction_read_only = on;",
                };
                sqlx::raw_sql(setup).execute(&mut *conn).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| DbError::Unreachable {
        location: location.clone(),
        reason: redact::scrub(url, &e.to_string()),
        })?;
    Ok(pool)
}

/// The database as of one moment ([`Db::snapshot`]). A run's evidence rows are streamed: a run
/// may hold a million.
pub struct Snapshot {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Snapshot {
    /// Every finished run, by id: the order of [`Snapshot::evidence`].
    pub async fn runs(&mut self) -> Result<Vec<RunRow>, DbError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NOT NULL ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    pub async fn ledger(&mut self) -> Result<Vec<LedgerRow>, DbError> {
        ledger(&mut *self.tx).await
    }

    pub async fn audit_events(&mut self) -> Result<Vec<AuditEventRow>, DbError> {
        audit_events(&mut *self.tx).await
    }

    /// Every evidence row, by run id and then in the order they were stored: an index range
    /// (`evidence_by_run`), not a sort of a million rows.
    pub fn evidence(&mut self) -> futures::stream::BoxStream<'_, Result<EvidenceRow, DbError>> {
        use futures::StreamExt;
        let sql = format!("SELECT {EVIDENCE_COLUMNS} FROM evidence ORDER BY run_id, id");
        sqlx::query(AssertSqlSafe(sql))
            .fetch(&mut *self.tx)
            .map(|row| EvidenceRow::from_row(&row?))
            .boxed()
    }

    /// The rows that name the object at `key` (rare: verify asks when sizes disagree).
    pub async fn rows_naming(&mut self, key: &str) -> Result<Vec<EvidenceRow>, DbError> {
        let sql =
            format!("SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE object_key = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(EvidenceRow::from_row).collect()
    }

    /// Ends the snapshot.
    pub async fn close(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}

async fn all_evidence<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<EvidenceRow>, DbError> {
    let sql = format!("SELECT {EVIDENCE_COLUMNS} FROM evidence ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(db).await?;
    rows.iter().map(EvidenceRow::from_row).collect()
}

async fn finished_runs<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<RunRow>, DbError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NOT NULL ORDER BY ledger_index"
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(db).await?;
    rows.iter().map(RunRow::from_row).collect()
}

/// Every ledger leaf, in order.
async fn ledger<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<LedgerRow>, DbError> {
    let rows = sqlx::query("SELECT idx, leaf_hash, kind, ref_id FROM ledger ORDER BY idx")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerRow {
                idx: r.try_get("idx")?,
                leaf_hash: r.try_get("leaf_hash")?,
                kind: r.try_get("kind")?,
                ref_id: r.try_get("ref_id")?,
            })
        })
        .collect()
}

async fn audit_events<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<AuditEventRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, details, ledger_index FROM audit_events ORDER BY ledger_index",
    )
    .fetch_all(db)
    .await?;
    rows.iter().map(AuditEventRow::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both engines' migration folders hold the same versions, so a database of either kind
    /// has the same schema history.
    #[test]
    fn sqlite_and_postgres_migrations_have_the_same_versions() {
        let versions = |engine: &str| -> Vec<String> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(engine);
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let sqlite = versions("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, versions("postgres"));
    }

    #[test]
    fn times_compare_as_text_even_without_a_bound() {
        let now = ts(Utc::now());
        assert!(ts(DateTime::<Utc>::MAX_UTC) > now);
        assert!(
            ts(DateTime::<Utc>::MIN_UTC) < now,
            "{}",
            ts(DateTime::<Utc>::MIN_UTC)
        );
        assert_eq!(parse_ts("t", &now).map(ts).unwrap(), now);
    }
}
