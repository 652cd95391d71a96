//! `annexa status`: the control table, or the status document with --json.

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn status(
    app: &Annexa,
    as_of: Option<DateTime<Utc>>,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    json: bool,
) -> Result<Exit, Failure> {
    // With a period, the status at its end (or now, for a period not yet over).
    let as_of = as_of.unwrap_or_else(|| {
        let now = app.clock.now();
        period.map_or(now, |(_, to)| to.min(now))
    });
    let mut doc = crate::views::status::status(app, as_of).await?;
    if let Some((from, to)) = period {
        crate::views::period::judge_period(app, &mut doc, from, to).await?;
    }
    let mut out = Vec::new();
    if json {
        annexa_reports::render_status_json(&doc, &mut out)?;
    } else {
        annexa_reports::render_status_table(&doc, &mut out)?;
    }
    print(&out)?;
    Ok(if doc.has_gaps() { Exit::Gaps } else { Exit::Ok })
}
