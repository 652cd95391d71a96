//! Collect and keep: one run of a collector end to end, the one `match` that builds a
//! collector from its config, the heartbeats cron-health reads, and a run's facts read back.

pub mod attested;
pub mod collection;
pub mod facts;
pub mod heartbeats;
pub mod registry;
pub mod runner;
