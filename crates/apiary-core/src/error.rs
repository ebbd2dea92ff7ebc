use std::fmt;

use thiserror::Error;

use crate::AgentName;

/// A boxed error, as agents' own errors travel through the swarm.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An [`AgentSpec`](crate::AgentSpec) field that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("agent `{agent}`, field `{field}`: {reason}")]
pub struct SpecError {
    agent: String,
    field: &'static str,
    reason: String,
}

impl SpecError {
    pub(crate) fn new(agent: &str, field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            agent: agent.to_owned(),
            field,
            reason: reason.into(),
        }
    }

    /// The agent whose spec is at fault.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The field at fault, as written in a manifest.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value is refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Why a task produced no output. Each task ends with exactly one result: its output or one
/// of these.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The agent's `handle` returned an error; `source` is the agent's own error (downcast it
    /// to the agent's error type).
    #[error("agent `{agent}` failed the task: {source}")]
    Agent {
        /// The agent that failed.
        agent: AgentName,
        /// The agent's error.
        #[source]
        source: BoxError,
    },
    /// The agent panicked while handling the task; the agent's actor is stopped.
    #[error("agent `{agent}` panicked while handling the task: {message}")]
    Panicked {
        /// The agent that panicked.
        agent: AgentName,
        /// The panic message.
        message: String,
    },
    /// The task was cancelled through its handle.
    #[error("task was cancelled")]
    Cancelled,
    /// The task passed its deadline before it finished.
    #[error("task on agent `{agent}` passed its deadline")]
    TimedOut {
        /// The agent the task was given to.
        agent: AgentName,
    },
    /// The agent stopped (or its actor died) before it finished the task, and no replica
    /// could take it over.
    #[error("agent `{agent}` stopped before finishing the task")]
    AgentStopped {
        /// The agent that stopped.
        agent: AgentName,
    },
    /// The agent's supervisor gave up on it (its replicas crashed more often than its restart
    /// intensity allows) before the task ran; `reason` says how often and how fast.
    #[error("agent `{agent}` has stopped: {reason}")]
    GaveUp {
        /// The agent.
        agent: AgentName,
        /// Which supervisor gave up, after how many restarts in how long.
        reason: String,
    },
    /// The task had to be delivered again (its actor died before running it) and every
    /// replica's circuit breaker was open.
    #[error("agent `{agent}`: circuit breaker open (next trial in {retry_after:?})")]
    BreakerOpen {
        /// The agent.
        agent: AgentName,
        /// How long until a breaker lets a trial through.
        retry_after: std::time::Duration,
    },
}

impl TaskError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }

    /// Whether the task passed its deadline.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Self::TimedOut { .. })
    }

    /// The agent's own error, if `handle` returned one of type `E`.
    pub fn agent_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Agent { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// Why a submission was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// No agent has this name.
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    /// The agent's queue is full and the caller asked not to wait.
    #[error("agent `{0}` is busy: its queue is full")]
    Busy(AgentName),
    /// The agent is planned but has not started yet (its dependencies are still starting).
    #[error("agent `{0}` has not started yet")]
    NotStarted(AgentName),
    /// The agent has stopped and takes no more tasks.
    #[error("agent `{0}` has stopped")]
    AgentStopped(AgentName),
    /// The agent's supervisor (or the swarm's) gave up on it after too many restarts: it
    /// takes no more tasks. `reason` says which supervisor, how many restarts and how fast.
    #[error("agent `{agent}` has stopped: {reason}")]
    GaveUp {
        /// The agent.
        agent: AgentName,
        /// Which supervisor gave up, after how many restarts in how long.
        reason: String,
    },
    /// Every replica's circuit breaker is open: the agent keeps failing and is not fed.
    #[error("agent `{agent}`: circuit breaker open (next trial in {retry_after:?})")]
    BreakerOpen {
        /// The agent.
        agent: AgentName,
        /// How long until a breaker lets a trial through.
        retry_after: std::time::Duration,
    },
    /// The swarm's topology does not let `from` send to `to`.
    #[error("topology `{topology}` does not let `{from}` send to `{to}`")]
    NotAllowed {
        /// The sending agent.
        from: AgentName,
        /// The agent it tried to reach.
        to: String,
        /// The topology's name.
        topology: String,
    },
    /// No member can take a task submitted to the swarm as a whole.
    #[error("no agent can take the task: {0}")]
    NoRoute(String),
    /// The swarm is shutting down or has shut down.
    #[error("the swarm is shutting down")]
    SwarmStopped,
    /// The agent runs other task or output types than the caller's.
    #[error(transparent)]
    WrongType(LookupError),
    /// [`AgentContext::hand_off`](crate::AgentContext::hand_off) found no running task to
    /// hand on: it had ended (cancelled, timed out), or the context is not handling one.
    #[error("no running task to hand on (it has ended, or this context handles none)")]
    NoTask,
}

impl From<LookupError> for SubmitErrorKind {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::UnknownAgent(name) => Self::UnknownAgent(name),
            wrong => Self::WrongType(wrong),
        }
    }
}

/// Why a typed reference to an agent could not be had.
///
/// # Examples
///
/// ```
/// # use apiary_core::{Agent, AgentContext, AgentSpec, LookupError, Swarm};
/// # struct Echo;
/// # impl Agent for Echo {
/// #     type Task = u8; type Output = u8; type Error = std::convert::Infallible;
/// #     async fn handle(&mut self, t: u8, _: &AgentContext<u8, u8>) -> Result<u8, Self::Error> { Ok(t) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder().agent(AgentSpec::new("echo"), || Echo).start().await?;
/// let err = swarm.agent::<String, u8>("echo").unwrap_err();
/// assert!(matches!(err, LookupError::WrongType { .. }));
/// assert_eq!(
///     err.to_string(),
///     "agent `echo` takes `u8` and gives `u8`, not `alloc::string::String` and `u8`"
/// );
/// assert!(matches!(swarm.agent::<u8, u8>("nobody"), Err(LookupError::UnknownAgent(_))));
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No agent has this name.
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    /// The agent takes or gives other types than asked for.
    #[error("agent `{agent}` takes `{}` and gives `{}`, not `{}` and `{}`", runs.0, runs.1, asked.0, asked.1)]
    WrongType {
        /// The agent.
        agent: AgentName,
        /// The task and output types asked for.
        asked: (&'static str, &'static str),
        /// The task and output types the agent runs.
        runs: (&'static str, &'static str),
    },
}

/// A refused submission. The task comes back with it: nothing is dropped.
///
/// # Examples
///
/// ```
/// # use apiary_core::{SubmitError, SubmitErrorKind};
/// fn retry_later<T>(err: SubmitError<T>) -> T {
///     if matches!(err.kind(), SubmitErrorKind::Busy(_)) {
///         // back off, then submit again
///     }
///     err.into_task()
/// }
/// ```
pub struct SubmitError<T> {
    kind: SubmitErrorKind,
    task: T,
}

impl<T> SubmitError<T> {
    pub(crate) fn new(kind: SubmitErrorKind, task: T) -> Self {
        Self { kind, task }
    }

    /// Why the task was refused.
    pub fn kind(&self) -> &SubmitErrorKind {
        &self.kind
    }

    /// Takes the refused task back.
    pub fn into_task(self) -> T {
        self.task
    }

    /// Whether the refusal was a full queue.
    pub fn is_busy(&self) -> bool {
        matches!(self.kind, SubmitErrorKind::Busy(_))
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<T> std::error::Error for SubmitError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// Why a swarm could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// An agent's spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The dependencies cannot be planned (duplicate name, unknown dependency, cycle).
    #[error(transparent)]
    Plan(#[from] apiary_planner::PlanError),
    /// An agent failed to start; whatever had started was stopped again.
    #[error("agent `{agent}` (replica {replica}) failed to start: {source}")]
    AgentStart {
        /// The agent that failed.
        agent: AgentName,
        /// Which of its replicas.
        replica: usize,
        /// The failure: the agent's own error from its `started` hook (downcast it), or the
        /// actor runtime's.
        #[source]
        source: BoxError,
    },
    /// The topology cannot work with these agents.
    #[error(transparent)]
    Topology(#[from] crate::TopologyError),
    /// The swarm's own supervising actor could not start.
    #[error("the swarm supervisor failed to start: {0}")]
    Supervisor(String),
}

/// An operation named an agent the swarm does not have.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no agent named `{0}`")]
pub struct UnknownAgent(pub String);
