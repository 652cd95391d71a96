//! Configuration: `annexa.toml`, then `ANNEXA_<SECTION>__<KEY>` environment variables, then flags.
//!
//! The file is parsed into loose raw types first, then validated into [`Config`]. Validation
//! collects every problem (unknown keys, bad cron expressions, bad durations, missing files,
//! unknown collector kinds) and reports them all at once in a [`ConfigError`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use annexa_collectors::cron_health::{JobSchedule, JobSpec};
use annexa_collectors::{FindingCode, Level};
use annexa_reports::Format;
use serde::Deserialize;

mod alerts;
mod collectors;
pub mod soa;
mod store;
mod worker;

pub use alerts::{AlertsConfig, EmailConfig, Mode, QuietHours, SinkConfig, SinkKind, SmtpTls};
pub use collectors::{CollectorConfig, CollectorKind, JobConfig, Kind};
pub use worker::{VerifyConfig, WorkerConfig};

use crate::base::{Schedule, Secret, parse_duration};
use crate::controls::Catalog;
use crate::store::StoreConfig;

/// The prefix of environment variables that override config keys; `__` separates levels.
pub const ENV_PREFIX: &str = "ANNEXA_";

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration {} ({} problem{}):",
            self.path.display(),
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        write!(
            f,
            "fix them and run again; annexa.example.toml documents every option"
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written)

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    organization: RawOrganization,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    report: RawReport,
    #[serde(default, rename = "collector")]
    collectors: Vec<toml::Table>,
    #[serde(default, rename = "job")]
    jobs: Vec<collectors::RawJob>,
    #[serde(default)]
    controls: BTreeMap<String, crate::controls::ControlOverride>,
    #[serde(default)]
    findings: RawFindings,
    #[serde(default)]
    worker: worker::RawWorker,
    #[serde(default)]
    alerts: alerts::RawAlerts,
    #[serde(default, rename = "sink")]
    sinks: Vec<alerts::RawSink>,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default)]
    verdicts: RawVerdicts,
    #[serde(default)]
    verify: worker::RawVerify,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    soa: RawSoa,
    #[serde(default)]
    attest: RawAttest,
    #[serde(default)]
    sample: SampleSizes,
}

/// `[attest]`: how attested evidence is taken (`annexa attach`, `annexa review`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttest {
    allow_self_review: Option<bool>,
    max_file_size_mib: Option<u64>,
}

/// `[sample]`: how many items `annexa sample` draws by how often the sampled thing happens
/// (the sizes auditors commonly use for a period's test of operating effectiveness). For
/// several a day, the size grows from `daily` with how many a day, up to `several_a_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSizes {
    pub annual: usize,
    pub quarterly: usize,
    pub monthly: usize,
    pub weekly: usize,
    pub daily: usize,
    pub several_a_day: usize,
}

impl Default for SampleSizes {
    fn default() -> Self {
        SampleSizes {
            annual: 1,
            quarterly: 2,
            monthly: 2,
            weekly: 5,
            daily: 25,
            several_a_day: 60,
        }
    }
}

/// `[attest]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestConfig {
    /// The attester may approve their own evidence (default false; a report says so).
    pub allow_self_review: bool,
    /// The largest file `annexa attach` stores (default 100 MiB).
    pub max_file_size: u64,
}

impl Default for AttestConfig {
    fn default() -> Self {
        AttestConfig {
            allow_self_review: false,
            max_file_size: 100 << 20,
        }
    }
}

/// A `max_file_size_mib` setting in bytes (a size too large to count is no limit).
fn mebibytes(mib: u64) -> Result<u64, &'static str> {
    match mib {
        0 => Err("must be at least 1"),
        mib => Ok(mib.saturating_mul(1024 * 1024)),
    }
}

/// `[soa]`: where the Statement of Applicability is.
#[derive(Debug, Default, Deserialize)]
struct RawSoa {
    file: Option<PathBuf>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

impl RawLog {
    /// The settings, and what is wrong with them.
    fn validate(self, problems: &mut Vec<String>) -> LogSettings {
        let format = self.format.and_then(|f| {
            <LogFormat as clap::ValueEnum>::from_str(&f, true)
                .map_err(|_| {
                    problems.push(format!(
                        "log.format: `{f}` is neither \"text\" nor \"json\""
                    ))
                })
                .ok()
        });
        if let Some(level) = &self.level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
        {
            problems.push(format!(
                "log.level: `{level}` is not a filter ({e}); write e.g. \"info\" or \"annexa=debug\""
            ));
        }
        LogSettings {
            format,
            level: self.level,
        }
    }
}

/// `[log]`: how log lines on stderr are written. `--log-format` (or `ANNEXA_LOG_FORMAT`) and
/// `ANNEXA_LOG` win over it. Read before the rest of the config by [`log_settings`], since the
/// logger starts first.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    /// Which lines: an env-filter (`warn`, the default; `info`; `annexa=debug`).
    pub level: Option<String>,
}

/// A log line's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-01T15:02:02.874722Z  WARN annexa::ops::scheduler: …`
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// `[log]` of the config at `path` with the environment over it, or the defaults when the file
/// cannot be read (the command then reports that itself).
pub fn log_settings(path: &Path) -> LogSettings {
    let Ok(text) = read_config(path) else {
        return LogSettings::default();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return LogSettings::default();
    };
    let mut tree = toml::Value::Table(table);
    for (name, value) in std::env::vars() {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX)
            && rest.to_ascii_lowercase().starts_with("log__")
        {
            let _ = overlay(&mut tree, rest, &value);
        }
    }
    tree.get("log")
        .cloned()
        .and_then(|log| log.try_into::<RawLog>().ok())
        .map(|raw| raw.validate(&mut Vec::new()))
        .unwrap_or_default()
}

/// `[verdicts]`: how controls are judged over a period, and how long an exception may last.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdicts {
    min_fresh_share: Option<f64>,
    max_exception: Option<String>,
}

/// `[outbound]`: the one escape from the outbound policy (https to public addresses only).
#[derive(Debug, Default, Deserialize)]
struct RawOutbound {
    allow_insecure_urls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawOrganization {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawLedger {
    origin: Option<String>,
    key_file: Option<PathBuf>,
    publish: Option<String>,
    checkpoint_every_run: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawReport {
    out: Option<PathBuf>,
    schedule: Option<String>,
    formats: Option<Vec<String>>,
    csv_bom: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawFindings {
    #[serde(default)]
    levels: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Valid (what the engine uses)

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, and the folder relative paths are resolved against.
    pub path: PathBuf,
    pub base_dir: PathBuf,
    pub organization: String,
    pub store: StoreConfig,
    pub database_url: Secret<String>,
    pub ledger: LedgerConfig,
    /// Where `annexa report` writes bundles unless `--out` says otherwise.
    pub report_dir: PathBuf,
    /// When the worker writes a report of the previous month, and in which formats.
    pub report_schedule: Option<(Schedule, Vec<Format>)>,
    /// `[report] csv_bom`: a report's CSV files start with a UTF-8 byte order mark (default).
    pub csv_bom: bool,
    pub worker: WorkerConfig,
    pub alerts: AlertsConfig,
    pub collectors: Vec<CollectorConfig>,
    pub jobs: Vec<JobConfig>,
    pub catalog: Catalog,
    pub levels: BTreeMap<FindingCode, Level>,
    /// `[outbound] allow_insecure_urls` (or its older spelling under `[alerts]`): http and
    /// loopback or private addresses allowed for every outbound URL, for tests and relays
    /// inside a private network.
    pub allow_insecure_urls: bool,
    pub verdicts: VerdictsConfig,
    pub verify: VerifyConfig,
    pub log: LogSettings,
    /// The Statement of Applicability, when `[soa] file` names one. The controls it excludes
    /// are not in `catalog` (never judged, never alerted on).
    pub soa: Option<soa::Soa>,
    pub attest: AttestConfig,
    pub sample: SampleSizes,
    /// What is not wrong enough to refuse the config, but is worth saying (printed once).
    pub warnings: Vec<String>,
}

/// `[verdicts]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictsConfig {
    /// Over a period, a control with fresh evidence for less than this share of it is
    /// `not_effective` (default 0.9).
    pub min_fresh_share: f64,
    /// The longest an accepted exception may last (default 365 days).
    pub max_exception: Duration,
}

impl Default for VerdictsConfig {
    fn default() -> Self {
        VerdictsConfig {
            min_fresh_share: 0.9,
            max_exception: Duration::from_secs(365 * 86_400),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The checkpoint origin line (C2SP tlog-checkpoint).
    pub origin: String,
    pub key_file: PathBuf,
    /// The second place checkpoints are published to, beside the store.
    pub publish: Option<Publish>,
    /// A checkpoint after every run (default), so the tail no checkpoint covers is at most the
    /// run in flight; otherwise only the worker's daily one and `annexa checkpoint`.
    pub checkpoint_every_run: bool,
}

/// Where checkpoints are published besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// A folder (e.g. a mounted share another team owns).
    Dir(PathBuf),
    /// A URL checkpoints are PUT under (`<url>/<date>/<tree size>`).
    Url(String),
}

/// The largest config file annexa reads.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the config file: a regular file of at most 4 MiB (`-c /dev/zero` must not fill memory).
fn read_config(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{} does not exist: run `annexa init` to write one, or pass --config FILE",
                path.display()
            )
        } else {
            format!("cannot read {}: {e}", path.display())
        }
    })?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file; pass the annexa.toml file with --config FILE",
            path.display()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "{} is larger than 4 MiB; a config file is far smaller: check the path",
            path.display()
        ));
    }
    Ok(text)
}

/// `[report] schedule` and `formats`: the worker's scheduled report (all formats by default).
fn validate_report_schedule(
    schedule: Option<String>,
    formats: Option<Vec<String>>,
    problems: &mut Vec<String>,
) -> Option<(Schedule, Vec<Format>)> {
    let formats = match formats {
        None => Format::ALL.to_vec(),
        Some(names) => names
            .iter()
            .filter_map(|n| {
                n.parse::<Format>()
                    .map_err(|e| problems.push(format!("report.formats: {e}")))
                    .ok()
            })
            .collect(),
    };
    let text = schedule?;
    match text.parse::<Schedule>() {
        Ok(s) => Some((s, formats)),
        Err(e) => {
            problems.push(format!(
                "report.schedule: `{text}` is not a cron expression: {e}"
            ));
            None
        }
    }
}

impl Config {
    /// Reads, layers and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let fail = |problem: String| ConfigError {
            path: path.to_path_buf(),
            problems: vec![problem],
        };
        let text = read_config(path).map_err(fail)?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::parse(&text, path, &env)
    }

    /// Validates `text` as the config at `path`, with `env` layered over it.
    pub fn parse(text: &str, path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut tree = match text.parse::<toml::Table>() {
            Ok(t) => toml::Value::Table(t),
            Err(e) => {
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    problems: vec![format!("not valid TOML: {e}")],
                });
            }
        };
        if let Some(url) = tree
            .get("database")
            .and_then(|d| d.get("url"))
            .and_then(|u| u.as_str())
            && crate::base::redact::has_password(url)
        {
            problems.push(
                "database.url in the file contains a password: keep secrets out of the file, set ANNEXA_DATABASE__URL in the environment instead"
                    .to_string(),
            );
        }
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX)
                && rest.contains("__")
                && let Err(e) = overlay(&mut tree, rest, value)
            {
                problems.push(format!("environment variable {name}: {e}"));
            }
        }

        let mut unknown = Vec::new();
        let raw: RawConfig = match serde_ignored::deserialize(tree, |p| unknown.push(p.to_string()))
        {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(e.to_string());
                RawConfig::default()
            }
        };
        for key in unknown {
            problems.push(format!("unknown key `{key}`"));
        }

        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        };

        let organization = raw
            .organization
            .name
            .unwrap_or_else(|| "Unnamed organization".to_string());
        let store = store::validate_store(raw.store, &resolve, &mut problems);
        let database_url = raw
            .database
            .url
            .unwrap_or_else(|| "sqlite://data/annexa.db".to_string());
        let database_url = match resolve_database_url(&database_url, &base_dir) {
            Ok(u) => Secret::new(u),
            Err(e) => {
                problems.push(e);
                Secret::new(String::new())
            }
        };
        let ledger = LedgerConfig {
            origin: raw
                .ledger
                .origin
                .unwrap_or_else(|| format!("annexa/{}", slug(&organization))),
            key_file: resolve(
                &raw.ledger
                    .key_file
                    .unwrap_or_else(|| PathBuf::from("keys/annexa.key")),
            ),
            checkpoint_every_run: raw.ledger.checkpoint_every_run.unwrap_or(true),
            publish: raw.ledger.publish.map(|p| {
                if p.starts_with("https://") || p.starts_with("http://") {
                    Publish::Url(p.trim_end_matches('/').to_string())
                } else {
                    Publish::Dir(resolve(Path::new(&p)))
                }
            }),
        };

        let report_dir = resolve(
            &raw.report
                .out
                .unwrap_or_else(|| PathBuf::from("out/reports")),
        );
        let csv_bom = raw.report.csv_bom.unwrap_or(true);
        let report_schedule =
            validate_report_schedule(raw.report.schedule, raw.report.formats, &mut problems);
        let worker = worker::validate_worker(raw.worker, &mut problems);
        let verify = worker::validate_verify(raw.verify, &mut problems);
        let log = raw.log.validate(&mut problems);
        let allow_insecure_urls = raw.outbound.allow_insecure_urls.unwrap_or(false)
            || raw.alerts.allow_insecure_urls.unwrap_or(false);
        if let Some(Publish::Url(url)) = &ledger.publish
            && let Err(e) = annexa_collectors::outbound::check_url(url, allow_insecure_urls)
        {
            problems.push(format!("ledger.publish: {e}"));
        }
        let alerts = alerts::validate_alerts(
            raw.alerts,
            raw.sinks,
            env,
            allow_insecure_urls,
            &mut problems,
        );

        let mut verdicts = VerdictsConfig::default();
        match raw.verdicts.min_fresh_share {
            Some(share) if !(0.0..=1.0).contains(&share) => problems.push(format!(
                "verdicts.min_fresh_share: {share} is not between 0 and 1"
            )),
            Some(share) => verdicts.min_fresh_share = share,
            None => {}
        }
        if let Some(text) = &raw.verdicts.max_exception {
            match parse_duration(text) {
                Ok(d) => verdicts.max_exception = d,
                Err(e) => problems.push(format!("verdicts.max_exception: {e}")),
            }
        }

        let mut catalog = match Catalog::with_overrides(raw.controls) {
            Ok(c) => c,
            Err(errs) => {
                problems.extend(errs);
                Catalog::default_catalog()
            }
        };

        let mut levels = BTreeMap::new();
        for (code, level) in raw.findings.levels {
            match (code.parse::<FindingCode>(), parse_level(&level)) {
                (Ok(c), Ok(l)) => {
                    levels.insert(c, l);
                }
                (Err(e), _) | (_, Err(e)) => problems.push(format!("findings.levels: {e}")),
            }
        }

        let mut collectors = Vec::new();
        for (i, table) in raw.collectors.into_iter().enumerate() {
            if let Some(c) = collectors::validate_collector(
                i,
                table,
                &catalog,
                allow_insecure_urls,
                &mut problems,
            ) {
                collectors.push(c);
            }
        }
        let mut jobs = Vec::new();
        for (i, raw) in raw.jobs.into_iter().enumerate() {
            if let Some(j) = collectors::validate_job(i, raw, &base_dir, env, &mut problems) {
                jobs.push(j);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let names = collectors
            .iter()
            .map(|c| &c.name)
            .chain(jobs.iter().map(|j| &j.spec.name));
        for name in names {
            if [crate::controls::ATTESTED, crate::controls::CUSTODY].contains(&name.as_str()) {
                problems.push(format!(
                    "the name `{name}` is annexa's own source; give the collector or job another name"
                ));
            }
            if !seen.insert(name.clone()) {
                problems.push(format!(
                    "the name `{name}` is used twice; collector and job names must be unique"
                ));
            }
        }

        let mut warnings = Vec::new();
        let soa = raw.soa.file.map(|file| {
            let names = collectors.iter().map(|c| c.name.clone()).collect();
            let known = crate::controls::annex_a()
                .iter()
                .map(|c| c.id.clone())
                .chain(catalog.controls().iter().map(|c| c.id.clone()))
                .collect();
            let mut evidenced: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for c in &collectors {
                let ids = c
                    .controls
                    .clone()
                    .unwrap_or_else(|| catalog.controls_for_kind(c.kind.name()));
                for id in ids {
                    evidenced
                        .entry(id)
                        .or_default()
                        .push(format!("`{}`", c.name));
                }
            }
            let file = resolve(&file);
            soa::load(
                &file,
                &known,
                &names,
                &evidenced,
                &mut problems,
                &mut warnings,
            )
        });
        let soa = soa.flatten();
        if let Some(soa) = &soa {
            // Every control applies unless the SoA excludes it; those no collector evidences
            // are judged on attested evidence.
            catalog.exclude(soa.excluded().map(|r| r.control.as_str()));
            catalog.attest(
                crate::controls::annex_a()
                    .iter()
                    .map(|c| c.id.as_str())
                    .filter(|id| soa.row(id).is_none_or(|r| r.applicable != Some(false))),
            );
        }

        let mut attest = AttestConfig::default();
        if let Some(allow) = raw.attest.allow_self_review {
            attest.allow_self_review = allow;
        }
        match raw.attest.max_file_size_mib.map(mebibytes) {
            Some(Err(e)) => problems.push(format!("attest.max_file_size_mib {e}")),
            Some(Ok(bytes)) => attest.max_file_size = bytes,
            None => {}
        }

        let sample = raw.sample;
        if [
            sample.annual,
            sample.quarterly,
            sample.monthly,
            sample.weekly,
            sample.daily,
        ]
        .contains(&0)
            || sample.several_a_day < sample.daily
        {
            problems.push(
                "sample: every size must be at least 1, and several_a_day at least daily".into(),
            );
        }

        if !problems.is_empty() {
            return Err(ConfigError {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Config {
            path: path.to_path_buf(),
            base_dir,
            organization,
            store: store.expect("store validated when there are no problems"),
            database_url,
            ledger,
            report_dir,
            report_schedule,
            csv_bom,
            worker,
            alerts,
            collectors,
            jobs,
            catalog,
            levels,
            allow_insecure_urls,
            verdicts,
            verify,
            log,
            soa,
            attest,
            sample,
            warnings,
        })
    }

    pub fn job(&self, name: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.spec.name == name)
    }

    /// Every job cron-health watches: each `[[job]]`, and each collector (its runs are its
    /// heartbeats, tagged with their slots).
    pub fn job_specs(&self) -> Vec<JobSpec> {
        let mut specs: Vec<JobSpec> = self.jobs.iter().map(|j| j.spec.clone()).collect();
        specs.extend(self.collectors.iter().map(|c| JobSpec {
            name: c.name.clone(),
            schedule: JobSchedule::Cron {
                expression: c.schedule.text.clone(),
                timezone: "UTC".to_string(),
            },
            grace_seconds: c.grace.as_secs() as i64,
            max_runtime_seconds: None,
            origin: "collector".to_string(),
            since: None,
        }));
        specs
    }

    pub fn collector(&self, name: &str) -> Option<&CollectorConfig> {
        self.collectors.iter().find(|c| c.name == name)
    }

    /// The level of a finding code, after the config's overrides.
    pub fn level(&self, code: FindingCode) -> Level {
        self.levels
            .get(&code)
            .copied()
            .unwrap_or(code.default_level())
    }
}

fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "fail" => Ok(Level::Fail),
        "warn" => Ok(Level::Warn),
        other => Err(format!("level `{other}` must be `fail` or `warn`")),
    }
}

fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

/// Sets the key named by `ANNEXA_A__B__C` (without the prefix) in `node`. Numeric segments
/// index arrays (`ANNEXA_COLLECTOR__0__SCHEDULE`).
fn overlay(node: &mut toml::Value, path: &str, raw: &str) -> Result<(), String> {
    let segments: Vec<String> = path.split("__").map(|s| s.to_ascii_lowercase()).collect();
    set_path(node, &segments, env_value(raw))
}

fn set_path(node: &mut toml::Value, segments: &[String], value: toml::Value) -> Result<(), String> {
    let Some((head, rest)) = segments.split_first() else {
        return Err("names no key".to_string());
    };
    let child = match node {
        toml::Value::Table(t) if rest.is_empty() => {
            t.insert(head.clone(), value);
            return Ok(());
        }
        toml::Value::Table(t) => t
            .entry(head.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new())),
        toml::Value::Array(items) => {
            let i: usize = head.parse().map_err(|_| {
                format!("`{head}` must be an index into a list, e.g. COLLECTOR__0__…")
            })?;
            let item = items
                .get_mut(i)
                .ok_or_else(|| format!("the list has no entry {i}"))?;
            if rest.is_empty() {
                *item = value;
                return Ok(());
            }
            item
        }
        _ => {
            return Err(format!(
                "cannot set `{head}` inside a value that is not a table"
            ));
        }
    };
    set_path(child, rest, value)
}

/// Environment values are strings, except plain booleans, integers and `[…]` lists.
fn env_value(raw: &str) -> toml::Value {
    match raw {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if raw.starts_with('[')
        && let Ok(mut t) = format!("v = {raw}").parse::<toml::Table>()
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_string())
}

/// Makes a relative SQLite path relative to the config's folder and lets SQLite create the file.
fn resolve_database_url(url: &str, base_dir: &Path) -> Result<String, String> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err("database.url names no SQLite file (e.g. sqlite://data/annexa.db)".into());
        }
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        };
        let query = if query.is_empty() {
            "mode=rwc".to_string()
        } else {
            query.to_string()
        };
        return Ok(format!("sqlite://{}?{query}", path.display()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if !cfg!(feature = "postgres") {
            return Err(
                "PostgreSQL is not available in this build: rebuild with `--features postgres`"
                    .into(),
            );
        }
        return Ok(url.to_string());
    }
    Err("database.url must start with sqlite:// or postgres://".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(text, Path::new("/tmp/annexa-test/annexa.toml"), &env)
    }

    #[test]
    fn attest_settings_are_checked_and_annexa_s_own_source_names_are_reserved() {
        let c = parse(
            "[attest]\nallow_self_review = true\nmax_file_size_mib = 2\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.attest,
            AttestConfig {
                allow_self_review: true,
                max_file_size: 2 << 20
            }
        );
        assert_eq!(parse("", &[]).unwrap().attest, AttestConfig::default());
        let err = parse(
            "[attest]\nmax_file_size_mib = 0\n\n[[collector]]\nname = \"attested\"\nkind = \"policy-document\"\nschedule = \"0 3 * * *\"\npaths = [\"p\"]\n",
            &[],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(
            all.contains("attest.max_file_size_mib must be at least 1"),
            "{all}"
        );
        assert!(
            all.contains("the name `attested` is annexa's own source"),
            "{all}"
        );
        assert!(
            parse("[attest]\nallow_self_reviews = true\n", &[]).is_err(),
            "a typo is refused"
        );
    }

    #[test]
    fn report_csv_files_have_a_byte_order_mark_unless_turned_off() {
        assert!(parse("", &[]).unwrap().csv_bom);
        assert!(!parse("[report]\ncsv_bom = false\n", &[]).unwrap().csv_bom);
    }

    #[test]
    fn a_template_placeholder_in_a_source_is_named_and_real_sources_are_not() {
        let c = parse(
            "[[collector]]\nname = \"gh\"\nkind = \"github-alerts\"\nrepos = [\"your-org/your-repo\", \"octo/app\"]\norgs = [\"CHANGE-ME\"]\n\
             [[collector]]\nname = \"docs\"\nkind = \"policy-document\"\npaths = [\"<policy folder>\", \"policies\"]\n\
             [[collector]]\nname = \"real\"\nkind = \"policy-document\"\npaths = [\"handbook/your-team\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.collectors[0].placeholders(),
            ["repos = \"your-org/your-repo\"", "orgs = \"CHANGE-ME\""]
        );
        assert_eq!(
            c.collectors[1].placeholders(),
            ["paths = \"<policy folder>\""]
        );
        assert!(c.collectors[2].placeholders().is_empty());
    }

    #[test]
    fn an_empty_file_gives_the_embedded_defaults() {
        let c = parse("", &[]).unwrap();
        assert!(matches!(c.store, StoreConfig::Fs { ref path } if path.ends_with("data/store")));
        assert_eq!(
            c.database_url.expose(),
            "sqlite:///tmp/annexa-test/data/annexa.db?mode=rwc"
        );
        assert!(c.collectors.is_empty());
        assert_eq!(c.catalog.controls().len(), 10);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse(
            r#"
            colour = "blue"
            [store]
            kind = "ftp"
            [[collector]]
            name = "a"
            kind = "policy-document"
            schedule = "not cron"
            max_age = "soon"
            paths = ["/tmp"]
            controls = ["A.0.0"]
            [[collector]]
            name = "b"
            kind = "tea-leaves"
            [findings.levels]
            evidence-stale = "loud"
            "#,
            &[],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for expected in [
            "unknown key `colour`",
            "store.kind `ftp`",
            "schedule `not cron`",
            "max_age",
            "control `A.0.0` is not in the catalog",
            "unknown collector kind `tea-leaves`",
            "level `loud`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(err.problems.len(), 7, "{all}");
    }

    #[test]
    fn an_unknown_kind_lists_every_kind() {
        let err = parse("[[collector]]\nname = \"x\"\nkind = \"nope\"\n", &[]).unwrap_err();
        let message = &err.problems[0];
        assert!(
            message.contains("unknown collector kind `nope`"),
            "{message}"
        );
        for kind in Kind::ALL {
            assert!(
                message.contains(kind.as_str()),
                "{kind} missing in: {message}"
            );
        }
        assert_eq!(Kind::ALL.len(), 5);
    }

    /// Issue 15: only the first of several wrong types in a collector table was reported.
    #[test]
    fn every_wrong_type_in_a_collector_table_is_reported() {
        let err = parse(
            "[[collector]]\nname = \"p\"\nkind = \"policy-document\"\npaths = 1\nreview_grace_days = \"x\"\nextensions = 3\n",
            &[],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for key in ["paths", "review_grace_days", "extensions"] {
            assert!(
                all.contains(&format!("in `{key}`")),
                "{key} missing in:\n{all}"
            );
        }
        assert_eq!(err.problems.len(), 3, "{all}");
    }

    #[test]
    fn unknown_keys_inside_a_collector_are_reported() {
        let err = parse(
            "[[collector]]\nname = \"p\"\nkind = \"policy-document\"\npaths = [\"/tmp\"]\npathz = 1\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.problems[0].contains("unknown field `pathz`"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = parse(
            "[store]\nkind = \"fs\"\n[[collector]]\nname = \"p\"\nkind = \"policy-document\"\npaths = [\"/tmp\"]\n",
            &[
                ("ANNEXA_STORE__KIND", "s3"),
                ("ANNEXA_STORE__BUCKET", "evidence"),
                ("ANNEXA_STORE__ENDPOINT", "http://127.0.0.1:9000"),
                ("ANNEXA_DATABASE__URL", "postgres://u:pw@127.0.0.1/annexa"),
                ("ANNEXA_COLLECTOR__0__SCHEDULE", "0 4 * * *"),
                ("ANNEXA_CONFIG", "ignored: no double underscore"),
            ],
        )
        .unwrap();
        let StoreConfig::S3(s3) = &c.store else {
            panic!("expected s3")
        };
        assert_eq!(s3.bucket, "evidence");
        assert_eq!(c.collectors[0].schedule.text, "0 4 * * *");
        assert_eq!(c.database_url.expose(), "postgres://u:pw@127.0.0.1/annexa");
        assert_eq!(format!("{:?}", c.database_url), "[redacted]");
    }

    #[test]
    fn a_password_in_the_file_is_refused_and_not_echoed() {
        let err = parse(
            "[database]\nurl = \"postgres://u:hunter2@127.0.0.1/a\"\n",
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ANNEXA_DATABASE__URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn verify_settings_are_checked_and_default_to_a_rolling_scrub_every_30_days() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.verify, VerifyConfig::default());
        assert!(c.verify.rolling);
        let c = parse(
            "[verify]\nconcurrency = 4\nfull_every = \"7d\"\nrolling = false\n",
            &[("ANNEXA_VERIFY__CONCURRENCY", "8")],
        )
        .unwrap();
        assert_eq!(
            c.verify.concurrency, 8,
            "the environment overrides the file"
        );
        assert_eq!(c.verify.full_every, Duration::from_secs(7 * 86_400));
        assert!(!c.verify.rolling);
        let err = parse(
            "[verify]\nconcurrency = 0\nfull_every = \"1h\"\nscrub = true\n[worker]\nconcurrency = 65\n",
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        for problem in [
            "verify.concurrency: 0 is not between 1 and 1024",
            "worker.concurrency: 65 is not between 1 and 64",
            "verify.full_every must be at least 1d",
            "unknown key `verify.scrub`",
        ] {
            assert!(text.contains(problem), "{problem} in {text}");
        }
    }

    #[test]
    fn the_example_config_parses_with_every_option() {
        let example = include_str!("../../annexa.example.toml");
        let c = parse(example, &[]).unwrap();
        assert_eq!(c.organization, "Example Ltd");
        assert_eq!(c.collectors.len(), 5);
        assert_eq!(c.collectors[0].schedule.text, "0 3 * * *");
        let CollectorKind::PolicyDocument(p) = &c.collectors[0].kind else {
            panic!("the first example collector is policy-document")
        };
        assert_eq!(p.review_grace_days, 30);
        assert!(matches!(c.collectors[1].kind, CollectorKind::CronHealth(_)));
        assert!(matches!(
            c.collectors[2].kind,
            CollectorKind::IncidentLog(_)
        ));
        assert_eq!(c.jobs[0].spec.name, "db-backup");
        assert_eq!(c.jobs[0].spec.max_runtime_seconds, Some(45 * 60));
        // Every commented-out option parses too.
        let uncommented: String = example
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let env = [
            ("ANNEXA_DB_BACKUP_TOKEN", "t"),
            (
                "ANNEXA_DISCORD_WEBHOOK",
                "https://discord.com/api/webhooks/1/x",
            ),
            (
                "ANNEXA_SLACK_WEBHOOK",
                "https://hooks.slack.com/services/T/B/x",
            ),
            ("ANNEXA_TELEGRAM_BOT_TOKEN", "1:x"),
            ("ANNEXA_SMTP_USER", "annexa"),
            ("ANNEXA_SMTP_PASSWORD", "x"),
            ("ANNEXA_SIEM_WEBHOOK", "https://siem.example.com/in"),
            ("ANNEXA_SIEM_WEBHOOK_SECRET", "x"),
        ];
        let err = parse(&uncommented, &env).unwrap_err();
        // Uncommented, the s3-only keys clash with kind = "fs", the job has two token
        // sources and the SoA file is not there; nothing else is wrong.
        assert!(
            err.problems
                .iter()
                .all(|p| p.contains("applies only to kind")
                    || p.contains("not both")
                    || p.contains("exactly one of `path`")
                    || p.starts_with("soa.file /tmp/annexa-test/soa.csv: No such file")),
            "{:?}",
            err.problems
        );
        let as_s3 = uncommented
            .replace("kind = \"fs\"", "kind = \"s3\"")
            .replace("path = \"data/store\"\n", "")
            .replace("path = \"backups\"\n", "")
            .replace("file = \"soa.csv\"\n", "");
        let err = parse(&as_s3, &env).unwrap_err();
        // …and a job may name its token in the environment or a file, not both.
        assert_eq!(err.problems.len(), 1, "{:?}", err.problems);
        assert!(err.problems[0].contains("not both"), "{:?}", err.problems);
    }

    #[test]
    fn malformed_jobs_are_reported_with_every_problem() {
        let err = parse(
            r#"
            [[job]]
            name = "db-backup"
            schedule = "every hour please"
            timezone = "Mars/Olympus_Mons"
            grace = "a while"
            [[job]]
            name = "both"
            schedule = "0 * * * *"
            period = "1h"
            [[job]]
            name = "tokenless"
            period = "1h"
            token_env = "ANNEXA_TEST_UNSET_TOKEN_VARIABLE"
            "#,
            &[],
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for expected in [
            "job `db-backup`: grace",
            "job `db-backup`: schedule `every hour please`",
            "job `both`: set exactly one of `schedule` (cron) and `period`",
            "job `tokenless`: token_env: the environment variable ANNEXA_TEST_UNSET_TOKEN_VARIABLE is not set",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        let tz = parse(
            "[[job]]\nname = \"j\"\nschedule = \"0 * * * *\"\ntimezone = \"Mars/Olympus_Mons\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            tz.problems[0].contains("is not an IANA time zone"),
            "{:?}",
            tz.problems
        );
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let err = parse("[store\n", &[]).unwrap_err();
        assert!(err.problems[0].contains("line 1"), "{:?}", err.problems);
    }
}
