//! The handle a journaled submission returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use apiary_core::{TaskCanceller, TaskId};
use serde::de::DeserializeOwned;

use crate::journal::{Ended, Ending, Journal};
use crate::record::{Failure, JournalId};
use crate::JournalError;

/// Why a journaled task gave no output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalTaskError {
    /// The task ended without an output; this is what the journal recorded.
    #[error(transparent)]
    Failed(Failure),
    /// The journal could not record or read the task's end.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl JournalTaskError {
    /// The recorded failure, if the task failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(f) => Some(f),
            Self::Journal(_) => None,
        }
    }
}

/// A journaled task: await it for its output once its end is recorded durably.
///
/// It resolves after the journal has recorded how the task ended, so whatever the awaiting
/// code does next survives a crash. A handle for an idempotency key that had already ended
/// resolves at once, from the journal.
#[must_use = "a task handle does nothing unless awaited; dropping it lets the task run detached"]
pub struct JournalHandle<O> {
    id: JournalId,
    replay: bool,
    /// The swarm task running it in this process, and how to cancel it.
    running: Option<(TaskId, TaskCanceller)>,
    end: Pin<Box<dyn Future<Output = Result<O, JournalTaskError>> + Send>>,
}

impl<O> fmt::Debug for JournalHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<O: DeserializeOwned + Send + 'static> JournalHandle<O> {
    /// A handle waiting for a running task's end.
    pub(crate) fn waiting(
        journal: Journal,
        id: JournalId,
        mut ending: Ending,
        running: Option<(TaskId, TaskCanceller)>,
    ) -> Self {
        let end = Box::pin(async move {
            let ended = loop {
                if let Some(ended) = ending.borrow_and_update().clone() {
                    break ended;
                }
                if ending.changed().await.is_err() {
                    return Err(JournalTaskError::Journal(JournalError::Closed {
                        path: journal.path().to_owned(),
                    }));
                }
            };
            decode(&journal, id, &ended)
        });
        Self {
            id,
            replay: false,
            running,
            end,
        }
    }

    /// A handle for a task that has already ended.
    pub(crate) fn ended(journal: Journal, id: JournalId, ended: Arc<Ended>) -> Self {
        let end = Box::pin(async move { decode(&journal, id, &ended) });
        Self {
            id,
            replay: true,
            running: None,
            end,
        }
    }
}

impl<O> JournalHandle<O> {
    /// The task's number in the journal.
    pub fn id(&self) -> JournalId {
        self.id
    }

    /// Whether the handle answers from the journal: the task had ended before (under its
    /// idempotency key) and nothing runs now.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// Cancels the task if it is running in this process; false if it had ended (or runs
    /// elsewhere).
    pub fn cancel(&self) -> bool {
        self.running.as_ref().is_some_and(|(_, c)| c.cancel())
    }

    /// The swarm task that runs it, if it runs in this process (not a replay, not a wait on
    /// the same key submitted earlier).
    pub fn task(&self) -> Option<TaskId> {
        self.running.as_ref().map(|(id, _)| *id)
    }

    /// Cancels the running task from anywhere, if it runs in this process.
    pub fn canceller(&self) -> Option<TaskCanceller> {
        self.running.as_ref().map(|(_, c)| c.clone())
    }
}

fn decode<O: DeserializeOwned>(
    journal: &Journal,
    id: JournalId,
    ended: &Ended,
) -> Result<O, JournalTaskError> {
    match ended {
        Ok(recorded) => journal
            .decode_result(id, recorded)?
            .map_err(JournalTaskError::Failed),
        Err(message) => Err(JournalTaskError::Journal(JournalError::Storage {
            path: journal.path().to_owned(),
            source: message.clone().into(),
        })),
    }
}

impl<O> Future for JournalHandle<O> {
    type Output = Result<O, JournalTaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.end.as_mut().poll(cx)
    }
}
