//! `[worker]`: how the worker schedules itself.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::base::{Schedule, parse_duration};

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawWorker {
    listen: Option<String>,
    drain: Option<String>,
    lease: Option<String>,
    checkpoint: Option<String>,
    verify: Option<String>,
    evaluate_every: Option<String>,
    concurrency: Option<usize>,
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where `/health`, `/ready`, `/metrics` and `POST /ping/{job}` listen.
    pub listen: SocketAddr,
    /// How long in-flight runs may take to finish after SIGTERM or Ctrl-C.
    pub drain: Duration,
    /// How long a lease lasts unless renewed: a dead worker's slot is taken over after this.
    pub lease: Duration,
    pub checkpoint: Schedule,
    pub verify: Schedule,
    /// How often gaps are evaluated (and alerts sent) between runs, as evidence ages.
    pub evaluate_every: Duration,
    /// How many jobs (a collector's due slots, the checkpoint, the verify, the report) run at
    /// once (default 4); the others wait for one to end.
    pub concurrency: usize,
}

pub(super) fn validate_worker(raw: RawWorker, problems: &mut Vec<String>) -> WorkerConfig {
    let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:9464");
    let listen = listen.parse::<SocketAddr>().unwrap_or_else(|e| {
        problems.push(format!(
            "worker.listen `{listen}` is not an address ({e}); write e.g. \"127.0.0.1:9464\""
        ));
        SocketAddr::from(([127, 0, 0, 1], 9464))
    });
    let duration = |key: &str, value: Option<String>, default: &str, problems: &mut Vec<String>| {
        setting_duration(&format!("worker.{key}"), value, default, problems)
    };
    let schedule = |key: &str, value: Option<String>, default: &str, problems: &mut Vec<String>| {
        let text = value.unwrap_or_else(|| default.to_string());
        text.parse::<Schedule>().unwrap_or_else(|e| {
            problems.push(format!(
                "worker.{key}: `{text}` is not a cron expression: {e}"
            ));
            default.parse().expect("the default is valid")
        })
    };
    let lease = duration("lease", raw.lease, "2m", problems);
    if lease < Duration::from_secs(3) {
        problems.push("worker.lease must be at least 3s".into());
    }
    let concurrency = raw.concurrency.unwrap_or(4);
    if !(1..=64).contains(&concurrency) {
        problems.push(format!(
            "worker.concurrency: {concurrency} is not between 1 and 64"
        ));
    }
    WorkerConfig {
        listen,
        concurrency: concurrency.clamp(1, 64),
        drain: duration("drain", raw.drain, "30s", problems),
        lease,
        checkpoint: schedule("checkpoint", raw.checkpoint, "0 0 * * *", problems),
        verify: schedule("verify", raw.verify, "30 0 * * *", problems),
        evaluate_every: duration("evaluate_every", raw.evaluate_every, "5m", problems),
    }
}

/// `[verify]` as written (an unknown key is reported with the others, by `serde_ignored`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawVerify {
    concurrency: Option<usize>,
    full_every: Option<String>,
    rolling: Option<bool>,
}

/// `[verify]`: how objects are re-hashed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyConfig {
    /// Objects read at once from an S3 store (default 32: a remote bucket's latency, not its
    /// bandwidth, bounds one read of a small object). The local folder uses every core.
    pub concurrency: usize,
    /// Every object is re-hashed at least this often by the rolling scrub (default 30 days);
    /// an object that goes longer is a `scrub-overdue` finding on A.5.28.
    pub full_every: Duration,
    /// The worker's daily verify is the rolling scrub (default), or a full one.
    pub rolling: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            concurrency: 32,
            full_every: Duration::from_secs(30 * 86_400),
            rolling: true,
        }
    }
}

pub(super) fn validate_verify(raw: RawVerify, problems: &mut Vec<String>) -> VerifyConfig {
    let default = VerifyConfig::default();
    let concurrency = raw.concurrency.unwrap_or(default.concurrency);
    if !(1..=1024).contains(&concurrency) {
        problems.push(format!(
            "verify.concurrency: {concurrency} is not between 1 and 1024"
        ));
    }
    let full_every = setting_duration("verify.full_every", raw.full_every, "30d", problems);
    if full_every < Duration::from_secs(86_400) {
        problems.push("verify.full_every must be at least 1d".into());
    }
    VerifyConfig {
        concurrency: concurrency.clamp(1, 1024),
        full_every,
        rolling: raw.rolling.unwrap_or(default.rolling),
    }
}

/// A duration setting, or its default; a bad one is a problem (and the default stands in).
pub(super) fn setting_duration(
    key: &str,
    value: Option<String>,
    default: &str,
    problems: &mut Vec<String>,
) -> Duration {
    let default_value = parse_duration(default).expect("defaults are valid");
    match value {
        None => default_value,
        Some(v) => parse_duration(&v).unwrap_or_else(|e| {
            problems.push(format!("{key}: {e}"));
            default_value
        }),
    }
}
