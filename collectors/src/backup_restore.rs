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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, Finding, FindingCode, Level,
    Snapshot, Source,
};

const SCRATCH_PREFIX: &str = "annexa_drill_";
const SCRATCH_MARK: &str = "annexa restore drill";

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The comment a scratch database carries: who made it, so a sweep can tell a killed drill's
/// leftover from a drill still running here or on another worker.
fn mark(now: DateTime<Utc>) -> String {
    format!(
        "{SCRATCH_MARK}; host={}; pid={}; started={}",
        hostname(),
        std::process::id(),
        now.to_rfc3339()
    )
}

/// Whether a marked scratch database is a leftover: its process is gone (same host), or it is
/// more than a day old (another host).
fn is_leftover(comment: &str, now: DateTime<Utc>) -> bool {
    let field = |k: &str| {
        comment
            .split("; ")
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
    };
    let started = field("started")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    let old = started.is_none_or(|t| now - t > Duration::hours(24));
    match (field("host"), field("pid")) {
        (Some(h), Some(pid)) if h == hostname() => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => old,
    }
}

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

fn seconds(text: &str) -> Result<i64, String> {
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

    fn location(&self) -> String {
        match (&self.config.path, &self.config.s3) {
            (Some(p), _) => p.display().to_string(),
            (_, Some(s)) => format!("s3://{}/{}", s.bucket, s.prefix),
            _ => String::new(),
        }
    }
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

async fn s3_client(loc: &S3Location) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(loc.region.clone()))
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    if let Some(e) = &loc.endpoint {
        loader = loader.endpoint_url(e);
    }
    let shared = loader.load().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(loc.path_style)
            .build(),
    )
}

impl BackupRestore {
    /// The backups and their sidecar hashes (name → hex).
    async fn list(&self, previous: &[BackupFile]) -> Result<Vec<BackupFile>, CollectError> {
        let mut found: Vec<(String, u64, DateTime<Utc>)> = Vec::new();
        let mut sidecars = std::collections::BTreeMap::new();
        if let Some(dir) = &self.config.path {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                unavailable(dir.display().to_string(), format!("{e}; check `path`"))
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(meta) = e.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                if let Some(of) = name.strip_suffix(".sha256") {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        sidecars.insert(of.to_string(), text);
                    }
                } else if glob(&self.config.pattern, &name) {
                    let modified = meta
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_else(|_| Utc::now());
                    found.push((name, meta.len(), modified));
                }
            }
        } else if let Some(loc) = &self.config.s3 {
            let client = s3_client(loc).await;
            let mut pages = client
                .list_objects_v2()
                .bucket(&loc.bucket)
                .prefix(&loc.prefix)
                .into_paginator()
                .send();
            let mut sidecar_keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    unavailable(
                        self.location(),
                        aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    )
                })?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let name = key
                        .strip_prefix(&loc.prefix)
                        .unwrap_or(key)
                        .trim_start_matches('/')
                        .to_string();
                    if name.ends_with(".sha256") {
                        sidecar_keys.push((
                            key.to_string(),
                            name.trim_end_matches(".sha256").to_string(),
                        ));
                    } else if glob(&self.config.pattern, &name) {
                        let modified = o
                            .last_modified()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                            .unwrap_or_else(Utc::now);
                        found.push((name, o.size().unwrap_or(0).max(0) as u64, modified));
                    }
                }
            }
            for (key, of) in sidecar_keys {
                if let Ok(out) = client
                    .get_object()
                    .bucket(&loc.bucket)
                    .key(&key)
                    .send()
                    .await
                    && let Ok(bytes) = out.body.collect().await
                {
                    sidecars.insert(
                        of,
                        String::from_utf8_lossy(&bytes.into_bytes()).into_owned(),
                    );
                }
            }
        }
        found.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        let mut backups = Vec::new();
        for (name, size, modified) in found {
            let (sha256, source) = if let Some(text) = sidecars.get(&name) {
                (
                    text.split_whitespace()
                        .next()
                        .map(|h| h.to_ascii_lowercase()),
                    Some("sidecar".to_string()),
                )
            } else if let Some(p) = previous
                .iter()
                .find(|p| p.name == name && p.size == size && p.modified == modified)
            {
                (p.sha256.clone(), p.sha256_source.clone())
            } else if let Some(dir) = &self.config.path {
                let path = dir.join(&name);
                let hash = tokio::task::spawn_blocking(move || hash_path(&path))
                    .await
                    .ok()
                    .and_then(|r| r.ok());
                (hash, Some("computed".to_string()))
            } else {
                // S3 objects are hashed when drilled (streamed), not on every listing.
                (None, None)
            };
            backups.push(BackupFile {
                name,
                size,
                modified,
                sha256,
                sha256_source: source,
            });
        }
        Ok(backups)
    }

    /// The newest backup as a local file in `scratch` (downloaded by streaming from S3), and its
    /// SHA-256 computed on the way.
    async fn fetch(
        &self,
        backup: &BackupFile,
        scratch: &Path,
    ) -> Result<(PathBuf, String), String> {
        if let Some(dir) = &self.config.path {
            let path = dir.join(&backup.name);
            let p = path.clone();
            let hash = tokio::task::spawn_blocking(move || hash_path(&p))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            return Ok((path, hash));
        }
        let loc = self.config.s3.as_ref().expect("path or s3");
        let client = s3_client(loc).await;
        let key = if loc.prefix.is_empty() {
            backup.name.clone()
        } else {
            format!("{}/{}", loc.prefix.trim_end_matches('/'), backup.name)
        };
        let out = client
            .get_object()
            .bucket(&loc.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?;
        let target = scratch.join(&backup.name);
        let mut file = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        let mut body = out.body;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok((target, hex::encode(hasher.finalize())))
    }
}

fn hash_path(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// What kind of backup a file is, by its first bytes, then its name.
fn format_of(path: &Path) -> String {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if head[..n.min(5)] == *b"PGDMP" {
        "postgres-custom".into()
    } else if head[..n.min(16)] == *b"SQLite format 3\0"
        || name.ends_with(".sqlite")
        || name.ends_with(".sqlite3")
        || name.ends_with(".db")
    {
        "sqlite".into()
    } else if name.ends_with(".tar")
        || name.ends_with(".tar.gz")
        || name.ends_with(".tgz")
        || name.ends_with(".zst")
    {
        "archive".into()
    } else if name.ends_with(".sql") {
        "postgres-plain".into()
    } else if name.ends_with(".dump") || name.ends_with(".pgdump") || name.ends_with(".backup") {
        "postgres-custom".into()
    } else {
        "unknown".into()
    }
}

fn parse_expect(text: &str) -> Option<(&'static str, f64)> {
    let t = text.trim();
    for op in [">=", "<=", "!=", "=", ">", "<"] {
        if let Some(rest) = t.strip_prefix(op) {
            return rest.trim().parse::<f64>().ok().map(|n| (op, n));
        }
    }
    None
}

fn judge(q: &VerifyQuery, value: Option<&str>, now: DateTime<Utc>) -> (String, bool) {
    let mut parts = Vec::new();
    let mut ok = value.is_some();
    if let Some(e) = &q.expect {
        parts.push(format!("value {e}"));
        let passed = match (
            parse_expect(e),
            value.and_then(|v| v.trim().parse::<f64>().ok()),
        ) {
            (Some((op, n)), Some(v)) => match op {
                ">=" => v >= n,
                "<=" => v <= n,
                "!=" => v != n,
                "=" => v == n,
                ">" => v > n,
                _ => v < n,
            },
            _ => false,
        };
        ok &= passed;
    }
    if let Some(w) = &q.within {
        parts.push(format!("a time within {w} of the drill"));
        let t = value.and_then(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .ok()
                .or_else(|| DateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M:%S%.f%#z").ok())
                .map(|t| t.with_timezone(&Utc))
        });
        ok &= match (t, seconds(w)) {
            (Some(t), Ok(s)) => now - t <= Duration::seconds(s),
            _ => false,
        };
    }
    if parts.is_empty() {
        parts.push("any result".into());
    }
    (parts.join(" and "), ok)
}

/// A PostgreSQL admin URL, split into the URL without its password and the password.
struct Postgres {
    url: url::Url,
    password: Option<String>,
}

impl Postgres {
    fn from_env(var: &str) -> Result<Postgres, String> {
        let raw = std::env::var(var).map_err(|_| format!("the environment variable {var} (a PostgreSQL admin URL for scratch databases) is not set"))?;
        let mut url = url::Url::parse(&raw).map_err(|e| format!("{var} is not a URL: {e}"))?;
        let password = url.password().map(|p| p.to_string());
        let _ = url.set_password(None);
        Ok(Postgres { url, password })
    }

    fn db_url(&self, db: &str) -> String {
        let mut u = self.url.clone();
        u.set_path(&format!("/{db}"));
        u.to_string()
    }

    /// Runs a client tool with the password in the environment, never in the arguments.
    fn run(&self, program: &str, args: &[&str], log: &mut Vec<String>) -> Result<String, String> {
        let mut cmd = Command::new(tool(program));
        cmd.args(args);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        let out = cmd.output().map_err(|e| {
            format!("cannot run {program}: {e}; install the PostgreSQL client tools")
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()).take(50) {
            log.push(format!("{program}: {line}"));
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} failed ({}): {}",
                out.status,
                stderr.lines().last().unwrap_or("no message")
            ))
        }
    }

    fn sql(&self, db: &str, sql: &str, log: &mut Vec<String>) -> Result<String, String> {
        self.run(
            "psql",
            &[
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.db_url(db),
                "-c",
                sql,
            ],
            log,
        )
    }

    fn admin_db(&self) -> String {
        let p = self.url.path().trim_start_matches('/');
        if p.is_empty() {
            "postgres".into()
        } else {
            p.to_string()
        }
    }

    /// Drops scratch databases annexa created and a killed drill left behind: only names with the
    /// prefix that carry the mark.
    fn sweep(&self, now: DateTime<Utc>, log: &mut Vec<String>) -> Result<(), String> {
        let listed = self.sql(
            &self.admin_db(),
            &format!(
                "SELECT datname || '|' || shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname LIKE '{SCRATCH_PREFIX}%' AND shobj_description(oid, 'pg_database') LIKE '{SCRATCH_MARK}%'"
            ),
            log,
        )?;
        for line in listed.lines() {
            let Some((name, comment)) = line.split_once('|') else {
                continue;
            };
            if is_leftover(comment, now) {
                self.drop(name.trim(), log)?;
                log.push(format!("removed leftover scratch database {}", name.trim()));
            }
        }
        Ok(())
    }

    fn drop(&self, name: &str, log: &mut Vec<String>) -> Result<(), String> {
        // The one guard every drop passes: annexa's prefix, nothing but [a-z0-9_].
        if !name.starts_with(SCRATCH_PREFIX)
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "refusing to drop `{name}`: not a scratch database annexa created"
            ));
        }
        self.sql(
            &self.admin_db(),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            log,
        )
        .map(|_| ())
    }
}

/// A PostgreSQL client tool: on PATH, else the newest installed server's.
fn tool(program: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|c| c.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        dirs.sort();
        dirs.pop()
            .map(|d| d.join(program))
            .unwrap_or_else(|| PathBuf::from(program))
    })
}

fn version(program: &str) -> String {
    Command::new(tool(program))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{program}: {e}"))
}

impl BackupRestore {
    async fn drill(
        &self,
        drill: &DrillConfig,
        backup: &BackupFile,
        ctx: &CollectContext,
    ) -> DrillReport {
        let started_at = ctx.now();
        let clock = Instant::now();
        let progress = indicatif::ProgressBar::new_spinner()
            .with_message(format!("restore drill of {}", backup.name));
        progress.enable_steady_tick(std::time::Duration::from_millis(200));
        let mut report = DrillReport {
            backup: backup.name.clone(),
            backup_sha256: backup.sha256.clone(),
            format: String::new(),
            started_at,
            duration_seconds: 0,
            backup_age_seconds: (started_at - backup.modified).num_seconds(),
            restored: false,
            error: None,
            queries: Vec::new(),
            tools: Vec::new(),
            log: Vec::new(),
            scratch: String::new(),
        };
        let result = self.restore(drill, backup, ctx, &mut report).await;
        progress.finish_and_clear();
        report.duration_seconds = clock.elapsed().as_secs() as i64;
        if let Err(e) = result {
            report.error = Some(e);
        }
        report
    }

    async fn restore(
        &self,
        drill: &DrillConfig,
        backup: &BackupFile,
        ctx: &CollectContext,
        report: &mut DrillReport,
    ) -> Result<(), String> {
        let (path, hash) = self.fetch(backup, &ctx.scratch_dir).await?;
        if let (Some(expected), "sidecar") = (
            &backup.sha256,
            backup.sha256_source.as_deref().unwrap_or(""),
        ) {
            if *expected != hash {
                return Err(format!(
                    "{} does not match its .sha256 sidecar ({expected}); its SHA-256 is {hash}",
                    backup.name
                ));
            }
            report
                .log
                .push("SHA-256 matches the .sha256 sidecar".into());
        }
        report.backup_sha256 = Some(hash);
        report.format = format_of(&path);
        let now = ctx.now();
        match report.format.as_str() {
            "postgres-custom" | "postgres-plain" => {
                let var = drill
                    .postgres_url_env
                    .as_deref()
                    .ok_or("a PostgreSQL dump needs drill.postgres_url_env")?;
                let pg = Postgres::from_env(var)?;
                report.tools = vec![version("pg_restore"), version("psql")];
                pg.sweep(now, &mut report.log)?;
                let scratch = format!("{SCRATCH_PREFIX}{}", uuid::Uuid::now_v7().simple());
                report.scratch = scratch.clone();
                pg.sql(
                    &pg.admin_db(),
                    &format!("CREATE DATABASE {scratch}"),
                    &mut report.log,
                )?;
                let result = (|| -> Result<(), String> {
                    pg.sql(
                        &pg.admin_db(),
                        &format!("COMMENT ON DATABASE {scratch} IS '{}'", mark(now)),
                        &mut report.log,
                    )?;
                    let file = path.to_string_lossy().into_owned();
                    let target = pg.db_url(&scratch);
                    if report.format == "postgres-custom" {
                        pg.run(
                            "pg_restore",
                            &[
                                "--no-owner",
                                "--no-privileges",
                                "--exit-on-error",
                                "-d",
                                &target,
                                &file,
                            ],
                            &mut report.log,
                        )?;
                    } else {
                        pg.run(
                            "psql",
                            &[
                                "-X",
                                "-q",
                                "-v",
                                "ON_ERROR_STOP=1",
                                "-d",
                                &target,
                                "-f",
                                &file,
                            ],
                            &mut report.log,
                        )?;
                    }
                    report.restored = true;
                    for q in &drill.queries {
                        let value = pg
                            .sql(&scratch, &q.sql, &mut report.log)
                            .ok()
                            .map(|v| v.lines().next().unwrap_or("").to_string());
                        report.queries.push(QueryResult::judged(q, value, now));
                    }
                    Ok(())
                })();
                let dropped = pg.drop(&scratch, &mut report.log);
                result.and(dropped)
            }
            "sqlite" => {
                report.tools = vec!["SQLite (libsqlite3 bundled with sqlx)".into()];
                let copy = ctx.scratch_dir.join("drill.sqlite");
                std::fs::copy(&path, &copy).map_err(|e| e.to_string())?;
                report.scratch = copy.display().to_string();
                use sqlx::{Connection, Row};
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&copy)
                    .read_only(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .map_err(|e| format!("cannot open the SQLite backup: {e}"))?;
                let check: String = sqlx::query("PRAGMA integrity_check")
                    .fetch_one(&mut conn)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(|e| format!("integrity check failed: {e}"))?;
                report.log.push(format!("PRAGMA integrity_check: {check}"));
                if check != "ok" {
                    return Err(format!("PRAGMA integrity_check: {check}"));
                }
                report.restored = true;
                for q in &drill.queries {
                    let value = match sqlx::query(sqlx::AssertSqlSafe(q.sql.clone()))
                        .fetch_optional(&mut conn)
                        .await
                    {
                        Ok(Some(row)) => cell(&row),
                        Ok(None) => None,
                        Err(e) => {
                            report.log.push(format!("{}: {e}", q.sql));
                            None
                        }
                    };
                    report.queries.push(QueryResult::judged(q, value, now));
                }
                Ok(())
            }
            "archive" => {
                let out = ctx.scratch_dir.join("extract");
                report.scratch = out.display().to_string();
                report.tools = vec!["tar (Rust tar crate)".into()];
                let p = path.clone();
                let o = out.clone();
                let listing = tokio::task::spawn_blocking(move || extract(&p, &o))
                    .await
                    .map_err(|e| e.to_string())??;
                report
                    .log
                    .push(format!("extracted {} files", listing.len()));
                report.log.extend(
                    listing
                        .into_iter()
                        .map(|(name, size, sha)| format!("{sha}  {size}  {name}")),
                );
                report.restored = true;
                if !drill.queries.is_empty() {
                    report
                        .log
                        .push("verification queries do not apply to archives".into());
                }
                Ok(())
            }
            other => Err(format!(
                "{} is not a backup annexa can restore ({other}); use a PostgreSQL dump, an SQLite file or a tar/zst archive",
                backup.name
            )),
        }
    }
}

fn cell(row: &sqlx::sqlite::SqliteRow) -> Option<String> {
    use sqlx::Row;
    row.try_get::<i64, _>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get::<f64, _>(0).map(|v| v.to_string()))
        .or_else(|_| row.try_get::<String, _>(0))
        .ok()
}

/// Extracts a tar, tar.gz or zst (tar inside, or one file) into `out`; lists and hashes every file.
fn extract(path: &Path, out: &Path) -> Result<Vec<(String, u64, String)>, String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader: Box<dyn Read> = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| format!("not a zstd stream: {e}"))?,
        )
    } else {
        Box::new(file)
    };
    let tarred = name.contains(".tar") || name.ends_with(".tgz");
    if tarred {
        tar::Archive::new(reader)
            .unpack(out)
            .map_err(|e| format!("the archive is damaged: {e}"))?;
    } else {
        let mut reader = reader;
        let target = out.join(name.trim_end_matches(".zst"));
        let mut f = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        std::io::copy(&mut reader, &mut f).map_err(|e| format!("the archive is damaged: {e}"))?;
    }
    let mut listing = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, String)>) -> Result<(), String> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let sha = hash_path(&p).map_err(|e| e.to_string())?;
                out.push((
                    p.strip_prefix(root).unwrap_or(&p).display().to_string(),
                    size,
                    sha,
                ));
            }
        }
        Ok(())
    }
    walk(out, out, &mut listing)?;
    if listing.is_empty() {
        return Err("the archive holds no files".into());
    }
    Ok(listing)
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
            if due {
                let report = self.drill(d, newest, ctx).await;
                if report.succeeded() {
                    last_successful = Some(report.started_at);
                }
                drill = Some(report);
            }
        }
        let facts = BackupFacts {
            location: self.location(),
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
        let mut items = vec![EvidenceItem {
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
        }];
        if let Some(report) = &facts.drill {
            items.push(EvidenceItem {
                name: "restore-drill.json".into(),
                media_type: "application/json".into(),
                body: Body::Bytes(serde_json::to_vec_pretty(report).expect("serializes")),
                observed_at: now,
                effective_at: None,
                source: Source {
                    query: format!("restore drill of {}", report.backup),
                    ..Source::default()
                },
            });
        }
        Ok(Snapshot {
            items,
            facts: serde_json::to_value(facts).expect("facts serialize"),
        })
    }

    fn check(&self, facts: &serde_json::Value, as_of: DateTime<Utc>) -> Vec<Finding> {
        crate::check_stored::<BackupFacts>("backup", facts, |f| check(f, as_of))
    }

    fn figures(
        &self,
        facts: &serde_json::Value,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Vec<crate::FigureTable> {
        crate::figures_stored::<BackupFacts>(facts, figures)
    }
}

/// The backups seen at the newest collection, and its restore drill.
pub fn figures(f: &BackupFacts) -> Vec<crate::FigureTable> {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut backups = crate::FigureTable::new(
        &format!("Backups in {} (newest first)", f.location),
        &["Backup", "Modified", "Size (bytes)", "SHA-256"],
    );
    for b in f.backups.iter().take(10) {
        backups = backups.row([
            b.name.clone(),
            time(b.modified),
            b.size.to_string(),
            b.sha256.clone().unwrap_or_else(|| "–".into()),
        ]);
    }
    let mut drills = crate::FigureTable::new(
        "Restore drill",
        &[
            "Backup",
            "Started",
            "Restored",
            "Restore time (RTO)",
            "Backup age (RPO)",
            "Checks passed",
        ],
    );
    if let Some(d) = &f.drill {
        let passed = d.queries.iter().filter(|q| q.passed).count();
        drills = drills.row([
            d.backup.clone(),
            time(d.started_at),
            if d.restored {
                "yes".into()
            } else {
                format!("no: {}", d.error.as_deref().unwrap_or("failed"))
            },
            crate::human_duration(d.duration_seconds),
            crate::human_duration(d.backup_age_seconds),
            format!("{passed} of {}", d.queries.len()),
        ]);
    }
    if let Some(last) = f.last_successful_drill_at {
        drills.title = format!("Restore drill (last successful: {})", time(last));
    }
    vec![backups, drills]
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
                "the newest backup {} is from {}; backups may be {} s old (plus {} s grace)",
                newest.name,
                newest.modified.format("%Y-%m-%d %H:%M UTC"),
                f.max_age_seconds,
                f.grace_seconds
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
