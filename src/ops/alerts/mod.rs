//! Gap alerts. A gap is a control that is not satisfied, or a `fail` finding; its dedup key is
//! (control, code, subject). Each evaluation compares the gaps of the current status with the
//! stored ones ([`plan`], pure) and writes the new gap states and the alerts they cause to the
//! outbox in one transaction ([`evaluate`]). [`deliver_due`] sends what the outbox holds.
//!
//! A gap that appears sends one OPEN; while it lasts, a REMINDER every `remind_every`; once it
//! has stayed gone for `resolve_after`, one RESOLVED. A gap that comes back within
//! `resolve_after` is the same gap (no new OPEN, no RESOLVED): flapping does not spam.

mod sinks;

use std::collections::BTreeMap;

use annexa_collectors::{FindingCode, Level};
use annexa_reports::{ControlStatus, StatusDocument};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::Annexa;
use crate::db::{GapRow, NewAlert};

pub use sinks::{DeliveryReport, deliver_due, http_client, sign};

/// One gap, as the security lead reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub control: String,
    pub control_title: String,
    pub status: String,
    pub code: String,
    pub level: String,
    pub subject: String,
    pub message: String,
    pub collector: String,
    /// What evidence is missing, or which evidence shows the failure.
    pub evidence: String,
    /// What to do about it.
    pub next_step: String,
}

impl Gap {
    pub fn dedup_key(&self) -> String {
        format!("{}|{}|{}", self.control, self.code, self.subject)
    }
}

/// What happened to a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Open,
    Reminder,
    Resolved,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Open => "open",
            Event::Reminder => "reminder",
            Event::Resolved => "resolved",
        }
    }
}

/// The message one alert carries, stored in the outbox as JSON (no secrets in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub event: String,
    pub dedup_key: String,
    pub organization: String,
    /// When the gap began.
    pub since: DateTime<Utc>,
    /// When it was seen gone, for RESOLVED.
    pub resolved_at: Option<DateTime<Utc>>,
    pub gap: Gap,
    pub title: String,
    pub text: String,
}

/// The gaps in a status document.
pub fn gaps_of(doc: &StatusDocument) -> Vec<Gap> {
    let mut gaps: BTreeMap<String, Gap> = BTreeMap::new();
    for control in &doc.controls {
        let failing: Vec<_> = control
            .findings
            .iter()
            .filter(|f| f.level == Level::Fail)
            .collect();
        if control.status == ControlStatus::Satisfied && failing.is_empty() {
            continue;
        }
        let newest = control.evidence.iter().max_by_key(|e| e.collected_at);
        let evidence_of = |code: Option<FindingCode>| match (code, newest) {
            (
                Some(
                    FindingCode::EvidenceMissing
                    | FindingCode::EvidenceStale
                    | FindingCode::CollectorFailed
                    | FindingCode::CollectorUnauthorized,
                ),
                _,
            )
            | (_, None) => format!("missing: no fresh evidence for {}", control.id),
            (_, Some(e)) => format!(
                "run {} of `{}` collected {} shows it (object {})",
                e.run_id,
                e.collector,
                e.collected_at.format("%Y-%m-%d %H:%M UTC"),
                e.object_key
            ),
        };
        let mut add = |gap: Gap| {
            gaps.entry(gap.dedup_key()).or_insert(gap);
        };
        for f in &failing {
            add(Gap {
                control: control.id.clone(),
                control_title: control.title.clone(),
                status: control.status.as_str().to_string(),
                code: f.code.as_str().to_string(),
                level: f.level.as_str().to_string(),
                subject: f.subject.clone(),
                message: f.message.clone(),
                collector: f.collector.clone(),
                evidence: evidence_of(Some(f.code)),
                next_step: next_step(f.code, &f.collector).to_string(),
            });
        }
        if failing.is_empty() {
            // Not satisfied on warnings alone (e.g. evidence-stale configured as `warn`).
            let why: Vec<&str> = control
                .findings
                .iter()
                .map(|f| f.message.as_str())
                .collect();
            add(Gap {
                control: control.id.clone(),
                control_title: control.title.clone(),
                status: control.status.as_str().to_string(),
                code: control.status.as_str().to_string(),
                level: "fail".into(),
                subject: control.id.clone(),
                message: if why.is_empty() {
                    format!("{} is {}", control.id, control.status.as_str())
                } else {
                    why.join("; ")
                },
                collector: String::new(),
                evidence: evidence_of(None),
                next_step: "run `annexa status` for the control's evidence and findings".into(),
            });
        }
    }
    gaps.into_values().collect()
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

/// Reminder and resolution cadence.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub remind_every: chrono::Duration,
    pub resolve_after: chrono::Duration,
}

/// The gaps' new states and the events to send.
#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<GapRow>,
    pub events: Vec<(Event, GapRow)>,
}

/// Compares the current gaps with the unresolved stored ones. Pure.
pub fn plan(current: &[Gap], stored: &[GapRow], now: DateTime<Utc>, policy: Policy) -> Plan {
    let mut out = Plan::default();
    let stored: BTreeMap<&str, &GapRow> =
        stored.iter().map(|g| (g.dedup_key.as_str(), g)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for gap in current {
        let key = gap.dedup_key();
        seen.insert(key.clone());
        let detail = serde_json::to_string(gap).expect("a gap serializes");
        match stored.get(key.as_str()) {
            None => {
                let row = GapRow {
                    dedup_key: key,
                    control: gap.control.clone(),
                    code: gap.code.clone(),
                    subject: gap.subject.clone(),
                    state: "open".into(),
                    opened_at: now,
                    last_seen_at: now,
                    cleared_at: None,
                    notified_at: now,
                    detail,
                };
                out.events.push((Event::Open, row.clone()));
                out.rows.push(row);
            }
            Some(old) => {
                let mut row = (*old).clone();
                row.state = "open".into();
                row.last_seen_at = now;
                row.cleared_at = None;
                row.detail = detail;
                if now - row.notified_at >= policy.remind_every {
                    row.notified_at = now;
                    out.events.push((Event::Reminder, row.clone()));
                }
                out.rows.push(row);
            }
        }
    }
    for (key, old) in stored {
        if seen.contains(key) {
            continue;
        }
        let mut row = old.clone();
        let cleared = *row.cleared_at.get_or_insert(now);
        if now - cleared >= policy.resolve_after {
            row.state = "resolved".into();
            out.events.push((Event::Resolved, row.clone()));
            out.rows.push(row);
        } else if old.state != "clearing" {
            row.state = "clearing".into();
            out.rows.push(row);
        }
    }
    out
}

/// The message for one event.
pub fn message(event: Event, row: &GapRow, organization: &str, now: DateTime<Utc>) -> AlertMessage {
    let gap: Gap = serde_json::from_str(&row.detail).expect("gaps are stored by `plan`");
    let since = row.opened_at;
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let lasted = annexa_collectors::human_duration((now - since).num_seconds());
    let what = format!(
        "{} ({}) on {}: {}",
        gap.code, gap.level, gap.subject, gap.message
    );
    let (title, text) = match event {
        Event::Open | Event::Reminder => {
            let head = if event == Event::Open {
                "OPEN".to_string()
            } else {
                format!("STILL OPEN after {lasted}")
            };
            (
                format!(
                    "[annexa] {head}: {} {} is {}",
                    gap.control,
                    gap.control_title,
                    gap.status.replace('_', " ")
                ),
                format!(
                    "What is wrong: {what}\nControl: {} {} (status {})\nSince: {}\nEvidence: {}\nNext step: {}\nOrganization: {organization} · gap {}",
                    gap.control,
                    gap.control_title,
                    gap.status,
                    when(since),
                    gap.evidence,
                    gap.next_step,
                    row.dedup_key
                ),
            )
        }
        Event::Resolved => (
            format!(
                "[annexa] RESOLVED: {} {} — {} on {}",
                gap.control, gap.control_title, gap.code, gap.subject
            ),
            format!(
                "Resolved: {what}\nControl: {} {}\nOpen since {}, gone since {} (open for {}).\nOrganization: {organization} · gap {}",
                gap.control,
                gap.control_title,
                when(since),
                when(row.cleared_at.unwrap_or(now)),
                annexa_collectors::human_duration(
                    (row.cleared_at.unwrap_or(now) - since).num_seconds()
                ),
                row.dedup_key
            ),
        ),
    };
    AlertMessage {
        event: event.as_str().to_string(),
        dedup_key: row.dedup_key.clone(),
        organization: organization.to_string(),
        since,
        resolved_at: (event == Event::Resolved).then(|| row.cleared_at.unwrap_or(now)),
        gap,
        title,
        text,
    }
}

/// What one evaluation changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub open_gaps: usize,
    pub queued: usize,
}

/// Evaluates the controls now, and writes the gaps' states and their alerts (one per sink) in
/// one transaction. Safe to repeat: the stored gaps are what makes it idempotent.
pub async fn evaluate(app: &Annexa, now: DateTime<Utc>) -> anyhow::Result<Evaluation> {
    let doc = crate::views::status::status(app, now).await?;
    evaluate_doc(app, &doc, now).await
}

/// [`evaluate`] over a status document already computed at `now`.
pub async fn evaluate_doc(
    app: &Annexa,
    doc: &StatusDocument,
    now: DateTime<Utc>,
) -> anyhow::Result<Evaluation> {
    let current = gaps_of(doc);
    let stored = app.db.unresolved_gaps().await?;
    let policy = Policy {
        remind_every: chrono::Duration::from_std(app.config.alerts.remind_every)?,
        resolve_after: chrono::Duration::from_std(app.config.alerts.resolve_after)?,
    };
    let plan = plan(&current, &stored, now, policy);
    let mut alerts = Vec::new();
    for (event, row) in &plan.events {
        let body = serde_json::to_string(&message(*event, row, &app.config.organization, now))?;
        for sink in &app.config.alerts.sinks {
            alerts.push(NewAlert {
                dedup_key: row.dedup_key.clone(),
                event: event.as_str().to_string(),
                sink: sink.name.clone(),
                body: body.clone(),
            });
        }
    }
    app.db.record_gaps(&plan.rows, &alerts, now).await?;
    Ok(Evaluation {
        open_gaps: current.len(),
        queued: alerts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn gap(subject: &str) -> Gap {
        Gap {
            control: "A.5.26".into(),
            control_title: "Response to information security incidents".into(),
            status: "not_satisfied".into(),
            code: "incident-resolution-late".into(),
            level: "fail".into(),
            subject: subject.into(),
            message: format!("{subject} was resolved 30h after detection (target 24h)"),
            collector: "incidents".into(),
            evidence: "run r1 shows it".into(),
            next_step: "update the incident record".into(),
        }
    }

    /// Applies plans in sequence as the database would, collecting the events.
    fn replay(steps: &[(i64, &[Gap])], policy: Policy) -> Vec<(i64, Event, String)> {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut stored: BTreeMap<String, GapRow> = BTreeMap::new();
        let mut events = Vec::new();
        for (minutes, current) in steps {
            let now = t0 + chrono::Duration::minutes(*minutes);
            let unresolved: Vec<GapRow> = stored
                .values()
                .filter(|g| g.state != "resolved")
                .cloned()
                .collect();
            let p = plan(current, &unresolved, now, policy);
            for (e, row) in p.events {
                events.push((*minutes, e, row.subject.clone()));
            }
            for row in p.rows {
                stored.insert(row.dedup_key.clone(), row);
            }
        }
        events
    }

    #[test]
    fn a_gap_opens_once_reminds_on_cadence_and_resolves_once() {
        let policy = Policy {
            remind_every: chrono::Duration::hours(24),
            resolve_after: chrono::Duration::minutes(60),
        };
        let g = [gap("INC-7")];
        let steps: Vec<(i64, &[Gap])> = vec![
            (0, &g),
            (60, &g),
            (23 * 60, &g),
            (24 * 60, &g),  // reminder
            (25 * 60, &[]), // clearing
            (25 * 60 + 30, &[]),
            (26 * 60, &[]), // resolved
            (27 * 60, &[]),
        ];
        let events = replay(&steps, policy);
        assert_eq!(
            events,
            vec![
                (0, Event::Open, "INC-7".to_string()),
                (24 * 60, Event::Reminder, "INC-7".to_string()),
                (26 * 60, Event::Resolved, "INC-7".to_string()),
            ]
        );
    }

    #[test]
    fn flapping_within_resolve_after_sends_nothing_more() {
        let policy = Policy {
            remind_every: chrono::Duration::hours(24),
            resolve_after: chrono::Duration::minutes(60),
        };
        let g = [gap("INC-7")];
        let mut steps: Vec<(i64, &[Gap])> = Vec::new();
        for i in 0..20 {
            steps.push((i * 10, if i % 2 == 0 { &g } else { &[] }));
        }
        let events = replay(&steps, policy);
        assert_eq!(events, vec![(0, Event::Open, "INC-7".to_string())]);
        // Gone for good: one RESOLVED an hour later, and a new episode opens anew.
        steps.push((300, &[]));
        steps.push((400, &g));
        let events = replay(&steps, policy);
        assert_eq!(
            events.iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![Event::Open, Event::Resolved, Event::Open]
        );
    }

    #[test]
    fn messages_say_what_which_control_since_when_and_what_to_do() {
        let policy = Policy {
            remind_every: chrono::Duration::hours(24),
            resolve_after: chrono::Duration::zero(),
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let p = plan(&[gap("INC-7")], &[], now, policy);
        let m = message(Event::Open, &p.events[0].1, "Example Ltd", now);
        assert_eq!(
            m.title,
            "[annexa] OPEN: A.5.26 Response to information security incidents is not satisfied"
        );
        for part in [
            "What is wrong: incident-resolution-late (fail) on INC-7: INC-7 was resolved 30h",
            "Since: 2026-11-22 10:00 UTC",
            "Evidence: run r1 shows it",
            "Next step: update the incident record",
        ] {
            assert!(m.text.contains(part), "{part} not in {}", m.text);
        }
        let later = now + chrono::Duration::hours(3);
        let gone = plan(&[], &p.rows, later, policy);
        let r = message(Event::Resolved, &gone.events[0].1, "Example Ltd", later);
        assert!(r.text.contains("open for 3 h"), "{}", r.text);
    }
}
