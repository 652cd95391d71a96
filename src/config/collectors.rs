//! `[[collector]]` and `[[job]]`: what annexa collects, and the external jobs that ping it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use annexa_collectors::backup_restore::BackupRestoreConfig;
use annexa_collectors::cron_health::{CronHealthConfig, JobSchedule, JobSpec};
use annexa_collectors::github_alerts::GithubAlertsConfig;
use annexa_collectors::incident_log::IncidentLogConfig;
use annexa_collectors::outbound;
use annexa_collectors::policy_document::PolicyDocumentConfig;
use serde::Deserialize;

use crate::base::{Schedule, Secret, closed_set, parse_duration};
use crate::controls::Catalog;

closed_set! {
    /// The closed set of collector kinds. Every list of kinds, every message that names them
    /// and every `match` over them comes from this table: a new kind is a row here, its
    /// settings in [`CollectorKind`] and an arm in `evidence::registry::build`.
    pub enum Kind {
        PolicyDocument = "policy-document",
        CronHealth = "cron-health",
        IncidentLog = "incident-log",
        GithubAlerts = "github-alerts",
        BackupRestore = "backup-restore",
    }
}

impl Kind {
    /// Common keys this kind's own settings read too (each then gets the same value): a
    /// backup-restore's `grace` is both how late its runs may be and how much older than
    /// `max_backup_age` the newest backup may be.
    fn shared_keys(self) -> &'static [&'static str] {
        match self {
            Kind::BackupRestore => &["grace"],
            Kind::PolicyDocument | Kind::CronHealth | Kind::IncidentLog | Kind::GithubAlerts => &[],
        }
    }
}

/// One `[[job]]`: an external scheduled job that reports with `annexa ping`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawJob {
    name: Option<String>,
    schedule: Option<String>,
    period: Option<String>,
    timezone: Option<String>,
    grace: Option<String>,
    max_runtime: Option<String>,
    since: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

/// The fields every `[[collector]]` table has; the rest belongs to its kind.
#[derive(Debug, Deserialize)]
struct RawCollectorCommon {
    name: Option<String>,
    kind: Option<String>,
    schedule: Option<String>,
    max_age: Option<String>,
    grace: Option<String>,
    controls: Option<Vec<String>>,
    max_file_size_mib: Option<u64>,
}

const COMMON_COLLECTOR_KEYS: &[&str] = &[
    "name",
    "kind",
    "schedule",
    "max_age",
    "grace",
    "controls",
    "max_file_size_mib",
];

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub name: String,
    pub schedule: Schedule,
    /// Overrides the catalog's maximum evidence age for this collector's evidence.
    pub max_age: Option<Duration>,
    /// How late after its slot a run still counts as on time, for cron-health.
    pub grace: Duration,
    /// Replaces the catalog's controls for this collector.
    pub controls: Option<Vec<String>>,
    /// The largest source file this collector reads, in bytes.
    pub max_file_size: u64,
    pub kind: CollectorKind,
}

/// An external job that reports with pings.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub spec: JobSpec,
    /// The token `POST /ping/{job}` must present; None refuses HTTP pings for this job.
    pub token: Option<Secret<String>>,
}

/// The closed set of collector kinds, each with its own settings.
#[derive(Debug, Clone)]
pub enum CollectorKind {
    PolicyDocument(PolicyDocumentConfig),
    CronHealth(CronHealthConfig),
    IncidentLog(Box<IncidentLogConfig>),
    GithubAlerts(GithubAlertsConfig),
    BackupRestore(BackupRestoreConfig),
}

/// Whether a source setting is still the placeholder of a template: `CHANGE-ME`, `your-org`,
/// or a value in angle brackets (`<bucket>`).
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    v.contains("change-me") || v.contains("your-org") || (v.contains('<') && v.contains('>'))
}

impl CollectorConfig {
    /// The source settings still holding a placeholder, as `key = "value"`: a run of this
    /// collector would only record a failure, so `run`, `collect` and the worker refuse it.
    pub fn placeholders(&self) -> Vec<String> {
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let settings: Vec<(&str, String)> = match &self.kind {
            CollectorKind::PolicyDocument(c) => {
                c.paths.iter().map(|p| ("paths", path(p))).collect()
            }
            CollectorKind::CronHealth(_) => Vec::new(),
            CollectorKind::IncidentLog(c) => {
                let mut v: Vec<(&str, String)> = Vec::new();
                v.extend(c.register.as_deref().map(|p| ("register", path(p))));
                v.extend(c.register_object.clone().map(|o| ("register_object", o)));
                v.extend(c.postmortems.as_deref().map(|p| ("postmortems", path(p))));
                v.extend(c.github.as_ref().map(|g| ("github.repo", g.repo.clone())));
                v
            }
            CollectorKind::GithubAlerts(c) => c
                .repos
                .iter()
                .map(|r| ("repos", r.clone()))
                .chain(c.orgs.iter().map(|o| ("orgs", o.clone())))
                .collect(),
            CollectorKind::BackupRestore(c) => {
                let mut v: Vec<(&str, String)> = Vec::new();
                v.extend(c.path.as_deref().map(|p| ("path", path(p))));
                if let Some(s3) = &c.s3 {
                    v.push(("s3.bucket", s3.bucket.clone()));
                    v.push(("s3.prefix", s3.prefix.clone()));
                }
                v
            }
        };
        settings
            .into_iter()
            .filter(|(_, value)| is_placeholder(value))
            .map(|(key, value)| format!("{key} = \"{value}\""))
            .collect()
    }
}

impl CollectorKind {
    pub fn kind(&self) -> Kind {
        match self {
            CollectorKind::PolicyDocument(_) => Kind::PolicyDocument,
            CollectorKind::CronHealth(_) => Kind::CronHealth,
            CollectorKind::IncidentLog(_) => Kind::IncidentLog,
            CollectorKind::GithubAlerts(_) => Kind::GithubAlerts,
            CollectorKind::BackupRestore(_) => Kind::BackupRestore,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

pub(super) fn validate_collector(
    index: usize,
    mut table: toml::Table,
    catalog: &Catalog,
    insecure: bool,
    problems: &mut Vec<String>,
) -> Option<CollectorConfig> {
    let shared = table
        .get("kind")
        .and_then(|k| k.as_str())
        .and_then(Kind::parse)
        .map_or(&[][..], Kind::shared_keys);
    let mut common_table = toml::Table::new();
    for key in COMMON_COLLECTOR_KEYS {
        let value = if shared.contains(key) {
            table.get(*key).cloned()
        } else {
            table.remove(*key)
        };
        if let Some(v) = value {
            common_table.insert((*key).to_string(), v);
        }
    }
    let common: RawCollectorCommon = match common_table.try_into() {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("collector[{index}]: {e}"));
            return None;
        }
    };
    let label = match &common.name {
        Some(n) => format!("collector `{n}`"),
        None => format!("collector[{index}]"),
    };
    let mut ok = true;
    let mut problem = |p: String| {
        problems.push(format!("{label}: {p}"));
        ok = false;
    };
    if common.name.as_deref().is_none_or(str::is_empty) {
        problem("`name` is required".to_string());
    } else if let Some(n) = &common.name
        && !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problem(format!(
            "name `{n}` may contain only letters, digits, `-` and `_`"
        ));
    }
    let schedule = match common
        .schedule
        .as_deref()
        .unwrap_or("@daily")
        .parse::<Schedule>()
    {
        Ok(s) => Some(s),
        Err(e) => {
            problem(format!(
                "schedule `{}` is not a cron expression: {e}",
                common.schedule.as_deref().unwrap_or_default()
            ));
            None
        }
    };
    let max_age = match common.max_age.as_deref().map(parse_duration).transpose() {
        Ok(d) => d,
        Err(e) => {
            problem(format!("max_age: {e}"));
            None
        }
    };
    let grace = match parse_duration(common.grace.as_deref().unwrap_or("1h")) {
        Ok(d) => d,
        Err(e) => {
            problem(format!("grace: {e}"));
            Duration::ZERO
        }
    };
    let max_file_size = match common.max_file_size_mib.map(super::mebibytes) {
        None => Some(annexa_collectors::DEFAULT_MAX_SOURCE_BYTES),
        Some(Err(e)) => {
            problem(format!("max_file_size_mib {e}"));
            None
        }
        Some(Ok(bytes)) => Some(bytes),
    };
    if let Some(controls) = &common.controls {
        for c in controls {
            if catalog.get(c).is_none() {
                problem(format!("control `{c}` is not in the catalog"));
            }
        }
    }
    let kind = match common.kind.as_deref().map(|k| (k, Kind::parse(k))) {
        Some((_, Some(kind))) => match kind {
            Kind::PolicyDocument => {
                parse_kind(table, &mut problem).map(|c: PolicyDocumentConfig| {
                    // Source paths are not checked here: a source missing at run time is
                    // evidence of a problem (a failed run), not an invalid configuration.
                    for (doc, settings) in &c.documents {
                        for control in &settings.controls {
                            if catalog.get(control).is_none() {
                                problem(format!(
                                    "documents.{doc}: control `{control}` is not in the catalog"
                                ));
                            }
                        }
                    }
                    CollectorKind::PolicyDocument(c)
                })
            }
            Kind::CronHealth => parse_kind(table, &mut problem).map(CollectorKind::CronHealth),
            Kind::BackupRestore => checked_kind(table, &mut problem, BackupRestoreConfig::problems)
                .map(CollectorKind::BackupRestore),
            Kind::GithubAlerts => checked_kind(table, &mut problem, |c: &GithubAlertsConfig| {
                let mut p = c.problems();
                p.extend(
                    outbound::check_url(&c.base_url, insecure)
                        .err()
                        .map(|e| format!("base_url: {e}")),
                );
                p
            })
            .map(CollectorKind::GithubAlerts),
            Kind::IncidentLog => checked_kind(table, &mut problem, |c: &IncidentLogConfig| {
                let mut p = c.policy().err().unwrap_or_default();
                if let Some(g) = &c.github {
                    p.extend(
                        outbound::check_url(&g.base_url, insecure)
                            .err()
                            .map(|e| format!("github.base_url: {e}")),
                    );
                }
                p
            })
            .map(|c| CollectorKind::IncidentLog(Box::new(c))),
        },
        None | Some(("", None)) => {
            problem(format!("`kind` is required; one of: {}", Kind::list()));
            None
        }
        Some((other, None)) => {
            problem(format!(
                "unknown collector kind `{other}`; this build has: {}",
                Kind::list()
            ));
            None
        }
    };
    if !ok {
        return None;
    }
    Some(CollectorConfig {
        name: common.name?,
        schedule: schedule?,
        max_age,
        grace,
        controls: common.controls,
        max_file_size: max_file_size?,
        kind: kind?,
    })
}

pub(super) fn validate_job(
    index: usize,
    raw: RawJob,
    base_dir: &Path,
    env: &[(String, String)],
    problems: &mut Vec<String>,
) -> Option<JobConfig> {
    let label = match &raw.name {
        Some(n) => format!("job `{n}`"),
        None => format!("job[{index}]"),
    };
    let before = problems.len();
    let mut problem = |p: String| problems.push(format!("{label}: {p}"));
    let name = raw.name.clone().unwrap_or_default();
    if name.is_empty() {
        problem("`name` is required".into());
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problem(format!(
            "name `{name}` may contain only letters, digits, `-` and `_`"
        ));
    }
    let mut duration = |key: &str, value: Option<&str>| -> Option<Duration> {
        match value.map(parse_duration).transpose() {
            Ok(d) => d,
            Err(e) => {
                problem(format!("{key}: {e}"));
                None
            }
        }
    };
    let grace = duration("grace", Some(raw.grace.as_deref().unwrap_or("15m")));
    let max_runtime = duration("max_runtime", raw.max_runtime.as_deref());
    let period = duration("period", raw.period.as_deref());
    let schedule = match (raw.schedule, period) {
        (Some(expression), None) => Some(JobSchedule::Cron {
            expression,
            timezone: raw.timezone.unwrap_or_else(|| "UTC".into()),
        }),
        (None, Some(p)) => Some(JobSchedule::Period {
            seconds: p.as_secs() as i64,
        }),
        _ => {
            problem("set exactly one of `schedule` (cron) and `period` (e.g. \"1h\")".into());
            None
        }
    };
    let since = match raw
        .since
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
        .transpose()
    {
        Ok(s) => s.map(|s| s.with_timezone(&chrono::Utc)),
        Err(e) => {
            problem(format!("since: {e}; write e.g. 2026-11-01T00:00:00Z"));
            None
        }
    };
    let token = match (&raw.token_env, &raw.token_file) {
        (Some(var), None) => match env.iter().find(|(k, _)| k == var) {
            Some((_, v)) if !v.is_empty() => Some(Secret::new(v.clone())),
            _ => {
                problem(format!(
                    "token_env: the environment variable {var} is not set"
                ));
                None
            }
        },
        (None, Some(file)) => {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base_dir.join(file)
            };
            match std::fs::read_to_string(&path) {
                Ok(t) if !t.trim().is_empty() => Some(Secret::new(t.trim().to_string())),
                Ok(_) => {
                    problem(format!("token_file {} is empty", path.display()));
                    None
                }
                Err(e) => {
                    problem(format!("token_file {}: {e}", path.display()));
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            problem("set one of `token_env` and `token_file`, not both".into());
            None
        }
        (None, None) => None,
    };
    let spec = JobSpec {
        name,
        schedule: schedule?,
        grace_seconds: grace.map_or(0, |g| g.as_secs() as i64),
        max_runtime_seconds: max_runtime.map(|d| d.as_secs() as i64),
        origin: "job".into(),
        since,
    };
    if let Err(e) = spec.validate() {
        problems.push(format!("{label}: {e}"));
    }
    (problems.len() == before).then_some(JobConfig { spec, token })
}

/// Parses a kind's settings, then reports every problem they find in themselves.
fn checked_kind<T: for<'de> Deserialize<'de>>(
    table: toml::Table,
    problem: &mut dyn FnMut(String),
    problems_of: impl Fn(&T) -> Vec<String>,
) -> Option<T> {
    let settings = parse_kind(table, problem)?;
    let problems = problems_of(&settings);
    let ok = problems.is_empty();
    problems.into_iter().for_each(&mut *problem);
    ok.then_some(settings)
}

fn parse_kind<T: for<'de> Deserialize<'de>>(
    mut table: toml::Table,
    problem: &mut dyn FnMut(String),
) -> Option<T> {
    // Serde stops at the first wrong value: take the key it names out and try again, so every
    // wrong key of the table is reported at once.
    let mut found = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    loop {
        match toml::Value::Table(table.clone()).try_into::<T>() {
            Ok(v) if found.is_empty() => return Some(v),
            Ok(_) => break,
            Err(e) => {
                let message = e.to_string().trim().to_string();
                // A key taken out is then missing: that says nothing new (serde checks for
                // missing fields last, after every present one).
                if removed
                    .iter()
                    .any(|k| message.starts_with(&format!("missing field `{k}`")))
                {
                    break;
                }
                let key = message
                    .rsplit_once("in `")
                    .and_then(|(_, k)| k.strip_suffix('`'))
                    .and_then(|k| k.split('.').next())
                    .map(str::to_string);
                found.push(message);
                match key {
                    Some(k) if table.remove(&k).is_some() => removed.push(k),
                    _ => break,
                }
            }
        }
    }
    found.into_iter().for_each(problem);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a kind's own settings have a field `key` (serde names an unknown field before
    /// any missing one, and a value of the wrong type is not an unknown field).
    fn reads(kind: Kind, key: &str) -> bool {
        let table = toml::Value::Table(toml::Table::from_iter([(
            key.to_string(),
            toml::Value::String("1h".into()),
        )]));
        let error = match kind {
            Kind::PolicyDocument => table.try_into::<PolicyDocumentConfig>().err(),
            Kind::CronHealth => table.try_into::<CronHealthConfig>().err(),
            Kind::IncidentLog => table.try_into::<IncidentLogConfig>().err(),
            Kind::GithubAlerts => table.try_into::<GithubAlertsConfig>().err(),
            Kind::BackupRestore => table.try_into::<BackupRestoreConfig>().err(),
        };
        !error.is_some_and(|e| e.to_string().contains("unknown field"))
    }

    #[test]
    fn a_common_key_that_a_kind_reads_too_reaches_both() {
        for kind in Kind::ALL {
            for key in COMMON_COLLECTOR_KEYS {
                assert_eq!(
                    reads(*kind, key),
                    kind.shared_keys().contains(key),
                    "`{key}` of a {kind} collector"
                );
            }
        }
        let table: toml::Table = toml::from_str(
            r#"
            name = "backups"
            kind = "backup-restore"
            path = "backups"
            max_backup_age = "25h"
            grace = "2h"
            "#,
        )
        .unwrap();
        let mut problems = Vec::new();
        let c = validate_collector(0, table, &Catalog::default_catalog(), false, &mut problems)
            .expect("valid");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.grace, Duration::from_secs(7200));
        let CollectorKind::BackupRestore(b) = c.kind else {
            panic!("a backup-restore collector")
        };
        assert_eq!(b.grace, "2h");
    }
}
