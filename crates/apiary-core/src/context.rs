use std::fmt;
use std::sync::{Arc, Weak};

use apiary_memory::Memory;

use crate::swarm::SwarmInner;
use crate::{
    AgentName, AgentSpec, EventStream, SubmitError, SubmitErrorKind, SubmitOptions, TaskHandle,
};

/// What an agent may touch: its own identity and spec, its peers, and the swarm's events.
///
/// An agent reaches the rest of the swarm only through its context; there are no globals.
/// A context is cheap to clone and may be moved into tasks the agent spawns.
///
/// # Examples
///
/// An agent that fans work out to a peer and waits for it:
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm};
///
/// struct Double;
/// impl Agent for Double {
///     type Task = u64;
///     type Output = u64;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
///         Ok(n * 2)
///     }
/// }
///
/// struct Quadruple;
/// impl Agent for Quadruple {
///     type Task = u64;
///     type Output = u64;
///     type Error = BoxError;
///     async fn handle(&mut self, n: u64, ctx: &AgentContext<u64, u64>) -> Result<u64, BoxError> {
///         let twice = ctx.send("double", n).await?.await?;
///         Ok(ctx.send("double", twice).await?.await?)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("double"), || Double)
///     .agent(AgentSpec::new("quad").depends_on(["double"]), || Quadruple)
///     .start()
///     .await?;
/// assert_eq!(swarm.submit("quad", 5).await?.await?, 20);
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct AgentContext<T, O> {
    name: AgentName,
    replica: usize,
    spec: Arc<AgentSpec>,
    swarm: Weak<SwarmInner<T, O>>,
}

impl<T, O> Clone for AgentContext<T, O> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            replica: self.replica,
            spec: self.spec.clone(),
            swarm: self.swarm.clone(),
        }
    }
}

impl<T, O> fmt::Debug for AgentContext<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentContext")
            .field("name", &self.name)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentContext<T, O> {
    pub(crate) fn new(
        name: AgentName,
        replica: usize,
        spec: Arc<AgentSpec>,
        swarm: Weak<SwarmInner<T, O>>,
    ) -> Self {
        Self {
            name,
            replica,
            spec,
            swarm,
        }
    }

    /// This agent's name.
    pub fn name(&self) -> &AgentName {
        &self.name
    }

    /// Which replica of the agent this is (0-based).
    pub fn replica(&self) -> usize {
        self.replica
    }

    /// This agent's spec.
    pub fn spec(&self) -> &AgentSpec {
        &self.spec
    }

    /// Sends a task to a peer, waiting for room in its queue.
    ///
    /// The task's tracing span is a child of the span of the task being handled, so a trace
    /// follows work across agents.
    ///
    /// # Errors
    ///
    /// As [`Swarm::submit`](crate::Swarm::submit), except that it still works while the swarm
    /// drains for shutdown (until the peer itself has stopped). The task comes back in the
    /// error.
    pub async fn send(&self, peer: &str, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.send_with(peer, task, SubmitOptions::default()).await
    }

    /// [`send`](Self::send) with a deadline or without waiting.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`SubmitErrorKind::Busy`] if `options` asked not to wait and
    /// the peer's queue is full.
    pub async fn send_with(
        &self,
        peer: &str,
        task: T,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let Some(swarm) = self.swarm.upgrade() else {
            return Err(SubmitError::new(SubmitErrorKind::SwarmStopped, task));
        };
        if let Err(kind) = swarm.check_send(&self.name, peer) {
            return Err(SubmitError::new(kind, task));
        }
        swarm.submit(peer, task, options, true).await
    }

    /// Hands a task on to this agent's successor in the topology (a ring's next live member),
    /// waiting for room in its queue.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no successor; otherwise as
    /// [`send`](Self::send).
    pub async fn forward(&self, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.send_to_chosen(task, |swarm| swarm.successor(&self.name))
            .await
    }

    /// Hands a task down to the agent the topology picks for it (a coordinator's
    /// least-loaded worker with `capability`), waiting for room in its queue.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no one to delegate to; otherwise as
    /// [`send`](Self::send).
    pub async fn delegate(
        &self,
        task: T,
        capability: Option<&str>,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let request = crate::RouteRequest { capability };
        self.send_to_chosen(task, |swarm| swarm.delegate(&self.name, &request))
            .await
    }

    /// Sends to the agent `choose` picks (the topology's successor, delegate, ...).
    async fn send_to_chosen(
        &self,
        task: T,
        choose: impl FnOnce(&SwarmInner<T, O>) -> Result<AgentName, SubmitErrorKind>,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let Some(swarm) = self.swarm.upgrade() else {
            return Err(SubmitError::new(SubmitErrorKind::SwarmStopped, task));
        };
        match choose(&swarm) {
            Ok(to) => {
                swarm
                    .submit(to.as_str(), task, SubmitOptions::default(), true)
                    .await
            }
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Sends a copy of `task` to each of `peers`, in order.
    async fn send_copies(
        swarm: &SwarmInner<T, O>,
        peers: Vec<AgentName>,
        task: T,
    ) -> Vec<(AgentName, Result<TaskHandle<O>, SubmitError<T>>)>
    where
        T: Clone,
    {
        let mut sent = Vec::with_capacity(peers.len());
        for peer in peers {
            let result = swarm
                .submit(peer.as_str(), task.clone(), SubmitOptions::default(), true)
                .await;
            sent.push((peer, result));
        }
        sent
    }

    /// Sends a copy of `task` to every peer the topology lets this agent reach (itself
    /// excluded), waiting for room in each queue. Returns one result per peer, in start order.
    pub async fn broadcast(
        &self,
        task: T,
    ) -> Vec<(AgentName, Result<TaskHandle<O>, SubmitError<T>>)>
    where
        T: Clone,
    {
        let Some(swarm) = self.swarm.upgrade() else {
            return Vec::new();
        };
        let peers = swarm.reachable_from(&self.name);
        Self::send_copies(&swarm, peers, task).await
    }

    /// Sends a copy of `task` to `fanout` peers picked at random among those the topology lets
    /// this agent reach (all of them if there are fewer): one round of gossip. Agents that
    /// pass a rumour on this way spread it through a mesh in a few rounds.
    pub async fn gossip(
        &self,
        task: T,
        fanout: usize,
    ) -> Vec<(AgentName, Result<TaskHandle<O>, SubmitError<T>>)>
    where
        T: Clone,
    {
        let Some(swarm) = self.swarm.upgrade() else {
            return Vec::new();
        };
        let mut peers = swarm.reachable_from(&self.name);
        fastrand::shuffle(&mut peers);
        peers.truncate(fanout);
        Self::send_copies(&swarm, peers, task).await
    }

    /// The names of the agents in the swarm, this one included.
    pub fn peers(&self) -> Vec<AgentName> {
        self.swarm
            .upgrade()
            .map(|s| s.agent_names())
            .unwrap_or_default()
    }

    /// Subscribes to the swarm's events; `None` once the swarm is gone.
    pub fn subscribe(&self) -> Option<EventStream> {
        self.swarm.upgrade().map(|s| s.bus.subscribe())
    }

    /// The swarm's shared memory, if it was built with one
    /// ([`SwarmBuilder::memory`](crate::SwarmBuilder::memory)).
    pub fn memory(&self) -> Option<Memory> {
        self.swarm.upgrade().and_then(|s| s.memory.clone())
    }
}
