//! `annexa run` (collect what is due, then evaluate) and `annexa collect` (collect now).

use serde::Serialize;

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::Held;
use crate::cli::output::{complain, print, say};
use crate::config::{CollectorConfig, ConfigError};
use crate::evidence::runner::{RunOutcome, run_collector};
use crate::ops::Level;
use crate::ops::scheduler::{Delivery, Task, TickError};

/// One line of machine output per run.
#[derive(Serialize)]
struct RunSummary<'a> {
    collector: &'a str,
    run_id: &'a str,
    status: &'a str,
    items: usize,
    findings: usize,
    manifest_key: Option<&'a str>,
    ledger_index: Option<i64>,
    error: Option<&'a str>,
}

impl<'a> From<&'a RunOutcome> for RunSummary<'a> {
    fn from(o: &'a RunOutcome) -> Self {
        RunSummary {
            collector: &o.run.collector,
            run_id: &o.run.id,
            status: o.run.status.as_str(),
            items: o.items,
            findings: o.findings.len(),
            manifest_key: o.run.manifest_key.as_deref(),
            ledger_index: o.run.ledger_index,
            error: o.run.error.as_deref(),
        }
    }
}

fn describe(app: &Annexa, o: &RunOutcome) -> String {
    let items = o.items;
    let mut line = format!(
        "{} ({}): {} — {items} item{} stored in {}",
        o.run.collector,
        o.run.kind,
        o.run.status,
        if items == 1 { "" } else { "s" },
        app.store_location(),
    );
    if let (Some(key), Some(idx)) = (&o.run.manifest_key, o.run.ledger_index) {
        line.push_str(&format!("\n    manifest {key} (ledger leaf #{idx})"));
    }
    if let Some(e) = &o.run.error {
        line.push_str(&format!("\n    error: {e}"));
    }
    line
}

/// A failed run is an error line in the log.
fn level(o: &RunOutcome) -> Level {
    if o.succeeded() {
        Level::Info
    } else {
        Level::Error
    }
}

/// Refuses to append to a ledger a published checkpoint contradicts (a database restored from
/// an older copy must not grow a second history), then records a changed config.
async fn guarded_note_config(app: &Annexa) -> Result<(), Failure> {
    crate::ledger::checkpoint::guard_append(app)
        .await
        .map_err(Failure::of_checkpoint)?;
    crate::evidence::runner::note_config(app).await?;
    Ok(())
}

/// Runs collectors now, outside their schedule (no slot, so no lease: any number may run).
async fn collect_now(
    app: &Annexa,
    selected: Vec<&CollectorConfig>,
    json: bool,
) -> Result<Vec<RunOutcome>, Failure> {
    for swept in crate::ops::scheduler::sweep_stuck_runs(app).await? {
        if !json {
            say(Level::Warn, &format!("swept: {swept}"))?;
        }
    }
    let mut outcomes = Vec::new();
    for config in crate::ops::scheduler::in_run_order(selected.into_iter()) {
        if let Some(outcome) = run_collector(app, config, None).await? {
            if !json {
                say(level(&outcome), &describe(app, &outcome))?;
            }
            outcomes.push(outcome);
            // What this run recorded is signed at once; a key that cannot sign is for
            // `annexa checkpoint` to explain, not a reason to fail the collection.
            match crate::ledger::checkpoint::after_run(app).await {
                Ok(Some(made)) if !json => say(
                    Level::Info,
                    &format!(
                        "checkpoint of tree size {} signed by key {}",
                        made.checkpoint.tree_size, made.checkpoint.key_id
                    ),
                )?,
                Ok(_) => {}
                Err(e) => complain(
                    json,
                    Level::Warn,
                    &format!("no checkpoint after the run: {e:#}"),
                ),
            }
        }
    }
    Ok(outcomes)
}

pub async fn run(app: &Annexa, json: bool) -> Result<Exit, Failure> {
    guarded_note_config(app).await?;
    if app.config.collectors.is_empty() && !json {
        say(
            Level::Warn,
            "no collectors configured: add a [[collector]] table (see annexa.example.toml)",
        )?;
    }
    // One tick of the worker's scheduler: due slots, due tasks, gaps and alerts.
    let (_never, stop) = tokio::sync::watch::channel(false);
    let client = crate::ops::alerts::http_client(&app.config);
    let holder = crate::ops::scheduler::holder_id();
    // What the tick's sinks print (the stdout sink, undeliverable reports) comes last.
    let held = Held::new(json);
    // `annexa run` leaves the daily verify to the worker (or to cron calling `annexa verify`).
    let tasks = [Task::Checkpoint, Task::Report];
    let tick = crate::ops::scheduler::tick(
        app,
        &tasks,
        &holder,
        &client,
        &held,
        Delivery::Inline,
        &stop,
    )
    .await
    .map_err(|e| match e {
        TickError::Ledger(e) => Failure::of_checkpoint(e),
        other => other.into(),
    })?;
    if !json {
        for o in &tick.runs {
            say(level(o), &describe(app, o))?;
        }
        for (name, slot) in &tick.not_due {
            let schedule = app.config.collector(name).map(|c| c.schedule.text.as_str());
            say(
                Level::Info,
                &format!(
                    "{name}: not due (slot {} already collected; schedule {})",
                    slot.format("%Y-%m-%d %H:%M UTC"),
                    schedule.unwrap_or_default()
                ),
            )?;
        }
        for (name, held) in &tick.busy {
            say(
                Level::Info,
                &format!(
                    "{name}: skipped, another process ({}) is running it (lease until {})",
                    held.holder,
                    held.until.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            )?;
        }
        for swept in &tick.swept {
            say(Level::Warn, &format!("swept: {swept}"))?;
        }
        for (task, done) in &tick.tasks {
            say(Level::Info, &format!("{}: {done}", task.name()))?;
        }
    }
    for e in &tick.errors {
        complain(json, Level::Error, &e.to_string());
    }
    let doc = crate::views::status::status(app, app.clock.now()).await?;
    if json {
        let runs: Vec<RunSummary> = tick.runs.iter().map(RunSummary::from).collect();
        let out = serde_json::json!({ "runs": runs, "status": doc });
        print(format!("{out}\n").as_bytes())?;
    } else {
        println!();
        let mut table = Vec::new();
        annexa_reports::render_status_table(&doc, &mut table)?;
        print(&table)?;
        if tick
            .delivery
            .is_some_and(|d| d.delivered + d.failed + d.overdue > 0)
        {
            println!();
        }
    }
    held.flush()?;
    Ok(
        if !tick.errors.is_empty() || tick.runs.iter().any(|o| !o.succeeded()) {
            Exit::Runtime
        } else if doc.has_gaps() {
            Exit::Gaps
        } else {
            Exit::Ok
        },
    )
}

pub async fn collect(
    app: &Annexa,
    names: &[String],
    all: bool,
    json: bool,
) -> Result<Exit, Failure> {
    let selected: Vec<&CollectorConfig> = if all {
        app.config.collectors.iter().collect()
    } else {
        if names.is_empty() {
            return Err(Failure::usage(usage(
                app,
                "name the collectors to run, or pass --all",
            )));
        }
        let mut selected = Vec::new();
        for n in names {
            match app.config.collector(n) {
                Some(c) => selected.push(c),
                None => {
                    return Err(Failure::usage(usage(
                        app,
                        &format!("no collector named `{n}`"),
                    )));
                }
            }
        }
        selected
    };
    guarded_note_config(app).await?;
    let outcomes = collect_now(app, selected, json).await?;
    if json {
        let runs: Vec<RunSummary> = outcomes.iter().map(RunSummary::from).collect();
        print(format!("{}\n", serde_json::json!({ "runs": runs })).as_bytes())?;
    }
    Ok(if outcomes.iter().all(RunOutcome::succeeded) {
        Exit::Ok
    } else {
        Exit::Runtime
    })
}

fn usage(app: &Annexa, problem: &str) -> ConfigError {
    let names: Vec<&str> = app
        .config
        .collectors
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    ConfigError {
        path: app.config.path.clone(),
        problems: vec![format!(
            "{problem}; configured collectors: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )],
    }
}
