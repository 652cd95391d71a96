//! A run's facts: the normalized JSON a collector's check judges, kept as one evidence object
//! per run. Finding the facts row, loading the object and checking its hash happen here, once,
//! for the runner, status and reports alike.

use annexa_collectors::{Finding, FindingCode};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::app::Annexa;
use crate::db::{DbError, EvidenceRow, Role};

/// The item name under which a run's normalized facts are stored.
pub const ITEM: &str = "facts.json";

/// Facts as read back from the store, or the `integrity-violation` finding that says why they
/// cannot be trusted.
pub type Loaded = Result<serde_json::Value, Finding>;

/// Reads a run's facts from the store, checking they are the bytes the database recorded.
pub async fn load(app: &Annexa, row: &EvidenceRow) -> Loaded {
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

/// The facts among a run's evidence rows, loaded and checked; None when the run kept none.
pub async fn of_rows<'a>(
    app: &Annexa,
    rows: impl IntoIterator<Item = &'a EvidenceRow>,
) -> Option<Loaded> {
    let row = rows.into_iter().find(|r| r.role == Role::Facts)?;
    Some(load(app, row).await)
}

/// The facts of the collector's newest successful run by `as_of`; None when it has none.
pub async fn newest(
    app: &Annexa,
    collector: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<Loaded>, DbError> {
    let Some(run) = app.db.latest_run(collector, as_of, true).await? else {
        return Ok(None);
    };
    let rows = app.db.evidence_of_run(&run.id).await?;
    Ok(of_rows(app, &rows).await)
}
