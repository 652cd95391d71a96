//! Period verdicts: gathers each source's history around `[from, to)` from the database (its
//! runs and the failing findings they recorded), then judges every control of a status
//! document over the period (`controls::period::judge`, pure).

use std::collections::HashMap;

use annexa_reports::StatusDocument;
use chrono::{DateTime, Utc};

use super::custody;
use crate::app::Annexa;
use crate::controls::CUSTODY;
use crate::controls::period::{History, Recorded, Success, judge};
use crate::db::{DbError, RunRow, RunStatus};
use crate::evidence::{facts, registry};

/// Adds the period fields to every control of `doc` (the status at the end of the period).
pub async fn judge_period(
    app: &Annexa,
    doc: &mut StatusDocument,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), DbError> {
    let to = to.min(doc.as_of).max(from);
    // A snapshot from before the period may still be fresh in it: look back one max age.
    let lookback = app
        .config
        .catalog
        .controls()
        .iter()
        .map(|c| c.max_age)
        .chain(app.config.collectors.iter().filter_map(|c| c.max_age))
        .max()
        .map_or(chrono::Duration::days(35), super::to_duration);
    let since = from.checked_sub_signed(lookback).unwrap_or(from);
    let (runs, fails) = futures::try_join!(
        app.db.runs_between(since, to),
        app.db.fail_findings_between(since, to),
    )?;
    let mut recorded: HashMap<&str, Vec<Recorded>> = HashMap::new();
    for f in &fails {
        let Ok(code) = f.code.parse() else { continue };
        recorded
            .entry(f.run_id.as_str())
            .or_default()
            .push(Recorded {
                code,
                subject: f.subject.clone(),
                message: f.message.clone(),
                controls: f.controls.clone(),
            });
    }
    let success = |r: &RunRow| Success {
        run_id: r.id.clone(),
        finished_at: r.finished_at.unwrap_or(r.started_at),
        expires: None,
        fails: recorded.get(r.id.as_str()).cloned().unwrap_or_default(),
    };
    let specs = app.config.job_specs();
    let mut histories = Vec::new();
    for config in &app.config.collectors {
        let mine: Vec<&RunRow> = runs.iter().filter(|r| r.collector == config.name).collect();
        let (earlier_success, earlier_failure) = app.db.latest_runs(&config.name, since).await?;
        let ran_earlier = earlier_success.is_some() || earlier_failure.is_some();
        let first_run = if ran_earlier {
            Some(since)
        } else {
            mine.first().map(|r| r.slot_time().unwrap_or(r.started_at))
        };
        let mut successes: Vec<Success> = Vec::new();
        for r in mine.iter().filter(|r| r.status == RunStatus::Succeeded) {
            let s = success(r);
            // Keep only the newest success before the period.
            if s.finished_at < from && successes.last().is_some_and(|p| p.finished_at < from) {
                successes.pop();
            }
            successes.push(s);
        }
        if successes.first().is_none_or(|s| s.finished_at >= from)
            && let Some(r) = &earlier_success
        {
            successes.insert(0, success(r));
        }
        let slots = match first_run {
            Some(first) if first < to => specs
                .iter()
                .find(|s| s.name == config.name)
                .map(|s| s.slots(first.max(from), to))
                .unwrap_or_default()
                .into_iter()
                .filter(|s| *s < to)
                .collect(),
            _ => Vec::new(),
        };
        let collector = registry::build(config, &app.config);
        let newest = facts::newest(app, &config.name, to)
            .await?
            .and_then(Result::ok);
        histories.push(History {
            collector: config.name.clone(),
            controls: registry::controls_of(
                config,
                collector.as_ref(),
                &app.config.catalog,
                newest.as_ref().and_then(|f| collector.controls_in(f)),
            ),
            max_age: config.max_age,
            first_run,
            successes,
            slots,
        });
    }
    // annexa's custody log: every finished run writes a manifest.
    let first_any = if histories.iter().any(|h| h.first_run == Some(since)) {
        Some(since)
    } else {
        runs.first().map(|r| r.started_at)
    };
    histories.push(History {
        collector: CUSTODY.to_string(),
        controls: custody::controls(app),
        max_age: None,
        first_run: first_any,
        successes: runs
            .iter()
            .map(|r| Success {
                fails: Vec::new(),
                ..success(r)
            })
            .collect(),
        slots: Vec::new(),
    });
    histories.extend(super::attested::histories(app, to).await?);
    for control in &mut doc.controls {
        if let Some(c) = app.config.catalog.get(&control.id) {
            control.period = Some(judge(
                c,
                control.status,
                &histories,
                from,
                to,
                app.config.verdicts.min_fresh_share,
            ));
        }
    }
    Ok(())
}
