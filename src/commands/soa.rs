//! `annexa soa`: the Statement of Applicability joined with the live status.

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn soa(app: &Annexa, csv: bool, json: bool) -> Result<Exit, Failure> {
    let doc = crate::views::status::status(app, app.clock.now()).await?;
    let entries = crate::views::soa::entries(&app.config, &doc);
    let mut out = Vec::new();
    if json {
        let file = app
            .config
            .soa
            .as_ref()
            .map(|s| s.file.display().to_string());
        let value = serde_json::json!({ "file": file, "as_of": annexa_reports::time(doc.as_of), "controls": entries });
        out.extend(format!("{value}\n").bytes());
    } else if csv {
        // On stdout, for pipes: no byte order mark.
        annexa_reports::render_soa_csv(&entries, false, &mut out)?;
    } else {
        if app.config.soa.is_none() {
            out.extend(
                b"No Statement of Applicability is configured ([soa] file): every control is listed as not yet assessed. `annexa init` writes a starter soa.csv.\n\n",
            );
        }
        annexa_reports::render_soa_table(&entries, &mut out)?;
    }
    print(&out)?;
    Ok(Exit::Ok)
}
