//! `annexa status`: the control table, or the status document with --json.

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn status(
    app: &Annexa,
    as_of: Option<DateTime<Utc>>,
    json: bool,
) -> Result<Exit, Failure> {
    let doc = crate::views::status::status(app, as_of.unwrap_or_else(|| app.clock.now())).await?;
    let mut out = Vec::new();
    if json {
        annexa_reports::render_status_json(&doc, &mut out)?;
    } else {
        annexa_reports::render_status_table(&doc, &mut out)?;
    }
    print(&out)?;
    Ok(if doc.has_gaps() { Exit::Gaps } else { Exit::Ok })
}
