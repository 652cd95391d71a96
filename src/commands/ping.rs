//! `annexa ping JOB [--start|--fail] [--message TEXT]`: one heartbeat of an external job.
//! It needs the database only, not the evidence store.

use annexa_collectors::cron_health::PingKind;

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::db::Db;
use crate::evidence::heartbeats::{Via, known_job, record_ping};

/// Messages longer than this are cut: a heartbeat is not a log.
const MAX_MESSAGE: usize = 1000;

pub async fn ping(
    config: &Config,
    job: &str,
    start: bool,
    fail: bool,
    message: Option<&str>,
) -> Result<Exit, Failure> {
    let kind = match (start, fail) {
        (true, _) => PingKind::Start,
        (_, true) => PingKind::Fail,
        _ => PingKind::Success,
    };
    // Checked before connecting, so a typo is a usage error even with the database down.
    known_job(config, job).map_err(Failure::usage)?;
    // The process's clock: the system's, or the simulated one tests set.
    let (clock, _) =
        crate::base::clock::from_env().map_err(|e| Failure::usage(anyhow::Error::msg(e)))?;
    let db = Db::connect(&config.database_url).await?;
    let message = message.map(|m| m.chars().take(MAX_MESSAGE).collect::<String>());
    record_ping(
        &db,
        config,
        job,
        kind,
        message.as_deref(),
        None,
        Via::Cli,
        clock.now(),
    )
    .await?;
    Ok(Exit::Ok)
}
