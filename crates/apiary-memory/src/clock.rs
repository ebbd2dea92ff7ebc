//! The memory's notion of "now" for TTLs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, advancing with tokio's clock.
///
/// Expiry times are stored as wall-clock milliseconds so they survive a restart, but they
/// advance with `tokio::time` so tests can pause and advance time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base_ms: u64,
    start: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}
