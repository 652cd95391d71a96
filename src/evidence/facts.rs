//! A run's facts: the normalized JSON a collector's check judges, kept as one evidence object
//! per run. Finding the facts row, loading the object and checking its hash happen here, once,
//! for the runner, status and reports alike. Facts that hold only what changed since an earlier
//! run's (`Collector::continues`) are joined with the chain before them here too, each link
//! checked against the hash its successor recorded.

use annexa_collectors::{FactsRef, Finding, FindingCode};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::app::Annexa;
use crate::db::{DbError, EvidenceRow, Role};

/// The item name under which a run's normalized facts are stored.
pub const ITEM: &str = "facts.json";

/// A facts object as the database records it: whose, of which run, its hash and its key.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub collector: &'a str,
    pub run_id: &'a str,
    pub sha256: &'a str,
    pub object_key: &'a str,
}

impl<'a> From<&'a EvidenceRow> for Stored<'a> {
    fn from(row: &'a EvidenceRow) -> Self {
        Stored {
            collector: &row.collector,
            run_id: &row.run_id,
            sha256: &row.sha256,
            object_key: &row.object_key,
        }
    }
}

/// Facts as read back from the store, or the `integrity-violation` finding that says why they
/// cannot be trusted.
pub type Loaded = Result<serde_json::Value, Finding>;

/// The longest chain of facts that continue one another that is followed (the collectors
/// store a whole snapshot far sooner).
const MAX_LINKS: usize = 10_000;

/// Reads a run's facts from the store, checking they are the bytes the database recorded, and
/// makes them complete: joined with the earlier facts they continue. The newest complete facts
/// of each collector are kept for the process, so the next run's join reads one link.
pub async fn load(app: &Annexa, row: Stored<'_>) -> Loaded {
    let this = FactsRef {
        run_id: row.run_id.to_string(),
        sha256: row.sha256.to_string(),
    };
    let cached = |at: &FactsRef| {
        let cache = app.facts_cache.lock().expect("not poisoned");
        cache
            .get(row.collector)
            .filter(|(r, _)| r == at)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = cached(&this) {
        return Ok(v);
    }
    let facts = load_one(app, row).await?;
    let Some(config) = app.config.collector(row.collector) else {
        return Ok(facts);
    };
    let collector = super::registry::build(config, &app.config);
    let violation = |message: String| untrusted(row, message);
    // Back to facts that are complete (in themselves, or as kept), newest first.
    let mut chain = vec![facts];
    while let Some(link) = collector.continues(chain.last().expect("one at least")) {
        if let Some(v) = cached(&link) {
            chain.push(v);
            break;
        }
        if chain.len() > MAX_LINKS {
            return Err(violation(format!(
                "the facts of run {} continue a chain of more than {MAX_LINKS} runs; run `annexa verify`",
                row.run_id
            )));
        }
        chain.push(linked(app, &link, row.run_id).await?);
    }
    if chain.len() == 1 {
        return Ok(chain.pop().expect("one"));
    }
    chain.reverse();
    let joined = collector.join(chain).map_err(|e| {
        violation(format!(
            "facts of run {}: {e}; run `annexa verify`",
            row.run_id
        ))
    })?;
    app.facts_cache
        .lock()
        .expect("not poisoned")
        .insert(row.collector.to_string(), (this, joined.clone()));
    Ok(joined)
}

/// The facts a later run's facts name, checked against the hash they recorded.
async fn linked(app: &Annexa, link: &FactsRef, from: &str) -> Loaded {
    let missing = |why: String| {
        Finding::new(
            FindingCode::IntegrityViolation,
            link.run_id.clone(),
            format!(
                "the facts of run {from} continue those of run {}, which {why}; run `annexa verify`",
                link.run_id
            ),
        )
    };
    let rows = app
        .db
        .evidence_of_run(&link.run_id)
        .await
        .map_err(|e| missing(format!("cannot be looked up: {e}")))?;
    let row = rows
        .iter()
        .find(|r| r.role == Role::Facts)
        .ok_or_else(|| missing("kept no facts".into()))?;
    if row.sha256 != link.sha256 {
        return Err(missing(format!(
            "are recorded with SHA-256 {}, not the {} they named",
            row.sha256, link.sha256
        )));
    }
    load_one(app, row.into()).await
}

/// The finding that says a run's facts cannot be trusted, and why.
fn untrusted(row: Stored<'_>, message: String) -> Finding {
    Finding::new(FindingCode::IntegrityViolation, row.object_key, message)
}

/// One facts object as stored, its hash checked.
async fn load_one(app: &Annexa, row: Stored<'_>) -> Loaded {
    let violation = |message: String| untrusted(row, message);
    let bytes = app.store.read(row.object_key).await.map_err(|e| {
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
    annexa_collectors::records::to_value(&bytes)
        .map_err(|e| violation(format!("facts of run {} are not JSON: {e}", row.run_id)))
}

/// A run's stored facts judged at `as_of` ([`annexa_collectors::Judged`]): facts of a
/// collector that streams them are read as they come from the store, their hash checked at the
/// end, never held whole; others are loaded ([`load`]) and judged as one value.
pub async fn judge(
    app: &Annexa,
    collector: &dyn annexa_collectors::Collector,
    row: Stored<'_>,
    as_of: annexa_collectors::AsOf,
) -> Result<annexa_collectors::Judged, Finding> {
    if !collector.streams_facts() {
        let facts = load(app, row).await?;
        return Ok(annexa_collectors::Judged {
            findings: collector.check(&facts, as_of),
            upcoming: collector.upcoming(&facts, as_of),
            upcoming_later: 0,
            controls: collector.controls_in(&facts),
        });
    }
    let violation = |message: String| untrusted(row, message);
    let unreadable = |e: &dyn std::fmt::Display| {
        violation(format!(
            "facts of run {} cannot be read: {e}; run `annexa verify`",
            row.run_id
        ))
    };
    // A local store's file is read in place; an S3 object is copied to a scratch file first.
    let opened = app
        .store
        .open_object(row.object_key)
        .await
        .map_err(|e| unreadable(&e))?;
    let mut reader = crate::store::HashingReader::new(&opened.file);
    let judged = collector.judge(&mut reader, as_of);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| unreadable(&e))?;
    if hex::encode(reader.hasher.finalize()) != row.sha256 {
        return Err(violation(format!(
            "facts of run {} no longer match their recorded SHA-256; run `annexa verify`",
            row.run_id
        )));
    }
    Ok(judged)
}

/// The facts among a run's evidence rows, loaded and checked; None when the run kept none.
pub async fn of_rows<'a>(
    app: &Annexa,
    rows: impl IntoIterator<Item = &'a EvidenceRow>,
) -> Option<Loaded> {
    let row = rows.into_iter().find(|r| r.role == Role::Facts)?;
    Some(load(app, row.into()).await)
}

/// The facts of the collector's newest successful run by `as_of`; None when it has none.
pub async fn newest(
    app: &Annexa,
    collector: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<Loaded>, DbError> {
    Ok(newest_with_ref(app, collector, as_of)
        .await?
        .map(|(loaded, _)| loaded))
}

/// [`newest`], with where those facts are stored.
pub async fn newest_with_ref(
    app: &Annexa,
    collector: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<(Loaded, FactsRef)>, DbError> {
    let Some(run) = app.db.latest_run(collector, as_of, true).await? else {
        return Ok(None);
    };
    let rows = app.db.evidence_of_run(&run.id).await?;
    let Some(row) = rows.iter().find(|r| r.role == Role::Facts) else {
        return Ok(None);
    };
    let at = FactsRef {
        run_id: run.id.clone(),
        sha256: row.sha256.clone(),
    };
    Ok(Some((load(app, row.into()).await, at)))
}
