//! `annexa prove RUN… [--since FILE] [--out FILE]`: the audit path of each run's manifest in a
//! signed checkpoint of the whole ledger (signed now if the ledger grew since the newest), and
//! the consistency proof from a checkpoint the auditor trusts: a JSON document
//! (`annexa-proof/1`) checked with the checkpoint and the RFC 9162 algorithms alone.

use std::path::Path;

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::ledger::proof::ProveError;

pub async fn prove(
    app: &Annexa,
    runs: &[String],
    since: Option<&Path>,
    out: Option<&Path>,
) -> Result<Exit, Failure> {
    let trusted = since
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| {
                Failure::usage(anyhow::anyhow!(
                    "cannot read the trusted checkpoint {}: {e}",
                    p.display()
                ))
            })
        })
        .transpose()?;
    let proof = crate::ledger::proof::prove(app, runs, trusted.as_deref())
        .await
        .map_err(failure)?;
    let text = serde_json::to_string_pretty(&proof)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                anyhow::anyhow!("cannot write the proof to {}: {e}", path.display())
            })?;
            eprintln!(
                "proofs of {} runs{} against the checkpoint of tree size {} written to {}",
                proof.runs.len(),
                if proof.consistency.is_some() {
                    " and of consistency with the trusted checkpoint"
                } else {
                    ""
                },
                proof.tree_size,
                path.display()
            );
        }
        None => print(text.as_bytes())?,
    }
    Ok(Exit::Ok)
}

/// The exit code a proof's (or an export's) error calls for.
pub(super) fn failure(e: ProveError) -> Failure {
    match e {
        ProveError::Usage(m) => Failure::usage(anyhow::Error::msg(m)),
        ProveError::Integrity(m) => Failure {
            exit: Exit::Integrity,
            error: anyhow::Error::msg(m),
        },
        ProveError::Checkpoint(e) => Failure::of_checkpoint(e),
        ProveError::Other(e) => Failure::from(e),
    }
}
