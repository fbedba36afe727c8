//! Where the driver reads the time. Production reads the system clock; the driver's
//! unit tests read tokio's, so that `tokio::time::pause()` moves deadlines, timers and
//! the state machine's `now` together.

use chrono::{DateTime, Utc};

/// A source of the current time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    /// The system clock.
    System,
    /// `start` plus the time tokio's clock has advanced since `origin`.
    #[cfg_attr(not(test), allow(dead_code))]
    Tokio {
        /// The UTC instant at `origin`.
        start: DateTime<Utc>,
        /// tokio's instant when the clock was made.
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's (paused or not) from now on.
    #[cfg(test)]
    pub(crate) fn tokio() -> Self {
        Self::Tokio {
            start: Utc::now(),
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Tokio { start, origin } => {
                *start
                    + chrono::Duration::from_std(origin.elapsed())
                        .unwrap_or_else(|_| chrono::Duration::zero())
            }
        }
    }
}
