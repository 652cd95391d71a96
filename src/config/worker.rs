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
    WorkerConfig {
        listen,
        drain: duration("drain", raw.drain, "30s", problems),
        lease,
        checkpoint: schedule("checkpoint", raw.checkpoint, "0 0 * * *", problems),
        verify: schedule("verify", raw.verify, "30 0 * * *", problems),
        evaluate_every: duration("evaluate_every", raw.evaluate_every, "5m", problems),
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
