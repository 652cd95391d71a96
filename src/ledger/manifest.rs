//! The run manifest: the custody record of one run, stored as canonical JSON at
//! `runs/<collector>/<YYYY>/<MM>/<DD>/<run-id>.json` and hashed into the ledger. Written by the
//! runner and read back by verify, both through this module.

use annexa_collectors::Source;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::base::canonical;
use crate::db::{EvidenceRow, RunRow, ts};

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    annexa_version: &'static str,
    run_id: &'a str,
    collector: ManifestCollector<'a>,
    slot: Option<&'a str>,
    started_at: String,
    finished_at: String,
    status: &'a str,
    error: Option<ManifestError<'a>>,
    items: Vec<ManifestItem<'a>>,
    ledger_index: i64,
}

#[derive(Debug, Serialize)]
struct ManifestCollector<'a> {
    name: &'a str,
    kind: &'a str,
    version: &'a str,
}

#[derive(Debug, Serialize)]
struct ManifestError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct ManifestItem<'a> {
    name: &'a str,
    role: &'a str,
    media_type: &'a str,
    size: i64,
    sha256: &'a str,
    object_key: &'a str,
    observed_at: String,
    effective_at: Option<String>,
    source: &'a Source,
}

/// The manifest's key: `runs/<collector>/<YYYY>/<MM>/<DD>/<run-id>.json`.
pub fn key(collector: &str, started: DateTime<Utc>, run_id: &str) -> String {
    format!(
        "runs/{collector}/{}/{run_id}.json",
        started.format("%Y/%m/%d")
    )
}

/// The canonical bytes of a finished run's manifest, listing each stored item with its source,
/// at ledger index `ledger_index`.
pub fn write(run: &RunRow, stored: &[(EvidenceRow, Source)], ledger_index: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let items = stored
        .iter()
        .map(|(row, source)| Ok((row.clone(), source.clone())));
    write_to(run, items, ledger_index, &mut out).expect("writing to memory succeeds");
    out
}

/// [`write`] into `out`, one item at a time: a run of a million items is never one value.
/// The bytes are the canonical JSON of the whole manifest (its keys sorted: `items` sits
/// between the run's fields, spliced in where the empty list would stand).
pub fn write_to(
    run: &RunRow,
    items: impl Iterator<Item = std::io::Result<(EvidenceRow, Source)>>,
    ledger_index: i64,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let manifest = Manifest {
        annexa_version: env!("CARGO_PKG_VERSION"),
        run_id: &run.id,
        collector: ManifestCollector {
            name: &run.collector,
            kind: &run.kind,
            version: &run.collector_version,
        },
        slot: run.slot.as_deref(),
        started_at: ts(run.started_at),
        finished_at: ts(run
            .finished_at
            .expect("a manifest is written for a finished run")),
        status: run.status.as_str(),
        error: run.error.as_deref().map(|message| ManifestError {
            code: run.error_code.as_deref().unwrap_or("collector-failed"),
            message,
        }),
        items: Vec::new(),
        ledger_index,
    };
    let empty = canonical::to_vec(&manifest);
    const SLOT: &[u8] = b"\"items\":[]";
    let at = empty
        .windows(SLOT.len())
        .position(|w| w == SLOT)
        .expect("a manifest has an items list")
        + SLOT.len()
        - 1;
    out.write_all(&empty[..at])?;
    for (i, item) in items.enumerate() {
        let (e, source) = item?;
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(&canonical::to_vec(&ManifestItem {
            name: &e.name,
            role: e.role.as_str(),
            media_type: &e.media_type,
            size: e.size,
            sha256: &e.sha256,
            object_key: &e.object_key,
            observed_at: ts(e.observed_at),
            effective_at: e.effective_at.map(ts),
            source: &source,
        }))?;
    }
    out.write_all(&empty[at..])
}

/// What verify reads back of a manifest.
#[derive(Debug, Deserialize)]
pub struct ManifestView {
    pub run_id: String,
    pub ledger_index: i64,
    pub finished_at: Option<String>,
    pub items: Vec<ItemView>,
}

/// One listed item, as verify compares it with the evidence rows.
#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemView {
    pub name: String,
    pub sha256: String,
    pub object_key: String,
    pub size: i64,
}

impl ItemView {
    /// The item as the database recorded it.
    pub fn of_row(r: &EvidenceRow) -> ItemView {
        ItemView {
            name: r.name.clone(),
            sha256: r.sha256.clone(),
            object_key: r.object_key.clone(),
            size: r.size,
        }
    }
}

/// Reads a manifest's bytes.
pub fn read(bytes: &[u8]) -> Result<ManifestView, serde_json::Error> {
    serde_json::from_slice(bytes)
}
