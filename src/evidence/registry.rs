//! The one place that turns a collector's config into a collector. A closed `match`: adding a
//! kind means adding a variant to `CollectorKind` and an arm here.

use annexa_collectors::Collector;
use annexa_collectors::backup_restore::BackupRestore;
use annexa_collectors::cron_health::CronHealth;
use annexa_collectors::github_alerts::GithubAlerts;
use annexa_collectors::incident_log::IncidentLog;
use annexa_collectors::policy_document::PolicyDocument;

use crate::config::{CollectorConfig, CollectorKind, Config};
use crate::controls::Catalog;

/// Builds the collector for one configured collector.
pub fn build(collector: &CollectorConfig, config: &Config) -> Box<dyn Collector> {
    match &collector.kind {
        CollectorKind::PolicyDocument(c) => Box::new(PolicyDocument::new(c.clone())),
        CollectorKind::CronHealth(c) => {
            // Every job and every other collector; a run cannot be its own heartbeat.
            let jobs = config
                .job_specs()
                .into_iter()
                .filter(|j| j.name != collector.name)
                .collect();
            Box::new(CronHealth::new(c.clone(), jobs))
        }
        CollectorKind::BackupRestore(c) => {
            // A folder relative to the config file.
            let mut c = c.clone();
            if let Some(p) = &c.path
                && p.is_relative()
            {
                c.path = Some(config.base_dir.join(p));
            }
            Box::new(BackupRestore::new(c))
        }
        CollectorKind::GithubAlerts(c) => {
            Box::new(GithubAlerts::new(c.clone(), env_secret(&c.token_env)))
        }
        CollectorKind::IncidentLog(c) => Box::new(
            IncidentLog::new(
                (**c).clone(),
                c.github.as_ref().and_then(|g| env_secret(&g.token_env)),
            )
            .expect("incident-log settings are validated with the config"),
        ),
    }
}

/// A secret from the environment variable the config names (empty counts as unset).
fn env_secret(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The controls a configured collector evidences: its `controls` setting; else what its
/// stored `facts` say they evidence (a policy document's own mapping), when they say; else the
/// catalog's default for its kind, plus any its own settings map individual sources to.
pub fn controls_of(
    config: &CollectorConfig,
    collector: &dyn Collector,
    catalog: &Catalog,
    in_facts: Option<Vec<String>>,
) -> Vec<String> {
    if let Some(controls) = &config.controls {
        return controls.clone();
    }
    if let Some(controls) = in_facts {
        return controls;
    }
    let mut controls = catalog.controls_for_kind(config.kind.name());
    controls.extend(collector.mapped_controls());
    controls.sort();
    controls.dedup();
    controls
}
