//! One collection run: collect → hash and store every item → record the run, its evidence rows
//! and its ledger leaf in one transaction → check the *stored* facts → findings.
//!
//! A collector that errors yields a `failed` run with a `collector-failed` (or
//! `collector-unauthorized`) finding; whatever raw bytes it read are still stored. A run is
//! recorded as finished only in the transaction that also writes its ledger leaf, so a process
//! killed mid-run leaves a `running` row, never a run that looks complete.

use annexa_collectors::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, Finding, FindingCode, Source,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::facts;
use crate::app::Annexa;
use crate::config::CollectorConfig;
use crate::db::{EvidenceRow, Role, RunRow, RunStatus};
use crate::evidence::registry;
use crate::ledger::audit::{self, Actor, AuditAction};
use crate::ledger::manifest;
use crate::store::{StoreError, StoredObject};

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run: RunRow,
    pub evidence: Vec<EvidenceRow>,
    pub findings: Vec<Finding>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.run.status == RunStatus::Succeeded
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The message shows the cause, so it is not also the error's source (printed once).
    #[error("run {run_id} of `{collector}` could not store its evidence: {cause}")]
    Store {
        run_id: String,
        collector: String,
        cause: StoreError,
    },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// Records an audit event when the collection config changed since the last one recorded, so
/// the custody log shows what was configured to be collected, and when.
pub async fn note_config(app: &Annexa) -> anyhow::Result<()> {
    let bytes = std::fs::read(&app.config.path)?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let known = audit::latest(&app.db, AuditAction::ConfigLoaded)
        .await?
        .is_some_and(|e| e.subject == sha);
    if !known {
        audit::record(
            &app.db,
            Actor::Annexa,
            AuditAction::ConfigLoaded,
            &sha,
            serde_json::json!({
                "path": app.config.path.display().to_string(),
                "collectors": app.config.collectors.iter().map(|c| &c.name).collect::<Vec<_>>(),
            }),
            app.clock.now(),
        )
        .await?;
    }
    Ok(())
}

/// Runs one collector now. `slot` is the scheduled slot it fills (None for on demand). Returns
/// None when another run already holds that slot.
pub async fn run_collector(
    app: &Annexa,
    config: &CollectorConfig,
    slot: Option<DateTime<Utc>>,
) -> Result<Option<RunOutcome>, RunError> {
    let collector = registry::build(config, &app.config);
    let mut run = RunRow::running(
        &config.name,
        collector.kind(),
        collector.version(),
        slot,
        app.clock.now(),
    );
    if !app.db.start_run(&run).await? {
        return Ok(None);
    }
    let span = tracing::info_span!("run", collector = %config.name, run_id = %run.id);
    use tracing::Instrument as _;
    async {
        let scratch = tempfile::tempdir().map_err(|e| RunError::Store {
            run_id: run.id.clone(),
            collector: config.name.clone(),
            cause: StoreError::Io {
                location: std::env::temp_dir().display().to_string(),
                cause: e,
            },
        })?;
        let ctx = context(app, config, scratch.path(), slot.is_none(), false).await;
        let collected = collector
            .collect(&ctx)
            .await
            .map_err(|e| e.shown_from(&ctx.base_dir));
        let (items, facts, error) = match collected {
            Ok(snapshot) => (snapshot.items, Some(snapshot.facts), None),
            Err(CollectError::Invalid {
                what,
                reason,
                partial,
            }) => {
                let e = CollectError::Invalid {
                    what,
                    reason,
                    partial: Vec::new(),
                };
                (partial, None, Some(e))
            }
            Err(e) => (Vec::new(), None, Some(e)),
        };

        let stored = match store_items(app, &run, &items, facts.as_ref()).await {
            Ok(stored) => stored,
            Err(source) => {
                let message = format!("storing evidence failed: {source}");
                app.db
                    .abandon_run(
                        &run.id,
                        FindingCode::CollectorFailed.as_str(),
                        &message,
                        app.clock.now(),
                    )
                    .await?;
                return Err(RunError::Store {
                    run_id: run.id,
                    collector: config.name.clone(),
                    cause: source,
                });
            }
        };

        let findings = match &error {
            None => check_stored(app, collector.as_ref(), &stored).await,
            Some(e) => vec![Finding::new(e.code(), config.name.clone(), e.to_string())],
        };
        let findings: Vec<Finding> = findings.into_iter().map(|f| app.apply_level(f)).collect();

        run.finished_at = Some(app.clock.now());
        match &error {
            None => run.status = RunStatus::Succeeded,
            Some(e) => {
                run.status = RunStatus::Failed;
                run.error_code = Some(e.code().as_str().to_string());
                run.error = Some(annexa_collectors::shown(
                    &e.to_string(),
                    annexa_collectors::MAX_MESSAGE,
                ));
            }
        }
        let evidence: Vec<EvidenceRow> = stored.iter().map(|(row, _)| row.clone()).collect();
        record(app, &mut run, &stored, &findings).await?;
        Ok(Some(RunOutcome {
            run,
            evidence,
            findings,
        }))
    }
    .instrument(span)
    .await
}

/// What a collector works with: the clock, its folder, a scratch folder, its previous facts,
/// heartbeats and the store's objects to read.
async fn context(
    app: &Annexa,
    config: &CollectorConfig,
    scratch: &std::path::Path,
    on_demand: bool,
    rehearsal: bool,
) -> CollectContext {
    let previous = previous_facts(app, &config.name).await;
    CollectContext {
        clock: app.clock.clone(),
        base_dir: app.config.base_dir.clone(),
        scratch_dir: scratch.to_path_buf(),
        previous_facts: previous.as_ref().map(|(facts, _)| facts.clone()),
        previous_run: previous.map(|(_, at)| at),
        heartbeats: Some(crate::evidence::heartbeats::DbHeartbeats::shared(&app.db)),
        objects: Some(std::sync::Arc::new(crate::store::StoreObjects(
            app.store.clone(),
        ))),
        on_demand,
        rehearsal,
        max_source_bytes: config.max_file_size,
        allow_insecure_urls: app.config.allow_insecure_urls,
    }
}

/// What a rehearsal of a collector found: its sources read, nothing stored or recorded.
#[derive(Debug)]
pub struct Rehearsal {
    /// The evidence items its run would store.
    pub items: usize,
    /// The findings its run would record now.
    pub findings: Vec<Finding>,
}

/// Reads a collector's sources as its next run would, and judges what it read, storing and
/// recording nothing, and running no restore drill (`annexa check`). An error: the run would
/// fail, and why.
pub async fn rehearse(app: &Annexa, config: &CollectorConfig) -> Result<Rehearsal, String> {
    let collector = registry::build(config, &app.config);
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let ctx = context(app, config, scratch.path(), false, true).await;
    let snapshot = collector
        .collect(&ctx)
        .await
        .map_err(|e| e.shown_from(&ctx.base_dir).to_string())?;
    // Facts that only hold what changed are judged joined with the previous ones, as stored.
    let facts = match (collector.continues(&snapshot.facts), ctx.previous_facts) {
        (Some(_), Some(previous)) => collector.join(vec![previous, snapshot.facts])?,
        _ => snapshot.facts,
    };
    let findings = collector.check(&facts, annexa_collectors::AsOf::now(app.clock.now()));
    Ok(Rehearsal {
        items: snapshot.items.len(),
        findings: findings.into_iter().map(|f| app.apply_level(f)).collect(),
    })
}

/// The facts of the collector's newest successful run, complete, and where they are stored
/// (None when there is none or they cannot be read: a watermark is a hint, never a reason to
/// fail a run).
async fn previous_facts(
    app: &Annexa,
    collector: &str,
) -> Option<(serde_json::Value, annexa_collectors::FactsRef)> {
    let (loaded, at) = facts::newest_with_ref(app, collector, DateTime::<Utc>::MAX_UTC)
        .await
        .ok()??;
    Some((loaded.ok()?, at))
}

/// Stores every raw item and the facts; returns their rows with their sources.
pub(super) async fn store_items(
    app: &Annexa,
    run: &RunRow,
    items: &[EvidenceItem],
    facts: Option<&serde_json::Value>,
) -> Result<Vec<(EvidenceRow, Source)>, StoreError> {
    let now = app.clock.now();
    let mut stored = Vec::new();
    for item in items {
        let object = app.store.put_object(&item.body).await?;
        stored.push((
            evidence_row(
                run,
                &item.name,
                Role::Item,
                &item.media_type,
                &object,
                item.observed_at,
                item.effective_at,
                now,
            ),
            item.source.clone(),
        ));
    }
    if let Some(facts) = facts {
        let bytes = crate::base::canonical::to_vec(facts);
        let object = app.store.put_object(&Body::Bytes(bytes)).await?;
        stored.push((
            evidence_row(
                run,
                facts::ITEM,
                Role::Facts,
                "application/json",
                &object,
                now,
                None,
                now,
            ),
            Source::default(),
        ));
    }
    Ok(stored)
}

#[allow(clippy::too_many_arguments)]
fn evidence_row(
    run: &RunRow,
    name: &str,
    role: Role,
    media_type: &str,
    object: &StoredObject,
    observed_at: DateTime<Utc>,
    effective_at: Option<DateTime<Utc>>,
    collected_at: DateTime<Utc>,
) -> EvidenceRow {
    EvidenceRow {
        run_id: run.id.clone(),
        collector: run.collector.clone(),
        name: name.to_string(),
        role,
        media_type: media_type.to_string(),
        size: object.size as i64,
        sha256: object.sha256.clone(),
        object_key: object.key.clone(),
        observed_at,
        effective_at,
        collected_at,
    }
}

/// Runs the collector's check over the facts as read back from the store.
async fn check_stored(
    app: &Annexa,
    collector: &dyn Collector,
    stored: &[(EvidenceRow, Source)],
) -> Vec<Finding> {
    match facts::of_rows(app, stored.iter().map(|(row, _)| row)).await {
        Some(Ok(facts)) => collector.check(&facts, annexa_collectors::AsOf::now(app.clock.now())),
        Some(Err(f)) => vec![f],
        None => Vec::new(),
    }
}

/// Writes the manifest and records the run, its evidence, findings and ledger leaf atomically.
pub(super) async fn record(
    app: &Annexa,
    run: &mut RunRow,
    stored: &[(EvidenceRow, Source)],
    findings: &[Finding],
) -> Result<(), RunError> {
    let mut tx = app.db.begin_append().await?;
    let key = manifest::key(&run.collector, run.started_at, &run.id);
    let bytes = manifest::write(run, stored, tx.next_index);
    let object = app
        .store
        .put_named(&key, &bytes)
        .await
        .map_err(|source| RunError::Store {
            run_id: run.id.clone(),
            collector: run.collector.clone(),
            cause: source,
        })?;
    run.manifest_key = Some(key);
    run.manifest_sha256 = Some(object.sha256);
    run.ledger_index = Some(tx.next_index);
    let leaf = hex::encode(crate::ledger::leaf_hash(&bytes));
    let rows: Vec<EvidenceRow> = stored.iter().map(|(r, _)| r.clone()).collect();
    let with_collector: Vec<(Finding, String)> = findings
        .iter()
        .map(|f| (f.clone(), run.collector.clone()))
        .collect();
    tx.record_run(run, &rows, &with_collector, &leaf).await?;
    tx.commit().await?;
    Ok(())
}
