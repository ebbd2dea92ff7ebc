//! Journaled references to agents: submit durably, resume after a crash.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use apiary_core::{AgentRef, Outcome, SubmitErrorKind, SubmitOptions, TaskError, TaskHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::handle::JournalHandle;
use crate::journal::{lock, Ended, Journal};
use crate::record::{left_until, now_ms, Failure, JournalId, OutcomeRecord, Recorded, TaskRecord};
use crate::store::Write;
use crate::JournalError;

/// What a journaled task carries to its agent (as its attachment): the task's number and the
/// journal, for its steps.
pub(crate) struct JournalTask {
    pub(crate) id: JournalId,
    pub(crate) journal: Journal,
    /// How many times each step name has run in this attempt (step `fetch` is `fetch#1`,
    /// `fetch#2`, ...): a task run again repeats the same sequence.
    pub(crate) occurrences: Mutex<HashMap<String, u32>>,
}

/// A refused journaled submission; the task comes back with it.
pub struct JournalSubmitError<T> {
    kind: JournalSubmitErrorKind,
    task: T,
}

/// Why a journaled submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalSubmitErrorKind {
    /// The task could not be recorded: it was not submitted.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The swarm refused the task (its agent stopped, its breaker is open, ...). It was
    /// recorded and is recorded as refused, so it is not delivered again on resume.
    #[error(transparent)]
    Refused(SubmitErrorKind),
}

impl<T> JournalSubmitError<T> {
    /// Why.
    pub fn kind(&self) -> &JournalSubmitErrorKind {
        &self.kind
    }

    /// Takes the refused task back.
    pub fn into_task(self) -> T {
        self.task
    }
}

impl<T> fmt::Debug for JournalSubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalSubmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for JournalSubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<T> std::error::Error for JournalSubmitError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// What [`JournaledAgent::resume`] did: the tasks delivered again, and the records it could
/// not decode (kept in the journal, not deleted).
#[derive(Debug)]
#[non_exhaustive]
pub struct ResumeReport<O> {
    /// Each task delivered again, with its handle.
    pub resumed: Vec<JournalHandle<O>>,
    /// Records of this agent (or of no agent one can tell) that do not decode.
    pub undecodable: Vec<JournalError>,
}

/// A typed, journaled reference to one agent: every task submitted through it is recorded
/// durably before `submit` returns, and its outcome before its handle resolves.
///
/// Get one from [`Journal::agent`]. After a crash, open the journal again, build the swarm,
/// and call [`resume`](Self::resume): every task of this agent that had not ended is
/// delivered again (at least once), and ends with exactly one recorded outcome.
pub struct JournaledAgent<T, O> {
    journal: Journal,
    agent: AgentRef<T, O>,
}

impl<T, O> Clone for JournaledAgent<T, O> {
    fn clone(&self) -> Self {
        Self {
            journal: self.journal.clone(),
            agent: self.agent.clone(),
        }
    }
}

impl<T, O> fmt::Debug for JournaledAgent<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournaledAgent")
            .field("agent", &self.agent)
            .field("journal", &self.journal)
            .finish()
    }
}

impl<T, O> JournaledAgent<T, O>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(crate) fn new(journal: Journal, agent: AgentRef<T, O>) -> Self {
        Self { journal, agent }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        self.agent.name().as_str()
    }

    /// Records the task, then submits it. Returns once the record is durable.
    ///
    /// # Errors
    ///
    /// [`JournalSubmitErrorKind::Journal`] if it could not be recorded (it was not
    /// submitted), [`JournalSubmitErrorKind::Refused`] if the swarm refused it; the task
    /// comes back either way.
    pub async fn submit(&self, task: T) -> Result<JournalHandle<O>, JournalSubmitError<T>> {
        self.submit_inner(None, task, SubmitOptions::default())
            .await
    }

    /// [`submit`](Self::submit) with options (a deadline: recorded, and kept across a
    /// restart).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub async fn submit_with(
        &self,
        task: T,
        options: SubmitOptions,
    ) -> Result<JournalHandle<O>, JournalSubmitError<T>> {
        self.submit_inner(None, task, options).await
    }

    /// Submits under an idempotency key: if a task with this key has ended, its recorded
    /// outcome is answered without running anything; if one is running in this process, the
    /// handle waits for it. Otherwise as [`submit`](Self::submit).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and [`JournalError::Pending`] if the key's task was
    /// recorded before a restart and not resumed yet.
    pub async fn submit_keyed(
        &self,
        key: impl Into<String>,
        task: T,
    ) -> Result<JournalHandle<O>, JournalSubmitError<T>> {
        self.submit_inner(Some(key.into()), task, SubmitOptions::default())
            .await
    }

    async fn submit_inner(
        &self,
        key: Option<String>,
        task: T,
        options: SubmitOptions,
    ) -> Result<JournalHandle<O>, JournalSubmitError<T>> {
        let refuse = |kind: JournalError, task| JournalSubmitError {
            kind: kind.into(),
            task,
        };
        let id = JournalId(self.journal.next_id());
        let (ended, ending) = watch::channel(None);
        if let Some(key) = &key {
            let mut in_flight = lock(&self.journal.inner.in_flight);
            if let Some(running) = in_flight.get(key) {
                return Ok(JournalHandle::waiting(
                    self.journal.clone(),
                    id,
                    running.clone(),
                    None,
                ));
            }
            match self.recorded(key) {
                Ok(Some(handle)) => return Ok(handle),
                Ok(None) => {}
                Err(e) => return Err(refuse(e, task)),
            }
            in_flight.insert(key.clone(), ending.clone());
        }
        let forget = |key: &Option<String>| {
            if let Some(key) = key {
                lock(&self.journal.inner.in_flight).remove(key);
            }
        };
        let record = TaskRecord {
            agent: self.name().to_owned(),
            task_type: std::any::type_name::<T>().to_owned(),
            key: key.clone(),
            payload: match postcard::to_allocvec(&task) {
                Ok(bytes) => bytes,
                Err(e) => {
                    forget(&key);
                    let what = format!("a task for agent `{}`", self.name());
                    return Err(refuse(
                        JournalError::Encode {
                            what,
                            reason: e.to_string(),
                        },
                        task,
                    ));
                }
            },
            deadline_ms: options
                .expires_in()
                .map(|left| now_ms() + u64::try_from(left.as_millis()).unwrap_or(u64::MAX / 2)),
            submitted_ms: now_ms(),
        };
        let write = Write::Task {
            id: id.0,
            record: postcard::to_allocvec(&record).expect("a task record encodes"),
            key: key.clone(),
        };
        if let Err(e) = self.journal.write(vec![write]).await {
            forget(&key);
            return Err(refuse(e, task));
        }
        self.deliver(id, key, task, options, ended, ending).await
    }

    /// The handle of a keyed task that has ended, from the journal.
    fn recorded(&self, key: &str) -> Result<Option<JournalHandle<O>>, JournalError> {
        let Some(id) = self.journal.inner.store.key(key)? else {
            return Ok(None);
        };
        let id = JournalId(id);
        match self.journal.inner.store.outcome(id.0)? {
            Some(outcome) => Ok(Some(JournalHandle::ended(
                self.journal.clone(),
                id,
                Arc::new(Ok(outcome.result)),
            ))),
            None => Err(JournalError::Pending {
                key: key.to_owned(),
                agent: self.name().to_owned(),
            }),
        }
    }

    /// Submits a recorded task to the swarm and records its end when it comes.
    async fn deliver(
        &self,
        id: JournalId,
        key: Option<String>,
        task: T,
        options: SubmitOptions,
        ended: watch::Sender<Option<Arc<Ended>>>,
        ending: watch::Receiver<Option<Arc<Ended>>>,
    ) -> Result<JournalHandle<O>, JournalSubmitError<T>> {
        let attached = JournalTask {
            id,
            journal: self.journal.clone(),
            occurrences: Mutex::new(HashMap::new()),
        };
        match self.agent.submit_with(task, options.attach(attached)).await {
            Ok(handle) => {
                let running = (handle.id(), handle.canceller());
                tokio::spawn(record_end(
                    self.journal.clone(),
                    id,
                    key,
                    self.name().to_owned(),
                    handle,
                    ended,
                ));
                Ok(JournalHandle::waiting(
                    self.journal.clone(),
                    id,
                    ending,
                    Some(running),
                ))
            }
            Err(refused) => {
                let kind = refused.kind().clone();
                let failure = Failure {
                    agent: self.name().to_owned(),
                    outcome: "refused".to_owned(),
                    message: kind.to_string(),
                };
                // Recorded as ended, so a resume does not deliver it again.
                let _ = finish(&self.journal, id, &key, Recorded::Failed(failure), &ended).await;
                Err(JournalSubmitError {
                    kind: JournalSubmitErrorKind::Refused(kind),
                    task: refused.into_task(),
                })
            }
        }
    }

    /// Delivers again every task of this agent that was recorded without an outcome when the
    /// journal was opened (call it once, after the swarm has started). A task whose deadline
    /// passed meanwhile is recorded as timed out instead.
    pub async fn resume(&self) -> ResumeReport<O> {
        let mut report = ResumeReport {
            resumed: Vec::new(),
            undecodable: Vec::new(),
        };
        for (id, record) in self.journal.take_pending(self.name()) {
            let id = JournalId(id);
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    report.undecodable.push(e);
                    continue;
                }
            };
            let now = std::any::type_name::<T>();
            if record.task_type != now {
                report.undecodable.push(JournalError::Undecodable {
                    path: self.journal.path().to_owned(),
                    record: format!("task {} (agent `{}`)", id.0, record.agent),
                    reason: format!(
                        "recorded as a `{}`, but the agent now takes `{now}`",
                        record.task_type
                    ),
                });
                continue;
            }
            let task: T = match postcard::from_bytes(&record.payload) {
                Ok(t) => t,
                Err(e) => {
                    report.undecodable.push(JournalError::Undecodable {
                        path: self.journal.path().to_owned(),
                        record: format!("task {} (agent `{}`)", id.0, record.agent),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let (ended, ending) = watch::channel(None);
            if let Some(key) = &record.key {
                lock(&self.journal.inner.in_flight).insert(key.clone(), ending.clone());
            }
            let mut options = SubmitOptions::default();
            if let Some(deadline) = record.deadline_ms {
                let left = left_until(deadline);
                if left.is_zero() {
                    let failure = Failure::new(
                        self.name(),
                        Outcome::TimedOut,
                        "its deadline passed before it could run again",
                    );
                    let ended_now = finish(
                        &self.journal,
                        id,
                        &record.key,
                        Recorded::Failed(failure),
                        &ended,
                    )
                    .await;
                    report
                        .resumed
                        .push(JournalHandle::ended(self.journal.clone(), id, ended_now));
                    continue;
                }
                options = options.timeout(left);
            }
            match self
                .deliver(id, record.key.clone(), task, options, ended, ending)
                .await
            {
                Ok(handle) => report.resumed.push(handle),
                // Recorded as refused: the report's handle says so.
                Err(refused) => {
                    let outcome = self.journal.inner.store.outcome(id.0).ok().flatten();
                    if let Some(o) = outcome {
                        report.resumed.push(JournalHandle::ended(
                            self.journal.clone(),
                            id,
                            Arc::new(Ok(o.result)),
                        ));
                    } else {
                        report.undecodable.push(JournalError::Closed {
                            path: self.journal.path().to_owned(),
                        });
                    }
                    drop(refused);
                }
            }
        }
        report
    }
}

/// Waits for a task's end and records it.
async fn record_end<O: Serialize>(
    journal: Journal,
    id: JournalId,
    key: Option<String>,
    agent: String,
    handle: TaskHandle<O>,
    ended: watch::Sender<Option<Arc<Ended>>>,
) {
    let recorded = match handle.await {
        Ok(output) => match postcard::to_allocvec(&output) {
            Ok(bytes) => Recorded::Output(bytes),
            Err(e) => Recorded::Failed(Failure::new(
                &agent,
                Outcome::Failed,
                format!("the output could not be journaled: {e}"),
            )),
        },
        Err(e) => Recorded::Failed(Failure::new(&agent, outcome_of(&e), e.to_string())),
    };
    finish(&journal, id, &key, recorded, &ended).await;
}

/// Records a task's end durably, then tells whoever waits for it.
async fn finish(
    journal: &Journal,
    id: JournalId,
    key: &Option<String>,
    recorded: Recorded,
    ended: &watch::Sender<Option<Arc<Ended>>>,
) -> Arc<Ended> {
    let record = OutcomeRecord {
        ended_ms: now_ms(),
        result: recorded,
    };
    let bytes = postcard::to_allocvec(&record).expect("an outcome record encodes");
    let written = journal
        .write(vec![Write::Outcome {
            id: id.0,
            record: bytes,
        }])
        .await;
    let end = Arc::new(written.map(|()| record.result).map_err(|e| e.to_string()));
    if let Some(key) = key {
        lock(&journal.inner.in_flight).remove(key);
    }
    ended.send_replace(Some(end.clone()));
    end
}

fn outcome_of(e: &TaskError) -> Outcome {
    match e {
        TaskError::Agent { .. } => Outcome::Failed,
        TaskError::Panicked { .. } => Outcome::Panicked,
        TaskError::Cancelled => Outcome::Cancelled,
        TaskError::TimedOut { .. } => Outcome::TimedOut,
        TaskError::AgentStopped { .. } => Outcome::AgentStopped,
        _ => Outcome::Failed,
    }
}
