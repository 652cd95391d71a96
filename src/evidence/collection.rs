//! The engine's side of a collection: the sink that stores each item as a collector emits it,
//! and the spool of the rows stored, which the run's manifest and database rows are written
//! from. Memory stays bounded whatever the number of items: a few objects in flight, one row
//! at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::sync::Arc;

use annexa_collectors::{Body, CollectError, EvidenceItem, ItemSink, Source};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{EvidenceRow, Role, RunRow};
use crate::store::{EvidenceStore, StoreError, StoredObject, object_key};

/// Batches of objects being stored at once: enough to overlap the writes of small objects and
/// S3's round trips, few enough that memory holds a handful of batches.
const IN_FLIGHT: usize = 8;

/// A batch is started once its bodies in memory reach this size, whatever their number.
const BATCH_BYTES: usize = 1024 * 1024;

/// The rows of a run's stored objects, in the order they were stored, kept in a temporary file.
pub struct Spool {
    /// Kept for its path: each read opens it anew, with its own offset.
    file: tempfile::NamedTempFile,
    out: BufWriter<File>,
    run_id: String,
    collector: String,
    collected_at: DateTime<Utc>,
    count: usize,
    items: usize,
}

/// One spooled row: what varies between a run's rows.
#[derive(Serialize, Deserialize)]
struct Line {
    name: String,
    facts: bool,
    media_type: String,
    size: u64,
    sha256: String,
    observed_at: DateTime<Utc>,
    effective_at: Option<DateTime<Utc>>,
    source: Source,
}

impl Spool {
    pub fn new(run: &RunRow, collected_at: DateTime<Utc>) -> std::io::Result<Spool> {
        let file = tempfile::NamedTempFile::new()?;
        Ok(Spool {
            out: BufWriter::new(file.reopen()?),
            file,
            run_id: run.id.clone(),
            collector: run.collector.clone(),
            collected_at,
            count: 0,
            items: 0,
        })
    }

    /// Every row and its source of a run, from a list (attested evidence).
    pub fn of(
        run: &RunRow,
        collected_at: DateTime<Utc>,
        rows: &[(EvidenceRow, Source)],
    ) -> std::io::Result<Spool> {
        let mut spool = Spool::new(run, collected_at)?;
        for (row, source) in rows {
            spool.push(
                &row.name,
                row.role,
                &row.media_type,
                &StoredObject {
                    key: row.object_key.clone(),
                    sha256: row.sha256.clone(),
                    size: row.size as u64,
                },
                (row.observed_at, row.effective_at),
                source.clone(),
            )?;
        }
        Ok(spool)
    }

    /// Appends the row of one stored object.
    pub fn push(
        &mut self,
        name: &str,
        role: Role,
        media_type: &str,
        object: &StoredObject,
        (observed_at, effective_at): (DateTime<Utc>, Option<DateTime<Utc>>),
        source: Source,
    ) -> std::io::Result<()> {
        let line = Line {
            name: name.to_string(),
            facts: role == Role::Facts,
            media_type: media_type.to_string(),
            size: object.size,
            sha256: object.sha256.clone(),
            observed_at,
            effective_at,
            source,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        if role == Role::Item {
            self.items += 1;
        }
        Ok(())
    }

    /// How many of the rows are raw items.
    pub fn items(&self) -> usize {
        self.items
    }

    /// The rows, read back in order. Each call reads from the start.
    pub fn rows(
        &mut self,
    ) -> std::io::Result<impl Iterator<Item = std::io::Result<(EvidenceRow, Source)>> + '_> {
        self.out.flush()?;
        let reader = BufReader::with_capacity(256 * 1024, self.file.reopen()?);
        let (run_id, collector, collected_at) = (&self.run_id, &self.collector, self.collected_at);
        let rows = reader.lines().take(self.count).map(move |line| {
            let l: Line = serde_json::from_str(&line?)?;
            Ok((
                EvidenceRow {
                    run_id: run_id.clone(),
                    collector: collector.clone(),
                    role: if l.facts { Role::Facts } else { Role::Item },
                    object_key: object_key(&l.sha256),
                    name: l.name,
                    media_type: l.media_type,
                    size: l.size as i64,
                    sha256: l.sha256,
                    observed_at: l.observed_at,
                    effective_at: l.effective_at,
                    collected_at,
                },
                l.source,
            ))
        });
        Ok(rows)
    }
}

/// What went wrong storing an emitted item.
enum Failure {
    /// The item's source could not be read whole and unchanged: the collection fails, naming
    /// it (what, why).
    Source(String, String),
    /// The store failed: the run cannot be recorded.
    Store(StoreError),
}

impl Failure {
    /// The error the collector is answered with: it stops collecting.
    fn to_collect_error(&self) -> CollectError {
        let (what, reason) = match self {
            Failure::Source(what, reason) => (what.clone(), reason.clone()),
            Failure::Store(e) => ("evidence store".to_string(), e.to_string()),
        };
        CollectError::SourceUnavailable { what, reason }
    }
}

/// An emitted item on its way into the store: what its row needs besides the stored object.
struct Pending {
    name: String,
    media_type: String,
    observed: (DateTime<Utc>, Option<DateTime<Utc>>),
    source: Source,
}

/// Items whose bodies are being stored, in emission order, one result each.
struct Started {
    items: Vec<Pending>,
    put: tokio::task::JoinHandle<Vec<Result<StoredObject, StoreError>>>,
}

struct State {
    /// The batch not yet started: its items, bodies and bytes in memory.
    open: (Vec<Pending>, Vec<Body>, usize),
    in_flight: VecDeque<Started>,
    spool: Spool,
    failed: Option<Failure>,
}

impl State {
    /// Waits for the oldest batch and spools its rows, or keeps the first failure.
    async fn settle_one(&mut self, base_dir: &std::path::Path) {
        let Some(batch) = self.in_flight.pop_front() else {
            return;
        };
        let stored = batch.put.await.unwrap_or_else(|e| {
            let failed = || StoreError::Other {
                location: "store".into(),
                reason: format!("a storing task failed: {e}"),
            };
            batch.items.iter().map(|_| Err(failed())).collect()
        });
        for (p, stored) in batch.items.into_iter().zip(stored) {
            let failure = match stored {
                Ok(object) => {
                    let pushed = self.spool.push(
                        &p.name,
                        Role::Item,
                        &p.media_type,
                        &object,
                        p.observed,
                        p.source,
                    );
                    match pushed {
                        Ok(()) => continue,
                        Err(e) => Failure::Store(StoreError::Io {
                            location: "the run's spool of stored rows (the temporary folder)"
                                .into(),
                            cause: e,
                        }),
                    }
                }
                Err(StoreError::Source { path, reason }) => Failure::Source(
                    annexa_collectors::shown_path(std::path::Path::new(&path), base_dir),
                    reason,
                ),
                Err(e) => Failure::Store(e),
            };
            self.failed.get_or_insert(failure);
        }
    }

    /// Starts the open batch, if it holds any item.
    fn start(&mut self, store: &Arc<EvidenceStore>) {
        let (items, bodies, _) = std::mem::take(&mut self.open);
        if !items.is_empty() {
            let put = store.start_batched(bodies);
            self.in_flight.push_back(Started { items, put });
        }
    }
}

/// The sink a run's collector emits into: each item is put into the store, in batches of up to
/// [`EvidenceStore::batch_len`] items or [`BATCH_BYTES`] (up to [`IN_FLIGHT`] batches at once,
/// rows kept in emission order), and its row spooled.
pub struct StoreSink {
    store: Arc<EvidenceStore>,
    base_dir: std::path::PathBuf,
    state: tokio::sync::Mutex<State>,
}

/// Why the items of a collection are not all stored.
pub enum Unstored {
    /// A source could not be read whole and unchanged: the collection failed.
    Source(CollectError),
    /// The store failed: the run cannot be recorded.
    Store(StoreError),
}

impl StoreSink {
    pub fn new(store: Arc<EvidenceStore>, base_dir: &std::path::Path, spool: Spool) -> StoreSink {
        StoreSink {
            store,
            base_dir: base_dir.to_path_buf(),
            state: tokio::sync::Mutex::new(State {
                open: Default::default(),
                in_flight: VecDeque::new(),
                spool,
                failed: None,
            }),
        }
    }

    /// Waits for every put and makes the objects durable; gives back the spool of what was
    /// stored, and why not everything was.
    pub async fn finish(self) -> (Spool, Option<Unstored>) {
        let mut state = self.state.into_inner();
        if state.failed.is_none() {
            state.start(&self.store);
        }
        while !state.in_flight.is_empty() {
            state.settle_one(&self.base_dir).await;
        }
        // Linked even when the run fails, so its written objects do not wait for a later run.
        let synced = self.store.sync().await;
        let unstored = match state.failed.take() {
            Some(Failure::Store(e)) => Some(Unstored::Store(e)),
            Some(Failure::Source(what, reason)) => {
                Some(Unstored::Source(CollectError::SourceUnavailable {
                    what,
                    reason,
                }))
            }
            None => synced.err().map(Unstored::Store),
        };
        (state.spool, unstored)
    }
}

#[async_trait::async_trait]
impl ItemSink for StoreSink {
    async fn put(&self, item: EvidenceItem) -> Result<(), CollectError> {
        let mut state = self.state.lock().await;
        if let Some(failure) = &state.failed {
            return Err(failure.to_collect_error());
        }
        // A file is streamed by the store, so it closes its batch: its bytes are not in memory.
        let in_memory = match &item.body {
            Body::Bytes(b) => Some(b.len()),
            Body::File(_) => None,
        };
        let (items, bodies, bytes) = &mut state.open;
        items.push(Pending {
            name: item.name,
            media_type: item.media_type,
            observed: (item.observed_at, item.effective_at),
            source: item.source,
        });
        bodies.push(item.body);
        *bytes += in_memory.unwrap_or(0);
        let full = in_memory.is_none() || *bytes >= BATCH_BYTES;
        if !full && items.len() < self.store.batch_len() {
            return Ok(());
        }
        while state.failed.is_none() && state.in_flight.len() >= IN_FLIGHT {
            state.settle_one(&self.base_dir).await;
        }
        if let Some(failure) = &state.failed {
            return Err(failure.to_collect_error());
        }
        state.start(&self.store);
        Ok(())
    }
}

/// The sink of a rehearsal: counts the items, stores nothing.
#[derive(Default)]
pub struct CountingSink(std::sync::atomic::AtomicUsize);

impl CountingSink {
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl ItemSink for CountingSink {
    async fn put(&self, _item: EvidenceItem) -> Result<(), CollectError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
