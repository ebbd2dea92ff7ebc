//! Everything a model call can fail at, each naming the provider and model (or the budget, the
//! tool, the recorded request) at fault.

use std::path::PathBuf;
use std::time::Duration;

use crate::budget::BudgetExceeded;

/// Why a model call, or a task of an LLM agent, failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The endpoint answered with an error status that is not worth retrying (or still
    /// failed after the retries).
    #[error("{provider}, model `{model}`: HTTP {status}: {message}")]
    Status {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message, if it gave one.
        message: String,
    },
    /// The endpoint could not be reached, or the connection failed.
    #[error("{provider}, model `{model}`: {reason}")]
    Transport {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// What failed.
        reason: String,
    },
    /// An answer took too long.
    #[error("{provider}, model `{model}`: no {waiting_for} after {after:?}")]
    Timeout {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// What did not come: `first byte`, `next chunk`, `complete answer`.
        waiting_for: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The stream ended (or broke) before the answer was complete.
    #[error("{provider}, model `{model}`: the stream was cut: {reason}")]
    StreamCut {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// How it ended.
        reason: String,
    },
    /// A payload that does not parse as the protocol says.
    #[error("{provider}, model `{model}`: malformed answer: {reason}")]
    Malformed {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// What was wrong, with an excerpt.
        reason: String,
    },
    /// A finish reason the protocol does not define.
    #[error("{provider}, model `{model}`: unknown finish reason {reason:?}")]
    UnknownFinish {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// The reason given.
        reason: String,
    },
    /// Still rate limited (or overloaded) after waiting as told, or told to wait past the
    /// task's deadline.
    #[error("{provider}, model `{model}`: rate limited ({status}) after {attempts} attempts{}", retry_after.map(|d| format!("; told to retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// The provider and its base URL.
        provider: String,
        /// The model asked for.
        model: String,
        /// The last status (429, 503, 529).
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// A budget would be exceeded: the call was not made.
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// A person rejected a tool call that needed approval
    /// ([`LlmAgentBuilder::tool_with_approval`](crate::LlmAgentBuilder::tool_with_approval)).
    #[error(transparent)]
    Rejected(#[from] apiary_core::Rejected),
    /// A tool call's approval could not be asked, or nobody can answer any more (the swarm
    /// shut down).
    #[error("tool call approval: {0}")]
    Approval(String),
    /// The model's structured answer does not fit the type asked for.
    #[error("{provider}, model `{model}`: the answer does not parse as {type_name}: {reason}")]
    Structured {
        /// The provider and its base URL.
        provider: String,
        /// The model.
        model: String,
        /// The Rust type asked for.
        type_name: &'static str,
        /// serde's complaint.
        reason: String,
    },
    /// The model kept calling tools past the agent's turn limit.
    #[error("agent `{agent}`: still calling tools after {turns} turns (the limit)")]
    TurnLimit {
        /// The agent.
        agent: String,
        /// The limit.
        turns: u32,
    },
    /// Replaying: no recorded answer for this request.
    #[error("replay: no recorded answer for request {key} ({summary}) in {}", path.display())]
    ReplayMiss {
        /// The cassette.
        path: PathBuf,
        /// The request's hash.
        key: String,
        /// Model and the start of its last message.
        summary: String,
    },
    /// A cassette could not be read or written.
    #[error("cassette {}: {reason}", path.display())]
    Cassette {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The journal could not record or replay a call.
    #[error("journal: {0}")]
    Journal(String),
    /// A setting is wrong (a base URL, a missing key variable).
    #[error("{what}: {reason}")]
    Config {
        /// The setting.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The task was cancelled or passed its deadline during the call.
    #[error("cancelled during a call of model `{model}`")]
    Cancelled {
        /// The model being called.
        model: String,
    },
}

impl LlmError {
    /// Whether the call may succeed if simply made again (server errors, broken streams).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LlmError::Status {
                status: 500..=599,
                ..
            } | LlmError::Transport { .. }
                | LlmError::StreamCut { .. }
                | LlmError::Timeout { .. }
                | LlmError::RateLimited { .. }
        )
    }
}
