//! What the journal stores: a task as submitted, how it ended, and the results of its steps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apiary_core::Outcome;
use serde::{Deserialize, Serialize};

/// A task's number in its journal: stable across restarts, unlike the swarm's `TaskId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalId(pub(crate) u64);

impl JournalId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for JournalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "journal-task-{}", self.0)
    }
}

/// A task as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) agent: String,
    /// The task's Rust type, as `std::any::type_name` wrote it: postcard is not
    /// self-describing, so a changed type is caught by name, not by a failed decode.
    pub(crate) task_type: String,
    pub(crate) key: Option<String>,
    /// The task, postcard-encoded.
    pub(crate) payload: Vec<u8>,
    /// Milliseconds since the Unix epoch by which it must end, if it has a deadline.
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) submitted_ms: u64,
}

/// How a task ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutcomeRecord {
    pub(crate) ended_ms: u64,
    pub(crate) result: Recorded,
}

/// A task's end as recorded: its output (postcard-encoded), or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Recorded {
    Output(Vec<u8>),
    Failed(Failure),
}

/// Why a journaled task produced no output, as recorded: what happened and the error's text.
/// (The agent's own error type does not survive a restart; its message does.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("agent `{agent}`: task {outcome}: {message}")]
pub struct Failure {
    /// The agent the task was given to.
    pub agent: String,
    /// How it ended (`failed`, `panicked`, `cancelled`, `timed_out`, `agent_stopped`,
    /// `refused` when the swarm did not take it).
    pub outcome: String,
    /// The error, in words.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(agent: &str, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            agent: agent.to_owned(),
            outcome: outcome.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.outcome == Outcome::Cancelled.as_str()
    }

    /// Whether the task passed its deadline.
    pub fn is_timed_out(&self) -> bool {
        self.outcome == Outcome::TimedOut.as_str()
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time left until a deadline recorded as Unix milliseconds (zero once it has passed).
pub(crate) fn left_until(deadline_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms.saturating_sub(now_ms()))
}
