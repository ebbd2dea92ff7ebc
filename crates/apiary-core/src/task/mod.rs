//! Tasks: their states, the state they share between submitter and agent, and the handle a
//! submitter holds.
//!
//! A task is created when an agent's queue accepts it and ends exactly once: with the agent's
//! output, or with a [`TaskError`](crate::TaskError) saying why not. Whoever ends it first (the
//! agent, a cancel, the deadline, the agent's actor dying) decides the result; everyone else
//! finds it ended. An agent may hand its task on to a peer
//! ([`AgentContext::hand_off`](crate::AgentContext::hand_off)): the peer's task then carries
//! the work (a *hop*), and whichever hop ends last answers the original submitter.

mod handle;
mod shared;

use serde::Serialize;

use crate::Outcome;

pub use handle::{TaskCanceller, TaskHandle};
pub(crate) use shared::{Reply, TaskEnv, TaskShared};

/// Where a task is in its life. The last four are terminal: a task reaches exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting in its agent's queue.
    Queued = 0,
    /// Waiting in a paused agent's queue.
    Paused = 1,
    /// Being handled by the agent.
    Running = 2,
    /// Handed on to a peer, whose result will be this task's.
    Delegated = 3,
    /// Finished with an output.
    Completed = 4,
    /// Finished with an error (the agent's, a panic, or the agent stopping).
    Failed = 5,
    /// Cancelled through its handle.
    Cancelled = 6,
    /// Passed its deadline.
    TimedOut = 7,
}

impl TaskState {
    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        self as u8 >= Self::Completed as u8
    }

    /// Whether this hop of the task is over: ended, or handed on.
    pub(crate) fn hop_ended(self) -> bool {
        self as u8 >= Self::Delegated as u8
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Queued,
            1 => Self::Paused,
            2 => Self::Running,
            3 => Self::Delegated,
            4 => Self::Completed,
            5 => Self::Failed,
            6 => Self::Cancelled,
            _ => Self::TimedOut,
        }
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Completed => Self::Completed,
            Outcome::Failed | Outcome::Panicked | Outcome::AgentStopped => Self::Failed,
            Outcome::Cancelled => Self::Cancelled,
            Outcome::TimedOut => Self::TimedOut,
            Outcome::Delegated => Self::Delegated,
        }
    }
}
