//! The Markdown report: the same sections as the HTML one, as plain tables.

use std::io::Write;

use crate::model::{DayState, Report};
use crate::time;

/// Escapes a table cell: pipes, line breaks, and characters Markdown would read as markup.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '*' | '_' | '`' | '<' | '>' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn table<R: AsRef<[String]>>(
    out: &mut impl Write,
    columns: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> std::io::Result<()> {
    writeln!(out, "| {} |", columns.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(columns.len()))?;
    for row in rows {
        let row = row.as_ref();
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    writeln!(out)
}

/// Writes the Markdown report.
pub fn render_markdown(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "# ISO/IEC 27001:2022 Annex A evidence report\n")?;
    let rows: Vec<Vec<String>> = r
        .front_page()
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(out, &["", ""], &rows)?;

    writeln!(out, "## Summary\n")?;
    let parts: Vec<String> = r
        .summary
        .iter()
        .map(|s| format!("{}: {}", s.status.as_str(), s.count))
        .collect();
    writeln!(
        out,
        "{} controls. {}.\n",
        r.controls.len(),
        parts.join(", ")
    )?;

    writeln!(out, "## How to verify this report\n")?;
    writeln!(
        out,
        "The bundle's `manifest.json` lists every file with its SHA-256 and names the ledger checkpoint above; `manifest.json.sig` is a signed note (Ed25519) over the manifest's SHA-256 and the `SHA256SUMS` file's. With annexa: `annexa verify --bundle DIR --keys FILE`, with the verifier file the organization gives you (`annexa keys export`). Without it, in the bundle's folder, with that file in `$KEYS` (coreutils and OpenSSL 3):\n"
    )?;
    writeln!(out, "```sh\n{}```\n", crate::VERIFY_WITHOUT_ANNEXA)?;

    writeln!(out, "## Stale and missing evidence\n")?;
    if r.gaps.is_empty() {
        writeln!(
            out,
            "None: every collector had fresh evidence throughout the period and met its schedule.\n"
        )?;
    } else {
        let rows: Vec<Vec<String>> = r
            .gaps
            .iter()
            .map(|g| {
                vec![
                    g.collector.clone(),
                    g.controls.join(", "),
                    g.kind.as_str().to_string(),
                    g.since.map(time).unwrap_or_else(|| "–".into()),
                    g.until.map(time).unwrap_or_else(|| "end of period".into()),
                    g.text(),
                ]
            })
            .collect();
        table(
            out,
            &["Collector", "Controls", "Gap", "Since", "Until", "Detail"],
            &rows,
        )?;
    }

    writeln!(out, "## Controls at the end of the period\n")?;
    let rows: Vec<Vec<String>> = r
        .controls
        .iter()
        .map(|c| {
            let coverage: Vec<String> = c
                .coverage
                .iter()
                .map(|cov| format!("{}: {}", cov.collector, cov.text()))
                .collect();
            vec![
                c.id.clone(),
                c.title.clone(),
                c.status.as_str().to_string(),
                c.why.clone(),
                c.verdict_text(),
                coverage.join("; "),
            ]
        })
        .collect();
    table(
        out,
        &[
            "Control",
            "Title",
            "Status",
            "Why",
            "Verdict over the period",
            "Coverage",
        ],
        &rows,
    )?;

    if !r.excluded.is_empty() {
        writeln!(out, "## Excluded controls\n")?;
        writeln!(
            out,
            "The Statement of Applicability excludes these controls; they are not judged.\n"
        )?;
        let rows: Vec<Vec<String>> = r
            .excluded
            .iter()
            .map(|e| vec![e.id.clone(), e.title.clone(), e.justification.clone()])
            .collect();
        table(out, &["Control", "Title", "Justification"], &rows)?;
    }
    writeln!(out, "## Statement of Applicability\n")?;
    if let Some(file) = &r.soa_file {
        writeln!(
            out,
            "From `{}`: every Annex A control, applicable or excluded and why.\n",
            cell(file)
        )?;
        let rows: Vec<Vec<String>> = r
            .soa
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.title.clone(),
                    e.applicable.clone(),
                    e.justification.clone().unwrap_or_default(),
                    e.implementation.clone().unwrap_or_default(),
                    e.owner.clone().unwrap_or_default(),
                    e.evidence.join(", "),
                    e.status.clone(),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Control",
                "Title",
                "Applicable",
                "Justification",
                "Implementation",
                "Owner",
                "Evidence",
                "Status",
            ],
            &rows,
        )?;
    } else {
        writeln!(
            out,
            "No Statement of Applicability is configured (`[soa] file`): every control annexa judges is taken as applicable; `soa.csv` lists all 93 Annex A controls as not yet assessed.\n"
        )?;
    }

    writeln!(
        out,
        "## Accepted exceptions
"
    )?;
    if r.exceptions.is_empty() {
        writeln!(
            out,
            "None: no failing finding stands under an accepted risk.
"
        )?;
    } else {
        let rows: Vec<Vec<String>> = r
            .exceptions
            .iter()
            .map(|e| {
                vec![
                    e.control.clone(),
                    e.code.clone(),
                    e.subject.clone(),
                    e.by.clone(),
                    e.reason.clone(),
                    time(e.until),
                    e.event.clone(),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Control",
                "Code",
                "Subject",
                "Accepted by",
                "Reason",
                "Until",
                "Audit event",
            ],
            &rows,
        )?;
    }

    writeln!(out, "## Evidence freshness over the period\n")?;
    writeln!(
        out,
        "One character per day from {}: `#` fresh, `!` stale, `.` nothing collected yet, blank after the report was made.\n",
        r.period.from.format("%Y-%m-%d")
    )?;
    writeln!(out, "```")?;
    let width = r
        .freshness
        .iter()
        .map(|f| f.collector.len())
        .max()
        .unwrap_or(0);
    for f in &r.freshness {
        let days: String = f
            .days
            .iter()
            .map(|d| match d {
                DayState::Fresh => '#',
                DayState::Stale => '!',
                DayState::None => '.',
                DayState::Unknown => ' ',
            })
            .collect();
        writeln!(out, "{:<width$}  {days}", f.collector)?;
    }
    writeln!(out, "```\n")?;

    for c in &r.controls {
        writeln!(out, "## {} {}\n", c.id, cell(&c.title))?;
        writeln!(out, "**{}**: {}\n", c.status.as_str(), cell(&c.why))?;
        if c.collectors.is_empty() {
            writeln!(out, "No configured collector evidences this control.\n")?;
        }
        for cov in &c.coverage {
            writeln!(
                out,
                "- Coverage of `{}` ({}): {}.",
                cov.collector,
                cov.schedule,
                cov.text()
            )?;
        }
        if !c.coverage.is_empty() {
            writeln!(out)?;
        }
        if !c.findings.is_empty() {
            let rows = crate::model::grouped_findings(&c.findings);
            table(
                out,
                &["Level", "Code", "Subject", "Finding", "Collector"],
                &rows,
            )?;
        }
        let groups = r.objects_of(&c.id);
        writeln!(out, "{}\n", cell(&r.evidence_sentence(c, groups.len())))?;
        if !groups.is_empty() {
            table(
                out,
                &crate::model::ObjectGroup::COLUMNS,
                groups.iter().map(|g| g.cells()),
            )?;
        }
    }

    if !r.figures.is_empty() {
        writeln!(out, "## Figures\n")?;
        for f in &r.figures {
            for t in &f.tables {
                writeln!(out, "### {} ({})\n", cell(&t.title), f.collector)?;
                if t.rows.is_empty() {
                    writeln!(out, "Nothing in the period.\n")?;
                } else {
                    let columns: Vec<&str> = t.columns.iter().map(String::as_str).collect();
                    table(out, &columns, &t.rows)?;
                }
            }
        }
    }

    writeln!(out, "## Evidence index\n")?;
    writeln!(
        out,
        "What each collector stored in the period. Every object, with its SHA-256 and its key in \
         the evidence store, is listed under the controls above, and in `evidence.csv` and \
         `report.json`.\n"
    )?;
    let rows: Vec<Vec<String>> = r
        .index
        .iter()
        .map(|i| {
            vec![
                i.collector.clone(),
                i.controls.join(", "),
                i.snapshots.to_string(),
                i.objects.to_string(),
                i.stale_objects.to_string(),
                i.bytes.to_string(),
                i.first.map(time).unwrap_or_else(|| "–".into()),
                i.last.map(time).unwrap_or_else(|| "–".into()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "Collector",
            "Controls",
            "Snapshots",
            "Objects",
            "Stale objects",
            "Bytes",
            "First",
            "Last",
        ],
        &rows,
    )?;

    writeln!(out, "## How to check the evidence and its history\n")?;
    writeln!(
        out,
        "1. Check the bundle first, as the front page says.\n\
         2. Check the evidence: fetch any object by its key from the evidence store and compare its \
         SHA-256 with the index above.\n\
         3. Check history: `annexa verify --trusted CHECKPOINT` re-hashes every object, recomputes the \
         Merkle tree and checks it is consistent with the checkpoint this report was anchored to:\n"
    )?;
    writeln!(out, "```\n{}```", r.ledger.checkpoint)
}
