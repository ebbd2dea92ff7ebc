use std::time::Duration;

use thiserror::Error;

/// A call refused because the breaker is open (or its one trial is in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("circuit breaker is open; next trial in {retry_after:?}")]
pub struct BreakerOpen {
    retry_after: Duration,
}

impl BreakerOpen {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// How long until the breaker lets a trial through.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}
