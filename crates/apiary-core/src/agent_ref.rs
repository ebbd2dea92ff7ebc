//! Typed references to agents: how callers and peers submit tasks.

use std::fmt;
use std::sync::Arc;

use crate::entry::AgentEntry;
use crate::runtime::Runtime;
use crate::{AgentName, AgentSpec, SubmitError, SubmitErrorKind, SubmitOptions, TaskHandle};

/// A typed reference to one agent of a swarm: it takes `T` and gives `O`.
///
/// Get one by name from the swarm ([`Swarm::agent`](crate::Swarm::agent)) or, inside an
/// agent, from its context ([`AgentContext::agent`](crate::AgentContext::agent)). The types
/// are checked once, there; from then on the compiler checks every task you submit, and no
/// submission looks the name up again. A reference is cheap to clone and may be kept for the
/// swarm's whole life.
///
/// A reference taken from an agent's context carries the sender's name: each submission
/// through it is checked against the swarm's topology (a star's spokes cannot reach each
/// other), and it keeps working while the swarm drains for shutdown.
///
/// # Examples
///
/// Two kinds of agent in one swarm, each with its own task and output types:
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
///
/// struct Length;
/// impl Agent for Length {
///     type Task = String;
///     type Output = usize;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, s: String, _: &AgentContext<String, usize>) -> Result<usize, Self::Error> {
///         Ok(s.len())
///     }
/// }
///
/// struct Even;
/// impl Agent for Even {
///     type Task = u64;
///     type Output = bool;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, n: u64, _: &AgentContext<u64, bool>) -> Result<bool, Self::Error> {
///         Ok(n % 2 == 0)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("length"), || Length)
///     .agent(AgentSpec::new("even"), || Even)
///     .start()
///     .await?;
/// let length = swarm.agent::<String, usize>("length")?;
/// let even = swarm.agent::<u64, bool>("even")?;
/// let n = length.submit("hive".to_string()).await?.await?;
/// assert!(even.submit(n as u64).await?.await?);
/// // `even.submit("hive".to_string())` does not compile.
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct AgentRef<T, O> {
    pub(crate) entry: Arc<AgentEntry<T, O>>,
    pub(crate) rt: Arc<Runtime>,
    /// The agent whose context made this reference, if any.
    pub(crate) from: Option<AgentName>,
}

impl<T, O> Clone for AgentRef<T, O> {
    fn clone(&self) -> Self {
        Self {
            entry: self.entry.clone(),
            rt: self.rt.clone(),
            from: self.from.clone(),
        }
    }
}

impl<T, O> fmt::Debug for AgentRef<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRef")
            .field("agent", &self.entry.name)
            .field("task", &std::any::type_name::<T>())
            .field("output", &std::any::type_name::<O>())
            .field("from", &self.from)
            .finish()
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentRef<T, O> {
    pub(crate) fn new(
        entry: Arc<AgentEntry<T, O>>,
        rt: Arc<Runtime>,
        from: Option<AgentName>,
    ) -> Self {
        Self { entry, rt, from }
    }

    /// The agent's name.
    pub fn name(&self) -> &AgentName {
        &self.entry.name
    }

    /// The agent's spec.
    pub fn spec(&self) -> &AgentSpec {
        &self.entry.spec
    }

    /// Submits a task, waiting for room in the agent's queue.
    ///
    /// Returns once the task is queued; await the handle for its result.
    ///
    /// # Errors
    ///
    /// The task comes back inside a [`SubmitError`]: `AgentStopped` (all of its replicas are
    /// gone), `BreakerOpen` (every replica's circuit breaker refuses), `NotStarted` (the agent
    /// is still starting), `SwarmStopped` once shutdown has begun (for references from
    /// outside the swarm), or `NotAllowed` when the topology forbids the sender to reach this
    /// agent.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room drops the task unsubmitted.
    pub async fn submit(&self, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.submit_with(task, SubmitOptions::default()).await
    }

    /// Submits with explicit options (a deadline, or fail fast when the queue is full).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and `Busy` when the queue is full and `options` asked not
    /// to wait.
    pub async fn submit_with(
        &self,
        task: T,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        if let Err(kind) = self.admit() {
            return Err(SubmitError::new(kind, task));
        }
        match self.entry.reserve(options.wait).await {
            Ok(slot) => self
                .entry
                .dispatch(self.rt.next_task_id(), task, options, slot),
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Submits without waiting: a full queue is an immediate `Busy` error. Usable outside
    /// async code (a hook, a callback).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and `Busy` when the queue is full.
    pub fn try_submit(&self, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        if let Err(kind) = self.admit() {
            return Err(SubmitError::new(kind, task));
        }
        match self.entry.try_reserve() {
            Ok(slot) => {
                self.entry
                    .dispatch(self.rt.next_task_id(), task, SubmitOptions::default(), slot)
            }
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Tasks queued or running for the agent now.
    pub fn queue_depth(&self) -> usize {
        self.entry.queue().depth()
    }

    /// The bound on the agent's queue.
    pub fn queue_capacity(&self) -> usize {
        self.entry.queue().capacity()
    }

    /// Whether a task may be submitted now: the swarm is open (or the sender is one of its
    /// agents), the topology allows it, and the agent has started.
    fn admit(&self) -> Result<(), SubmitErrorKind> {
        match &self.from {
            // Agents may still reach peers that are up while the swarm drains.
            Some(from) => self
                .rt
                .registry
                .check_send(from, self.entry.name.as_str())?,
            None if self.rt.is_closed() => {
                return Err(match self.entry.gave_up.get() {
                    // Closed because its supervisor gave up: say so, not just "stopped".
                    Some(reason) => SubmitErrorKind::GaveUp {
                        agent: self.entry.name.clone(),
                        reason: reason.clone(),
                    },
                    None => SubmitErrorKind::SwarmStopped,
                });
            }
            None => {}
        }
        if !self.entry.is_started() {
            return Err(SubmitErrorKind::NotStarted(self.entry.name.clone()));
        }
        Ok(())
    }
}
