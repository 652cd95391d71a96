//! The report model: what the engine gathered for a period ([`ReportInput`]) and the pure
//! function that turns it into the [`Report`] every renderer reads.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use annexa_collectors::FigureTable;

use crate::{ControlStatus, FindingRef, StatusDocument, rfc3339, rfc3339_list};

/// The source attested evidence is recorded under (`annexa attach`).
const ATTESTED: &str = "attested";

/// The format version of [`Report`]'s JSON.
pub const REPORT_FORMAT: &str = "annexa-report/1";

/// The signed tree head the report is anchored to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerHead {
    /// The checkpoint's origin line.
    pub origin: String,
    pub tree_size: u64,
    /// Base64, as in the checkpoint.
    pub root_hash: String,
    /// The signing key's name and id (hex), as in the signed note.
    pub key_name: String,
    pub key_id: String,
    /// The signed checkpoint (C2SP signed note), verbatim.
    pub checkpoint: String,
    /// Where the store publishes it; `None` when no checkpoint was published by the end of the
    /// period and this one was signed for the report.
    pub published: Option<String>,
}

impl LedgerHead {
    /// One line for the report's header.
    pub fn describe(&self) -> String {
        format!(
            "tree size {}, root hash {}, signed by key {} ({}); {}",
            self.tree_size,
            self.root_hash,
            self.key_id,
            self.key_name,
            match &self.published {
                Some(key) => format!("published at {key}"),
                None => "no checkpoint was published by the end of the period, so this one was signed for the report".to_string(),
            }
        )
    }
}

/// One stored object of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInput {
    pub name: String,
    /// `item` (raw bytes from the source) or `facts`.
    pub role: String,
    pub media_type: String,
    /// Unknown for run manifests, whose size the database does not record.
    pub size: Option<u64>,
    pub sha256: String,
    pub object_key: String,
}

/// One finished run of a collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInput {
    pub run_id: String,
    pub succeeded: bool,
    pub finished_at: DateTime<Utc>,
    /// When its snapshot stops being fresh, where the run says so itself (attested
    /// evidence); else one `max_age` of its collector after it finished.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who attests it and who approved it (attested evidence only).
    pub attested: Option<crate::AttestedBy>,
    pub error: Option<String>,
    pub items: Vec<ItemInput>,
}

impl RunInput {
    /// When its snapshot stops being fresh.
    pub fn expires(&self, max_age: Duration) -> DateTime<Utc> {
        self.expires_at.unwrap_or(self.finished_at + max_age)
    }
}

/// What the engine knows of one configured collector for the period.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorInput {
    pub name: String,
    pub kind: String,
    pub controls: Vec<String>,
    /// How long a snapshot stays fresh.
    pub max_age: Duration,
    /// The cron expression, and the slots it sets in the period.
    pub schedule: String,
    pub slots: Vec<DateTime<Utc>>,
    /// The newest successful run before the period (it may still be fresh at its start), then
    /// every run that finished in the period, oldest first.
    pub runs: Vec<RunInput>,
    pub figures: Vec<FigureTable>,
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub organization: String,
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    /// Who made it: the account annexa ran as.
    pub generated_by: String,
    /// The records are as they stood at this time: the end of the period, or earlier for a
    /// period not yet over.
    pub as_of: DateTime<Utc>,
    pub annexa_version: String,
    pub ledger: LedgerHead,
    /// Control statuses at the end of the period (or at `as_of`).
    pub status: StatusDocument,
    pub collectors: Vec<CollectorInput>,
    /// Every Annex A control with its applicability (the SoA's, or "not yet assessed") and
    /// status.
    pub soa: Vec<crate::SoaEntry>,
    /// The Statement of Applicability file, relative to the config; None when none is
    /// configured.
    pub soa_file: Option<String>,
    /// CSV files start with a UTF-8 byte order mark (`[report] csv_bom`, on by default).
    pub csv_bom: bool,
}

/// The reporting period, `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(serialize_with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub to: DateTime<Utc>,
}

impl Period {
    /// `2026-10-01 to 2026-10-31`: the days the period covers.
    pub fn label(&self) -> String {
        let last = self.to - Duration::seconds(1);
        format!(
            "{} to {}",
            self.from.format("%Y-%m-%d"),
            last.format("%Y-%m-%d")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub status: ControlStatus,
    pub count: usize,
}

/// How fully a collector's schedule was met in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub collector: String,
    pub schedule: String,
    /// Slots in the period.
    pub expected: usize,
    /// Slots with a successful collection before the next slot.
    pub present: usize,
    /// The slots without one.
    #[serde(serialize_with = "rfc3339_list")]
    pub missed: Vec<DateTime<Utc>>,
}

impl Coverage {
    /// "29 of 30 scheduled snapshots".
    pub fn text(&self) -> String {
        format!("{} of {} scheduled snapshots", self.present, self.expected)
    }
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// One control: its status at the end of the period, why, and what bears on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlSection {
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    pub why: String,
    pub collectors: Vec<String>,
    pub coverage: Vec<Coverage>,
    pub findings: Vec<FindingRef>,
    /// Evidence index entries bearing on this control.
    pub evidence_count: usize,
    /// The verdict over the period, when the engine judged it.
    pub period: Option<crate::ControlPeriod>,
}

impl ControlSection {
    /// "effective_with_exceptions: satisfied at the end; …", or "–" without a verdict.
    pub fn verdict_text(&self) -> String {
        self.period.as_ref().map_or_else(
            || "–".to_string(),
            |p| format!("{}: {}", p.verdict.as_str(), p.why_verdict),
        )
    }
}

/// A failing finding under an accepted exception at the end of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub control: String,
    pub code: String,
    pub subject: String,
    pub by: String,
    pub reason: String,
    #[serde(serialize_with = "rfc3339")]
    pub until: DateTime<Utc>,
    pub event: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// Never collected by the end of the period.
    Missing,
    /// The newest evidence expired and nothing replaced it (yet).
    Stale,
    /// The latest collection failed and no fresh evidence is left.
    NotEvaluated,
    /// An interval of the period without fresh evidence, since closed.
    Lapsed,
    /// Scheduled collections that did not happen or failed.
    MissedSlots,
}

impl GapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Missing => "missing",
            GapKind::Stale => "stale",
            GapKind::NotEvaluated => "not_evaluated",
            GapKind::Lapsed => "lapsed",
            GapKind::MissedSlots => "missed_slots",
        }
    }
}

/// Stale or missing evidence: the list auditors read first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub collector: String,
    pub controls: Vec<String>,
    pub kind: GapKind,
    /// When the gap opened; `None` for evidence never collected.
    #[serde(serialize_with = "rfc3339_opt")]
    pub since: Option<DateTime<Utc>>,
    /// When it closed; `None` while it lasts at the end of the period.
    #[serde(serialize_with = "rfc3339_opt")]
    pub until: Option<DateTime<Utc>>,
    /// For people: what happened, the first missed slots named.
    pub detail: String,
    /// Every scheduled slot that produced no snapshot (missed-slots gaps), for CSV and JSON.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "rfc3339_all")]
    pub missed_slots: Vec<DateTime<Utc>>,
}

impl Gap {
    /// The detail for people: with the first five missed slots named, `…` for the rest
    /// (`missed_slots` holds them all).
    pub fn text(&self) -> String {
        if self.missed_slots.is_empty() {
            return self.detail.clone();
        }
        let shown: Vec<String> = self
            .missed_slots
            .iter()
            .take(5)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .collect();
        let more = if self.missed_slots.len() > shown.len() {
            ", …"
        } else {
            ""
        };
        format!("{}: {}{more}", self.detail, shown.join(", "))
    }
}

fn rfc3339_all<S: serde::Serializer>(times: &[DateTime<Utc>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(times.iter().map(|t| crate::time(*t)))
}

/// One stored object in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceEntry {
    pub collector: String,
    pub run_id: String,
    pub name: String,
    pub role: String,
    pub media_type: String,
    pub size: Option<u64>,
    #[serde(serialize_with = "rfc3339")]
    pub collected_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// False when the snapshot expired before a newer one replaced it: a lapse followed it.
    pub fresh: bool,
    pub sha256: String,
    pub object_key: String,
    pub controls: Vec<String>,
}

/// Whether a collector had fresh evidence at the end of each day of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayState {
    Fresh,
    Stale,
    /// Nothing collected yet.
    None,
    /// After the report was made.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freshness {
    pub collector: String,
    pub days: Vec<DayState>,
}

/// The evidence index by collector: what each stored in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    pub collector: String,
    pub controls: Vec<String>,
    pub snapshots: usize,
    pub objects: usize,
    /// Objects that a lapse followed (see [`EvidenceEntry::fresh`]).
    pub stale_objects: usize,
    pub bytes: u64,
    #[serde(serialize_with = "rfc3339_opt")]
    pub first: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub last: Option<DateTime<Utc>>,
}

/// One collector's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectorFigures {
    pub collector: String,
    pub kind: String,
    pub tables: Vec<FigureTable>,
}

/// A snapshot: one successful run in the period and what it stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub collector: String,
    /// Its collector's kind (`policy-document`, …; `annexa`; `attested`).
    pub kind: String,
    pub run_id: String,
    #[serde(serialize_with = "rfc3339")]
    pub collected_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// Indexes into [`Report::evidence`].
    pub evidence: std::ops::Range<usize>,
    /// Who attests it and who approved it (attested evidence only).
    pub attested: Option<crate::AttestedBy>,
}

/// The report. Every renderer reads only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The bundle's id (its folder's name), set once the content is hashed; not in the JSON it
    /// is hashed from. Printed pages carry it in their running header.
    #[serde(skip)]
    pub id: String,
    pub format: &'static str,
    pub organization: String,
    pub period: Period,
    #[serde(serialize_with = "rfc3339")]
    pub generated_at: DateTime<Utc>,
    pub generated_by: String,
    pub annexa_version: String,
    pub ledger: LedgerHead,
    /// What `annexa verify` had re-hashed by the end of the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<crate::Integrity>,
    pub summary: Vec<StatusCount>,
    pub controls: Vec<ControlSection>,
    /// The controls the Statement of Applicability excludes, with why: not judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<crate::ExcludedControl>,
    /// Every Annex A control with its applicability and status.
    pub soa: Vec<crate::SoaEntry>,
    /// The Statement of Applicability file; None when none is configured.
    pub soa_file: Option<String>,
    /// CSV files start with a UTF-8 byte order mark.
    #[serde(skip)]
    pub csv_bom: bool,
    /// Accepted exceptions standing at the end of the period.
    pub exceptions: Vec<Exception>,
    pub gaps: Vec<Gap>,
    pub freshness: Vec<Freshness>,
    pub figures: Vec<CollectorFigures>,
    #[serde(skip)]
    pub snapshots: Vec<Snapshot>,
    pub index: Vec<IndexEntry>,
    pub evidence: Vec<EvidenceEntry>,
}

impl Report {
    /// The front page's table, in every format: who and what the report covers, when and by
    /// whom it was made, what anchors it, and its findings in one line each.
    pub fn front_page(&self) -> Vec<(&'static str, String)> {
        let counts = |parts: Vec<(&str, usize)>| {
            let parts: Vec<String> = parts
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!("{n} {what}"))
                .collect();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        };
        let judged = self.controls.len();
        let scope = match &self.soa_file {
            Some(file) => format!(
                "{judged} Annex A controls applicable under the Statement of Applicability `{file}`; {} excluded",
                self.excluded.len()
            ),
            None => format!(
                "{judged} Annex A controls, the ones annexa's collectors evidence (no Statement of Applicability is configured)"
            ),
        };
        let at_end = counts(
            self.summary
                .iter()
                .map(|s| (s.status.as_str(), s.count))
                .collect(),
        );
        let verdict_of = |c: &ControlSection| c.period.as_ref().map(|p| p.verdict);
        let verdicts = [
            Some(crate::Verdict::Effective),
            Some(crate::Verdict::EffectiveWithExceptions),
            Some(crate::Verdict::NotEffective),
            None,
        ]
        .into_iter()
        .map(|v| {
            let n = self.controls.iter().filter(|c| verdict_of(c) == v).count();
            (v.map_or("without a verdict", |v| v.as_str()), n)
        })
        .collect();
        vec![
            ("Organization", self.organization.clone()),
            ("Scope", scope),
            ("Period", format!("{} (UTC)", self.period.label())),
            (
                "Generated",
                format!(
                    "{} by {} with annexa {}",
                    crate::time(self.generated_at),
                    self.generated_by,
                    self.annexa_version
                ),
            ),
            ("Ledger checkpoint", self.ledger.describe()),
            (
                "Store integrity",
                self.integrity.as_ref().map_or_else(
                    || "no `annexa verify` recorded by the end of the period".into(),
                    |i| i.sentence(),
                ),
            ),
            ("Controls at the end", at_end),
            ("Verdicts over the period", counts(verdicts)),
            (
                "Accepted exceptions",
                match self.exceptions.len() {
                    0 => "none".into(),
                    n => format!("{n} standing at the end of the period (listed below)"),
                },
            ),
            (
                "Stale and missing evidence",
                match self.gaps.len() {
                    0 => "none".into(),
                    1 => "1 gap (listed below)".into(),
                    n => format!("{n} gaps (listed below)"),
                },
            ),
        ]
    }
}

/// One object name of a collector among the snapshots bearing on a control, listed once
/// however many snapshots stored it: how many, from when to when, in how many versions, and
/// the newest version's SHA-256 (every snapshot's objects are in `evidence.csv` and
/// `report.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectGroup<'a> {
    /// Its newest version in the period.
    pub entry: &'a EvidenceEntry,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// When the last snapshot holding it expires.
    pub expires: DateTime<Utc>,
    pub snapshots: usize,
    /// Distinct contents (SHA-256) among them.
    pub versions: usize,
    /// Snapshots holding it that a lapse followed.
    pub stale: usize,
}

impl ObjectGroup<'_> {
    pub const COLUMNS: [&'static str; 6] = [
        "Collector",
        "Object",
        "Collected",
        "Expires",
        "Fresh",
        "SHA-256 (newest)",
    ];

    /// Its row, in [`Self::COLUMNS`]' order. The store key is named only where it is not the
    /// SHA-256's own (`objects/sha256/…`).
    pub fn cells(&self) -> Vec<String> {
        let e = self.entry;
        let collected = match (self.snapshots, self.versions) {
            (1, _) => crate::time(self.first),
            (n, 1) => format!(
                "{} to {}, unchanged in {n} snapshots",
                crate::time(self.first),
                crate::time(self.last),
            ),
            (n, v) => format!(
                "{} to {}, {n} snapshots, {v} versions",
                crate::time(self.first),
                crate::time(self.last),
            ),
        };
        let fresh = match self.stale {
            0 => "fresh".to_string(),
            n if n == self.snapshots => "stale".to_string(),
            n => format!("stale in {n} of {}", self.snapshots),
        };
        let by_hash = e.sha256.len() > 2
            && e.object_key == format!("objects/sha256/{}/{}", &e.sha256[..2], e.sha256);
        let sha = if by_hash {
            e.sha256.clone()
        } else {
            format!("{} (stored at {})", e.sha256, e.object_key)
        };
        vec![
            e.collector.clone(),
            e.name.clone(),
            collected,
            crate::time(self.expires),
            fresh,
            sha,
        ]
    }
}

/// Findings of one code, level and collector on subjects of one job (`job@slot`), shown as one
/// row however many slots they name: each slot is its own finding in `findings.csv` and
/// `report.json`. Other findings are a group of one.
pub fn grouped_findings(findings: &[FindingRef]) -> Vec<Vec<String>> {
    let mut groups: Vec<(&FindingRef, Vec<&str>)> = Vec::new();
    for f in findings {
        let job = f.subject.split_once('@').map(|(job, _)| job);
        let same = |g: &(&FindingRef, Vec<&str>)| {
            job.is_some()
                && g.0.code == f.code
                && g.0.level == f.level
                && g.0.collector == f.collector
                && g.0.subject.split_once('@').map(|(j, _)| j) == job
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.1.push(&f.subject),
            None => groups.push((f, vec![&f.subject])),
        }
    }
    groups
        .into_iter()
        .map(|(f, subjects)| {
            let (subject, message) = if subjects.len() == 1 {
                (f.subject.clone(), f.message.clone())
            } else {
                let slot = |s: &str| s.split_once('@').map_or(s, |(_, at)| at).to_string();
                (
                    format!(
                        "{} ({} slots, {} to {})",
                        f.subject.split_once('@').map_or("", |(j, _)| j),
                        subjects.len(),
                        slot(subjects.iter().min().expect("one at least")),
                        slot(subjects.iter().max().expect("one at least")),
                    ),
                    format!(
                        "{} (and {} more like it: each slot is in findings.csv)",
                        f.message,
                        subjects.len() - 1
                    ),
                )
            };
            vec![
                f.level.as_str().to_string(),
                f.code.as_str().to_string(),
                subject,
                message,
                f.collector.clone(),
            ]
        })
        .collect()
}

impl Report {
    /// "1,512 evidence objects in the period, in 6 rows: …" (or the plain count when each
    /// object is a row of its own).
    pub fn evidence_sentence(&self, control: &ControlSection, rows: usize) -> String {
        let n = control.evidence_count;
        if rows == n {
            format!(
                "{n} evidence object{} in the period.",
                if n == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "{n} evidence objects in the period, in {rows} rows: one per object a collector stores, with its snapshots and versions (every snapshot's objects, each with its SHA-256, are in evidence.csv and report.json)."
            )
        }
    }

    /// The objects bearing on `control`, each name of each collector once, in the order they
    /// first appear.
    pub fn objects_of(&self, control: &str) -> Vec<ObjectGroup<'_>> {
        let mut groups: Vec<(ObjectGroup, std::collections::HashSet<&str>)> = Vec::new();
        let mut at: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::new();
        for s in &self.snapshots {
            let items = &self.evidence[s.evidence.clone()];
            if !items
                .first()
                .is_some_and(|e| e.controls.iter().any(|c| c == control))
            {
                continue;
            }
            for e in items {
                let key = (e.collector.as_str(), e.name.as_str());
                match at.get(&key) {
                    Some(&i) => {
                        let (g, seen) = &mut groups[i];
                        g.entry = e;
                        g.last = s.collected_at;
                        g.expires = s.expires_at;
                        g.snapshots += 1;
                        g.stale += usize::from(!e.fresh);
                        seen.insert(e.sha256.as_str());
                        g.versions = seen.len();
                    }
                    None => {
                        at.insert(key, groups.len());
                        let group = ObjectGroup {
                            entry: e,
                            first: s.collected_at,
                            last: s.collected_at,
                            expires: s.expires_at,
                            snapshots: 1,
                            versions: 1,
                            stale: usize::from(!e.fresh),
                        };
                        groups.push((group, std::collections::HashSet::from([e.sha256.as_str()])));
                    }
                }
            }
        }
        groups.into_iter().map(|(g, _)| g).collect()
    }

    /// The days of the period, for the freshness chart.
    pub fn days(&self) -> Vec<DateTime<Utc>> {
        day_starts(self.period.from, self.period.to)
    }

    /// The snapshots bearing on `control` (all of them for `""`), each with its collection and
    /// expiry time formatted once, and its objects.
    pub fn snapshots_of<'a>(
        &'a self,
        control: &'a str,
    ) -> impl Iterator<Item = (String, String, &'a [EvidenceEntry])> + 'a {
        self.snapshots.iter().filter_map(move |s| {
            let items = &self.evidence[s.evidence.clone()];
            let bears = control.is_empty()
                || items
                    .first()
                    .is_some_and(|e| e.controls.iter().any(|c| c == control));
            (bears && !items.is_empty()).then(|| {
                (
                    crate::time(s.collected_at),
                    crate::time(s.expires_at),
                    items,
                )
            })
        })
    }

    /// True when some control is not satisfied at the end of the period (exit code 3).
    pub fn has_gaps(&self) -> bool {
        self.controls
            .iter()
            .any(|c| c.status != ControlStatus::Satisfied)
    }
}

fn day_starts(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut days = Vec::new();
    let mut day = from;
    while day < to {
        days.push(day);
        day += Duration::days(1);
    }
    days
}

/// Why a control has its status, in one sentence.
fn why(status: ControlStatus, findings: &[FindingRef]) -> String {
    use annexa_collectors::{FindingCode, Level};
    let first = |codes: &[FindingCode]| {
        findings
            .iter()
            .find(|f| codes.contains(&f.code))
            .map(|f| f.message.clone())
    };
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    match status {
        ControlStatus::Satisfied => "fresh evidence and no failing finding".to_string(),
        ControlStatus::NotSatisfied => format!(
            "fresh evidence, but {fails} failing finding{}",
            if fails == 1 { "" } else { "s" }
        ),
        ControlStatus::Stale => {
            first(&[FindingCode::EvidenceStale]).unwrap_or_else(|| "evidence is stale".into())
        }
        ControlStatus::NotEvaluated => first(&[
            FindingCode::CollectorFailed,
            FindingCode::CollectorUnauthorized,
        ])
        .unwrap_or_else(|| "the latest collection failed".into()),
        ControlStatus::Missing => first(&[FindingCode::EvidenceMissing])
            .unwrap_or_else(|| "required evidence was never collected".into()),
    }
}

/// Builds the report. Pure: the same input always gives the same report.
pub fn build(input: &ReportInput) -> Report {
    let (from, to) = (input.from, input.to);
    // What the records can tell: up to the end of the period, or to when they were read.
    let end = input.as_of.clamp(from, to);
    let days = day_starts(from, to);
    let mut evidence = Vec::new();
    let mut snapshots = Vec::new();
    let mut gaps = Vec::new();
    let mut freshness = Vec::new();
    let mut coverage: BTreeMap<&str, Coverage> = BTreeMap::new();

    for c in &input.collectors {
        let successes: Vec<&RunInput> = c.runs.iter().filter(|r| r.succeeded).collect();
        // Each success is fresh until it expires; a lapse opens when it expires before the
        // next success.
        for (i, run) in successes.iter().enumerate() {
            let expires = run.expires(c.max_age);
            let next = successes.get(i + 1).map(|r| r.finished_at);
            let fresh = match next {
                Some(next) => next <= expires,
                None => end <= expires,
            };
            if !fresh && expires < end {
                let until = next.filter(|n| *n <= end);
                gaps.push(Gap {
                    missed_slots: Vec::new(),
                    collector: c.name.clone(),
                    controls: c.controls.clone(),
                    kind: if until.is_some() {
                        GapKind::Lapsed
                    } else {
                        GapKind::Stale
                    },
                    since: Some(expires.max(from)),
                    until,
                    detail: match until {
                        Some(u) => format!(
                            "no fresh evidence for {}: the snapshot of {} expired and the next came {}",
                            annexa_collectors::human_duration((u - expires.max(from)).num_seconds()),
                            run.finished_at.format("%Y-%m-%d %H:%M UTC"),
                            u.format("%Y-%m-%d %H:%M UTC"),
                        ),
                        None => format!(
                            "the newest snapshot, of {}, expired {} and nothing replaced it",
                            run.finished_at.format("%Y-%m-%d %H:%M UTC"),
                            expires.format("%Y-%m-%d %H:%M UTC"),
                        ),
                    },
                });
            }
            if run.finished_at < from {
                continue;
            }
            let start = evidence.len();
            for item in &run.items {
                evidence.push(EvidenceEntry {
                    collector: c.name.clone(),
                    run_id: run.run_id.clone(),
                    name: item.name.clone(),
                    role: item.role.clone(),
                    media_type: item.media_type.clone(),
                    size: item.size,
                    collected_at: run.finished_at,
                    expires_at: expires,
                    fresh,
                    sha256: item.sha256.clone(),
                    object_key: item.object_key.clone(),
                    controls: c.controls.clone(),
                });
            }
            snapshots.push(Snapshot {
                kind: c.kind.clone(),
                collector: c.name.clone(),
                run_id: run.run_id.clone(),
                collected_at: run.finished_at,
                expires_at: expires,
                evidence: start..evidence.len(),
                attested: run.attested.clone(),
            });
        }
        match successes.first() {
            None => gaps.push(Gap {
                collector: c.name.clone(),
                controls: c.controls.clone(),
                kind: GapKind::Missing,
                since: None,
                until: None,
                missed_slots: Vec::new(),
                detail: format!(
                    "not yet collected: `{}` had no successful run by the end of the period",
                    c.name
                ),
            }),
            Some(first) if first.finished_at > from => gaps.push(Gap {
                collector: c.name.clone(),
                controls: c.controls.clone(),
                kind: GapKind::Lapsed,
                since: Some(from),
                until: Some(first.finished_at),
                missed_slots: Vec::new(),
                detail: format!(
                    "no evidence from the start of the period until the first snapshot, {}",
                    first.finished_at.format("%Y-%m-%d %H:%M UTC")
                ),
            }),
            Some(_) => {}
        }

        let cov = slot_coverage(c, end);
        if !cov.missed.is_empty() {
            let failed = c
                .runs
                .iter()
                .filter(|r| !r.succeeded && r.finished_at >= from)
                .count();
            gaps.push(Gap {
                collector: c.name.clone(),
                controls: c.controls.clone(),
                kind: GapKind::MissedSlots,
                since: cov.missed.first().copied(),
                until: None,
                missed_slots: cov.missed.clone(),
                detail: format!(
                    "{} of {} scheduled collections produced no snapshot ({} failed runs)",
                    cov.missed.len(),
                    cov.expected,
                    failed,
                ),
            });
        }
        // Unscheduled sources (the custody log) have no slots to cover.
        if !c.schedule.is_empty() {
            coverage.insert(&c.name, cov);
        }

        freshness.push(Freshness {
            collector: c.name.clone(),
            days: days
                .iter()
                .map(|d| {
                    if *d >= end {
                        return DayState::Unknown;
                    }
                    let at = (*d + Duration::days(1)).min(end) - Duration::seconds(1);
                    match successes.iter().rev().find(|r| r.finished_at <= at) {
                        None => DayState::None,
                        Some(r) if at <= r.expires(c.max_age) => DayState::Fresh,
                        Some(_) => DayState::Stale,
                    }
                })
                .collect(),
        });
    }

    let mut controls = Vec::new();
    for control in &input.status.controls {
        let collectors: Vec<String> = input
            .collectors
            .iter()
            .filter(|c| c.controls.contains(&control.id))
            .map(|c| c.name.clone())
            .collect();
        // Missing, stale or unevaluated at the end of the period, beyond what the collectors'
        // history already shows (e.g. a control no configured collector evidences).
        if matches!(
            control.status,
            ControlStatus::Missing | ControlStatus::Stale | ControlStatus::NotEvaluated
        ) {
            let kind = match control.status {
                ControlStatus::Missing => GapKind::Missing,
                ControlStatus::Stale => GapKind::Stale,
                _ => GapKind::NotEvaluated,
            };
            let known = gaps
                .iter()
                .any(|g| g.until.is_none() && g.kind == kind && g.controls.contains(&control.id));
            // Controls with no attested evidence are one gap (as they are one alert), not a
            // row each repeating the same sentence.
            let unattested = kind == GapKind::Missing
                && collectors.is_empty()
                && control.findings.iter().any(|f| {
                    f.code == annexa_collectors::FindingCode::EvidenceMissing
                        && f.subject == ATTESTED
                });
            let grouped = gaps.iter_mut().find(|g| {
                unattested && g.collector == ATTESTED && g.kind == kind && g.since.is_none()
            });
            if let Some(gap) = grouped {
                gap.controls.push(control.id.clone());
            } else if unattested {
                gaps.push(Gap {
                    missed_slots: Vec::new(),
                    collector: ATTESTED.to_string(),
                    controls: vec![control.id.clone()],
                    kind,
                    since: None,
                    until: None,
                    detail: "no attested evidence approved: attach it with `annexa attach FILE --control ID`, then have a reviewer approve it (`annexa review ID --approve --by NAME`)".to_string(),
                });
            } else if !known {
                gaps.push(Gap {
                    missed_slots: Vec::new(),
                    collector: collectors.join(", "),
                    controls: vec![control.id.clone()],
                    kind,
                    since: None,
                    until: None,
                    detail: why(control.status, &control.findings),
                });
            }
        }
        controls.push(ControlSection {
            id: control.id.clone(),
            title: control.title.clone(),
            status: control.status,
            why: why(control.status, &control.findings),
            coverage: collectors
                .iter()
                .filter_map(|c| coverage.get(c.as_str()).cloned())
                .collect(),
            findings: control.findings.clone(),
            period: control.period.clone(),
            evidence_count: evidence
                .iter()
                .filter(|e| e.controls.contains(&control.id))
                .count(),
            collectors,
        });
    }
    gaps.sort_by(|a, b| {
        (a.until.is_some(), &a.collector, a.since, a.kind).cmp(&(
            b.until.is_some(),
            &b.collector,
            b.since,
            b.kind,
        ))
    });

    let summary = [
        ControlStatus::Satisfied,
        ControlStatus::NotSatisfied,
        ControlStatus::Stale,
        ControlStatus::NotEvaluated,
        ControlStatus::Missing,
    ]
    .into_iter()
    .map(|status| StatusCount {
        status,
        count: controls.iter().filter(|c| c.status == status).count(),
    })
    .collect();

    let index = input
        .collectors
        .iter()
        .map(|c| {
            let mut entry = IndexEntry {
                collector: c.name.clone(),
                controls: c.controls.clone(),
                snapshots: 0,
                objects: 0,
                stale_objects: 0,
                bytes: 0,
                first: None,
                last: None,
            };
            for s in snapshots.iter().filter(|s| s.collector == c.name) {
                entry.snapshots += 1;
                entry.first = entry.first.or(Some(s.collected_at));
                entry.last = Some(s.collected_at);
                for e in &evidence[s.evidence.clone()] {
                    entry.objects += 1;
                    entry.stale_objects += usize::from(!e.fresh);
                    entry.bytes += e.size.unwrap_or(0);
                }
            }
            entry
        })
        .collect();

    Report {
        id: String::new(),
        format: REPORT_FORMAT,
        organization: input.organization.clone(),
        period: Period { from, to },
        generated_at: input.generated_at,
        generated_by: input.generated_by.clone(),
        annexa_version: input.annexa_version.clone(),
        ledger: input.ledger.clone(),
        integrity: input.status.integrity.clone(),
        summary,
        exceptions: input
            .status
            .controls
            .iter()
            .flat_map(|c| {
                c.findings.iter().filter_map(|f| {
                    let a = f.accepted.as_ref()?;
                    Some(Exception {
                        control: c.id.clone(),
                        code: f.code.as_str().to_string(),
                        subject: f.subject.clone(),
                        by: a.by.clone(),
                        reason: a.reason.clone(),
                        until: a.until,
                        event: a.event.clone(),
                    })
                })
            })
            .collect(),
        controls,
        excluded: input.status.excluded.clone(),
        soa: input.soa.clone(),
        soa_file: input.soa_file.clone(),
        csv_bom: input.csv_bom,
        gaps,
        freshness,
        figures: input
            .collectors
            .iter()
            .filter(|c| !c.figures.is_empty())
            .map(|c| CollectorFigures {
                collector: c.name.clone(),
                kind: c.kind.clone(),
                tables: c.figures.clone(),
            })
            .collect(),
        snapshots,
        index,
        evidence,
    }
}

/// A slot is met when a successful collection finished between it and the next slot (the end
/// of the period for the last one).
fn slot_coverage(c: &CollectorInput, to: DateTime<Utc>) -> Coverage {
    let finished: Vec<DateTime<Utc>> = c
        .runs
        .iter()
        .filter(|r| r.succeeded)
        .map(|r| r.finished_at)
        .collect();
    let mut missed = Vec::new();
    for (i, slot) in c.slots.iter().enumerate() {
        let end = c.slots.get(i + 1).copied().unwrap_or(to);
        let first_after = finished.partition_point(|t| t < slot);
        if finished.get(first_after).is_none_or(|t| *t >= end) {
            missed.push(*slot);
        }
    }
    Coverage {
        collector: c.name.clone(),
        schedule: c.schedule.clone(),
        expected: c.slots.len(),
        present: c.slots.len() - missed.len(),
        missed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlReport;
    use annexa_collectors::{FindingCode, Level};
    use chrono::TimeZone;

    fn day(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0).unwrap()
    }

    fn run(id: &str, at: DateTime<Utc>, ok: bool) -> RunInput {
        RunInput {
            run_id: id.into(),
            succeeded: ok,
            finished_at: at,
            expires_at: None,
            attested: None,
            error: (!ok).then(|| "source missing".into()),
            items: vec![ItemInput {
                name: "facts.json".into(),
                role: "facts".into(),
                media_type: "application/json".into(),
                size: Some(10),
                sha256: format!("{id:0>64}"),
                object_key: format!("objects/sha256/{id}"),
            }],
        }
    }

    /// A daily collector over October that skipped the 10th and the 11th, then failed on the
    /// 20th; its evidence stays fresh for 50 hours.
    pub fn october() -> ReportInput {
        let mut runs = vec![run("r0", day(1, 0) - Duration::hours(21), true)];
        for d in 1..=31 {
            match d {
                10 | 11 => {}
                20 => runs.push(run(&format!("r{d}"), day(d, 3), false)),
                _ => runs.push(run(&format!("r{d}"), day(d, 3), true)),
            }
        }
        ReportInput {
            organization: "Example Ltd".into(),
            from: day(1, 0),
            to: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            generated_at: Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(),
            generated_by: "auditee".into(),
            as_of: Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(),
            annexa_version: "0.1.0".into(),
            ledger: LedgerHead {
                origin: "annexa/example-ltd".into(),
                tree_size: 40,
                root_hash: "AAAA".into(),
                key_name: "annexa/example-ltd".into(),
                key_id: "01020304".into(),
                checkpoint: "annexa/example-ltd\n40\nAAAA\n\n— annexa/example-ltd AQIDBA==\n"
                    .into(),
                published: None,
            },
            status: StatusDocument {
                as_of: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
                controls: vec![ControlReport {
                    id: "A.5.37".into(),
                    title: "Documented operating procedures".into(),
                    status: ControlStatus::Satisfied,
                    evidence: Vec::new(),
                    evidence_unlisted: 0,
                    findings: Vec::new(),
                    period: None,
                }],
                upcoming: Vec::new(),
                upcoming_unlisted: 0,
                integrity: None,
                excluded: Vec::new(),
            },
            collectors: vec![CollectorInput {
                name: "procedures".into(),
                kind: "policy-document".into(),
                controls: vec!["A.5.37".into()],
                max_age: Duration::hours(50),
                schedule: "0 3 * * *".into(),
                slots: (1..=31).map(|d| day(d, 3)).collect(),
                runs,
                figures: Vec::new(),
            }],
            soa: Vec::new(),
            soa_file: None,
            csv_bom: true,
        }
    }

    #[test]
    fn each_object_is_one_row_with_its_snapshots_and_versions() {
        let mut input = october();
        // A second item that never changes, beside facts that change every run.
        for r in &mut input.collectors[0].runs {
            r.items.push(ItemInput {
                name: "policy.md".into(),
                role: "item".into(),
                media_type: "text/markdown".into(),
                size: Some(5),
                sha256: "ab".repeat(32),
                object_key: format!("objects/sha256/ab/{}", "ab".repeat(32)),
            });
        }
        let r = build(&input);
        let rows = r.objects_of("A.5.37");
        assert_eq!(rows.len(), 2, "{rows:?}");
        let (facts, policy) = (&rows[0], &rows[1]);
        assert_eq!((facts.snapshots, facts.versions), (28, 28));
        assert_eq!((policy.snapshots, policy.versions), (28, 1));
        assert!(policy.cells()[2].ends_with("unchanged in 28 snapshots"));
        assert_eq!(
            policy.cells()[5],
            "ab".repeat(32),
            "the key is the hash's own"
        );
        assert!(facts.cells()[2].ends_with("28 snapshots, 28 versions"));
        assert!(facts.cells()[5].contains("stored at objects/sha256/r31"));
        // The lapse after the 9th and the failure of the 20th leave stale snapshots.
        assert!(
            facts.cells()[4].starts_with("stale in "),
            "{:?}",
            facts.cells()
        );
    }

    #[test]
    fn one_job_s_missed_slots_are_one_row_and_other_findings_their_own() {
        let f = |code: FindingCode, subject: &str| FindingRef {
            code,
            level: Level::Fail,
            subject: subject.into(),
            message: format!("{subject} failed"),
            collector: "cron".into(),
            run_id: None,
            first_seen: None,
            accepted: None,
        };
        let rows = grouped_findings(&[
            f(FindingCode::HeartbeatMissed, "backup@2026-11-12T01:00:00Z"),
            f(FindingCode::HeartbeatMissed, "backup@2026-11-12T00:00:00Z"),
            f(FindingCode::HeartbeatMissed, "other@2026-11-12T00:00:00Z"),
            f(FindingCode::HeartbeatFailed, "backup@2026-11-13T00:00:00Z"),
            f(FindingCode::IncidentTriageLate, "INC-1"),
        ]);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0][2],
            "backup (2 slots, 2026-11-12T00:00:00Z to 2026-11-12T01:00:00Z)"
        );
        assert!(rows[0][3].ends_with("(and 1 more like it: each slot is in findings.csv)"));
        assert_eq!(rows[3][2], "INC-1");
    }

    #[test]
    fn coverage_counts_slots_with_a_successful_snapshot() {
        let r = build(&october());
        let cov = &r.controls[0].coverage[0];
        assert_eq!((cov.present, cov.expected), (28, 31));
        assert_eq!(cov.missed, vec![day(10, 3), day(11, 3), day(20, 3)]);
        assert_eq!(cov.text(), "28 of 31 scheduled snapshots");
    }

    #[test]
    fn a_snapshot_that_expired_before_the_next_one_is_a_lapse() {
        let r = build(&october());
        let lapses: Vec<_> = r
            .gaps
            .iter()
            .filter(|g| g.kind == GapKind::Lapsed)
            .collect();
        // The 9th's snapshot expired on the 11th at 05:00; the next came on the 12th at 03:00.
        assert_eq!(lapses.len(), 1, "{:?}", r.gaps);
        assert_eq!(lapses[0].since, Some(day(11, 5)));
        assert_eq!(lapses[0].until, Some(day(12, 3)));
        // The 19th's snapshot lasted until the 21st: the failed run left no lapse.
        let stale: Vec<_> = r.evidence.iter().filter(|e| !e.fresh).collect();
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].run_id, "r9");
        // The day chart: stale at the end of the 11th only.
        let days = &r.freshness[0].days;
        assert_eq!(days.len(), 31);
        let stale_days: Vec<usize> = (0..31).filter(|i| days[*i] == DayState::Stale).collect();
        assert_eq!(stale_days, vec![10]);
    }

    #[test]
    fn evidence_before_the_period_is_not_listed_but_counts_for_freshness() {
        let r = build(&october());
        assert!(r.evidence.iter().all(|e| e.collected_at >= r.period.from));
        assert_eq!(r.evidence.len(), 28);
        assert_eq!(r.freshness[0].days[0], DayState::Fresh);
        assert_eq!(r.period.label(), "2026-10-01 to 2026-10-31");
    }

    #[test]
    fn a_collector_that_stopped_is_stale_at_the_end_of_the_period() {
        let mut input = october();
        input.collectors[0]
            .runs
            .retain(|r| r.finished_at < day(25, 0));
        let r = build(&input);
        let open: Vec<_> = r.gaps.iter().filter(|g| g.until.is_none()).collect();
        let stale = open.iter().find(|g| g.kind == GapKind::Stale).unwrap();
        assert_eq!(stale.since, Some(day(26, 5)));
        assert!(open.iter().any(|g| g.kind == GapKind::MissedSlots));
        assert_eq!(r.freshness[0].days[30], DayState::Stale);
    }

    #[test]
    fn a_report_on_a_period_not_over_judges_only_up_to_when_it_was_made() {
        let mut input = october();
        input.as_of = day(20, 12);
        input.collectors[0]
            .runs
            .retain(|r| r.finished_at < input.as_of);
        input.collectors[0].slots.retain(|s| *s < input.as_of);
        let r = build(&input);
        // The 19th's snapshot is still fresh on the 20th at noon: no open gap.
        assert!(
            r.gaps
                .iter()
                .all(|g| g.until.is_some() || g.kind == GapKind::MissedSlots)
        );
        assert_eq!(r.freshness[0].days[19], DayState::Fresh);
        assert!(
            r.freshness[0].days[20..]
                .iter()
                .all(|d| *d == DayState::Unknown)
        );
    }

    #[test]
    fn a_collector_that_never_ran_is_missing() {
        let mut input = october();
        input.collectors[0].runs.clear();
        let r = build(&input);
        assert_eq!(r.gaps[0].kind, GapKind::Missing);
        assert!(r.freshness[0].days.iter().all(|d| *d == DayState::None));
        assert_eq!(r.controls[0].coverage[0].present, 0);
    }

    /// Text from sources lands in every format; none of it may become markup or a formula.
    #[test]
    fn hostile_text_is_escaped_in_html_markdown_and_csv() {
        let mut input = october();
        input.status.controls[0].findings.push(FindingRef {
            run_id: None,
            first_seen: None,
            code: annexa_collectors::FindingCode::PolicyReviewOverdue,
            level: annexa_collectors::Level::Fail,
            subject: "=HYPERLINK(\"http://x\")".into(),
            message: "<script>alert(1)</script> | pipe".into(),
            collector: "procedures".into(),
            accepted: None,
        });
        let r = build(&input);
        let mut html = Vec::new();
        crate::render_html(&r, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let mut md = Vec::new();
        crate::render_markdown(&r, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(
            md.contains("\\<script\\>alert(1)\\</script\\> \\| pipe"),
            "{md}"
        );
        let mut csv = Vec::new();
        crate::render_findings_csv(&r, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{csv}");
        assert!(!csv.contains(",=HYPERLINK"));
    }

    #[test]
    fn oscal_uuids_are_version_5_and_stable() {
        let r = build(&october());
        let a = crate::oscal_assessment_results(&r);
        assert_eq!(a, crate::oscal_assessment_results(&r));
        let id = a["assessment-results"]["uuid"].as_str().unwrap();
        assert_eq!(&id[14..15], "5", "{id}");
        assert_eq!(
            a["assessment-results"]["results"][0]["observations"]
                .as_array()
                .unwrap()
                .len(),
            r.snapshots.len()
        );
    }

    #[test]
    fn the_same_input_gives_the_same_report() {
        assert_eq!(build(&october()), build(&october()));
    }

    #[test]
    fn every_missed_slot_is_in_csv_and_json_and_people_read_the_first_five() {
        let mut input = october();
        // The collector stops after the 12th: 19 daily slots, and the 10th and 11th, missed.
        input.collectors[0]
            .runs
            .retain(|r| r.finished_at < day(13, 0));
        let r = build(&input);
        let gap = r
            .gaps
            .iter()
            .find(|g| g.kind == GapKind::MissedSlots)
            .expect("a missed-slots gap");
        assert_eq!(gap.missed_slots.len(), 21, "{gap:?}");
        assert!(gap.text().ends_with(", …"), "{}", gap.text());
        let mut csv = Vec::new();
        crate::render_gaps_csv(&r, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with("\u{feff}collector,"), "{csv}");
        let line = csv.lines().find(|l| l.contains(",missed_slots,")).unwrap();
        assert!(!line.contains('…'), "a CSV cell is cut: {line}");
        assert_eq!(line.matches("2026-10-").count(), 21 + 1, "{line}");
        let json = serde_json::to_value(&r).unwrap();
        let listed = json["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["kind"] == "missed_slots")
            .unwrap();
        assert_eq!(listed["missed_slots"].as_array().unwrap().len(), 21);
        // `[report] csv_bom = false`: no byte order mark.
        input.csv_bom = false;
        let mut plain = Vec::new();
        crate::render_gaps_csv(&build(&input), &mut plain).unwrap();
        assert!(plain.starts_with(b"collector,"));
    }
}
