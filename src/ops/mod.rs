//! The worker's parts: the scheduler (what is due, leases, one tick), the HTTP server (health,
//! ready, metrics, ping) and gap alerts with their sinks.

pub mod alerts;
pub mod delivery;
pub mod metrics;
pub mod scheduler;
pub mod server;

/// Where the worker's parts say what they did. `annexa run` and `annexa worker` give one that
/// prints a line for people, or with `--json` the same as one JSON object per line: the
/// command line decides which, so no `--json` flag travels down here.
pub trait Output: Send + Sync {
    /// One thing that happened, at `level`, as a line for people and as a JSON object.
    fn event(&self, level: Level, text: &str, json: serde_json::Value) -> std::io::Result<()>;
    /// A line for people that has no JSON form of its own (with --json, `{"note": …}`).
    fn note(&self, text: &str);
}

/// How much a line of the worker's output matters (its `level` in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}
