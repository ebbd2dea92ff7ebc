//! What an agent may touch: its identity, its task, its peers, the swarm's resources and
//! events.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tokio::time::Instant;

use crate::agent_ref::AgentRef;
use crate::registry::Pick;
use crate::resources::MissingResource;
use crate::runtime::Runtime;
use crate::task::TaskShared;
use crate::{
    AgentName, AgentSpec, EventKind, EventStream, LookupError, RouteRequest, SubmitError,
    SubmitErrorKind, TaskHandle, TaskId,
};

/// What an agent may touch: its identity and spec, the task it is handling (its cancellation
/// and deadline), its peers, the swarm's resources and its events.
///
/// An agent reaches the rest of the swarm only through its context; there are no globals.
/// The context an agent's `handle` receives is about that task; a clone may be moved into
/// tasks the agent spawns.
///
/// `T` and `O` are the agent's own task and output types ([`Ctx<A>`](crate::Ctx) names them
/// from the agent type). Peers may take other types: [`agent`](Self::agent) gives a typed
/// reference to any of them, checked once.
///
/// # Deadlocks
///
/// An agent handles one task at a time. Awaiting a peer's result inside `handle`
/// (`peer.submit(t).await?.await?`) holds the agent until the peer answers, and its own
/// queue waits meanwhile. If the peer, directly or through others, sends work back to this
/// agent and awaits it, the cycle never ends: each waits for the other's queue. A ring of
/// agents each awaiting its successor deadlocks on the first task that goes round twice.
///
/// The non-blocking way is to hand the task on: [`hand_off`](Self::hand_off) gives the
/// current task to a peer, whose result completes the original task, and the agent takes
/// its next task at once. Hand-offs wait only for room in the peer's queue; a cycle of them
/// can block only if every queue in the cycle is full at once.
///
/// # Examples
///
/// An agent that fans work out to a peer and waits for it (fine: `double` never calls back):
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
///         let double = ctx.agent::<u64, u64>("double")?;
///         let twice = double.submit(n).await?.await?;
///         Ok(double.submit(twice).await?.await?)
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
/// assert_eq!(swarm.agent::<u64, u64>("quad")?.submit(5).await?.await?, 20);
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct AgentContext<T, O> {
    pub(crate) base: Arc<Base>,
    pub(crate) task: Option<Arc<TaskShared<O>>>,
    _task: PhantomData<fn(T)>,
}

/// What every context of one agent replica shares.
pub(crate) struct Base {
    pub(crate) name: AgentName,
    pub(crate) replica: usize,
    pub(crate) spec: Arc<AgentSpec>,
    pub(crate) rt: Arc<Runtime>,
}

impl Base {
    /// Publishes an `Emitted` event of this replica (for the contexts, typed or not).
    pub(crate) fn emit(
        &self,
        task: Option<TaskId>,
        name: Cow<'static, str>,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        self.rt.bus.publish(|| EventKind::Emitted {
            task,
            agent: self.name.clone(),
            replica: self.replica,
            name,
            data: Arc::new(data()),
        });
    }

    /// A peer by name, its submissions checked against the topology as this agent's.
    pub(crate) fn peer<T: Send + 'static, O: Send + 'static>(
        &self,
        name: &str,
    ) -> Result<AgentRef<T, O>, LookupError> {
        let entry = self.rt.registry.typed::<T, O>(name)?;
        Ok(AgentRef::new(
            entry,
            self.rt.clone(),
            Some(self.name.clone()),
        ))
    }
}

impl<T, O> Clone for AgentContext<T, O> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            task: self.task.clone(),
            _task: PhantomData,
        }
    }
}

impl<T, O> fmt::Debug for AgentContext<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentContext")
            .field("name", &self.base.name)
            .field("replica", &self.base.replica)
            .field("task", &self.task.as_ref().map(|t| t.id))
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentContext<T, O> {
    /// The context of an agent replica, outside any task (`started`, `stopping`).
    pub(crate) fn new(base: Base) -> Self {
        Self {
            base: Arc::new(base),
            task: None,
            _task: PhantomData,
        }
    }

    /// Points the context at the task being handled (`None` between tasks).
    pub(crate) fn set_task(&mut self, task: Option<Arc<TaskShared<O>>>) {
        self.task = task;
    }

    /// This agent's name.
    pub fn name(&self) -> &AgentName {
        &self.base.name
    }

    /// Which replica of the agent this is (0-based).
    pub fn replica(&self) -> usize {
        self.base.replica
    }

    /// This agent's spec.
    pub fn spec(&self) -> &AgentSpec {
        &self.base.spec
    }

    /// The number of the task being handled; `None` outside `handle`.
    pub fn task_id(&self) -> Option<TaskId> {
        self.task.as_ref().map(|t| t.id)
    }

    /// What the submitter attached to the task being handled
    /// ([`SubmitOptions::attach`](crate::SubmitOptions::attach)), if it is a `V`.
    pub fn attached<V: std::any::Any>(&self) -> Option<&V> {
        self.task.as_ref()?.attachment.as_ref()?.downcast_ref::<V>()
    }

    /// The deadline of the task being handled, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.task.as_ref().and_then(|t| t.deadline)
    }

    /// Whether the task being handled must stop: it was cancelled, passed its deadline, or
    /// was handed on. The swarm drops `handle`'s future at its next `.await` anyway; this is
    /// for work that does not await (a loop over data) or runs in a task the agent spawned.
    pub fn is_cancelled(&self) -> bool {
        self.task
            .as_ref()
            .is_some_and(|t| t.stop_signal().is_raised())
    }

    /// Completes when the task being handled must stop (see
    /// [`is_cancelled`](Self::is_cancelled)); never, for a context outside a task.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apiary_core::{Agent, AgentContext};
    /// /// Streams numbers to a channel until its task is cancelled.
    /// struct Ticker(tokio::sync::mpsc::Sender<u64>);
    /// impl Agent for Ticker {
    ///     type Task = ();
    ///     type Output = u64;
    ///     type Error = std::convert::Infallible;
    ///     async fn handle(&mut self, _: (), ctx: &AgentContext<(), u64>) -> Result<u64, Self::Error> {
    ///         let (ctx, tx) = (ctx.clone(), self.0.clone());
    ///         // Work the swarm cannot drop by itself: a task of our own, told to stop.
    ///         let worker = tokio::spawn(async move {
    ///             let mut sent = 0;
    ///             loop {
    ///                 tokio::select! {
    ///                     () = ctx.cancelled() => return sent,
    ///                     Ok(()) = tx.send(sent) => sent += 1,
    ///                 }
    ///             }
    ///         });
    ///         Ok(worker.await.unwrap_or(0))
    ///     }
    /// }
    /// ```
    pub async fn cancelled(&self) {
        match &self.task {
            Some(t) => t.stop_signal().raised().await,
            None => std::future::pending().await,
        }
    }

    /// A typed reference to a peer, through which this agent's submissions are checked
    /// against the topology.
    ///
    /// # Errors
    ///
    /// [`LookupError`] if no agent has this name or it runs other types.
    pub fn agent<T2: Send + 'static, O2: Send + 'static>(
        &self,
        name: &str,
    ) -> Result<AgentRef<T2, O2>, LookupError> {
        self.base.peer(name)
    }

    fn peer<T2: Send + 'static, O2: Send + 'static>(
        &self,
        entry: Arc<crate::entry::AgentEntry<T2, O2>>,
    ) -> AgentRef<T2, O2> {
        AgentRef::new(entry, self.base.rt.clone(), Some(self.base.name.clone()))
    }

    /// The member the topology makes this agent's successor (a ring's next live member)
    /// among the agents taking `T2` and giving `O2`.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no such successor.
    pub fn successor<T2: Send + 'static, O2: Send + 'static>(
        &self,
    ) -> Result<AgentRef<T2, O2>, SubmitErrorKind> {
        let entry = self
            .base
            .rt
            .registry
            .pick::<T2, O2>(&self.base.name, Pick::Successor)?;
        Ok(self.peer(entry))
    }

    /// The member the topology says this agent delegates a task needing `capability` to (a
    /// coordinator's least-loaded capable worker), among the agents taking `T2` and giving
    /// `O2`.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no one to delegate to.
    pub fn delegate_target<T2: Send + 'static, O2: Send + 'static>(
        &self,
        capability: Option<&str>,
    ) -> Result<AgentRef<T2, O2>, SubmitErrorKind> {
        let request = RouteRequest { capability };
        let entry = self
            .base
            .rt
            .registry
            .pick::<T2, O2>(&self.base.name, Pick::Delegate(request))?;
        Ok(self.peer(entry))
    }

    /// Sends a task to this agent's [`successor`](Self::successor), waiting for room in its
    /// queue. Awaiting the handle holds this agent (see [Deadlocks](Self#deadlocks)); to pass
    /// the task on without waiting for it, [`hand_off`](Self::hand_off) to the successor.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no successor; otherwise as
    /// [`AgentRef::submit`].
    pub async fn forward<T2: Send + 'static, O2: Send + 'static>(
        &self,
        task: T2,
    ) -> Result<TaskHandle<O2>, SubmitError<T2>> {
        match self.successor::<T2, O2>() {
            Ok(peer) => peer.submit(task).await,
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Sends a task down to the agent the topology picks for it
    /// ([`delegate_target`](Self::delegate_target)), waiting for room in its queue.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the topology gives this agent no one to delegate to; otherwise as
    /// [`AgentRef::submit`].
    pub async fn delegate<T2: Send + 'static, O2: Send + 'static>(
        &self,
        task: T2,
        capability: Option<&str>,
    ) -> Result<TaskHandle<O2>, SubmitError<T2>> {
        match self.delegate_target::<T2, O2>(capability) {
            Ok(peer) => peer.submit(task).await,
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Hands the task being handled on to `peer`: `peer` gets `task`, its result becomes the
    /// original task's result, and this agent goes on to its next task at once.
    ///
    /// On success this never returns: the swarm ends `handle` right there (its future is
    /// dropped at this `.await`, as on cancellation), records the hop as `Delegated`, and
    /// counts it a success for this replica's breaker. It waits only for room in `peer`'s
    /// queue. Like [`std::os::unix::process::CommandExt::exec`], it returns only on failure,
    /// with the task back inside the error:
    ///
    /// ```text
    /// return Err(ctx.hand_off(&next, task).await.into());
    /// ```
    ///
    /// The handed-on task keeps the original's deadline (or takes `peer`'s default timeout if
    /// the original had none); cancelling the original cancels it.
    ///
    /// # Errors
    ///
    /// `NoTask` outside `handle`, or if the task ended meanwhile; `NotAllowed` if the
    /// topology forbids this agent to reach `peer`; otherwise as [`AgentRef::submit`].
    ///
    /// # Examples
    ///
    /// A ring of agents that pass a token round: each adds one and hands it on, so none is
    /// held while the others work, however many times the token goes round.
    ///
    /// ```
    /// use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm, Topology};
    /// # use apiary_core::{AgentName, MemberView, RouteRequest};
    /// # /// A ring in start order (apiary-ring has the real one).
    /// # struct Ring;
    /// # impl Topology for Ring {
    /// #     fn name(&self) -> &str { "ring" }
    /// #     fn allows(&self, _: &str, _: &str, _: &[MemberView<'_>]) -> bool { true }
    /// #     fn successor(&self, from: &str, m: &[MemberView<'_>]) -> Option<AgentName> {
    /// #         let i = m.iter().position(|v| v.name == from)?;
    /// #         Some(m[(i + 1) % m.len()].name.clone())
    /// #     }
    /// #     fn route(&self, _: &RouteRequest<'_>, m: &[MemberView<'_>]) -> Option<AgentName> {
    /// #         m.first().map(|v| v.name.clone())
    /// #     }
    /// # }
    ///
    /// struct Stage;
    /// impl Agent for Stage {
    ///     type Task = u32;
    ///     type Output = u32;
    ///     type Error = BoxError;
    ///     async fn handle(&mut self, hops: u32, ctx: &AgentContext<u32, u32>) -> Result<u32, BoxError> {
    ///         if hops == 10 {
    ///             return Ok(hops);
    ///         }
    ///         let next = ctx.successor::<u32, u32>()?;
    ///         Err(ctx.hand_off(&next, hops + 1).await.into())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let swarm = Swarm::builder()
    ///     .topology(Ring)
    ///     .agent(AgentSpec::new("a").queue_capacity(1), || Stage)
    ///     .agent(AgentSpec::new("b").queue_capacity(1), || Stage)
    ///     .agent(AgentSpec::new("c").queue_capacity(1), || Stage)
    ///     .start()
    ///     .await?;
    /// assert_eq!(swarm.route::<u32, u32>(0).await?.await?, 10);
    /// swarm.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn hand_off<T2: Send + 'static>(
        &self,
        peer: &AgentRef<T2, O>,
        task: T2,
    ) -> SubmitError<T2> {
        let current = match &self.task {
            Some(t) if t.state() == crate::TaskState::Running => t,
            _ => return SubmitError::new(SubmitErrorKind::NoTask, task),
        };
        let rt = &self.base.rt;
        if let Err(kind) = rt
            .registry
            .check_send(&self.base.name, peer.name().as_str())
        {
            return SubmitError::new(kind, task);
        }
        if !peer.entry.is_started() {
            return SubmitError::new(SubmitErrorKind::NotStarted(peer.name().clone()), task);
        }
        let slot = match peer.entry.reserve(true).await {
            Ok(slot) => slot,
            Err(kind) => return SubmitError::new(kind, task),
        };
        match peer.entry.hand_over(rt.next_task_id(), task, current, slot) {
            // The actor saw the hop end as `Delegated` and drops this future; if a cancel
            // raced the hand-over, it drops it all the same.
            Ok(()) => std::future::pending().await,
            Err((task, kind)) => SubmitError::new(kind, task),
        }
    }

    /// Sends a copy of `task` to every member taking `T2` and giving `O2` that the topology
    /// lets this agent reach (itself excluded), waiting for room in each queue. Returns one
    /// result per peer, in start order.
    pub async fn broadcast<T2: Clone + Send + 'static, O2: Send + 'static>(
        &self,
        task: T2,
    ) -> Vec<(AgentName, Result<TaskHandle<O2>, SubmitError<T2>>)> {
        let peers = self.base.rt.registry.reachable::<T2, O2>(&self.base.name);
        self.send_copies(peers, task).await
    }

    /// Sends a copy of `task` to `fanout` peers picked at random among those
    /// [`broadcast`](Self::broadcast) would reach (all of them if there are fewer): one round
    /// of gossip. Agents that pass a rumour on this way spread it through a mesh in a few
    /// rounds.
    pub async fn gossip<T2: Clone + Send + 'static, O2: Send + 'static>(
        &self,
        task: T2,
        fanout: usize,
    ) -> Vec<(AgentName, Result<TaskHandle<O2>, SubmitError<T2>>)> {
        let mut peers = self.base.rt.registry.reachable::<T2, O2>(&self.base.name);
        fastrand::shuffle(&mut peers);
        peers.truncate(fanout);
        self.send_copies(peers, task).await
    }

    async fn send_copies<T2: Clone + Send + 'static, O2: Send + 'static>(
        &self,
        peers: Vec<Arc<crate::entry::AgentEntry<T2, O2>>>,
        task: T2,
    ) -> Vec<(AgentName, Result<TaskHandle<O2>, SubmitError<T2>>)> {
        let mut sent = Vec::with_capacity(peers.len());
        for entry in peers {
            let peer = self.peer(entry);
            let result = peer.submit(task.clone()).await;
            sent.push((peer.name().clone(), result));
        }
        sent
    }

    /// The names of the agents in the swarm, this one included, in start order.
    pub fn peers(&self) -> Vec<AgentName> {
        self.base.rt.registry.names()
    }

    /// Subscribes to the swarm's events from now on.
    pub fn subscribe(&self) -> EventStream {
        self.base.rt.bus.subscribe()
    }

    /// Publishes an event of this agent's own ([`EventKind::Emitted`]), tagged with the task
    /// being handled. `data` is called only if a hook or subscriber will see the event, so
    /// emitting into a swarm nobody watches costs an atomic load.
    ///
    /// ```
    /// # use apiary_core::{AgentContext};
    /// fn progress(ctx: &AgentContext<String, String>, done: usize) {
    ///     ctx.emit("progress", || serde_json::json!({ "done": done }));
    /// }
    /// ```
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        self.base.emit(self.task_id(), name.into(), data);
    }

    /// A resource the swarm was given ([`SwarmBuilder::resource`](crate::SwarmBuilder::resource)),
    /// by type: its memory, an HTTP client, a database pool.
    ///
    /// # Errors
    ///
    /// [`MissingResource`], naming the type, if the swarm has none of that type.
    ///
    /// # Examples
    ///
    /// ```
    /// use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm};
    ///
    /// /// Settings every agent reads.
    /// struct Greeting(String);
    ///
    /// struct Greeter;
    /// impl Agent for Greeter {
    ///     type Task = String;
    ///     type Output = String;
    ///     type Error = BoxError;
    ///     async fn handle(&mut self, name: String, ctx: &AgentContext<String, String>) -> Result<String, BoxError> {
    ///         let greeting = ctx.resource::<Greeting>()?;
    ///         Ok(format!("{}, {name}", greeting.0))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let swarm = Swarm::builder()
    ///     .resource(Greeting("hello".into()))
    ///     .agent(AgentSpec::new("greeter"), || Greeter)
    ///     .start()
    ///     .await?;
    /// let greeter = swarm.agent::<String, String>("greeter")?;
    /// assert_eq!(greeter.submit("bee".into()).await?.await?, "hello, bee");
    /// swarm.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn resource<R: Send + Sync + 'static>(&self) -> Result<&R, MissingResource> {
        self.base.rt.resources.get::<R>()
    }
}
