use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use apiary_supervisor::Permit;
use tokio::sync::OwnedSemaphorePermit;

use crate::entry::AgentEntry;
use crate::task::TaskShared;
use crate::{Outcome, TaskError};

/// A task on its way to an agent's actor.
///
/// If the envelope is dropped before the actor takes the task out (the actor died with it
/// in its mailbox), the task goes back to its agent to be delivered again (to a restarted
/// or another replica), or ends as `AgentStopped` if the agent is gone: never silently.
pub(crate) struct Envelope<T, O> {
    parts: Option<(T, Ticket<O>)>,
    home: Weak<dyn Redeliver<T, O>>,
}

/// Takes back a task whose envelope was dropped unopened.
pub(crate) trait Redeliver<T, O>: Send + Sync {
    fn redeliver(self: Arc<Self>, task: T, ticket: Ticket<O>);
}

impl<T: Send + 'static, O: Send + 'static> Redeliver<T, O> for AgentEntry<T, O> {
    fn redeliver(self: Arc<Self>, task: T, ticket: Ticket<O>) {
        AgentEntry::redeliver(&self, task, ticket);
    }
}

impl<T, O> Envelope<T, O> {
    pub(crate) fn new(task: T, ticket: Ticket<O>, home: Weak<dyn Redeliver<T, O>>) -> Self {
        Self {
            parts: Some((task, ticket)),
            home,
        }
    }

    pub(crate) fn ticket(&self) -> &Ticket<O> {
        // `parts` is only taken by `into_parts` (which consumes) and `drop`.
        &self.parts.as_ref().expect("envelope holds its task").1
    }

    pub(crate) fn into_parts(mut self) -> (T, Ticket<O>) {
        self.parts.take().expect("envelope holds its task")
    }
}

impl<T, O> Drop for Envelope<T, O> {
    fn drop(&mut self) {
        if let Some((task, ticket)) = self.parts.take() {
            match self.home.upgrade() {
                Some(entry) => entry.redeliver(task, ticket),
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
pub(crate) struct Ticket<O> {
    pub(crate) shared: Arc<TaskShared<O>>,
    _permit: OwnedSemaphorePermit,
    assigned: Option<Assignment>,
}

struct Assignment {
    replica: usize,
    load: Arc<AtomicUsize>,
    breaker: Option<Permit>,
}

impl<O> Ticket<O> {
    pub(crate) fn new(shared: Arc<TaskShared<O>>, permit: OwnedSemaphorePermit) -> Self {
        Self {
            shared,
            _permit: permit,
            assigned: None,
        }
    }

    /// Records the replica the task is handed to.
    pub(crate) fn assign(
        &mut self,
        replica: usize,
        load: Arc<AtomicUsize>,
        breaker: Option<Permit>,
    ) {
        self.unassign();
        load.fetch_add(1, Ordering::Relaxed);
        self.shared.set_replica(replica);
        self.assigned = Some(Assignment {
            replica,
            load,
            breaker,
        });
    }

    pub(crate) fn unassign(&mut self) {
        if let Some(a) = self.assigned.take() {
            a.load.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The replica and breaker permit the task was delivered with, if its replica has a
    /// breaker.
    pub(crate) fn breaker_permit(&self) -> Option<(usize, Permit)> {
        let a = self.assigned.as_ref()?;
        Some((a.replica, a.breaker?))
    }
}

impl<O> Drop for Ticket<O> {
    fn drop(&mut self) {
        self.unassign();
        self.shared.finish(
            Outcome::AgentStopped,
            Err(TaskError::AgentStopped {
                agent: self.shared.agent.clone(),
            }),
        );
    }
}
