//! annexa's collectors.
//!
//! A collector gathers evidence from one source and judges it, in two separate steps:
//!
//! - [`Collector::collect`] does the I/O: it hands each raw item, exactly as found, to the engine
//!   as it reads it ([`CollectContext::emit`]; the engine hashes and stores it before the next is
//!   read, so a run of a million items holds one at a time), and returns the normalized facts
//!   ([`Snapshot`]). It never judges and never writes evidence itself: this crate does not depend
//!   on the engine, and an [`ItemSink`] only takes items.
//! - [`Collector::check`] is a pure function over the *stored* facts of a run and a point in time.
//!   The engine reloads the facts from the evidence store before calling it, so any past run can
//!   be re-checked from the store alone.
//!
//! # Layout
//!
//! - `lib.rs`: the trait, [`CollectContext`], [`Snapshot`], [`EvidenceItem`].
//! - `finding.rs`: [`Finding`], [`FindingCode`] (the stable codes), [`Level`].
//! - one module per collector (`policy_document.rs`, `cron_health.rs`, …), each with the same shape:
//!   a config struct, `collect` (I/O) and `check` (pure).

pub mod backup_restore;
pub mod cron_health;
mod finding;
pub mod github_alerts;
pub mod incident_log;
pub mod outbound;
pub mod policy_document;
pub mod records;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use finding::{Due, Finding, FindingCode, Level, Soonest, problem_of};

/// The source of "now". Collectors and checks never read the system clock directly, so tests
/// can pin time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always answers the same instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The moment a check judges, and the moment it is asked from. One rule for every check:
///
/// - `at` in the past or present judges the facts collected by `at` (the engine hands in the
///   newest ones), up to what they know: what happened after their collection is the next
///   collection's to say.
/// - `at` after `now` looks ahead: as if nothing new is collected after `now`. Every deadline,
///   review date, expiry and scheduled slot that falls due by `at` counts as missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    pub at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl AsOf {
    /// Judging the present.
    pub fn now(now: DateTime<Utc>) -> AsOf {
        AsOf { at: now, now }
    }

    /// True when `at` is later than `now`.
    pub fn looking_ahead(&self) -> bool {
        self.at > self.now
    }

    /// How far facts that are complete up to `known_until` are judged: to `at` when looking
    /// ahead (nothing more will arrive), else to the earlier of `at` and `known_until`.
    pub fn judged_until(&self, known_until: DateTime<Utc>) -> DateTime<Utc> {
        if self.looking_ahead() {
            self.at
        } else {
            self.at.min(known_until)
        }
    }
}

/// A run's stored facts object, as later facts that continue it name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsRef {
    pub run_id: String,
    pub sha256: String,
}

/// What a collector is handed for one collection: never globals.
#[derive(Clone)]
pub struct CollectContext {
    pub clock: Arc<dyn Clock>,
    /// The folder that relative source paths in the config are resolved against
    /// (the folder of the config file).
    pub base_dir: PathBuf,
    /// A scratch folder owned by this run (large intermediate files go here, not in memory).
    pub scratch_dir: PathBuf,
    /// The facts of this collector's previous successful run, if any (a watermark for
    /// incremental sources), complete (joined with the runs they continue, [`Collector::join`]).
    pub previous_facts: Option<serde_json::Value>,
    /// Where those facts are stored, for facts that continue them ([`Collector::continues`]).
    pub previous_run: Option<FactsRef>,
    /// Where heartbeats of scheduled jobs are read from (the engine's database).
    pub heartbeats: Option<Arc<dyn cron_health::HeartbeatSource>>,
    /// Objects in annexa's evidence store that a collector may read as a source.
    pub objects: Option<Arc<dyn ObjectSource>>,
    /// True when a person asked for this run (`annexa collect`), not the schedule: expensive
    /// work with its own cadence (a restore drill) runs now.
    pub on_demand: bool,
    /// A rehearsal (`annexa check`): read the sources, and change nothing anywhere, outside
    /// annexa either: a restore drill that is due is not run, its prerequisites are checked.
    pub rehearsal: bool,
    /// The largest source file a collector reads ([`read_source`]); a larger one fails the
    /// run, naming the file and the setting (`max_file_size_mib`).
    pub max_source_bytes: u64,
    /// `[outbound] allow_insecure_urls`: http and non-public addresses allowed ([`outbound`]).
    pub allow_insecure_urls: bool,
    /// Where each raw item goes as it is read ([`CollectContext::emit`]).
    pub items: Arc<dyn ItemSink>,
}

/// Where a collector hands its raw items. The engine's sink hashes and stores each one as it
/// arrives (a file streamed from disk, never read whole); an error stops the collection.
#[async_trait::async_trait]
pub trait ItemSink: Send + Sync {
    async fn put(&self, item: EvidenceItem) -> Result<(), CollectError>;
}

/// A sink that keeps every item in memory: for tests, and for a collector driven by hand.
#[derive(Default)]
pub struct KeptItems(std::sync::Mutex<Vec<EvidenceItem>>);

impl KeptItems {
    pub fn shared() -> Arc<KeptItems> {
        Arc::new(KeptItems::default())
    }

    /// The items put so far, in order, taken out.
    pub fn take(&self) -> Vec<EvidenceItem> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

#[async_trait::async_trait]
impl ItemSink for KeptItems {
    async fn put(&self, item: EvidenceItem) -> Result<(), CollectError> {
        self.0.lock().expect("not poisoned").push(item);
        Ok(())
    }
}

/// The default of `max_file_size_mib`: 64 MiB.
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// Read access to objects a collector takes as its source (e.g. a register uploaded to the
/// evidence store). Never write access: collectors only return evidence.
#[async_trait::async_trait]
pub trait ObjectSource: Send + Sync {
    async fn read(&self, key: &str) -> Result<Vec<u8>, String>;
}

impl CollectContext {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Hands one raw item to the engine, which stores it before this returns (or fails the
    /// collection: a file that changed or vanished while it was read, a store that is full).
    pub async fn emit(&self, item: EvidenceItem) -> Result<(), CollectError> {
        self.items.put(item).await
    }

    /// A path as evidence and reports name it: relative to the config's folder when it is
    /// inside it, so no host path leaks into them and an id stays put when the folder moves.
    pub fn shown(&self, path: &std::path::Path) -> String {
        shown_path(path, &self.base_dir)
    }

    /// Resolves a path from the config against the config's folder.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// `path` relative to `base` when it is inside it (`.` for `base` itself), else as it is.
pub fn shown_path(path: &std::path::Path, base: &std::path::Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The bytes of one evidence item: small ones in memory, anything else as a file the engine
/// streams from in chunks, hashing as it goes, and fails the item for if the file changes or
/// vanishes while it is read.
#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Where an item came from and how it was selected, so an auditor can judge completeness.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Source {
    /// A path, URL or query that identifies the source.
    pub query: String,
    /// Filters applied while collecting (e.g. a label, a state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// How many records the source reported in total, where it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One raw piece of evidence, exactly as found at the source.
#[derive(Debug)]
pub struct EvidenceItem {
    /// A name unique within the snapshot (e.g. the file's relative path).
    pub name: String,
    pub media_type: String,
    pub body: Body,
    /// When the collector observed it.
    pub observed_at: DateTime<Utc>,
    /// When the content itself says it took effect (a document's "Effective from"), if known.
    pub effective_at: Option<DateTime<Utc>>,
    pub source: Source,
}

/// What one collection returns once its raw items are emitted: the normalized facts, no
/// judgement.
#[derive(Debug)]
pub struct Snapshot {
    /// Normalized facts, the only input of [`Collector::check`]. Stored as evidence too.
    pub facts: Facts,
}

impl Snapshot {
    pub fn of(facts: serde_json::Value) -> Snapshot {
        Snapshot {
            facts: Facts::Value(facts),
        }
    }
}

/// A collection's facts: a value, or canonical JSON the collector wrote to a file in its
/// scratch folder as it read the source (facts of a million items are never one value).
#[derive(Debug)]
pub enum Facts {
    Value(serde_json::Value),
    File(PathBuf),
}

impl Facts {
    /// The facts as one value (a test, a small rehearsal): a file is read whole.
    pub fn into_value(self) -> Result<serde_json::Value, String> {
        match self {
            Facts::Value(v) => Ok(v),
            Facts::File(path) => std::fs::read(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())),
        }
    }
}

/// Why a collection failed. Each variant is a different decision for the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The source does not exist or cannot be read.
    #[error("source unavailable: {what}: {reason}")]
    SourceUnavailable { what: String, reason: String },
    /// The source refused the credentials or lacks a permission.
    #[error("unauthorized: {what}: {reason}")]
    Unauthorized { what: String, reason: String },
    /// The source was read but its content is invalid. The raw items emitted before the
    /// problem was found are still evidence.
    #[error("invalid source content: {what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl CollectError {
    /// The same error, naming a path inside `base` (the config's folder) relative to it, as
    /// everything meant for people names paths ([`shown_path`]).
    pub fn shown_from(self, base: &std::path::Path) -> CollectError {
        let shown = |what: String| shown_path(std::path::Path::new(&what), base);
        match self {
            CollectError::SourceUnavailable { what, reason } => CollectError::SourceUnavailable {
                what: shown(what),
                reason,
            },
            CollectError::Unauthorized { what, reason } => CollectError::Unauthorized {
                what: shown(what),
                reason,
            },
            CollectError::Invalid { what, reason } => CollectError::Invalid {
                what: shown(what),
                reason,
            },
        }
    }

    /// The stable finding code for this failure.
    pub fn code(&self) -> FindingCode {
        match self {
            CollectError::Unauthorized { .. } => FindingCode::CollectorUnauthorized,
            _ => FindingCode::CollectorFailed,
        }
    }
}

/// The most characters of a finding's subject, and of a message, that echo source content.
pub const MAX_SUBJECT: usize = 200;
pub const MAX_MESSAGE: usize = 2_000;

/// Source content as a message may show it: control characters (escape sequences) escaped
/// as `\u{1b}`, line breaks and tabs kept, at most `max` characters, the rest counted.
pub fn shown(text: &str, max: usize) -> String {
    capped(text, max, |c| matches!(c, '\n' | '\t'))
}

/// The same for one line (a subject, a key): every control character escaped, line breaks too.
pub fn shown_line(text: &str, max: usize) -> String {
    capped(text, max, |_| false)
}

fn capped(text: &str, max: usize, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for (count, c) in text.chars().enumerate() {
        if count == max {
            let rest = text.chars().count() - count;
            out.push_str(&format!("… ({rest} more characters)"));
            break;
        }
        if c.is_control() && !keep(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads a source file whole. Only a regular file is read (a FIFO would block forever, a device
/// never ends), and only up to `limit` bytes (a sparse or growing file cannot exhaust memory);
/// anything else is an unavailable source, named, with what to do.
pub async fn read_source(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, CollectError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_source_now(&owned, limit))
        .await
        .map_err(|e| unavailable(path, e.to_string()))?
}

/// [`read_source`] on this thread, for a collector already off the async runtime: one
/// blocking task per file rather than one per system call.
pub fn read_source_now(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, CollectError> {
    let meta = source_meta_now(path, limit)?;
    read_checked_now(path, &meta, limit)
}

/// The metadata of a source file that [`check_regular`] accepts, or why it is unavailable.
pub fn source_meta_now(
    path: &std::path::Path,
    limit: u64,
) -> Result<std::fs::Metadata, CollectError> {
    let meta = std::fs::metadata(path).map_err(|e| unavailable(path, e.to_string()))?;
    check_regular(&meta, limit).map_err(|e| unavailable(path, e))?;
    Ok(meta)
}

/// [`read_source_now`] of a file whose metadata [`source_meta_now`] already checked.
pub fn read_checked_now(
    path: &std::path::Path,
    meta: &std::fs::Metadata,
    limit: u64,
) -> Result<Vec<u8>, CollectError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| unavailable(path, e.to_string()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable(path, e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(unavailable(path, too_large(limit)));
    }
    Ok(bytes)
}

fn unavailable(path: &std::path::Path, reason: String) -> CollectError {
    CollectError::SourceUnavailable {
        what: path.display().to_string(),
        reason,
    }
}

/// A source must be a regular file of at most `limit` bytes.
pub fn check_regular(meta: &std::fs::Metadata, limit: u64) -> Result<(), String> {
    if !meta.is_file() {
        return Err(
            "not a regular file (a folder, FIFO, socket or device); annexa reads only regular files: remove it or point the collector elsewhere"
                .into(),
        );
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: u64) -> String {
    format!(
        "larger than {} MiB, the most this collector reads; raise `max_file_size_mib` in its [[collector]] table if the file is right",
        limit / (1024 * 1024)
    )
}

/// Runs a pure check over facts this collector stored, or says they cannot be read (written by
/// an incompatible version, say): a `collector-failed` finding, never a silent pass.
pub fn check_stored<T: serde::de::DeserializeOwned>(
    what: &str,
    facts: &serde_json::Value,
    check: impl FnOnce(&T) -> Vec<Finding>,
) -> Vec<Finding> {
    match serde_json::from_value::<T>(facts.clone()) {
        Ok(f) => check(&f),
        Err(e) => vec![Finding::new(
            FindingCode::CollectorFailed,
            "facts",
            format!("stored {what} facts cannot be read by this version: {e}"),
        )],
    }
}

/// What a pure function reads from stored facts besides the check: figures for reports, due
/// dates, the controls they name. Facts this version cannot read give nothing (the check
/// already says so with a `collector-failed` finding).
pub fn read_stored<T: serde::de::DeserializeOwned, R: Default>(
    facts: &serde_json::Value,
    read: impl FnOnce(&T) -> R,
) -> R {
    serde_json::from_value::<T>(facts.clone())
        .map(|f| read(&f))
        .unwrap_or_default()
}

/// Whether the month `YYYY-MM` overlaps `[from, to)`.
pub fn month_in(month: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let last = to - chrono::Duration::seconds(1);
    from.format("%Y-%m").to_string().as_str() <= month
        && month <= last.format("%Y-%m").to_string().as_str()
}

/// A stored snapshot, as a report's figures name the evidence of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    pub run_id: String,
    pub collected_at: DateTime<Utc>,
}

/// A report's figures, folded over snapshots, oldest first: the newest one collected before the
/// period (the state at its start), then every one collected in it. Each thing the figures count
/// (an incident, a restore drill, a document's review, a job's slot) is listed once, as the
/// newest snapshot knows it, with the snapshots that show it ([`Seen`]). Facts this version
/// cannot read are passed over (their check already says so with a `collector-failed` finding).
pub trait FigureFold: Send {
    /// One snapshot's complete stored facts.
    fn add(&mut self, at: &SnapshotRef, facts: &serde_json::Value);
    /// True for a fold that takes the snapshots newest first instead (each holds a window of
    /// history, the newest the most of it) and stops once [`FigureFold::enough`].
    fn newest_first(&self) -> bool {
        false
    }
    /// The snapshots added so far show the whole period: no older one is read.
    fn enough(&self) -> bool {
        false
    }
    /// What an auditor samples from, once every snapshot is added: each event of the period
    /// the fold lists (an incident, a restore drill, a job's slot), once, with the snapshot its
    /// values come from. Empty for a fold with no such population.
    fn members(&self) -> Vec<Member> {
        Vec::new()
    }
    /// The tables, once every snapshot is added.
    fn tables(self: Box<Self>) -> Vec<FigureTable>;
}

/// One member of a population to sample (`annexa sample`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Which population: `incidents`, `drills` or `job-slots`.
    pub population: &'static str,
    /// Unique in its population: an incident's id, a drill's start and backup, a job and slot.
    pub id: String,
    /// When it happened (detected, started, due).
    pub at: DateTime<Utc>,
    /// One line a tester reads: what it is and how it went, as the snapshot shows it.
    pub summary: String,
    /// The snapshot whose facts show it.
    pub snapshot: SnapshotRef,
}

/// The fold of a collector with no figures.
pub struct NoFigures;

impl FigureFold for NoFigures {
    fn add(&mut self, _: &SnapshotRef, _: &serde_json::Value) {}

    fn tables(self: Box<Self>) -> Vec<FigureTable> {
        Vec::new()
    }
}

/// Stored facts as this version reads them; None when it cannot. Reads in place (no copy of
/// the facts), for folds over many snapshots.
pub fn parse_stored<T: serde::de::DeserializeOwned>(facts: &serde_json::Value) -> Option<T> {
    T::deserialize(facts).ok()
}

/// A figure table's rows by key: each row (its cells, as the newest snapshot shows them) and
/// the snapshots that show it.
pub type SeenRows<K, V = Vec<String>> = std::collections::BTreeMap<K, (V, Seen)>;

/// The snapshots that show one row of a report's figures: the first and the newest (with its
/// run, where the row's values come from), and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub first: DateTime<Utc>,
    pub newest: SnapshotRef,
    pub snapshots: usize,
}

impl Seen {
    pub fn new(at: &SnapshotRef) -> Seen {
        Seen {
            first: at.collected_at,
            newest: at.clone(),
            snapshots: 1,
        }
    }

    /// Seen again, in another snapshot.
    pub fn again(&mut self, at: &SnapshotRef) {
        if at.collected_at >= self.newest.collected_at {
            self.newest = at.clone();
        }
        self.first = self.first.min(at.collected_at);
        self.snapshots += 1;
    }

    /// Records `value` for `key`, seen at `at`: the newest snapshot's value wins.
    pub fn record<K: Ord, V>(rows: &mut SeenRows<K, V>, key: K, value: V, at: &SnapshotRef) {
        match rows.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let (v, seen) = e.get_mut();
                if at.collected_at >= seen.newest.collected_at {
                    *v = value;
                }
                seen.again(at);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((value, Seen::new(at)));
            }
        }
    }

    /// "28 snapshots, 2026-11-03 06:10 to 2026-11-30 23:10 UTC; newest run 0193…": an auditor
    /// finds each in `evidence.csv` by its collector and time, the newest by its run.
    pub fn text(&self) -> String {
        let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
        if self.snapshots == 1 {
            format!(
                "snapshot of {} UTC, run {}",
                time(self.first),
                self.newest.run_id
            )
        } else {
            format!(
                "{} snapshots, {} to {} UTC; newest run {}",
                self.snapshots,
                time(self.first),
                time(self.newest.collected_at),
                self.newest.run_id
            )
        }
    }
}

/// A small table of figures a collector derives from its facts for a report (incidents by
/// month, open alerts by severity, restore drills…). Cells are text, already formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureTable {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl FigureTable {
    pub fn new(title: &str, columns: &[&str]) -> Self {
        FigureTable {
            title: title.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(mut self, cells: impl IntoIterator<Item = String>) -> Self {
        self.rows.push(cells.into_iter().collect());
        self
    }
}

/// "3 d", "1 d 2 h", "26 min": durations as findings and reports show them, to the minute
/// ("12 s" under one).
pub fn human_duration(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "min")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if parts.is_empty() {
        // Under a minute: a restore drill of a small backup takes seconds.
        format!("{} s", seconds.max(0))
    } else {
        parts.join(" ")
    }
}

/// One pluggable evidence source.
#[async_trait::async_trait]
pub trait Collector: Send + Sync {
    /// The collector kind, e.g. `policy-document`.
    fn kind(&self) -> &'static str;

    /// The version of the collection and check logic, recorded in every run manifest.
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// Controls this collector's own settings map some of its sources to, beyond the catalog's
    /// default for its kind (e.g. a policy document mapped to A.5.30).
    fn mapped_controls(&self) -> Vec<String> {
        Vec::new()
    }

    /// The controls a snapshot's stored facts say they evidence, when the facts decide it (a
    /// policy document names its controls); `None`: the configured controls. Pure.
    fn controls_in(&self, _facts: &serde_json::Value) -> Option<Vec<String>> {
        None
    }

    /// The evidence kinds this collector provides, as the catalog's `requires` names them: its
    /// kind, and more where its settings add some (a backup-restore with a drill provides
    /// `restore-drill`).
    fn provides(&self) -> Vec<&'static str> {
        vec![self.kind()]
    }

    /// Reads the source. I/O only; no judgement, no persistence.
    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError>;

    /// Judges stored facts at a point in time ([`AsOf`] says how far ahead). Pure: the same
    /// facts and `as_of` always give the same findings.
    fn check(&self, facts: &serde_json::Value, as_of: AsOf) -> Vec<Finding>;

    /// For facts that hold only what changed since an earlier run's: that run's facts. None:
    /// the facts are complete in themselves. Pure.
    fn continues(&self, _facts: &serde_json::Value) -> Option<FactsRef> {
        None
    }

    /// A chain of facts made complete: `chain[0]` is complete in itself (or was made so
    /// before), each next one [`Collector::continues`] the one before it. Pure. An error says
    /// the chain does not give back what the newest facts recorded.
    fn join(&self, mut chain: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
        chain.pop().ok_or_else(|| "no facts to join".to_string())
    }

    /// What the stored facts say falls due after `as_of` and is not late yet (a review date,
    /// a drill, a backup's maximum age), for warnings before a gap. Pure.
    fn upcoming(&self, _facts: &serde_json::Value, _as_of: AsOf) -> Vec<Due> {
        Vec::new()
    }

    /// Figures for a report over `[from, to)`: a fold over the stored facts of every snapshot
    /// that bears on it ([`FigureFold`]). Pure.
    fn figures(&self, _from: DateTime<Utc>, _to: DateTime<Utc>) -> Box<dyn FigureFold> {
        Box::new(NoFigures)
    }

    /// True when the collector reads its previous facts ([`CollectContext::previous_facts`]);
    /// the engine loads them only then (a run of a million documents does not read the last
    /// run's facts for nothing).
    fn reads_previous(&self) -> bool {
        false
    }

    /// True when this collector's facts can be too large to hold as one value (records facts,
    /// [`records`]): the engine judges them with [`Collector::judge`] as they stream from the
    /// store instead of loading them.
    fn streams_facts(&self) -> bool {
        false
    }

    /// [`Collector::check`], [`Collector::upcoming`] and [`Collector::controls_in`] in one pass
    /// over stored facts read as a stream, holding what the judgement keeps, never the facts.
    /// Pure. The default reads them whole.
    fn judge(&self, facts: &mut dyn std::io::Read, as_of: AsOf) -> Judged {
        match records::read_whole(facts) {
            Ok(v) => Judged {
                findings: self.check(&v, as_of),
                upcoming: self.upcoming(&v, as_of),
                upcoming_later: 0,
                controls: self.controls_in(&v),
            },
            Err(e) => Judged::unreadable(self.kind(), e),
        }
    }
}

/// What status takes from a run's stored facts: the check's findings, what falls due, and the
/// controls the facts say they evidence ([`Collector::controls_in`]).
#[derive(Debug, Default)]
pub struct Judged {
    pub findings: Vec<Finding>,
    pub upcoming: Vec<Due>,
    /// Dues later than those in `upcoming` that were let go ([`Soonest`]).
    pub upcoming_later: u64,
    pub controls: Option<Vec<String>>,
}

impl Judged {
    /// Facts this version cannot read: a `collector-failed` finding, never a silent pass.
    pub fn unreadable(kind: &str, e: impl std::fmt::Display) -> Judged {
        Judged {
            findings: vec![Finding::new(
                FindingCode::CollectorFailed,
                "facts",
                format!("stored {kind} facts cannot be read by this version: {e}"),
            )],
            ..Judged::default()
        }
    }
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn echoed_content_is_capped_and_escape_sequences_are_defused() {
        let cell = format!(
            "INC-1\u{1b}[2J\u{1b}]0;pwned\u{7}{}",
            "x".repeat(10_000_000)
        );
        let f = Finding::new(FindingCode::IncidentUnclassified, cell.clone(), cell);
        assert!(
            f.subject.chars().count() < MAX_SUBJECT + 100,
            "{}",
            f.subject.len()
        );
        assert!(f.message.chars().count() < MAX_MESSAGE + 100);
        assert!(!f.subject.contains('\u{1b}') && !f.message.contains('\u{7}'));
        assert!(
            f.subject.starts_with("INC-1\\u{1b}[2J"),
            "{}",
            &f.subject[..20]
        );
        assert!(f.message.ends_with("more characters)"));
        assert_eq!(shown("a\nb", MAX_MESSAGE), "a\nb");
        assert_eq!(shown_line("a\nb", MAX_SUBJECT), "a\\u{a}b");
    }
}
