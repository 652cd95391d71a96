//! `annexa report`: writes the signed bundle and prints where it went.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use annexa_reports::Format;

pub async fn report(
    app: &Annexa,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    formats: &[Format],
    out: Option<&Path>,
    as_of: Option<DateTime<Utc>>,
    json: bool,
) -> Result<Exit, Failure> {
    let bundle = crate::views::report::write_bundle(app, period, formats, out, as_of).await?;
    let (id, model, paths, dir) = (&bundle.id, &bundle.model, &bundle.paths, &bundle.dir);
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "report_id": id,
            "dir": dir,
            "stored_under": format!("reports/{id}/"),
            "files": paths,
            "gaps": model.has_gaps(),
        }))? + "\n"
    } else {
        let mut t = format!(
            "report {id} for {} ({} of {} controls satisfied at the end of the period), signed by key {}, stored under reports/{id}/ in {}:\n",
            model.period.label(),
            model.summary[0].count,
            model.controls.len(),
            model.ledger.key_id,
            app.store_location()
        );
        for p in paths {
            t.push_str(&format!("{}\n", p.display()));
        }
        t
    };
    print(text.as_bytes())?;
    Ok(if model.has_gaps() {
        Exit::Gaps
    } else {
        Exit::Ok
    })
}
