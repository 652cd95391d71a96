//! Post-mortems in the template of the incident-response procedure:
//!
//! ```text
//! ## Incident: <title>
//! Date: YYYY-MM-DD
//! Severity: P1 / P2
//! Duration: <start> to <end>
//! Author: <name>
//! ### What happened … ### Root cause … ### Detection … ### Impact …
//! ### Containment and recovery steps taken … ### What went well … ### What to improve …
//! ### Action items
//! | Item | Owner | Due | Done |
//! ```

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The sections every post-mortem must have (matched by the start of the heading).
pub const REQUIRED_SECTIONS: &[&str] = &[
    "What happened",
    "Root cause",
    "Detection",
    "Impact",
    "Containment and recovery",
    "What went well",
    "What to improve",
    "Action items",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItem {
    pub item: String,
    pub owner: Option<String>,
    pub due: Option<NaiveDate>,
    pub done: bool,
}

/// What a post-mortem file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostMortem {
    /// The file name (relative to the post-mortem folder).
    pub file: String,
    pub title: Option<String>,
    pub date: Option<NaiveDate>,
    pub severity: Option<String>,
    pub duration: Option<String>,
    pub author: Option<String>,
    pub missing_sections: Vec<String>,
    pub action_items: Vec<ActionItem>,
    /// The incident it belongs to, once linked.
    pub incident: Option<String>,
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim().trim_start_matches(['*', '-', ' ']);
        let (k, v) = l.split_once(':')?;
        (k.trim().trim_matches('*').eq_ignore_ascii_case(name))
            .then(|| v.trim().trim_matches('*').trim().to_string())
            .filter(|v| !v.is_empty() && !v.starts_with('<'))
    })
}

/// Parses one post-mortem.
pub fn parse(file: &str, text: &str) -> PostMortem {
    let headings: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| h.trim_start_matches('#').trim().to_ascii_lowercase())
        .collect();
    let missing_sections = REQUIRED_SECTIONS
        .iter()
        .filter(|s| {
            !headings
                .iter()
                .any(|h| h.starts_with(&s.to_ascii_lowercase()))
        })
        .map(|s| s.to_string())
        .collect();
    let title = text.lines().find_map(|l| {
        let h = l.trim_start().trim_start_matches('#').trim();
        (l.trim_start().starts_with('#'))
            .then(|| h.strip_prefix("Incident:").map(|t| t.trim().to_string()))
            .flatten()
    });
    PostMortem {
        file: file.to_string(),
        title,
        date: field(text, "Date")
            .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok()),
        severity: field(text, "Severity"),
        duration: field(text, "Duration"),
        author: field(text, "Author"),
        missing_sections,
        action_items: action_items(text),
        incident: None,
    }
}

/// The rows of the table under `### Action items`: Item | Owner | Due | (Done or Status).
fn action_items(text: &str) -> Vec<ActionItem> {
    let mut items = Vec::new();
    let mut in_section = false;
    let mut columns: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            in_section = l
                .trim_start_matches('#')
                .trim()
                .to_ascii_lowercase()
                .starts_with("action items");
            columns.clear();
            continue;
        }
        if !in_section || !l.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = l
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if columns.is_empty() {
            columns = cells.iter().map(|c| c.to_ascii_lowercase()).collect();
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue; // the separator row
        }
        let get = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| cells.get(i))
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
        };
        let Some(item) = get("item") else { continue };
        let done = get("done")
            .or_else(|| get("status"))
            .map(|d| {
                matches!(
                    d.to_ascii_lowercase().as_str(),
                    "yes" | "done" | "x" | "[x]" | "true" | "closed"
                )
            })
            .unwrap_or(false);
        items.push(ActionItem {
            item,
            owner: get("owner"),
            due: get("due").and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok()),
            done,
        });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const TEMPLATE_FILLED: &str = "## Incident: API returning 500 for all requests\n\
Date: 2026-03-02\nSeverity: P1\nDuration: 09:00 to 10:15\nAuthor: Dana\n\n\
### What happened\nA deploy broke the config.\n### Root cause\nA missing env var.\n\
### Detection\nSentry alert after 2 min.\n### Impact\nAll orgs, 75 min.\n\
### Containment and recovery steps taken\nRolled back.\n### What went well\nFast rollback.\n\
### What to improve\nConfig validation.\n### Action items\n\
| Item | Owner | Due | Done |\n|---|---|---|---|\n| Validate config at boot | Dana | 2026-03-20 | yes |\n\
| Add canary deploys | Lee | 2026-04-15 | |\n";

    #[test]
    fn reads_the_template_of_seed_003() {
        let pm = parse("2026-03-02-inc-7.md", TEMPLATE_FILLED);
        assert_eq!(
            pm.title.as_deref(),
            Some("API returning 500 for all requests")
        );
        assert_eq!(pm.date, NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(pm.severity.as_deref(), Some("P1"));
        assert!(pm.missing_sections.is_empty(), "{:?}", pm.missing_sections);
        assert_eq!(pm.action_items.len(), 2);
        assert!(pm.action_items[0].done);
        assert_eq!(pm.action_items[1].owner.as_deref(), Some("Lee"));
        assert_eq!(pm.action_items[1].due, NaiveDate::from_ymd_opt(2026, 4, 15));
        assert!(!pm.action_items[1].done);
    }

    #[test]
    fn a_free_form_note_is_missing_its_sections() {
        let pm = parse("notes.md", "# Outage notes\nIt broke, we fixed it.\n");
        assert_eq!(pm.missing_sections.len(), REQUIRED_SECTIONS.len());
        assert_eq!(pm.title, None);
    }
}
