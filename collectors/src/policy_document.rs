//! `policy-document`: snapshots policy and procedure documents and checks that each one is
//! reviewed within its review cycle.
//!
//! Documents are files (Markdown, text, PDF) or folders of them. The header fields that real
//! procedures carry are read from the text: `Document ID`, `Version`, `Effective from`, `Owner`,
//! `Review cycle`, `Last reviewed`, `Last edited`, `Last updated`. Several may share one line, as
//! exported wiki pages often do ("Owner: … Last Edited: … Last Reviewed: …").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, Finding, FindingCode, Snapshot,
    Source,
};

/// Used when a document states no review cycle of its own.
const DEFAULT_REVIEW_CYCLE_DAYS: i64 = 365;

/// Configuration of one `policy-document` collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocumentConfig {
    /// Files or folders (searched recursively), relative to the config file.
    pub paths: Vec<PathBuf>,
    /// File extensions taken from folders.
    #[serde(default = "default_extensions")]
    pub extensions: Vec<String>,
    /// Days after the review due date before `policy-review-overdue` is raised.
    #[serde(default)]
    pub review_grace_days: u32,
    /// Per-document settings, keyed by the document's ID (or its file name without extension).
    #[serde(default)]
    pub documents: BTreeMap<String, DocumentSettings>,
}

fn default_extensions() -> Vec<String> {
    ["md", "markdown", "txt", "pdf"].map(String::from).to_vec()
}

/// Settings for one document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSettings {
    /// The controls this document evidences, instead of the collector's.
    #[serde(default)]
    pub controls: Vec<String>,
    /// Overrides the review cycle the document states, e.g. "annual", "quarterly", "90 days".
    pub review_cycle: Option<String>,
}

/// The normalized facts of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentFacts {
    /// The document's ID, or its file name without extension.
    pub id: String,
    /// The item name under which the raw bytes are stored.
    pub item: String,
    pub title: Option<String>,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub effective_from: Option<NaiveDate>,
    /// The review cycle as written.
    pub review_cycle: Option<String>,
    pub review_cycle_days: i64,
    /// The date the review clock starts from, and which field it came from.
    pub last_reviewed: Option<NaiveDate>,
    pub last_reviewed_field: Option<String>,
    /// Whether the text could be read at all (a PDF or invalid UTF-8 cannot).
    pub readable: bool,
    /// The controls this document evidences; empty: none (it is reported, never counted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
    /// What mapped it to them ([`Mapping`]); absent in facts of versions that did not map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_by: Option<Mapping>,
}

/// How a document was mapped to controls, first match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// `[collector.documents.<id>] controls` in the config.
    Config,
    /// A `Controls:` field in the document's header.
    Header,
    /// Control ids in the title or the first lines ("Incident Management Procedure (A.5.24)").
    Title,
    /// A topic in the title or the document id ("Incident response" → A.5.24), see [`TOPICS`].
    Topic,
    /// Nothing the document says names a control.
    None,
}

/// Topics a document's title or id names, and the control each evidences: a document that
/// names no control id is mapped by these (lowercase substrings).
pub const TOPICS: &[(&str, &str)] = &[
    ("incident", "A.5.24"),
    ("business continuity", "A.5.30"),
    ("disaster recovery", "A.5.30"),
    ("ict readiness", "A.5.30"),
    ("backup", "A.8.13"),
    ("vulnerabilit", "A.8.8"),
    ("patch management", "A.8.8"),
    ("monitoring", "A.8.16"),
];

/// The facts of one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFacts {
    pub documents: Vec<DocumentFacts>,
    pub review_grace_days: u32,
}

impl PolicyFacts {
    /// True when this version mapped the documents to controls (older facts did not: every
    /// document then counts for the collector's controls, as it did then).
    pub fn mapped(&self) -> bool {
        self.documents.iter().any(|d| d.mapped_by.is_some())
    }

    /// The controls the documents evidence, each once, in order.
    pub fn controls(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .documents
            .iter()
            .flat_map(|d| d.controls.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

pub struct PolicyDocument {
    config: PolicyDocumentConfig,
}

impl PolicyDocument {
    pub fn new(config: PolicyDocumentConfig) -> Self {
        PolicyDocument { config }
    }

    /// Every document, named by its path under its configured root (with several `paths`,
    /// the root as written comes first: `a/policy.md`, `b/policy.md`). The same file reached
    /// twice is one document; two files under one name, a name that is not UTF-8, or a special
    /// file are errors naming the files: evidence is never dropped silently.
    fn files(&self, ctx: &CollectContext) -> Result<Documents, CollectError> {
        let qualify = self.config.paths.len() > 1;
        let mut roots = Vec::new();
        let mut found: Vec<Found> = Vec::new();
        for configured in &self.config.paths {
            let path = ctx.resolve(configured);
            let unavailable = |reason: String| CollectError::SourceUnavailable {
                what: path.display().to_string(),
                reason,
            };
            let meta = std::fs::metadata(&path)
                .map_err(|e| unavailable(format!("{e}; check the `paths` of this collector")))?;
            let root = configured.to_str().ok_or_else(|| {
                unavailable("the path is not UTF-8; rename it so it can name evidence".into())
            })?;
            let index = roots.len();
            if meta.is_dir() {
                let prefix = match qualify {
                    true => format!("{}/", root.trim_end_matches('/')),
                    false => String::new(),
                };
                walk(
                    &path,
                    &path,
                    &self.config.extensions,
                    &mut |relative, file| {
                        let shown = relative.replace('\\', "/");
                        found.push(Found {
                            name: format!("{prefix}{shown}"),
                            root: index,
                            under: Some(prefix.len()),
                            // A name that is not the path (a `\` made `/`) keeps its path.
                            path: (shown != relative).then(|| file.into()),
                        });
                    },
                )?;
            } else {
                let name = match qualify {
                    true => root.to_string(),
                    false => path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| unavailable("the file name is not UTF-8; rename it".into()))?
                        .to_string(),
                };
                found.push(Found {
                    name,
                    root: index,
                    under: None,
                    path: None,
                });
            }
            roots.push(path);
        }
        if found.is_empty() {
            return Err(CollectError::SourceUnavailable {
                what: format!("{:?}", self.config.paths),
                reason: format!(
                    "no documents with extensions {:?} found; add documents or fix `paths`",
                    self.config.extensions
                ),
            });
        }
        // One document per name: the same file reached twice is kept once.
        found.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut documents = Documents {
            roots,
            found: Vec::with_capacity(found.len()),
        };
        for f in found {
            if let Some(last) = documents.found.last()
                && last.name == f.name
            {
                let (kept, other) = (documents.path(last), documents.path(&f));
                if same_file(&kept, &other) {
                    continue;
                }
                return Err(CollectError::SourceUnavailable {
                    what: format!("{} and {}", ctx.shown(&kept), ctx.shown(&other)),
                    reason: format!(
                        "both would be stored as `{}`; rename one, or list them under paths that tell them apart",
                        f.name
                    ),
                });
            }
            documents.found.push(f);
        }
        Ok(documents)
    }
}

/// The documents a collection reads, by name: a name and where to find the file, not a path
/// each (a million documents are a million names, not two million strings).
struct Documents {
    /// The configured paths, resolved.
    roots: Vec<PathBuf>,
    found: Vec<Found>,
}

/// One document: its evidence name, and the configured path it is under.
struct Found {
    name: String,
    root: usize,
    /// Where in `name` its path under the root begins; None when the root is the file.
    under: Option<usize>,
    /// Its path, when the name cannot give it back.
    path: Option<Box<Path>>,
}

impl Documents {
    fn path(&self, f: &Found) -> PathBuf {
        match (&f.path, f.under) {
            (Some(path), _) => path.to_path_buf(),
            (None, Some(at)) => self.roots[f.root].join(&f.name[at..]),
            (None, None) => self.roots[f.root].clone(),
        }
    }
}

/// Whether two paths name one file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Documents under `dir`, named by their path under `root` with `/` separators.
fn walk(
    root: &Path,
    dir: &Path,
    extensions: &[String],
    out: &mut dyn FnMut(&str, &Path),
) -> Result<(), CollectError> {
    let unavailable = |path: &Path, reason: String| CollectError::SourceUnavailable {
        what: path.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| unavailable(dir, e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| unavailable(dir, e.to_string()))?;
        let path = entry.path();
        let file_name = entry.file_name();
        if file_name.to_string_lossy().starts_with('.') {
            continue;
        }
        // Follows links: a link is judged by what it points to.
        let meta = std::fs::metadata(&path).map_err(|e| unavailable(&path, e.to_string()))?;
        if meta.is_dir() {
            walk(root, &path, extensions, out)?;
            continue;
        }
        let wanted = Path::new(&file_name)
            .extension()
            .map(|e| e.to_string_lossy())
            .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(&e)));
        if !wanted {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let name = relative.to_str().ok_or_else(|| {
            unavailable(
                &path,
                "the file name is not UTF-8, so it cannot name evidence; rename it".into(),
            )
        })?;
        crate::check_regular(&meta, u64::MAX).map_err(|e| unavailable(&path, e))?;
        out(name, &path);
    }
    Ok(())
}

fn media_type(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("md" | "markdown") => "text/markdown",
        Some("pdf") => "application/pdf",
        Some("html" | "htm") => "text/html",
        _ => "text/plain",
    }
}

/// A failure to write a run's facts into its scratch folder.
fn scratch(ctx: &CollectContext, e: std::io::Error) -> CollectError {
    CollectError::SourceUnavailable {
        what: ctx.scratch_dir.display().to_string(),
        reason: format!("writing this run's facts into its scratch folder: {e}"),
    }
}

impl PolicyDocument {
    /// Judges one read document into its facts record and emits it.
    async fn emit_document(
        &self,
        ctx: &CollectContext,
        path: &Path,
        name: &str,
        read: ReadDocument,
        now: DateTime<Utc>,
        facts: &mut crate::records::RecordsWriter,
    ) -> Result<(), CollectError> {
        let media_type = media_type(name);
        let stem = Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let text = read.text.as_deref();
        let header = text.map(parse_header).unwrap_or_default();
        let id = header.get("document id").cloned().unwrap_or(stem.clone());
        let settings = self
            .config
            .documents
            .get(&id)
            .or_else(|| self.config.documents.get(&stem))
            .cloned()
            .unwrap_or_default();
        let document = document_facts(&id, name, text, &header, &settings);
        ctx.emit(EvidenceItem {
            name: name.to_string(),
            media_type: media_type.to_string(),
            body: read.body,
            observed_at: now,
            effective_at: document
                .effective_from
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc()),
            source: Source {
                query: ctx.shown(path),
                ..Source::default()
            },
        })
        .await?;
        facts.push(&document).map_err(|e| scratch(ctx, e))
    }
}

#[async_trait::async_trait]
impl Collector for PolicyDocument {
    fn kind(&self) -> &'static str {
        "policy-document"
    }

    fn mapped_controls(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .config
            .documents
            .values()
            .flat_map(|d| d.controls.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
        let now = ctx.now();
        let scratch = |e| scratch(ctx, e);
        let summary = serde_json::json!({"review_grace_days": self.config.review_grace_days});
        let mut facts = crate::records::RecordsWriter::create(
            &ctx.scratch_dir.join("policy-facts.jsonl"),
            "documents",
            &summary,
        )
        .map_err(scratch)?;
        let documents = self.files(ctx)?;
        let found = &documents.found;
        // The next documents are read on a blocking thread while these are judged and emitted.
        let read_from = |from: usize| {
            let next: Vec<PathBuf> = found[from..]
                .iter()
                .take(READ_AHEAD)
                .map(|f| documents.path(f))
                .collect();
            let limit = ctx.max_source_bytes;
            tokio::task::spawn_blocking(move || read_documents_now(next, limit))
        };
        let mut next = 0;
        let mut reading = (!found.is_empty()).then(|| read_from(0));
        while let Some(handle) = reading.take() {
            let read = handle
                .await
                .map_err(|e| crate::unavailable(&documents.path(&found[next]), e.to_string()))?;
            let from = next;
            next += read.len();
            if next < found.len() && read.last().is_some_and(|(_, r)| r.is_ok()) {
                reading = Some(read_from(next));
            }
            for (f, (path, read)) in found[from..].iter().zip(read) {
                self.emit_document(ctx, &path, &f.name, read?, now, &mut facts)
                    .await?;
            }
        }
        Ok(Snapshot {
            facts: facts.finish().map_err(scratch)?,
        })
    }

    fn streams_facts(&self) -> bool {
        true
    }

    fn judge(&self, facts: &mut dyn std::io::Read, as_of: crate::AsOf) -> crate::Judged {
        let opened = match crate::records::open(facts) {
            Ok(o) => o,
            Err(e) => return crate::Judged::unreadable(self.kind(), e),
        };
        let (summary, rest) = match opened {
            crate::records::Opened::Whole(v) => {
                return match serde_json::from_value::<PolicyFacts>(v) {
                    Ok(f) => {
                        let mut j = Judgement::new(f.review_grace_days, as_of.at);
                        f.documents.iter().for_each(|d| j.add(d));
                        j.done()
                    }
                    Err(e) => crate::Judged::unreadable(self.kind(), e),
                };
            }
            crate::records::Opened::Records { summary, rest, .. } => (summary, rest),
        };
        let grace = summary
            .get("review_grace_days")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        let mut j = Judgement::new(grace, as_of.at);
        match crate::records::each::<DocumentFacts>(rest, |d| j.add(&d)) {
            Ok(()) => j.done(),
            Err(e) => crate::Judged::unreadable(self.kind(), e),
        }
    }

    fn check(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<Finding> {
        crate::check_stored::<PolicyFacts>("policy", facts, |f| check(f, as_of.at))
    }

    fn upcoming(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<crate::Due> {
        crate::read_stored::<PolicyFacts, _>(facts, |f| upcoming(f, as_of.at))
    }

    fn controls_in(&self, facts: &serde_json::Value) -> Option<Vec<String>> {
        crate::read_stored::<PolicyFacts, _>(facts, |f| f.mapped().then(|| f.controls()))
    }

    fn figures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Box<dyn crate::FigureFold> {
        Box::new(PolicyFold {
            from: from.date_naive(),
            to: to.date_naive(),
            versions: BTreeMap::new(),
        })
    }
}

/// Every version and review of every document seen in the period, each once, with the
/// snapshots that hold it.
struct PolicyFold {
    from: NaiveDate,
    to: NaiveDate,
    /// By document, review date and version: the row's cells.
    versions: crate::SeenRows<(String, Option<NaiveDate>, Option<String>)>,
}

impl crate::FigureFold for PolicyFold {
    fn add(&mut self, at: &crate::SnapshotRef, facts: &serde_json::Value) {
        let Some(f) = crate::parse_stored::<PolicyFacts>(facts) else {
            return;
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
        for d in f.documents {
            let reviewed = d.last_reviewed.map_or_else(
                || "unknown".into(),
                |r| {
                    if r >= self.from && r < self.to {
                        format!("{r} (in the period)")
                    } else {
                        r.to_string()
                    }
                },
            );
            let due = d
                .last_reviewed
                .map(|r| (r + Duration::days(d.review_cycle_days)).to_string())
                .unwrap_or_else(|| "unknown".into());
            let row = vec![
                d.id.clone(),
                text(&d.title),
                text(&d.version),
                text(&d.owner),
                reviewed,
                due,
            ];
            crate::Seen::record(
                &mut self.versions,
                (d.id, d.last_reviewed, d.version),
                row,
                at,
            );
        }
    }

    fn tables(self: Box<Self>) -> Vec<crate::FigureTable> {
        let mut table = crate::FigureTable::new(
            "Policy documents and their reviews",
            &[
                "Document",
                "Title",
                "Version",
                "Owner",
                "Last reviewed",
                "Next review due",
                "Evidence",
            ],
        );
        for (mut row, seen) in self.versions.into_values() {
            row.push(seen.text());
            table = table.row(row);
        }
        vec![table]
    }
}

fn document_facts(
    id: &str,
    item: &str,
    text: Option<&str>,
    header: &BTreeMap<String, String>,
    settings: &DocumentSettings,
) -> DocumentFacts {
    let field = |k: &str| header.get(k).cloned();
    let title = text.and_then(title);
    let (controls, mapped_by) = map_document(id, text, title.as_deref(), header, settings);
    let review_cycle = settings
        .review_cycle
        .clone()
        .or_else(|| field("review cycle"));
    let last_reviewed = [
        "last reviewed",
        "last edited",
        "last updated",
        "effective from",
    ]
    .iter()
    .find_map(|k| header.get(*k).and_then(|v| parse_date(v)).map(|d| (k, d)));
    DocumentFacts {
        id: id.to_string(),
        item: item.to_string(),
        title,
        version: field("version"),
        owner: field("owner"),
        effective_from: header.get("effective from").and_then(|v| parse_date(v)),
        review_cycle_days: review_cycle
            .as_deref()
            .and_then(review_cycle_days)
            .unwrap_or(DEFAULT_REVIEW_CYCLE_DAYS),
        review_cycle,
        last_reviewed: last_reviewed.map(|(_, d)| d),
        last_reviewed_field: last_reviewed.map(|(k, _)| k.to_string()),
        readable: text.is_some(),
        controls,
        mapped_by: Some(mapped_by),
    }
}

/// The controls a document evidences, by what it says: the config's mapping, a `Controls:`
/// header field, control ids in its title or first lines, a topic of [`TOPICS`] in its title
/// or id; the first that names any wins.
fn map_document(
    id: &str,
    text: Option<&str>,
    title: Option<&str>,
    header: &BTreeMap<String, String>,
    settings: &DocumentSettings,
) -> (Vec<String>, Mapping) {
    if !settings.controls.is_empty() {
        return (settings.controls.clone(), Mapping::Config);
    }
    let header_ids = header
        .get("controls")
        .map(|v| control_ids(v))
        .unwrap_or_default();
    if !header_ids.is_empty() {
        return (header_ids, Mapping::Header);
    }
    let first_lines: String = text
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let title_ids = control_ids(&format!("{}\n{first_lines}", title.unwrap_or_default()));
    if !title_ids.is_empty() {
        return (title_ids, Mapping::Title);
    }
    let named = format!(
        "{} {}",
        title.unwrap_or_default(),
        id.replace(['-', '_'], " ")
    )
    .to_lowercase();
    let mut topics: Vec<String> = TOPICS
        .iter()
        .filter(|(topic, _)| named.contains(topic))
        .map(|(_, control)| control.to_string())
        .collect();
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        (topics, Mapping::None)
    } else {
        (topics, Mapping::Topic)
    }
}

/// The Annex A control ids (`A.5.24`) a text names, each once, in order.
fn control_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("A.") {
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &text[i + 2..];
        let theme: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Some(after) = rest[theme.len()..].strip_prefix('.') else {
            continue;
        };
        let number: String = after.chars().take_while(char::is_ascii_digit).collect();
        if theme.is_empty() || number.is_empty() {
            continue;
        }
        let id = format!("A.{theme}.{number}");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// When a document's review becomes overdue: the day after its cycle and grace have passed.
fn overdue_at(doc: &DocumentFacts, reviewed: NaiveDate, grace_days: u32) -> DateTime<Utc> {
    let last_day = reviewed + Duration::days(doc.review_cycle_days + i64::from(grace_days));
    (last_day + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The reviews not overdue at `as_of`, each with the moment it will be. Pure.
pub fn upcoming(facts: &PolicyFacts, as_of: DateTime<Utc>) -> Vec<crate::Due> {
    let mut j = Judgement::new(facts.review_grace_days, as_of);
    facts.documents.iter().for_each(|d| j.add(d));
    j.upcoming.done().0
}

/// The judgement: pure over the facts and `as_of`.
pub fn check(facts: &PolicyFacts, as_of: DateTime<Utc>) -> Vec<Finding> {
    let mut j = Judgement::new(facts.review_grace_days, as_of);
    facts.documents.iter().for_each(|d| j.add(d));
    j.findings
}

/// The judgement of documents one at a time: what a million documents need is this, never the
/// documents themselves.
struct Judgement {
    grace_days: u32,
    as_of: DateTime<Utc>,
    findings: Vec<Finding>,
    upcoming: crate::Soonest,
    controls: std::collections::BTreeSet<String>,
    mapped: bool,
}

impl Judgement {
    fn new(grace_days: u32, as_of: DateTime<Utc>) -> Judgement {
        Judgement {
            grace_days,
            as_of,
            findings: Vec::new(),
            upcoming: Default::default(),
            controls: Default::default(),
            mapped: false,
        }
    }

    fn done(self) -> crate::Judged {
        let (upcoming, upcoming_later) = self.upcoming.done();
        crate::Judged {
            findings: self.findings,
            upcoming,
            upcoming_later,
            controls: self.mapped.then(|| self.controls.into_iter().collect()),
        }
    }

    fn add(&mut self, doc: &DocumentFacts) {
        self.mapped |= doc.mapped_by.is_some();
        for control in &doc.controls {
            if !self.controls.contains(control) {
                self.controls.insert(control.clone());
            }
        }
        let finding = |code, message: String| {
            Finding::new(code, doc.id.clone(), message).with_controls(doc.controls.clone())
        };
        if doc.mapped_by == Some(Mapping::None) {
            self.findings.push(
                finding(
                    FindingCode::PolicyMetadataMissing,
                    format!(
                        "{} names no control, so no control counts it; add a `Controls: A.x.y` line to its header, or `controls` under [collector.documents.\"{}\"]",
                        doc.item, doc.id
                    ),
                )
                .with_level(crate::Level::Warn),
            );
            return;
        }
        let Some(reviewed) = doc.last_reviewed else {
            let why = if doc.readable {
                "states no review date (Last reviewed, Last edited, Last updated or Effective from)"
            } else {
                "cannot be read as text, so its review date is unknown; keep a text or Markdown copy beside it"
            };
            self.findings.push(finding(
                FindingCode::PolicyMetadataMissing,
                format!("{} {why}", doc.item),
            ));
            return;
        };
        let due = reviewed + Duration::days(doc.review_cycle_days);
        let overdue = overdue_at(doc, reviewed, self.grace_days);
        if self.as_of >= overdue {
            self.findings.push(finding(
                FindingCode::PolicyReviewOverdue,
                format!(
                    "{} was last reviewed on {reviewed} ({}); its {}-day review cycle made the next review due on {due}",
                    doc.id,
                    doc.last_reviewed_field.as_deref().unwrap_or("date"),
                    doc.review_cycle_days
                ),
            ));
        } else {
            self.upcoming.push_with(overdue, &doc.id, || crate::Due {
                code: FindingCode::PolicyReviewOverdue,
                subject: doc.id.clone(),
                due: overdue,
                what: format!(
                    "{}'s {}-day review (last reviewed {reviewed})",
                    doc.id, doc.review_cycle_days
                ),
                controls: doc.controls.clone(),
            });
        }
        let missing: Vec<&str> = [("owner", &doc.owner), ("version", &doc.version)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            self.findings.push(finding(
                FindingCode::PolicyMetadataMissing,
                format!("{} states no {}", doc.id, missing.join(" and ")),
            ));
        }
    }
}

/// What is read of one document: the bytes to store, and its text when it is UTF-8.
struct ReadDocument {
    body: Body,
    /// The text, whole for a document of at most [`WHOLE`] bytes, else its first [`WHOLE`]
    /// bytes (the header, title and mapping are read from the first lines).
    text: Option<String>,
}

/// Documents up to this size are read whole and stored from memory; a larger one is read in
/// chunks to check it is text and streamed from disk into the store.
const WHOLE: u64 = 1024 * 1024;

/// Documents read at once on one blocking thread, at most: waking a thread for each small
/// document costs more than reading it.
const READ_AHEAD: usize = 64;

/// Reads documents in order on this (blocking) thread until their bytes in memory reach
/// [`WHOLE`] or one cannot be read; at least one, each with its path.
fn read_documents_now(
    paths: Vec<PathBuf>,
    limit: u64,
) -> Vec<(PathBuf, Result<ReadDocument, CollectError>)> {
    let mut read = Vec::new();
    let mut bytes = 0;
    for path in paths {
        let pdf = media_type(&path.to_string_lossy()) == "application/pdf";
        let one = read_document_now(&path, limit, pdf);
        let stop = match &one {
            Ok(ReadDocument {
                body: Body::Bytes(b),
                ..
            }) => {
                bytes += b.len() as u64;
                bytes >= WHOLE
            }
            Ok(_) => false,
            Err(_) => true,
        };
        read.push((path, one));
        if stop {
            break;
        }
    }
    read
}

/// Reads one document within the size cap: whole when small, else in chunks, checking that
/// it is UTF-8 and keeping only the start of its text.
fn read_document_now(path: &Path, limit: u64, pdf: bool) -> Result<ReadDocument, CollectError> {
    let meta = crate::source_meta_now(path, limit)?;
    if meta.len() <= WHOLE {
        let bytes = crate::read_checked_now(path, &meta, limit)?;
        let text = (!pdf)
            .then(|| std::str::from_utf8(&bytes).ok().map(str::to_string))
            .flatten();
        return Ok(ReadDocument {
            body: Body::Bytes(bytes),
            text,
        });
    }
    let text = if pdf {
        None
    } else {
        utf8_start(path).map_err(|e| crate::unavailable(path, e.to_string()))?
    };
    Ok(ReadDocument {
        body: Body::File(path.to_path_buf()),
        text,
    })
}

/// The first [`WHOLE`] bytes of a file as text (cut at a character), when the whole file is
/// UTF-8; read in chunks, a character split between two kept for the next.
fn utf8_start(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut carry = 0usize;
    let mut start: Option<String> = None;
    loop {
        let n = file.read(&mut buf[carry..])?;
        let len = carry + n;
        if n == 0 {
            // A character cut off by the end of the file is not text.
            return Ok((carry == 0).then(|| start.unwrap_or_default()));
        }
        let valid = match std::str::from_utf8(&buf[..len]) {
            Ok(_) => len,
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return Ok(None),
        };
        if start.is_none() {
            let text = std::str::from_utf8(&buf[..valid]).expect("checked");
            start = Some(text.to_string());
        }
        buf.copy_within(valid..len, 0);
        carry = len - valid;
    }
}

const LABELS: &[&str] = &[
    "document id",
    "controls",
    "version",
    "effective from",
    "owner",
    "review cycle",
    "last reviewed",
    "last edited",
    "last updated",
];

/// Reads `Label: value` header fields from the first lines of a document. Labels are matched
/// case-insensitively; several may stand on one line.
pub fn parse_header(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines().take(80) {
        // Every label ends in a colon: a line without one holds none.
        if !line.contains(':') {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let colons: Vec<usize> = lower.match_indices(':').map(|(at, _)| at).collect();
        let mut found: Vec<(usize, &str)> = LABELS
            .iter()
            .filter_map(|label| {
                // The first `label:` on the line ends at the first colon the label precedes.
                let colon = colons.iter().find(|&&c| lower[..c].ends_with(label))?;
                let at = colon - label.len();
                // Only at the start of the line or after a space, not inside a word.
                let starts = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
                starts.then_some((at, *label))
            })
            .collect();
        found.sort();
        for (i, (at, label)) in found.iter().enumerate() {
            let start = at + label.len() + 1;
            let end = found.get(i + 1).map_or(line.len(), |(next, _)| *next);
            let value = line[start..end]
                .trim()
                .trim_matches(|c| c == '*' || c == '|')
                .trim();
            if !value.is_empty() {
                fields
                    .entry((*label).to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
    }
    fields
}

fn title(text: &str) -> Option<String> {
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_string()))
        .or_else(|| {
            lines()
                .find(|l| !LABELS.iter().any(|x| l.to_ascii_lowercase().contains(x)))
                .map(str::to_string)
        })
}

/// Parses the dates documents carry: `2025-01-01`, `March 26, 2026`, `26 March 2026`,
/// `March 2025` (taken as the first of the month). Trailing words are ignored.
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    let value = value.trim().trim_end_matches('.');
    if let Some(d) = value
        .get(..10)
        .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
    {
        return Some(d);
    }
    let words: Vec<&str> = value.split_whitespace().collect();
    let four_digit_year = |w: &str| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit());
    if words.len() >= 3 && four_digit_year(words[2]) {
        let candidate = words[..3].join(" ");
        for format in ["%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%B %d %Y"] {
            if let Ok(d) = NaiveDate::parse_from_str(&candidate, format) {
                return Some(d);
            }
        }
    }
    if words.len() >= 2 && four_digit_year(words[1]) {
        let candidate = format!("1 {} {}", words[0], words[1]);
        for format in ["%d %B %Y", "%d %b %Y"] {
            if let Ok(d) = NaiveDate::parse_from_str(&candidate, format) {
                return Some(d);
            }
        }
    }
    None
}

/// The number of days in a written review cycle: "Annual", "Quarterly", "every 6 months",
/// "90 days". `None` when the text names no cycle.
pub fn review_cycle_days(text: &str) -> Option<i64> {
    let t = text.to_ascii_lowercase();
    let named = [
        ("semi-annual", 182),
        ("semiannual", 182),
        ("biannual", 182),
        ("half-year", 182),
        ("annual", 365),
        ("yearly", 365),
        ("every year", 365),
        ("quarter", 91),
        ("monthly", 30),
        ("weekly", 7),
    ];
    if let Some((_, days)) = named.iter().find(|(word, _)| t.contains(word)) {
        return Some(*days);
    }
    let words: Vec<&str> = t.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        let n: i64 = w[0].parse().ok()?;
        let unit = w[1].trim_end_matches([',', '.', ')']);
        match unit {
            "day" | "days" => Some(n),
            "week" | "weeks" => Some(n * 7),
            "month" | "months" => Some(n * 30),
            "year" | "years" => Some(n * 365),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SEED_002_HEADER: &str = "Skip to main content\n\nIncident Management Procedure (A.5.24)\n\n\
Document ID: incident-management-procedure\nVersion: 1.0\nEffective from: 2025-01-01\n\
Owner: Founder / CEO\nReview cycle: Annual (or after any Sev1 incident)\n";

    #[test]
    fn reads_the_header_of_a_procedure_like_seed_002() {
        let h = parse_header(SEED_002_HEADER);
        assert_eq!(h["document id"], "incident-management-procedure");
        assert_eq!(h["version"], "1.0");
        assert_eq!(h["effective from"], "2025-01-01");
        assert_eq!(h["owner"], "Founder / CEO");
        assert_eq!(
            review_cycle_days(&h["review cycle"]),
            Some(365),
            "Annual means 365 days"
        );
    }

    #[test]
    fn a_label_is_read_at_a_word_start_and_its_value_may_hold_colons() {
        let h = parse_header(
            "Subcontrols: A.9.9\nNo colon on this line mentions the owner\n\
             | **Owner:** Security: Lead | Last reviewed: 2026-01-01 10:00 |\n",
        );
        assert_eq!(h.get("controls"), None, "inside a word: {h:?}");
        assert_eq!(h["owner"], "Security: Lead");
        assert_eq!(h["last reviewed"], "2026-01-01 10:00");
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn reads_several_fields_on_one_line_like_seed_003() {
        let h = parse_header(
            "Incident Response\nOwner: Backend Lead / On-call Last Edited: March 26, 2026 Last Reviewed: March 26, 2026\n",
        );
        assert_eq!(h["owner"], "Backend Lead / On-call");
        assert_eq!(
            parse_date(&h["last edited"]),
            NaiveDate::from_ymd_opt(2026, 3, 26)
        );
        assert_eq!(
            parse_date(&h["last reviewed"]),
            NaiveDate::from_ymd_opt(2026, 3, 26)
        );
    }

    #[test]
    fn parses_the_date_forms_documents_use() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        assert_eq!(parse_date("2025-01-01"), d(2025, 1, 1));
        assert_eq!(parse_date("March 26, 2026"), d(2026, 3, 26));
        assert_eq!(parse_date("26 March 2026"), d(2026, 3, 26));
        assert_eq!(parse_date("March 2025"), d(2025, 3, 1));
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn names_review_cycles() {
        assert_eq!(review_cycle_days("Quarterly"), Some(91));
        assert_eq!(review_cycle_days("every 6 months"), Some(180));
        assert_eq!(review_cycle_days("Semi-annual"), Some(182));
        assert_eq!(review_cycle_days("when needed"), None);
    }

    fn facts(reviewed: &str, grace: u32) -> PolicyFacts {
        let header = parse_header(&format!(
            "Document ID: p\nControls: A.5.24\nVersion: 1\nOwner: x\nReview cycle: Annual\nLast reviewed: {reviewed}\n"
        ));
        PolicyFacts {
            documents: vec![document_facts(
                "p",
                "p.md",
                Some(""),
                &header,
                &DocumentSettings::default(),
            )],
            review_grace_days: grace,
        }
    }

    #[test]
    fn review_is_overdue_only_after_cycle_plus_grace() {
        let f = facts("2025-01-01", 30);
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        // Due 2026-01-01, grace to 2026-01-31.
        assert!(check(&f, at(2026, 1, 31)).is_empty());
        let late = check(&f, at(2026, 2, 1));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].code, FindingCode::PolicyReviewOverdue);
        assert_eq!(late[0].subject, "p");
    }

    #[test]
    fn a_document_without_dates_is_reported_not_passed() {
        let header = parse_header("Document ID: q\nControls: A.5.24\n");
        let f = PolicyFacts {
            documents: vec![document_facts(
                "q",
                "q.md",
                Some(""),
                &header,
                &DocumentSettings::default(),
            )],
            review_grace_days: 0,
        };
        let findings = check(&f, Utc::now());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, FindingCode::PolicyMetadataMissing);
    }

    fn mapping(
        id: &str,
        text: &str,
        settings: &DocumentSettings,
    ) -> (Vec<String>, Option<Mapping>) {
        let d = document_facts(id, id, Some(text), &parse_header(text), settings);
        (d.controls, d.mapped_by)
    }

    #[test]
    fn documents_are_mapped_by_what_they_say() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The config's mapping first, then a Controls: field, then ids in the first lines,
        // then a topic.
        let configured = DocumentSettings {
            controls: ids(&["A.5.30"]),
            ..Default::default()
        };
        assert_eq!(
            mapping("bcp", "# Incident plan\nControls: A.5.26\n", &configured),
            (ids(&["A.5.30"]), Some(Mapping::Config))
        );
        let none = DocumentSettings::default();
        assert_eq!(
            mapping(
                "x",
                "# Incident plan (A.5.24)\nControls: A.5.26, A.5.27\n",
                &none
            ),
            (ids(&["A.5.26", "A.5.27"]), Some(Mapping::Header))
        );
        assert_eq!(
            mapping("x", "# Acceptable use\nSee NA.5.1 and A.x.1\n", &none),
            (vec![], Some(Mapping::None))
        );
        assert_eq!(
            mapping(
                "bcp-2026",
                "# Business Continuity and Disaster Recovery Plan\n",
                &none
            ),
            (ids(&["A.5.30"]), Some(Mapping::Topic))
        );
        assert_eq!(
            mapping("nightly-backup-standard", "# Standard\n", &none),
            (ids(&["A.8.13"]), Some(Mapping::Topic))
        );
        // The seeds: 002 names its control in its first lines; 001, 003 and 004 are incident
        // procedures by their titles.
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds");
        let mut mapped = Vec::new();
        for n in [
            "001_a6bdce8cd25a7043",
            "002_47795b2f2214dbf6",
            "003_82fa7eab0ad279a4",
            "004_163464a4d0aef51d",
        ] {
            let text = std::fs::read_to_string(seeds.join(format!("{n}.txt")))
                .expect("../shared/seeds beside the repository");
            mapped.push(mapping(n, &text, &none));
        }
        assert_eq!(
            mapped,
            [
                (ids(&["A.5.24"]), Some(Mapping::Topic)),
                (ids(&["A.5.24"]), Some(Mapping::Title)),
                (ids(&["A.5.24"]), Some(Mapping::Topic)),
                (ids(&["A.5.24"]), Some(Mapping::Topic)),
            ]
        );
    }

    #[test]
    fn a_document_that_names_no_control_is_reported_and_not_counted() {
        let text = "# Acceptable Use Policy\nVersion: 1\nOwner: IT\nLast reviewed: 2020-01-01\n";
        let f = PolicyFacts {
            documents: vec![document_facts(
                "aup",
                "aup.md",
                Some(text),
                &parse_header(text),
                &DocumentSettings::default(),
            )],
            review_grace_days: 0,
        };
        let findings = check(&f, Utc::now());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, FindingCode::PolicyMetadataMissing);
        assert_eq!(findings[0].level, crate::Level::Warn);
        assert!(findings[0].message.contains("names no control"));
        assert!(f.mapped() && f.controls().is_empty());
    }
}
