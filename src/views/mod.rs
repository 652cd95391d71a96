//! What was true at a time: status and report gathering over kept evidence. Each reads the
//! database and the store, then calls a pure builder (`controls::evaluate`, `annexa_reports`).

pub mod attested;
pub mod custody;
pub mod export;
pub mod period;
pub mod report;
pub mod sample;
pub mod soa;
pub mod status;

use annexa_collectors::FindingCode;
use annexa_reports::model::{ItemInput, RunInput};

use crate::app::Annexa;
use crate::controls::RunState;
use crate::db::{RunRow, RunStatus};

/// A run as evaluation sees it.
pub fn run_state(run: &RunRow) -> RunState {
    RunState {
        run_id: run.id.clone(),
        succeeded: run.status == RunStatus::Succeeded,
        finished_at: run.finished_at.unwrap_or(run.started_at),
        error: run.error.as_ref().map(|e| {
            let code = run
                .error_code
                .as_deref()
                .and_then(|c| c.parse().ok())
                .unwrap_or(FindingCode::CollectorFailed);
            (code, e.clone())
        }),
    }
}

/// A run as a report lists it, with the items it stored.
pub fn run_input(run: &RunRow, items: Vec<ItemInput>) -> RunInput {
    RunInput {
        run_id: run.id.clone(),
        succeeded: run.status == RunStatus::Succeeded,
        finished_at: run.finished_at.unwrap_or(run.started_at),
        expires_at: None,
        attested: None,
        error: run.error.clone(),
        items,
    }
}

/// How long a source's evidence stays fresh when its collector sets no `max_age`: the shortest
/// maximum age of the controls it evidences (a day when none is known).
pub fn shortest_max_age(app: &Annexa, controls: &[String]) -> chrono::Duration {
    to_duration(
        controls
            .iter()
            .filter_map(|id| app.config.catalog.get(id))
            .map(|c| c.max_age)
            .min()
            .unwrap_or(std::time::Duration::from_secs(86_400)),
    )
}

/// A configured duration as reports count time (a duration too long to count is forever).
pub fn to_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
