//! annexa's report model and its renderers.
//!
//! The model is plain serializable data built by the engine; every renderer is a pure function
//! from the model to an `impl Write`. No I/O beyond that writer.
//!
//! # Layout
//!
//! - `lib.rs`: the status model ([`StatusDocument`]) shared by `annexa status` and reports.
//! - `table.rs`: the plain-text control table.
//! - `model.rs`: the report model ([`Report`]) and the pure [`build`] from a [`ReportInput`].
//! - `html.rs`, `markdown.rs`, `csv.rs`, `oscal.rs`: one renderer per format; `format.rs`: the
//!   formats and the files each writes.

mod csv;
mod format;
mod html;
mod markdown;
pub mod model;
mod oscal;
mod soa;
mod table;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

pub use annexa_collectors::{FindingCode, Level};
pub use csv::{render_controls_csv, render_evidence_csv, render_findings_csv, render_gaps_csv};
pub use format::{Format, Renderer};
pub use html::render_html;
pub use markdown::render_markdown;
pub use model::{Report, ReportInput, build};
pub use oscal::{OSCAL_VERSION, oscal_assessment_results, render_oscal};
pub use soa::{SOA_COLUMNS, SoaEntry, render_soa_csv, render_soa_table};
pub use table::render_status_table;

/// A control's status. Ordered best to worst, so `max` is the worst of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    /// Fresh evidence and no failing finding.
    Satisfied,
    /// Fresh evidence with a failing finding.
    NotSatisfied,
    /// The newest evidence is older than its maximum age.
    Stale,
    /// The latest collection failed or was refused, and no fresh evidence is left.
    NotEvaluated,
    /// Required evidence was never collected.
    Missing,
}

impl ControlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Satisfied => "satisfied",
            ControlStatus::NotSatisfied => "not_satisfied",
            ControlStatus::Stale => "stale",
            ControlStatus::NotEvaluated => "not_evaluated",
            ControlStatus::Missing => "missing",
        }
    }
}

/// Timestamps are written as RFC 3339 UTC with whole seconds, `2026-11-22T10:00:00Z`.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// How to check a report bundle without annexa, in the bundle's folder, with the verifier
/// file the organization gave you (`annexa keys export`) in `$KEYS`: coreutils and OpenSSL 3
/// check the Ed25519 signature over the signed note's text, the two hashes it signs, and every
/// file's SHA-256. Any step that fails prints why and stops (`set -e`).
pub const VERIFY_WITHOUT_ANNEXA: &str = r#"set -e
# 1. The signing key, from the verifier file: the line whose id the signature names.
sig=$(tail -n 1 manifest.json.sig | awk '{print $3}')
id=$(printf '%s' "$sig" | base64 -d | head -c 4 | od -An -tx1 | tr -d ' \n')
grep -v '^#' "$KEYS" | grep -F "+$id+" | head -n 1 | cut -d' ' -f1 \
  | sed "s/^[^+]*+$id+//" | base64 -d | tail -c 32 > key.raw
(printf '\060\052\060\005\006\003\053\145\160\003\041\000'; cat key.raw) \
  | openssl pkey -pubin -inform DER -out key.pem
# 2. The Ed25519 signature over the signed text (the note up to its blank line).
sed '/^$/,$d' manifest.json.sig > signed.txt
printf '%s' "$sig" | base64 -d | tail -c 64 > signature.bin
openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in signed.txt -sigfile signature.bin
# 3. The signed text names the manifest's SHA-256 and the SHA256SUMS file's.
grep -qx "sha256 $(sha256sum manifest.json | cut -d' ' -f1)" signed.txt
grep -qx "sha256sums $(sha256sum SHA256SUMS | cut -d' ' -f1)" signed.txt
# 4. Every file of the bundle is the one signed.
sha256sum -c SHA256SUMS
"#;

/// A time as reports print it: RFC 3339 UTC, whole seconds.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Writes the report model as JSON (compact: it is for programs; `jq .` pretty-prints it).
pub fn render_json(r: &Report, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    writeln!(out)
}

/// One piece of evidence behind a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRef {
    pub collector: String,
    pub run_id: String,
    #[serde(serialize_with = "rfc3339")]
    pub collected_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    pub fresh: bool,
    pub sha256: String,
    pub object_key: String,
    /// Who attests it and who approved it (attested evidence only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attested: Option<AttestedBy>,
}

/// Who stands behind attested evidence: its attester (owner) and its reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestedBy {
    pub title: String,
    pub owner: String,
    #[serde(serialize_with = "rfc3339")]
    pub effective: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub expires: DateTime<Utc>,
    pub reviewed_by: String,
    #[serde(serialize_with = "rfc3339")]
    pub reviewed_at: DateTime<Utc>,
    /// The attester approved it (`[attest] allow_self_review`).
    pub self_review: bool,
}

/// One finding bearing on a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingRef {
    pub code: FindingCode,
    pub level: Level,
    pub subject: String,
    pub message: String,
    pub collector: String,
    /// The run whose stored facts say so (or the failed run); none for a finding of the
    /// evaluation itself (evidence missing or stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When a run of the same collector first recorded this code on this subject (reports).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt"
    )]
    pub first_seen: Option<DateTime<Utc>>,
    /// A risk owner's acceptance this `fail` finding is under: it then counts as a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
}

/// An accepted exception, as a finding under it shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub by: String,
    pub reason: String,
    #[serde(serialize_with = "rfc3339")]
    pub until: DateTime<Utc>,
    /// The audit event that recorded it.
    pub event: String,
}

/// A control's verdict over a period: operating effectiveness, not only the end state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Satisfied throughout: fresh evidence all along, no lapse, no missed slot, no failing
    /// finding.
    Effective,
    /// Satisfied at the end, with the listed lapses, missed slots or findings during it.
    EffectiveWithExceptions,
    /// Not satisfied at the end, or without fresh evidence for too much of the period.
    NotEffective,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Effective => "effective",
            Verdict::EffectiveWithExceptions => "effective_with_exceptions",
            Verdict::NotEffective => "not_effective",
        }
    }
}

/// An interval of the period in which a source of the control had no fresh evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lapse {
    pub collector: String,
    #[serde(serialize_with = "rfc3339")]
    pub since: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub until: DateTime<Utc>,
}

/// A source's scheduled collections in the period that produced no snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissedSlots {
    pub collector: String,
    /// Slots due in the period (from the collector's first run).
    pub expected: usize,
    #[serde(serialize_with = "rfc3339_list")]
    pub slots: Vec<DateTime<Utc>>,
}

/// A failing finding that was open at some time in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodFinding {
    pub code: FindingCode,
    pub subject: String,
    pub collector: String,
    /// The newest message.
    pub message: String,
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
    /// The run that first recorded it.
    pub run_id: String,
}

/// A share of a period in basis points (10,000 = all of it), shown as a fraction (`0.9731`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Share(pub u32);

impl Share {
    /// `part` of `whole` (whole zero: none of it).
    pub fn of(part: chrono::Duration, whole: chrono::Duration) -> Share {
        if whole <= chrono::Duration::zero() {
            return Share(0);
        }
        let bp = part.num_seconds().max(0) as f64 * 10_000.0 / whole.num_seconds() as f64;
        Share((bp.floor() as u32).min(10_000))
    }

    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// "97.31 %".
    pub fn percent(self) -> String {
        format!("{:.2} %", f64::from(self.0) / 100.0)
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.fraction())
    }
}

/// One control over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlPeriod {
    #[serde(serialize_with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub to: DateTime<Utc>,
    pub verdict: Verdict,
    /// The share of the period (0 to 1) with fresh evidence from every source of the control.
    pub fresh_share: Share,
    /// The share with fresh evidence and no failing finding.
    pub satisfied_share: Share,
    pub lapses: Vec<Lapse>,
    pub missed_slots: Vec<MissedSlots>,
    pub period_findings: Vec<PeriodFinding>,
    /// Sources not yet collected by the end of the period, and sources whose first run came
    /// during it (when) : no slot before a first run is expected.
    pub not_yet_collected: Vec<String>,
    /// Why the verdict, in one sentence.
    pub why_verdict: String,
}

pub(crate) fn rfc3339_list<S: Serializer>(v: &[DateTime<Utc>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for t in v {
        seq.serialize_element(&t.to_rfc3339_opts(SecondsFormat::Secs, true))?;
    }
    seq.end()
}

/// One control and why it has its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlReport {
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    pub evidence: Vec<EvidenceRef>,
    /// Objects of the runs in `evidence` that are not listed there (a run of more than
    /// 1,000 items lists its first 1,000 and its manifest, which names every one).
    #[serde(skip_serializing_if = "is_zero")]
    pub evidence_unlisted: u64,
    pub findings: Vec<FindingRef>,
    /// With a period (`status --from/--to`, reports): the verdict over it, its fields beside
    /// the others.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub period: Option<ControlPeriod>,
}

/// The document `annexa status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDocument {
    #[serde(serialize_with = "rfc3339")]
    pub as_of: DateTime<Utc>,
    pub controls: Vec<ControlReport>,
    /// What falls due after `as_of` and is not late yet, soonest first: reviews, drills,
    /// evidence expiry, incident targets, the end of accepted exceptions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upcoming: Vec<Upcoming>,
    /// Dues later than those listed that were let go: a source of many (a million documents'
    /// reviews) lists its soonest 1,000.
    #[serde(skip_serializing_if = "is_zero")]
    pub upcoming_unlisted: u64,
    /// What `annexa verify` re-hashed so far; absent before the first verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
    /// The controls the Statement of Applicability excludes, with why: never judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludedControl>,
}

/// A control the Statement of Applicability excludes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExcludedControl {
    pub id: String,
    pub title: String,
    pub justification: String,
}

/// What the verifies of the store covered, as of a time: the newest one, and when the object
/// re-hashed longest ago was last re-hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Integrity {
    #[serde(serialize_with = "rfc3339")]
    pub last_verify: DateTime<Utc>,
    /// `full` or `rolling`.
    pub scope: String,
    pub violations: u64,
    /// The kinds of those violations (`object-altered`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// The newest verify that found no violations.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_success: Option<DateTime<Utc>>,
    /// Objects and bytes the newest verify re-hashed.
    pub objects: u64,
    pub bytes: u64,
    /// `None` while the verifies so far have not re-hashed every object.
    #[serde(serialize_with = "rfc3339_opt")]
    pub oldest_rehash: Option<DateTime<Utc>>,
    /// The newest verify that re-hashed everything.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_full: Option<DateTime<Utc>>,
    /// `[verify] full_every`: every object is re-hashed at least this often.
    pub full_every_days: u64,
}

impl Integrity {
    /// One sentence for a report or the status table.
    pub fn sentence(&self) -> String {
        let day = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let coverage = match self.oldest_rehash {
            Some(t) => format!(
                "every stored object re-hashed since {} (within {} days: {})",
                day(t),
                self.full_every_days,
                if self.last_verify - t <= chrono::TimeDelta::days(self.full_every_days as i64) {
                    "yes"
                } else {
                    "no"
                }
            ),
            None => "not every stored object has been re-hashed yet".to_string(),
        };
        let full = match self.last_full {
            Some(t) => format!("; the last full pass completed on {}", day(t)),
            None => String::new(),
        };
        format!(
            "last verify {} ({}, {} objects re-hashed, {} violation(s)); {coverage}{full}",
            day(self.last_verify),
            self.scope,
            self.objects,
            self.violations
        )
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Something due that is not late yet: once `due` passes it is a finding of `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upcoming {
    pub code: FindingCode,
    pub subject: String,
    #[serde(serialize_with = "rfc3339")]
    pub due: DateTime<Utc>,
    pub what: String,
    /// The collector whose evidence says so (empty for an accepted exception).
    pub collector: String,
    pub controls: Vec<String>,
}

impl StatusDocument {
    /// True when some control is not satisfied (exit code 3).
    pub fn has_gaps(&self) -> bool {
        self.controls
            .iter()
            .any(|c| c.status != ControlStatus::Satisfied)
    }
}

/// Writes the status document as one line of JSON.
pub fn render_status_json(
    doc: &StatusDocument,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, doc)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_is_the_maximum() {
        use ControlStatus::*;
        let all = [Satisfied, Missing, Stale, NotSatisfied, NotEvaluated];
        assert_eq!(all.iter().max(), Some(&Missing));
        assert!(NotEvaluated > Stale && Stale > NotSatisfied && NotSatisfied > Satisfied);
        assert_eq!(
            serde_json::to_string(&NotSatisfied).unwrap(),
            "\"not_satisfied\""
        );
    }
}
