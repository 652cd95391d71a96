//! The custody log (A.5.28 by default): every run manifest is evidence that evidence
//! collection itself works. Status and reports both judge it as one more source; what it is
//! made of is decided here, once.

use annexa_collectors::{Finding, FindingCode};
use annexa_reports::model::{CollectorInput, ItemInput};
use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::controls::{CUSTODY, RunState, SourceState};
use crate::db::{DbError, RunRow};
use crate::ledger::audit::{self, AuditAction};
use crate::ledger::scrub;

/// The controls the custody log evidences; empty when the catalog maps it to none.
pub fn controls(app: &Annexa) -> Vec<String> {
    app.config.catalog.controls_for_kind(CUSTODY)
}

/// A run's manifest as the custody log's evidence object: (SHA-256, key), when it has one.
pub fn manifest_object(run: &RunRow) -> Option<(String, String)> {
    Some((run.manifest_sha256.clone()?, run.manifest_key.clone()?))
}

/// The custody log as a source of evidence at `as_of`: its newest run manifest, and the
/// findings of what the verifies by then covered (`integrity`, from [`integrity`]).
pub async fn source_state(
    app: &Annexa,
    as_of: DateTime<Utc>,
    integrity: Option<&annexa_reports::Integrity>,
) -> Result<Option<SourceState>, DbError> {
    let custody_controls = controls(app);
    if custody_controls.is_empty() {
        return Ok(None);
    }
    let head = app.db.latest_manifest(as_of).await?;
    Ok(Some(SourceState {
        collector: CUSTODY.to_string(),
        controls: custody_controls,
        provides: vec![CUSTODY.to_string()],
        max_age: None,
        latest: head.as_ref().map(|r| RunState {
            succeeded: true,
            ..super::run_state(r)
        }),
        latest_success: head.as_ref().map(|r| {
            let state = RunState {
                succeeded: true,
                error: None,
                ..super::run_state(r)
            };
            (state, manifest_object(r).into_iter().collect())
        }),
        unlisted: 0,
        findings: verify_findings(app, integrity, as_of).await?,
        upcoming: Vec::new(),
        upcoming_later: 0,
        next_run: None,
        attested: None,
    }))
}

/// The custody log over a report's period: the newest manifest before it (`before`), then
/// every run of the period, each evidenced by its manifest.
pub async fn report_input(
    app: &Annexa,
    before: DateTime<Utc>,
    period_runs: &[RunRow],
) -> Result<Option<CollectorInput>, DbError> {
    let custody_controls = controls(app);
    if custody_controls.is_empty() {
        return Ok(None);
    }
    let manifest = |r: &RunRow| -> Vec<ItemInput> {
        manifest_object(r)
            .map(|(sha256, object_key)| ItemInput {
                name: format!("run manifest of {}", r.collector),
                role: "manifest".into(),
                media_type: "application/json".into(),
                size: None,
                sha256,
                object_key,
            })
            .into_iter()
            .collect()
    };
    let mut runs = Vec::new();
    if let Some(prior) = app.db.latest_manifest(before).await? {
        runs.push(super::run_input(&prior, Vec::new()));
    }
    for run in period_runs {
        let mut r = super::run_input(run, manifest(run));
        // A failed collection still leaves a manifest: the custody log itself worked.
        r.succeeded = run.manifest_key.is_some();
        runs.push(r);
    }
    Ok(Some(CollectorInput {
        name: CUSTODY.to_string(),
        kind: CUSTODY.to_string(),
        max_age: super::shortest_max_age(app, &custody_controls),
        controls: custody_controls,
        schedule: String::new(),
        slots: Vec::new(),
        runs,
        figures: Vec::new(),
    }))
}

/// What the verifies by `as_of` covered (`None` before the first one).
pub async fn integrity(
    app: &Annexa,
    as_of: DateTime<Utc>,
) -> Result<Option<annexa_reports::Integrity>, DbError> {
    let events = audit::with_action(&app.db, AuditAction::Verified).await?;
    Ok(integrity_of(&events, as_of, app.config.verify.full_every))
}

fn integrity_of(
    events: &[crate::db::AuditEventRow],
    as_of: DateTime<Utc>,
    full_every: std::time::Duration,
) -> Option<annexa_reports::Integrity> {
    let cutoff = crate::db::ts(as_of);
    let events: Vec<_> = events
        .iter()
        .filter(|e| e.at.as_str() <= cutoff.as_str())
        .cloned()
        .collect();
    let passes = scrub::passes(&events);
    let details = |e: &crate::db::AuditEventRow| -> serde_json::Value {
        serde_json::from_str(&e.details).unwrap_or_default()
    };
    let (last, pass) = (details(events.last()?), passes.last()?);
    Some(annexa_reports::Integrity {
        last_verify: pass.at,
        scope: if pass.arc.is_some() {
            "rolling"
        } else {
            "full"
        }
        .into(),
        violations: last["violations"].as_u64().unwrap_or(0),
        kinds: last["kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect(),
        last_success: events
            .iter()
            .rev()
            .find(|e| details(e)["violations"].as_u64() == Some(0))
            .and_then(|e| crate::db::parse_ts("verified.at", &e.at).ok()),
        objects: last["objects"].as_u64().unwrap_or(0),
        bytes: last["scrub"]["bytes"].as_u64().unwrap_or(0),
        oldest_rehash: scrub::oldest_rehash(&passes, as_of),
        last_full: passes.iter().rev().find(|p| p.arc.is_none()).map(|p| p.at),
        full_every_days: full_every.as_secs() / 86_400,
    })
}

/// The custody log's findings at `as_of`, from what the verifies by then covered:
/// `integrity-violation` while the newest verify found violations (until a later one passes);
/// `scrub-overdue` once some object written more than `[verify] full_every` ago has not been
/// re-hashed within it.
async fn verify_findings(
    app: &Annexa,
    integrity: Option<&annexa_reports::Integrity>,
    as_of: DateTime<Utc>,
) -> Result<Vec<Finding>, DbError> {
    let full_every = app.config.verify.full_every;
    let mut findings = Vec::new();
    let horizon = as_of - chrono::TimeDelta::from_std(full_every).unwrap_or(chrono::TimeDelta::MAX);
    let oldest = integrity.and_then(|i| i.oldest_rehash);
    if oldest.is_none_or(|t| t < horizon) && app.db.latest_manifest(horizon).await?.is_some() {
        let days = full_every.as_secs() / 86_400;
        findings.push(Finding::new(
            FindingCode::ScrubOverdue,
            "annexa verify",
            match oldest {
                Some(t) => format!(
                    "some stored objects were last re-hashed on {}, more than {days} days ago ([verify] full_every); run `annexa verify --rolling` daily (the worker does) or `annexa verify`",
                    t.format("%Y-%m-%d %H:%M UTC")
                ),
                None => format!(
                    "stored evidence older than {days} days ([verify] full_every) has never been re-hashed by `annexa verify`; run it (the worker runs a rolling one daily)"
                ),
            },
        ));
    }
    if let Some(i) = integrity.filter(|i| i.violations > 0) {
        findings.push(Finding::new(
            FindingCode::IntegrityViolation,
            "annexa verify",
            format!(
                "`annexa verify` on {} found {} integrity violation(s) ({}); run it for the list, and do not trust this evidence until they are explained",
                i.last_verify.format("%Y-%m-%d %H:%M"),
                i.violations,
                i.kinds.join(", ")
            ),
        ));
    }
    Ok(findings)
}
