use std::time::Duration;

use serde::{Deserialize, Serialize};

use apiary_supervisor::{RestartIntensity, Strategy};

use crate::SpecError;

/// The largest queue capacity accepted (per agent).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// Swarm-wide settings: the `[swarm]` table of a manifest.
///
/// # Examples
///
/// ```
/// use apiary_core::SwarmSettings;
///
/// let mut settings = SwarmSettings::default();
/// settings.queue_capacity = 64;
/// settings.max_concurrency = 8;
/// assert!(settings.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SwarmSettings {
    /// A name for the swarm, used in logs and reports.
    pub name: String,
    /// Default bound on tasks queued or running per agent (an agent's spec may override it).
    pub queue_capacity: usize,
    /// At most this many actors are started at once (0: no limit).
    pub max_concurrency: usize,
    /// At most this many agents per spawn batch (0: no limit).
    pub batch_size: usize,
    /// Default deadline of every task (an agent's spec or the submission may override it).
    #[serde(with = "humantime_serde::option")]
    pub task_timeout: Option<Duration>,
    /// How many events a slow subscriber may fall behind before it loses the oldest.
    pub event_capacity: usize,
    /// Which agents the swarm's supervisor restarts when one fails.
    pub strategy: Strategy,
    /// Restart intensity: at most this many restarts within `restart_window`; past it the
    /// supervisor gives up and stops the swarm.
    pub max_restarts: u32,
    /// The period of the restart intensity.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            name: "apiary".to_owned(),
            queue_capacity: 1024,
            max_concurrency: 0,
            batch_size: 0,
            task_timeout: None,
            event_capacity: 4096,
            strategy: Strategy::OneForOne,
            max_restarts: 10,
            restart_window: Duration::from_secs(10),
        }
    }
}

impl SwarmSettings {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`SpecError`] for agent `[swarm]` naming the field: a queue capacity of zero or
    /// above [`MAX_QUEUE_CAPACITY`], a zero timeout, an event capacity of zero.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field, reason: &str| SpecError::new("[swarm]", field, reason);
        check_capacity(self.queue_capacity).map_err(|r| err("queue_capacity", &r))?;
        if self.task_timeout.is_some_and(|t| t.is_zero()) {
            return Err(err("task_timeout", "must be longer than zero"));
        }
        if self.event_capacity == 0 {
            return Err(err("event_capacity", "must be at least 1"));
        }
        if self.restart_window.is_zero() {
            return Err(err("restart_window", "must be longer than zero"));
        }
        Ok(())
    }
}

impl SwarmSettings {
    /// The restart intensity these settings describe.
    pub fn intensity(&self) -> RestartIntensity {
        RestartIntensity::new(self.max_restarts, self.restart_window)
    }
}

pub(crate) fn check_capacity(n: usize) -> Result<(), String> {
    if n == 0 {
        Err("must be at least 1".into())
    } else if n > MAX_QUEUE_CAPACITY {
        Err(format!("must be at most {MAX_QUEUE_CAPACITY}"))
    } else {
        Ok(())
    }
}
