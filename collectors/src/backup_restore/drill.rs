//! Restore drills: the newest backup restored into a scratch target annexa creates and removes
//! (a marked PostgreSQL database, an SQLite copy, an extracted archive), then the verification
//! queries with their expectations.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use super::listing::hash_path;
use super::seconds;
use super::{BackupFile, BackupRestore, DrillConfig, DrillReport, QueryResult, VerifyQuery};
use crate::CollectContext;

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

pub(super) fn parse_expect(text: &str) -> Option<(&'static str, f64)> {
    let t = text.trim();
    for op in [">=", "<=", "!=", "=", ">", "<"] {
        if let Some(rest) = t.strip_prefix(op) {
            return rest.trim().parse::<f64>().ok().map(|n| (op, n));
        }
    }
    None
}

pub(super) fn judge(q: &VerifyQuery, value: Option<&str>, now: DateTime<Utc>) -> (String, bool) {
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

/// What a drill needs before it starts, checked without running it (`annexa check`): the
/// admin URL of the scratch server when one is configured, and its tools.
pub(super) fn ready(drill: &DrillConfig) -> Result<(), String> {
    let Some(var) = drill.postgres_url_env.as_deref() else {
        return Ok(());
    };
    Postgres::from_env(var)?;
    for program in ["pg_restore", "psql"] {
        if !tool(program).is_file() {
            return Err(format!(
                "{program} is not installed (PostgreSQL dumps are restored with it): install the PostgreSQL client tools"
            ));
        }
    }
    Ok(())
}

fn version(program: &str) -> String {
    Command::new(tool(program))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{program}: {e}"))
}

impl BackupRestore {
    pub(super) async fn drill(
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
                report.scratch = "drill.sqlite (a copy in the drill's scratch folder)".into();
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
                report.scratch = "extract/ (in the drill's scratch folder)".into();
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
