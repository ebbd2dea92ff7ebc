use std::time::Duration;

use tokio::time::Instant;

/// How a task is submitted: its deadline, and whether to wait for room in a full queue.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apiary_core::SubmitOptions;
///
/// // Fail fast with `Busy` instead of waiting, and give up after 2 s.
/// let opts = SubmitOptions::new().no_wait().timeout(Duration::from_secs(2));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    pub(crate) deadline: Option<Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) wait: bool,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            timeout: None,
            wait: true,
        }
    }
}

impl SubmitOptions {
    /// Waits for room, with the agent's default deadline (if any).
    pub fn new() -> Self {
        Self::default()
    }

    /// The task must finish by `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The task must finish within `timeout` of being submitted. An explicit
    /// [`deadline`](Self::deadline) wins over this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Fail with `Busy` instead of waiting when the agent's queue is full.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }
}
