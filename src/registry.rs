//! The one place that turns a collector's config into a collector. A closed `match`: adding a
//! kind means adding a variant to `CollectorKind` and an arm here.

use annexa_collectors::Collector;
use annexa_collectors::policy_document::PolicyDocument;

use crate::config::{CollectorConfig, CollectorKind};
use crate::controls::Catalog;

pub fn build(kind: &CollectorKind) -> Box<dyn Collector> {
    match kind {
        CollectorKind::PolicyDocument(c) => Box::new(PolicyDocument::new(c.clone())),
    }
}

/// The controls a configured collector evidences: its `controls` setting, or the catalog's
/// default for its kind, plus any its own settings map individual sources to.
pub fn controls_of(
    config: &CollectorConfig,
    collector: &dyn Collector,
    catalog: &Catalog,
) -> Vec<String> {
    let mut controls = config
        .controls
        .clone()
        .unwrap_or_else(|| catalog.controls_for_kind(config.kind.name()));
    controls.extend(collector.mapped_controls());
    controls.sort();
    controls.dedup();
    controls
}
