//! `annexa verify`: re-hashes every stored object and matches objects, run manifests, database
//! rows and ledger leaves against each other. Each mismatch is a [`Violation`] with its kind,
//! location, expected and actual value.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Annexa;
use crate::db::EvidenceRow;
use crate::ledger;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What kind of mismatch, e.g. `object-altered`, `manifest-missing`, `ledger-leaf-mismatch`.
    pub kind: &'static str,
    /// The object key, run or ledger index concerned.
    pub location: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub store: String,
    pub objects_checked: usize,
    pub bytes_hashed: u64,
    pub runs_checked: usize,
    pub ledger_size: usize,
    /// The root recomputed from the leaf bytes (hex).
    pub ledger_root: String,
    pub violations: Vec<Violation>,
    /// Things worth knowing that are not violations (a run that died before recording).
    pub notes: Vec<String>,
}

/// The items of a manifest, as verify compares them.
#[derive(Debug, Deserialize)]
struct ManifestView {
    run_id: String,
    ledger_index: i64,
    items: Vec<ManifestItemView>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct ManifestItemView {
    name: String,
    sha256: String,
    object_key: String,
    size: i64,
}

fn violation(
    kind: &'static str,
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
pub async fn verify(app: &Annexa) -> anyhow::Result<VerifyReport> {
    let evidence = app.db.all_evidence().await?;
    let runs = app.db.finished_runs().await?;
    let leaves = app.db.ledger().await?;
    let events = app.db.audit_events().await?;
    let mut violations = Vec::new();
    let mut notes = Vec::new();

    // 1. Every object, listed or referenced, is re-hashed; its key names its hash.
    let mut keys: BTreeSet<String> = app.store.list("objects").await?.into_iter().collect();
    keys.extend(evidence.iter().map(|e| e.object_key.clone()));
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let hashed: BTreeMap<String, Result<(String, u64), StoreError>> = futures::stream::iter(keys)
        .map(|key| async move {
            let result = app.store.hash(&key).await;
            (key, result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut bytes_hashed = 0;
    for (key, result) in &hashed {
        let named = key.rsplit('/').next().unwrap_or_default();
        match result {
            Ok((sha, size)) => {
                bytes_hashed += size;
                if sha != named {
                    violations.push(violation("object-altered", key, named, sha));
                }
            }
            Err(StoreError::NotFound { .. }) => {
                violations.push(violation("object-missing", key, named, "no such object"))
            }
            Err(e) => return Err(anyhow::anyhow!("re-hashing {key}: {e}")),
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
        let bytes = match app.store.read(key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                violations.push(violation(
                    "manifest-missing",
                    key,
                    run.manifest_sha256.clone().unwrap_or_default(),
                    "no such object",
                ));
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("reading {key}: {e}")),
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        if Some(&sha) != run.manifest_sha256.as_ref() {
            violations.push(violation(
                "manifest-altered",
                key,
                run.manifest_sha256.clone().unwrap_or_default(),
                sha,
            ));
        }
        match serde_json::from_slice::<ManifestView>(&bytes) {
            Ok(m) => {
                let mut listed = m.items;
                listed.sort();
                let mut recorded: Vec<ManifestItemView> = by_run
                    .get(run.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|r| ManifestItemView {
                        name: r.name.clone(),
                        sha256: r.sha256.clone(),
                        object_key: r.object_key.clone(),
                        size: r.size,
                    })
                    .collect();
                recorded.sort();
                if listed != recorded
                    || m.run_id != run.id
                    || Some(m.ledger_index) != run.ledger_index
                {
                    violations.push(violation(
                        "manifest-mismatch",
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
                "manifest-unreadable",
                key,
                "a run manifest",
                e.to_string(),
            )),
        }
        manifest_bytes.insert(run.id.clone(), bytes);
    }
    for key in app.store.list("runs").await? {
        if !runs
            .iter()
            .any(|r| r.manifest_key.as_deref() == Some(key.as_str()))
        {
            notes.push(format!(
                "{key} has no recorded run (a run killed before its database commit); it is kept"
            ));
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
                "ledger-gap",
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
                        "run-row-mismatch",
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
                Some(e) if e.ledger_index == leaf.idx => Some(ledger::leaf_hash(&e.leaf_bytes())),
                _ => {
                    violations.push(violation(
                        "audit-event-missing",
                        &location,
                        format!("audit event {}", leaf.ref_id),
                        "no such row at this index",
                    ));
                    None
                }
            },
            other => {
                violations.push(violation(
                    "ledger-leaf-kind",
                    &location,
                    "run or audit_event",
                    other,
                ));
                None
            }
        };
        let stored: ledger::Hash = hex::decode(&leaf.leaf_hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 32]);
        match actual {
            Some(h) if h != stored => {
                violations.push(violation(
                    "ledger-leaf-mismatch",
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
    for e in &events {
        if !leaves
            .iter()
            .any(|l| l.kind == "audit_event" && l.ref_id == e.id)
        {
            violations.push(violation(
                "audit-event-unledgered",
                format!("audit_events[{}]", e.id),
                "a ledger leaf",
                "none",
            ));
        }
    }

    Ok(VerifyReport {
        store: app.store.location(),
        objects_checked: hashed.len(),
        bytes_hashed,
        runs_checked: runs.len(),
        ledger_size: leaves.len(),
        ledger_root: hex::encode(ledger::root(&recomputed)),
        violations,
        notes,
    })
}

/// An evidence row must name the object its hash names, with the size the object has.
fn check_row(
    row: &EvidenceRow,
    hashed: &BTreeMap<String, Result<(String, u64), StoreError>>,
    violations: &mut Vec<Violation>,
) {
    let location = format!("evidence row {} / {}", row.run_id, row.name);
    let key_hash = row.object_key.rsplit('/').next().unwrap_or_default();
    if row.sha256 != key_hash {
        violations.push(violation(
            "evidence-row-altered",
            &location,
            key_hash,
            &row.sha256,
        ));
    }
    if let Some(Ok((_, size))) = hashed.get(&row.object_key)
        && *size != row.size as u64
    {
        violations.push(violation(
            "evidence-row-altered",
            &location,
            size.to_string(),
            row.size.to_string(),
        ));
    }
}
