//! One agent's place in the swarm: its replicas, its queue, and delivery of tasks to them,
//! including tasks waiting for a replica to come back from a restart.
//!
//! [`AgentEntry`] is typed by the agent's task and output; [`ErasedEntry`] is the same entry
//! seen without its types, which is all the supervisor, the registry and shutdown need.

use std::any::TypeId;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use apiary_supervisor::{CircuitBreaker, Transition};
use arc_swap::ArcSwap;
use ractor::{ActorCell, ActorStatus, MessagingErr};
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::mailbox::{AgentMsg, Envelope, Home, Redelivery, Ticket};
use crate::queue::{AgentQueue, NoRoom, Slot};
use crate::signal::Signal;
use crate::task::{TaskEnv, TaskShared};
use crate::telemetry;
use crate::topology::LiveMember;
use crate::{
    AgentName, AgentSpec, BoxError, EventKind, Outcome, SubmitError, SubmitErrorKind,
    SubmitOptions, TaskError, TaskHandle, TaskId,
};

/// What a replica is doing, as its supervisor last decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ReplicaStatus {
    /// Its actor takes tasks.
    Running = 0,
    /// Its actor stopped and a new one is on the way: tasks for it wait (parked).
    Restarting = 1,
    /// Gone for good (temporary, or its supervisor gave up).
    Dead = 2,
}

/// One actor behind an agent's name; the actor is replaced when the replica restarts.
pub(crate) struct Replica {
    actor: ArcSwap<ActorCell>,
    load: Arc<AtomicUsize>,
    status: AtomicU8,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl Replica {
    pub(crate) fn new(actor: ActorCell, breaker: Option<CircuitBreaker>) -> Self {
        Self {
            actor: ArcSwap::from_pointee(actor),
            load: Arc::default(),
            status: AtomicU8::new(ReplicaStatus::Running as u8),
            breaker,
        }
    }

    pub(crate) fn actor(&self) -> Arc<ActorCell> {
        self.actor.load_full()
    }

    pub(crate) fn replace(&self, actor: ActorCell) {
        self.actor.store(Arc::new(actor));
        self.set_status(ReplicaStatus::Running);
    }

    pub(crate) fn status(&self) -> ReplicaStatus {
        match self.status.load(Ordering::Acquire) {
            0 => ReplicaStatus::Running,
            1 => ReplicaStatus::Restarting,
            _ => ReplicaStatus::Dead,
        }
    }

    pub(crate) fn set_status(&self, status: ReplicaStatus) {
        self.status.store(status as u8, Ordering::Release);
    }

    pub(crate) fn takes_tasks(&self) -> bool {
        // Through the guard: no clone of the actor handle on this path.
        self.status() == ReplicaStatus::Running && is_live(&self.actor.load())
    }
}

pub(crate) fn is_live(cell: &ActorCell) -> bool {
    matches!(
        cell.get_status(),
        ActorStatus::Unstarted
            | ActorStatus::Starting
            | ActorStatus::Running
            | ActorStatus::Upgrading
    )
}

/// Why no replica took a task.
pub(crate) enum Refusal {
    /// Every replica is gone for good.
    Dead,
    /// Every live replica's breaker is open; the soonest reopens after this long.
    BreakerOpen(Duration),
}

impl Refusal {
    fn kind(self, agent: &AgentName) -> SubmitErrorKind {
        match self {
            Refusal::Dead => SubmitErrorKind::AgentStopped(agent.clone()),
            Refusal::BreakerOpen(retry_after) => SubmitErrorKind::BreakerOpen {
                agent: agent.clone(),
                retry_after,
            },
        }
    }
}

/// A future that starts one actor and gives back its cell.
pub(crate) type SpawnFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ActorCell, BoxError>> + Send + 'a>>;

/// Starts one replica of an agent, at swarm start and at every restart: the agent's factory
/// with its type erased, so one swarm holds agents of many types.
pub(crate) trait Spawner<T, O>: Send + Sync {
    fn spawn<'a>(&'a self, home: &'a Arc<AgentEntry<T, O>>, replica: usize) -> SpawnFuture<'a>;
}

/// The task and output types an agent runs, for typed lookups and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types {
    pub(crate) task: TypeId,
    pub(crate) output: TypeId,
    pub(crate) task_name: &'static str,
    pub(crate) output_name: &'static str,
}

impl Types {
    pub(crate) fn of<T: 'static, O: 'static>() -> Self {
        Self {
            task: TypeId::of::<T>(),
            output: TypeId::of::<O>(),
            task_name: std::any::type_name::<T>(),
            output_name: std::any::type_name::<O>(),
        }
    }
}

/// An agent entry without its task and output types: what the supervisor, the registry and
/// shutdown work with.
pub(crate) trait ErasedEntry: LiveMember + Send + Sync + 'static {
    fn name(&self) -> &AgentName;
    fn spec(&self) -> &Arc<AgentSpec>;
    fn queue(&self) -> &AgentQueue;
    /// The entry as a topology's view reads it (load and liveness).
    fn as_live(&self) -> &dyn LiveMember;
    /// The replicas; empty until the agent has started.
    fn replicas(&self) -> &[Replica];
    /// Sets the replicas once all have started; false if they were already set.
    fn set_replicas(&self, replicas: Vec<Replica>) -> bool;
    /// Starts a new actor for `replica` (the old one has stopped).
    fn respawn(self: Arc<Self>, replica: usize) -> SpawnFuture<'static>;
    /// Delivers every parked task again; one that finds no taker ends with the reason.
    fn flush_parked(self: Arc<Self>);
    /// Resumes a paused queue: held tasks run in arrival order.
    fn resume(&self);
    /// Ends every task still waiting for this agent as cancelled, and every one that
    /// arrives from now on (a bounded shutdown's grace period is over).
    fn abort(&self);
}

/// How a task is copied for a retry after its agent crashed on it.
pub(crate) type Cloner<T> = fn(&T) -> T;

/// One agent: its spec, queue, replicas and the tasks waiting for a replica.
pub(crate) struct AgentEntry<T, O> {
    pub(crate) name: AgentName,
    pub(crate) spec: Arc<AgentSpec>,
    timeout: Option<Duration>,
    spawner: Option<Arc<dyn Spawner<T, O>>>,
    cloner: Option<Cloner<T>>,
    pub(crate) env: Arc<TaskEnv>,
    epoch: Instant,
    // Set once, when every replica has started.
    replicas: OnceLock<Vec<Replica>>,
    // Tasks waiting for a replica to come back; each still holds its queue permit.
    parked: Mutex<VecDeque<(T, Ticket<T, O>)>>,
    /// Raised when a bounded shutdown gives up on this agent's waiting tasks.
    aborted: Signal,
}

/// What an entry is made of.
pub(crate) struct EntryParts<T, O> {
    pub(crate) spec: Arc<AgentSpec>,
    pub(crate) capacity: usize,
    pub(crate) spawner: Option<Arc<dyn Spawner<T, O>>>,
    pub(crate) cloner: Option<Cloner<T>>,
    pub(crate) bus: Arc<crate::events::EventBus>,
    pub(crate) epoch: Instant,
}

impl<T: Send + 'static, O: Send + 'static> AgentEntry<T, O> {
    pub(crate) fn new(parts: EntryParts<T, O>) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Self>| {
            let home: Weak<dyn Home<T, O>> = me.clone();
            Self::from_parts(parts, Redelivery(home))
        })
    }

    fn from_parts(parts: EntryParts<T, O>, home: Redelivery<T, O>) -> Self {
        let name = AgentName::from(parts.spec.name.as_str());
        Self {
            env: Arc::new(TaskEnv {
                metrics: telemetry::AgentMetrics::new(&name),
                agent: name.clone(),
                bus: parts.bus,
                queue: AgentQueue::new(parts.capacity),
                home: Box::new(home),
            }),
            name,
            timeout: parts.spec.task_timeout,
            spec: parts.spec,
            spawner: parts.spawner,
            cloner: parts.cloner,
            epoch: parts.epoch,
            replicas: OnceLock::new(),
            parked: Mutex::new(VecDeque::new()),
            aborted: Signal::default(),
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        self.replicas.get().is_some()
    }

    fn replica_slice(&self) -> &[Replica] {
        self.replicas.get().map_or(&[], Vec::as_slice)
    }

    /// Milliseconds since the swarm started, the breakers' clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock_parked(&self) -> std::sync::MutexGuard<'_, VecDeque<(T, Ticket<T, O>)>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentEntry<T, O> {
    /// The agent's queue.
    pub(crate) fn queue(&self) -> &AgentQueue {
        &self.env.queue
    }

    /// Room for one task in this agent's queue, waiting for it or not as `wait` says.
    pub(crate) async fn reserve(&self, wait: bool) -> Result<Slot, SubmitErrorKind> {
        if wait {
            self.queue()
                .reserve()
                .await
                .map_err(|_closed| SubmitErrorKind::AgentStopped(self.name.clone()))
        } else {
            self.try_reserve()
        }
    }

    /// Room for one task in this agent's queue if there is some now (`Busy` if not).
    pub(crate) fn try_reserve(&self) -> Result<Slot, SubmitErrorKind> {
        self.queue().try_reserve().map_err(|e| match e {
            NoRoom::Full => SubmitErrorKind::Busy(self.name.clone()),
            NoRoom::Closed => SubmitErrorKind::AgentStopped(self.name.clone()),
        })
    }

    /// A task's deadline: the submission's, else its timeout or the agent's from now.
    pub(crate) fn deadline(&self, options: &SubmitOptions) -> Option<Instant> {
        options
            .deadline
            .or_else(|| options.timeout.or(self.timeout).map(|t| Instant::now() + t))
    }

    /// Creates a task for this agent in the room `permit` holds, and hands it to a replica.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        id: TaskId,
        task: T,
        options: SubmitOptions,
        slot: Slot,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let deadline = self.deadline(&options);
        let shared = TaskShared::new(id, self.env.clone(), deadline, options.attachment);
        let ticket = Ticket::new(shared.clone(), slot);
        match self.deliver(task, ticket, true) {
            Ok(()) => Ok(TaskHandle::new(shared)),
            Err((task, ticket, refusal)) => {
                // Never accepted: the task goes back to the caller instead of failing.
                ticket.shared.withdraw();
                Err(SubmitError::new(refusal.kind(&self.name), task))
            }
        }
    }

    /// Takes over `from`, a running task of another agent, as a new hop: it runs `task` here
    /// and answers `from`'s submitter. `permit` is room in this agent's queue.
    pub(crate) fn hand_over(
        self: &Arc<Self>,
        id: TaskId,
        task: T,
        from: &Arc<TaskShared<O>>,
        slot: Slot,
    ) -> Result<(), (T, SubmitErrorKind)> {
        let deadline = from
            .deadline
            .or_else(|| self.timeout.map(|t| Instant::now() + t));
        let hop = TaskShared::hop(id, self.env.clone(), deadline, from.first_hop());
        if !from.pass_to(&hop) {
            hop.withdraw();
            self.queue().release(slot);
            return Err((task, SubmitErrorKind::NoTask));
        }
        match self.deliver(task, Ticket::new(hop.clone(), slot), true) {
            Ok(()) => {
                if !from.handed_to(&hop) {
                    // `from` ended meanwhile (cancelled, timed out) and answered: the new hop
                    // has nobody to work for.
                    hop.finish(Outcome::Cancelled, Err(TaskError::Cancelled));
                }
                Ok(())
            }
            Err((task, ticket, refusal)) => {
                let withdrawn = ticket.shared.withdraw();
                from.take_back(&hop);
                drop(ticket);
                if !withdrawn {
                    // A cancel reached the new hop first and answered: `from` ends the same
                    // way, so its own record agrees with the answer.
                    from.finish(Outcome::Cancelled, Err(TaskError::Cancelled));
                }
                Err((task, refusal.kind(&self.name)))
            }
        }
    }

    /// Hands a task to the live replica with the least work whose breaker lets it through.
    /// While a replica restarts, tasks that find no other taker wait for it (parked).
    ///
    /// `recheck`: after parking, look once more for a taker, in case a replica came back
    /// (and its supervisor flushed the parked tasks) between the search and the parking.
    fn deliver(
        self: &Arc<Self>,
        task: T,
        mut ticket: Ticket<T, O>,
        recheck: bool,
    ) -> Result<(), (T, Ticket<T, O>, Refusal)> {
        let replicas = self.replica_slice();
        let counted = replicas.len() > 1;
        // Least loaded first; small swarms never touch the heap here. A replica is tried if
        // its supervisor has it running; a dead actor shows when the send fails.
        let mut order: SmallVec<[(usize, usize); 8]> = replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status() == ReplicaStatus::Running)
            .map(|(i, r)| {
                (
                    if counted {
                        r.load.load(Ordering::Relaxed)
                    } else {
                        0
                    },
                    i,
                )
            })
            .collect();
        if counted {
            order.sort_unstable();
        }
        let mut now = None;
        let mut open_for: Option<Duration> = None;
        let mut task = task;
        for (_, i) in order {
            let replica = &replicas[i];
            let permit = match &replica.breaker {
                None => None,
                Some(b) => match b.try_acquire(*now.get_or_insert_with(|| self.now_ms())) {
                    Ok(p) => {
                        if p.is_trial() {
                            self.breaker_event(i, Transition::HalfOpened);
                        }
                        Some(p)
                    }
                    Err(open) => {
                        open_for = Some(
                            open_for.map_or(open.retry_after(), |d| d.min(open.retry_after())),
                        );
                        continue;
                    }
                },
            };
            ticket.assign(i, counted.then_some(&replica.load), permit);
            let env = Envelope::new(task, ticket);
            match replica.actor.load().send_message(AgentMsg::Task(env)) {
                Ok(()) => return Ok(()),
                Err(MessagingErr::SendErr(AgentMsg::Task(env))) => {
                    // That actor just died; try the next replica.
                    (task, ticket) = env.into_parts();
                    ticket.unassign();
                }
                // The envelope was dropped, and its drop already redelivered the task.
                Err(_) => return Ok(()),
            }
        }
        if let Some(d) = open_for {
            return Err((task, ticket, Refusal::BreakerOpen(d)));
        }
        // Wait for a replica that is coming back: one being restarted, or (for agents that
        // can be restarted) one whose actor just died and whose supervisor will decide.
        let restartable = self.spawner.is_some();
        if replicas.iter().any(|r| match r.status() {
            ReplicaStatus::Restarting => true,
            ReplicaStatus::Running => restartable,
            ReplicaStatus::Dead => false,
        }) {
            self.park_task(task, ticket);
            if recheck && replicas.iter().any(Replica::takes_tasks) {
                self.flush(false);
            }
            return Ok(());
        }
        Err((task, ticket, Refusal::Dead))
    }

    /// Keeps a task until a replica is back (`flush_parked`).
    fn park_task(&self, task: T, ticket: Ticket<T, O>) {
        if self.aborted.is_raised() {
            ticket
                .shared
                .finish(Outcome::Cancelled, Err(TaskError::Cancelled));
            return;
        }
        ticket.shared.requeue();
        self.lock_parked().push_back((task, ticket));
    }

    /// Delivers every parked task again, in the order they were parked. `recheck`: as in
    /// `deliver` (false: park again without looking back, so no recursion while a
    /// replica's state is changing).
    fn flush(self: &Arc<Self>, recheck: bool) {
        let parked: Vec<_> = self.lock_parked().drain(..).collect();
        for (task, ticket) in parked {
            self.deliver_again(task, ticket, recheck);
        }
    }

    /// Delivers a task that was already accepted once (its actor died before running it, or
    /// it is being retried); if nobody can take it, it ends with the reason.
    fn deliver_again(self: &Arc<Self>, task: T, ticket: Ticket<T, O>, recheck: bool) {
        if ticket.shared.state().hop_ended() {
            return;
        }
        if let Err((_task, ticket, refusal)) = self.deliver(task, ticket, recheck) {
            let (outcome, err) = match refusal {
                Refusal::Dead => (
                    Outcome::AgentStopped,
                    TaskError::AgentStopped {
                        agent: self.name.clone(),
                    },
                ),
                Refusal::BreakerOpen(retry_after) => (
                    Outcome::Failed,
                    TaskError::BreakerOpen {
                        agent: self.name.clone(),
                        retry_after,
                    },
                ),
            };
            telemetry::dead_letter(&self.name);
            self.env.bus.publish(|| EventKind::DeadLetter {
                task: ticket.shared.id,
                agent: self.name.clone(),
                cause: err.to_string(),
            });
            ticket.shared.finish(outcome, Err(err));
        }
    }

    fn breaker_event(&self, replica: usize, transition: Transition) {
        telemetry::breaker(&self.name, replica, transition.into());
        self.env.bus.publish(|| EventKind::BreakerChanged {
            agent: self.name.clone(),
            replica,
            transition: transition.into(),
        });
    }
}

impl<T: Send + 'static, O: Send + 'static> Home<T, O> for AgentEntry<T, O> {
    fn redeliver(self: Arc<Self>, task: T, ticket: Ticket<T, O>) {
        self.deliver_again(task, ticket, true);
    }

    fn report(&self, ticket: &Ticket<T, O>, outcome: Outcome) {
        let Some((index, permit)) = ticket.breaker_permit() else {
            return;
        };
        let Some(breaker) = self
            .replica_slice()
            .get(index)
            .and_then(|r| r.breaker.as_ref())
        else {
            return;
        };
        let transition = match outcome {
            // A hand-off is the agent's part done well.
            Outcome::Completed | Outcome::Delegated => breaker.on_success(permit),
            Outcome::Failed | Outcome::Panicked | Outcome::TimedOut => {
                breaker.on_failure(permit, self.now_ms())
            }
            Outcome::Cancelled | Outcome::AgentStopped => None,
        };
        if let Some(t) = transition {
            self.breaker_event(index, t);
        }
    }

    fn park(&self, task: T, ticket: Ticket<T, O>) {
        self.park_task(task, ticket);
    }

    fn cloner(&self) -> Option<fn(&T) -> T> {
        self.cloner
    }

    fn queue(&self) -> &AgentQueue {
        &self.env.queue
    }

    fn aborted(&self) -> &Signal {
        &self.aborted
    }
}

impl<T: Send + 'static, O: Send + 'static> LiveMember for AgentEntry<T, O> {
    fn load(&self) -> usize {
        self.queue().depth()
    }

    fn alive(&self) -> bool {
        self.replica_slice().iter().any(Replica::takes_tasks)
    }
}

impl<T: Send + 'static, O: Send + 'static> ErasedEntry for AgentEntry<T, O> {
    fn name(&self) -> &AgentName {
        &self.name
    }

    fn spec(&self) -> &Arc<AgentSpec> {
        &self.spec
    }

    fn queue(&self) -> &AgentQueue {
        &self.env.queue
    }

    fn as_live(&self) -> &dyn LiveMember {
        self
    }

    fn replicas(&self) -> &[Replica] {
        self.replica_slice()
    }

    fn set_replicas(&self, replicas: Vec<Replica>) -> bool {
        self.replicas.set(replicas).is_ok()
    }

    fn respawn(self: Arc<Self>, replica: usize) -> SpawnFuture<'static> {
        Box::pin(async move {
            let spawner = self.spawner.clone().ok_or_else(|| {
                BoxError::from(format!("agent `{}` cannot be restarted", self.name))
            })?;
            spawner.spawn(&self, replica).await
        })
    }

    fn flush_parked(self: Arc<Self>) {
        self.flush(true);
    }

    fn resume(&self) {
        self.queue().set_paused(false);
        for replica in self.replica_slice() {
            // A stopped replica has nothing held.
            let _ = replica
                .actor()
                .send_message::<AgentMsg<T, O>>(AgentMsg::Resume);
        }
    }

    fn abort(&self) {
        self.aborted.raise();
        let parked: Vec<_> = self.lock_parked().drain(..).collect();
        for (_task, ticket) in parked {
            ticket
                .shared
                .finish(Outcome::Cancelled, Err(TaskError::Cancelled));
        }
        // Held (paused) tasks and those in mailboxes end as their actor takes them.
        self.resume();
    }
}
