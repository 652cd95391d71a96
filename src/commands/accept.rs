//! `annexa accept`: record, list and revoke accepted exceptions.

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::ledger::exceptions::{self, Proposal, RevokeError};

pub enum Request {
    Accept(Proposal),
    List,
    Revoke { event: String, by: String },
}

pub async fn accept(app: &Annexa, request: Request, json: bool) -> Result<Exit, Failure> {
    let now = app.clock.now();
    let text = match request {
        Request::Accept(proposal) => {
            proposal
                .check(&app.config.catalog, now, app.config.verdicts.max_exception)
                .map_err(|problems| {
                    Failure::usage(anyhow::anyhow!(
                        "the acceptance is not recorded:\n  - {}",
                        problems.join("\n  - ")
                    ))
                })?;
            let event = exceptions::accept(&app.db, &proposal, now).await?;
            if json {
                serde_json::to_string(&serde_json::json!({
                    "event": event.id, "control": proposal.control, "code": proposal.code,
                    "subject": proposal.subject, "reason": proposal.reason, "by": proposal.by,
                    "until": annexa_reports::time(proposal.until),
                }))? + "\n"
            } else {
                format!(
                    "accepted {} on {}{} until {} by {} (event {}); revoke with `annexa accept --revoke {} --by NAME`\n",
                    proposal.code,
                    proposal.control,
                    proposal
                        .subject
                        .as_deref()
                        .map(|s| format!(" for {s}"))
                        .unwrap_or_default(),
                    annexa_reports::time(proposal.until),
                    proposal.by,
                    event.id,
                    event.id
                )
            }
        }
        Request::Revoke { event, by } => {
            let row = exceptions::revoke(&app.db, &event, &by, now)
                .await
                .map_err(|e| match e {
                    RevokeError::Db(e) => Failure::from(e),
                    other => Failure::usage(other),
                })?;
            if json {
                serde_json::to_string(&serde_json::json!({"revoked": event, "event": row.id}))?
                    + "\n"
            } else {
                format!("revoked {event} (event {})\n", row.id)
            }
        }
        Request::List => {
            let all = exceptions::all(&app.db).await?;
            let state = |r: &exceptions::Recorded| match &r.revoked {
                Some(_) => "revoked",
                None if r.acceptance.until <= now => "expired",
                None => "active",
            };
            if json {
                let list: Vec<serde_json::Value> = all
                    .iter()
                    .map(|r| {
                        let a = &r.acceptance;
                        serde_json::json!({
                            "event": a.event, "state": state(r), "control": a.control,
                            "code": a.code.as_str(), "subject": a.subject, "reason": a.reason,
                            "by": a.by, "at": annexa_reports::time(a.at),
                            "until": annexa_reports::time(a.until),
                            "revoked_at": r.revoked.as_ref().map(|(at, _)| annexa_reports::time(*at)),
                            "revoked_by": r.revoked.as_ref().map(|(_, by)| by),
                        })
                    })
                    .collect();
                serde_json::to_string(&list)? + "\n"
            } else if all.is_empty() {
                "no accepted exceptions\n".to_string()
            } else {
                all.iter()
                    .map(|r| {
                        let a = &r.acceptance;
                        format!(
                            "{} {:<8} {} {} {} until {} by {}: {}\n",
                            a.event,
                            state(r),
                            a.control,
                            a.code,
                            a.subject.as_deref().unwrap_or("(every subject)"),
                            annexa_reports::time(a.until),
                            a.by,
                            a.reason
                        )
                    })
                    .collect()
            }
        }
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
