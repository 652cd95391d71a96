//! Signed checkpoints: a C2SP `tlog-checkpoint` (origin, tree size, root hash) signed as a
//! C2SP signed note, recorded in the `checkpoints` table and published where a restored
//! database cannot take it back: the store (`ledger/checkpoints/<date>/<tree size>`, written
//! once) and, when configured, a second location.
//!
//! Before signing, the ledger is checked against every checkpoint already made and the newest
//! one published: a smaller tree (a database restored from an older copy) or a different root
//! at a checkpointed size (history rewritten) is refused, so annexa never signs two
//! checkpoints that disagree.

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::db::CheckpointRow;
use crate::ledger;
use crate::ledger::note::{NoteKey, SignedNote, Verifier};

/// Where the store keeps the checkpoint of `size` made at `at`:
/// `ledger/checkpoints/<date>/<tree size>-<first 8 hex digits of the root>`. The root in the
/// name keeps a new history (after an acknowledged rollback) from colliding with the old one.
pub fn store_key(at: DateTime<Utc>, size: u64, root: &ledger::Hash) -> String {
    format!(
        "ledger/checkpoints/{}/{size}-{}",
        at.format("%Y-%m-%d"),
        &hex::encode(root)[..8]
    )
}

/// The tree size a checkpoint's store key names.
pub fn size_in_key(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.split('-').next()?.parse().ok()
}

/// Why annexa refuses to sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error(
        "the database's ledger has {db_size} leaves, but checkpoint {published} (tree size {published_size}) was \
         published: the database was restored from an older copy or rows were deleted; annexa appends nothing \
         until this is explained: run `annexa verify`, restore the newest database, or acknowledge the rollback"
    )]
    Rollback {
        db_size: u64,
        published_size: u64,
        published: String,
    },
    #[error(
        "the ledger disagrees with checkpoint {location}: at tree size {size} it was signed with root {signed}, the \
         database's leaves give {actual}; history was rewritten: run `annexa verify`"
    )]
    Inconsistent {
        location: String,
        size: u64,
        signed: String,
        actual: String,
    },
    #[error(
        "a run or audit event holds ledger index {claimed}, but the ledger has only {size} leaves: ledger rows were \
         deleted; annexa appends nothing until this is explained: run `annexa verify` and restore the newest database"
    )]
    Truncated { claimed: i64, size: u64 },
    #[error(
        "the ledger is empty: there is nothing to checkpoint until `annexa run` has recorded something"
    )]
    Empty,
    /// Anything else that stopped it: the database, the store, the key, the second location.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CheckpointError {
    /// History disagrees with what was published (exit 4), rather than something failing.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            CheckpointError::Rollback { .. }
                | CheckpointError::Inconsistent { .. }
                | CheckpointError::Truncated { .. }
        )
    }
}

impl From<crate::db::DbError> for CheckpointError {
    fn from(e: crate::db::DbError) -> Self {
        CheckpointError::Other(e.into())
    }
}

impl From<crate::store::StoreError> for CheckpointError {
    fn from(e: crate::store::StoreError) -> Self {
        CheckpointError::Other(e.into())
    }
}

/// The body of a checkpoint note, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub origin: String,
    pub size: u64,
    /// Base64.
    pub root: String,
}

impl Body {
    /// Reads the first three lines of a checkpoint (extension lines after them are ignored).
    pub fn parse(text: &str) -> Result<Body, String> {
        let mut lines = text.lines();
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err("a checkpoint has an origin, a tree size and a root hash line".into());
        };
        let size = size
            .parse()
            .map_err(|_| format!("`{size}` is not a tree size"))?;
        Ok(Body {
            origin: origin.to_string(),
            size,
            root: root.to_string(),
        })
    }
}

/// The newest checkpoint published in the store: its key and note.
pub async fn newest_published(app: &Annexa) -> anyhow::Result<Option<(String, String)>> {
    let mut newest: Option<(u64, String)> = None;
    for key in app.store.list("ledger/checkpoints").await? {
        if let Some(size) = size_in_key(&key)
            && newest.as_ref().is_none_or(|(n, _)| size > *n)
        {
            newest = Some((size, key));
        }
    }
    let Some((_, key)) = newest else {
        return Ok(None);
    };
    let note = String::from_utf8_lossy(&app.store.read(&key).await?).into_owned();
    Ok(Some((key, note)))
}

/// The verifiers of every key annexa has recorded.
pub async fn verifiers(app: &Annexa) -> anyhow::Result<Vec<Verifier>> {
    app.db
        .keys()
        .await?
        .iter()
        .map(|k| Verifier::parse(&k.verifier).map_err(|e| anyhow::anyhow!("key {}: {e}", k.id)))
        .collect()
}

/// Checks the database's ledger against the recorded checkpoints and the newest published one.
async fn check_history(app: &Annexa, leaves: &[ledger::Hash]) -> Result<(), CheckpointError> {
    // A deleted last leaf leaves its run (or event) claiming an index past the end.
    if let Some(claimed) = app.db.highest_claimed_index().await?
        && claimed >= leaves.len() as i64
    {
        return Err(CheckpointError::Truncated {
            claimed,
            size: leaves.len() as u64,
        });
    }
    let mut anchors: Vec<(u64, String, String)> = app
        .db
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| (c.tree_size as u64, c.root_hash, c.object_key))
        .collect();
    if let Some((key, note)) = newest_published(app).await? {
        let note = SignedNote::parse(&note).map_err(|e| {
            anyhow::anyhow!("the published checkpoint {key} is not a signed note: {e}")
        })?;
        if note
            .verified_by(&verifiers(app).await?)
            .map_err(anyhow::Error::msg)?
            .is_empty()
        {
            return Err(anyhow::anyhow!(
                "the published checkpoint {key} is not signed by any key annexa knows: run `annexa verify`"
            )
            .into());
        }
        let body = Body::parse(&note.text).map_err(anyhow::Error::msg)?;
        let acknowledged = acknowledged_rollbacks(app)
            .await?
            .iter()
            .any(|(_, accepted)| *accepted >= body.size);
        if acknowledged {
            // The operator accepted losing this history; the new one starts from the database.
        } else if body.size > leaves.len() as u64 {
            return Err(CheckpointError::Rollback {
                db_size: leaves.len() as u64,
                published_size: body.size,
                published: key,
            });
        } else {
            anchors.push((body.size, body.root, key));
        }
    }
    let sizes: Vec<u64> = anchors.iter().map(|(size, _, _)| *size).collect();
    for ((size, signed, location), root) in
        anchors.into_iter().zip(ledger::roots_at(leaves, &sizes))
    {
        match root {
            None => {
                return Err(CheckpointError::Rollback {
                    db_size: leaves.len() as u64,
                    published_size: size,
                    published: location,
                });
            }
            Some(root) if ledger::b64(&root) != signed => {
                return Err(CheckpointError::Inconsistent {
                    location,
                    size,
                    signed,
                    actual: ledger::b64(&root),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// What `create` did.
#[derive(Debug)]
pub struct Outcome {
    pub checkpoint: CheckpointRow,
    /// False when the newest checkpoint already covers the whole ledger.
    pub new: bool,
    /// Where it was published besides the store.
    pub published: Option<String>,
}

/// Signs and publishes a checkpoint of the whole ledger, unless the newest one covers it.
pub async fn create(app: &Annexa) -> Result<Outcome, CheckpointError> {
    let key = crate::ledger::keyring::signing_key(app).await?;
    create_signed(app, &[&key]).await
}

/// The same, signed by each of `keys` (a rotation signs with the new key and the old).
pub async fn create_signed(app: &Annexa, keys: &[&NoteKey]) -> Result<Outcome, CheckpointError> {
    let leaves = ledger::decode_leaves(&app.db.leaves().await?)
        .map_err(|e| anyhow::anyhow!("{e}; run `annexa verify`"))?;
    if leaves.is_empty() {
        return Err(CheckpointError::Empty);
    }
    check_history(app, &leaves).await?;
    let size = leaves.len() as u64;
    if let Some(latest) = app.db.checkpoints().await?.pop()
        && latest.tree_size as u64 == size
    {
        return Ok(Outcome {
            checkpoint: latest,
            new: false,
            published: None,
        });
    }
    let now = app.clock.now();
    let root = ledger::root(&leaves);
    let note = crate::ledger::note::sign_note(
        &ledger::checkpoint_text(&app.config.ledger.origin, size, &root),
        keys,
    );
    let object_key = store_key(now, size, &root);
    app.store.put_named(&object_key, note.as_bytes()).await?;
    let row = CheckpointRow {
        tree_size: size as i64,
        root_hash: ledger::b64(&root),
        origin: app.config.ledger.origin.clone(),
        key_id: hex::encode(keys[0].key_id()),
        note,
        created_at: now,
        object_key,
    };
    app.db.insert_checkpoint(&row).await?;
    let published = match &app.config.ledger.publish {
        None => None,
        Some(target) => {
            let rel = row
                .object_key
                .strip_prefix("ledger/checkpoints/")
                .expect("checkpoint keys start with ledger/checkpoints/");
            Some(super::publish::write(app, target, rel, &row.note).await?)
        }
    };
    Ok(Outcome {
        checkpoint: row,
        new: true,
        published,
    })
}

/// After a run: a checkpoint of the whole ledger when `[ledger] checkpoint_every_run` (the
/// default), so the unprotected tail is at most the next run. None when it is off or the
/// newest checkpoint already covers the ledger.
pub async fn after_run(app: &Annexa) -> Result<Option<Outcome>, CheckpointError> {
    if !app.config.ledger.checkpoint_every_run {
        return Ok(None);
    }
    let outcome = create(app).await?;
    Ok(outcome.new.then_some(outcome))
}

/// `annexa keys rotate`: a new active key, the old one retired, and one checkpoint signed by
/// both so verifiers can follow the hand-over.
pub async fn rotate_key(app: &Annexa) -> Result<(NoteKey, NoteKey), CheckpointError> {
    let (old, new) = super::keyring::replace(app).await?;
    create_signed(app, &[&new, &old]).await?;
    Ok((old, new))
}

/// Whether the daily checkpoint is due: none yet, or none made today (UTC).
pub async fn due(app: &Annexa) -> anyhow::Result<bool> {
    let now = app.clock.now();
    Ok(match app.db.latest_checkpoint(now).await? {
        None => !app.db.leaves_until(now).await?.is_empty(),
        Some(c) => c.created_at.date_naive() < now.date_naive(),
    })
}

/// The tree size of the newest published checkpoint, and where it is.
async fn newest_published_size(app: &Annexa) -> anyhow::Result<Option<(u64, String)>> {
    let Some((key, note)) = newest_published(app).await? else {
        return Ok(None);
    };
    // An unreadable note is for `annexa verify` to report; it anchors nothing here.
    Ok(SignedNote::parse(&note)
        .ok()
        .and_then(|n| Body::parse(&n.text).ok())
        .map(|b| (b.size, key)))
}

/// The database sizes at which an operator acknowledged a rollback, with the published size
/// they accepted losing: signed acknowledgements in the store only.
pub async fn acknowledged_rollbacks(app: &Annexa) -> anyhow::Result<Vec<(u64, u64)>> {
    Ok(super::rollback::acknowledged(app)
        .await?
        .iter()
        .map(|a| (a.db_size, a.published_size))
        .collect())
}

/// Refuses to append to a ledger smaller than the newest published checkpoint (a database
/// restored from an older copy), until an operator acknowledges it.
///
/// The whole ledger is re-read: a restored database that has grown back past the published
/// size must still have the published root at that size.
pub async fn guard_append(app: &Annexa) -> Result<(), CheckpointError> {
    let leaves = ledger::decode_leaves(&app.db.leaves().await?)
        .map_err(|e| anyhow::anyhow!("{e}; run `annexa verify`"))?;
    check_history(app, &leaves).await
}

/// `annexa checkpoint --acknowledge-rollback REASON`: the operator accepts that the history
/// after the database's ledger is lost; recorded as an audit event, after which annexa appends
/// again and verify reports the lost checkpoints as notes.
pub async fn acknowledge_rollback(
    app: &Annexa,
    reason: &str,
) -> anyhow::Result<Option<(u64, u64)>> {
    let Some((published_size, published)) = newest_published_size(app).await? else {
        return Ok(None);
    };
    let db_size = app.db.leaves().await?.len() as u64;
    if published_size <= db_size {
        return Ok(None);
    }
    super::rollback::record(
        app,
        &super::rollback::Acknowledgement {
            db_size,
            published_size,
            published,
            at: app.clock.now(),
            reason: reason.to_string(),
        },
    )
    .await?;
    Ok(Some((db_size, published_size)))
}
