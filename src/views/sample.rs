//! `annexa sample`: draws a sample of a control's population over a period (the rules and the
//! file format are `ledger::sample`), checks a sample file against the records, and stores a
//! tester's results as attested evidence for the control.
//!
//! Populations are what the report of the period lists: the incidents, restore drills and job
//! slots the collectors' folds show (each with the facts object of the snapshot it comes from),
//! the runs of the control's collectors (each with its manifest), and the control's attested
//! evidence.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::db::ts;
use crate::ledger::audit::{self, Actor, AuditAction};
use crate::ledger::sample::{self, Frozen, Item, Sample, Seed};
use crate::ledger::{self, package::Period};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Asked for something that cannot be answered (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Nothing to sample (exit 3): never an empty pass.
    #[error("{0}")]
    Empty(String),
    /// A sample file or the records do not hold what they should (exit 4).
    #[error("{0}")]
    Integrity(String),
    #[error(transparent)]
    Checkpoint(#[from] crate::ledger::checkpoint::CheckpointError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::db::DbError> for SampleError {
    fn from(e: crate::db::DbError) -> Self {
        SampleError::Other(e.into())
    }
}

/// A drawn sample, and what a tester should know of it.
pub struct Drawn {
    pub sample: Sample,
    /// Drawn before over the same records: the same sample again.
    pub again: bool,
}

/// Draws `size` items (default: by how often they happen) of `population` for `control` over
/// `[from, to)`.
pub async fn draw(
    app: &Annexa,
    control: &str,
    population: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    size: Option<usize>,
) -> Result<Drawn, SampleError> {
    let items = population_of(app, control, population, (from, to)).await?;
    if items.is_empty() {
        return Err(SampleError::Empty(format!(
            "nothing to sample: {control} has no {population} from {} to {}; a test of an empty population is not a pass",
            annexa_reports::time(from),
            annexa_reports::time(to)
        )));
    }
    let (frequency, default) = sample::default_size(&app.config.sample, items.len(), (from, to));
    let size = match size {
        Some(0) => {
            return Err(SampleError::Usage(
                "--size 0: draw at least one item".into(),
            ));
        }
        Some(n) => n,
        None => default,
    };
    let population_sha256 = sample::population_sha256(&items);
    let period = Period {
        from: annexa_reports::time(from),
        to: annexa_reports::time(to),
    };

    // The population frozen once: the same records find the same event, and so the same seed.
    let details = serde_json::json!({
        "control": control,
        "population": population,
        "period": period,
        "population_sha256": population_sha256,
        "items": items.len(),
    });
    let earlier = audit::with_action(&app.db, AuditAction::SampleDrawn)
        .await?
        .into_iter()
        .find(|e| {
            serde_json::from_str::<serde_json::Value>(&e.details)
                .ok()
                .as_ref()
                == Some(&details)
                && e.ledger_index >= 0
        });
    let again = earlier.is_some();
    let event = match earlier {
        Some(e) => e,
        None => {
            crate::ledger::checkpoint::guard_append(app).await?;
            audit::record(
                &app.db,
                Actor::Operator,
                AuditAction::SampleDrawn,
                &format!("{control} {population}"),
                details,
                app.clock.now(),
            )
            .await?
        }
    };
    let index = event.ledger_index as u64;
    let checkpoint = match app
        .db
        .checkpoints()
        .await?
        .into_iter()
        .find(|c| c.tree_size as u64 > index)
    {
        Some(c) => c,
        None => crate::ledger::checkpoint::create(app).await?.checkpoint,
    };
    let leaves = ledger::decode_leaves(&app.db.leaves().await?)
        .map_err(|e| SampleError::Integrity(format!("{e}; run `annexa verify`")))?;
    let tree = leaves.get(..checkpoint.tree_size as usize).ok_or_else(|| {
        SampleError::Integrity(
            "the ledger is shorter than its checkpoint; run `annexa verify`".into(),
        )
    })?;
    let seed = ledger::root(tree);
    let leaf_bytes = String::from_utf8(audit::leaf_bytes(&event)).expect("canonical JSON is UTF-8");
    let path =
        ledger::inclusion_proof(tree, index as usize).expect("the checkpoint holds the event");
    let sample = Sample {
        format: sample::FORMAT.into(),
        id: format!(
            "{control}-{population}-{}-{}",
            from.format("%Y-%m-%d"),
            &population_sha256[..12]
        ),
        control: control.into(),
        population: population.into(),
        period,
        frequency,
        size,
        selected: sample::select(&items, &seed, size),
        population_sha256,
        items,
        frozen: Frozen {
            event: leaf_bytes,
            leaf_index: index,
            audit_path: path.iter().map(hex::encode).collect(),
        },
        seed: Seed {
            checkpoint: checkpoint.note,
            origin: checkpoint.origin,
            tree_size: checkpoint.tree_size as u64,
            root_hash: hex::encode(seed),
        },
    };
    let verifiers = crate::ledger::checkpoint::verifiers(app).await?;
    let problems = sample::check(&sample, |note| signed_by(note, &verifiers));
    if !problems.is_empty() {
        return Err(SampleError::Integrity(format!(
            "the sample does not check: {}; run `annexa verify`",
            problems.join("; ")
        )));
    }
    Ok(Drawn { sample, again })
}

/// Checks a sample file: on its own (`ledger::sample::check`), and against the records: the
/// audit event and the checkpoint are this ledger's, and the population is still what the
/// records show.
pub async fn verify(app: &Annexa, sample: &Sample) -> Result<Vec<String>, SampleError> {
    let verifiers = crate::ledger::checkpoint::verifiers(app).await?;
    let mut problems = sample::check(sample, |note| signed_by(note, &verifiers));
    let leaves = app.db.leaves().await?;
    match leaves.get(sample.frozen.leaf_index as usize) {
        Some(leaf) if *leaf == hex::encode(ledger::leaf_hash(sample.frozen.event.as_bytes())) => {}
        _ => problems.push(format!(
            "ledger leaf {} is not the audit event the sample names",
            sample.frozen.leaf_index
        )),
    }
    let recorded = app.db.checkpoints().await?;
    if !recorded.iter().any(|c| c.note == sample.seed.checkpoint) {
        problems.push("the seed's checkpoint is not one this ledger signed".into());
    }
    let time = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.to_utc());
    match (time(&sample.period.from), time(&sample.period.to)) {
        (Ok(from), Ok(to)) => {
            let now = population_of(app, &sample.control, &sample.population, (from, to)).await?;
            let sha = sample::population_sha256(&now);
            if sha != sample.population_sha256 {
                problems.push(format!(
                    "the records now give another population ({} items, {sha}): the evidence changed since the sample was drawn",
                    now.len()
                ));
            }
        }
        _ => problems.push("the period is not two RFC 3339 times".into()),
    }
    Ok(problems)
}

/// A signed note with a valid signature by one of `verifiers`.
fn signed_by(note: &str, verifiers: &[crate::ledger::note::Verifier]) -> Result<(), String> {
    let note = crate::ledger::note::SignedNote::parse(note)?;
    match note.verified_by(verifiers)? {
        signers if signers.is_empty() => Err("not signed by a key annexa recorded".into()),
        _ => Ok(()),
    }
}

/// The population of `control` over `[from, to)` as the records show it, sorted by id.
pub async fn population_of(
    app: &Annexa,
    control: &str,
    population: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Item>, SampleError> {
    if !sample::POPULATIONS.contains(&population) {
        return Err(SampleError::Usage(format!(
            "--population {population}: one of {}",
            sample::POPULATIONS.join(", ")
        )));
    }
    if app.config.catalog.get(control).is_none() {
        return Err(SampleError::Usage(format!(
            "--control {control}: not a control annexa judges here; `annexa controls` lists them"
        )));
    }
    let end = app.clock.now().min(to);
    let mut items = if population == "attested" {
        attested(app, control, (from, end)).await?
    } else {
        let key = crate::ledger::keyring::signing_key(app).await?;
        let (input, mut members) =
            super::report::gather_with_members(app, (from, to), end, end, &key, true).await?;
        let sources: Vec<_> = input
            .collectors
            .iter()
            .filter(|c| c.controls.iter().any(|id| id == control) && c.kind != "attested")
            .collect();
        if population == "runs" {
            let names: Vec<&str> = sources.iter().map(|c| c.name.as_str()).collect();
            super::report::runs_between(app, from, end)
                .await?
                .into_iter()
                .filter(|r| names.contains(&r.collector.as_str()))
                .filter_map(|r| {
                    Some(Item {
                        sha256: r.manifest_sha256.clone()?,
                        object_key: r.manifest_key.clone()?,
                        at: ts(r.finished_at?),
                        summary: format!(
                            "run of {}: {}{}",
                            r.collector,
                            r.status.as_str(),
                            r.error
                                .as_ref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        ),
                        id: r.id,
                    })
                })
                .collect()
        } else {
            let mut items = Vec::new();
            for source in sources {
                let facts_of: HashMap<&str, &annexa_reports::model::ItemInput> = source
                    .runs
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r.run_id.as_str(),
                            r.items.iter().find(|i| i.role == "facts")?,
                        ))
                    })
                    .collect();
                for m in members.remove(&source.name).unwrap_or_default() {
                    if m.population != population {
                        continue;
                    }
                    let run = m.snapshot.run_id.as_str();
                    let (sha256, object_key) = match facts_of.get(run) {
                        Some(i) => (i.sha256.clone(), i.object_key.clone()),
                        // The snapshot before the period: its rows were not read.
                        None => app
                            .db
                            .evidence_of_run(run)
                            .await?
                            .into_iter()
                            .find(|e| e.role.as_str() == "facts")
                            .map(|e| (e.sha256, e.object_key))
                            .ok_or_else(|| {
                                SampleError::Integrity(format!(
                                    "run {run} shows {} but has no facts object; run `annexa verify`",
                                    m.id
                                ))
                            })?,
                    };
                    items.push(Item {
                        id: m.id,
                        sha256,
                        object_key,
                        at: ts(m.at),
                        summary: m.summary,
                    });
                }
            }
            items
        }
    };
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items.dedup_by(|a, b| a.id == b.id);
    Ok(items)
}

/// The control's attested evidence attached in the period, each with its first file.
async fn attested(
    app: &Annexa,
    control: &str,
    (from, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Item>, SampleError> {
    Ok(crate::evidence::attested::all(app, end)
        .await?
        .into_iter()
        .filter(|a| {
            a.attestation.controls.iter().any(|c| c == control)
                && (from..end).contains(&a.attached_at)
        })
        .filter_map(|a| {
            let file = a.files.first()?;
            Some(Item {
                id: a.id.clone(),
                sha256: file.sha256.clone(),
                object_key: file.object_key.clone(),
                at: ts(a.attached_at),
                summary: format!(
                    "{} (attested by {}; {})",
                    a.attestation.title,
                    a.attestation.owner,
                    a.state(end)
                ),
            })
        })
        .collect())
}

/// The columns of a sample's CSV file; the last three are the tester's.
pub const CSV_COLUMNS: [&str; 10] = [
    "sample",
    "rank",
    "id",
    "at",
    "summary",
    "sha256",
    "object_key",
    "tested_by",
    "result",
    "exception",
];

/// The sample as a CSV file for the tester, with empty tester columns.
pub fn csv(sample: &Sample) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_COLUMNS)?;
    for s in &sample.selected {
        let item = sample
            .items
            .iter()
            .find(|i| i.id == s.id)
            .expect("a selected item is in the population");
        let rank = s.rank.to_string();
        out.write_record([
            sample.id.as_str(),
            &rank,
            &item.id,
            &item.at,
            &item.summary,
            &item.sha256,
            &item.object_key,
            "",
            "",
            "",
        ])?;
    }
    Ok(out.into_inner()?)
}

/// Stores a tester's filled-in CSV (`results`) and its sample file (the `.json` beside it) as
/// attested evidence for the sample's control, once the sample checks against the records and
/// every selected item has a tester and a result (`pass`, or `fail` with the exception).
pub async fn record(app: &Annexa, results: &Path) -> Result<(String, String), SampleError> {
    let usage = SampleError::Usage;
    let json = results.with_extension("json");
    let sample: Sample = std::fs::read(&json)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| {
            usage(format!(
                "{}: {e}; keep the sample file `annexa sample` wrote beside its CSV",
                json.display()
            ))
        })?;
    let problems = verify(app, &sample).await?;
    if !problems.is_empty() {
        return Err(SampleError::Integrity(format!(
            "{} does not check, so its results are not recorded: {}",
            json.display(),
            problems.join("; ")
        )));
    }
    let mut reader = csv::Reader::from_path(results)
        .map_err(|e| usage(format!("{}: {e}", results.display())))?;
    let mut problems = Vec::new();
    let (mut passed, mut failed, mut testers) = (0, 0, Vec::<String>::new());
    let mut seen = Vec::new();
    for (n, row) in reader.deserialize::<HashMap<String, String>>().enumerate() {
        let row = row.map_err(|e| usage(format!("{}: {e}", results.display())))?;
        let cell = |c: &str| row.get(c).map(|v| v.trim()).unwrap_or("");
        let line = n + 2;
        let id = cell("id");
        let Some(item) = sample.items.iter().find(|i| i.id == id) else {
            problems.push(format!(
                "line {line}: {id} is not in the sample's population"
            ));
            continue;
        };
        if !sample.selected.iter().any(|s| s.id == id) || cell("sha256") != item.sha256 {
            problems.push(format!(
                "line {line}: {id} is not the selected item (id or SHA-256 differ)"
            ));
        }
        seen.push(id.to_string());
        if cell("tested_by").is_empty() {
            problems.push(format!(
                "line {line}: {id}: tested_by is empty; name who tested it"
            ));
        } else if !testers.iter().any(|t| t == cell("tested_by")) {
            testers.push(cell("tested_by").to_string());
        }
        match (cell("result"), cell("exception")) {
            ("pass", _) => passed += 1,
            ("fail", "") => problems.push(format!(
                "line {line}: {id}: result fail without an exception; describe what failed"
            )),
            ("fail", _) => failed += 1,
            (other, _) => problems.push(format!(
                "line {line}: {id}: result `{other}`; write pass or fail"
            )),
        }
    }
    for s in &sample.selected {
        if !seen.contains(&s.id) {
            problems.push(format!(
                "{} (rank {}) has no row: every selected item is tested",
                s.id, s.rank
            ));
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!(
            "nothing was recorded:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    let now = app.clock.now();
    let request = crate::evidence::attested::Request {
        files: vec![results.to_path_buf(), json.clone()],
        controls: vec![sample.control.clone()],
        title: Some(format!(
            "Test of sample {}: {passed} passed, {failed} exception(s) of {}",
            sample.id,
            sample.selected.len()
        )),
        owner: Some(testers.join(", ")),
        effective: Some(now),
        max_age: Some(std::time::Duration::from_secs(365 * 86_400)),
        note: Some(format!(
            "{} of {} {} from {} to {}, seeded by the checkpoint of {} leaves",
            sample.selected.len(),
            sample.items.len(),
            sample.population,
            sample.period.from,
            sample.period.to,
            sample.seed.tree_size
        )),
        ..Default::default()
    };
    let checked = request
        .check(&app.config, now)
        .map_err(|p| usage(format!("nothing was recorded:\n  - {}", p.join("\n  - "))))?;
    let (run, _) = crate::evidence::attested::attach(app, checked)
        .await
        .map_err(anyhow::Error::from)?;
    audit::record(
        &app.db,
        Actor::Operator,
        AuditAction::SampleTested,
        &sample.id,
        serde_json::json!({
            "evidence": run.id,
            "passed": passed,
            "failed": failed,
            "tested_by": testers,
            "population_sha256": sample.population_sha256,
        }),
        now,
    )
    .await?;
    Ok((sample.id, run.id))
}

/// The samples drawn by `as_of` for a period overlapping `[from, to)`, with their results, as
/// a report lists them, and their controls; None when there are none.
pub async fn report_table(
    app: &Annexa,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    as_of: DateTime<Utc>,
) -> Result<Option<(annexa_collectors::FigureTable, Vec<String>)>, crate::db::DbError> {
    let cutoff = ts(as_of);
    let until = |e: &&crate::db::AuditEventRow| e.at <= cutoff;
    let tested = audit::with_action(&app.db, AuditAction::SampleTested).await?;
    let drawn = audit::with_action(&app.db, AuditAction::SampleDrawn).await?;
    let mut table = annexa_collectors::FigureTable::new(
        "Samples drawn for the period (annexa sample)",
        &[
            "Sample",
            "Control",
            "Population",
            "Frozen",
            "Ledger leaf",
            "Results",
        ],
    );
    let mut controls = Vec::new();
    for e in drawn.iter().filter(until) {
        let Ok(d) = serde_json::from_str::<serde_json::Value>(&e.details) else {
            continue;
        };
        let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
        let period = (
            d["period"]["from"].as_str().unwrap_or(""),
            d["period"]["to"].as_str().unwrap_or(""),
        );
        let overlaps = period.0 < annexa_reports::time(to).as_str()
            && period.1 > annexa_reports::time(from).as_str();
        if !overlaps {
            continue;
        }
        let id = format!(
            "{}-{}-{}-{}",
            text("control"),
            text("population"),
            &period.0.get(..10).unwrap_or(""),
            text("population_sha256").get(..12).unwrap_or("")
        );
        let results: Vec<String> = tested
            .iter()
            .filter(until)
            .filter(|t| t.subject == id)
            .filter_map(|t| {
                let r: serde_json::Value = serde_json::from_str(&t.details).ok()?;
                Some(format!(
                    "{} passed, {} exception(s), tested by {} (evidence {})",
                    r["passed"],
                    r["failed"],
                    r["tested_by"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    r["evidence"].as_str().unwrap_or("")
                ))
            })
            .collect();
        controls.push(text("control"));
        table = table.row([
            id,
            text("control"),
            format!(
                "{} {} from {} to {}",
                d["items"],
                text("population"),
                period.0,
                period.1
            ),
            e.at.get(..16).unwrap_or("").replace('T', " ") + " UTC",
            e.ledger_index.to_string(),
            if results.is_empty() {
                "not yet tested".to_string()
            } else {
                results.join("; ")
            },
        ]);
    }
    Ok((!table.rows.is_empty()).then_some((table, controls)))
}
