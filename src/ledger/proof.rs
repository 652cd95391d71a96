//! Proofs an auditor checks without the database: that a run's manifest is a leaf of the tree a
//! signed checkpoint names (an RFC 6962 audit path), and that the tree of an older checkpoint
//! they trust is a prefix of it (a consistency proof). Each proof is checked here with the
//! RFC 9162 verification algorithms before it is handed out.

use serde::Serialize;

use crate::app::Annexa;
use crate::ledger::checkpoint::{Body, CheckpointError};
use crate::ledger::{self, Hash};

/// The format of the proof document.
pub const FORMAT: &str = "annexa-proof/1";

/// What `annexa prove` hands out: the checkpoint the proofs lead to, an audit path per run,
/// and the consistency proof from a trusted checkpoint. Hashes are hex; the root is also in
/// the signed note, in base64.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub format: &'static str,
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: String,
    /// The signed checkpoint (a C2SP signed note) of `tree_size` leaves.
    pub checkpoint: String,
    pub runs: Vec<RunProof>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<ConsistencyProof>,
}

/// A run's manifest in the tree: its leaf is SHA-256(0x00 ‖ the manifest's bytes).
#[derive(Debug, Clone, Serialize)]
pub struct RunProof {
    pub run_id: String,
    pub collector: String,
    pub manifest_key: String,
    pub manifest_sha256: String,
    pub leaf_index: u64,
    pub leaf_hash: String,
    /// Sibling hashes from the leaf up (RFC 6962 `PATH`).
    pub audit_path: Vec<String>,
}

/// The trusted tree is a prefix of the checkpoint's (RFC 6962 `PROOF`).
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub tree_size: u64,
    pub root_hash: String,
    pub proof: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The request cannot be answered as asked (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The ledger does not give back what it promised (exit 4).
    #[error("{0}")]
    Integrity(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The proofs of `runs` (run ids) against a checkpoint of the whole ledger (the newest, or one
/// signed now when the ledger grew since), and of consistency with `trusted` (a checkpoint's
/// signed note) when given.
pub async fn prove(
    app: &Annexa,
    runs: &[String],
    trusted: Option<&str>,
) -> Result<Proof, ProveError> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for id in runs {
        match app.db.run(id).await.map_err(anyhow::Error::from)? {
            None => problems.push(format!("no run has the id {id}: `annexa status` lists runs")),
            Some(crate::db::RunRow {
                id,
                collector,
                ledger_index: Some(index),
                manifest_key: Some(manifest_key),
                manifest_sha256: Some(manifest_sha256),
                ..
            }) => rows.push((id, collector, index as u64, manifest_key, manifest_sha256)),
            Some(_) => problems.push(format!(
                "run {id} is not in the ledger: it has not finished (or was recorded before runs had manifests)"
            )),
        }
    }
    let trusted = trusted
        .map(|note| trusted_body(app, note))
        .transpose()
        .map_err(ProveError::Usage)?;
    if !problems.is_empty() {
        return Err(ProveError::Usage(problems.join("; ")));
    }
    let checkpoint = crate::ledger::checkpoint::create(app).await?.checkpoint;
    let leaves = ledger::decode_leaves(&app.db.leaves().await.map_err(anyhow::Error::from)?)
        .map_err(|e| ProveError::Integrity(format!("{e}; run `annexa verify`")))?;
    let size = checkpoint.tree_size as u64;
    let tree = leaves.get(..size as usize).ok_or_else(|| {
        ProveError::Integrity(format!(
            "the checkpoint names {size} leaves, the ledger holds {}; run `annexa verify`",
            leaves.len()
        ))
    })?;
    let root = ledger::root(tree);
    if ledger::b64(&root) != checkpoint.root_hash {
        return Err(ProveError::Integrity(format!(
            "the ledger's first {size} leaves do not give the root checkpoint {} signed; run `annexa verify`",
            checkpoint.object_key
        )));
    }
    let mut proofs = Vec::new();
    for (run_id, collector, index, manifest_key, manifest_sha256) in rows {
        let leaf = tree.get(index as usize).ok_or_else(|| {
            ProveError::Integrity(format!(
                "run {run_id} holds ledger index {index}, beyond the {size} leaves of the checkpoint; run `annexa verify`"
            ))
        })?;
        let path = ledger::inclusion_proof(tree, index as usize).expect("index within the tree");
        ledger::verify_inclusion(index, size, leaf, &path, &root).map_err(|e| {
            ProveError::Integrity(format!("run {run_id}: {e}; run `annexa verify`"))
        })?;
        proofs.push(RunProof {
            run_id,
            collector,
            manifest_key,
            manifest_sha256,
            leaf_index: index,
            leaf_hash: hex::encode(leaf),
            audit_path: path.iter().map(hex::encode).collect(),
        });
    }
    let consistency = match trusted {
        None => None,
        Some((old_size, old_root)) => {
            if old_size > size {
                return Err(ProveError::Integrity(format!(
                    "the trusted checkpoint names {old_size} leaves, the ledger holds {size}: the database was restored from an older copy or rows were deleted; run `annexa verify`"
                )));
            }
            let proof = ledger::consistency_proof(tree, old_size as usize).unwrap_or_default();
            ledger::verify_consistency(old_size, size, &old_root, &root, &proof).map_err(|e| {
                ProveError::Integrity(format!(
                    "the ledger does not extend the trusted checkpoint: {e}; history was rewritten: run `annexa verify --trusted FILE`"
                ))
            })?;
            Some(ConsistencyProof {
                tree_size: old_size,
                root_hash: hex::encode(old_root),
                proof: proof.iter().map(hex::encode).collect(),
            })
        }
    };
    Ok(Proof {
        format: FORMAT,
        origin: app.config.ledger.origin.clone(),
        tree_size: size,
        root_hash: hex::encode(root),
        checkpoint: checkpoint.note,
        runs: proofs,
        consistency,
    })
}

/// The size and root a trusted checkpoint names, when it is one of this ledger's.
fn trusted_body(app: &Annexa, note: &str) -> Result<(u64, Hash), String> {
    let parsed = crate::ledger::note::SignedNote::parse(note)
        .map_err(|e| format!("the trusted checkpoint is not a signed note: {e}"))?;
    let body = Body::parse(&parsed.text).map_err(|e| format!("the trusted checkpoint: {e}"))?;
    if body.origin != app.config.ledger.origin {
        return Err(format!(
            "the trusted checkpoint is of the ledger `{}`, not this one (`{}`)",
            body.origin, app.config.ledger.origin
        ));
    }
    if body.size == 0 {
        return Err(
            "the trusted checkpoint is of the empty tree: there is nothing to prove".into(),
        );
    }
    let root = ledger::from_b64(&body.root).ok_or_else(|| {
        format!(
            "the trusted checkpoint's root `{}` is not a base64 SHA-256",
            body.root
        )
    })?;
    Ok((body.size, root))
}
