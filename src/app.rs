//! The context every command works with.

use std::sync::Arc;

use annexa_collectors::Clock;

use crate::base::clock;
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
    /// Per collector, the newest facts made complete from a chain (`evidence::facts::load`),
    /// by the run and hash they were loaded for.
    pub facts_cache: std::sync::Mutex<
        std::collections::HashMap<String, (annexa_collectors::FactsRef, serde_json::Value)>,
    >,
}

impl Annexa {
    /// Opens the database (running migrations) and the store, on the system clock (or the
    /// simulated one `ANNEXA_SIMULATED_CLOCK` sets up for tests).
    pub async fn open(config: Config) -> anyhow::Result<Annexa> {
        let (clock, speed) = clock::from_env().map_err(anyhow::Error::msg)?;
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
        Ok(Annexa::of(config, db, store, clock))
    }

    /// The context of a database and a store opened already (`annexa check` opens them to
    /// read only).
    pub fn of(config: Config, db: Db, store: EvidenceStore, clock: Arc<dyn Clock>) -> Annexa {
        Annexa {
            config,
            db,
            store: Arc::new(store),
            clock,
            speed: 1.0,
            facts_cache: std::sync::Mutex::default(),
        }
    }
}

impl Annexa {
    /// Closes the database's connections (see `Db::close`).
    pub async fn close(&self) {
        self.db.close().await
    }

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

    /// Where the store is, as output for people says it: a folder relative to the config's.
    pub fn store_location(&self) -> String {
        annexa_collectors::shown_path(
            std::path::Path::new(&self.store.location()),
            &self.config.base_dir,
        )
    }

    /// The level of a code after the config's overrides.
    pub fn level(&self, code: annexa_collectors::FindingCode) -> annexa_collectors::Level {
        self.config.level(code)
    }
}
