//! Exit codes: part of annexa's interface, documented in the README.

use crate::ledger::checkpoint::CheckpointError;

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
}

/// A command that could not finish: its error, and the exit code that error calls for. Each
/// command decides the code where it knows the cause (a typed error), never by searching an
/// error chain afterwards; anything else is a runtime error.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad usage or an invalid configuration (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    /// A checkpoint refused because history disagrees is an integrity violation (exit 4);
    /// anything else that stopped it is a runtime error.
    pub fn of_checkpoint(error: CheckpointError) -> Failure {
        Failure {
            exit: if error.is_integrity() {
                Exit::Integrity
            } else {
                Exit::Runtime
            },
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure {
            exit: Exit::Runtime,
            error: error.into(),
        }
    }
}
