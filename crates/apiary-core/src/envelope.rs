use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::task::TaskShared;
use crate::{Outcome, TaskError};

/// A task on its way to an agent's actor, with the room it holds in the agent's queue.
pub(crate) struct Envelope<T, O> {
    pub(crate) task: T,
    pub(crate) ticket: Ticket<O>,
}

/// The part of an envelope that must answer for the task. Dropping a ticket whose task has
/// not ended ends it as `AgentStopped`: an envelope dropped by a dying actor's mailbox still
/// gets its submitter a result. Dropping it also gives the queue room back.
pub(crate) struct Ticket<O> {
    pub(crate) shared: Arc<TaskShared<O>>,
    _permit: OwnedSemaphorePermit,
    load: Arc<AtomicUsize>,
}

impl<O> Ticket<O> {
    pub(crate) fn new(
        shared: Arc<TaskShared<O>>,
        permit: OwnedSemaphorePermit,
        load: Arc<AtomicUsize>,
    ) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            _permit: permit,
            load,
        }
    }
}

impl<O> Drop for Ticket<O> {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.shared.finish(
            Outcome::AgentStopped,
            Err(TaskError::AgentStopped {
                agent: self.shared.agent.clone(),
            }),
        );
    }
}
