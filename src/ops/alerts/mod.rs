//! Gap alerts. A gap is a problem, not a symptom: one per (finding code, subject), naming every
//! control it bears on, with the occurrences it groups (a job's missed slots). Each evaluation
//! compares the gaps of the current status with the stored ones ([`plan`], pure) and writes the
//! new gap states, the warnings sent and the alerts they cause to the outbox in one transaction
//! ([`evaluate`]). [`deliver_due`] sends what the outbox holds.
//!
//! A gap that appears sends one OPEN; once its occurrences have grown by `update_factor`, one
//! UPDATE; while it lasts, a REMINDER every `remind_every`; once it has stayed gone for
//! `resolve_after` (or at once when a risk owner accepted it), one RESOLVED. A gap that comes
//! back within `resolve_after` is the same gap: flapping does not spam. Something due within
//! `warn_before` sends one WARNING per due date. A sink in `digest` mode gets one message per
//! evaluation that has news instead.

mod digest;
mod gaps;
mod sinks;

use std::collections::{BTreeMap, BTreeSet};

use annexa_reports::StatusDocument;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::Annexa;
use crate::config::Mode;
use crate::db::{EvaluationWrite, GapRow, NewAlert};

use gaps::when;
pub use gaps::{Gap, GapControl, Gaps, Pointer, Warning, gaps_of, warnings_of};
pub use sinks::{DeliveryReport, deliver_due, http_client, probe as probe_sink, sign};

/// What happened to a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Open,
    Update,
    Reminder,
    Resolved,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Open => "open",
            Event::Update => "update",
            Event::Reminder => "reminder",
            Event::Resolved => "resolved",
        }
    }
}

/// The message one alert carries, stored in the outbox as JSON (no secrets in it). The
/// webhook sink posts it as it is; the others send its title and text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// `open`, `update`, `reminder`, `resolved`, `warning` or `digest`.
    pub event: String,
    /// The gap's id (`code|subject`), the warning's, or `digest`.
    pub dedup_key: String,
    pub organization: String,
    pub title: String,
    pub text: String,
    /// When the gap began, and when it was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// When it was seen gone, for RESOLVED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// How many occurrences the gap groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Warning>,
    /// A digest's entries, each a message of its own kind (with no text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<AlertMessage>,
    /// A digest's count of gaps still open with nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still_open: Option<usize>,
}

/// Reminder, update and resolution cadence.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub remind_every: chrono::Duration,
    pub resolve_after: chrono::Duration,
    /// See `[alerts] update_factor`; zero: never.
    pub update_factor: f64,
    /// The least time between a gap's last message and an UPDATE.
    pub update_every: chrono::Duration,
}

/// The gaps' new states and the events to send.
#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<GapRow>,
    pub events: Vec<(Event, GapRow)>,
}

fn row_of(gap: &Gap, now: DateTime<Utc>) -> GapRow {
    GapRow {
        dedup_key: gap.dedup_key(),
        control: gap
            .controls
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        code: gap.code.clone(),
        subject: gap.subject.clone(),
        state: "open".into(),
        opened_at: now,
        last_seen_at: now,
        cleared_at: None,
        notified_at: now,
        notified_count: gap.count() as i64,
        detail: serde_json::to_string(gap).expect("a gap serializes"),
    }
}

/// Compares the current gaps with the unresolved stored ones. Pure.
pub fn plan(current: &Gaps, stored: &[GapRow], now: DateTime<Utc>, policy: Policy) -> Plan {
    let mut out = Plan::default();
    let stored: BTreeMap<&str, &GapRow> =
        stored.iter().map(|g| (g.dedup_key.as_str(), g)).collect();
    let mut seen = BTreeSet::new();
    for gap in &current.open {
        let fresh = row_of(gap, now);
        seen.insert(fresh.dedup_key.clone());
        match stored.get(fresh.dedup_key.as_str()) {
            None => {
                out.events.push((Event::Open, fresh.clone()));
                out.rows.push(fresh);
            }
            Some(old) => {
                let row = GapRow {
                    opened_at: old.opened_at,
                    notified_at: old.notified_at,
                    notified_count: old.notified_count,
                    ..fresh
                };
                let count = gap.count() as i64;
                let grown = policy.update_factor > 0.0
                    && count as f64 >= old.notified_count.max(1) as f64 * policy.update_factor
                    && now - old.notified_at >= policy.update_every;
                let event = if grown {
                    Some(Event::Update)
                } else if now - old.notified_at >= policy.remind_every {
                    Some(Event::Reminder)
                } else {
                    None
                };
                let row = match event {
                    Some(_) => GapRow {
                        notified_at: now,
                        notified_count: count,
                        ..row
                    },
                    None => row,
                };
                if let Some(e) = event {
                    out.events.push((e, row.clone()));
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
        let Ok(mut gap) = serde_json::from_str::<Gap>(&row.detail) else {
            // A gap stored by an older version (one per control and slot): its problem is
            // tracked under its new key now, so it is closed without a message.
            row.state = "resolved".into();
            out.rows.push(row);
            continue;
        };
        let cleared = *row.cleared_at.get_or_insert(now);
        if let Some(accepted) = current.accepted.get(key) {
            gap.accepted = Some(accepted.clone());
            row.detail = serde_json::to_string(&gap).expect("a gap serializes");
            row.state = "resolved".into();
            out.events.push((Event::Resolved, row.clone()));
            out.rows.push(row);
        } else if now - cleared >= policy.resolve_after {
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

/// How many occurrences a message names at most; the webhook JSON carries them all.
const NAMED_OCCURRENCES: usize = 12;

/// The message for one event.
pub fn message(event: Event, row: &GapRow, organization: &str, now: DateTime<Utc>) -> AlertMessage {
    let gap: Gap = serde_json::from_str(&row.detail).expect("gaps are stored by `plan`");
    let since = row.opened_at;
    let lasted = annexa_collectors::human_duration((now - since).num_seconds());
    let footer = format!("Organization: {organization} · gap {}", row.dedup_key);
    let occurrences = gap.occurrence_line(NAMED_OCCURRENCES);
    let (title, text) = match event {
        Event::Open | Event::Update | Event::Reminder => {
            let head = match event {
                Event::Open => "OPEN".to_string(),
                Event::Update => "UPDATE, it has grown".to_string(),
                _ => format!("STILL OPEN after {lasted}"),
            };
            let mut lines = vec![format!(
                "What is wrong: {} ({}): {}",
                gap.code,
                gap.level,
                gap.what()
            )];
            lines.extend(occurrences);
            lines.extend([
                format!("Controls: {}", gap.controls_line()),
                format!("Since: {}", when(since)),
                format!("Evidence: {}", gap.evidence_text()),
                format!("Next step: {}", gap.next_step),
                footer,
            ]);
            (
                format!("[annexa] {head}: {}", gap.headline()),
                lines.join("\n"),
            )
        }
        Event::Resolved => {
            let gone = row.cleared_at.unwrap_or(now);
            let mut lines = vec![format!(
                "Resolved: {} ({}): {}",
                gap.code,
                gap.level,
                gap.what()
            )];
            if let Some(a) = &gap.accepted {
                lines.push(format!(
                    "Not fixed: {a}. It counts as a warning until then."
                ));
            }
            lines.extend([
                format!("Controls: {}", gap.controls_line()),
                format!(
                    "Open since {}, gone since {} (open for {}).",
                    when(since),
                    when(gone),
                    annexa_collectors::human_duration((gone - since).num_seconds())
                ),
                footer,
            ]);
            let how = if gap.accepted.is_some() {
                "RESOLVED (accepted)"
            } else {
                "RESOLVED"
            };
            (
                format!("[annexa] {how}: {}", gap.headline()),
                lines.join("\n"),
            )
        }
    };
    AlertMessage {
        event: event.as_str().to_string(),
        dedup_key: row.dedup_key.clone(),
        organization: organization.to_string(),
        title,
        text,
        since: Some(since),
        last_seen: Some(row.last_seen_at),
        resolved_at: (event == Event::Resolved).then(|| row.cleared_at.unwrap_or(now)),
        count: Some(gap.count()),
        gap: Some(gap),
        ..AlertMessage::default()
    }
}

/// The message for one warning.
pub fn warning_message(w: &Warning, organization: &str, now: DateTime<Utc>) -> AlertMessage {
    let left = annexa_collectors::human_duration((w.due - now).num_seconds());
    let mut lines = vec![
        format!("What is due: {}", w.what),
        format!(
            "Late from: {} (in {left}); then it is a gap: {} on {}",
            when(w.due),
            w.code,
            w.subject
        ),
        format!("Controls: {}", w.controls.join(", ")),
    ];
    if let Some(p) = &w.evidence {
        lines.push(format!("Evidence: {}", p.text()));
    }
    lines.push(format!("Next step: {}", w.next_step));
    lines.push(format!(
        "Organization: {organization} · warning {}",
        w.key()
    ));
    AlertMessage {
        event: "warning".into(),
        dedup_key: w.key(),
        organization: organization.to_string(),
        title: format!(
            "[annexa] WARNING: {} is due by {}, in {left} ({})",
            w.what,
            when(w.due),
            w.controls.join(", ")
        ),
        text: lines.join("\n"),
        warning: Some(w.clone()),
        ..AlertMessage::default()
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
    let config = &app.config.alerts;
    let current = gaps_of(doc, &app.config.base_dir);
    let stored = app.db.unresolved_gaps().await?;
    let policy = Policy {
        remind_every: chrono::Duration::from_std(config.remind_every)?,
        resolve_after: chrono::Duration::from_std(config.resolve_after)?,
        update_factor: config.update_factor,
        update_every: chrono::Duration::from_std(config.update_every)?,
    };
    let plan = plan(&current, &stored, now, policy);
    let sent: BTreeSet<String> = app.db.sent_warnings(now).await?.into_iter().collect();
    let warnings: Vec<Warning> = warnings_of(
        doc,
        &app.config.base_dir,
        chrono::Duration::from_std(config.warn_before)?,
    )
    .into_iter()
    .filter(|w| !sent.contains(&w.key()))
    .collect();
    let organization = &app.config.organization;
    let mut messages: Vec<AlertMessage> = plan
        .events
        .iter()
        .map(|(event, row)| message(*event, row, organization, now))
        .collect();
    messages.extend(
        warnings
            .iter()
            .map(|w| warning_message(w, organization, now)),
    );
    let mut alerts = Vec::new();
    let mut hold = Vec::new();
    let mut released = Vec::new();
    for sink in &config.sinks {
        let queue = |m: &AlertMessage| -> anyhow::Result<NewAlert> {
            Ok(NewAlert {
                dedup_key: m.dedup_key.clone(),
                event: m.event.clone(),
                sink: sink.name.clone(),
                body: serde_json::to_string(m)?,
            })
        };
        if sink.quiet_hours.as_ref().is_some_and(|q| q.contains(now)) {
            for m in &messages {
                hold.push(queue(m)?);
            }
            continue;
        }
        // What was held during quiet hours goes first, in one digest with what is new.
        let mut held: Vec<AlertMessage> = Vec::new();
        for (id, body) in app.db.held_alerts(&sink.name).await? {
            released.push(id);
            match serde_json::from_str::<AlertMessage>(&body) {
                Ok(m) => held.push(m),
                Err(e) => tracing::warn!(sink = %sink.name, "a held message is not readable: {e}"),
            }
        }
        match sink.mode {
            Mode::Each if held.is_empty() => {
                for m in &messages {
                    alerts.push(queue(m)?);
                }
            }
            _ => {
                held.extend(messages.iter().cloned());
                if !held.is_empty() {
                    // Gaps still open that the digest has nothing new about.
                    let told: BTreeSet<&str> = held
                        .iter()
                        .filter(|m| m.event == "open" || m.event == "update")
                        .map(|m| m.dedup_key.as_str())
                        .collect();
                    let still_open = current
                        .open
                        .iter()
                        .filter(|g| !told.contains(g.dedup_key().as_str()))
                        .count();
                    let d = digest::digest(&held, still_open, organization, now, sink.max_chars());
                    alerts.push(queue(&d)?);
                }
            }
        }
    }
    let warned: Vec<(String, DateTime<Utc>)> = warnings.iter().map(|w| (w.key(), w.due)).collect();
    app.db
        .record_gaps(&EvaluationWrite {
            gaps: &plan.rows,
            warnings: &warned,
            alerts: &alerts,
            hold: &hold,
            released: &released,
            now,
        })
        .await?;
    Ok(Evaluation {
        open_gaps: current.open.len(),
        queued: alerts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use annexa_collectors::{FindingCode, Level};
    use annexa_reports::{ControlReport, ControlStatus, EvidenceRef, FindingRef, Upcoming};
    use chrono::TimeZone;
    use std::path::Path;

    fn gap(subject: &str) -> Gap {
        Gap {
            controls: vec![GapControl {
                id: "A.5.26".into(),
                title: "Response to information security incidents".into(),
                status: "not_satisfied".into(),
            }],
            code: "incident-resolution-late".into(),
            level: "fail".into(),
            subject: subject.into(),
            message: format!("{subject} was resolved 30h after detection (target 24h)"),
            occurrences: Vec::new(),
            collector: "incidents".into(),
            evidence: None,
            next_step: "update the incident record".into(),
            accepted: None,
        }
    }

    fn gaps(list: &[Gap]) -> Gaps {
        Gaps {
            open: list.to_vec(),
            accepted: BTreeMap::new(),
        }
    }

    fn policy() -> Policy {
        Policy {
            remind_every: chrono::Duration::hours(24),
            resolve_after: chrono::Duration::minutes(60),
            update_factor: 2.0,
            update_every: chrono::Duration::hours(6),
        }
    }

    /// Applies plans in sequence as the database would, collecting the events.
    fn replay(steps: &[(i64, Gaps)], policy: Policy) -> Vec<(i64, Event, String)> {
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
        let g = || gaps(&[gap("INC-7")]);
        let steps = vec![
            (0, g()),
            (60, g()),
            (23 * 60, g()),
            (24 * 60, g()),       // reminder
            (25 * 60, gaps(&[])), // clearing
            (25 * 60 + 30, gaps(&[])),
            (26 * 60, gaps(&[])), // resolved
            (27 * 60, gaps(&[])),
        ];
        assert_eq!(
            replay(&steps, policy()),
            vec![
                (0, Event::Open, "INC-7".to_string()),
                (24 * 60, Event::Reminder, "INC-7".to_string()),
                (26 * 60, Event::Resolved, "INC-7".to_string()),
            ]
        );
    }

    #[test]
    fn flapping_within_resolve_after_sends_nothing_more() {
        let mut steps: Vec<(i64, Gaps)> = Vec::new();
        for i in 0..20 {
            steps.push((
                i * 10,
                if i % 2 == 0 {
                    gaps(&[gap("INC-7")])
                } else {
                    gaps(&[])
                },
            ));
        }
        assert_eq!(
            replay(&steps, policy()),
            vec![(0, Event::Open, "INC-7".to_string())]
        );
        // Gone for good: one RESOLVED an hour later, and a new episode opens anew.
        steps.push((300, gaps(&[])));
        steps.push((400, gaps(&[gap("INC-7")])));
        let events = replay(&steps, policy());
        assert_eq!(
            events.iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![Event::Open, Event::Resolved, Event::Open]
        );
    }

    #[test]
    fn a_growing_gap_updates_when_it_doubles_and_an_accepted_one_resolves_at_once() {
        let slots = |n: usize| {
            let mut g = gap("db-backup");
            g.code = "heartbeat-missed".into();
            g.occurrences = (0..n)
                .map(|i| format!("2026-11-01T{i:02}:00:00Z"))
                .collect();
            gaps(&[g])
        };
        // A slot missed every hour for a day: OPEN at 1; 6 hours later 7 ≥ 2 × 1: UPDATE; then
        // 14 ≥ 2 × 7 at hour 14 (7 hours on); 28 is never reached.
        let steps: Vec<(i64, Gaps)> = (1..=24).map(|n| (n as i64 * 60, slots(n))).collect();
        let events = replay(&steps, policy());
        assert_eq!(
            events.iter().map(|e| (e.0 / 60, e.1)).collect::<Vec<_>>(),
            vec![(1, Event::Open), (7, Event::Update), (14, Event::Update)]
        );
        let never = Policy {
            update_factor: 0.0,
            ..policy()
        };
        assert_eq!(replay(&steps, never).len(), 1, "update_factor 0: OPEN only");

        // Accepted: RESOLVED at once, saying so.
        let mut accepted = gaps(&[]);
        accepted.accepted.insert(
            "incident-resolution-late|INC-7".into(),
            "accepted as an exception by CISO until 2027-01-01 00:00 UTC: vendor fix".into(),
        );
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let first = plan(&gaps(&[gap("INC-7")]), &[], t, policy());
        let p = plan(
            &accepted,
            &first.rows,
            t + chrono::Duration::minutes(5),
            policy(),
        );
        assert_eq!(p.events.len(), 1);
        let m = message(Event::Resolved, &p.events[0].1, "Org", t);
        assert!(
            m.title.starts_with("[annexa] RESOLVED (accepted): "),
            "{}",
            m.title
        );
        assert!(
            m.text
                .contains("Not fixed: accepted as an exception by CISO"),
            "{}",
            m.text
        );
    }

    /// Gaps an older version stored (one per control, code and subject; another detail) are
    /// closed without a message: their problems open under the new keys.
    #[test]
    fn gaps_stored_by_an_older_version_close_quietly() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let old = GapRow {
            dedup_key: "A.5.26|incident-resolution-late|INC-7".into(),
            detail: r#"{"control":"A.5.26","code":"incident-resolution-late"}"#.into(),
            ..row_of(&gap("INC-7"), t)
        };
        let p = plan(&gaps(&[gap("INC-7")]), &[old], t, policy());
        assert_eq!(
            p.events
                .iter()
                .map(|(e, r)| (*e, r.dedup_key.as_str()))
                .collect::<Vec<_>>(),
            [(Event::Open, "incident-resolution-late|INC-7")]
        );
        let closed = p
            .rows
            .iter()
            .find(|r| r.dedup_key.starts_with("A.5.26|"))
            .unwrap();
        assert_eq!(closed.state, "resolved");
    }

    #[test]
    fn messages_say_what_which_controls_since_when_and_what_to_do() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let p = plan(&gaps(&[gap("INC-7")]), &[], now, policy());
        let m = message(Event::Open, &p.events[0].1, "Example Ltd", now);
        assert_eq!(
            m.title,
            "[annexa] OPEN: incident-resolution-late on INC-7 (A.5.26)"
        );
        for part in [
            "What is wrong: incident-resolution-late (fail): INC-7 was resolved 30h",
            "Controls: A.5.26 Response to information security incidents (not satisfied)",
            "Since: 2026-11-22 10:00 UTC",
            "Evidence: missing: no fresh evidence for A.5.26",
            "Next step: update the incident record",
            "gap incident-resolution-late|INC-7",
        ] {
            assert!(m.text.contains(part), "{part} not in {}", m.text);
        }
        let later = now + chrono::Duration::hours(3);
        let gone = plan(
            &gaps(&[]),
            &p.rows,
            later,
            Policy {
                resolve_after: chrono::Duration::zero(),
                ..policy()
            },
        );
        let r = message(Event::Resolved, &gone.events[0].1, "Example Ltd", later);
        assert!(r.text.contains("open for 3 h"), "{}", r.text);
    }

    /// A job's missed slots under two controls are one gap naming both; its evidence is the
    /// run of its own collector, not the control's newest; host paths read relative.
    #[test]
    fn findings_group_into_problems_with_their_own_evidence() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let evidence = |collector: &str, run: &str, hour: u32| EvidenceRef {
            collector: collector.into(),
            run_id: run.into(),
            collected_at: Utc.with_ymd_and_hms(2026, 11, 22, hour, 0, 0).unwrap(),
            expires_at: at + chrono::Duration::days(1),
            fresh: true,
            sha256: format!("{run}-sha"),
            object_key: format!("objects/{run}"),
            attested: None,
        };
        let missed = |slot: &str| FindingRef {
            run_id: None,
            first_seen: None,
            code: FindingCode::HeartbeatMissed,
            level: Level::Fail,
            subject: format!("db-backup@{slot}"),
            message: format!("db-backup did not report success for its {slot} slot"),
            collector: "cron".into(),
            accepted: None,
        };
        let control = |id: &str| ControlReport {
            id: id.into(),
            title: format!("title of {id}"),
            status: ControlStatus::NotSatisfied,
            evidence: vec![
                evidence("cron", "r-cron", 8),
                evidence("other", "r-newer", 9),
            ],
            evidence_unlisted: 0,
            findings: vec![
                missed("2026-11-22T03:00:00Z"),
                missed("2026-11-22T02:00:00Z"),
            ],
            period: None,
        };
        let mut backups = control("A.8.13");
        backups.evidence = vec![evidence("backups", "r-b", 8)];
        backups.findings = vec![FindingRef {
            run_id: None,
            first_seen: None,
            code: FindingCode::BackupMissing,
            level: Level::Fail,
            subject: "/srv/annexa/backups".into(),
            message: "no backup matching `*.dump` in /srv/annexa/backups".into(),
            collector: "backups".into(),
            accepted: None,
        }];
        let doc = StatusDocument {
            as_of: at,
            controls: vec![control("A.5.36"), control("A.8.16"), backups],
            upcoming: Vec::new(),
            upcoming_unlisted: 0,
            integrity: None,
            excluded: Vec::new(),
        };
        let found = gaps_of(&doc, Path::new("/srv/annexa"));
        assert_eq!(found.open.len(), 2, "{:#?}", found.open);
        let backup = &found.open[0];
        assert_eq!(backup.dedup_key(), "backup-missing|backups");
        assert_eq!(backup.message, "no backup matching `*.dump` in backups");
        let job = &found.open[1];
        assert_eq!(job.dedup_key(), "heartbeat-missed|db-backup");
        assert_eq!(job.control_ids(), "A.5.36, A.8.16");
        assert_eq!(
            job.occurrences,
            ["2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"]
        );
        let pointer = job.evidence.as_ref().unwrap();
        assert_eq!(
            (pointer.run_id.as_str(), pointer.sha256.as_str()),
            ("r-cron", "r-cron-sha")
        );
        let p = plan(&found, &[], at, policy());
        let m = message(Event::Open, &p.events[1].1, "Org", at);
        assert_eq!(
            m.title,
            "[annexa] OPEN: heartbeat-missed on db-backup (2 slots; A.5.36, A.8.16)"
        );
        assert!(
            m.text
                .contains("Slots: 2026-11-22T02:00:00Z, 2026-11-22T03:00:00Z"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains(
                "Evidence: run r-cron of `cron` collected 2026-11-22 08:00 UTC, object objects/r-cron"
            ),
            "{}",
            m.text
        );
    }

    #[test]
    fn warnings_come_within_warn_before_once_per_due_date() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let due = |days: i64| Upcoming {
            code: FindingCode::PolicyReviewOverdue,
            subject: "ISP-001".into(),
            due: at + chrono::Duration::days(days),
            what: "ISP-001's 365-day review".into(),
            collector: "policies".into(),
            controls: vec!["A.5.24".into()],
        };
        let doc = StatusDocument {
            as_of: at,
            controls: Vec::new(),
            upcoming: vec![due(9), due(30)],
            upcoming_unlisted: 0,
            integrity: None,
            excluded: Vec::new(),
        };
        let w = warnings_of(&doc, Path::new("/"), chrono::Duration::days(14));
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].key(),
            "warning|policy-review-overdue|ISP-001|2026-12-10T00:00:00Z"
        );
        let m = warning_message(&w[0], "Org", at);
        assert_eq!(
            m.title,
            "[annexa] WARNING: ISP-001's 365-day review is due by 2026-12-10 00:00 UTC, in 9 d (A.5.24)"
        );
        assert!(m.text.contains(
            "Late from: 2026-12-10 00:00 UTC (in 9 d); then it is a gap: policy-review-overdue on ISP-001"
        ));
    }
}
