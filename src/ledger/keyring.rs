//! The signing keys' life: the key annexa signs with, `annexa keys generate | rotate | revoke`,
//! and the verifier file auditors check signatures with. Every change is an audit event.
//!
//! A key is `active` (signs), `retired` (replaced by rotation; its signatures stay valid) or
//! `revoked` (compromised; it never signs again, and what it signed after its revocation is
//! invalid).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::db::{KeyRow, KeyState};
use crate::ledger::note::{NoteKey, Verifier};

/// The key annexa signs with: the key file of the config, which must be the keys table's
/// active key. On first use (no key file, no key recorded) a key is generated, written 0600 and
/// recorded, with an audit event. A key file that went missing, or that is not the active key,
/// is an error: annexa never silently starts signing with another key.
pub async fn signing_key(app: &Annexa) -> anyhow::Result<NoteKey> {
    let path = &app.config.ledger.key_file;
    Ok(match judge_key(path, &app.db.keys().await?)? {
        KeyFound::Active(key) => key,
        KeyFound::Unrecorded(key) => {
            activate(app, &key).await?;
            key
        }
        KeyFound::ToGenerate => {
            let key = NoteKey::generate(&app.config.ledger.origin)?;
            key.write_new(path)
                .with_context(|| format!("cannot write the signing key to {}", path.display()))?;
            activate(app, &key).await?;
            key
        }
    })
}

/// What the key file at `path` is, given the recorded `keys`.
pub enum KeyFound {
    /// The active key.
    Active(NoteKey),
    /// A key no one recorded yet: it becomes the active key at its first use.
    Unrecorded(NoteKey),
    /// No file and no active key: the first signature generates one.
    ToGenerate,
}

/// Judges the key file against the keys table, reading and writing nothing else. An error: a
/// file that cannot be read, a missing file of the active key, a file that is not the active
/// key, each with what to do.
pub fn judge_key(path: &Path, keys: &[KeyRow]) -> anyhow::Result<KeyFound> {
    let active = keys.iter().find(|k| k.state == KeyState::Active);
    if !path.exists() {
        return match active {
            Some(active) => bail!(
                "the active signing key {} is not at {}: restore the file from your backup, or replace \
                 the key with `annexa keys rotate`",
                active.id,
                path.display()
            ),
            None => Ok(KeyFound::ToGenerate),
        };
    }
    let key = NoteKey::read(path).map_err(|e| {
        anyhow::anyhow!(
            "the signing key file {} cannot be read: {e}; restore it from your backup",
            path.display()
        )
    })?;
    let id = hex::encode(key.key_id());
    match (active, keys.iter().find(|k| k.id == id)) {
        (Some(active), _) if active.id == id => Ok(KeyFound::Active(key)),
        (Some(active), _) => bail!(
            "the key file {} holds key {id}, but the active signing key is {}: restore the right \
             file, or replace the key with `annexa keys rotate`",
            path.display(),
            active.id
        ),
        (None, Some(known)) => bail!(
            "the key file {} holds key {id}, which is {}: it never signs again; create a new key \
             with `annexa keys generate`",
            path.display(),
            known.state
        ),
        (None, None) => Ok(KeyFound::Unrecorded(key)),
    }
}

/// Records `key` as the active key, with an audit event.
async fn activate(app: &Annexa, key: &NoteKey) -> anyhow::Result<()> {
    let now = app.clock.now();
    let id = hex::encode(key.key_id());
    app.db
        .insert_key(&KeyRow {
            id: id.clone(),
            name: key.name.clone(),
            verifier: key.verifier_text(),
            state: KeyState::Active,
            created_at: now,
            retired_at: None,
            revoked_at: None,
        })
        .await?;
    crate::ledger::audit::record(
        &app.db,
        crate::ledger::audit::Actor::Annexa,
        crate::ledger::audit::AuditAction::KeyActivated,
        &id,
        serde_json::json!({"verifier": key.verifier_text()}),
        now,
    )
    .await?;
    Ok(())
}

/// Moves the key file aside as `<file>.<id>` (never deleted: old signatures are checked with
/// the public half, but the file is the operator's to destroy).
fn set_aside(path: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{id}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)
        .with_context(|| format!("cannot move {} aside", path.display()))?;
    let (mut public, mut public_aside) =
        (path.as_os_str().to_owned(), aside.as_os_str().to_owned());
    public.push(".pub");
    public_aside.push(".pub");
    let _ = std::fs::rename(public, public_aside);
    Ok(aside)
}

/// `annexa keys generate`: a first key, or a new one after the active key was revoked.
pub async fn generate(app: &Annexa) -> anyhow::Result<NoteKey> {
    let keys = app.db.keys().await?;
    if let Some(active) = keys.iter().find(|k| k.state == KeyState::Active) {
        bail!(
            "key {} is active; replace it with `annexa keys rotate` (or revoke it first with `annexa keys revoke {}`)",
            active.id,
            active.id
        );
    }
    let path = &app.config.ledger.key_file;
    if path.exists() {
        match NoteKey::read(path) {
            Ok(old) => {
                let id = hex::encode(old.key_id());
                if !keys.iter().any(|k| k.id == id) {
                    // A key annexa never recorded (written by `annexa init`): use it.
                    activate(app, &old).await?;
                    return Ok(old);
                }
                set_aside(path, &id)?;
            }
            Err(e) => bail!(
                "{} holds no readable key ({e}); move it away and run again",
                path.display()
            ),
        }
    }
    let key = NoteKey::generate(&app.config.ledger.origin)?;
    key.write_new(path)
        .with_context(|| format!("cannot write the signing key to {}", path.display()))?;
    activate(app, &key).await?;
    Ok(key)
}

/// Replaces the active key with a new one; the old one is retired. `checkpoint::rotate_key`
/// then signs the hand-over with both.
pub async fn replace(app: &Annexa) -> anyhow::Result<(NoteKey, NoteKey)> {
    let old = signing_key(app).await?;
    let old_id = hex::encode(old.key_id());
    let path = &app.config.ledger.key_file;
    let new = NoteKey::generate(&app.config.ledger.origin)?;
    set_aside(path, &old_id)?;
    new.write_new(path)
        .with_context(|| format!("cannot write the new signing key to {}", path.display()))?;
    let now = app.clock.now();
    app.db
        .set_key_state(&old_id, KeyState::Retired, now)
        .await?;
    activate(app, &new).await?;
    crate::ledger::audit::record(
        &app.db,
        crate::ledger::audit::Actor::Annexa,
        crate::ledger::audit::AuditAction::KeyRotated,
        &old_id,
        serde_json::json!({"retired": old_id, "active": hex::encode(new.key_id())}),
        now,
    )
    .await?;
    Ok((old, new))
}

/// `annexa keys revoke ID`: the key never signs again.
pub async fn revoke(app: &Annexa, id: &str) -> anyhow::Result<KeyRow> {
    let keys = app.db.keys().await?;
    let Some(key) = keys.iter().find(|k| k.id == id) else {
        bail!("no key {id}; `annexa keys list` shows the keys annexa knows");
    };
    if key.state == KeyState::Revoked {
        return Ok(key.clone());
    }
    let now = app.clock.now();
    app.db.set_key_state(id, KeyState::Revoked, now).await?;
    crate::ledger::audit::record(
        &app.db,
        crate::ledger::audit::Actor::Annexa,
        crate::ledger::audit::AuditAction::KeyRevoked,
        id,
        serde_json::json!({"was": key.state}),
        now,
    )
    .await?;
    Ok(app
        .db
        .keys()
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .expect("the key was just updated"))
}

/// The verifier file for auditors (`annexa keys export`): every key with its life.
pub async fn verifier_file(app: &Annexa) -> anyhow::Result<String> {
    // Right after `annexa init` the key file exists but nothing has signed yet: it is
    // recorded now, as the first signature would, so the file names it.
    if app.db.keys().await?.is_empty() && app.config.ledger.key_file.exists() {
        signing_key(app).await?;
    }
    let mut text = String::from(
        "# annexa verifier file: one key per line, with when it was created, retired or revoked.\n",
    );
    for k in app.db.keys().await? {
        text.push_str(&verifier_line(&k));
        text.push('\n');
    }
    Ok(text)
}

/// One line of a verifier file: `<verifier> created=<t> [retired=<t>] [revoked=<t>]`.
pub fn verifier_line(k: &KeyRow) -> String {
    let t = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut line = format!("{} created={}", k.verifier, t(k.created_at));
    if let Some(r) = k.retired_at {
        line.push_str(&format!(" retired={}", t(r)));
    }
    if let Some(r) = k.revoked_at {
        line.push_str(&format!(" revoked={}", t(r)));
    }
    line
}

/// A key from a verifier file, with when it was revoked.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub verifier: Verifier,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Reads a verifier file (`annexa keys export`); a bare verifier per line works too.
pub fn read_verifier_file(text: &str) -> Result<Vec<TrustedKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let verifier = Verifier::parse(parts.next().expect("a non-empty line"))
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        let mut revoked_at = None;
        for part in parts {
            if let Some(t) = part.strip_prefix("revoked=") {
                revoked_at = Some(
                    DateTime::parse_from_rfc3339(t)
                        .map_err(|e| format!("line {}: revoked={t}: {e}", n + 1))?
                        .with_timezone(&Utc),
                );
            }
        }
        keys.push(TrustedKey {
            verifier,
            revoked_at,
        });
    }
    if keys.is_empty() {
        return Err("the file holds no key".into());
    }
    Ok(keys)
}
