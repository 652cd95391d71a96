//! Accepted exceptions: a risk owner's acceptance of a failing finding (ISO/IEC 27001 6.1.3 f,
//! 8.3), with a reason and an end date, recorded as an audit event, so a ledger leaf. A
//! revocation is an audit event too. Nothing is ever deleted: what was accepted when stays
//! readable, and a past `--as-of` sees the acceptances recorded by then.

use std::time::Duration;

use annexa_collectors::FindingCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit::{self, Actor, AuditAction};
use crate::controls::{Acceptance, Catalog};
use crate::db::{AuditEventRow, Db, DbError, parse_ts};

/// What `annexa accept` is asked to record, as typed.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub control: String,
    pub code: String,
    pub subject: Option<String>,
    pub reason: String,
    pub by: String,
    pub until: DateTime<Utc>,
}

/// The event's details, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Accepted {
    control: String,
    code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    reason: String,
    by: String,
    until: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Revoked {
    event: String,
    by: String,
}

impl Proposal {
    /// Every problem at once: an unknown control or code, a code no acceptance may cover, an
    /// empty reason or name, an end in the past or further ahead than `max`.
    pub fn check(
        &self,
        catalog: &Catalog,
        now: DateTime<Utc>,
        max: Duration,
    ) -> Result<FindingCode, Vec<String>> {
        let mut problems = Vec::new();
        if catalog.get(&self.control).is_none() {
            problems.push(format!(
                "--control {}: not a control of the catalog (`annexa controls` lists them)",
                self.control
            ));
        }
        let code = match self.code.parse::<FindingCode>() {
            Ok(code) if Acceptance::NEVER.contains(&code) => {
                problems.push(format!(
                    "--code {code}: missing or stale evidence cannot be accepted; collect it, or exclude the control in a Statement of Applicability"
                ));
                None
            }
            Ok(code) => Some(code),
            Err(e) => {
                problems.push(format!("--code: {e}"));
                None
            }
        };
        if self.reason.trim().is_empty() {
            problems.push("--reason: say why the risk is accepted".into());
        }
        if self.by.trim().is_empty() {
            problems.push("--by: name the risk owner who accepts it".into());
        }
        if self.subject.as_deref().is_some_and(|s| s.trim().is_empty()) {
            problems.push("--subject: empty; leave it out to cover every subject".into());
        }
        let latest = now + chrono::Duration::from_std(max).unwrap_or(chrono::Duration::MAX);
        if self.until <= now {
            problems.push(format!(
                "--until {}: already past; an acceptance must end in the future",
                self.until.format("%Y-%m-%d %H:%M UTC")
            ));
        } else if self.until > latest {
            problems.push(format!(
                "--until {}: later than {} ([verdicts] max_exception); accept for a shorter time and review it then",
                self.until.format("%Y-%m-%d"),
                latest.format("%Y-%m-%d")
            ));
        }
        match code {
            Some(code) if problems.is_empty() => Ok(code),
            _ => Err(problems),
        }
    }
}

/// Records an accepted exception (call [`Proposal::check`] first).
pub async fn accept(
    db: &Db,
    proposal: &Proposal,
    now: DateTime<Utc>,
) -> Result<AuditEventRow, DbError> {
    let details = Accepted {
        control: proposal.control.clone(),
        code: proposal.code.clone(),
        subject: proposal.subject.clone(),
        reason: proposal.reason.trim().to_string(),
        by: proposal.by.trim().to_string(),
        until: proposal.until,
    };
    audit::record(
        db,
        Actor::Operator,
        AuditAction::ExceptionAccepted,
        &proposal.control,
        serde_json::to_value(details).expect("details serialize"),
        now,
    )
    .await
}

/// One recorded acceptance, and its revocation if there is one.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub acceptance: Acceptance,
    /// When, and by whom.
    pub revoked: Option<(DateTime<Utc>, String)>,
}

/// Why a revocation cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no accepted exception has the event id `{0}`; `annexa accept --list` shows them")]
    Unknown(String),
    #[error("the exception `{0}` was already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Revokes an acceptance from `now` on.
pub async fn revoke(
    db: &Db,
    event: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<AuditEventRow, RevokeError> {
    let recorded = all(db).await?;
    let found = recorded
        .iter()
        .find(|r| r.acceptance.event == event)
        .ok_or_else(|| RevokeError::Unknown(event.to_string()))?;
    if found.revoked.is_some() {
        return Err(RevokeError::AlreadyRevoked(event.to_string()));
    }
    let details = Revoked {
        event: event.to_string(),
        by: by.trim().to_string(),
    };
    Ok(audit::record(
        db,
        Actor::Operator,
        AuditAction::ExceptionRevoked,
        &found.acceptance.control,
        serde_json::to_value(details).expect("details serialize"),
        now,
    )
    .await?)
}

/// Every acceptance ever recorded, oldest first, with its revocation.
pub async fn all(db: &Db) -> Result<Vec<Recorded>, DbError> {
    let accepted = audit::with_action(db, AuditAction::ExceptionAccepted).await?;
    let revoked = audit::with_action(db, AuditAction::ExceptionRevoked).await?;
    let mut revocations = Vec::new();
    for row in &revoked {
        if let Ok(r) = serde_json::from_str::<Revoked>(&row.details) {
            revocations.push((r.event, parse_ts("audit_events.at", &row.at)?, r.by));
        }
    }
    let mut out = Vec::new();
    for row in &accepted {
        // Rows are written by `accept` only; one this version cannot read covers nothing.
        let Ok(a) = serde_json::from_str::<Accepted>(&row.details) else {
            continue;
        };
        let Ok(code) = a.code.parse() else { continue };
        out.push(Recorded {
            acceptance: Acceptance {
                event: row.id.clone(),
                control: a.control,
                code,
                subject: a.subject,
                reason: a.reason,
                by: a.by,
                at: parse_ts("audit_events.at", &row.at)?,
                until: a.until,
            },
            revoked: revocations
                .iter()
                .find(|(event, _, _)| *event == row.id)
                .map(|(_, at, by)| (*at, by.clone())),
        });
    }
    Ok(out)
}

/// The acceptances as they stood at `as_of`: recorded by then, each ending at its end or at
/// its revocation if that came first (a revocation after `as_of` is not yet known).
pub async fn as_of(db: &Db, as_of: DateTime<Utc>) -> Result<Vec<Acceptance>, DbError> {
    Ok(all(db)
        .await?
        .into_iter()
        .filter(|r| r.acceptance.at <= as_of)
        .map(|r| {
            let mut a = r.acceptance;
            if let Some((revoked, _)) = r.revoked.filter(|(at, _)| *at <= as_of) {
                a.until = a.until.min(revoked);
            }
            a
        })
        .collect())
}
