//! The running swarm: its agents, submission, pause/resume and shutdown.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use ractor::{ActorCell, ActorRef};
use smallvec::SmallVec;
use tokio::time::Instant;

use apiary_memory::Memory;

use crate::actor::{AgentMsg, Members};
use crate::entry::{AgentEntry, Replica, ReplicaStatus};
use crate::events::EventBus;
use crate::root::RootMsg;
use crate::{
    AgentName, AgentSpec, EventKind, EventStream, MemberView, RouteRequest, SubmitError,
    SubmitErrorKind, SubmitOptions, SwarmBuilder, SwarmSettings, TaskHandle, TaskId, Topology,
    TopologyError, UnknownAgent,
};

/// A running swarm of agents.
///
/// Built with [`Swarm::builder`]; cheap to clone (clones share the swarm). Every agent runs in
/// its own ractor actor behind a bounded queue. Call [`shutdown`](Self::shutdown) to stop it
/// gracefully; dropping the last clone without it stops the actors abruptly (queued tasks end
/// as [`TaskError::AgentStopped`](crate::TaskError::AgentStopped)).
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
/// let handle = swarm.submit("upper", "hive".to_string()).await?;
/// assert_eq!(handle.await?, "HIVE");
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Swarm<T, O> {
    pub(crate) inner: Arc<SwarmInner<T, O>>,
}

impl<T, O> Clone for Swarm<T, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, O> fmt::Debug for Swarm<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("name", &self.inner.settings.name)
            .field("agents", &self.inner.agent_names())
            .finish()
    }
}

pub(crate) struct SwarmInner<T, O> {
    pub(crate) bus: Arc<EventBus>,
    pub(crate) members: Arc<Members>,
    pub(crate) root: ActorRef<RootMsg>,
    /// Start of the swarm's clock (breakers count milliseconds from it).
    pub(crate) epoch: Instant,
    pub(crate) settings: SwarmSettings,
    pub(crate) memory: Option<Memory>,
    table: ArcSwap<Table<T, O>>,
    // Swapped atomically: a switch never blocks a submission.
    topology: ArcSwapOption<Box<dyn Topology>>,
    // Started agents, in start order (shutdown walks it backwards).
    started: Mutex<Vec<Arc<AgentEntry<T, O>>>>,
    next_task: AtomicU64,
    closed: AtomicBool,
    shutdown: tokio::sync::Mutex<bool>,
}

/// Every planned agent by name. Entries exist from the start of `start`, so marking an agent
/// started is O(1) (no copy of the table per spawn batch).
pub(crate) struct Table<T, O> {
    agents: HashMap<AgentName, Arc<AgentEntry<T, O>>>,
}

impl<T: Send + 'static, O: Send + 'static> Swarm<T, O> {
    /// A builder for a swarm whose agents take `T` and give `O`.
    pub fn builder() -> SwarmBuilder<T, O> {
        SwarmBuilder::new()
    }

    /// Submits a task to an agent, waiting for room in its queue.
    ///
    /// Returns once the task is queued; await the handle for its result.
    ///
    /// # Errors
    ///
    /// The task comes back inside a [`SubmitError`]: `UnknownAgent`, `AgentStopped` (all of its
    /// replicas are gone), or `SwarmStopped` once [`shutdown`](Self::shutdown) has begun.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room drops the task unsubmitted.
    pub async fn submit(&self, agent: &str, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.inner
            .submit(agent, task, SubmitOptions::default(), false)
            .await
    }

    /// Submits with explicit options (deadline, fail fast when busy).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and `Busy` when the queue is full and `options` asked not
    /// to wait.
    pub async fn submit_with(
        &self,
        agent: &str,
        task: T,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.inner.submit(agent, task, options, false).await
    }

    /// Submits without waiting: a full queue is an immediate `Busy` error.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and `Busy` when the queue is full.
    pub fn try_submit(&self, agent: &str, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.inner
            .try_submit(agent, task, SubmitOptions::default(), false)
    }

    /// Pauses an agent's queue: tasks keep being accepted (up to the queue bound) but none
    /// starts until [`resume`](Self::resume). A task already running finishes.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn pause(&self, agent: &str) -> Result<(), UnknownAgent> {
        self.inner.entry(agent)?.queue.set_paused(true);
        Ok(())
    }

    /// Resumes a paused agent's queue; held tasks run in the order they arrived.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn resume(&self, agent: &str) -> Result<(), UnknownAgent> {
        let entry = self.inner.entry(agent)?;
        entry.resume();
        Ok(())
    }

    /// Whether an agent's queue is paused.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn is_paused(&self, agent: &str) -> Result<bool, UnknownAgent> {
        Ok(self.inner.entry(agent)?.queue.is_paused())
    }

    /// Tasks queued or running for an agent now.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn queue_depth(&self, agent: &str) -> Result<usize, UnknownAgent> {
        Ok(self.inner.entry(agent)?.queue.depth())
    }

    /// The bound on an agent's queue.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn queue_capacity(&self, agent: &str) -> Result<usize, UnknownAgent> {
        Ok(self.inner.entry(agent)?.queue.capacity())
    }

    /// Submits a task to the swarm as a whole: its topology picks the agent.
    ///
    /// # Errors
    ///
    /// `NoRoute` if the swarm has no topology or no member can take the task; otherwise as
    /// [`submit`](Self::submit).
    pub async fn route(&self, task: T) -> Result<TaskHandle<O>, SubmitError<T>> {
        self.route_with(task, RouteRequest::default(), SubmitOptions::default())
            .await
    }

    /// [`route`](Self::route) for a task that needs a capability, or with options.
    ///
    /// # Errors
    ///
    /// As [`route`](Self::route).
    pub async fn route_with(
        &self,
        task: T,
        request: RouteRequest<'_>,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SubmitError::new(SubmitErrorKind::SwarmStopped, task));
        }
        match self.inner.route(&request) {
            Ok(entry) => entry.submit(self.inner.next_task_id(), task, options).await,
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Switches the swarm to another topology while it runs. Tasks already queued stay where
    /// they are; sends and routing decisions from now on follow the new topology.
    ///
    /// # Errors
    ///
    /// The new topology's [`TopologyError`] if it cannot work with the swarm's agents; the
    /// old topology stays.
    pub fn set_topology(&self, topology: impl Topology) -> Result<(), TopologyError> {
        self.inner.set_topology(Box::new(topology))
    }

    /// The swarm's shared memory, if it was built with one.
    pub fn memory(&self) -> Option<&Memory> {
        self.inner.memory.as_ref()
    }

    /// The name of the swarm's topology, if it has one.
    pub fn topology(&self) -> Option<String> {
        self.inner
            .topology
            .load()
            .as_ref()
            .map(|t| t.name().to_owned())
    }

    /// Subscribes to the swarm's events from now on.
    pub fn subscribe(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    /// The agents, in the order they started.
    pub fn agents(&self) -> Vec<AgentName> {
        self.inner.agent_names()
    }

    /// An agent's spec.
    ///
    /// # Errors
    ///
    /// [`UnknownAgent`] if no agent has this name.
    pub fn spec(&self, agent: &str) -> Result<AgentSpec, UnknownAgent> {
        Ok((*self.inner.entry(agent)?.spec).clone())
    }

    /// The swarm's settings.
    pub fn settings(&self) -> &SwarmSettings {
        &self.inner.settings
    }

    /// Every actor the swarm runs: its supervisor, then each agent replica in start order.
    /// For monitoring (and for checking that shutdown left nothing behind).
    pub fn actor_cells(&self) -> Vec<ActorCell> {
        let mut cells = vec![self.inner.root.get_cell()];
        for entry in self.inner.started_entries() {
            cells.extend(entry.replicas().iter().map(|r| r.actor().get_cell()));
        }
        cells
    }

    /// Stops the swarm gracefully: refuses new submissions from outside, resumes paused
    /// queues, waits until no agent has work queued or running (agents may still hand work to
    /// each other meanwhile), then stops the agents in reverse start order (running each
    /// `stopping` hook). Ends with a `SwarmStopped` event. Calling it again does nothing.
    ///
    /// Shutdown waits for every queued task: give long tasks deadlines, or cancel them.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shutdown.lock().await;
        if *done {
            return;
        }
        self.inner.close();
        let entries = self.inner.started_entries();
        // Quiesce first: agents may still hand work to each other (a pipeline flows towards
        // later agents), so wait until every queue is empty at once before stopping any.
        loop {
            for entry in entries.iter().rev() {
                entry.queue.set_paused(false);
                entry.resume();
                entry.queue.wait_idle().await;
            }
            if entries.iter().all(|e| e.queue.depth() == 0) {
                break;
            }
        }
        for entry in entries.iter().rev() {
            entry.queue.drain_and_close().await;
            for replica in entry.replicas() {
                // Dead first, so the supervisor does not restart what shutdown stops.
                replica.set_status(ReplicaStatus::Dead);
                // An error means the actor was already gone.
                let _ = replica.actor().stop_and_wait(None, None).await;
            }
            // Tasks parked for a replica that will not come back now end as dead letters.
            entry.flush_parked();
        }
        // Whatever else runs under the root (pooled agents) stops with it.
        self.inner.root.stop_children_and_wait(None, None).await;
        let _ = self.inner.root.stop_and_wait(None, None).await;
        self.inner.bus.publish(|| EventKind::SwarmStopped);
        *done = true;
    }
}

impl<T: Send + 'static, O: Send + 'static> SwarmInner<T, O> {
    pub(crate) fn new(
        bus: Arc<EventBus>,
        members: Arc<Members>,
        root: ActorRef<RootMsg>,
        settings: SwarmSettings,
        memory: Option<Memory>,
    ) -> Self {
        Self {
            memory,
            bus,
            members,
            root,
            epoch: Instant::now(),
            settings,
            table: ArcSwap::from_pointee(Table {
                agents: HashMap::new(),
            }),
            started: Mutex::new(Vec::new()),
            topology: ArcSwapOption::empty(),
            next_task: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            shutdown: tokio::sync::Mutex::new(false),
        }
    }

    /// Adds planned agents; they take tasks once marked started.
    pub(crate) fn plan(&self, entries: Vec<Arc<AgentEntry<T, O>>>) {
        self.table.rcu(|old| {
            let mut agents = old.agents.clone();
            for e in &entries {
                agents.insert(e.name.clone(), e.clone());
            }
            Table { agents }
        });
    }

    /// Marks a planned agent started with its replicas; it takes tasks from now on.
    pub(crate) fn mark_started(&self, agent: &str, replicas: Vec<Replica<T, O>>) {
        if let Ok(entry) = self.entry(agent) {
            if entry.set_replicas(replicas) {
                self.lock_started().push(entry);
            }
        }
    }

    pub(crate) fn entry(&self, agent: &str) -> Result<Arc<AgentEntry<T, O>>, UnknownAgent> {
        self.table
            .load()
            .agents
            .get(agent)
            .cloned()
            .ok_or_else(|| UnknownAgent(agent.to_owned()))
    }

    pub(crate) async fn submit(
        &self,
        agent: &str,
        task: T,
        options: SubmitOptions,
        from_agent: bool,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        match self.admit(agent, from_agent) {
            Ok(entry) => entry.submit(self.next_task_id(), task, options).await,
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    pub(crate) fn try_submit(
        &self,
        agent: &str,
        task: T,
        options: SubmitOptions,
        from_agent: bool,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let entry = match self.admit(agent, from_agent) {
            Ok(e) => e,
            Err(kind) => return Err(SubmitError::new(kind, task)),
        };
        match entry.try_reserve() {
            Ok(permit) => entry.dispatch(self.next_task_id(), task, options, permit),
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// External submissions stop at shutdown; agents may still reach peers that are up.
    fn admit(
        &self,
        agent: &str,
        from_agent: bool,
    ) -> Result<Arc<AgentEntry<T, O>>, SubmitErrorKind> {
        if !from_agent && self.closed.load(Ordering::Acquire) {
            return Err(SubmitErrorKind::SwarmStopped);
        }
        let entry = self
            .entry(agent)
            .map_err(|e| SubmitErrorKind::UnknownAgent(e.0))?;
        if !entry.is_started() {
            return Err(SubmitErrorKind::NotStarted(entry.name.clone()));
        }
        Ok(entry)
    }

    /// Validates and installs a topology.
    pub(crate) fn set_topology(&self, topology: Box<dyn Topology>) -> Result<(), TopologyError> {
        self.with_members(|members| topology.validate(members))?;
        self.topology.store(Some(Arc::new(topology)));
        Ok(())
    }

    /// Where the topology sends a swarm-level task.
    fn route(&self, request: &RouteRequest<'_>) -> Result<Arc<AgentEntry<T, O>>, SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Err(SubmitErrorKind::NoRoute("the swarm has no topology".into()));
        };
        // The chosen agent's entry comes from the same list the views were built from: no
        // second lookup by name.
        self.with_started(|started, members| {
            let name = topology.route(request, members)?;
            let at = members.iter().position(|m| *m.name == name)?;
            Some(started[at].clone())
        })
        .ok_or_else(|| {
            SubmitErrorKind::NoRoute(match request.capability {
                Some(c) => format!(
                    "topology `{}` found no agent with capability `{c}`",
                    topology.name()
                ),
                None => format!("topology `{}` found no agent", topology.name()),
            })
        })
    }

    /// Whether the topology lets `from` send to `to`.
    pub(crate) fn check_send(&self, from: &AgentName, to: &str) -> Result<(), SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Ok(());
        };
        if self.with_members(|members| topology.allows(from.as_str(), to, members)) {
            Ok(())
        } else {
            Err(SubmitErrorKind::NotAllowed {
                from: from.clone(),
                to: to.to_owned(),
                topology: topology.name().to_owned(),
            })
        }
    }

    /// The coordinator that supervises `agent`, if the topology nests supervision.
    pub(crate) fn supervisor_of(&self, agent: &AgentName) -> Option<AgentName> {
        let guard = self.topology.load();
        let topology = guard.as_ref()?;
        topology.supervisor(agent.as_str()).map(AgentName::from)
    }

    /// Whether `agent` is somewhere below `coordinator` in the supervision tree.
    pub(crate) fn is_under(&self, agent: &AgentName, coordinator: &AgentName) -> bool {
        let mut at = self.supervisor_of(agent);
        let mut steps = 0;
        while let Some(up) = at {
            if up == *coordinator {
                return true;
            }
            // A topology's tree is validated acyclic; the bound only guards a custom one.
            steps += 1;
            if steps > 1024 {
                return false;
            }
            at = self.supervisor_of(&up);
        }
        false
    }

    /// The agent the topology says `from` delegates a task needing `request` to.
    pub(crate) fn delegate(
        &self,
        from: &AgentName,
        request: &RouteRequest<'_>,
    ) -> Result<AgentName, SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Err(SubmitErrorKind::NoRoute("the swarm has no topology".into()));
        };
        self.with_members(|members| topology.delegate(from.as_str(), request, members))
            .ok_or_else(|| {
                SubmitErrorKind::NoRoute(format!(
                    "topology `{}` gives `{from}` no one to delegate to{}",
                    topology.name(),
                    request
                        .capability
                        .map(|c| format!(" with capability `{c}`"))
                        .unwrap_or_default()
                ))
            })
    }

    /// The agent the topology says `from` hands its work on to.
    pub(crate) fn successor(&self, from: &AgentName) -> Result<AgentName, SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Err(SubmitErrorKind::NoRoute("the swarm has no topology".into()));
        };
        self.with_members(|members| topology.successor(from.as_str(), members))
            .ok_or_else(|| {
                SubmitErrorKind::NoRoute(format!(
                    "topology `{}` gives `{from}` no successor",
                    topology.name()
                ))
            })
    }

    pub(crate) fn next_task_id(&self) -> TaskId {
        TaskId(self.next_task.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Every started replica as (agent, replica), in start order: the supervisor's children.
    pub(crate) fn children(&self) -> Vec<(Arc<AgentEntry<T, O>>, usize)> {
        self.started_entries()
            .into_iter()
            .flat_map(|e| (0..e.replicas().len()).map(move |r| (e.clone(), r)))
            .collect()
    }

    /// Refuses external submissions from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentEntry<T, O> {
    fn resume(&self) {
        self.queue.set_paused(false);
        for replica in self.replicas() {
            // A stopped replica has nothing held.
            let _ = replica.actor().send_message(AgentMsg::Resume);
        }
    }
}

impl<T, O> SwarmInner<T, O> {
    fn lock_started(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AgentEntry<T, O>>>> {
        self.started.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the topology's view of the started agents, built under the lock (no
    /// copy of the agent list on the routing path).
    pub(crate) fn with_members<R>(&self, f: impl FnOnce(&[MemberView<'_>]) -> R) -> R {
        self.with_started(|_, views| f(views))
    }

    /// [`with_members`](Self::with_members) that also sees the entries behind the views
    /// (same order).
    fn with_started<R>(
        &self,
        f: impl FnOnce(&[Arc<AgentEntry<T, O>>], &[MemberView<'_>]) -> R,
    ) -> R {
        let started = self.lock_started();
        // Small swarms route without touching the heap.
        let views: SmallVec<[MemberView<'_>; 16]> = started
            .iter()
            .map(|e| MemberView::live(&e.name, &e.spec.kind, &e.spec.capabilities, &**e))
            .collect();
        f(&started, &views)
    }

    /// The peers the topology lets `from` reach now (itself excluded), in start order.
    pub(crate) fn reachable_from(&self, from: &AgentName) -> Vec<AgentName> {
        let guard = self.topology.load();
        self.with_members(|members| {
            members
                .iter()
                .filter(|m| *m.name != *from)
                .filter(|m| {
                    guard
                        .as_ref()
                        .is_none_or(|t| t.allows(from.as_str(), m.name.as_str(), members))
                })
                .map(|m| m.name.clone())
                .collect()
        })
    }

    pub(crate) fn started_entries(&self) -> Vec<Arc<AgentEntry<T, O>>> {
        self.lock_started().clone()
    }

    pub(crate) fn agent_names(&self) -> Vec<AgentName> {
        self.lock_started().iter().map(|e| e.name.clone()).collect()
    }
}

impl<T, O> Drop for SwarmInner<T, O> {
    fn drop(&mut self) {
        // The last handle is gone without a shutdown: stop every actor rather than leak it.
        let table = self.table.load();
        for entry in table.agents.values() {
            entry.queue.close();
            for replica in entry.replicas() {
                replica.set_status(ReplicaStatus::Dead);
                replica.actor().stop(None);
            }
        }
        self.root.stop(None);
    }
}
