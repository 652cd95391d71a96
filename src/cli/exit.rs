//! Exit codes: part of annexa's interface, documented in the README.

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran and every control is satisfied.
    Ok = 0,
    /// A runtime error: a collector failed, a server was unreachable.
    Runtime = 1,
    /// Bad usage or an invalid configuration.
    Usage = 2,
    /// Some control is not satisfied (status, run).
    Gaps = 3,
    /// Stored evidence, the database or the ledger do not match (verify).
    Integrity = 4,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code of an error: configuration problems are usage errors, the rest runtime.
    pub fn of_error(e: &anyhow::Error) -> Exit {
        let usage = |c: &(dyn std::error::Error + 'static)| {
            c.is::<crate::config::ConfigError>()
                || matches!(
                    c.downcast_ref::<crate::evidence::heartbeats::PingError>(),
                    Some(crate::evidence::heartbeats::PingError::UnknownJob { .. })
                )
        };
        let integrity = |c: &(dyn std::error::Error + 'static)| {
            matches!(
                c.downcast_ref::<crate::ledger::checkpoint::CheckpointError>(),
                Some(
                    crate::ledger::checkpoint::CheckpointError::Rollback { .. }
                        | crate::ledger::checkpoint::CheckpointError::Inconsistent { .. }
                )
            )
        };
        if e.chain().any(usage) {
            Exit::Usage
        } else if e.chain().any(integrity) {
            Exit::Integrity
        } else {
            Exit::Runtime
        }
    }
}
