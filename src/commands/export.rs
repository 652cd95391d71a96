//! `annexa export [--from D --to D] --out DIR`: writes the evidence package of a period
//! (default: the last full month) and says what it holds.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn export(
    app: &Annexa,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    out: &Path,
    json: bool,
) -> Result<Exit, Failure> {
    let period = period.unwrap_or_else(|| crate::views::report::last_full_month(app.clock.now()));
    let exported = crate::views::export::export(app, period, out)
        .await
        .map_err(super::prove::failure)?;
    let c = &exported.contents;
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "package_id": c.id,
            "path": exported.path,
            "runs": c.runs.len(),
            "objects": exported.objects,
            "object_bytes": exported.bytes,
            "tree_size": c.checkpoint.tree_size,
            "root_hash": c.checkpoint.root_hash,
            "previous_tree_size": c.previous.as_ref().map(|p| p.tree_size),
        }))? + "\n"
    } else {
        format!(
            "package {} for {} to {}: {} runs, {} objects ({} bytes), each manifest proved in the checkpoint of {} leaves{}; written to {}\ncheck it with `annexa verify --bundle {} --keys VERIFIER-FILE` or `python3 verify.py VERIFIER-FILE` inside it\n",
            c.id,
            c.period.from,
            c.period.to,
            c.runs.len(),
            exported.objects,
            exported.bytes,
            c.checkpoint.tree_size,
            match &c.previous {
                Some(p) => format!(
                    ", which extends the previous export's of {} leaves",
                    p.tree_size
                ),
                None => String::new(),
            },
            exported.path.display(),
            exported.path.display(),
        )
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
