//! annexa: collects compliance evidence for ISO/IEC 27001:2022 Annex A controls, keeps it
//! immutable and verifiable, and judges the controls.
//!
//! # Layout
//!
//! `src/` is grouped into rooms (a top-level module with everything under it). A room imports
//! only rooms below it, never one above, so there is no circle:
//!
//! ```text
//! commands → cli → ops → views → evidence → ledger → app → config → {controls, db, store} → base
//! ```
//!
//! - `commands/`: one file per subcommand; `cli/`: the command line, exit codes, output.
//! - `ops/`: the worker's parts: scheduler, HTTP server, gap alerts and their sinks.
//! - `views/`: what was true at a time: status and report gathering over kept evidence.
//! - `evidence/`: collect and keep: runner, registry (the one `match` over kinds), heartbeats,
//!   facts (the one way to read a run's facts back).
//! - `ledger/`: prove: Merkle tree, signed notes, run manifests, audit events, keyring,
//!   checkpoints, verify, the report bundle's seal: each format written and read there.
//! - `app.rs`: the [`Annexa`] context; `config/`: file → env → validated [`config::Config`].
//! - `controls/`, `db/`, `store/`: the catalog and evaluation, the database, the evidence store.
//! - `base/`: leaf values every room may use: `Secret`, schedules, canonical JSON, the clock.
//! - Collectors live in the `annexa-collectors` crate; the report model and renderers in
//!   `annexa-reports`.

pub mod app;
pub mod base;
pub mod cli;
pub mod commands;
pub mod config;
pub mod controls;
pub mod db;
pub mod evidence;
pub mod ledger;
pub mod ops;
pub mod store;
pub mod views;

pub use app::Annexa;

#[cfg(test)]
mod layout_tests;
