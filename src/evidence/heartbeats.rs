//! Heartbeats: recording pings (`annexa ping`, and `POST /ping/{job}` in the worker) and
//! reading them back for the cron-health collector, together with annexa's own runs.

use std::sync::Arc;

use annexa_collectors::cron_health::{Heartbeat, HeartbeatSource, JobSpec, PingKind};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::db::{Db, DbError};

/// Who sent a ping: the CLI (trusted: it already holds the database credentials) or HTTP
/// (must present the job's token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cli,
    Http,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Http => "http",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    #[error("no job named `{job}`; configured jobs: {known}. Add a [[job]] to the config")]
    UnknownJob { job: String, known: String },
    #[error("ping for `{job}` refused: {reason}")]
    Unauthorized { job: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Compares without stopping at the first difference, so timing says nothing about the token.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The job's config, or the error that lists the configured jobs.
pub fn known_job<'a>(
    config: &'a Config,
    job: &str,
) -> Result<&'a crate::config::JobConfig, PingError> {
    config.job(job).ok_or_else(|| {
        let known: Vec<&str> = config.jobs.iter().map(|j| j.spec.name.as_str()).collect();
        PingError::UnknownJob {
            job: job.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }
    })
}

/// Checks and records one ping. Nothing is written unless the job exists and, over HTTP, the
/// token matches.
#[allow(clippy::too_many_arguments)]
pub async fn record_ping(
    db: &Db,
    config: &Config,
    job: &str,
    kind: PingKind,
    message: Option<&str>,
    token: Option<&str>,
    via: Via,
    at: DateTime<Utc>,
) -> Result<(), PingError> {
    let job_config = known_job(config, job)?;
    if via == Via::Http {
        let expected = job_config
            .token
            .as_ref()
            .ok_or_else(|| PingError::Unauthorized {
                job: job.to_string(),
                reason: "the job has no token configured (token_env or token_file)".into(),
            })?;
        if !token.is_some_and(|t| same_token(t, expected.expose())) {
            return Err(PingError::Unauthorized {
                job: job.to_string(),
                reason: "missing or wrong token".into(),
            });
        }
    }
    db.insert_heartbeat(job, kind.as_str(), at, message, via.as_str())
        .await?;
    Ok(())
}

/// The database as cron-health's heartbeat source.
pub struct DbHeartbeats {
    pub db: Db,
}

impl DbHeartbeats {
    pub fn shared(db: &Db) -> Arc<dyn HeartbeatSource> {
        Arc::new(DbHeartbeats { db: db.clone() })
    }
}

#[async_trait::async_trait]
impl HeartbeatSource for DbHeartbeats {
    async fn heartbeats(
        &self,
        job: &JobSpec,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Heartbeat>, String> {
        let result = if job.origin == "collector" {
            self.db.runs_as_heartbeats(&job.name, since, until).await
        } else {
            self.db.heartbeats(&job.name, since, until).await
        };
        result.map_err(|e| e.to_string())
    }

    async fn first_seen(&self, job: &JobSpec) -> Result<Option<DateTime<Utc>>, String> {
        let result = if job.origin == "collector" {
            self.db.first_run(&job.name).await
        } else {
            self.db.first_heartbeat(&job.name).await
        };
        result.map_err(|e| e.to_string())
    }
}
