//! Rollback acknowledgements: an operator's signed statement that the history after a restored
//! database's ledger is lost. Each is a signed note written once to the store
//! (`ledger/acknowledgements/<date>/<db size>-<published size>-<hash>`) and to the second
//! location, like a checkpoint. Only acknowledgements found in the store and signed by a key
//! annexa knows (not revoked when it signed) count: a row in the database alone, which anyone
//! with the database could write, acknowledges nothing.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::audit::{self, Actor, AuditAction};
use super::note::{SignedNote, Verifier};
use crate::app::Annexa;
use crate::db::KeyRow;

/// The first line of an acknowledgement note.
const FORMAT: &str = "annexa-rollback-acknowledgement/1";
/// Where the store keeps them.
pub const PREFIX: &str = "ledger/acknowledgements";

/// One acknowledgement: the database's ledger size, the published size accepted as lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub db_size: u64,
    pub published_size: u64,
    /// The published checkpoint it sets aside.
    pub published: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

impl Acknowledgement {
    fn text(&self, origin: &str) -> String {
        // One line each: the reason's line breaks would start new fields.
        let reason: String = self.reason.replace(['\n', '\r'], " ");
        format!(
            "{FORMAT}\n{origin}\ndb_size {}\npublished_size {}\npublished {}\nat {}\nreason {reason}\n",
            self.db_size,
            self.published_size,
            self.published,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }

    fn parse(text: &str, origin: &str) -> Result<Acknowledgement, String> {
        let mut lines = text.lines();
        if lines.next() != Some(FORMAT) {
            return Err(format!("not an {FORMAT} note"));
        }
        if lines.next() != Some(origin) {
            return Err(format!("not for this ledger ({origin})"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("no `{name}` line"))
        };
        let number = |s: String| s.parse::<u64>().map_err(|e| format!("`{s}`: {e}"));
        Ok(Acknowledgement {
            db_size: number(field("db_size")?)?,
            published_size: number(field("published_size")?)?,
            published: field("published")?,
            at: DateTime::parse_from_rfc3339(&field("at")?)
                .map_err(|e| e.to_string())?
                .with_timezone(&Utc),
            reason: field("reason")?,
        })
    }
}

/// Signs `ack` and writes it to the store and the second location, then records the audit event.
pub async fn record(app: &Annexa, ack: &Acknowledgement) -> anyhow::Result<String> {
    let key = super::keyring::signing_key(app).await?;
    let note = key.sign_note(&ack.text(&app.config.ledger.origin));
    let store_key = format!(
        "{PREFIX}/{}/{}-{}-{}",
        ack.at.format("%Y-%m-%d"),
        ack.db_size,
        ack.published_size,
        &hex::encode(Sha256::digest(note.as_bytes()))[..8]
    );
    app.store.put_named(&store_key, note.as_bytes()).await?;
    if let Some(target) = &app.config.ledger.publish {
        let rel = store_key
            .strip_prefix("ledger/")
            .expect("the key starts with ledger/");
        super::publish::write(app, target, rel, &note).await?;
    }
    audit::record(
        &app.db,
        Actor::Operator,
        AuditAction::RollbackAcknowledged,
        &ack.published,
        serde_json::json!({
            "db_size": ack.db_size,
            "published_size": ack.published_size,
            "reason": ack.reason,
            "note": store_key,
        }),
        ack.at,
    )
    .await?;
    Ok(store_key)
}

/// Every acknowledgement in the store signed by a key annexa knows, not revoked when it
/// signed. An unreadable, foreign or forged note counts for nothing (verify, which re-reads
/// the store, is where it is reported).
pub async fn acknowledged(app: &Annexa) -> anyhow::Result<Vec<Acknowledgement>> {
    let keys = app.db.keys().await?;
    let mut out = Vec::new();
    for key in app.store.list(PREFIX).await? {
        let bytes = app.store.read(&key).await?;
        let Ok(note) = SignedNote::parse(&String::from_utf8_lossy(&bytes)) else {
            continue;
        };
        let Ok(ack) = Acknowledgement::parse(&note.text, &app.config.ledger.origin) else {
            continue;
        };
        if signed_by_valid_key(&note, &keys, ack.at) {
            out.push(ack);
        }
    }
    Ok(out)
}

/// Whether a known key, not revoked at `at`, signed `note`.
fn signed_by_valid_key(note: &SignedNote, keys: &[KeyRow], at: DateTime<Utc>) -> bool {
    keys.iter()
        .filter(|k| k.revoked_at.is_none_or(|r| r > at))
        .filter_map(|k| Verifier::parse(&k.verifier).ok())
        .any(|v| {
            note.verified_by(std::slice::from_ref(&v))
                .is_ok_and(|s| !s.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_reads_back_as_written_and_only_for_its_ledger() {
        let ack = Acknowledgement {
            db_size: 5,
            published_size: 9,
            published: "ledger/checkpoints/2026-11-30/9-abcdef12".into(),
            at: "2026-12-01T10:00:00.123456Z".parse().unwrap(),
            reason: "restored after disk failure;\nINC-9".into(),
        };
        let text = ack.text("annexa/example");
        let back = Acknowledgement::parse(&text, "annexa/example").unwrap();
        assert_eq!(back.reason, "restored after disk failure; INC-9");
        assert_eq!((back.db_size, back.published_size, back.at), (5, 9, ack.at));
        assert!(Acknowledgement::parse(&text, "annexa/other").is_err());
    }
}
