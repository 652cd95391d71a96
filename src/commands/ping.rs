//! `annexa ping JOB [--start|--fail] [--message TEXT]`: one heartbeat of an external job.
//! It needs the database only, not the evidence store.

use annexa_collectors::cron_health::PingKind;

use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::config::{CollectorKind, Config};
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
    json: bool,
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
    let at = clock.now();
    record_ping(
        &db,
        config,
        job,
        kind,
        message.as_deref(),
        None,
        Via::Cli,
        at,
    )
    .await?;
    // The heartbeat is recorded now; evidence (and `status`) see it when a cron-health
    // collector that watches the job next runs.
    let watchers: Vec<(&str, Option<chrono::DateTime<chrono::Utc>>)> = config
        .collectors
        .iter()
        .filter(|c| matches!(&c.kind, CollectorKind::CronHealth(h) if h.watches(job)))
        .map(|c| (c.name.as_str(), c.schedule.next_after(at)))
        .collect();
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "job": job,
            "kind": kind.as_str(),
            "at": annexa_reports::time(at),
            "collected_by": watchers
                .iter()
                .map(|(name, next)| serde_json::json!({
                    "collector": name,
                    "next_run": next.map(annexa_reports::time),
                }))
                .collect::<Vec<_>>(),
        }))? + "\n"
    } else {
        let next = match watchers
            .iter()
            .filter_map(|(n, t)| Some((*n, (*t)?)))
            .min_by_key(|(_, t)| *t)
        {
            Some((name, t)) => format!(
                "`annexa status` shows it once `{name}` next collects heartbeats ({})",
                annexa_reports::time(t)
            ),
            None => {
                "no cron-health collector watches this job, so no evidence will show it: add one"
                    .into()
            }
        };
        format!(
            "{} heartbeat of `{job}` recorded at {}; {next}\n",
            kind.as_str(),
            annexa_reports::time(at)
        )
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
