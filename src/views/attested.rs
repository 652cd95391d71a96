//! Attested evidence as status, period verdicts and reports see it: for each judged control
//! that takes attested evidence, one source made of the attachments that name it. Its evidence
//! is the newest approval in force; pending attachments are findings; rejected ones count for
//! nothing. What an attachment is and how it is reviewed is `evidence::attested`.

use annexa_collectors::{Due, Finding, FindingCode};
use annexa_reports::AttestedBy;
use annexa_reports::model::{CollectorInput, FigureTable, ItemInput, RunInput};
use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::controls::period::{History, Success};
use crate::controls::{ATTESTED, Control, RunState, SourceState};
use crate::db::DbError;
use crate::evidence::attested::{self, Attested};

/// The judged controls that take attested evidence, each with the attachments naming it.
fn by_control<'a>(app: &'a Annexa, all: &'a [Attested]) -> Vec<(&'a Control, Vec<&'a Attested>)> {
    app.config
        .catalog
        .controls()
        .iter()
        .filter(|c| c.collectors.iter().any(|k| k == ATTESTED))
        .map(|c| {
            let mine = all
                .iter()
                .filter(|a| a.attestation.controls.contains(&c.id))
                .collect();
            (c, mine)
        })
        .collect()
}

/// The approval in force at `at`: of those that count by then, the newest approved.
fn in_force<'a>(mine: &[&'a Attested], at: DateTime<Utc>) -> Option<&'a Attested> {
    mine.iter()
        .copied()
        .filter(|a| a.counts_from().is_some_and(|from| from <= at))
        .max_by_key(|a| a.review.as_ref().map(|r| r.at))
}

fn by(a: &Attested) -> Option<AttestedBy> {
    let review = a.review.as_ref()?;
    Some(AttestedBy {
        title: a.attestation.title.clone(),
        owner: a.attestation.owner.clone(),
        effective: a.attestation.effective,
        expires: a.attestation.expires,
        reviewed_by: review.by.clone(),
        reviewed_at: review.at,
        self_review: review.self_review,
    })
}

fn described(a: &Attested) -> String {
    format!(
        "{} \"{}\" attested by {} on {}",
        a.id,
        a.attestation.title,
        a.attestation.owner,
        a.attached_at.format("%Y-%m-%d")
    )
}

/// One source per judged control that takes attested evidence, at `as_of`.
pub async fn source_states(
    app: &Annexa,
    as_of: DateTime<Utc>,
) -> Result<Vec<SourceState>, DbError> {
    let all = attested::all(app, as_of).await?;
    let mut out = Vec::new();
    for (control, mine) in by_control(app, &all) {
        if mine.is_empty() {
            continue;
        }
        let mut findings: Vec<Finding> = mine
            .iter()
            .filter(|a| a.review.is_none())
            .map(|a| {
                Finding::new(
                    FindingCode::AttestationPending,
                    a.id.clone(),
                    format!(
                        "{} awaits review: `annexa review {} --approve|--reject --by NAME`",
                        described(a),
                        a.id
                    ),
                )
                .with_controls(vec![control.id.clone()])
            })
            .collect();
        let current = in_force(&mine, as_of);
        let mut upcoming = Vec::new();
        let latest_success = current.map(|a| {
            let from = a.counts_from().expect("in force, so approved");
            if a.attestation.expires > as_of {
                upcoming.push(Due {
                    code: FindingCode::EvidenceStale,
                    subject: a.id.clone(),
                    due: a.attestation.expires,
                    what: format!("the expiry of attested evidence {}", described(a)),
                    controls: vec![control.id.clone()],
                });
            }
            let state = RunState {
                run_id: a.id.clone(),
                succeeded: true,
                finished_at: from,
                error: None,
            };
            let objects = a
                .files
                .iter()
                .map(|f| (f.sha256.clone(), f.object_key.clone()))
                .collect();
            (state, objects)
        });
        if current.is_none() {
            let pending = mine.iter().filter(|a| a.review.is_none()).count();
            let rejected: Vec<String> = mine
                .iter()
                .filter(|a| a.review.is_some() && a.counts_from().is_none())
                .map(|a| a.id.clone())
                .collect();
            let later: Vec<String> = mine
                .iter()
                .filter(|a| a.counts_from().is_some_and(|from| from > as_of))
                .map(|a| a.id.clone())
                .collect();
            let mut why = vec![format!(
                "{} has no approved attested evidence in force",
                control.id
            )];
            if pending > 0 {
                why.push(format!("{pending} attachment(s) await review"));
            }
            if !rejected.is_empty() {
                why.push(format!("rejected: {}", rejected.join(", ")));
            }
            if !later.is_empty() {
                why.push(format!("approved, effective later: {}", later.join(", ")));
            }
            findings.push(
                Finding::new(
                    FindingCode::EvidenceMissing,
                    ATTESTED,
                    format!(
                        "{}; attested evidence counts once a reviewer approves it (`annexa review ID --approve --by NAME`)",
                        why.join("; ")
                    ),
                )
                .with_controls(vec![control.id.clone()]),
            );
        }
        let max_age = current.map(|a| {
            let from = a.counts_from().expect("in force, so approved");
            (a.attestation.expires - from)
                .to_std()
                .unwrap_or(std::time::Duration::ZERO)
        });
        out.push(SourceState {
            collector: ATTESTED.to_string(),
            controls: vec![control.id.clone()],
            provides: vec![ATTESTED.to_string()],
            max_age,
            latest: latest_success.as_ref().map(|(s, _)| s.clone()),
            latest_success,
            unlisted: 0,
            findings: findings.into_iter().map(|f| app.apply_level(f)).collect(),
            upcoming,
            upcoming_later: 0,
            next_run: None,
            attested: current.and_then(by),
        });
    }
    Ok(out)
}

/// Each such control's approvals around `[from, to)`, for period verdicts: an approval is
/// fresh from when it counts until it expires.
pub async fn histories(app: &Annexa, to: DateTime<Utc>) -> Result<Vec<History>, DbError> {
    let all = attested::all(app, to).await?;
    let mut out = Vec::new();
    for (control, mine) in by_control(app, &all) {
        let mut successes: Vec<Success> = mine
            .iter()
            .filter_map(|a| {
                Some(Success {
                    run_id: a.id.clone(),
                    finished_at: a.counts_from()?,
                    expires: Some(a.attestation.expires),
                    fails: Vec::new(),
                })
            })
            .collect();
        successes.sort_by_key(|s| s.finished_at);
        out.push(History {
            collector: ATTESTED.to_string(),
            controls: vec![control.id.clone()],
            max_age: None,
            first_run: mine.iter().map(|a| a.attached_at).min(),
            successes,
            slots: Vec::new(),
        });
    }
    Ok(out)
}

/// Each such control with attachments as a report source: its approvals as snapshots (each
/// fresh until it expires), and every attachment known by `end` with its review.
pub async fn report_inputs(
    app: &Annexa,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<CollectorInput>, DbError> {
    let all = attested::all(app, end).await?;
    let mut out = Vec::new();
    for (control, mine) in by_control(app, &all) {
        if mine.is_empty() {
            continue;
        }
        let mut runs: Vec<RunInput> = mine
            .iter()
            .filter_map(|a| {
                Some(RunInput {
                    run_id: a.id.clone(),
                    succeeded: true,
                    finished_at: a.counts_from()?,
                    expires_at: Some(a.attestation.expires),
                    attested: by(a),
                    error: None,
                    items: a
                        .files
                        .iter()
                        .map(|f| ItemInput {
                            name: f.name.clone(),
                            role: f.role.as_str().to_string(),
                            media_type: f.media_type.clone(),
                            size: Some(f.size as u64),
                            sha256: f.sha256.clone(),
                            object_key: f.object_key.clone(),
                        })
                        .collect(),
                })
            })
            .collect();
        runs.sort_by_key(|r| r.finished_at);
        // Of the approvals before the period, only the newest: it may still be in force in it.
        let before = runs.iter().filter(|r| r.finished_at < from).count();
        runs.drain(..before.saturating_sub(1));
        let mut table = FigureTable::new(
            &format!("Attested evidence for {}", control.id),
            &[
                "Evidence",
                "Title",
                "Files (SHA-256)",
                "Attested by",
                "Effective",
                "Expires",
                "Review",
                "Reviewed by",
                "Reviewed",
                "Comment",
            ],
        );
        let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
        for a in &mine {
            let review = a.review.as_ref();
            table = table.row([
                a.id.clone(),
                a.attestation.title.clone(),
                a.files
                    .iter()
                    .map(|f| format!("{} ({})", f.name, f.sha256))
                    .collect::<Vec<_>>()
                    .join("; "),
                a.attestation.owner.clone(),
                day(a.attestation.effective),
                day(a.attestation.expires),
                a.state(end).to_string(),
                review
                    .map(|r| {
                        if r.self_review {
                            format!(
                                "{} (self-review, allowed by [attest] allow_self_review)",
                                r.by
                            )
                        } else {
                            r.by.clone()
                        }
                    })
                    .unwrap_or_default(),
                review
                    .map(|r| annexa_reports::time(r.at))
                    .unwrap_or_default(),
                review.and_then(|r| r.comment.clone()).unwrap_or_default(),
            ]);
        }
        out.push(CollectorInput {
            name: format!("attested evidence of {}", control.id),
            kind: ATTESTED.to_string(),
            controls: vec![control.id.clone()],
            max_age: super::to_duration(control.max_age),
            schedule: String::new(),
            slots: Vec::new(),
            runs,
            figures: vec![table],
        });
    }
    Ok(out)
}
