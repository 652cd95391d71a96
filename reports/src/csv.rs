//! CSV exports: control status, gaps, findings and the evidence index. Cells that a
//! spreadsheet would run as a formula are defused.

use std::io::Write;

use crate::model::Report;
use crate::time;

/// A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to
/// spreadsheets (CSV injection); a leading `'` makes it text.
fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn writer(out: &mut impl Write) -> csv::Writer<&mut impl Write> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

/// Writes a header and rows; with `bom`, after a UTF-8 byte order mark, without which Excel on
/// Windows reads UTF-8 ("…", "–", names) as another code page.
pub(crate) fn write_rows<'a>(
    out: &mut impl Write,
    bom: bool,
    header: &[&str],
    rows: impl Iterator<Item = Vec<std::borrow::Cow<'a, str>>>,
) -> std::io::Result<()> {
    if bom {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let mut w = writer(out);
    w.write_record(header)?;
    for row in rows {
        w.write_record(row.iter().map(|c| safe(c).into_owned()))?;
    }
    w.flush()
}

/// `controls.csv`: one row per control.
pub fn render_controls_csv(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    write_rows(
        out,
        r.csv_bom,
        &[
            "control",
            "title",
            "status",
            "why",
            "coverage",
            "evidence_objects",
            "failing_findings",
        ],
        r.controls.iter().map(|c| {
            let coverage: Vec<String> = c
                .coverage
                .iter()
                .map(|cov| format!("{}: {}", cov.collector, cov.text()))
                .collect();
            let fails = c
                .findings
                .iter()
                .filter(|f| f.level == crate::Level::Fail)
                .count();
            vec![
                c.id.as_str().into(),
                c.title.as_str().into(),
                c.status.as_str().into(),
                c.why.as_str().into(),
                coverage.join("; ").into(),
                c.evidence_count.to_string().into(),
                fails.to_string().into(),
            ]
        }),
    )
}

/// `gaps.csv`: stale and missing evidence.
pub fn render_gaps_csv(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    write_rows(
        out,
        r.csv_bom,
        &[
            "collector",
            "controls",
            "gap",
            "since",
            "until",
            "detail",
            "missed_slots",
        ],
        r.gaps.iter().map(|g| {
            // Every missed slot: a cell is never cut.
            let missed: Vec<String> = g.missed_slots.iter().map(|t| time(*t)).collect();
            vec![
                g.collector.as_str().into(),
                g.controls.join(" ").into(),
                g.kind.as_str().into(),
                g.since.map(time).unwrap_or_default().into(),
                g.until.map(time).unwrap_or_default().into(),
                g.detail.as_str().into(),
                missed.join(" ").into(),
            ]
        }),
    )
}

/// `findings.csv`: one row per finding and control, with when its collector first recorded
/// it, the run whose facts say so, and that run's facts object.
pub fn render_findings_csv(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let facts_of = |run: &str| {
        r.evidence
            .iter()
            .find(|e| e.run_id == run && e.role == "facts")
            .map(|e| e.object_key.as_str())
            .unwrap_or_default()
    };
    write_rows(
        out,
        r.csv_bom,
        &[
            "control",
            "level",
            "code",
            "subject",
            "message",
            "collector",
            "first_seen",
            "run_id",
            "object_key",
        ],
        r.controls.iter().flat_map(|c| {
            c.findings.iter().map(move |f| {
                let run = f.run_id.as_deref().unwrap_or_default();
                vec![
                    c.id.as_str().into(),
                    f.level.as_str().into(),
                    f.code.as_str().into(),
                    f.subject.as_str().into(),
                    f.message.as_str().into(),
                    f.collector.as_str().into(),
                    f.first_seen.map(time).unwrap_or_default().into(),
                    run.into(),
                    facts_of(run).into(),
                ]
            })
        }),
    )
}

/// `evidence.csv`: the evidence index.
pub fn render_evidence_csv(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    write_rows(
        out,
        r.csv_bom,
        &[
            "collector",
            "run_id",
            "object",
            "role",
            "media_type",
            "size",
            "collected_at",
            "expires_at",
            "fresh",
            "sha256",
            "object_key",
            "controls",
        ],
        r.snapshots_of("").flat_map(|(collected, expires, items)| {
            items.iter().map(move |e| {
                vec![
                    e.collector.as_str().into(),
                    e.run_id.as_str().into(),
                    e.name.as_str().into(),
                    e.role.as_str().into(),
                    e.media_type.as_str().into(),
                    e.size.map(|s| s.to_string()).unwrap_or_default().into(),
                    collected.clone().into(),
                    expires.clone().into(),
                    if e.fresh { "true" } else { "false" }.into(),
                    e.sha256.as_str().into(),
                    e.object_key.as_str().into(),
                    e.controls.join(" ").into(),
                ]
            })
        }),
    )
}
