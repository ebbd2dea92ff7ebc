//! The running swarm: typed references to its agents, routing, pause/resume and shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorRef};

use crate::agent_ref::AgentRef;
use crate::entry::{ErasedEntry, ReplicaStatus};
use crate::events::EventBus;
use crate::resources::MissingResource;
use crate::root::{RootMsg, Supervised};
use crate::runtime::Runtime;
use crate::{
    AgentName, AgentSpec, Approvals, EventKind, EventStream, LookupError, RouteRequest,
    SubmitError, SubmitErrorKind, SubmitOptions, SwarmSettings, TaskHandle, Topology,
    TopologyError, UnknownAgent,
};

/// A running swarm of agents.
///
/// Built with [`Swarm::builder`]; cheap to clone (clones share the swarm). Every agent runs in
/// its own ractor actor behind a bounded queue; agents of many kinds, each with its own task
/// and output types, live in one swarm. Reach one through a typed reference,
/// [`agent`](Self::agent). Call [`shutdown`](Self::shutdown) to stop the swarm gracefully;
/// dropping the last clone without it stops the actors abruptly (queued tasks end as
/// [`TaskError::AgentStopped`](crate::TaskError::AgentStopped)).
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
///
/// struct Upper;
/// impl Agent for Upper {
///     type Task = String;
///     type Output = String;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, s: String, _: &AgentContext<String, String>) -> Result<String, Self::Error> {
///         Ok(s.to_uppercase())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("upper").replicas(2), || Upper)
///     .start()
///     .await?;
/// let upper = swarm.agent::<String, String>("upper")?;
/// let handle = upper.submit("hive".to_string()).await?;
/// assert_eq!(handle.await?, "HIVE");
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Swarm {
    inner: Arc<SwarmInner>,
}

struct SwarmInner {
    rt: Arc<Runtime>,
    root: ActorRef<RootMsg>,
    shutdown: tokio::sync::Mutex<bool>,
}

impl fmt::Debug for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("name", &self.inner.rt.settings.name)
            .field("agents", &self.agents())
            .finish()
    }
}

impl Swarm {
    pub(crate) fn from_parts(rt: Arc<Runtime>, root: ActorRef<RootMsg>) -> Self {
        Self {
            inner: Arc::new(SwarmInner {
                rt,
                root,
                shutdown: tokio::sync::Mutex::new(false),
            }),
        }
    }

    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.rt
    }

    /// A typed reference to an agent: it takes `T` and gives `O`. Types are checked here,
    /// once; submissions through the reference are checked by the compiler.
    ///
    /// # Errors
    ///
    /// [`LookupError::UnknownAgent`] if no agent has this name, [`LookupError::WrongType`]
    /// (naming the agent, the types asked for and the types it runs) if it runs others.
    pub fn agent<T: Send + 'static, O: Send + 'static>(
        &self,
        name: &str,
    ) -> Result<AgentRef<T, O>, LookupError> {
        let entry = self.inner.rt.registry.typed::<T, O>(name)?;
        Ok(AgentRef::new(entry, self.inner.rt.clone(), None))
    }

    /// Submits a task to the swarm as a whole: its topology picks the agent, among those
    /// taking `T` and giving `O`.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the swarm has no topology or no such member can take the task; otherwise
    /// as [`AgentRef::submit`].
    pub async fn route<T: Send + 'static, O: Send + 'static>(
        &self,
        task: T,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.route_with(task, RouteRequest::default(), SubmitOptions::default())
            .await
    }

    /// [`route`](Self::route) for a task that needs a capability, or with options.
    ///
    /// # Errors
    ///
    /// As [`route`](Self::route).
    pub async fn route_with<T: Send + 'static, O: Send + 'static>(
        &self,
        task: T,
        request: RouteRequest<'_>,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        if self.inner.rt.is_closed() {
            return Err(SubmitError::new(SubmitErrorKind::SwarmStopped, task));
        }
        match self.inner.rt.registry.route::<T, O>(&request) {
            Ok(entry) => {
                AgentRef::new(entry, self.inner.rt.clone(), None)
                    .submit_with(task, options)
                    .await
            }
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    fn entry(&self, agent: &str) -> Result<Arc<dyn ErasedEntry>, UnknownAgent> {
        Ok(self.inner.rt.registry.slot(agent)?.entry)
    }

    /// Pauses an agent's queue: tasks keep being accepted (up to the queue bound) but none
    /// starts until [`resume`](Self::resume). A task already running finishes.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn pause(&self, agent: &str) -> Result<(), UnknownAgent> {
        let entry = self.entry(agent)?;
        entry.queue().set_paused(true);
        self.inner.rt.bus.publish(|| EventKind::AgentPaused {
            agent: entry.name().clone(),
        });
        Ok(())
    }

    /// Resumes a paused agent's queue; held tasks run in the order they arrived.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn resume(&self, agent: &str) -> Result<(), UnknownAgent> {
        let entry = self.entry(agent)?;
        entry.resume();
        self.inner.rt.bus.publish(|| EventKind::AgentResumed {
            agent: entry.name().clone(),
        });
        Ok(())
    }

    /// Whether an agent's queue is paused.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn is_paused(&self, agent: &str) -> Result<bool, UnknownAgent> {
        Ok(self.entry(agent)?.queue().is_paused())
    }

    /// The swarm's approval gates: work waiting for a person's decision. See
    /// [`Approvals`].
    pub fn approvals(&self) -> &Approvals {
        &self.inner.rt.approvals
    }

    /// Tasks queued or running for an agent now.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn queue_depth(&self, agent: &str) -> Result<usize, UnknownAgent> {
        Ok(self.entry(agent)?.queue().depth())
    }

    /// The bound on an agent's queue.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn queue_capacity(&self, agent: &str) -> Result<usize, UnknownAgent> {
        Ok(self.entry(agent)?.queue().capacity())
    }

    /// Switches the swarm to another topology while it runs. Tasks already queued stay where
    /// they are; sends and routing decisions from now on follow the new topology.
    ///
    /// # Errors
    ///
    /// The new topology's [`TopologyError`] if it cannot work with the swarm's agents; the
    /// old topology stays.
    pub fn set_topology(&self, topology: impl Topology) -> Result<(), TopologyError> {
        self.inner.rt.registry.set_topology(Box::new(topology))
    }

    /// The name of the swarm's topology, if it has one.
    pub fn topology(&self) -> Option<String> {
        self.inner.rt.registry.topology_name()
    }

    /// A resource the swarm was given, by type
    /// ([`SwarmBuilder::resource`](crate::SwarmBuilder::resource)).
    ///
    /// # Errors
    ///
    /// [`MissingResource`], naming the type, if the swarm has none of that type.
    pub fn resource<R: Send + Sync + 'static>(&self) -> Result<&R, MissingResource> {
        self.inner.rt.resources.get::<R>()
    }

    /// Subscribes to the swarm's events from now on.
    pub fn subscribe(&self) -> EventStream {
        self.inner.rt.bus.subscribe()
    }

    /// The agents, in the order they started.
    pub fn agents(&self) -> Vec<AgentName> {
        self.inner.rt.registry.names()
    }

    /// An agent's spec.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn spec(&self, agent: &str) -> Result<AgentSpec, UnknownAgent> {
        Ok(AgentSpec::clone(self.entry(agent)?.spec()))
    }

    /// The swarm's settings.
    pub fn settings(&self) -> &SwarmSettings {
        &self.inner.rt.settings
    }

    /// Every actor the swarm runs: its supervisor, then each agent replica in start order.
    /// For monitoring (and for checking that shutdown left nothing behind).
    pub fn actor_cells(&self) -> Vec<ActorCell> {
        let mut cells = vec![self.inner.root.get_cell()];
        for slot in self.inner.rt.registry.members().iter() {
            cells.extend(
                slot.entry
                    .replicas()
                    .iter()
                    .map(|r| ActorCell::clone(&r.actor())),
            );
        }
        cells
    }

    /// Stops the swarm gracefully: refuses new submissions from outside, resumes paused
    /// queues, waits until no agent has work queued or running (agents may still hand work to
    /// each other meanwhile), then stops the agents in reverse start order (running each
    /// `stopping` hook). Ends with a `SwarmStopped` event. Calling it again does nothing.
    ///
    /// This waits for every queued task, however long: give tasks deadlines, or use
    /// [`shutdown_timeout`](Self::shutdown_timeout).
    pub async fn shutdown(&self) {
        self.stop(None).await;
    }

    /// [`shutdown`](Self::shutdown) that waits at most `grace` for the queues to drain, then
    /// cancels every task still queued or running (each ends as
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled)) and stops the agents. Returns
    /// whether everything finished within `grace`.
    ///
    /// A task is cancelled by dropping its `handle` future at its next `.await`; code that
    /// never awaits cannot be interrupted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apiary_core::{Agent, AgentContext, AgentSpec, Swarm, TaskError};
    /// # use std::time::Duration;
    /// struct Sleeper;
    /// impl Agent for Sleeper {
    ///     type Task = Duration;
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    ///     async fn handle(&mut self, d: Duration, _: &AgentContext<Duration, ()>) -> Result<(), Self::Error> {
    ///         tokio::time::sleep(d).await;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let swarm = Swarm::builder().agent(AgentSpec::new("sleeper"), || Sleeper).start().await?;
    /// let sleeper = swarm.agent::<Duration, ()>("sleeper")?;
    /// let long = sleeper.submit(Duration::from_secs(3600)).await?;
    /// let queued = sleeper.submit(Duration::from_secs(1)).await?;
    /// assert!(!swarm.shutdown_timeout(Duration::from_secs(5)).await);
    /// assert!(matches!(long.await, Err(TaskError::Cancelled)));
    /// assert!(matches!(queued.await, Err(TaskError::Cancelled)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown_timeout(&self, grace: Duration) -> bool {
        self.stop(Some(grace)).await
    }

    async fn stop(&self, grace: Option<Duration>) -> bool {
        let mut done = self.inner.shutdown.lock().await;
        if *done {
            return true;
        }
        let rt = &self.inner.rt;
        rt.close();
        // Nobody is left to act on a decision, and a task waiting for one would hold the
        // drain up: waiting approvals are withdrawn (their waiters are told why).
        rt.approvals.close();
        let members = rt.registry.members();
        let entries: Vec<&Arc<dyn ErasedEntry>> = members.iter().map(|s| &s.entry).collect();
        let drained = match grace {
            None => {
                quiesce(&entries).await;
                true
            }
            Some(grace) => tokio::time::timeout(grace, quiesce(&entries)).await.is_ok(),
        };
        if !drained {
            // Everything still waiting or running ends as cancelled, promptly.
            for entry in &entries {
                entry.abort();
            }
            quiesce(&entries).await;
        }
        for entry in entries.iter().rev() {
            entry.queue().drain_and_close().await;
            for replica in entry.replicas() {
                // Dead first, so the supervisor does not restart what shutdown stops.
                replica.set_status(ReplicaStatus::Dead);
                let actor = replica.actor();
                // Unlinked, so the supervisor is not woken for an exit it would ignore.
                actor.unlink(self.inner.root.get_cell());
                // An error means the actor was already gone.
                let _ = actor.stop_and_wait(None, None).await;
            }
            // Tasks parked for a replica that will not come back now end as dead letters.
            Arc::clone(entry).flush_parked();
        }
        // Whatever else runs under the root (pooled agents) stops with it.
        self.inner.root.stop_children_and_wait(None, None).await;
        let _ = self.inner.root.stop_and_wait(None, None).await;
        rt.bus.publish(|| EventKind::SwarmStopped);
        *done = true;
        drained
    }
}

/// Waits until no agent has work queued or running, all at one moment: agents may still hand
/// work to each other (a pipeline flows towards later agents), so one pass is not enough.
async fn quiesce(entries: &[&Arc<dyn ErasedEntry>]) {
    loop {
        for entry in entries.iter().rev() {
            entry.resume();
            entry.queue().wait_idle().await;
        }
        if entries.iter().all(|e| e.queue().depth() == 0) {
            break;
        }
    }
}

impl Drop for SwarmInner {
    fn drop(&mut self) {
        // The last handle is gone without a shutdown: stop every actor rather than leak it.
        self.rt.close();
        for entry in self.rt.registry.planned() {
            entry.queue().close();
            for replica in entry.replicas() {
                replica.set_status(ReplicaStatus::Dead);
                replica.actor().stop(None);
            }
        }
        self.root.stop_children(None);
        self.root.stop(None);
    }
}

/// The supervisor sees the swarm through this narrow view.
impl Supervised for Runtime {
    fn agents(&self) -> Vec<Arc<dyn ErasedEntry>> {
        self.registry.entries()
    }

    fn agent(&self, name: &AgentName) -> Option<Arc<dyn ErasedEntry>> {
        self.registry
            .slot(name.as_str())
            .ok()
            .map(|s| s.entry)
            .filter(|e| !e.replicas().is_empty())
    }

    fn exited(&self, actor: ractor::ActorId) -> Option<crate::registry::Child> {
        self.registry.exited(actor)
    }

    fn replaced(&self, child: crate::registry::Child, actor: ractor::ActorId) {
        self.registry.replaced(child, actor);
    }

    fn supervisor_of(&self, agent: &AgentName) -> Option<AgentName> {
        self.registry.supervisor_of(agent)
    }

    fn bus(&self) -> &EventBus {
        &self.bus
    }

    fn settings(&self) -> &SwarmSettings {
        &self.settings
    }

    fn close(&self) {
        Runtime::close(self);
    }
}
