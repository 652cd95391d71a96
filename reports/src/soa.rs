//! The Statement of Applicability joined with the live status: one entry per Annex A control,
//! as `annexa soa` prints it (table, JSON, CSV) and the reports include it.

use std::io::Write;

use serde::Serialize;

/// One control of the Statement of Applicability, with how annexa sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoaEntry {
    pub id: String,
    /// organizational, people, physical or technological; empty for a control the config adds.
    pub theme: String,
    pub title: String,
    /// `yes`, `no`, or `not yet assessed` (no row in the SoA: applicable by default).
    pub applicable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// implemented, partial or planned, as the SoA states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// The collectors that evidence it: those the SoA names and those the catalog maps.
    pub evidence: Vec<String>,
    /// The live status for a control annexa judges (`satisfied`, `missing`, …); `excluded`;
    /// or `not collected` for an applicable control no collector of annexa evidences.
    pub status: String,
}

/// The entries as a table for people.
pub fn render_soa_table(entries: &[SoaEntry], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<7} {:<14} {:<16} {:<14} {:<16} {:<14} TITLE",
        "CONTROL", "THEME", "APPLICABLE", "IMPLEMENTATION", "OWNER", "STATUS"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:<7} {:<14} {:<16} {:<14} {:<16} {:<14} {}",
            e.id,
            e.theme,
            e.applicable,
            e.implementation.as_deref().unwrap_or("-"),
            e.owner.as_deref().unwrap_or("-"),
            e.status,
            e.title
        )?;
        if let Some(j) = &e.justification {
            writeln!(out, "        justification: {j}")?;
        }
    }
    let count = |f: &dyn Fn(&SoaEntry) -> bool| entries.iter().filter(|e| f(e)).count();
    writeln!(
        out,
        "{} controls: {} applicable, {} excluded, {} not yet assessed; {} judged by annexa ({} satisfied)",
        entries.len(),
        count(&|e| e.applicable == "yes"),
        count(&|e| e.applicable == "no"),
        count(&|e| e.applicable == "not yet assessed"),
        count(&|e| !matches!(e.status.as_str(), "excluded" | "not collected")),
        count(&|e| e.status == "satisfied"),
    )
}

/// The columns of a Statement of Applicability file (`[soa] file`), in order.
pub const SOA_COLUMNS: [&str; 6] = [
    "control",
    "applicable",
    "justification",
    "owner",
    "implementation",
    "evidence",
];

/// `soa.csv`: the entries, one row each (the SoA's own columns, then theme, title, status), so
/// the file reads back as a Statement of Applicability.
pub fn render_soa_csv(
    entries: &[SoaEntry],
    bom: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut header = SOA_COLUMNS.to_vec();
    header.extend(["theme", "title", "status"]);
    crate::csv::write_rows(
        out,
        bom,
        &header,
        entries.iter().map(|e| {
            vec![
                e.id.as_str().into(),
                e.applicable.as_str().into(),
                e.justification.as_deref().unwrap_or("").into(),
                e.owner.as_deref().unwrap_or("").into(),
                e.implementation.as_deref().unwrap_or("").into(),
                e.evidence.join(";").into(),
                e.theme.as_str().into(),
                e.title.as_str().into(),
                e.status.as_str().into(),
            ]
        }),
    )
}
