//! One collection run: collect → hash and store every item → record the run, its evidence rows
//! and its ledger leaf in one transaction → check the *stored* facts → findings.
//!
//! A collector that errors yields a `failed` run with a `collector-failed` (or
//! `collector-unauthorized`) finding; whatever raw bytes it read are still stored. A run is
//! recorded as finished only in the transaction that also writes its ledger leaf, so a process
//! killed mid-run leaves a `running` row, never a run that looks complete.

use std::sync::Arc;

use annexa_collectors::{
    Body, CollectContext, Collector, EvidenceItem, Facts, Finding, FindingCode, ItemSink, Source,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::collection::{CountingSink, Spool, StoreSink, Unstored};
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
    /// How many raw items it stored.
    pub items: usize,
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
        let failed = |cause: StoreError| RunError::Store {
            run_id: run.id.clone(),
            collector: config.name.clone(),
            cause,
        };
        let temporary = |e: std::io::Error| StoreError::Io {
            location: format!(
                "{} (this run's temporary files)",
                std::env::temp_dir().display()
            ),
            cause: e,
        };
        let prepared = tempfile::tempdir()
            .and_then(|dir| Ok((dir, Spool::new(&run, app.clock.now())?)))
            .map_err(temporary);
        let (scratch, spool) = match prepared {
            Ok(p) => p,
            Err(e) => return Err(abandon(app, &run, failed(e)).await),
        };
        let sink = Arc::new(StoreSink::new(
            app.store.clone(),
            &app.config.base_dir,
            spool,
        ));
        let ctx = context(
            app,
            collector.as_ref(),
            config,
            scratch.path(),
            (slot.is_none(), false),
            sink.clone(),
        )
        .await;
        let collected = collector
            .collect(&ctx)
            .await
            .map_err(|e| e.shown_from(&ctx.base_dir));
        drop(ctx);
        let sink = Arc::into_inner(sink).expect("the collector keeps no handle on its sink");
        let (mut spool, unstored) = sink.finish().await;
        let (facts, error) = match (collected, unstored) {
            (_, Some(Unstored::Store(e))) => return Err(abandon(app, &run, failed(e)).await),
            // The source that could not be stored is the reason, whatever the collector said.
            (_, Some(Unstored::Source(e))) => (None, Some(e)),
            (Ok(snapshot), None) => (Some(snapshot.facts), None),
            (Err(e), None) => (None, Some(e)),
        };
        let facts = match facts {
            Some(facts) => match store_facts(app, &mut spool, facts).await {
                Ok(object) => Some(object),
                Err(e) => return Err(abandon(app, &run, failed(e)).await),
            },
            None => None,
        };
        let findings = match (&error, &facts) {
            (None, Some(object)) => check_stored(app, collector.as_ref(), &run, object).await,
            (None, None) => Vec::new(),
            (Some(e), _) => vec![Finding::new(e.code(), config.name.clone(), e.to_string())],
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
        record(app, &mut run, &mut spool, &findings).await?;
        Ok(Some(RunOutcome {
            run,
            items: spool.items(),
            findings,
        }))
    }
    .instrument(span)
    .await
}

/// Marks a run that cannot be recorded as abandoned, with why; gives back the error.
async fn abandon(app: &Annexa, run: &RunRow, error: RunError) -> RunError {
    let message = match &error {
        RunError::Store { cause, .. } => format!("storing evidence failed: {cause}"),
        other => other.to_string(),
    };
    match app
        .db
        .abandon_run(
            &run.id,
            FindingCode::CollectorFailed.as_str(),
            &message,
            app.clock.now(),
        )
        .await
    {
        Ok(_) => error,
        Err(e) => RunError::Db(e),
    }
}

/// Stores a collection's facts (as canonical JSON, or the file the collector wrote) and spools
/// their row.
async fn store_facts(
    app: &Annexa,
    spool: &mut Spool,
    facts: Facts,
) -> Result<StoredObject, StoreError> {
    let body = match facts {
        Facts::Value(v) => Body::Bytes(crate::base::canonical::to_vec(&v)),
        Facts::File(path) => Body::File(path),
    };
    let object = app.store.put_object(body).await?;
    let now = app.clock.now();
    spool
        .push(
            facts::ITEM,
            Role::Facts,
            "application/json",
            &object,
            (now, None),
            Source::default(),
        )
        .map_err(|e| StoreError::Io {
            location: "the run's spool of stored rows (the temporary folder)".into(),
            cause: e,
        })?;
    Ok(object)
}

/// What a collector works with: the clock, its folder, a scratch folder, its previous facts
/// (when it reads them), heartbeats, the store's objects to read, and where its items go.
async fn context(
    app: &Annexa,
    collector: &dyn Collector,
    config: &CollectorConfig,
    scratch: &std::path::Path,
    (on_demand, rehearsal): (bool, bool),
    items: Arc<dyn ItemSink>,
) -> CollectContext {
    let previous = match collector.reads_previous() {
        true => previous_facts(app, &config.name).await,
        false => None,
    };
    CollectContext {
        clock: app.clock.clone(),
        base_dir: app.config.base_dir.clone(),
        scratch_dir: scratch.to_path_buf(),
        previous_facts: previous.as_ref().map(|(facts, _)| facts.clone()),
        previous_run: previous.map(|(_, at)| at),
        heartbeats: Some(crate::evidence::heartbeats::DbHeartbeats::shared(&app.db)),
        objects: Some(Arc::new(crate::store::StoreObjects(app.store.clone()))),
        on_demand,
        rehearsal,
        max_source_bytes: config.max_file_size,
        allow_insecure_urls: app.config.allow_insecure_urls,
        items,
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
    let counted = Arc::new(CountingSink::default());
    let ctx = context(
        app,
        collector.as_ref(),
        config,
        scratch.path(),
        (false, true),
        counted.clone(),
    )
    .await;
    let snapshot = collector
        .collect(&ctx)
        .await
        .map_err(|e| e.shown_from(&ctx.base_dir).to_string())?;
    let as_of = annexa_collectors::AsOf::now(app.clock.now());
    let findings = match snapshot.facts {
        // Facts written to a file are judged as they are read back, as stored ones are.
        Facts::File(path) => {
            let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            collector.judge(&mut file, as_of).findings
        }
        // Facts that only hold what changed are judged joined with the previous ones, as
        // stored.
        Facts::Value(facts) => {
            let facts = match (collector.continues(&facts), ctx.previous_facts) {
                (Some(_), Some(previous)) => collector.join(vec![previous, facts])?,
                _ => facts,
            };
            collector.check(&facts, as_of)
        }
    };
    Ok(Rehearsal {
        items: counted.count(),
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

/// Stores every raw item and the facts (attested evidence: a few files); returns their rows
/// with their sources.
pub(super) async fn store_items(
    app: &Annexa,
    run: &RunRow,
    items: Vec<EvidenceItem>,
    facts: Option<&serde_json::Value>,
) -> Result<Vec<(EvidenceRow, Source)>, StoreError> {
    let now = app.clock.now();
    let mut stored = Vec::new();
    let row = |name: &str, role, media_type: &str, object: &StoredObject, observed, effective| {
        EvidenceRow {
            run_id: run.id.clone(),
            collector: run.collector.clone(),
            name: name.to_string(),
            role,
            media_type: media_type.to_string(),
            size: object.size as i64,
            sha256: object.sha256.clone(),
            object_key: object.key.clone(),
            observed_at: observed,
            effective_at: effective,
            collected_at: now,
        }
    };
    for item in items {
        let object = app.store.put_object(item.body).await?;
        stored.push((
            row(
                &item.name,
                Role::Item,
                &item.media_type,
                &object,
                item.observed_at,
                item.effective_at,
            ),
            item.source,
        ));
    }
    if let Some(facts) = facts {
        let bytes = crate::base::canonical::to_vec(facts);
        let object = app.store.put_object(Body::Bytes(bytes)).await?;
        stored.push((
            row(
                facts::ITEM,
                Role::Facts,
                "application/json",
                &object,
                now,
                None,
            ),
            Source::default(),
        ));
    }
    Ok(stored)
}

/// Runs the collector's check over the facts as read back from the store.
async fn check_stored(
    app: &Annexa,
    collector: &dyn Collector,
    run: &RunRow,
    facts: &StoredObject,
) -> Vec<Finding> {
    let row = facts::Stored {
        collector: &run.collector,
        run_id: &run.id,
        sha256: &facts.sha256,
        object_key: &facts.key,
    };
    let as_of = annexa_collectors::AsOf::now(app.clock.now());
    match facts::judge(app, collector, row, as_of).await {
        Ok(judged) => judged.findings,
        Err(f) => vec![f],
    }
}

/// Writes the manifest and records the run, its evidence, findings and ledger leaf atomically.
/// The manifest is written from the spool into a temporary file, hashed as it is written, and
/// the evidence rows go into the database in batches: a run of a million items is never held.
pub(super) async fn record(
    app: &Annexa,
    run: &mut RunRow,
    spool: &mut Spool,
    findings: &[Finding],
) -> Result<(), RunError> {
    let failed = |cause: StoreError| RunError::Store {
        run_id: run.id.clone(),
        collector: run.collector.clone(),
        cause,
    };
    let spooled = |e: std::io::Error| StoreError::Io {
        location: "the run's temporary manifest and rows".into(),
        cause: e,
    };
    let mut tx = app.db.begin_append().await?;
    let key = manifest::key(&run.collector, run.started_at, &run.id);
    let file = tempfile::NamedTempFile::new().map_err(|e| failed(spooled(e)))?;
    let mut out = HashingWriter::new(std::io::BufWriter::new(
        file.reopen().map_err(|e| failed(spooled(e)))?,
    ));
    let rows = spool.rows().map_err(|e| failed(spooled(e)))?;
    manifest::write_to(run, rows, tx.next_index, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| failed(spooled(e)))?;
    let (digest, leaf, size) = out.finish();
    let object = app
        .store
        .put_named_file(&key, file.path(), digest, size)
        .await
        .map_err(failed)?;
    run.manifest_key = Some(key);
    run.manifest_sha256 = Some(object.sha256);
    run.ledger_index = Some(tx.next_index);
    let with_collector: Vec<(Finding, String)> = findings
        .iter()
        .map(|f| (f.clone(), run.collector.clone()))
        .collect();
    tx.record_run(run, &[], &with_collector, &hex::encode(leaf))
        .await?;
    const BATCH: usize = 2_000;
    let mut batch = Vec::with_capacity(BATCH);
    for row in spool.rows().map_err(|e| failed(spooled(e)))? {
        batch.push(row.map_err(|e| failed(spooled(e)))?.0);
        if batch.len() == BATCH {
            tx.insert_evidence(&batch).await?;
            batch.clear();
        }
    }
    tx.insert_evidence(&batch).await?;
    tx.commit().await?;
    Ok(())
}

/// A writer that hashes what passes through it twice: SHA-256 of the bytes, and the ledger's
/// leaf hash of them (SHA-256 of 0x00 and the bytes).
struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
    leaf: Sha256,
    size: u64,
}

impl<W: std::io::Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        HashingWriter {
            inner,
            sha: Sha256::new(),
            leaf,
            size: 0,
        }
    }

    fn finish(self) -> ([u8; 32], [u8; 32], u64) {
        (
            self.sha.finalize().into(),
            self.leaf.finalize().into(),
            self.size,
        )
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.leaf.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
