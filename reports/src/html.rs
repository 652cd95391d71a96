//! The HTML report: one self-contained file, no script, no external asset, print CSS, inline SVG
//! charts.

use std::borrow::Cow;
use std::io::Write;

use crate::model::{DayState, Report};
use crate::{ControlStatus, time};

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn status_color(s: ControlStatus) -> &'static str {
    match s {
        ControlStatus::Satisfied => "#1a7f37",
        ControlStatus::NotSatisfied => "#cf222e",
        ControlStatus::Stale => "#bf8700",
        ControlStatus::NotEvaluated => "#8250df",
        ControlStatus::Missing => "#82071e",
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,.hash{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
.status{font-weight:600;white-space:nowrap}.meta td:first-child{font-weight:600;width:12rem}
.gaps{border:3px solid #cf222e;border-radius:6px;padding:0 1rem 1rem;background:#fff8f8}
.gaps h2{color:#cf222e;border:0}.none{color:#57606a;font-style:italic}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85em}
@media print{body{margin:0;max-width:none;font-size:9.5px}h2,h3,h4{break-after:avoid}
thead{display:table-header-group}tr{break-inside:avoid}a{color:inherit;text-decoration:none}
.gaps{background:none}section.control{break-before:auto}}
";

/// The printed page: A4, a running header (organization, period, report id) and the page
/// number in the footer, from CSS margin boxes.
fn page_style(r: &Report) -> String {
    let text = |s: &str| {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                // No `</style>` or control character can leave the string.
                '<' | '>' | '&' => out.push_str(&format!("\\{:x} ", c as u32)),
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    let margin = "font:8px system-ui,sans-serif;color:#57606a";
    format!(
        "@page{{size:A4;margin:16mm 12mm 14mm;\
         @top-left{{content:{};{margin}}}\
         @top-right{{content:{};{margin}}}\
         @bottom-center{{content:\"page \" counter(page) \" of \" counter(pages);{margin}}}}}",
        text(&format!("{} · {} (UTC)", r.organization, r.period.label())),
        text(&format!("report {}", r.id)),
    )
}

/// Writes the HTML report.
pub fn render_html(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let title = format!(
        "ISO/IEC 27001:2022 Annex A evidence report: {}, {}",
        r.organization,
        r.period.label()
    );
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}{}</style>\n</head>\n<body>\n",
        esc(&title),
        page_style(r)
    )?;
    writeln!(
        out,
        "<header>\n<h1>ISO/IEC 27001:2022 Annex A evidence report</h1>\n<table class=\"meta\">"
    )?;
    for (k, v) in r.front_page() {
        writeln!(out, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v))?;
    }
    writeln!(out, "</table>\n</header>")?;

    // Summary.
    writeln!(out, "<section id=\"summary\">\n<h2>Summary</h2>")?;
    summary_chart(r, out)?;
    writeln!(out, "</section>")?;

    writeln!(
        out,
        "<section id=\"verify\">\n<h2>How to verify this report</h2>\n<p>The bundle's <code>manifest.json</code> lists every file with its SHA-256 and names the ledger checkpoint above; <code>manifest.json.sig</code> is a signed note (Ed25519) over the manifest's SHA-256 and the <code>SHA256SUMS</code> file's. With annexa: <code>annexa verify --bundle DIR --keys FILE</code>, with the verifier file the organization gives you (<code>annexa keys export</code>). Without it, in the bundle's folder, with that file in <code>$KEYS</code> (coreutils and OpenSSL 3):</p>\n<pre>{}</pre>\n</section>",
        esc(crate::VERIFY_WITHOUT_ANNEXA)
    )?;

    // Stale and missing evidence, before anything else an auditor reads.
    writeln!(
        out,
        "<section id=\"stale-and-missing\" class=\"gaps\">\n<h2>Stale and missing evidence</h2>"
    )?;
    if r.gaps.is_empty() {
        writeln!(
            out,
            "<p class=\"none\">None: every collector had fresh evidence throughout the period and met its schedule.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<table>\n<thead><tr><th>Collector</th><th>Controls</th><th>Gap</th><th>Since</th><th>Until</th><th>Detail</th></tr></thead>"
        )?;
        for g in &r.gaps {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.collector),
                esc(&g.controls.join(", ")),
                g.kind.as_str(),
                g.since.map(time).unwrap_or_else(|| "–".into()),
                g.until.map(time).unwrap_or_else(|| "end of period".into()),
                esc(&g.text())
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "</section>")?;

    // The control table.
    writeln!(
        out,
        "<section id=\"controls\">\n<h2>Controls at the end of the period</h2>\n<table>\n\
         <thead><tr><th>Control</th><th>Title</th><th>Status</th><th>Why</th><th>Verdict over the period</th><th>Coverage</th></tr></thead>"
    )?;
    for c in &r.controls {
        let coverage: Vec<String> = c
            .coverage
            .iter()
            .map(|cov| format!("{}: {}", cov.collector, cov.text()))
            .collect();
        writeln!(
            out,
            "<tr><td><a href=\"#control-{id}\">{id}</a></td><td>{}</td><td class=\"status\" style=\"color:{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.title),
            status_color(c.status),
            c.status.as_str(),
            esc(&c.why),
            esc(&c.verdict_text()),
            esc(&coverage.join("; ")),
            id = esc(&c.id),
        )?;
    }
    writeln!(out, "</table>\n</section>")?;

    if !r.excluded.is_empty() {
        writeln!(
            out,
            "<section id=\"excluded\">\n<h2>Excluded controls</h2>\n<p>The Statement of Applicability excludes these controls; they are not judged.</p>\n<table>\n<thead><tr><th>Control</th><th>Title</th><th>Justification</th></tr></thead>"
        )?;
        for e in &r.excluded {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.id),
                esc(&e.title),
                esc(&e.justification)
            )?;
        }
        writeln!(out, "</table>\n</section>")?;
    }
    writeln!(
        out,
        "<section id=\"soa\">\n<h2>Statement of Applicability</h2>"
    )?;
    if let Some(file) = &r.soa_file {
        writeln!(
            out,
            "<p>From <code>{}</code>: every Annex A control, applicable or excluded and why.</p>\n<table>\n<thead><tr><th>Control</th><th>Title</th><th>Applicable</th><th>Justification</th><th>Implementation</th><th>Owner</th><th>Evidence</th><th>Status</th></tr></thead>",
            esc(file)
        )?;
        for e in &r.soa {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.id),
                esc(&e.title),
                esc(&e.applicable),
                esc(e.justification.as_deref().unwrap_or("")),
                esc(e.implementation.as_deref().unwrap_or("")),
                esc(e.owner.as_deref().unwrap_or("")),
                esc(&e.evidence.join(", ")),
                esc(&e.status)
            )?;
        }
        writeln!(out, "</table>")?;
    } else {
        writeln!(
            out,
            "<p>No Statement of Applicability is configured (<code>[soa] file</code>): every control annexa judges is taken as applicable; <code>soa.csv</code> lists all 93 Annex A controls as not yet assessed.</p>"
        )?;
    }
    writeln!(out, "</section>")?;

    writeln!(
        out,
        "<section id=\"exceptions\">\n<h2>Accepted exceptions</h2>"
    )?;
    if r.exceptions.is_empty() {
        writeln!(
            out,
            "<p>None: no failing finding stands under an accepted risk.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<table>\n<thead><tr><th>Control</th><th>Code</th><th>Subject</th><th>Accepted by</th><th>Reason</th><th>Until</th><th>Audit event</th></tr></thead>"
        )?;
        for e in &r.exceptions {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.control),
                esc(&e.code),
                esc(&e.subject),
                esc(&e.by),
                esc(&e.reason),
                esc(&time(e.until)),
                esc(&e.event)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "</section>")?;

    writeln!(
        out,
        "<section id=\"freshness\">\n<h2>Evidence freshness over the period</h2>"
    )?;
    freshness_chart(r, out)?;
    writeln!(out, "</section>")?;

    // One section per control.
    for c in &r.controls {
        writeln!(
            out,
            "<section class=\"control\" id=\"control-{}\">\n<h2>{} {}</h2>\n<p><span class=\"status\" style=\"color:{}\">{}</span>: {}</p>",
            esc(&c.id),
            esc(&c.id),
            esc(&c.title),
            status_color(c.status),
            c.status.as_str(),
            esc(&c.why)
        )?;
        if c.collectors.is_empty() {
            writeln!(
                out,
                "<p class=\"none\">No configured collector evidences this control.</p>"
            )?;
        }
        for cov in &c.coverage {
            writeln!(
                out,
                "<p>Coverage of <code>{}</code> ({}): {}.</p>",
                esc(&cov.collector),
                esc(&cov.schedule),
                esc(&cov.text())
            )?;
        }
        if !c.findings.is_empty() {
            writeln!(
                out,
                "<table>\n<thead><tr><th>Level</th><th>Code</th><th>Subject</th><th>Finding</th><th>Collector</th></tr></thead>"
            )?;
            for row in crate::model::grouped_findings(&c.findings) {
                writeln!(
                    out,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&row[0]),
                    esc(&row[1]),
                    esc(&row[2]),
                    esc(&row[3]),
                    esc(&row[4])
                )?;
            }
            writeln!(out, "</table>")?;
        }
        let groups = r.objects_of(&c.id);
        writeln!(out, "<p>{}</p>", esc(&r.evidence_sentence(c, groups.len())))?;
        if !groups.is_empty() {
            evidence_table(&groups, out)?;
        }
        writeln!(out, "</section>")?;
    }

    if !r.figures.is_empty() {
        writeln!(out, "<section id=\"figures\">\n<h2>Figures</h2>")?;
        for f in &r.figures {
            for t in &f.tables {
                writeln!(
                    out,
                    "<h3>{} <small>({})</small></h3>",
                    esc(&t.title),
                    esc(&f.collector)
                )?;
                if t.rows.is_empty() {
                    writeln!(out, "<p class=\"none\">Nothing in the period.</p>")?;
                    continue;
                }
                write!(out, "<table>\n<thead><tr>")?;
                for col in &t.columns {
                    write!(out, "<th>{}</th>", esc(col))?;
                }
                writeln!(out, "</tr></thead>")?;
                for row in &t.rows {
                    write!(out, "<tr>")?;
                    for cell in row {
                        write!(out, "<td>{}</td>", esc(cell))?;
                    }
                    writeln!(out, "</tr>")?;
                }
                writeln!(out, "</table>")?;
            }
        }
        writeln!(out, "</section>")?;
    }

    writeln!(
        out,
        "<section id=\"evidence-index\">\n<h2>Evidence index</h2>\n<p>What each collector stored in the period. \
         Every object, with its SHA-256 and its key in the evidence store, is listed under the controls above, \
         and in <code>evidence.csv</code> and <code>report.json</code>.</p>\n<table>\n\
         <thead><tr><th>Collector</th><th>Controls</th><th>Snapshots</th><th>Objects</th><th>Stale objects</th><th>Bytes</th><th>First</th><th>Last</th></tr></thead>"
    )?;
    for i in &r.index {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.collector),
            esc(&i.controls.join(", ")),
            i.snapshots,
            i.objects,
            i.stale_objects,
            i.bytes,
            i.first.map(time).unwrap_or_else(|| "–".into()),
            i.last.map(time).unwrap_or_else(|| "–".into()),
        )?;
    }
    writeln!(out, "</table>\n</section>")?;

    writeln!(
        out,
        "<section id=\"verify-evidence\">\n<h2>How to check the evidence and its history</h2>\n<ol>\n\
         <li>Check the bundle first, as the front page says.</li>\n\
         <li>Check the evidence: fetch any object by its key from the evidence store and compare its SHA-256 with \
         the index above (<code>sha256sum</code>).</li>\n\
         <li>Check history: <code>annexa verify --trusted CHECKPOINT</code> re-hashes every object, recomputes the \
         Merkle tree and checks it is consistent with the checkpoint below, which this report was anchored to.</li>\n\
         </ol>\n<pre>{}</pre>\n</section>\n</body>\n</html>",
        esc(&r.ledger.checkpoint)
    )?;
    Ok(())
}

fn evidence_table(
    groups: &[crate::model::ObjectGroup],
    out: &mut impl Write,
) -> std::io::Result<()> {
    write!(out, "<table>\n<thead><tr>")?;
    for col in crate::model::ObjectGroup::COLUMNS {
        write!(out, "<th>{col}</th>")?;
    }
    writeln!(out, "</tr></thead>")?;
    for g in groups {
        let cells = g.cells();
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"hash\">{}</td></tr>",
            esc(&cells[0]),
            esc(&cells[1]),
            esc(&cells[2]),
            esc(&cells[3]),
            esc(&cells[4]),
            esc(&cells[5])
        )?;
    }
    writeln!(out, "</table>")
}

/// Horizontal bars, one per status.
fn summary_chart(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let total = r.controls.len().max(1);
    let (label_w, bar_w, row_h) = (130, 420, 26);
    let height = row_h * r.summary.len() + 8;
    writeln!(
        out,
        "<svg role=\"img\" aria-label=\"Control status overview\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        label_w + bar_w + 60,
        label_w + bar_w + 60
    )?;
    for (i, s) in r.summary.iter().enumerate() {
        let y = i * row_h + 4;
        let w = bar_w * s.count / total;
        writeln!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect><text x=\"{}\" y=\"{}\" font-size=\"13\">{}</text>",
            y + 17,
            s.status.as_str(),
            row_h - 6,
            status_color(s.status),
            s.status.as_str(),
            s.count,
            label_w + w + 6,
            y + 17,
            s.count
        )?;
    }
    writeln!(out, "</svg>")?;
    write!(out, "<p>")?;
    let parts: Vec<String> = r
        .summary
        .iter()
        .map(|s| format!("{}: {}", s.status.as_str(), s.count))
        .collect();
    writeln!(
        out,
        "{} controls. {}.</p>",
        r.controls.len(),
        parts.join(", ")
    )
}

/// A grid: one row per collector, one cell per day, coloured by whether the collector had fresh
/// evidence at the end of that day.
fn freshness_chart(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let days = r.days();
    if r.freshness.is_empty() || days.is_empty() {
        return writeln!(out, "<p class=\"none\">No collector is configured.</p>");
    }
    let label_w = 170;
    let cell = (640 / days.len()).clamp(2, 18);
    let row_h = 18;
    let width = label_w + cell * days.len() + 10;
    let height = row_h * r.freshness.len() + 40;
    writeln!(
        out,
        "<svg role=\"img\" aria-label=\"Evidence freshness by day\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    )?;
    // Stale days are hatched as well as red: colour is never the only signal.
    writeln!(
        out,
        "<defs><pattern id=\"stale\" patternUnits=\"userSpaceOnUse\" width=\"4\" height=\"4\">\
         <rect width=\"4\" height=\"4\" fill=\"#cf222e\"/><path d=\"M0,4 l4,-4\" stroke=\"#fff\" stroke-width=\"1.2\"/></pattern></defs>"
    )?;
    for (row, f) in r.freshness.iter().enumerate() {
        let y = row * row_h;
        writeln!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            esc(&f.collector)
        )?;
        for (i, d) in f.days.iter().enumerate() {
            let (fill, word) = match d {
                DayState::Fresh => ("#2da44e", "fresh"),
                DayState::Stale => ("url(#stale)", "stale"),
                DayState::None => ("#d0d7de", "no evidence yet"),
                DayState::Unknown => ("#ffffff", "after the report was made"),
            };
            writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{} {}: {word}</title></rect>",
                label_w + i * cell,
                y + 2,
                cell.saturating_sub(1).max(1),
                row_h - 4,
                esc(&f.collector),
                days[i].format("%Y-%m-%d")
            )?;
        }
    }
    let y = r.freshness.len() * row_h + 16;
    writeln!(
        out,
        "<text x=\"{label_w}\" y=\"{y}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
        days[0].format("%Y-%m-%d"),
        label_w + cell * days.len(),
        days[days.len() - 1].format("%Y-%m-%d")
    )?;
    writeln!(
        out,
        "<rect x=\"{label_w}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#2da44e\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">fresh</text>\
         <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"url(#stale)\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">stale</text>\
         <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#d0d7de\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">none yet</text>",
        y + 6,
        label_w + 14,
        y + 15,
        label_w + 60,
        y + 6,
        label_w + 74,
        y + 15,
        label_w + 120,
        y + 6,
        label_w + 134,
        y + 15
    )?;
    writeln!(out, "</svg>")
}
