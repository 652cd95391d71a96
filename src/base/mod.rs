//! Leaf values every room may use. Nothing here imports anything else from the crate.

pub mod canonical;
pub mod clock;
mod closed;
pub mod holder;
pub mod outbound;
pub mod paths;
pub mod redact;
mod schedule;
mod secret;

pub(crate) use closed::closed_set;
pub use schedule::{Schedule, duration_text, parse_duration};
pub use secret::Secret;
