//! `annexa verify`: re-hashes every stored object and matches objects, run manifests, database
//! rows and ledger leaves against each other. Each mismatch is a [`Violation`] with its kind,
//! location, expected and actual value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit::{self, Actor, AuditAction};
use super::manifest::ItemView;
use super::scrub::{self, Coverage, Scope};
use crate::app::Annexa;
use crate::base::closed_set;
use crate::db::EvidenceRow;
use crate::ledger;
use crate::store::StoreError;

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
/// other check is made in full either way.
pub async fn verify(
    app: &Annexa,
    trusted: Option<&str>,
    rolling: bool,
) -> anyhow::Result<VerifyReport> {
    let started = app.clock.now();
    // The store's listing and the database's rows at once: for a small store they are most of
    // the time a verify takes.
    let listing = async { Ok::<_, anyhow::Error>(app.store.list("objects").await?) };
    let rows = async { Ok::<_, anyhow::Error>(app.db.verify_rows().await?) };
    let (listed, rows) = tokio::try_join!(listing, rows)?;
    let crate::db::VerifyRows {
        evidence,
        runs,
        ledger: leaves,
        audit_events: events,
    } = rows;
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
    let mut notes = Vec::new();

    // 1. Every object, listed or referenced, is there; those in scope are re-hashed, and a
    // key names its hash. When each object was first recorded: the end of the first run whose
    // rows name it.
    let finished: BTreeMap<&str, chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .filter_map(|r| Some((r.id.as_str(), r.finished_at?)))
        .collect();
    let mut written: BTreeMap<&str, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
    for row in &evidence {
        let at = finished
            .get(row.run_id.as_str())
            .copied()
            .unwrap_or(row.collected_at);
        let first = written.entry(row.object_key.as_str()).or_insert(at);
        *first = (*first).min(at);
    }
    // Objects rows name that the store does not list: missing, unless a re-hash finds them.
    let unlisted: Vec<(&str, chrono::DateTime<chrono::Utc>)> = written
        .iter()
        .filter(|(key, _)| listed.binary_search_by(|k| k.as_str().cmp(key)).is_err())
        .map(|(key, at)| (*key, *at))
        .collect();
    let objects_in_store = listed.len() + unlisted.len();
    let mut keys = listed;
    for (key, at) in &unlisted {
        if scope.covers(key, Some(*at)) {
            keys.push(key.to_string());
        } else {
            violations.push(violation(
                ViolationKind::ObjectMissing,
                *key,
                key.rsplit('/').next().unwrap_or_default(),
                "no such object",
            ));
        }
    }
    keys.retain(|k| scope.covers(k, written.get(k.as_str()).copied()));
    keys.sort_unstable();
    let keys = std::sync::Arc::new(keys);
    // Shown only on a terminal.
    let progress = indicatif::ProgressBar::new(keys.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "verifying {pos}/{len} objects [{elapsed_precise}] {wide_bar} {eta} left",
        )
        .expect("a valid template"),
    );
    let results = app
        .store
        .hash_all(
            keys.clone(),
            app.config.verify.concurrency,
            progress.clone(),
        )
        .await?;
    progress.finish_and_clear();
    let hashed = Hashed {
        keys: &keys,
        results: &results,
    };
    let mut bytes_hashed = 0;
    for (key, result) in keys.iter().zip(&results) {
        let named = key.rsplit('/').next().unwrap_or_default();
        match result {
            Ok((sha, size)) => {
                bytes_hashed += size;
                if sha != named {
                    violations.push(violation(ViolationKind::ObjectAltered, key, named, sha));
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
    for row in &evidence {
        check_row(row, &hashed, &mut violations);
    }

    // 2. Every run manifest is in the store, unaltered, and lists exactly the run's rows.
    let mut by_run: BTreeMap<&str, Vec<&EvidenceRow>> = BTreeMap::new();
    for row in &evidence {
        by_run.entry(row.run_id.as_str()).or_default().push(row);
    }
    let mut manifest_bytes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let manifest_keys: Vec<&str> = runs
        .iter()
        .filter_map(|r| r.manifest_key.as_deref())
        .collect();
    let mut read = app
        .store
        .read_all(&manifest_keys, app.config.verify.concurrency)
        .await
        .into_iter();
    for run in &runs {
        let Some(key) = &run.manifest_key else {
            notes.push(format!(
                "run {} of `{}` failed before it could be recorded: {}",
                run.id,
                run.collector,
                run.error.as_deref().unwrap_or("no reason recorded")
            ));
            continue;
        };
        let bytes = match read.next().expect("one read per manifest key") {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                violations.push(violation(
                    ViolationKind::ManifestMissing,
                    key,
                    run.manifest_sha256.clone().unwrap_or_default(),
                    "no such object",
                ));
                continue;
            }
            Err(e @ (StoreError::Unauthorized { .. } | StoreError::NoSuchBucket { .. })) => {
                return Err(anyhow::anyhow!("reading {key}: {e}"));
            }
            Err(e) => {
                violations.push(violation(
                    ViolationKind::ManifestUnreadable,
                    key,
                    "a run manifest",
                    e.to_string(),
                ));
                continue;
            }
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        if Some(&sha) != run.manifest_sha256.as_ref() {
            violations.push(violation(
                ViolationKind::ManifestAltered,
                key,
                run.manifest_sha256.clone().unwrap_or_default(),
                sha,
            ));
        }
        match super::manifest::read(&bytes) {
            Ok(m) => {
                let mut listed = m.items;
                listed.sort();
                let mut recorded: Vec<ItemView> = by_run
                    .get(run.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|r| ItemView::of_row(r))
                    .collect();
                recorded.sort();
                if listed != recorded
                    || m.run_id != run.id
                    || Some(m.ledger_index) != run.ledger_index
                {
                    violations.push(violation(
                        ViolationKind::ManifestMismatch,
                        key,
                        format!(
                            "run {} with {} items at ledger index {:?}",
                            run.id,
                            recorded.len(),
                            run.ledger_index
                        ),
                        format!(
                            "run {} with {} items at ledger index {}",
                            m.run_id,
                            listed.len(),
                            m.ledger_index
                        ),
                    ));
                }
            }
            Err(e) => violations.push(violation(
                ViolationKind::ManifestUnreadable,
                key,
                "a run manifest",
                e.to_string(),
            )),
        }
        manifest_bytes.insert(run.id.clone(), bytes);
    }
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
                manifest_bytes
                    .get(&leaf.ref_id)
                    .map(|b| ledger::leaf_hash(b))
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
        objects_checked: keys.len(),
        objects_in_store,
        coverage: Some(Coverage::new(
            &scope,
            started,
            &passes,
            keys.len(),
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

/// Every re-hashed object: sorted keys, and their results in the same order.
struct Hashed<'a> {
    keys: &'a [String],
    results: &'a [crate::store::HashResult],
}

impl Hashed<'_> {
    fn get(&self, key: &str) -> Option<&crate::store::HashResult> {
        let i = self.keys.binary_search_by(|k| k.as_str().cmp(key)).ok()?;
        Some(&self.results[i])
    }
}

/// An evidence row must name the object its hash names, with the size the object has.
fn check_row(row: &EvidenceRow, hashed: &Hashed, violations: &mut Vec<Violation>) {
    let location = format!("evidence row {} / {}", row.run_id, row.name);
    let key_hash = row.object_key.rsplit('/').next().unwrap_or_default();
    if row.sha256 != key_hash {
        violations.push(violation(
            ViolationKind::EvidenceRowAltered,
            &location,
            key_hash,
            &row.sha256,
        ));
    }
    if let Some(Ok((_, size))) = hashed.get(&row.object_key)
        && *size != row.size as u64
    {
        violations.push(violation(
            ViolationKind::EvidenceRowAltered,
            &location,
            size.to_string(),
            row.size.to_string(),
        ));
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
