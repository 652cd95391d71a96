//! Gathers what evaluation needs, at a point in time, from the database and the store: per
//! configured collector its newest runs and the check over its newest stored facts; for
//! annexa's custody log its newest run manifest; for attested evidence the approvals in
//! force. Then evaluates (a pure function).

use annexa_collectors::Finding;
use annexa_reports::StatusDocument;
use chrono::{DateTime, Utc};

use super::custody;
use crate::app::Annexa;
use crate::controls::{Judging, SourceState, evaluate};
use crate::db::DbError;
use crate::evidence::{facts, registry};

/// The items of a run that status lists; a run of more lists these, its facts and its manifest
/// (which names every item), and counts the rest.
const LISTED_ITEMS: usize = 1000;

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
    let mut upcoming = Vec::new();
    let mut upcoming_later = 0;
    let mut in_facts = None;
    let mut unlisted = 0;
    let latest_success = match &success {
        None => None,
        Some(run) => {
            let (evidence, total) = app.db.evidence_listed(&run.id, LISTED_ITEMS).await?;
            let at = annexa_collectors::AsOf {
                at: as_of,
                now: app.clock.now(),
            };
            if let Some(row) = evidence.iter().find(|r| r.role == crate::db::Role::Facts) {
                match facts::judge(app, collector.as_ref(), row.into(), at).await {
                    Ok(judged) => {
                        findings = judged.findings;
                        upcoming = judged.upcoming;
                        upcoming_later = judged.upcoming_later;
                        in_facts = judged.controls;
                    }
                    Err(violation) => findings.push(violation),
                }
            }
            unlisted = total.saturating_sub(evidence.len() as u64);
            let mut objects: Vec<(String, String)> = evidence
                .into_iter()
                .map(|e| (e.sha256, e.object_key))
                .collect();
            if unlisted > 0 {
                objects.extend(custody::manifest_object(run));
            }
            Some((super::run_state(run), objects))
        }
    };
    Ok(SourceState {
        collector: config.name.clone(),
        controls: registry::controls_of(config, collector.as_ref(), &app.config.catalog, in_facts),
        provides: collector.provides().into_iter().map(String::from).collect(),
        max_age: config.max_age,
        latest: latest.as_ref().map(super::run_state),
        latest_success,
        unlisted,
        findings: findings.into_iter().map(|f| app.apply_level(f)).collect(),
        upcoming,
        upcoming_later,
        next_run: config.schedule.next_after(as_of),
        attested: None,
    })
}

/// The status of every control at `as_of`, from evidence collected by then.
pub async fn status(app: &Annexa, as_of: DateTime<Utc>) -> Result<StatusDocument, DbError> {
    // One source per collector, two at a time (each a few indexed lookups): more would open
    // more connections than the lookups take, which on PostgreSQL costs an authentication each.
    use futures::{StreamExt, TryStreamExt};
    let collectors = &app.config.collectors;
    let mut sources: Vec<SourceState> = futures::stream::iter(0..collectors.len())
        .map(|i| source_state(app, &collectors[i], as_of))
        .buffered(2)
        .try_collect()
        .await?;

    let integrity = custody::integrity(app, as_of).await?;
    sources.extend(custody::source_state(app, as_of, integrity.as_ref()).await?);
    sources.extend(super::attested::source_states(app, as_of).await?);

    let accepted = crate::ledger::exceptions::as_of(&app.db, as_of).await?;
    let level = |code| app.level(code);
    let judging = Judging {
        level: &level,
        accepted: &accepted,
    };
    let mut doc = evaluate(&app.config.catalog, &sources, as_of, &judging);
    doc.integrity = integrity;
    doc.excluded = excluded(&app.config);
    Ok(doc)
}

/// The controls the Statement of Applicability excludes, with the standard's titles.
pub fn excluded(config: &crate::config::Config) -> Vec<annexa_reports::ExcludedControl> {
    let Some(soa) = &config.soa else {
        return Vec::new();
    };
    soa.excluded()
        .map(|r| annexa_reports::ExcludedControl {
            title: crate::controls::annex_title(&r.control)
                .unwrap_or_default()
                .to_string(),
            id: r.control.clone(),
            justification: r.justification.clone().unwrap_or_default(),
        })
        .collect()
}
