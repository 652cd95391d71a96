//! annexa: collects compliance evidence for ISO/IEC 27001:2022 Annex A controls, keeps it
//! immutable and verifiable, and judges the controls.
//!
//! # Layout
//!
//! - `main.rs` parses the command line and maps the result to an exit code; `cli.rs` defines it.
//! - `commands/`: one module per subcommand (`init`, `run`, `collect`, `worker`, `status`,
//!   `controls`, `report`, `verify`, `checkpoint`, `keys`, `ping`).
//! - `config.rs`: `annexa.toml` + `ANNEXA_…__…` environment, validated into [`config::Config`].
//! - `store/`: the content-addressed, write-once evidence store (`fs`, `s3`).
//! - `db/`: runs, evidence, findings, ledger and audit events on SQLite or PostgreSQL.
//! - `ledger.rs`: the RFC 6962 Merkle tree; `canonical.rs`: canonical JSON for hashed records;
//!   `checkpoint.rs`: signed tree heads, checked against history and published.
//! - `runner.rs`: one collection run, end to end; `registry.rs`: config → collector.
//! - `controls/`: the catalog and the pure evaluation; `status.rs` gathers its inputs.
//! - `report.rs`: gathers a report's inputs for a period (the model and renderers are in
//!   `annexa-reports`); `commands/report.rs` writes, signs and stores the bundle.
//! - `verify.rs`: the integrity check of store, database and ledger; `keys.rs`: the signed-note
//!   key and note formats; `keyring.rs`: the keys' life (generate, rotate, revoke, export).
//! - `heartbeats.rs`: recording pings and reading heartbeats (jobs' pings and annexa's runs).
//! - `scheduler.rs`: what is due, leases, one tick (`annexa run`) and the worker's loop;
//!   `server.rs`: the worker's HTTP endpoint; `alerts/`: gaps, the outbox and its sinks;
//!   `clock.rs`: the simulated clock tests run workers on.
//! - The collectors live in the `annexa-collectors` crate, the report model and renderers in
//!   `annexa-reports`.

pub mod alerts;
pub mod canonical;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod controls;
pub mod db;
pub mod exit;
pub mod heartbeats;
pub mod keyring;
pub mod keys;
pub mod ledger;
pub mod registry;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod server;
pub mod status;
pub mod store;
pub mod verify;

use std::sync::Arc;

use annexa_collectors::Clock;

use crate::config::Config;
use crate::db::Db;
use crate::store::EvidenceStore;

/// Everything a command works with: the validated config, the database, the store and the
/// clock. Built once per process.
pub struct Annexa {
    pub config: Config,
    pub db: Db,
    pub store: Arc<EvidenceStore>,
    pub clock: Arc<dyn Clock>,
    /// How many times faster than real time the clock runs (1 but under a simulated clock).
    pub speed: f64,
}

impl Annexa {
    /// Opens the database (running migrations) and the store, on the system clock (or the
    /// simulated one `ANNEXA_SIMULATED_CLOCK` sets up for tests).
    pub async fn open(config: Config) -> anyhow::Result<Annexa> {
        let (clock, speed) = crate::clock::from_env().map_err(anyhow::Error::msg)?;
        let mut app = Annexa::open_with_clock(config, clock).await?;
        app.speed = speed;
        Ok(app)
    }

    pub async fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Annexa> {
        use anyhow::Context;
        let db = Db::connect(&config.database_url)
            .await
            .context("opening the database")?;
        let store = EvidenceStore::open(&config.store)
            .await
            .context("opening the evidence store")?;
        Ok(Annexa {
            config,
            db,
            store: Arc::new(store),
            clock,
            speed: 1.0,
        })
    }
}

impl Annexa {
    /// Sleeps for `d` on this process's clock.
    pub async fn sleep(&self, d: chrono::Duration) {
        let real = d.to_std().unwrap_or_default().div_f64(self.speed);
        tokio::time::sleep(real).await
    }

    /// A finding with the level the config sets for its code, if it sets one.
    pub fn apply_level(
        &self,
        mut finding: annexa_collectors::Finding,
    ) -> annexa_collectors::Finding {
        if let Some(level) = self.config.levels.get(&finding.code) {
            finding.level = *level;
        }
        finding
    }

    /// The level of a code after the config's overrides.
    pub fn level(&self, code: annexa_collectors::FindingCode) -> annexa_collectors::Level {
        self.config.level(code)
    }
}
