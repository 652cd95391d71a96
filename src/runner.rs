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
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Annexa;
use crate::config::CollectorConfig;
use crate::db::{EvidenceRow, RunRow};
use crate::registry;
use crate::store::{StoreError, StoredObject};

/// The item name under which a run's normalized facts are stored.
pub const FACTS_ITEM: &str = "facts.json";

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run: RunRow,
    pub evidence: Vec<EvidenceRow>,
    pub findings: Vec<Finding>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.run.status == "succeeded"
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("run {run_id} of `{collector}` could not store its evidence: {source}")]
    Store {
        run_id: String,
        collector: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// The run manifest: the custody record of one run, stored as canonical JSON and hashed into
/// the ledger.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    annexa_version: &'static str,
    run_id: &'a str,
    collector: ManifestCollector<'a>,
    slot: Option<&'a str>,
    started_at: String,
    finished_at: String,
    status: &'a str,
    error: Option<ManifestError<'a>>,
    items: Vec<ManifestItem<'a>>,
    ledger_index: i64,
}

#[derive(Debug, Serialize)]
struct ManifestCollector<'a> {
    name: &'a str,
    kind: &'a str,
    version: &'a str,
}

#[derive(Debug, Serialize)]
struct ManifestError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct ManifestItem<'a> {
    name: &'a str,
    role: &'a str,
    media_type: &'a str,
    size: i64,
    sha256: &'a str,
    object_key: &'a str,
    observed_at: String,
    effective_at: Option<String>,
    source: &'a Source,
}

/// The manifest's key: `runs/<collector>/<YYYY>/<MM>/<DD>/<run-id>.json`.
pub fn manifest_key(collector: &str, started: DateTime<Utc>, run_id: &str) -> String {
    format!(
        "runs/{collector}/{}/{run_id}.json",
        started.format("%Y/%m/%d")
    )
}

/// Runs one collector now. `slot` is the scheduled slot it fills (None for on demand). Returns
/// None when another run already holds that slot.
pub async fn run_collector(
    app: &Annexa,
    config: &CollectorConfig,
    slot: Option<DateTime<Utc>>,
) -> Result<Option<RunOutcome>, RunError> {
    let collector = registry::build(config, &app.config);
    let mut run = RunRow {
        id: uuid::Uuid::now_v7().to_string(),
        collector: config.name.clone(),
        kind: collector.kind().to_string(),
        collector_version: collector.version().to_string(),
        slot: slot.map(crate::db::ts),
        status: "running".to_string(),
        started_at: app.clock.now(),
        finished_at: None,
        error_code: None,
        error: None,
        manifest_key: None,
        manifest_sha256: None,
        ledger_index: None,
    };
    if !app.db.start_run(&run).await? {
        return Ok(None);
    }
    let _span = tracing::info_span!("run", collector = %config.name, run_id = %run.id).entered();

    let scratch = tempfile::tempdir().map_err(|e| RunError::Store {
        run_id: run.id.clone(),
        collector: config.name.clone(),
        source: StoreError::Io {
            location: std::env::temp_dir().display().to_string(),
            source: e,
        },
    })?;
    let ctx = CollectContext {
        clock: app.clock.clone(),
        base_dir: app.config.base_dir.clone(),
        scratch_dir: scratch.path().to_path_buf(),
        previous_facts: previous_facts(app, &config.name).await,
        heartbeats: Some(crate::heartbeats::DbHeartbeats::shared(&app.db)),
        objects: Some(std::sync::Arc::new(crate::store::StoreObjects(
            app.store.clone(),
        ))),
        on_demand: slot.is_none(),
    };
    let (items, facts, error) = match collector.collect(&ctx).await {
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
                source,
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
        None => run.status = "succeeded".to_string(),
        Some(e) => {
            run.status = "failed".to_string();
            run.error_code = Some(e.code().as_str().to_string());
            run.error = Some(e.to_string());
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

/// The facts of the collector's newest successful run, as stored (None when there is none or
/// they cannot be read: a watermark is a hint, never a reason to fail a run).
async fn previous_facts(app: &Annexa, collector: &str) -> Option<serde_json::Value> {
    let far_future = DateTime::<Utc>::MAX_UTC;
    let run = app
        .db
        .latest_run(collector, far_future, true)
        .await
        .ok()??;
    let rows = app.db.evidence_of_run(&run.id).await.ok()?;
    let facts = rows.iter().find(|r| r.role == "facts")?;
    load_facts(app, facts).await.ok()
}

/// Stores every raw item and the facts; returns their rows with their sources.
async fn store_items(
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
                "item",
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
        let bytes = crate::canonical::to_vec(facts);
        let object = app.store.put_object(&Body::Bytes(bytes)).await?;
        stored.push((
            evidence_row(
                run,
                FACTS_ITEM,
                "facts",
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
    role: &str,
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
        role: role.to_string(),
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
    let Some((facts_row, _)) = stored.iter().find(|(r, _)| r.role == "facts") else {
        return Vec::new();
    };
    match load_facts(app, facts_row).await {
        Ok(facts) => collector.check(&facts, app.clock.now()),
        Err(f) => vec![f],
    }
}

/// Reads a run's facts from the store, checking they are the bytes the database recorded.
pub async fn load_facts(app: &Annexa, row: &EvidenceRow) -> Result<serde_json::Value, Finding> {
    let violation = |message: String| {
        Finding::new(
            FindingCode::IntegrityViolation,
            row.object_key.clone(),
            message,
        )
    };
    let bytes = app.store.read(&row.object_key).await.map_err(|e| {
        violation(format!(
            "facts of run {} cannot be read: {e}; run `annexa verify`",
            row.run_id
        ))
    })?;
    if hex::encode(Sha256::digest(&bytes)) != row.sha256 {
        return Err(violation(format!(
            "facts of run {} no longer match their recorded SHA-256; run `annexa verify`",
            row.run_id
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| violation(format!("facts of run {} are not JSON: {e}", row.run_id)))
}

/// Writes the manifest and records the run, its evidence, findings and ledger leaf atomically.
async fn record(
    app: &Annexa,
    run: &mut RunRow,
    stored: &[(EvidenceRow, Source)],
    findings: &[Finding],
) -> Result<(), RunError> {
    let mut tx = app.db.begin_append().await?;
    let key = manifest_key(&run.collector, run.started_at, &run.id);
    let manifest = Manifest {
        annexa_version: env!("CARGO_PKG_VERSION"),
        run_id: &run.id,
        collector: ManifestCollector {
            name: &run.collector,
            kind: &run.kind,
            version: &run.collector_version,
        },
        slot: run.slot.as_deref(),
        started_at: crate::db::ts(run.started_at),
        finished_at: crate::db::ts(run.finished_at.expect("finished")),
        status: &run.status,
        error: run.error.as_deref().map(|message| ManifestError {
            code: run.error_code.as_deref().unwrap_or("collector-failed"),
            message,
        }),
        items: stored
            .iter()
            .map(|(e, source)| ManifestItem {
                name: &e.name,
                role: &e.role,
                media_type: &e.media_type,
                size: e.size,
                sha256: &e.sha256,
                object_key: &e.object_key,
                observed_at: crate::db::ts(e.observed_at),
                effective_at: e.effective_at.map(crate::db::ts),
                source,
            })
            .collect(),
        ledger_index: tx.next_index,
    };
    let bytes = crate::canonical::to_vec(&manifest);
    let object = app
        .store
        .put_named(&key, &bytes)
        .await
        .map_err(|source| RunError::Store {
            run_id: run.id.clone(),
            collector: run.collector.clone(),
            source,
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
