//! Lifecycle events, the hooks that see them and the stream that carries them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::{AgentName, TaskId};

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
    /// Publication number: strictly increasing in the order hooks and subscribers see events
    /// (numbers may be skipped while nobody listens).
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
    /// A task ended; every submitted task ends exactly once.
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

/// A callback that sees every event of a swarm, synchronously, on the task that published it.
///
/// Keep hooks fast: they run on the agent's own actor. Any `Fn(&SwarmEvent)` is a hook.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use apiary_core::{EventKind, Hook, SwarmEvent};
///
/// let finished = Arc::new(AtomicUsize::new(0));
/// let counter = finished.clone();
/// let hook = move |e: &SwarmEvent| {
///     if matches!(e.kind(), EventKind::TaskFinished { .. }) {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// fn assert_hook(_: &impl Hook) {}
/// assert_hook(&hook);
/// ```
pub trait Hook: Send + Sync + 'static {
    /// Called once per event, in publication order.
    fn on_event(&self, event: &SwarmEvent);
}

impl<F> Hook for F
where
    F: Fn(&SwarmEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &SwarmEvent) {
        self(event)
    }
}

/// A subscription to a swarm's events, from the moment of subscribing.
///
/// Backed by a bounded broadcast channel: a subscriber that falls more than the swarm's event
/// capacity behind loses the oldest events and is told how many.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<SwarmEvent>,
}

/// What [`EventStream::recv`] returns instead of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind and this many events were dropped for it.
    #[error("event subscriber lagged; {0} events were dropped")]
    Lagged(u64),
    /// The swarm is gone and every event has been received.
    #[error("the swarm is gone")]
    Closed,
}

impl EventStream {
    /// The next event.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] once after events were dropped for this subscriber (the next call
    /// goes on with the oldest event kept), [`RecvError::Closed`] when the swarm is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost by dropping the future.
    pub async fn recv(&mut self) -> Result<SwarmEvent, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Result<SwarmEvent, RecvError>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(broadcast::error::TryRecvError::Closed) => Some(Err(RecvError::Closed)),
        }
    }
}

/// Publishes events to hooks and subscribers, numbering them in publication order.
pub(crate) struct EventBus {
    tx: broadcast::Sender<SwarmEvent>,
    hooks: Vec<Arc<dyn Hook>>,
    // Numbering and sending happen under one lock so subscribers see `seq` increasing.
    seq: Mutex<u64>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("hooks", &self.hooks.len())
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl EventBus {
    pub(crate) fn new(capacity: usize, hooks: Vec<Arc<dyn Hook>>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            hooks,
            seq: Mutex::new(0),
        }
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        EventStream {
            rx: self.tx.subscribe(),
        }
    }

    /// Whether anyone would see an event now; lets hot paths skip building one.
    pub(crate) fn is_observed(&self) -> bool {
        !self.hooks.is_empty() || self.tx.receiver_count() > 0
    }

    pub(crate) fn publish(&self, kind: impl FnOnce() -> EventKind) {
        if !self.is_observed() {
            return;
        }
        let kind = kind();
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let event = SwarmEvent { seq: *seq, kind };
        for hook in &self.hooks {
            hook.on_event(&event);
        }
        // No subscriber is not an error: hooks may be the only listeners.
        let _ = self.tx.send(event);
    }
}
