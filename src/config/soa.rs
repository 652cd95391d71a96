//! `[soa] file`: the Statement of Applicability (ISO/IEC 27001:2022 clause 6.1.3 d), one row
//! per Annex A control: whether it applies and why, who owns it, how far it is implemented, and
//! which of annexa's collectors evidence it.
//!
//! The file is CSV with the header `control,applicable,justification,owner,implementation,evidence`:
//! `applicable` is `yes`, `no`, or empty (not yet assessed: applicable until it is);
//! `justification` is required for `no`; `implementation` is
//! `implemented`, `partial` or `planned` (or empty); `evidence` names configured collectors,
//! separated by `;`. A control without a row is applicable and "not yet assessed".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// The columns, in the order `annexa init` writes them.
use annexa_reports::SOA_COLUMNS as COLUMNS;

use crate::base::closed_set;
use crate::controls::AnnexControl;

closed_set! {
    /// How far an applicable control is implemented.
    pub enum Implementation {
        Implemented = "implemented",
        Partial = "partial",
        Planned = "planned",
    }
}

/// One row: one control's applicability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaRow {
    pub control: String,
    /// `None`: not yet assessed (applicable until it is).
    pub applicable: Option<bool>,
    pub justification: Option<String>,
    pub owner: Option<String>,
    pub implementation: Option<Implementation>,
    /// Configured collectors named as this control's evidence.
    pub evidence: Vec<String>,
}

/// The Statement of Applicability as read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub file: PathBuf,
    pub rows: Vec<SoaRow>,
}

impl Soa {
    pub fn row(&self, control: &str) -> Option<&SoaRow> {
        self.rows.iter().find(|r| r.control == control)
    }

    /// The controls it excludes.
    pub fn excluded(&self) -> impl Iterator<Item = &SoaRow> {
        self.rows.iter().filter(|r| r.applicable == Some(false))
    }
}

#[derive(Debug, serde::Deserialize)]
struct RawRow {
    control: String,
    applicable: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    implementation: String,
    #[serde(default)]
    evidence: String,
}

/// Reads and checks the SoA at `file`: every problem is pushed (an unknown control, a bad
/// `applicable` or `implementation`, an exclusion without a justification, a row twice, an
/// unknown collector); an excluded control a collector evidences is a warning.
pub(super) fn load(
    file: &Path,
    known: &BTreeSet<String>,
    collectors: &BTreeSet<String>,
    evidenced: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Soa> {
    let name = file.display();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!(
                "soa.file {name}: {e}; write one with `annexa init` (all 93 controls) or fix the path"
            ));
            return None;
        }
    };
    let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    match reader.headers() {
        // More columns after these are read past (a report's soa.csv adds theme, title, status).
        Ok(h) if h.iter().take(COLUMNS.len()).eq(COLUMNS.iter().copied()) => {}
        Ok(h) => {
            problems.push(format!(
                "{name}: the header is `{}`; it must start `{}`",
                h.iter().collect::<Vec<_>>().join(","),
                COLUMNS.join(",")
            ));
            return None;
        }
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            return None;
        }
    }
    let mut rows: Vec<SoaRow> = Vec::new();
    for (i, raw) in reader.deserialize::<RawRow>().enumerate() {
        let at = format!("{name} line {}", i + 2);
        let raw = match raw {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let control = raw.control.trim().to_string();
        if !known.contains(&control) {
            problems.push(format!(
                "{at}: `{control}` is not an ISO/IEC 27001:2022 Annex A control (A.5.1–A.5.37, A.6.1–A.6.8, A.7.1–A.7.14, A.8.1–A.8.34)"
            ));
            continue;
        }
        if let Some(first) = rows.iter().position(|r| r.control == control) {
            problems.push(format!(
                "{at}: {control} has a row already (line {}); keep one",
                first + 2
            ));
            continue;
        }
        let applicable = match raw.applicable.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            "" => None,
            other => {
                problems.push(format!(
                    "{at}: applicable `{other}` for {control}: write yes or no (or leave it empty: not yet assessed)"
                ));
                continue;
            }
        };
        let text = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let justification = text(raw.justification);
        if applicable == Some(false) && justification.is_none() {
            problems.push(format!(
                "{at}: {control} is excluded without a justification; clause 6.1.3 d asks for one"
            ));
        }
        let implementation = match text(raw.implementation) {
            None => None,
            Some(s) => match s.parse::<Implementation>() {
                Ok(i) => Some(i),
                Err(e) => {
                    problems.push(format!("{at}: {control}: {e}"));
                    None
                }
            },
        };
        let evidence: Vec<String> = raw
            .evidence
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        for name in evidence.iter().filter(|n| !collectors.contains(*n)) {
            problems.push(format!(
                "{at}: {control} names `{name}` as evidence, and no collector has that name"
            ));
        }
        if applicable == Some(false)
            && let Some(by) = evidenced.get(&control)
        {
            warnings.push(format!(
                "{control} is excluded in {}, yet collector(s) {} evidence it: its evidence is kept but not judged",
                file.display(),
                by.join(", ")
            ));
        }
        rows.push(SoaRow {
            control,
            applicable,
            justification,
            owner: text(raw.owner),
            implementation,
            evidence,
        });
    }
    Some(Soa {
        file: file.to_path_buf(),
        rows,
    })
}

/// A starter SoA: a row per Annex A control, none assessed yet (`applicable` left empty for the
/// security lead to decide).
pub fn starter(annex: &[AnnexControl]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(COLUMNS).expect("writes to memory");
    for c in annex {
        out.write_record([c.id.as_str(), "", "", "", "", ""])
            .expect("writes to memory");
    }
    String::from_utf8(out.into_inner().expect("writes to memory")).expect("UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Option<Soa>, Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("soa.csv");
        std::fs::write(&file, text).unwrap();
        let collectors: BTreeSet<String> = ["backups".to_string()].into();
        let evidenced: BTreeMap<String, Vec<String>> =
            [("A.8.13".to_string(), vec!["backups".to_string()])].into();
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let known = crate::controls::annex_a()
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let soa = load(
            &file,
            &known,
            &collectors,
            &evidenced,
            &mut problems,
            &mut warnings,
        );
        (soa, problems, warnings)
    }

    #[test]
    fn the_starter_lists_all_93_controls_and_reads_back_clean() {
        let (soa, problems, warnings) = check(&starter(crate::controls::annex_a()));
        assert!(problems.is_empty() && warnings.is_empty(), "{problems:?}");
        let soa = soa.unwrap();
        assert_eq!(soa.rows.len(), 93);
        assert!(soa.rows.iter().all(|r| r.applicable.is_none()));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let (_, problems, warnings) = check(
            "control,applicable,justification,owner,implementation,evidence\n\
             A.5.1,yes,,CISO,implemented,\n\
             A.9.1,yes,,,,\n\
             A.7.4,no,,,,\n\
             A.5.1,yes,,,,\n\
             A.6.3,maybe,,,,\n\
             A.6.7,yes,,,done,\n\
             A.8.8,yes,,,partial,github\n\
             A.8.13,no,Backups are run by our hosting provider under its own certification,,,\n",
        );
        let all = problems.join("\n");
        for expected in [
            "line 3: `A.9.1` is not an ISO/IEC 27001:2022 Annex A control",
            "line 4: A.7.4 is excluded without a justification",
            "line 5: A.5.1 has a row already (line 2)",
            "line 6: applicable `maybe` for A.6.3: write yes or no",
            "line 7: A.6.7:",
            "line 8: A.8.8 names `github` as evidence, and no collector has that name",
        ] {
            assert!(all.contains(expected), "{expected:?} not in\n{all}");
        }
        assert_eq!(problems.len(), 6, "{all}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("A.8.13 is excluded"), "{warnings:?}");
        // A report's soa.csv reads back as a Statement of Applicability.
        let (soa, problems, _) = check(
            "control,applicable,justification,owner,implementation,evidence,theme,title,status\n\
             A.5.1,yes,,CISO,implemented,,organizational,Policies for information security,not collected\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(soa.unwrap().rows[0].owner.as_deref(), Some("CISO"));
        let (_, problems, _) = check("id,applicable\nA.5.1,yes\n");
        assert!(
            problems[0].contains("the header is `id,applicable`"),
            "{problems:?}"
        );
    }
}
