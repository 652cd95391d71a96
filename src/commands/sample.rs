//! `annexa sample`: draws a sample and writes it (JSON and CSV), re-checks a sample file
//! (`--verify`), or stores a tester's results (`--record`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::views::sample::{self, SampleError};

pub enum Request {
    Draw {
        control: String,
        population: String,
        period: Option<(DateTime<Utc>, DateTime<Utc>)>,
        size: Option<usize>,
        out: Option<PathBuf>,
    },
    Verify(PathBuf),
    Record(PathBuf),
}

fn failure(e: SampleError) -> Failure {
    let (exit, error) = match e {
        SampleError::Usage(m) => (Exit::Usage, anyhow::Error::msg(m)),
        SampleError::Empty(m) => (Exit::Gaps, anyhow::Error::msg(m)),
        SampleError::Integrity(m) => (Exit::Integrity, anyhow::Error::msg(m)),
        SampleError::Checkpoint(e) => return Failure::of_checkpoint(e),
        SampleError::Other(e) => (Exit::Runtime, e),
    };
    Failure { exit, error }
}

pub async fn sample(app: &Annexa, request: Request, json: bool) -> Result<Exit, Failure> {
    match request {
        Request::Draw {
            control,
            population,
            period,
            size,
            out,
        } => {
            let period =
                period.unwrap_or_else(|| crate::views::report::last_full_month(app.clock.now()));
            let drawn = sample::draw(app, &control, &population, period, size)
                .await
                .map_err(failure)?;
            let s = &drawn.sample;
            let path = out.unwrap_or_else(|| PathBuf::from(format!("sample-{}.json", s.id)));
            let csv_path = path.with_extension("csv");
            let write = |p: &PathBuf, bytes: &[u8]| {
                std::fs::write(p, bytes)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))
            };
            write(&path, (serde_json::to_string_pretty(s)? + "\n").as_bytes())?;
            write(&csv_path, &sample::csv(s)?)?;
            let text = if json {
                serde_json::to_string(&serde_json::json!({
                    "sample": s.id, "file": path, "csv": csv_path, "items": s.items.len(),
                    "selected": s.selected.iter().map(|x| &x.id).collect::<Vec<_>>(),
                    "frequency": s.frequency, "seed_tree_size": s.seed.tree_size,
                    "again": drawn.again,
                }))? + "\n"
            } else {
                let all = if s.size >= s.items.len() {
                    format!(
                        "all {} items (the population has no more than the {} asked)",
                        s.items.len(),
                        s.size
                    )
                } else {
                    format!("{} of {} items", s.selected.len(), s.items.len())
                };
                format!(
                    "sample {}: {all} of {} for {} ({}), seeded by the root of the checkpoint of {} leaves, signed after the population was frozen at leaf {}{}\nwritten to {} and {}: fill in tested_by, result (pass or fail) and exception, then `annexa sample --record {}`\n",
                    s.id,
                    s.population,
                    s.control,
                    s.frequency,
                    s.seed.tree_size,
                    s.frozen.leaf_index,
                    if drawn.again {
                        "; drawn before over the same records, so the same sample"
                    } else {
                        ""
                    },
                    path.display(),
                    csv_path.display(),
                    csv_path.display()
                )
            };
            print(text.as_bytes())?;
            Ok(Exit::Ok)
        }
        Request::Verify(file) => {
            let parsed: Result<crate::ledger::sample::Sample, String> = std::fs::read(&file)
                .map_err(|e| Failure::usage(anyhow::anyhow!("cannot read {}: {e}", file.display())))
                .map(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
            let problems = match &parsed {
                Ok(s) => sample::verify(app, s).await.map_err(failure)?,
                Err(e) => vec![format!("not a sample file `annexa sample` wrote: {e}")],
            };
            let mut text = String::new();
            for p in &problems {
                text.push_str(&format!("VIOLATION {}: {p}\n", file.display()));
            }
            if let (Ok(s), true) = (&parsed, problems.is_empty()) {
                text.push_str(&format!(
                    "sample {} verified: the population of {} items is the one frozen at leaf {} and the records still give it; the seed is the root of the signed checkpoint of {} leaves; the {} selected are the lowest SHA-256(seed ‖ id)\n",
                    s.id,
                    s.items.len(),
                    s.frozen.leaf_index,
                    s.seed.tree_size,
                    s.selected.len()
                ));
            }
            print(text.as_bytes())?;
            Ok(if problems.is_empty() {
                Exit::Ok
            } else {
                Exit::Integrity
            })
        }
        Request::Record(file) => {
            let (id, evidence) = sample::record(app, &file).await.map_err(failure)?;
            print(
                format!(
                    "the results of sample {id} are attested evidence {evidence}, pending review: `annexa review {evidence} --approve|--reject --by NAME`\n"
                )
                .as_bytes(),
            )?;
            Ok(Exit::Ok)
        }
    }
}
