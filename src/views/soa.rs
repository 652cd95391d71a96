//! The Statement of Applicability joined with the status at a time (`annexa soa`, reports).

use annexa_reports::{SoaEntry, StatusDocument};

use crate::config::Config;

/// One entry per Annex A control (and per control the config adds), in the standard's order:
/// the SoA's row, or "not yet assessed"; and the status of `doc` for the controls annexa judges.
pub fn entries(config: &Config, doc: &StatusDocument) -> Vec<SoaEntry> {
    let mut listed: Vec<(String, String, String)> = crate::controls::annex_a()
        .iter()
        .map(|c| (c.id.clone(), c.theme.as_str().to_string(), c.title.clone()))
        .collect();
    for c in config.catalog.controls() {
        if !listed.iter().any(|(id, ..)| *id == c.id) {
            listed.push((c.id.clone(), String::new(), c.title.clone()));
        }
    }
    listed
        .into_iter()
        .map(|(id, theme, title)| {
            let row = config.soa.as_ref().and_then(|s| s.row(&id));
            let judged = doc.controls.iter().find(|c| c.id == id);
            // The collectors the SoA names, and those whose evidence the status counts for it.
            let mut evidence: Vec<String> = row.map(|r| r.evidence.clone()).unwrap_or_default();
            for e in judged.iter().flat_map(|c| &c.evidence) {
                if !evidence.contains(&e.collector) {
                    evidence.push(e.collector.clone());
                }
            }
            let status = match (row, judged) {
                (Some(r), _) if r.applicable == Some(false) => "excluded".to_string(),
                (_, Some(c)) => c.status.as_str().to_string(),
                (_, None) => "not collected".to_string(),
            };
            SoaEntry {
                applicable: match row.and_then(|r| r.applicable) {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "not yet assessed".into(),
                },
                justification: row.and_then(|r| r.justification.clone()),
                owner: row.and_then(|r| r.owner.clone()),
                implementation: row
                    .and_then(|r| r.implementation)
                    .map(|i| i.as_str().to_string()),
                evidence,
                status,
                id,
                theme,
                title,
            }
        })
        .collect()
}
