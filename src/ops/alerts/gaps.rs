//! What the security lead is told about: gaps (findings grouped into problems, each naming
//! its controls and its own evidence) and warnings of what falls due, read from a status
//! document. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use annexa_collectors::{FindingCode, Level};
use annexa_reports::{ControlReport, ControlStatus, StatusDocument, Upcoming};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::base::paths::relative_to;

/// A control a gap bears on, and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapControl {
    pub id: String,
    pub title: String,
    pub status: String,
}

/// The stored evidence a gap or warning rests on: the run of the finding's own collector and
/// the facts object its check judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub collector: String,
    pub run_id: String,
    pub collected_at: DateTime<Utc>,
    pub object_key: String,
    pub sha256: String,
}

impl Pointer {
    /// The object key names its SHA-256 (`objects/sha256/…`): it is not repeated.
    pub(super) fn text(&self) -> String {
        format!(
            "run {} of `{}` collected {}, object {}",
            self.run_id,
            self.collector,
            when(self.collected_at),
            self.object_key
        )
    }
}

/// One gap, as the security lead reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Every control the problem bears on, by id.
    pub controls: Vec<GapControl>,
    pub code: String,
    pub level: String,
    /// What the problem is about: a job, a document, an incident, a collector. Names are
    /// relative to the configuration.
    pub subject: String,
    /// The first occurrence's message.
    pub message: String,
    /// The occurrences grouped into this gap (a job's slots), oldest first; empty when the
    /// finding is one of a kind.
    pub occurrences: Vec<String>,
    pub collector: String,
    /// The evidence that shows it; None when the gap is that evidence is missing.
    pub evidence: Option<Pointer>,
    /// What to do about it.
    pub next_step: String,
    /// Set on the RESOLVED of a gap that went because a risk owner accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

impl Gap {
    pub fn dedup_key(&self) -> String {
        gap_key(&self.code, &self.subject)
    }

    /// How many occurrences it groups (one at least).
    pub fn count(&self) -> usize {
        self.occurrences.len().max(1)
    }

    pub(super) fn control_ids(&self) -> String {
        self.controls
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "heartbeat-missed on db-backup (24 slots; A.5.36, A.8.16)".
    pub(super) fn headline(&self) -> String {
        let count = if self.occurrences.len() > 1 {
            format!(
                "{} {}; ",
                self.occurrences.len(),
                occurrence_noun(&self.code)
            )
        } else {
            String::new()
        };
        format!(
            "{} on {} ({count}{})",
            self.code,
            self.subject,
            self.control_ids()
        )
    }

    pub(super) fn what(&self) -> String {
        match (self.occurrences.first(), self.occurrences.last()) {
            (Some(first), Some(last)) if self.occurrences.len() > 1 => format!(
                "{} {} from {first} to {last}; the first: {}",
                self.occurrences.len(),
                occurrence_noun(&self.code),
                self.message
            ),
            _ => self.message.clone(),
        }
    }

    /// The occurrences, at most `max` of them named.
    pub(super) fn occurrence_line(&self, max: usize) -> Option<String> {
        if self.occurrences.len() < 2 {
            return None;
        }
        let shown: Vec<&str> = self
            .occurrences
            .iter()
            .take(max)
            .map(String::as_str)
            .collect();
        let more = self.occurrences.len().saturating_sub(max);
        Some(format!(
            "{}: {}{}",
            capitalized(occurrence_noun(&self.code)),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more (all in the webhook JSON and `annexa status --json`)")
            } else {
                String::new()
            }
        ))
    }

    pub(super) fn controls_line(&self) -> String {
        self.controls
            .iter()
            .map(|c| format!("{} {} ({})", c.id, c.title, c.status.replace('_', " ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn evidence_text(&self) -> String {
        match &self.evidence {
            Some(p) => p.text(),
            None => format!("missing: no fresh evidence for {}", self.control_ids()),
        }
    }
}

/// A gap's id: its code and subject.
fn gap_key(code: &str, subject: &str) -> String {
    format!("{code}|{subject}")
}

fn occurrence_noun(code: &str) -> &'static str {
    match code {
        "heartbeat-missed" | "heartbeat-failed" => "slots",
        _ => "occurrences",
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Something due soon, before it becomes a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The finding it becomes once late.
    pub code: String,
    pub subject: String,
    pub due: DateTime<Utc>,
    pub what: String,
    pub controls: Vec<String>,
    pub evidence: Option<Pointer>,
    pub next_step: String,
}

impl Warning {
    /// Once per due date.
    pub fn key(&self) -> String {
        format!(
            "warning|{}|{}|{}",
            self.code,
            self.subject,
            annexa_reports::time(self.due)
        )
    }
}

/// The gaps of a status document, and the problems a risk owner accepted (key → by whom,
/// until when), whose gaps resolve at once.
#[derive(Debug, Default)]
pub struct Gaps {
    pub open: Vec<Gap>,
    pub accepted: BTreeMap<String, String>,
}

/// The newest evidence of `collector` among a control's: its facts object, the last stored.
fn pointer(control: &ControlReport, collector: &str) -> Option<Pointer> {
    let newest = control
        .evidence
        .iter()
        .filter(|e| e.collector == collector)
        .map(|e| e.collected_at)
        .max()?;
    control
        .evidence
        .iter()
        .rfind(|e| e.collector == collector && e.collected_at == newest)
        .map(|e| Pointer {
            collector: e.collector.clone(),
            run_id: e.run_id.clone(),
            collected_at: e.collected_at,
            object_key: e.object_key.clone(),
            sha256: e.sha256.clone(),
        })
}

/// The gaps in a status document: findings grouped by (code, problem subject), names made
/// relative to `base_dir`.
pub fn gaps_of(doc: &StatusDocument, base_dir: &Path) -> Gaps {
    let rel = |s: &str| relative_to(s, base_dir);
    let mut out = Gaps::default();
    let mut gaps: BTreeMap<String, Gap> = BTreeMap::new();
    let mut said: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |control: &ControlReport, gap: Gap, occurrence: Option<String>| {
        let key = gap.dedup_key();
        let message = gap.message.clone();
        let entry = gaps.entry(key.clone()).or_insert(gap);
        // Two findings of one code on one subject that are not occurrences (a control missing
        // two kinds of evidence) say both.
        let seen = said.entry(key).or_default();
        if occurrence.is_none() && seen.insert(message.clone()) && seen.len() > 1 {
            entry.message = format!("{}; {message}", entry.message);
        }
        if !entry.controls.iter().any(|c| c.id == control.id) {
            entry.controls.push(GapControl {
                id: control.id.clone(),
                title: control.title.clone(),
                status: control.status.as_str().to_string(),
            });
        }
        if let Some(o) = occurrence
            && !entry.occurrences.contains(&o)
        {
            entry.occurrences.push(o);
        }
    };
    for control in &doc.controls {
        let mut failing = false;
        for f in &control.findings {
            let (subject, occurrence) = annexa_collectors::problem_of(f.code, &f.subject);
            if let Some(a) = &f.accepted {
                out.accepted.insert(
                    gap_key(f.code.as_str(), &rel(subject)),
                    format!(
                        "accepted as an exception by {} until {}: {}",
                        a.by,
                        when(a.until),
                        a.reason
                    ),
                );
            }
            if f.level != Level::Fail {
                continue;
            }
            failing = true;
            let missing = matches!(
                f.code,
                FindingCode::EvidenceMissing
                    | FindingCode::EvidenceStale
                    | FindingCode::CollectorFailed
                    | FindingCode::CollectorUnauthorized
            );
            let gap = Gap {
                controls: Vec::new(),
                code: f.code.as_str().to_string(),
                level: f.level.as_str().to_string(),
                subject: rel(subject),
                message: rel(&f.message),
                occurrences: Vec::new(),
                collector: f.collector.clone(),
                evidence: if missing {
                    None
                } else {
                    pointer(control, &f.collector)
                },
                next_step: next_step(f.code, &f.collector),
                accepted: None,
            };
            add(control, gap, occurrence.map(String::from));
        }
        if !failing && control.status != ControlStatus::Satisfied {
            // Not satisfied on warnings alone (e.g. evidence-stale configured as `warn`).
            let why: Vec<String> = control.findings.iter().map(|f| rel(&f.message)).collect();
            let gap = Gap {
                controls: Vec::new(),
                code: control.status.as_str().to_string(),
                level: "fail".into(),
                subject: control.id.clone(),
                message: if why.is_empty() {
                    format!("{} is {}", control.id, control.status.as_str())
                } else {
                    why.join("; ")
                },
                occurrences: Vec::new(),
                collector: String::new(),
                evidence: None,
                next_step: "run `annexa status` for the control's evidence and findings".into(),
                accepted: None,
            };
            add(control, gap, None);
        }
    }
    out.open = gaps
        .into_values()
        .map(|mut g| {
            g.occurrences.sort();
            g
        })
        .collect();
    out
}

/// The warnings of a status document: what falls due within `warn_before` of its time.
pub fn warnings_of(
    doc: &StatusDocument,
    base_dir: &Path,
    warn_before: chrono::Duration,
) -> Vec<Warning> {
    let rel = |s: &str| relative_to(s, base_dir);
    doc.upcoming
        .iter()
        .filter(|u| u.due > doc.as_of && u.due - doc.as_of <= warn_before)
        .map(|u: &Upcoming| Warning {
            code: u.code.as_str().to_string(),
            subject: rel(&u.subject),
            due: u.due,
            what: rel(&u.what),
            controls: u.controls.clone(),
            evidence: doc
                .controls
                .iter()
                .filter(|c| u.controls.contains(&c.id))
                .find_map(|c| pointer(c, &u.collector)),
            next_step: next_step(u.code, &u.collector),
        })
        .collect()
}

/// What to do about a finding, in one line.
fn next_step(code: FindingCode, collector: &str) -> String {
    use FindingCode as C;
    let collect = if collector.is_empty() {
        "configure a collector for it".to_string()
    } else {
        format!("then run `annexa collect {collector}`")
    };
    match code {
        C::EvidenceMissing => format!("evidence was never collected: {collect}"),
        C::EvidenceStale => {
            format!("the collector has not succeeded recently: check the worker's log, {collect}")
        }
        C::CollectorFailed => format!("fix what the error names, {collect}"),
        C::CollectorUnauthorized => format!("renew the collector's token or credentials, {collect}"),
        C::HeartbeatMissed => {
            "the job did not report: check its cron or systemd timer and that it calls `annexa ping`".into()
        }
        C::HeartbeatFailed => "the job reported a failure: read its log and rerun it".into(),
        C::BackupMissing | C::BackupStale | C::BackupSizeAnomaly => {
            "check the backup job and its latest artefact".into()
        }
        C::RestoreFailed | C::RestoreVerificationFailed | C::RestoreDrillOverdue => {
            "run the restore drill and record its result".into()
        }
        C::VulnerabilityAlertOverdue | C::SecretAlertOpen => {
            "fix or dismiss the GitHub alert (and rotate a leaked secret)".into()
        }
        C::PolicyReviewOverdue => "review the policy document and update its review date".into(),
        C::IntegrityViolation => {
            "run `annexa verify` and investigate; do not modify the store or the database".into()
        }
        C::ScrubOverdue => {
            "run `annexa verify --rolling` daily (the worker does), or `annexa verify` once".into()
        }
        C::IncidentUnclassified => "give the incident a severity from the policy's classes".into(),
        C::IncidentTriageLate | C::IncidentResolutionLate | C::IncidentOpenOverdue => {
            "work the incident to its target and record its timestamps in the incident log".into()
        }
        C::PostmortemMissing | C::PostmortemLate => {
            "write the post-mortem and link it from the incident record".into()
        }
        C::BreachNotificationLate => {
            "notify as the policy requires and record when it was done".into()
        }
        C::AlertDismissalUnexplained => "record why the GitHub alert was dismissed".into(),
        C::PolicyMetadataMissing => {
            "add the missing header field (owner, version, review cycle, review date)".into()
        }
        _ => "run `annexa status` for the control's evidence and findings".into(),
    }
}
