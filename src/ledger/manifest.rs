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

/// What verify reads of a manifest besides its items.
#[derive(Debug)]
pub struct ManifestHead {
    pub run_id: String,
    pub ledger_index: i64,
}

/// Reads a manifest from `reader`, handing `each` its items one at a time: a manifest of a
/// million items is never one value. After `each` returns false the rest are parsed and dropped.
pub fn read_each(
    reader: impl std::io::Read,
    each: impl FnMut(ItemView) -> bool,
) -> Result<ManifestHead, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let head = serde::de::DeserializeSeed::deserialize(Streamed(each), &mut de)?;
    de.end()?;
    Ok(head)
}

/// The manifest object, its items handed to the closure.
struct Streamed<F>(F);

impl<'de, F: FnMut(ItemView) -> bool> serde::de::DeserializeSeed<'de> for Streamed<F> {
    type Value = ManifestHead;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ManifestHead, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(ItemView) -> bool> serde::de::Visitor<'de> for Streamed<F> {
    type Value = ManifestHead;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a run manifest")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        mut self,
        mut map: A,
    ) -> Result<ManifestHead, A::Error> {
        use serde::de::Error;
        let (mut run_id, mut ledger_index, mut items) = (None, None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "run_id" => run_id = Some(map.next_value()?),
                "ledger_index" => ledger_index = Some(map.next_value()?),
                "items" => {
                    map.next_value_seed(Items(&mut self.0))?;
                    items = true;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !items {
            return Err(A::Error::missing_field("items"));
        }
        Ok(ManifestHead {
            run_id: run_id.ok_or_else(|| A::Error::missing_field("run_id"))?,
            ledger_index: ledger_index.ok_or_else(|| A::Error::missing_field("ledger_index"))?,
        })
    }
}

/// A manifest's items list, each handed to the closure as it is parsed.
struct Items<'f, F>(&'f mut F);

impl<'de, F: FnMut(ItemView) -> bool> serde::de::DeserializeSeed<'de> for Items<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(ItemView) -> bool> serde::de::Visitor<'de> for Items<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of items")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut handing = true;
        while let Some(item) = seq.next_element::<ItemView>()? {
            handing = handing && (self.0)(item);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_read_gives_the_items_and_head_a_whole_read_gives() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut run = RunRow::running("docs", "policy-document", "1", None, at);
        run.id = "run-1".into();
        run.finished_at = Some(at);
        let row = |i: usize| {
            let sha256 = format!("{i:064}");
            let r = EvidenceRow {
                run_id: run.id.clone(),
                collector: "docs".into(),
                name: format!("doc-{i}.md"),
                role: crate::db::Role::Item,
                media_type: "text/markdown".into(),
                size: i as i64,
                object_key: crate::store::object_key(&sha256),
                sha256,
                observed_at: at,
                effective_at: None,
                collected_at: at,
            };
            (r, Source::default())
        };
        let stored: Vec<_> = (0..5).map(row).collect();
        let bytes = write(&run, &stored, 7);
        let whole = read(&bytes).unwrap();
        let mut items = Vec::new();
        let head = read_each(&bytes[..], |i| {
            items.push(i);
            true
        })
        .unwrap();
        assert_eq!((head.run_id.as_str(), head.ledger_index), ("run-1", 7));
        assert_eq!(items, whole.items);
        assert!(read_each(&b"{\"run_id\":\"r\"}"[..], |_| true).is_err());
        assert!(read_each(&bytes[..bytes.len() - 1], |_| true).is_err());
    }
}
