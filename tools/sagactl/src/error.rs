//! What goes wrong, each kind with its exit code, and the exit codes of a saga's end
//! (`watch`, `signup`). Every message says what to do about it.

use contracts::{ErrorInfo, SagaStatus};

/// Exit codes, as `sagactl --help` lists them.
pub mod code {
    /// Done; for `watch` and `signup` the saga completed, for `check` the subdomain
    /// is available.
    pub const OK: u8 = 0;
    /// The orchestrator refused or found nothing (not found, not replayable, not
    /// requeueable, a bad filter); for `check`, the subdomain is not available.
    pub const REFUSED: u8 = 1;
    /// The command line is wrong (clap's own code too).
    pub const USAGE: u8 = 2;
    /// The orchestrator could not be reached, did not answer in time, or the
    /// credentials were refused.
    pub const UNREACHABLE: u8 = 3;
    /// The saga ended `rolled_back`.
    pub const ROLLED_BACK: u8 = 4;
    /// The saga ended `rejected`.
    pub const REJECTED: u8 = 5;
    /// The saga ended `compensation_failed`: an operator must look.
    pub const COMPENSATION_FAILED: u8 = 6;
}

/// The exit code of a saga that ended with `status`; one that has not ended is
/// not seen to complete (exit 3: watch again), never 0.
pub fn for_status(status: SagaStatus) -> u8 {
    match status {
        SagaStatus::Completed => code::OK,
        SagaStatus::RolledBack => code::ROLLED_BACK,
        SagaStatus::Rejected => code::REJECTED,
        SagaStatus::CompensationFailed => code::COMPENSATION_FAILED,
        SagaStatus::Accepted | SagaStatus::Running | SagaStatus::Compensating => code::UNREACHABLE,
    }
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or its input is wrong.
    #[error("{0}")]
    Usage(String),
    /// The orchestrator answered, and said no.
    #[error("{0}")]
    Refused(String),
    /// The orchestrator could not be reached or did not answer, or we may not ask.
    #[error("{0}")]
    Unreachable(String),
}

impl Error {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => code::USAGE,
            Self::Refused(_) => code::REFUSED,
            Self::Unreachable(_) => code::UNREACHABLE,
        }
    }

    /// The refusal a reply's `error` holds, with what to do about its code.
    pub fn refused(error: &ErrorInfo) -> Self {
        let hint = match error.code.as_str() {
            "not_found" => " (find it: sagactl list, or sagactl dead-letters list)",
            "not_replayable" | "not_requeueable" => " (sagactl show tells what the saga is doing)",
            _ => "",
        };
        Self::Refused(format!("{}: {}{hint}", error.code, error.message))
    }
}

/// `Ok` when a reply holds no error, else its refusal.
pub fn check(error: &Option<ErrorInfo>) -> Result<(), Error> {
    match error {
        None => Ok(()),
        Some(error)
            if matches!(
                error.code.as_str(),
                "no_leader" | "unavailable" | "store_unavailable" | "dead_letters_unavailable"
            ) =>
        {
            Err(Error::Unreachable(format!(
                "{}: {} (the orchestrator cannot do it right now: try again; its /readyz says what is down)",
                error.code, error.message
            )))
        }
        Some(error) => Err(Error::refused(error)),
    }
}
