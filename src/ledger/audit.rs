//! Audit events: what annexa and its operators did (a key activated, a report generated, a
//! verify run), each its own ledger leaf. The leaf format is written and read here; `db` only
//! stores the rows.

use chrono::{DateTime, Utc};

use crate::base::{canonical, closed_set};
use crate::db::{AuditEventRow, Db, DbError, ts};

closed_set! {
    /// The closed set of audit actions; the strings are what the rows hold.
    pub enum AuditAction {
        /// The collection config changed since the last one recorded (the one name from
        /// before actions were kebab-case: rows already hold it).
        ConfigLoaded = "config.loaded",
        KeyActivated = "key-activated",
        KeyRotated = "key-rotated",
        KeyRevoked = "key-revoked",
        /// An operator accepted that the history after a restored database's ledger is lost.
        RollbackAcknowledged = "rollback-acknowledged",
        ReportGenerated = "report-generated",
        /// An evidence package was written (`annexa export`), with the checkpoint it is
        /// anchored to: the next export proves its tree extends that one.
        EvidenceExported = "evidence-exported",
        /// A population was frozen for `annexa sample`: the first checkpoint after it seeds
        /// the sample.
        SampleDrawn = "sample-drawn",
        /// A tester's results for a drawn sample were stored as attested evidence.
        SampleTested = "sample-tested",
        /// An `annexa verify` of the store ran, with how many violations it found.
        Verified = "verified",
        /// A risk owner accepted a failing finding until a date (`annexa accept`).
        ExceptionAccepted = "exception-accepted",
        /// An accepted exception was revoked before its end.
        ExceptionRevoked = "exception-revoked",
        /// A reviewer approved or rejected attested evidence (`annexa review`).
        EvidenceReviewed = "evidence-reviewed",
    }
}

closed_set! {
    /// Who did it: annexa itself, or an operator at the command line.
    pub enum Actor {
        Annexa = "annexa",
        Operator = "operator",
    }
}

/// The bytes hashed into the ledger: canonical JSON of every field but the index.
pub fn leaf_bytes(e: &AuditEventRow) -> Vec<u8> {
    let details: serde_json::Value =
        serde_json::from_str(&e.details).unwrap_or(serde_json::Value::String(e.details.clone()));
    canonical::to_vec(&serde_json::json!({
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "details": details,
    }))
}

/// The event's ledger leaf hash.
pub fn leaf_hash(e: &AuditEventRow) -> super::Hash {
    super::leaf_hash(&leaf_bytes(e))
}

/// Records one audit event as its own ledger leaf.
pub async fn record(
    db: &Db,
    actor: Actor,
    action: AuditAction,
    subject: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<AuditEventRow, DbError> {
    let event = AuditEventRow {
        id: uuid::Uuid::now_v7().to_string(),
        at: ts(at),
        actor: actor.as_str().to_string(),
        action: action.as_str().to_string(),
        subject: subject.to_string(),
        details: String::from_utf8(canonical::to_vec(&details)).expect("JSON is UTF-8"),
        ledger_index: -1,
    };
    let leaf = hex::encode(leaf_hash(&event));
    db.append_audit_event(event, &leaf).await
}

/// Every audit event with this action, oldest first.
pub async fn with_action(db: &Db, action: AuditAction) -> Result<Vec<AuditEventRow>, DbError> {
    db.audit_events_with_action(action.as_str()).await
}

/// The newest audit event with this action.
pub async fn latest(db: &Db, action: AuditAction) -> Result<Option<AuditEventRow>, DbError> {
    db.latest_audit_event(action.as_str()).await
}
