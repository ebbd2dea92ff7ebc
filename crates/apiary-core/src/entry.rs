//! One agent's place in the swarm: its replicas, its queue, and delivery of tasks to them,
//! including tasks waiting for a replica to come free or back from a restart.
//!
//! An agent with one replica feeds its actor's mailbox: the mailbox is the queue. An agent
//! with several replicas gives each replica one task at a time, and keeps the rest in one
//! line of its own (`parked`) that replicas take from, in order, as they come free. So a
//! task never waits behind a replica that is stuck on a slow task or has just crashed and
//! waits out its restart backoff while another replica is idle.
//!
//! [`AgentEntry`] is typed by the agent's task and output; [`ErasedEntry`] is the same entry
//! seen without its types, which is all the supervisor, the registry and shutdown need.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crate::line::{self, Claim, Handed, Submitted, Takers, WaitLine};
use crate::sync::AtomicUsize as LoadCount;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use apiary_supervisor::{CircuitBreaker, Transition};
use arc_swap::ArcSwap;
use ractor::{ActorCell, ActorStatus, MessagingErr};
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
    /// Tasks handed to it and not yet ended, 0 or 1 (a replica is claimed by swapping 0
    /// for 1). Only agents with several replicas count them: with one, its mailbox is the
    /// queue, and the count is not allocated.
    load: Option<Arc<LoadCount>>,
    status: AtomicU8,
    /// Whether its actor has completed a task since it (re)started: its next crash is then
    /// not part of a crash loop, and its restart backoff starts over.
    served: AtomicBool,
    /// A send to its actor failed (the actor died, and its supervisor has not decided yet):
    /// it is not offered tasks until a new actor replaces it.
    gone: AtomicBool,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl Replica {
    /// `shared`: the agent has several replicas, which claim tasks by their load.
    pub(crate) fn new(actor: ActorCell, breaker: Option<CircuitBreaker>, shared: bool) -> Self {
        Self {
            actor: ArcSwap::from_pointee(actor),
            load: shared.then(Arc::default),
            status: AtomicU8::new(ReplicaStatus::Running as u8),
            served: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            breaker,
        }
    }

    /// Gives back a claim on it (see `load`).
    fn release(&self) {
        if let Some(load) = &self.load {
            line::release(load);
        }
    }

    /// Whether its actor completed a task since it last started; clears the mark.
    pub(crate) fn take_served(&self) -> bool {
        self.served.swap(false, Ordering::Relaxed)
    }

    fn mark_served(&self) {
        // Read first: once set, the line is not written again on every task.
        if !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn actor(&self) -> Arc<ActorCell> {
        self.actor.load_full()
    }

    /// Its current actor's id (through the guard: no clone of the handle).
    pub(crate) fn actor_id(&self) -> ractor::ActorId {
        self.actor.load().get_id()
    }

    pub(crate) fn replace(&self, actor: ActorCell) {
        self.actor.store(Arc::new(actor));
        self.served.store(false, Ordering::Relaxed);
        self.gone.store(false, Ordering::Release);
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
    fn kind(self, agent: &AgentName, gave_up: Option<&String>) -> SubmitErrorKind {
        match self {
            Refusal::Dead => stopped_kind(agent, gave_up),
            Refusal::BreakerOpen(retry_after) => SubmitErrorKind::BreakerOpen {
                agent: agent.clone(),
                retry_after,
            },
        }
    }
}

/// Why an agent takes no more tasks, as a submission hears it.
fn stopped_kind(agent: &AgentName, gave_up: Option<&String>) -> SubmitErrorKind {
    match gave_up {
        Some(reason) => SubmitErrorKind::GaveUp {
            agent: agent.clone(),
            reason: reason.clone(),
        },
        None => SubmitErrorKind::AgentStopped(agent.clone()),
    }
}

/// A future that starts one actor and gives back its cell.
pub(crate) type SpawnFuture =
    Pin<Box<dyn Future<Output = Result<ActorCell, BoxError>> + Send + 'static>>;

/// Starts one replica of an agent, at swarm start and at every restart: the agent's factory
/// with its type erased, so one swarm holds agents of many types.
pub(crate) trait Spawner<T, O>: Send + Sync {
    /// Owns what it needs, so the one boxed future is the whole start.
    fn spawn(self: Arc<Self>, home: Arc<AgentEntry<T, O>>, replica: usize) -> SpawnFuture;
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
    fn respawn(self: Arc<Self>, replica: usize) -> SpawnFuture;
    /// Delivers every parked task again; one that finds no taker ends with the reason.
    fn flush_parked(self: Arc<Self>);
    /// Resumes a paused queue: held tasks run in arrival order.
    fn resume(&self);
    /// Ends every task still waiting for this agent as cancelled, and every one that
    /// arrives from now on (a bounded shutdown's grace period is over).
    fn abort(&self);
    /// Records why a supervisor gave up on this agent, for every refusal and failure from
    /// now on (the first reason stays).
    fn give_up(&self, reason: String);
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
    // Tasks waiting for a replica to come free or back, in arrival order; each still holds
    // its room in the queue.
    parked: WaitLine<(T, Ticket<T, O>)>,
    /// Where the next search for a free replica starts, so replicas share the work.
    cursor: AtomicUsize,
    /// Why a supervisor gave up on this agent.
    pub(crate) gave_up: OnceLock<String>,
    /// Raised when a bounded shutdown gives up on this agent's waiting tasks.
    aborted: Signal,
}

/// What an entry is made of.
pub(crate) struct EntryParts<T, O> {
    /// The spec's name, made once by whoever plans the agent.
    pub(crate) name: AgentName,
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
        let name = parts.name;
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
            parked: WaitLine::new(),
            cursor: AtomicUsize::new(0),
            gave_up: OnceLock::new(),
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
                .map_err(|_closed| stopped_kind(&self.name, self.gave_up.get()))
        } else {
            self.try_reserve()
        }
    }

    /// Room for one task in this agent's queue if there is some now (`Busy` if not).
    pub(crate) fn try_reserve(&self) -> Result<Slot, SubmitErrorKind> {
        self.queue().try_reserve().map_err(|e| match e {
            NoRoom::Full => SubmitErrorKind::Busy(self.name.clone()),
            NoRoom::Closed => stopped_kind(&self.name, self.gave_up.get()),
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
                Err(SubmitError::new(
                    refusal.kind(&self.name, self.gave_up.get()),
                    task,
                ))
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
                Err((task, refusal.kind(&self.name, self.gave_up.get())))
            }
        }
    }

    /// Hands a task to a replica: with one replica, to its mailbox; with several, to a free
    /// one or to the agent's waiting line. While every replica restarts, tasks wait for one
    /// (parked).
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
        if replicas.len() > 1 {
            return self.deliver_shared(task, ticket);
        }
        let mut task = task;
        let mut open_for = None;
        if let Some(replica) = replicas.first() {
            // A dead actor shows when the send fails.
            if replica.status() == ReplicaStatus::Running {
                match self.acquire(0, replica) {
                    Ok(permit) => {
                        ticket.assign(0, permit);
                        match self.send(replica, task, ticket) {
                            Ok(()) => return Ok(()),
                            Err(back) => (task, ticket) = back,
                        }
                    }
                    Err(d) => open_for = Some(d),
                }
            }
        }
        if let Some(d) = open_for {
            return Err((task, ticket, Refusal::BreakerOpen(d)));
        }
        // Wait for the replica if it is coming back: being restarted, or (for agents that
        // can be restarted) its actor just died and its supervisor will decide.
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

    /// A breaker permit from `replica`, or how long until its breaker lets a trial through.
    fn acquire(
        &self,
        index: usize,
        replica: &Replica,
    ) -> Result<Option<apiary_supervisor::Permit>, Duration> {
        let Some(b) = &replica.breaker else {
            return Ok(None);
        };
        match b.try_acquire(self.now_ms()) {
            Ok(p) => {
                if p.is_trial() {
                    self.breaker_event(index, Transition::HalfOpened);
                }
                Ok(Some(p))
            }
            Err(open) => Err(open.retry_after()),
        }
    }

    /// Sends an assigned task to `replica`'s actor; gives it back (unassigned) if that actor
    /// has just died.
    fn send(
        &self,
        replica: &Replica,
        task: T,
        ticket: Ticket<T, O>,
    ) -> Result<(), (T, Ticket<T, O>)> {
        match replica
            .actor
            .load()
            .send_message(AgentMsg::Task(Envelope::new(task, ticket)))
        {
            Ok(()) => Ok(()),
            Err(MessagingErr::SendErr(AgentMsg::Task(env))) => {
                let (task, mut ticket) = env.into_parts();
                ticket.unassign();
                Err((task, ticket))
            }
            // The envelope was dropped, and its drop already redelivered the task.
            Err(_) => Ok(()),
        }
    }

    /// Several replicas: a free one takes the task, else it waits in line (nothing skips a
    /// task already waiting; see [`WaitLine::submit`]).
    fn deliver_shared(
        self: &Arc<Self>,
        task: T,
        ticket: Ticket<T, O>,
    ) -> Result<(), (T, Ticket<T, O>, Refusal)> {
        match self
            .parked
            .submit((task, ticket), &**self, |(task, ticket)| {
                self.prepare_park(task, ticket)
            }) {
            Submitted::Accepted { refused } => {
                if let Some(refusal) = refused {
                    self.refuse_waiting(&refusal);
                }
                Ok(())
            }
            Submitted::Refused((task, ticket), refusal) => Err((task, ticket, refusal)),
        }
    }

    /// Hands waiting tasks, oldest first, to replicas that are free (see [`WaitLine::pump`]).
    fn pump(self: &Arc<Self>) {
        if self.replica_slice().len() < 2 {
            return;
        }
        if let Some(refusal) = self.parked.pump(&**self) {
            self.refuse_waiting(&refusal);
        }
    }

    /// No replica will take any waiting task: they all end with the reason.
    fn refuse_waiting(&self, refusal: &Refusal) {
        for (_task, ticket) in self.parked.drain() {
            self.end_refused(ticket, refusal);
        }
    }

    /// Keeps a task until a replica is free or back (`pump`, `flush_parked`).
    fn park_task(&self, task: T, ticket: Ticket<T, O>) {
        if let Some(item) = self.prepare_park(task, ticket) {
            self.parked.push_back(item);
        }
    }

    /// Readies a task for the waiting line, or ends it if a bounded shutdown gave up on
    /// waiting tasks.
    fn prepare_park(&self, task: T, mut ticket: Ticket<T, O>) -> Option<(T, Ticket<T, O>)> {
        if self.aborted.is_raised() {
            ticket
                .shared
                .finish(Outcome::Cancelled, Err(TaskError::Cancelled));
            return None;
        }
        // It holds no replica while it waits.
        ticket.unassign();
        ticket.shared.requeue();
        Some((task, ticket))
    }

    /// Delivers every parked task again, in the order they were parked. `recheck`: as in
    /// `deliver` (false: park again without looking back, so no recursion while a
    /// replica's state is changing).
    fn flush(self: &Arc<Self>, recheck: bool) {
        for (task, ticket) in self.parked.drain() {
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
            self.end_refused(ticket, &refusal);
        }
    }

    /// Ends an accepted task that no replica can take, with the reason, as a dead letter.
    fn end_refused(&self, ticket: Ticket<T, O>, refusal: &Refusal) {
        let (outcome, err) = match (refusal, self.gave_up.get()) {
            (Refusal::Dead, Some(reason)) => (
                Outcome::AgentStopped,
                TaskError::GaveUp {
                    agent: self.name.clone(),
                    reason: reason.clone(),
                },
            ),
            (Refusal::Dead, None) => (
                Outcome::AgentStopped,
                TaskError::AgentStopped {
                    agent: self.name.clone(),
                },
            ),
            (Refusal::BreakerOpen(retry_after), _) => (
                Outcome::Failed,
                TaskError::BreakerOpen {
                    agent: self.name.clone(),
                    retry_after: *retry_after,
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

    fn breaker_event(&self, replica: usize, transition: Transition) {
        telemetry::breaker(&self.name, replica, transition.into());
        self.env.bus.publish(|| EventKind::BreakerChanged {
            agent: self.name.clone(),
            replica,
            transition: transition.into(),
        });
    }
}

/// The replicas of an agent with several, as its waiting line hands tasks to them.
impl<T: Send + 'static, O: Send + 'static> Takers<(T, Ticket<T, O>)> for AgentEntry<T, O> {
    /// The replica's index and its breaker permit.
    type Claim = (usize, Option<apiary_supervisor::Permit>);
    type Refusal = Refusal;

    /// Looks at each replica, starting at a rotating one so replicas share the work, and
    /// claims the first that is free (its load swapped from 0 to 1) and whose breaker lets
    /// a task through.
    fn claim(&self) -> Claim<Self::Claim, Refusal> {
        let replicas = self.replica_slice();
        let n = replicas.len();
        if n == 0 {
            return Claim::Never(Refusal::Dead);
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let restartable = self.spawner.is_some();
        let mut later = false;
        let mut open_for: Option<Duration> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let replica = &replicas[i];
            match replica.status() {
                ReplicaStatus::Running if replica.gone.load(Ordering::Acquire) => {
                    later |= restartable;
                    continue;
                }
                ReplicaStatus::Running => {}
                ReplicaStatus::Restarting => {
                    later = true;
                    continue;
                }
                ReplicaStatus::Dead => continue,
            }
            // Every replica of an agent with several has a count (`Replica::new`).
            if replica.load.as_ref().is_some_and(|l| !line::try_claim(l)) {
                later = true;
                continue;
            }
            match self.acquire(i, replica) {
                Ok(permit) => return Claim::Got((i, permit)),
                Err(d) => {
                    replica.release();
                    open_for = Some(open_for.map_or(d, |o| o.min(d)));
                }
            }
        }
        if later {
            Claim::Later
        } else if let Some(d) = open_for {
            Claim::Never(Refusal::BreakerOpen(d))
        } else {
            Claim::Never(Refusal::Dead)
        }
    }

    fn hand(
        &self,
        (i, permit): Self::Claim,
        (task, mut ticket): (T, Ticket<T, O>),
    ) -> Handed<Self::Claim, (T, Ticket<T, O>)> {
        if ticket.shared.state().hop_ended() {
            // Ended while it waited (cancelled, timed out): its ticket gives the room back.
            return Handed::Unused((i, permit));
        }
        let replica = &self.replica_slice()[i];
        ticket.assign_claimed(i, replica.load.as_ref(), permit);
        match self.send(replica, task, ticket) {
            Ok(()) => Handed::Taken,
            Err(back) => {
                // That actor just died (its claim went back with the task); its supervisor
                // decides whether it comes back.
                replica.gone.store(true, Ordering::Release);
                Handed::Back(back)
            }
        }
    }

    /// An unused breaker permit is dropped: it counts as neither outcome (a trial permit
    /// lets the next trial through after the breaker's timeout).
    fn unclaim(&self, (i, _permit): Self::Claim) {
        self.replica_slice()[i].release();
    }
}

impl<T: Send + 'static, O: Send + 'static> Home<T, O> for AgentEntry<T, O> {
    fn redeliver(self: Arc<Self>, task: T, ticket: Ticket<T, O>) {
        self.deliver_again(task, ticket, true);
    }

    fn report(&self, ticket: &Ticket<T, O>, outcome: Outcome) {
        if outcome == Outcome::Completed
            && let Some(replica) = ticket.replica().and_then(|i| self.replica_slice().get(i))
        {
            replica.mark_served();
        }
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

    fn park(self: Arc<Self>, task: T, ticket: Ticket<T, O>) {
        self.park_task(task, ticket);
        self.pump();
    }

    fn has_waiting(&self) -> bool {
        self.parked.has_waiting()
    }

    fn pump(self: Arc<Self>) {
        AgentEntry::pump(&self);
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

    fn respawn(self: Arc<Self>, replica: usize) -> SpawnFuture {
        match self.spawner.clone() {
            Some(spawner) => spawner.spawn(self, replica),
            None => {
                let reason = BoxError::from(format!("agent `{}` cannot be restarted", self.name));
                Box::pin(std::future::ready(Err(reason)))
            }
        }
    }

    fn flush_parked(self: Arc<Self>) {
        self.flush(true);
    }

    fn give_up(&self, reason: String) {
        let _ = self.gave_up.set(reason);
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
        for (_task, ticket) in self.parked.drain() {
            ticket
                .shared
                .finish(Outcome::Cancelled, Err(TaskError::Cancelled));
        }
        // Held (paused) tasks and those in mailboxes end as their actor takes them.
        self.resume();
    }
}
