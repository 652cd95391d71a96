//! What was true at a time: status and report gathering over kept evidence. Each reads the
//! database and the store, then calls a pure builder (`controls::evaluate`, `annexa_reports`).

pub mod custody;
pub mod report;
pub mod status;
