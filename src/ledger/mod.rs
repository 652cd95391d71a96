//! Prove: every format whose bytes annexa signs or hashes into the ledger is written and read
//! in this room, so writer and reader never drift.
//!
//! - `tree.rs`: the RFC 6962 Merkle tree (leaves, roots, tree heads along a ledger).
//! - `note.rs`: C2SP signed notes and Ed25519 note keys; `keyring.rs`: the keys' life.
//! - `manifest.rs`: the run manifest; `audit.rs`: audit events and their closed set of actions.
//! - `checkpoint.rs`: signed tree heads, checked against history and published;
//!   `rollback.rs`: an operator's signed acknowledgement of history lost to a restore;
//!   `publish.rs`: the second location both are written to.
//! - `exceptions.rs`: accepted exceptions, each an audit event.
//! - `verify.rs`: the integrity check of store, database and ledger; `scrub.rs`: which objects a
//!   rolling verify re-hashes and what verifies covered; `bundle.rs`: the report
//!   bundle's signed manifest, sealed and checked; `package.rs`: the evidence package's, with
//!   its proofs (and `package_verify.py`, its checker without annexa); `sample.rs`: samples drawn
//!   from a frozen population with a checkpoint's root as the seed.

pub mod audit;
pub mod bundle;
pub mod checkpoint;
pub mod exceptions;
pub mod keyring;
pub mod manifest;
pub mod note;
pub mod package;
pub mod proof;
pub mod publish;
pub mod rollback;
pub mod sample;
pub mod scrub;
mod tree;
pub mod verify;

pub use tree::{
    Frontier, Hash, Levels, b64, checkpoint_text, consistency_proof, decode_leaves, from_b64,
    from_hex, inclusion_proof, leaf_hash, node_hash, root, roots_at, verify_consistency,
    verify_inclusion,
};
