//! The custody log (A.5.28 by default): every run manifest is evidence that evidence
//! collection itself works. Status and reports both judge it as one more source; what it is
//! made of is decided here, once.

use std::time::Duration;

use crate::app::Annexa;
use crate::controls::CUSTODY;
use crate::db::RunRow;

/// The controls the custody log evidences; empty when the catalog maps it to none.
pub fn controls(app: &Annexa) -> Vec<String> {
    app.config.catalog.controls_for_kind(CUSTODY)
}

/// How long a source's evidence stays fresh when its collector sets no `max_age`: the shortest
/// maximum age of the controls it evidences (a day when none is known).
pub fn shortest_max_age(app: &Annexa, controls: &[String]) -> Duration {
    controls
        .iter()
        .filter_map(|id| app.config.catalog.get(id))
        .map(|c| c.max_age)
        .min()
        .unwrap_or(Duration::from_secs(86_400))
}

/// A run's manifest as the custody log's evidence object: (SHA-256, key), when it has one.
pub fn manifest_object(run: &RunRow) -> Option<(String, String)> {
    Some((run.manifest_sha256.clone()?, run.manifest_key.clone()?))
}
