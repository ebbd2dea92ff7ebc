//! The apiary-journal crate makes a swarm durable: a journal of its tasks and of the steps
//! inside them, on redb, so that a process that dies (a kill -9, an OOM kill, a power cut) is
//! resumed without redoing finished work.
//!
//! - [`Journal::open`] opens the journal of a swarm; give the swarm the journal as a resource
//!   so its agents' steps can reach it.
//! - [`Journal::agent`] gives a [`JournaledAgent`]: each task submitted through it is recorded
//!   (agent, task, idempotency key, deadline) before `submit` returns, and its outcome before
//!   its [`JournalHandle`] resolves. A key that has ended answers from the journal.
//! - After a crash, [`JournaledAgent::resume`] delivers again every task that had not ended:
//!   at least once, with exactly one recorded outcome.
//! - Inside an agent, [`Steps::step`] records a side effect's result; a task delivered again
//!   skips the steps that had finished.
//! - One writer thread groups concurrent records into one transaction, so they share one
//!   fsync; an acknowledgement never precedes its fsync. Finished tasks can be removed after a
//!   count or an age ([`JournalConfig`]).
//!
//! A journal from another swarm or format, a damaged file, a record that no longer decodes:
//! each is a [`JournalError`] naming the file and the record, and nothing is deleted. See
//! `docs/durability.md` for what is guaranteed and what is not.
//!
//! See [`Journal`] for an example.
#![deny(missing_docs)]

mod agent;
mod error;
mod handle;
mod journal;
mod record;
mod step;
mod store;
mod writer;

pub use agent::{JournalSubmitError, JournalSubmitErrorKind, JournaledAgent, ResumeReport};
pub use error::JournalError;
pub use handle::{JournalHandle, JournalTaskError};
pub use journal::{Journal, JournalConfig, KeyedOutcome, TaskSummary};
pub use record::{Failure, JournalId};
pub use step::{StepKey, Steps, TryStepError};
pub use writer::WriterStats;
