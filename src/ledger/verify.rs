//! `annexa verify`: re-hashes every stored object and matches objects, run manifests, database
//! rows and ledger leaves against each other. Each mismatch is a [`Violation`] with its kind,
//! location, expected and actual value.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit::{self, Actor, AuditAction};
use super::manifest::ItemView;
use super::scrub::{self, Coverage, Scope};
use crate::app::Annexa;
use crate::base::closed_set;
use crate::db::EvidenceRow;
use crate::ledger;
use crate::store::{HashingReader, StoreError, digest_of};

closed_set! {
    /// What kind of mismatch a violation is; the strings are in `annexa verify --json`.
    pub enum ViolationKind {
        ObjectAltered = "object-altered",
        ObjectMissing = "object-missing",
        /// An object the store would not return, after retries.
        ObjectUnreadable = "object-unreadable",
        EvidenceRowAltered = "evidence-row-altered",
        ManifestMissing = "manifest-missing",
        ManifestAltered = "manifest-altered",
        ManifestMismatch = "manifest-mismatch",
        ManifestUnreadable = "manifest-unreadable",
        LedgerGap = "ledger-gap",
        RunRowMismatch = "run-row-mismatch",
        AuditEventMissing = "audit-event-missing",
        LedgerLeafKind = "ledger-leaf-kind",
        LedgerLeafMismatch = "ledger-leaf-mismatch",
        AuditEventUnledgered = "audit-event-unledgered",
        LedgerRollback = "ledger-rollback",
        /// A recorded run whose ledger leaf is gone or is another's.
        RunUnledgered = "run-unledgered",
        /// A manifest in the store whose run is not in the database at all.
        ManifestUnledgered = "manifest-unledgered",
        CheckpointMissing = "checkpoint-missing",
        CheckpointAltered = "checkpoint-altered",
        CheckpointUnreadable = "checkpoint-unreadable",
        CheckpointUnknownKey = "checkpoint-unknown-key",
        CheckpointSignatureInvalid = "checkpoint-signature-invalid",
        CheckpointSignedByRevokedKey = "checkpoint-signed-by-revoked-key",
        CheckpointOrigin = "checkpoint-origin",
        CheckpointReplayed = "checkpoint-replayed",
        CheckpointConflict = "checkpoint-conflict",
        CheckpointInconsistent = "checkpoint-inconsistent",
        BundleFileMissing = "bundle-file-missing",
        BundleFileAltered = "bundle-file-altered",
        BundleManifestUnreadable = "bundle-manifest-unreadable",
        BundleManifestAltered = "bundle-manifest-altered",
        BundleSignatureUnreadable = "bundle-signature-unreadable",
        BundleSignatureInvalid = "bundle-signature-invalid",
        BundleUnknownKey = "bundle-unknown-key",
        BundleSignedByRevokedKey = "bundle-signed-by-revoked-key",
        /// An audit path of an evidence package that does not lead to its checkpoint's root.
        ProofInvalid = "proof-invalid",
        /// A file in an evidence package that it does not list, or that no run of it lists.
        PackageStrayFile = "package-stray-file",
        /// A run in an evidence package that did not finish in its period.
        PackageOutsidePeriod = "package-outside-period",
    }
}

/// Records the outcome of a verify as an audit event, so status (and alerts) see it; never
/// into a ledger that a published checkpoint says was rolled back or rewritten.
pub async fn record(app: &Annexa, report: &VerifyReport) -> anyhow::Result<()> {
    crate::ledger::checkpoint::guard_append(app).await?;
    let kinds: BTreeSet<ViolationKind> = report.violations.iter().map(|v| v.kind).collect();
    audit::record(
        &app.db,
        Actor::Annexa,
        AuditAction::Verified,
        &report.store,
        serde_json::json!({
            "violations": report.violations.len(),
            "kinds": kinds,
            "objects": report.objects_checked,
            "ledger_size": report.ledger_size,
            "scrub": report.coverage,
        }),
        app.clock.now(),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What kind of mismatch, e.g. `object-altered`, `manifest-missing`, `ledger-leaf-mismatch`.
    pub kind: ViolationKind,
    /// The object key, run or ledger index concerned.
    pub location: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub store: String,
    /// Objects re-hashed (all of them, unless rolling).
    pub objects_checked: usize,
    /// Objects in the store or named by evidence rows.
    pub objects_in_store: usize,
    /// What was re-hashed: the scope, the arc swept, and the oldest re-hash since (none for
    /// a report bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    pub bytes_hashed: u64,
    pub runs_checked: usize,
    pub ledger_size: usize,
    pub checkpoints_checked: usize,
    /// The root recomputed from the leaf bytes (hex).
    pub ledger_root: String,
    pub violations: Vec<Violation>,
    /// Things worth knowing that are not violations (a run that died before recording).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// A report of `store` with nothing checked yet.
    pub(super) fn empty(store: String) -> VerifyReport {
        VerifyReport {
            store,
            objects_checked: 0,
            objects_in_store: 0,
            coverage: None,
            bytes_hashed: 0,
            runs_checked: 0,
            ledger_size: 0,
            checkpoints_checked: 0,
            ledger_root: String::new(),
            violations: Vec::new(),
            notes: Vec::new(),
        }
    }
}

pub(super) fn violation(
    kind: ViolationKind,
    location: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Violation {
    Violation {
        kind,
        location: location.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// Checks everything; only I/O failures (an unreachable store or database) are errors.
/// `trusted` is a checkpoint (signed note) the caller trusts; the ledger must extend it.
/// `rolling` re-hashes only the objects the rolling scrub plans (see [`super::scrub`]); every
/// other check is made in full either way. Memory grows with the number of objects (a few
/// dozen bytes each), not with their rows or a manifest's items: the rows are streamed run by
/// run, each beside its manifest read as a stream.
pub async fn verify(
    app: &Annexa,
    trusted: Option<&str>,
    rolling: bool,
) -> anyhow::Result<VerifyReport> {
    let started = app.clock.now();
    // One snapshot of the database: runs that commit meanwhile are wholly in it or wholly out,
    // so a verify beside a collection sees no half.
    let mut snapshot = app.db.snapshot().await?;
    // The store's listing and the database's tables at once: for a small store they are most
    // of the time a verify takes.
    let listing = async { Ok::<_, anyhow::Error>(app.store.list_objects().await?) };
    let tables = async {
        let runs = snapshot.runs().await?;
        let leaves = snapshot.ledger().await?;
        let events = snapshot.audit_events().await?;
        Ok::<_, anyhow::Error>((runs, leaves, events))
    };
    let (listed, (runs, leaves, events)) = tokio::try_join!(listing, tables)?;
    let mut objects = Objects::listed(listed);
    // The verifies so far (their events are in ledger order, which is time order).
    let passes = scrub::passes(
        events
            .iter()
            .filter(|e| e.action == AuditAction::Verified.as_str()),
    );
    let scope = if rolling {
        scrub::plan(&passes, started, app.config.verify.full_every)
    } else {
        Scope::Full
    };
    let mut violations = Vec::new();
    let mut row_violations = Vec::new();
    let mut manifest_violations = Vec::new();
    let mut notes = Vec::new();

    // 1. Run by run, its rows beside its manifest: the manifest is in the store, unaltered,
    // and lists exactly the run's rows. Each row names the object its hash names; the objects
    // learn when each was first recorded (the end of the first run whose rows name it) and the
    // size the rows give it.
    let mut leaf_of_run: HashMap<String, ledger::Hash> = HashMap::new();
    {
        let finished: std::collections::HashSet<&str> =
            runs.iter().map(|r| r.id.as_str()).collect();
        // Rows of no finished run still name objects; they sort among the others.
        let orphan = |r: &Result<EvidenceRow, crate::db::DbError>| {
            r.as_ref()
                .map_or(true, |r| !finished.contains(r.run_id.as_str()))
        };
        let mut rows = snapshot.evidence().peekable();
        // Manifests are opened `[verify] concurrency` runs ahead: on S3 each is a GET.
        let mut manifests = futures::stream::iter(0..runs.len())
            .map(|i| open_manifest(app, &runs[i]))
            .buffered(app.config.verify.concurrency.max(1));
        for run in runs.iter().map(Some).chain([None]) {
            while let Some(row) = std::pin::Pin::new(&mut rows).next_if(orphan).await {
                let row = row?;
                check_row(&row, row.collected_at, &mut objects, &mut row_violations);
            }
            let Some(run) = run else { break };
            let this_run = |r: &Result<EvidenceRow, crate::db::DbError>| {
                r.as_ref().map_or(true, |r| r.run_id == run.id)
            };
            let opened = manifests.next().await.expect("one per run");
            let mut items = match opened {
                None => {
                    notes.push(format!(
                        "run {} of `{}` failed before it could be recorded: {}",
                        run.id,
                        run.collector,
                        run.error.as_deref().unwrap_or("no reason recorded")
                    ));
                    None
                }
                Some((key, opened)) => match opened {
                    Ok(opened) => Some(read_manifest(opened)),
                    Err(StoreError::NotFound { .. }) => {
                        manifest_violations.push(violation(
                            ViolationKind::ManifestMissing,
                            key,
                            run.manifest_sha256.clone().unwrap_or_default(),
                            "no such object",
                        ));
                        None
                    }
                    Err(
                        e @ (StoreError::Unauthorized { .. } | StoreError::NoSuchBucket { .. }),
                    ) => {
                        return Err(anyhow::anyhow!("reading {key}: {e}"));
                    }
                    Err(e) => {
                        manifest_violations.push(unreadable_manifest(key, e));
                        None
                    }
                },
            };
            // Items and rows pair off while they agree (a manifest lists the rows in the order
            // they were stored); what is left of either side is compared as a set.
            let (mut paired, mut listed, mut recorded) = (0usize, Vec::new(), Vec::new());
            loop {
                let row = match std::pin::Pin::new(&mut rows).next_if(this_run).await {
                    Some(row) => Some(row?),
                    None => None,
                };
                let item = match &mut items {
                    Some(m) => m.next().await,
                    None => None,
                };
                if row.is_none() && item.is_none() {
                    break;
                }
                let row = row.map(|row| {
                    let at = run.finished_at.unwrap_or(row.collected_at);
                    check_row(&row, at, &mut objects, &mut row_violations);
                    ItemView::of_row(&row)
                });
                if listed.is_empty() && recorded.is_empty() && row.is_some() && row == item {
                    paired += 1;
                } else {
                    recorded.extend(row);
                    listed.extend(item);
                }
            }
            let (Some(key), Some(manifest)) = (&run.manifest_key, items) else {
                continue;
            };
            let read = manifest
                .done
                .await
                .expect("the manifest reader does not panic");
            let (head, sha, leaf) = match read {
                Ok(read) => read,
                Err(e) => {
                    manifest_violations.push(unreadable_manifest(key, e));
                    continue;
                }
            };
            leaf_of_run.insert(run.id.clone(), leaf);
            if Some(&sha) != run.manifest_sha256.as_ref() {
                manifest_violations.push(violation(
                    ViolationKind::ManifestAltered,
                    key,
                    run.manifest_sha256.clone().unwrap_or_default(),
                    sha,
                ));
            }
            match head {
                Ok(m) => {
                    listed.sort();
                    recorded.sort();
                    if listed != recorded
                        || m.run_id != run.id
                        || Some(m.ledger_index) != run.ledger_index
                    {
                        manifest_violations.push(violation(
                            ViolationKind::ManifestMismatch,
                            key,
                            format!(
                                "run {} with {} items at ledger index {:?}",
                                run.id,
                                paired + recorded.len(),
                                run.ledger_index
                            ),
                            format!(
                                "run {} with {} items at ledger index {}",
                                m.run_id,
                                paired + listed.len(),
                                m.ledger_index
                            ),
                        ));
                    }
                }
                Err(e) => manifest_violations.push(unreadable_manifest(key, e)),
            }
        }
    }

    // 2. Every object, listed or named by a row, is there; those in scope are re-hashed (in
    // batches, so a million keys are never strings at once), and a key names its hash.
    let objects_in_store = objects.len();
    // The keys to re-hash: by digest (32 bytes each), as strings only a batch at a time.
    let (mut hashed_scope, mut other_scope) = (Vec::new(), Vec::new());
    for (key, digest, object) in objects.iter() {
        if scope.covers(&key, object.first_at) {
            match digest {
                Some(d) => hashed_scope.push(d),
                None => other_scope.push(key),
            }
        } else if !object.listed {
            // Named by rows, not listed, and not re-hashed now: missing.
            violations.push(violation(
                ViolationKind::ObjectMissing,
                &key,
                key.rsplit('/').next().unwrap_or_default(),
                "no such object",
            ));
        }
    }
    let in_scope = hashed_scope.len() + other_scope.len();
    // Shown only on a terminal.
    let progress = indicatif::ProgressBar::new(in_scope as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "verifying {pos}/{len} objects [{elapsed_precise}] {wide_bar} {eta} left",
        )
        .expect("a valid template"),
    );
    let (mut bytes_hashed, mut sizes_to_check) = (0, Vec::new());
    let mut done = 0;
    while done < in_scope {
        let batch: Vec<String> = match hashed_scope.get(done..) {
            Some(rest) if !rest.is_empty() => rest[..rest.len().min(HASH_BATCH)]
                .iter()
                .map(|d| crate::store::object_key(&hex::encode(d)))
                .collect(),
            _ => std::mem::take(&mut other_scope),
        };
        done += batch.len();
        let batch = std::sync::Arc::new(batch);
        let results = app
            .store
            .hash_all(
                batch.clone(),
                app.config.verify.concurrency,
                progress.clone(),
            )
            .await?;
        for (key, result) in batch.iter().zip(results) {
            let named = key.rsplit('/').next().unwrap_or_default();
            match result {
                Ok((sha, size)) => {
                    bytes_hashed += size;
                    if sha != named {
                        violations.push(violation(ViolationKind::ObjectAltered, key, named, sha));
                    }
                    if objects.get(key).is_some_and(|o| {
                        o.sizes_differ || o.row_size.is_some_and(|s| s as u64 != size)
                    }) {
                        sizes_to_check.push((key.clone(), size));
                    }
                }
                Err(StoreError::NotFound { .. }) => violations.push(violation(
                    ViolationKind::ObjectMissing,
                    key,
                    named,
                    "no such object",
                )),
                Err(e) => violations.push(violation(
                    ViolationKind::ObjectUnreadable,
                    key,
                    named,
                    e.to_string(),
                )),
            }
        }
    }
    progress.finish_and_clear();
    // An evidence row must give the size its object has.
    for (key, size) in sizes_to_check {
        for row in snapshot.rows_naming(&key).await? {
            if row.size as u64 != size {
                row_violations.push(violation(
                    ViolationKind::EvidenceRowAltered,
                    format!("evidence row {} / {}", row.run_id, row.name),
                    size.to_string(),
                    row.size.to_string(),
                ));
            }
        }
    }
    snapshot.close().await?;
    violations.append(&mut row_violations);
    violations.append(&mut manifest_violations);
    let recorded: BTreeSet<&str> = runs
        .iter()
        .filter_map(|r| r.manifest_key.as_deref())
        .collect();
    let acknowledged = crate::ledger::checkpoint::acknowledged_rollbacks(app).await?;
    for key in app.store.list("runs").await? {
        if recorded.contains(key.as_str()) {
            continue;
        }
        // A run killed before its commit leaves its row `running` (or swept `cancelled`); a
        // manifest whose run row is gone altogether was removed with its history.
        let manifest = match app.store.read(&key).await {
            Ok(bytes) => super::manifest::read(&bytes).ok(),
            Err(e) => return Err(anyhow::anyhow!("reading {key}: {e}")),
        };
        match manifest {
            Some(m)
                if acknowledged
                    .iter()
                    .any(|(db_size, _)| m.ledger_index >= *db_size as i64) =>
            {
                notes.push(format!(
                    "{key}: run {} is history lost in a rollback an operator acknowledged",
                    m.run_id
                ));
            }
            Some(m) if app.db.run(&m.run_id).await?.is_none() => {
                violations.push(violation(
                    ViolationKind::ManifestUnledgered,
                    &key,
                    format!(
                        "run {} in the database at ledger index {}",
                        m.run_id, m.ledger_index
                    ),
                    "no such run: its rows were deleted",
                ));
            }
            _ => notes.push(format!(
                "{key} has no recorded run (a run killed before its database commit); it is kept"
            )),
        }
    }

    // 3. The ledger: contiguous, each leaf the hash of its manifest or audit event.
    let events_by_id: BTreeMap<&str, _> = events.iter().map(|e| (e.id.as_str(), e)).collect();
    let runs_by_id: BTreeMap<&str, _> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut recomputed = Vec::with_capacity(leaves.len());
    for (position, leaf) in leaves.iter().enumerate() {
        let location = format!("ledger[{}]", leaf.idx);
        if leaf.idx != position as i64 {
            violations.push(violation(
                ViolationKind::LedgerGap,
                &location,
                position.to_string(),
                leaf.idx.to_string(),
            ));
        }
        let actual = match leaf.kind.as_str() {
            "run" => {
                if runs_by_id
                    .get(leaf.ref_id.as_str())
                    .and_then(|r| r.ledger_index)
                    != Some(leaf.idx)
                {
                    violations.push(violation(
                        ViolationKind::RunRowMismatch,
                        &location,
                        format!("run {} at this index", leaf.ref_id),
                        "no run row points here",
                    ));
                }
                leaf_of_run.get(&leaf.ref_id).copied()
            }
            "audit_event" => match events_by_id.get(leaf.ref_id.as_str()) {
                Some(e) if e.ledger_index == leaf.idx => Some(audit::leaf_hash(e)),
                _ => {
                    violations.push(violation(
                        ViolationKind::AuditEventMissing,
                        &location,
                        format!("audit event {}", leaf.ref_id),
                        "no such row at this index",
                    ));
                    None
                }
            },
            other => {
                violations.push(violation(
                    ViolationKind::LedgerLeafKind,
                    &location,
                    "run or audit_event",
                    other,
                ));
                None
            }
        };
        let stored = ledger::from_hex(&leaf.leaf_hash).unwrap_or([0; 32]);
        match actual {
            Some(h) if h != stored => {
                violations.push(violation(
                    ViolationKind::LedgerLeafMismatch,
                    &location,
                    &leaf.leaf_hash,
                    hex::encode(h),
                ));
                recomputed.push(h);
            }
            Some(h) => recomputed.push(h),
            None => recomputed.push(stored),
        }
    }
    // Every recorded run has its own leaf: a deleted last leaf leaves no gap to see.
    for run in &runs {
        if run.manifest_key.is_none() {
            continue;
        }
        let leaf = run
            .ledger_index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| leaves.get(i));
        if !leaf.is_some_and(|l| l.kind == "run" && l.ref_id == run.id) {
            violations.push(violation(
                ViolationKind::RunUnledgered,
                format!("run {}", run.id),
                format!("a ledger leaf at index {:?}", run.ledger_index),
                match leaf {
                    None => format!("none: the ledger has {} leaves", leaves.len()),
                    Some(l) => format!("the leaf of {} {}", l.kind, l.ref_id),
                },
            ));
        }
    }
    let ledgered: BTreeSet<&str> = leaves
        .iter()
        .filter(|l| l.kind == "audit_event")
        .map(|l| l.ref_id.as_str())
        .collect();
    for e in &events {
        if !ledgered.contains(e.id.as_str()) {
            violations.push(violation(
                ViolationKind::AuditEventUnledgered,
                format!("audit_events[{}]", e.id),
                "a ledger leaf",
                "none",
            ));
        }
    }

    // 4. Checkpoints: signed by a key valid at the time, consistent with the ledger and with
    // each other, never replayed; the trusted one is extended.
    let checkpoints_checked = check_checkpoints(
        app,
        &recomputed,
        trusted,
        &acknowledged,
        &mut violations,
        &mut notes,
    )
    .await?;

    Ok(VerifyReport {
        store: app.store.location(),
        checkpoints_checked,
        objects_checked: in_scope,
        objects_in_store,
        coverage: Some(Coverage::new(
            &scope,
            started,
            &passes,
            in_scope,
            bytes_hashed,
        )),
        bytes_hashed,
        runs_checked: runs.len(),
        ledger_size: leaves.len(),
        ledger_root: hex::encode(ledger::root(&recomputed)),
        violations,
        notes,
    })
}

/// Objects re-hashed per call to the store: their keys are strings only a batch at a time.
const HASH_BATCH: usize = 4096;

/// What verify knows of each object: whether the store lists it, and what the rows naming it
/// say. A million objects take about 64 MiB.
struct Objects {
    /// The content-addressed objects the store lists, by digest (sorted).
    listed: Vec<([u8; 32], Object)>,
    /// Content-addressed objects only rows name.
    unlisted: BTreeMap<[u8; 32], Object>,
    /// Any other key: a stray file, or a key a tampered row names.
    other: BTreeMap<String, Object>,
}

#[derive(Default)]
struct Object {
    listed: bool,
    /// When a row first named it: the end of the first run whose rows do.
    first_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The size the first row naming it gives, and whether another row gives another.
    row_size: Option<i64>,
    sizes_differ: bool,
}

impl Objects {
    fn listed(listing: crate::store::Listing) -> Objects {
        let listed = || Object {
            listed: true,
            ..Object::default()
        };
        Objects {
            listed: listing.digests.into_iter().map(|d| (d, listed())).collect(),
            unlisted: BTreeMap::new(),
            other: listing.other.into_iter().map(|k| (k, listed())).collect(),
        }
    }

    fn entry(&mut self, key: &str) -> &mut Object {
        let Some(d) = digest_of(key) else {
            return self.other.entry(key.to_string()).or_default();
        };
        match self.listed.binary_search_by(|(l, _)| l.cmp(&d)) {
            Ok(i) => &mut self.listed[i].1,
            Err(_) => self.unlisted.entry(d).or_default(),
        }
    }

    fn get(&self, key: &str) -> Option<&Object> {
        let Some(d) = digest_of(key) else {
            return self.other.get(key);
        };
        match self.listed.binary_search_by(|(l, _)| l.cmp(&d)) {
            Ok(i) => Some(&self.listed[i].1),
            Err(_) => self.unlisted.get(&d),
        }
    }

    fn len(&self) -> usize {
        self.listed.len() + self.unlisted.len() + self.other.len()
    }

    /// Every object: its key, the digest it names (None for another key), and what is known.
    fn iter(&self) -> impl Iterator<Item = (String, Option<[u8; 32]>, &Object)> {
        let listed = self.listed.iter().map(|(d, o)| (d, o));
        listed
            .chain(&self.unlisted)
            .map(|(d, o)| (crate::store::object_key(&hex::encode(d)), Some(*d), o))
            .chain(self.other.iter().map(|(k, o)| (k.clone(), None, o)))
    }
}

/// An evidence row must name the object its hash names; the object learns when it was first
/// recorded (`at`) and the size the row gives it.
fn check_row(
    row: &EvidenceRow,
    at: chrono::DateTime<chrono::Utc>,
    objects: &mut Objects,
    violations: &mut Vec<Violation>,
) {
    let key_hash = row.object_key.rsplit('/').next().unwrap_or_default();
    if row.sha256 != key_hash {
        violations.push(violation(
            ViolationKind::EvidenceRowAltered,
            format!("evidence row {} / {}", row.run_id, row.name),
            key_hash,
            &row.sha256,
        ));
    }
    let object = objects.entry(&row.object_key);
    object.first_at = Some(object.first_at.map_or(at, |first| first.min(at)));
    match object.row_size {
        None => object.row_size = Some(row.size),
        Some(size) if size != row.size => object.sizes_differ = true,
        Some(_) => {}
    }
}

/// A manifest that cannot be read, and why.
fn unreadable_manifest(key: &str, why: impl std::fmt::Display) -> Violation {
    violation(
        ViolationKind::ManifestUnreadable,
        key,
        "a run manifest",
        why.to_string(),
    )
}

/// A run's manifest opened to be read, or None for a run that recorded none.
async fn open_manifest<'r>(
    app: &Annexa,
    run: &'r crate::db::RunRow,
) -> Option<(&'r str, Result<crate::store::Opened, StoreError>)> {
    let key = run.manifest_key.as_deref()?;
    Some((key, app.store.open_object(key).await))
}

/// A manifest being read as a stream on a blocking thread: its items as they are parsed, then
/// its head (or why it cannot be parsed), the SHA-256 of its bytes and its ledger leaf hash.
struct ManifestRead {
    /// Items come in batches: one hand-over per item cost a thread wake-up each.
    batches: tokio::sync::mpsc::Receiver<Vec<ItemView>>,
    batch: std::vec::IntoIter<ItemView>,
    done: tokio::task::JoinHandle<std::io::Result<(ManifestHead, String, ledger::Hash)>>,
}

impl ManifestRead {
    /// The next item, or None after the last.
    async fn next(&mut self) -> Option<ItemView> {
        loop {
            if let Some(item) = self.batch.next() {
                return Some(item);
            }
            self.batch = self.batches.recv().await?.into_iter();
        }
    }
}

/// Items handed over at once.
const ITEM_BATCH: usize = 512;

type ManifestHead = Result<super::manifest::ManifestHead, serde_json::Error>;

fn read_manifest(opened: crate::store::Opened) -> ManifestRead {
    let (send, batches) = tokio::sync::mpsc::channel(4);
    let done = tokio::task::spawn_blocking(move || {
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        let hashing = HashingReader {
            inner: HashingReader::new(opened.file),
            hasher: leaf,
        };
        // Buffered outside the hashers, so they hash in blocks while the parser reads bytes.
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, hashing);
        let mut batch = Vec::with_capacity(ITEM_BATCH);
        let head = super::manifest::read_each(&mut reader, |item| {
            batch.push(item);
            batch.len() < ITEM_BATCH
                || send
                    .blocking_send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(ITEM_BATCH),
                    ))
                    .is_ok()
        });
        if !batch.is_empty() {
            let _ = send.blocking_send(batch);
        }
        drop(send);
        // Every byte is hashed, whether or not it parsed.
        std::io::copy(&mut reader, &mut std::io::sink())?;
        let hashing = reader.into_inner();
        let sha = hex::encode(hashing.inner.hasher.finalize());
        Ok((head, sha, hashing.hasher.finalize().into()))
    });
    ManifestRead {
        batches,
        batch: Vec::new().into_iter(),
        done,
    }
}

/// One checkpoint as found: where, when (as far as known), and its note.
struct FoundCheckpoint {
    location: String,
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// The date in its store key, for ordering.
    date: Option<chrono::NaiveDate>,
    note: String,
}

/// Checks every checkpoint in the store and the database, and the trusted one.
async fn check_checkpoints(
    app: &Annexa,
    leaves: &[ledger::Hash],
    trusted: Option<&str>,
    acknowledged: &[(u64, u64)],
    all_violations: &mut Vec<Violation>,
    notes: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut found_violations = Vec::new();
    let violations = &mut found_violations;
    use crate::ledger::checkpoint::Body;
    use crate::ledger::note::SignedNote;

    let keys = app.db.keys().await?;
    let verifiers: Vec<(crate::ledger::note::Verifier, &crate::db::KeyRow)> = keys
        .iter()
        .filter_map(|k| {
            crate::ledger::note::Verifier::parse(&k.verifier)
                .ok()
                .map(|v| (v, k))
        })
        .collect();
    let rows = app.db.checkpoints().await?;
    let mut found: Vec<FoundCheckpoint> = Vec::new();
    let mut stored_notes: BTreeMap<String, String> = BTreeMap::new();
    for key in app.store.list("ledger/checkpoints").await? {
        let note = match app.store.read(&key).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => return Err(anyhow::anyhow!("reading {key}: {e}")),
        };
        let date = key
            .split('/')
            .nth(2)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        stored_notes.insert(key.clone(), note.clone());
        found.push(FoundCheckpoint {
            at: rows
                .iter()
                .find(|r| r.object_key == key)
                .map(|r| r.created_at),
            location: key,
            date,
            note,
        });
    }
    for row in &rows {
        match stored_notes.get(&row.object_key) {
            None => violations.push(violation(
                ViolationKind::CheckpointMissing,
                &row.object_key,
                format!("the checkpoint of tree size {}", row.tree_size),
                "not in the store",
            )),
            Some(n) if *n != row.note => violations.push(violation(
                ViolationKind::CheckpointAltered,
                &row.object_key,
                "the note recorded in the database",
                "another note",
            )),
            Some(_) => {}
        }
    }
    if let Some(t) = trusted {
        found.push(FoundCheckpoint {
            location: "the trusted checkpoint".into(),
            at: None,
            date: None,
            note: t.to_string(),
        });
    }

    // Roots of the recomputed tree at every size a checkpoint names, in one pass.
    let mut bodies: Vec<(usize, Body)> = Vec::new();
    for (i, c) in found.iter().enumerate() {
        let note = match SignedNote::parse(&c.note) {
            Ok(n) => n,
            Err(e) => {
                violations.push(violation(
                    ViolationKind::CheckpointUnreadable,
                    &c.location,
                    "a signed note",
                    e,
                ));
                continue;
            }
        };
        let signers: Vec<&(crate::ledger::note::Verifier, &crate::db::KeyRow)> = verifiers
            .iter()
            .filter(|(v, _)| {
                note.signatures
                    .iter()
                    .any(|(name, id, _)| *id == v.id && *name == v.name)
            })
            .collect();
        if signers.is_empty() {
            violations.push(violation(
                ViolationKind::CheckpointUnknownKey,
                &c.location,
                "a signature by a key annexa recorded",
                note.signatures
                    .iter()
                    .map(|(n, id, _)| format!("{n} {}", hex::encode(id)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
            continue;
        }
        let only: Vec<crate::ledger::note::Verifier> =
            signers.iter().map(|(v, _)| v.clone()).collect();
        if let Err(e) = note.verified_by(&only) {
            violations.push(violation(
                ViolationKind::CheckpointSignatureInvalid,
                &c.location,
                "a valid Ed25519 signature",
                e,
            ));
            continue;
        }
        // A key signs validly only before it was revoked.
        let signed_at = c.at.or_else(|| {
            c.date
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
        for (_, k) in &signers {
            if let (Some(revoked), Some(at)) = (k.revoked_at, signed_at)
                && at >= revoked
            {
                violations.push(violation(
                    ViolationKind::CheckpointSignedByRevokedKey,
                    &c.location,
                    format!(
                        "a signature before key {} was revoked ({})",
                        k.id,
                        crate::db::ts(revoked)
                    ),
                    format!("signed {}", crate::db::ts(at)),
                ));
            }
        }
        match Body::parse(&note.text) {
            Ok(b) => {
                if b.origin != app.config.ledger.origin {
                    violations.push(violation(
                        ViolationKind::CheckpointOrigin,
                        &c.location,
                        &app.config.ledger.origin,
                        &b.origin,
                    ));
                }
                if let Some(size) = crate::ledger::checkpoint::size_in_key(&c.location)
                    && c.date.is_some()
                    && size != b.size
                {
                    violations.push(violation(
                        ViolationKind::CheckpointReplayed,
                        &c.location,
                        format!("tree size {size}"),
                        format!("tree size {}", b.size),
                    ));
                }
                bodies.push((i, b));
            }
            Err(e) => violations.push(violation(
                ViolationKind::CheckpointUnreadable,
                &c.location,
                "origin, size, root",
                e,
            )),
        }
    }

    // Published checkpoints only grow: a later date with a smaller tree is an old one replayed.
    let mut dated: Vec<(chrono::NaiveDate, u64, &str)> = bodies
        .iter()
        .filter_map(|(i, b)| {
            found[*i]
                .date
                .map(|d| (d, b.size, found[*i].location.as_str()))
        })
        .collect();
    dated.sort();
    let mut largest: Option<(u64, &str)> = None;
    for (_, size, location) in &dated {
        if let Some((max, at)) = largest
            && *size < max
        {
            violations.push(violation(
                ViolationKind::CheckpointReplayed,
                *location,
                format!("a tree of at least {max} leaves (published earlier at {at})"),
                format!("tree size {size}"),
            ));
        }
        if largest.is_none_or(|(max, _)| *size >= max) {
            largest = Some((*size, location));
        }
    }
    // Two checkpoints for one size must agree.
    let mut by_size: BTreeMap<u64, (&str, &str)> = BTreeMap::new();
    for (i, b) in &bodies {
        match by_size.get(&b.size) {
            Some((root, at)) if *root != b.root => violations.push(violation(
                ViolationKind::CheckpointConflict,
                &found[*i].location,
                format!("root {root} (as in {at})"),
                format!("root {}", b.root),
            )),
            Some(_) => {}
            None => {
                by_size.insert(b.size, (&b.root, &found[*i].location));
            }
        }
    }
    // Each checkpoint is a prefix of the ledger: its root is the root of its first leaves.
    // The trusted one by a consistency proof from it to the whole ledger (RFC 9162
    // §2.1.4.2), as an auditor holding only the two roots would check it.
    let trusted_at = trusted.map(|_| found.len() - 1);
    let sizes: Vec<u64> = bodies.iter().map(|(_, b)| b.size).collect();
    for ((i, b), root) in bodies.iter().zip(ledger::roots_at(leaves, &sizes)) {
        if Some(*i) == trusted_at && root.is_some() {
            if let Err(e) = extends(leaves, b) {
                violations.push(violation(
                    ViolationKind::CheckpointInconsistent,
                    &found[*i].location,
                    format!(
                        "a ledger that extends the tree of {} leaves with root {}",
                        b.size, b.root
                    ),
                    e,
                ));
            }
            continue;
        }
        match root {
            Some(root) => {
                let actual = ledger::b64(&root);
                if actual != b.root {
                    violations.push(violation(
                        ViolationKind::CheckpointInconsistent,
                        &found[*i].location,
                        format!("root {} at tree size {}", b.root, b.size),
                        format!("root {actual} recomputed from the ledger"),
                    ));
                }
            }
            None => violations.push(violation(
                ViolationKind::LedgerRollback,
                &found[*i].location,
                format!("a ledger of at least {} leaves", b.size),
                format!(
                    "{} leaves: the database was restored from an older copy, or rows were deleted",
                    leaves.len()
                ),
            )),
        }
    }
    // History an operator acknowledged losing (a restored database) is worth a note, not a
    // violation: the audit event says who accepted it and why.
    let size_at: BTreeMap<&str, u64> = bodies
        .iter()
        .map(|(i, b)| (found[*i].location.as_str(), b.size))
        .collect();
    for v in found_violations {
        let lost = size_at.get(v.location.as_str()).is_some_and(|size| {
            acknowledged
                .iter()
                .any(|(db_size, published)| size > db_size && size <= published)
        });
        if lost
            && found
                .iter()
                .any(|c| c.location == v.location && c.date.is_some())
        {
            notes.push(format!(
                "{} ({}): history lost in a rollback an operator acknowledged",
                v.location, v.kind
            ));
        } else {
            all_violations.push(v);
        }
    }
    Ok(found.len())
}

/// Checks that the tree of `leaves` extends the tree head `trusted` by a consistency proof.
fn extends(
    leaves: &[ledger::Hash],
    trusted: &crate::ledger::checkpoint::Body,
) -> Result<(), String> {
    let old = ledger::from_b64(&trusted.root)
        .ok_or_else(|| format!("the root `{}` is not a base64 SHA-256", trusted.root))?;
    if trusted.size == 0 {
        return Ok(());
    }
    let proof = ledger::consistency_proof(leaves, trusted.size as usize)
        .ok_or("the trusted tree is larger than the ledger")?;
    ledger::verify_consistency(
        trusted.size,
        leaves.len() as u64,
        &old,
        &ledger::root(leaves),
        &proof,
    )
    .map_err(|e| format!("the consistency proof from it fails: {e}"))
}
