//! Lifecycle events, the hooks that see them and the stream that carries them.
//!
//! Every moving part of a swarm publishes a [`SwarmEvent`] when something happens to it: an
//! agent starts or stops, a task starts, is handed on or ends, a breaker changes state. Two
//! kinds of listener see them:
//!
//! - [`Hook`]s, registered on the builder, are called inline on the thread that published the
//!   event, outside any lock: a hook may cancel or submit tasks, or subscribe, from inside.
//! - [`EventStream`]s, from [`Swarm::subscribe`](crate::Swarm::subscribe), receive a copy
//!   through a bounded broadcast channel; a subscriber that falls behind loses the oldest
//!   events and is told how many. An `EventStream` is a [`futures::Stream`].
//!
//! Events are numbered from one atomic counter. Numbers are unique and increase along every
//! causal chain (the events of one task, of one agent replica); events published at the same
//! time on different threads may reach a subscriber out of numeric order. When nobody listens,
//! events are not even built.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, EventKind, Swarm};
//! use futures::StreamExt;
//!
//! struct Echo;
//! impl Agent for Echo {
//!     type Task = u8;
//!     type Output = u8;
//!     type Error = std::convert::Infallible;
//!     async fn handle(&mut self, n: u8, _: &AgentContext<u8, u8>) -> Result<u8, Self::Error> {
//!         Ok(n)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder().agent(AgentSpec::new("echo"), || Echo).start().await?;
//! let mut events = swarm.subscribe();
//! swarm.agent::<u8, u8>("echo")?.submit(1).await?.await?;
//! let started = events.next().await.unwrap()?;
//! assert!(matches!(started.kind(), EventKind::TaskStarted { .. }));
//! let finished = events.next().await.unwrap()?;
//! assert!(matches!(finished.kind(), EventKind::TaskFinished { .. }));
//! assert!(finished.seq() > started.seq());
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod bus;
mod hook;
mod stream;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::{AgentName, TaskId};

pub use bus::EventBus;
pub use hook::Hook;
pub use stream::{EventStream, RecvError};

/// One lifecycle event of a swarm, numbered in the order it was published.
///
/// # Examples
///
/// ```
/// use apiary_core::{EventKind, SwarmEvent};
///
/// fn log(event: &SwarmEvent) {
///     if let EventKind::TaskFinished { agent, outcome, .. } = event.kind() {
///         println!("#{} {agent}: {outcome:?}", event.seq());
///     }
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct SwarmEvent {
    seq: u64,
    #[serde(flatten)]
    kind: EventKind,
}

impl SwarmEvent {
    /// Publication number: unique within the swarm, and increasing along every causal chain
    /// (a task's events, an agent's events). Events published at the same moment on two
    /// threads may be seen out of numeric order; numbers are skipped while nobody listens.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// What happened.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    /// Takes the event's kind.
    pub fn into_kind(self) -> EventKind {
        self.kind
    }
}

/// What happened in a swarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// An agent's actor started and its `started` hook succeeded.
    AgentSpawned {
        /// The agent.
        agent: AgentName,
        /// Which replica (0-based).
        replica: usize,
        /// The agent's kind from its spec.
        kind: String,
    },
    /// An agent's actor stopped.
    AgentStopped {
        /// The agent.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// Why.
        reason: StopReason,
    },
    /// An agent began a task.
    TaskStarted {
        /// The task.
        task: TaskId,
        /// The agent.
        agent: AgentName,
        /// Which replica.
        replica: usize,
    },
    /// An agent handed its task on to a peer
    /// ([`AgentContext::hand_off`](crate::AgentContext::hand_off)): the peer's task
    /// `to_task` now carries the work, and its result will be the original task's. A
    /// `TaskFinished` with outcome `Delegated` follows for `task`.
    TaskDelegated {
        /// The task handed on.
        task: TaskId,
        /// The agent that handed it on.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// The peer's task that carries the work on.
        to_task: TaskId,
        /// The peer.
        to_agent: AgentName,
    },
    /// A task ended; every task ends exactly once (with `Delegated` if its agent handed it
    /// on: the peer's task then ends in its place).
    TaskFinished {
        /// The task.
        task: TaskId,
        /// The agent it was given to.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// How it ended.
        outcome: Outcome,
        /// Time from submission until the agent began it (or until it ended, if it never
        /// began).
        #[serde(with = "secs")]
        queued: Duration,
        /// Time the agent spent on it; zero if it never began.
        #[serde(with = "secs")]
        ran: Duration,
    },
    /// A replica was restarted by its supervisor after it stopped.
    AgentRestarted {
        /// The agent.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// Restarts of this replica so far.
        restarts: u32,
        /// The backoff waited before this restart.
        #[serde(with = "secs")]
        delay: Duration,
    },
    /// A supervisor exceeded its restart intensity, stopped its children and gave up.
    SupervisorGaveUp {
        /// The supervisor (`swarm` for the swarm's own).
        supervisor: String,
        /// Why, in words (`4 restarts within 5s`).
        reason: String,
    },
    /// An agent replica's circuit breaker changed state.
    BreakerChanged {
        /// The agent.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// The change.
        transition: BreakerTransition,
    },
    /// A task could not be delivered (again) and ended without running: the dead-letter
    /// stream. A `TaskFinished` with the same cause follows.
    DeadLetter {
        /// The task.
        task: TaskId,
        /// The agent it was for.
        agent: AgentName,
        /// Why it could not be delivered.
        cause: String,
    },
    /// An event of an agent's own making
    /// ([`AgentContext::emit`](crate::AgentContext::emit)): a model's streamed text, the
    /// usage of a call. `name` says what it is; `data` is its JSON.
    Emitted {
        /// The task being handled when it was emitted, if any.
        task: Option<TaskId>,
        /// The agent.
        agent: AgentName,
        /// Which replica.
        replica: usize,
        /// What kind of event (`llm.delta`, `llm.usage`, ...).
        name: Cow<'static, str>,
        /// Its content.
        data: Arc<serde_json::Value>,
    },
    /// An agent's queue was paused ([`Swarm::pause`](crate::Swarm::pause)): no task of it
    /// starts until it is resumed.
    AgentPaused {
        /// The agent.
        agent: AgentName,
    },
    /// A paused agent's queue was resumed.
    AgentResumed {
        /// The agent.
        agent: AgentName,
    },
    /// Work is waiting for a person's decision ([`Approvals`](crate::Approvals)).
    ApprovalRequested {
        /// The approval's id, to approve or reject it by.
        id: String,
        /// The agent whose work waits.
        agent: String,
        /// Why it needs approval.
        reason: String,
        /// The task it gates, if any.
        task: Option<TaskId>,
    },
    /// Someone approved or rejected a waiting approval.
    ApprovalDecided {
        /// The approval's id.
        id: String,
        /// The agent whose work waited.
        agent: String,
        /// Yes or no.
        approved: bool,
        /// Who decided.
        by: String,
        /// Why, if they said (rejections).
        reason: Option<String>,
    },
    /// The swarm finished shutting down.
    SwarmStopped,
}

/// A circuit breaker's change of state, as reported in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerTransition {
    /// Closed -> open.
    Opened,
    /// Open -> half-open: one trial task let through.
    HalfOpened,
    /// Half-open -> closed: the trial succeeded.
    Closed,
    /// Half-open -> open: the trial failed.
    Reopened,
}

impl From<apiary_supervisor::Transition> for BreakerTransition {
    fn from(t: apiary_supervisor::Transition) -> Self {
        use apiary_supervisor::Transition as T;
        match t {
            T::Opened => Self::Opened,
            T::HalfOpened => Self::HalfOpened,
            T::Closed => Self::Closed,
            T::Reopened => Self::Reopened,
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent returned an output.
    Completed,
    /// The agent returned an error.
    Failed,
    /// The agent panicked.
    Panicked,
    /// Cancelled through its handle.
    Cancelled,
    /// Passed its deadline.
    TimedOut,
    /// The agent stopped before finishing it.
    AgentStopped,
    /// The agent handed it on to a peer, whose task ends in its place.
    Delegated,
}

impl Outcome {
    /// The outcome's name, as used in event streams and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::AgentStopped => "agent_stopped",
            Self::Delegated => "delegated",
        }
    }
}

/// Why an agent's actor stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Stopped on request (shutdown).
    Normal,
    /// Failed: a panic or an error from the actor runtime, with its message.
    Failed(String),
}

mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
