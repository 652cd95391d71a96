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
}

/// One finding bearing on a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingRef {
    pub code: FindingCode,
    pub level: Level,
    pub subject: String,
    pub message: String,
    pub collector: String,
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

/// One control and why it has its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlReport {
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    pub evidence: Vec<EvidenceRef>,
    pub findings: Vec<FindingRef>,
}

/// The document `annexa status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDocument {
    #[serde(serialize_with = "rfc3339")]
    pub as_of: DateTime<Utc>,
    pub controls: Vec<ControlReport>,
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
