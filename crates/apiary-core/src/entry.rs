//! One agent's place in the swarm: its replicas, its queue, and delivery of tasks to them,
//! including tasks waiting for a replica to come back from a restart.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apiary_supervisor::{CircuitBreaker, Transition};
use arc_swap::ArcSwap;
use ractor::{ActorCell, ActorRef, ActorStatus, MessagingErr};
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::actor::AgentMsg;
use crate::builder::SpawnAgent;
use crate::envelope::{Envelope, Ticket};
use crate::events::EventBus;
use crate::queue::AgentQueue;
use crate::task::TaskShared;
use crate::telemetry::{self, AgentMetrics};
use crate::{
    AgentName, AgentSpec, EventKind, Outcome, SubmitError, SubmitErrorKind, SubmitOptions,
    TaskError, TaskHandle, TaskId,
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
pub(crate) struct Replica<T, O> {
    actor: ArcSwap<ActorRef<AgentMsg<T, O>>>,
    pub(crate) load: Arc<AtomicUsize>,
    status: AtomicU8,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl<T, O> Replica<T, O> {
    pub(crate) fn new(actor: ActorRef<AgentMsg<T, O>>, breaker: Option<CircuitBreaker>) -> Self {
        Self {
            actor: ArcSwap::from_pointee(actor),
            load: Arc::default(),
            status: AtomicU8::new(ReplicaStatus::Running as u8),
            breaker,
        }
    }

    pub(crate) fn actor(&self) -> Arc<ActorRef<AgentMsg<T, O>>> {
        self.actor.load_full()
    }

    pub(crate) fn replace(&self, actor: ActorRef<AgentMsg<T, O>>) {
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
        // Through the guard and `Deref` to the cell: no clone of the actor handle on this path.
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

pub(crate) type Cloner<T> = fn(&T) -> T;

pub(crate) struct AgentEntry<T, O> {
    pub(crate) name: AgentName,
    pub(crate) spec: Arc<AgentSpec>,
    pub(crate) queue: Arc<AgentQueue>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) spawner: Option<Arc<dyn SpawnAgent<T, O>>>,
    pub(crate) cloner: Option<Cloner<T>>,
    pub(crate) bus: Arc<EventBus>,
    metrics: Arc<AgentMetrics>,
    epoch: Instant,
    // Set once, when every replica has started.
    replicas: OnceLock<Vec<Replica<T, O>>>,
    // Tasks waiting for a replica to come back; each still holds its queue permit.
    parked: Mutex<VecDeque<(T, Ticket<O>)>>,
}

impl<T, O> AgentEntry<T, O> {
    /// Sets the replicas once all have started; false if they were already set.
    pub(crate) fn set_replicas(&self, replicas: Vec<Replica<T, O>>) -> bool {
        self.replicas.set(replicas).is_ok()
    }

    pub(crate) fn is_started(&self) -> bool {
        self.replicas.get().is_some()
    }

    /// The agent's replicas; empty until it has started.
    pub(crate) fn replicas(&self) -> &[Replica<T, O>] {
        self.replicas.get().map_or(&[], Vec::as_slice)
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentEntry<T, O> {
    pub(crate) fn new(
        spec: Arc<AgentSpec>,
        queue: Arc<AgentQueue>,
        spawner: Option<Arc<dyn SpawnAgent<T, O>>>,
        cloner: Option<Cloner<T>>,
        bus: Arc<EventBus>,
        epoch: Instant,
    ) -> Self {
        let name = AgentName::from(spec.name.as_str());
        Self {
            metrics: Arc::new(AgentMetrics::new(&name)),
            name,
            timeout: spec.task_timeout,
            spec,
            queue,
            spawner,
            cloner,
            bus,
            epoch,
            replicas: OnceLock::new(),
            parked: Mutex::new(VecDeque::new()),
        }
    }

    /// Milliseconds since the swarm started, the breakers' clock.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Room for one task in this agent's queue, waiting for it.
    pub(crate) async fn reserve(&self) -> Result<OwnedSemaphorePermit, SubmitErrorKind> {
        self.queue
            .reserve()
            .await
            .map_err(|_closed| SubmitErrorKind::AgentStopped(self.name.clone()))
    }

    /// Room for one task in this agent's queue if there is some now (`Busy` if not).
    pub(crate) fn try_reserve(&self) -> Result<OwnedSemaphorePermit, SubmitErrorKind> {
        self.queue.try_reserve().map_err(|e| match e {
            TryAcquireError::NoPermits => SubmitErrorKind::Busy(self.name.clone()),
            TryAcquireError::Closed => SubmitErrorKind::AgentStopped(self.name.clone()),
        })
    }

    /// Reserves room (waiting or not, as `options` say), then dispatches.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        id: TaskId,
        task: T,
        options: SubmitOptions,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let permit = if options.wait {
            self.reserve().await
        } else {
            self.try_reserve()
        };
        match permit {
            Ok(permit) => self.dispatch(id, task, options, permit),
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Creates a task for this agent and hands it to a replica.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        id: TaskId,
        task: T,
        options: SubmitOptions,
        permit: OwnedSemaphorePermit,
    ) -> Result<TaskHandle<O>, SubmitError<T>> {
        let deadline = options
            .deadline
            .or_else(|| options.timeout.or(self.timeout).map(|t| Instant::now() + t));
        let (shared, rx) = TaskShared::new(
            id,
            self.name.clone(),
            deadline,
            self.bus.clone(),
            self.metrics.clone(),
        );
        let ticket = Ticket::new(shared.clone(), permit);
        match self.deliver(task, ticket, true) {
            Ok(()) => Ok(TaskHandle::new(shared, rx)),
            Err((task, ticket, refusal)) => {
                // Never accepted: the task goes back to the caller instead of failing.
                ticket.shared.withdraw();
                let kind = match refusal {
                    Refusal::Dead => SubmitErrorKind::AgentStopped(self.name.clone()),
                    Refusal::BreakerOpen(retry_after) => SubmitErrorKind::BreakerOpen {
                        agent: self.name.clone(),
                        retry_after,
                    },
                };
                Err(SubmitError::new(kind, task))
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
        mut ticket: Ticket<O>,
        recheck: bool,
    ) -> Result<(), (T, Ticket<O>, Refusal)> {
        let replicas = self.replicas();
        let now = self.now_ms();
        let mut order: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].takes_tasks())
            .collect();
        order.sort_by_key(|&i| replicas[i].load.load(Ordering::Relaxed));
        let mut open_for: Option<Duration> = None;
        let mut task = task;
        for i in order {
            let replica = &replicas[i];
            let permit = match &replica.breaker {
                None => None,
                Some(b) => match b.try_acquire(now) {
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
            ticket.assign(i, replica.load.clone(), permit);
            let home: Arc<dyn crate::envelope::Redeliver<T, O>> = self.clone();
            let env = Envelope::new(task, ticket, Arc::downgrade(&home));
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
            self.park(task, ticket);
            if recheck && replicas.iter().any(Replica::takes_tasks) {
                self.flush_parked_once();
            }
            return Ok(());
        }
        Err((task, ticket, Refusal::Dead))
    }

    /// Keeps a task until a replica is back ([`flush_parked`](Self::flush_parked)).
    pub(crate) fn park(&self, task: T, ticket: Ticket<O>) {
        ticket.shared.requeue();
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((task, ticket));
    }

    /// Delivers every parked task again, in the order they were parked; one that finds no
    /// taker now ends with the reason.
    pub(crate) fn flush_parked(self: &Arc<Self>) {
        self.flush(true);
    }

    /// A flush that parks again without looking back (no recursion while a replica's state
    /// is changing).
    fn flush_parked_once(self: &Arc<Self>) {
        self.flush(false);
    }

    fn flush(self: &Arc<Self>, recheck: bool) {
        let parked: Vec<_> = self
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for (task, ticket) in parked {
            self.deliver_again(task, ticket, recheck);
        }
    }

    /// Delivers a task that was already accepted once (its actor died before running it, or
    /// it is being retried); if nobody can take it, it ends with the reason.
    pub(crate) fn redeliver(self: &Arc<Self>, task: T, ticket: Ticket<O>) {
        self.deliver_again(task, ticket, true);
    }

    fn deliver_again(self: &Arc<Self>, task: T, ticket: Ticket<O>, recheck: bool) {
        if ticket.shared.state().is_terminal() {
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
            self.bus.publish(|| EventKind::DeadLetter {
                task: ticket.shared.id,
                agent: self.name.clone(),
                cause: err.to_string(),
            });
            ticket.shared.finish(outcome, Err(err));
        }
    }

    /// Tells the task's replica's breaker how the task ended.
    pub(crate) fn report(&self, ticket: &Ticket<O>, outcome: Outcome) {
        let Some((index, permit)) = ticket.breaker_permit() else {
            return;
        };
        let Some(breaker) = self.replicas().get(index).and_then(|r| r.breaker.as_ref()) else {
            return;
        };
        let transition = match outcome {
            Outcome::Completed => breaker.on_success(permit),
            Outcome::Failed | Outcome::Panicked | Outcome::TimedOut => {
                breaker.on_failure(permit, self.now_ms())
            }
            Outcome::Cancelled | Outcome::AgentStopped => None,
        };
        if let Some(t) = transition {
            self.breaker_event(index, t);
        }
    }

    fn breaker_event(&self, replica: usize, transition: Transition) {
        telemetry::breaker(&self.name, replica, transition.into());
        self.bus.publish(|| EventKind::BreakerChanged {
            agent: self.name.clone(),
            replica,
            transition: transition.into(),
        });
    }
}

impl<T, O> crate::topology::LiveMember for AgentEntry<T, O> {
    fn load(&self) -> usize {
        self.queue.depth()
    }

    fn alive(&self) -> bool {
        self.replicas().iter().any(Replica::takes_tasks)
    }
}
