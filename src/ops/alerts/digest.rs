//! A digest: one message per sink and evaluation that has news, within the sink's size limit.
//! New, grown and resolved gaps and warnings are each one line; gaps still open with nothing new
//! are counted, not repeated; what does not fit is counted with a pointer to `annexa status`.

use chrono::{DateTime, Utc};

use super::AlertMessage;

/// Each section: its heading, how the title counts it (one, many) and its events.
const SECTIONS: [(&str, [&str; 2], &str); 5] = [
    ("New", ["new", "new"], "open"),
    ("Grown", ["grown", "grown"], "update"),
    ("Warnings", ["warning", "warnings"], "warning"),
    ("Resolved", ["resolved", "resolved"], "resolved"),
    ("Reminders", ["reminder", "reminders"], "reminder"),
];

/// One digest of `messages`; `still_open` counts the open gaps with no news; `max_chars` is
/// the most the sink's service takes in one message, title included.
pub fn digest(
    messages: &[AlertMessage],
    still_open: usize,
    organization: &str,
    now: DateTime<Utc>,
    max_chars: usize,
) -> AlertMessage {
    let count = |event: &str| messages.iter().filter(|m| m.event == event).count();
    let mut summary: Vec<String> = SECTIONS
        .iter()
        .filter(|(_, _, event)| count(event) > 0)
        .map(|(_, [one, many], event)| {
            let n = count(event);
            format!("{n} {}", if n == 1 { one } else { many })
        })
        .collect();
    summary.push(format!("{still_open} still open"));
    let title = format!("[annexa] Digest: {}", summary.join(", "));
    let footer = format!(
        "Run `annexa status` for every gap's evidence and next step.\nOrganization: {organization} · digest of {}",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    // Room for the title, the footer, the "not shown" line and the separators.
    let budget = max_chars.saturating_sub(title.chars().count() + footer.chars().count() + 120);
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0;
    let mut left_out = 0;
    for (name, _, event) in SECTIONS {
        let of: Vec<&AlertMessage> = messages.iter().filter(|m| m.event == event).collect();
        if of.is_empty() {
            continue;
        }
        let header = format!("{name} ({}):", of.len());
        let mut section = vec![header];
        for m in &of {
            let line = format!("- {}", m.title.trim_start_matches("[annexa] "));
            let cost = line.chars().count() + 1;
            if used + cost + section[0].chars().count() > budget {
                left_out += 1;
                continue;
            }
            used += cost;
            section.push(line);
        }
        if section.len() > 1 {
            used += section[0].chars().count() + 1;
            lines.extend(section);
        }
    }
    if left_out > 0 {
        lines.push(format!(
            "…and {left_out} more not shown here: `annexa status` lists them all."
        ));
    }
    lines.push(format!(
        "Still open with nothing new: {still_open}{}",
        if still_open > 0 {
            " (see `annexa status`)"
        } else {
            ""
        }
    ));
    lines.push(footer);
    AlertMessage {
        event: "digest".into(),
        dedup_key: "digest".into(),
        organization: organization.to_string(),
        title,
        text: lines.join("\n"),
        entries: messages
            .iter()
            .map(|m| AlertMessage {
                text: String::new(),
                ..m.clone()
            })
            .collect(),
        still_open: Some(still_open),
        ..AlertMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(i: usize) -> AlertMessage {
        AlertMessage {
            event: "open".into(),
            dedup_key: format!("heartbeat-missed|job-{i}"),
            organization: "Org".into(),
            title: format!("[annexa] OPEN: heartbeat-missed on job-{i} (24 slots; A.5.36, A.8.16)"),
            text: "long text".repeat(100),
            count: Some(24),
            ..AlertMessage::default()
        }
    }

    #[test]
    fn a_digest_fits_its_service_and_counts_what_it_leaves_out() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 10, 0, 0).unwrap();
        let many: Vec<AlertMessage> = (0..200).map(open).collect();
        for limit in [2000, 4096] {
            let d = digest(&many, 7, "Org", now, limit);
            let total = d.title.chars().count() + 2 + d.text.chars().count();
            assert!(total <= limit, "{total} > {limit}");
            assert!(
                d.title
                    .starts_with("[annexa] Digest: 200 new, 7 still open"),
                "{}",
                d.title
            );
            assert!(d.text.contains("more not shown here"), "{}", d.text);
            assert!(d.text.contains("Still open with nothing new: 7"));
            assert_eq!(d.entries.len(), 200, "the JSON carries every entry");
        }
        let few = digest(&many[..2], 0, "Org", now, 2000);
        assert!(!few.text.contains("not shown"), "{}", few.text);
        assert!(
            few.text
                .contains("- OPEN: heartbeat-missed on job-1 (24 slots"),
            "{}",
            few.text
        );
    }
}
