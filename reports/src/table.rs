//! The control table `annexa status` and `annexa run` print for people.

use std::io::Write;

use chrono::SecondsFormat;

use crate::{ControlStatus, Level, StatusDocument};

/// The most characters of a finding's message the table shows; `status --json` and the
/// reports carry the whole of it.
const TABLE_MESSAGE: usize = 400;

/// A message as the table shows it: a long one (every bad record of a register) cut, saying
/// where the rest is.
fn clipped(message: &str) -> String {
    if message.chars().count() <= TABLE_MESSAGE {
        return message.to_string();
    }
    let head: String = message.chars().take(TABLE_MESSAGE).collect();
    format!("{head}… (the whole message: `annexa status --json` or `annexa check`)")
}

/// A title cut to `width` characters, ending in `…` when cut.
fn shorten(title: &str, width: usize) -> String {
    let mut shown: String = title.chars().take(width).collect();
    if shown.len() < title.len() {
        shown.pop();
        shown.push('…');
    }
    shown
}

/// Writes one line per control (id, status, newest evidence, failing findings), then each
/// finding indented beneath its control.
pub fn render_status_table(doc: &StatusDocument, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Controls as of {}",
        doc.as_of.to_rfc3339_opts(SecondsFormat::Secs, true)
    )?;
    let width = doc
        .controls
        .iter()
        .map(|c| c.title.len())
        .max()
        .unwrap_or(0)
        .min(60);
    writeln!(
        out,
        "{:<7} {:<width$} {:<14} {:<22} FINDINGS",
        "CONTROL", "TITLE", "STATUS", "NEWEST EVIDENCE"
    )?;
    for c in &doc.controls {
        let newest = c
            .evidence
            .iter()
            .max_by_key(|e| e.collected_at)
            .map(|e| {
                format!(
                    "{} {}",
                    e.collected_at.format("%Y-%m-%d %H:%M"),
                    if e.fresh { "" } else { "(stale)" }
                )
            })
            .unwrap_or_else(|| "none".to_string());
        let fails = c.findings.iter().filter(|f| f.level == Level::Fail).count();
        let warns = c.findings.len() - fails;
        let title = shorten(&c.title, width);
        writeln!(
            out,
            "{:<7} {:<width$} {:<14} {:<22} {}",
            c.id,
            title,
            c.status.as_str(),
            newest.trim_end(),
            match (fails, warns) {
                (0, 0) => "-".to_string(),
                (f, 0) => format!("{f} fail"),
                (0, w) => format!("{w} warn"),
                (f, w) => format!("{f} fail, {w} warn"),
            }
        )?;
        for f in &c.findings {
            writeln!(
                out,
                "        {} {} [{}] {}{}",
                f.level.as_str(),
                f.code,
                f.subject,
                clipped(&f.message),
                f.accepted
                    .as_ref()
                    .map(|a| format!(
                        " (accepted by {} until {}: {})",
                        a.by,
                        crate::time(a.until),
                        a.reason
                    ))
                    .unwrap_or_default()
            )?;
        }
        if let Some(p) = &c.period {
            writeln!(
                out,
                "        period {} to {}: {} ({}; fresh {})",
                crate::time(p.from),
                crate::time(p.to),
                p.verdict.as_str(),
                p.why_verdict,
                p.fresh_share.percent()
            )?;
        }
    }
    let gaps = doc
        .controls
        .iter()
        .filter(|c| c.status != ControlStatus::Satisfied)
        .count();
    for e in &doc.excluded {
        writeln!(
            out,
            "{:<7} {:<width$} excluded       (Statement of Applicability: {})",
            e.id,
            shorten(&e.title, width),
            e.justification
        )?;
    }
    if let Some(i) = &doc.integrity {
        writeln!(out, "Integrity: {}", i.sentence())?;
    }
    writeln!(
        out,
        "{} of {} controls satisfied{}",
        doc.controls.len() - gaps,
        doc.controls.len(),
        if gaps > 0 {
            format!(", {gaps} with gaps")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_message_is_cut_and_says_where_the_rest_is() {
        let long = "x".repeat(1000);
        let shown = super::clipped(&long);
        assert!(shown.starts_with(&"x".repeat(400)));
        assert!(!shown.contains(&"x".repeat(401)));
        assert!(shown.ends_with("(the whole message: `annexa status --json` or `annexa check`)"));
        assert_eq!(super::clipped("short"), "short");
    }
}
