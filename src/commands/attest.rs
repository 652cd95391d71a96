//! `annexa attach` (and `--list`) and `annexa review`: attested evidence and its review.

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::evidence::attested::{self, AttachError, Attested, Decision, Request, ReviewError};

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// One attachment as `--json` shows it.
fn json_of(a: &Attested, at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let r = a.review.as_ref();
    serde_json::json!({
        "evidence": a.id,
        "state": a.state(at),
        "controls": a.attestation.controls,
        "title": a.attestation.title,
        "owner": a.attestation.owner,
        "attached_at": annexa_reports::time(a.attached_at),
        "effective": annexa_reports::time(a.attestation.effective),
        "expires": annexa_reports::time(a.attestation.expires),
        "note": a.attestation.note,
        "files": a.files.iter().map(|f| serde_json::json!({
            "name": f.name, "sha256": f.sha256, "object_key": f.object_key, "size": f.size,
            "media_type": f.media_type,
        })).collect::<Vec<_>>(),
        "review": r.map(|r| serde_json::json!({
            "decision": r.decision.as_str(), "by": r.by, "at": annexa_reports::time(r.at),
            "comment": r.comment, "self_review": r.self_review, "event": r.event,
        })),
    })
}

pub async fn attach(app: &Annexa, request: Request, json: bool) -> Result<Exit, Failure> {
    let now = app.clock.now();
    let checked = request.check(&app.config, now).map_err(|problems| {
        Failure::usage(anyhow::anyhow!(
            "nothing was attached:\n  - {}",
            problems.join("\n  - ")
        ))
    })?;
    let (run, attestation) = attested::attach(app, checked).await.map_err(|e| match e {
        AttachError::Db(e) => Failure::from(e),
        other => Failure::from(other),
    })?;
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "evidence": run.id, "state": "pending", "controls": attestation.controls,
            "title": attestation.title, "owner": attestation.owner,
            "effective": annexa_reports::time(attestation.effective),
            "expires": annexa_reports::time(attestation.expires),
            "files": attestation.files,
        }))? + "\n"
    } else {
        format!(
            "attached {} file(s) to {} as evidence {} (\"{}\", attested by {}, effective {}, expires {}): pending review, `annexa review {} --approve|--reject --by NAME`\n",
            attestation.files.len(),
            attestation.controls.join(", "),
            run.id,
            attestation.title,
            attestation.owner,
            day(attestation.effective),
            day(attestation.expires),
            run.id
        )
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}

pub async fn list(app: &Annexa, json: bool) -> Result<Exit, Failure> {
    let now = app.clock.now();
    let all = attested::all(app, now).await?;
    let text = if json {
        let list: Vec<serde_json::Value> = all.iter().map(|a| json_of(a, now)).collect();
        serde_json::to_string(&list)? + "\n"
    } else if all.is_empty() {
        "no attested evidence; attach some with `annexa attach FILE --control ID`\n".to_string()
    } else {
        all.iter()
            .map(|a| {
                let review = a
                    .review
                    .as_ref()
                    .map(|r| {
                        format!(
                            "; {} by {} on {}{}",
                            r.decision,
                            r.by,
                            day(r.at),
                            r.comment
                                .as_deref()
                                .map(|c| format!(": {c}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{} {:<8} {} \"{}\" by {}, effective {}, expires {}{review}\n",
                    a.id,
                    a.state(now),
                    a.attestation.controls.join(","),
                    a.attestation.title,
                    a.attestation.owner,
                    day(a.attestation.effective),
                    day(a.attestation.expires),
                )
            })
            .collect()
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}

pub async fn review(
    app: &Annexa,
    id: &str,
    decision: Decision,
    by: &str,
    comment: Option<&str>,
    json: bool,
) -> Result<Exit, Failure> {
    let (event, item) = attested::review(app, id, decision, by, comment)
        .await
        .map_err(|e| match e {
            ReviewError::Db(e) => Failure::from(e),
            other => Failure::usage(other),
        })?;
    let text = if json {
        let mut v = json_of(&item, app.clock.now());
        v["event"] = serde_json::Value::String(event.id);
        serde_json::to_string(&v)? + "\n"
    } else {
        format!(
            "{decision} {id} (\"{}\" for {}) by {} (event {}){}\n",
            item.attestation.title,
            item.attestation.controls.join(", "),
            by.trim(),
            event.id,
            match decision {
                Decision::Approved => format!(
                    ": it counts until {}",
                    annexa_reports::time(item.attestation.expires)
                ),
                Decision::Rejected => ": it never counts".to_string(),
            }
        )
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
