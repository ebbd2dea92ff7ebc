//! What travels to an agent's actor: its messages, the envelope a task rides in, and the
//! ticket that answers for the task until it ends.

use std::sync::{Arc, Weak};

use apiary_supervisor::Permit;
use ractor::RpcReplyPort;

use crate::queue::{AgentQueue, Slot};
use crate::sync::AtomicUsize;
use crate::task::TaskShared;
use crate::Outcome;

/// Messages an agent's actor takes.
pub(crate) enum AgentMsg<T: 'static, O: 'static> {
    /// A task to run (or hold, while the queue is paused).
    Task(Envelope<T, O>),
    /// The queue was resumed: run what was held.
    Resume,
    /// A pool took the agent back: clear its state for the next user, then answer.
    Reset(RpcReplyPort<()>),
}

// With ractor's `cluster` feature, every message type needs its own impl (the blanket impl
// is gone); without it, an impl here would collide with the blanket one. Agents are reached
// across nodes through apiary-cluster's gateways, whose messages are the serializable ones.
#[cfg(feature = "cluster")]
impl<T: Send + 'static, O: Send + 'static> ractor::Message for AgentMsg<T, O> {}

/// Where a task's agent hears back from the actor that ran (or could not run) it.
///
/// The actor knows its agent only through this trait, so it does not depend on the agent's
/// whole entry.
pub(crate) trait Home<T, O>: Send + Sync {
    /// Delivers a task again whose envelope was dropped unopened (its actor died).
    fn redeliver(self: Arc<Self>, task: T, ticket: Ticket<T, O>);
    /// Tells the breaker of the task's replica how the task ended.
    fn report(&self, ticket: &Ticket<T, O>, outcome: Outcome);
    /// Keeps a crashed task until a replica is free or back, to run it again.
    fn park(self: Arc<Self>, task: T, ticket: Ticket<T, O>);
    /// Whether tasks wait in the agent's line for a free replica (agents with several).
    fn has_waiting(&self) -> bool;
    /// Hands waiting tasks to free replicas: called by a replica that has just finished one.
    fn pump(self: Arc<Self>);
    /// How to copy a task for a retry, if tasks of this agent may be retried.
    fn cloner(&self) -> Option<fn(&T) -> T>;
    /// The agent's queue: its room, and whether it is paused.
    fn queue(&self) -> &AgentQueue;
    /// Raised when a bounded shutdown gives up on the agent's waiting tasks.
    fn aborted(&self) -> &crate::signal::Signal;
}

/// The way back to an agent for a task whose envelope was dropped unopened, kept (types
/// erased) in the agent's `TaskEnv`.
pub(crate) struct Redelivery<T, O>(pub(crate) Weak<dyn Home<T, O>>);

/// A task on its way to an agent's actor.
///
/// If the envelope is dropped before the actor takes the task out (the actor died with it
/// in its mailbox), the task goes back to its agent to be delivered again (to a restarted
/// or another replica), or ends as `AgentStopped` if the agent is gone: never silently.
pub(crate) struct Envelope<T: 'static, O: 'static> {
    parts: Option<(T, Ticket<T, O>)>,
}

impl<T: 'static, O: 'static> Envelope<T, O> {
    pub(crate) fn new(task: T, ticket: Ticket<T, O>) -> Self {
        Self {
            parts: Some((task, ticket)),
        }
    }

    pub(crate) fn ticket(&self) -> &Ticket<T, O> {
        // `parts` is only taken by `into_parts` (which consumes) and `drop`.
        &self.parts.as_ref().expect("envelope holds its task").1
    }

    pub(crate) fn into_parts(mut self) -> (T, Ticket<T, O>) {
        self.parts.take().expect("envelope holds its task")
    }
}

impl<T: 'static, O: 'static> Drop for Envelope<T, O> {
    fn drop(&mut self) {
        if let Some((task, ticket)) = self.parts.take() {
            let home = ticket
                .shared
                .env
                .home
                .downcast_ref::<Redelivery<T, O>>()
                .and_then(|r| r.0.upgrade());
            match home {
                Some(home) => home.redeliver(task, ticket),
                // The agent is gone: the ticket's drop ends the task.
                None => drop(ticket),
            }
        }
    }
}

/// The part of a task that answers for it: its shared state, the room it holds in its
/// agent's queue, and, once delivered, its replica's load and breaker permit.
///
/// Dropping a ticket whose task has not ended ends it as `AgentStopped`, and gives the queue
/// room back.
pub(crate) struct Ticket<T, O> {
    pub(crate) shared: Arc<TaskShared<O>>,
    slot: Option<Slot>,
    assigned: Option<Assignment>,
    _task: std::marker::PhantomData<fn(T)>,
}

struct Assignment {
    replica: usize,
    // Counted only for agents with several replicas (it picks the least loaded).
    load: Option<Arc<AtomicUsize>>,
    breaker: Option<Permit>,
}

impl<T, O> Ticket<T, O> {
    pub(crate) fn new(shared: Arc<TaskShared<O>>, slot: Slot) -> Self {
        Self {
            shared,
            slot: Some(slot),
            assigned: None,
            _task: std::marker::PhantomData,
        }
    }

    /// Records the replica the task is handed to, which was claimed for it (its load
    /// already counts the task).
    pub(crate) fn assign_claimed(
        &mut self,
        replica: usize,
        load: Option<&Arc<AtomicUsize>>,
        breaker: Option<Permit>,
    ) {
        self.unassign();
        self.shared.set_replica(replica);
        self.assigned = Some(Assignment {
            replica,
            load: load.cloned(),
            breaker,
        });
    }

    /// The replica the task was handed to, if it was.
    pub(crate) fn replica(&self) -> Option<usize> {
        self.assigned.as_ref().map(|a| a.replica)
    }

    /// Records the replica the task is handed to (an agent with one replica: not counted).
    pub(crate) fn assign(&mut self, replica: usize, breaker: Option<Permit>) {
        self.unassign();
        self.shared.set_replica(replica);
        self.assigned = Some(Assignment {
            replica,
            load: None,
            breaker,
        });
    }

    pub(crate) fn unassign(&mut self) {
        if let Some(load) = self.assigned.take().and_then(|a| a.load) {
            // The replica is free: read the agent's waiting line after this (`line`).
            crate::line::release(&load);
        }
    }

    /// The replica and breaker permit the task was delivered with, if its replica has a
    /// breaker.
    pub(crate) fn breaker_permit(&self) -> Option<(usize, Permit)> {
        let a = self.assigned.as_ref()?;
        Some((a.replica, a.breaker?))
    }
}

impl<T, O> Drop for Ticket<T, O> {
    fn drop(&mut self) {
        self.unassign();
        // A no-op for a task that already ended or was handed on.
        self.shared.abandon();
        if let Some(slot) = self.slot.take() {
            self.shared.env.queue.release(slot);
        }
    }
}
