//! Gathers what evaluation needs, at a point in time, from the database and the store: per
//! configured collector its newest runs and the check over its newest stored facts; for
//! annexa's custody log its newest run manifest. Then evaluates (a pure function).

use annexa_collectors::{Finding, FindingCode};
use annexa_reports::StatusDocument;
use chrono::{DateTime, Utc};

use super::custody;
use crate::app::Annexa;
use crate::controls::{CUSTODY, RunState, SourceState, evaluate};
use crate::db::{DbError, RunRow, RunStatus};
use crate::evidence::{facts, registry};
use crate::ledger::audit::{self, AuditAction};

fn run_state(run: &RunRow) -> RunState {
    RunState {
        run_id: run.id.clone(),
        succeeded: run.status == RunStatus::Succeeded,
        finished_at: run.finished_at.unwrap_or(run.started_at),
        error: run.error.as_ref().map(|e| {
            let code = run
                .error_code
                .as_deref()
                .and_then(|c| c.parse().ok())
                .unwrap_or(FindingCode::CollectorFailed);
            (code, e.clone())
        }),
    }
}

/// What evaluation needs of one collector at `as_of`.
async fn source_state(
    app: &Annexa,
    config: &crate::config::CollectorConfig,
    as_of: DateTime<Utc>,
) -> Result<SourceState, DbError> {
    let collector = registry::build(config, &app.config);
    let (success, failure) = app.db.latest_runs(&config.name, as_of).await?;
    let latest = crate::db::newer(success.clone(), failure);
    let mut findings: Vec<Finding> = Vec::new();
    let latest_success = match &success {
        None => None,
        Some(run) => {
            let evidence = app.db.evidence_of_run(&run.id).await?;
            match facts::of_rows(app, &evidence).await {
                Some(Ok(facts)) => findings = collector.check(&facts, as_of),
                Some(Err(violation)) => findings.push(violation),
                None => {}
            }
            let objects = evidence
                .into_iter()
                .map(|e| (e.sha256, e.object_key))
                .collect();
            Some((run_state(run), objects))
        }
    };
    Ok(SourceState {
        collector: config.name.clone(),
        controls: registry::controls_of(config, collector.as_ref(), &app.config.catalog),
        max_age: config.max_age,
        latest: latest.as_ref().map(run_state),
        latest_success,
        findings: findings.into_iter().map(|f| app.apply_level(f)).collect(),
    })
}

/// The newest `annexa verify` by `as_of` found violations: an `integrity-violation` finding on
/// the custody log until a later verify passes.
async fn verify_findings(app: &Annexa, as_of: DateTime<Utc>) -> Result<Vec<Finding>, DbError> {
    let events = audit::with_action(&app.db, AuditAction::Verified).await?;
    let Some(last) = events
        .iter()
        .rev()
        .find(|e| e.at.as_str() <= crate::db::ts(as_of).as_str())
    else {
        return Ok(Vec::new());
    };
    let details: serde_json::Value = serde_json::from_str(&last.details).unwrap_or_default();
    let count = details["violations"].as_u64().unwrap_or(0);
    if count == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![Finding::new(
        FindingCode::IntegrityViolation,
        "annexa verify",
        format!(
            "`annexa verify` on {} found {count} integrity violation(s) ({}); run it for the list, and do not trust this evidence until they are explained",
            &last.at[..16].replace('T', " "),
            details["kinds"]
                .as_array()
                .map(|k| k
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
    )])
}

/// The status of every control at `as_of`, from evidence collected by then.
pub async fn status(app: &Annexa, as_of: DateTime<Utc>) -> Result<StatusDocument, DbError> {
    // One source per collector, two at a time (each a few indexed lookups): more would open
    // more connections than the lookups take, which on PostgreSQL costs an authentication each.
    use futures::{StreamExt, TryStreamExt};
    let mut sources: Vec<SourceState> = futures::stream::iter(&app.config.collectors)
        .map(|config| source_state(app, config, as_of))
        .buffered(2)
        .try_collect()
        .await?;

    // The custody log: every run manifest is evidence that evidence collection works.
    let custody_controls = custody::controls(app);
    if !custody_controls.is_empty() {
        let head = app.db.latest_manifest(as_of).await?;
        sources.push(SourceState {
            collector: CUSTODY.to_string(),
            controls: custody_controls,
            max_age: None,
            latest: head.as_ref().map(|r| RunState {
                succeeded: true,
                ..run_state(r)
            }),
            latest_success: head.as_ref().map(|r| {
                let state = RunState {
                    succeeded: true,
                    error: None,
                    ..run_state(r)
                };
                (state, custody::manifest_object(r).into_iter().collect())
            }),
            findings: verify_findings(app, as_of).await?,
        });
    }

    Ok(evaluate(&app.config.catalog, &sources, as_of, &|code| {
        app.level(code)
    }))
}
