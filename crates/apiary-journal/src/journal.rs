//! The journal handle: opening a journal, typed journaled agents, and reading back what ended.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use apiary_core::{LookupError, Swarm};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::agent::JournaledAgent;
use crate::record::{Failure, JournalId, Recorded};
use crate::store::{Pending, Store, Write};
use crate::writer::{Retention, Writer, WriterStats};
use crate::JournalError;

/// Where a journal lives and how long it keeps finished tasks.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apiary_journal::JournalConfig;
///
/// let config = JournalConfig::new("/var/lib/myswarm/journal", "review-bot")
///     .keep_finished(100_000)
///     .keep_for(Duration::from_secs(7 * 24 * 3600));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct JournalConfig {
    dir: PathBuf,
    swarm: String,
    retention: Retention,
}

impl JournalConfig {
    /// A journal in `dir` for the swarm named `swarm` (a journal refuses to open for another
    /// swarm). Finished tasks are kept until told otherwise.
    pub fn new(dir: impl Into<PathBuf>, swarm: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            swarm: swarm.into(),
            retention: Retention::default(),
        }
    }

    /// Keeps at most the newest `n` finished tasks; older ones (task, outcome, key, steps) are
    /// removed in the background, so a long-running swarm's journal stops growing.
    pub fn keep_finished(mut self, n: usize) -> Self {
        self.retention.keep = Some(n);
        self
    }

    /// Removes finished tasks that ended longer ago than `age`.
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.retention.age = Some(age);
        self
    }
}

/// A durable journal of a swarm's tasks and of the steps inside them, on redb.
///
/// Journaled tasks are recorded before their submission returns and their outcome when they
/// end; a swarm opened again on the same journal delivers again every task that had not
/// ended ([`JournaledAgent::resume`]), and steps that had finished return their recorded
/// result instead of running again ([`Steps::step`](crate::Steps::step)). One writer thread
/// groups the records of concurrent submissions into one transaction, so they share one
/// fsync. Cheap to clone.
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
/// use apiary_journal::{Journal, JournalConfig};
///
/// struct Double;
/// impl Agent for Double {
///     type Task = u64;
///     type Output = u64;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
///         Ok(n * 2)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(JournalConfig::new(dir.path(), "doubler")).await?;
/// let swarm = Swarm::builder()
///     .resource(journal.clone())
///     .agent(AgentSpec::new("double"), || Double)
///     .start()
///     .await?;
/// let double = journal.agent::<u64, u64>(&swarm, "double")?;
/// let handle = double.submit_keyed("job-1", 21).await?; // durable once this returns
/// let id = handle.id();
/// assert_eq!(handle.await?, 42);
/// // Ended and recorded: the same key answers from the journal without running again.
/// assert_eq!(double.submit_keyed("job-1", 21).await?.await?, 42);
/// assert_eq!(journal.outcome::<u64>(id)?, Some(Ok(42)));
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Journal {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) writer: Writer,
    next_id: AtomicU64,
    /// Tasks without an outcome when the journal was opened, by agent, until resumed.
    pending: Mutex<HashMap<String, Vec<Pending>>>,
    /// Keyed tasks running in this process: a second submission of the key waits for them.
    pub(crate) in_flight: Mutex<HashMap<String, Ending>>,
}

/// How a running task's end reaches whoever waits for it.
pub(crate) type Ending = watch::Receiver<Option<Arc<Ended>>>;

/// A task's end as the journal saw it: recorded, or not recordable.
pub(crate) type Ended = Result<Recorded, String>;

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.store.path)
            .finish_non_exhaustive()
    }
}

/// A keyed task: its number, and how it ended if it has.
pub type KeyedOutcome<O> = (JournalId, Option<Result<O, Failure>>);

/// One task in a journal, as [`Journal::tasks`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskSummary {
    /// Its number.
    pub id: JournalId,
    /// Its agent.
    pub agent: String,
    /// Its idempotency key, if it has one.
    pub key: Option<String>,
    /// When it was submitted (milliseconds since the Unix epoch).
    pub submitted_ms: u64,
    /// How it ended: `completed`, or the failure's outcome; `None` while it has not.
    pub outcome: Option<String>,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// The failure's message, if it failed.
    pub message: Option<String>,
}

impl Journal {
    /// Opens (or creates) the journal `config` describes.
    ///
    /// # Errors
    ///
    /// [`JournalError::Version`] or [`JournalError::Foreign`] for a journal of another
    /// format or swarm, [`JournalError::Storage`] for a file redb finds damaged or another
    /// process holds, [`JournalError::Io`] for a directory that cannot be made.
    pub async fn open(config: JournalConfig) -> Result<Self, JournalError> {
        let JournalConfig {
            dir,
            swarm,
            retention,
        } = config;
        let (store, opened) = tokio::task::spawn_blocking(move || Store::open(&dir, &swarm))
            .await
            .map_err(|e| JournalError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let store = Arc::new(store);
        let writer = Writer::start(store.clone(), retention)?;
        let mut pending: HashMap<String, Vec<Pending>> = HashMap::new();
        for (id, task) in opened.pending {
            let agent = match &task {
                Ok(t) => t.agent.clone(),
                // Reported by whichever agent resumes first: it cannot name its owner.
                Err(_) => String::new(),
            };
            pending.entry(agent).or_default().push((id, task));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                writer,
                next_id: AtomicU64::new(opened.next_id),
                pending: Mutex::new(pending),
                in_flight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Reads an existing journal whatever swarm wrote it, without starting a writer: the
    /// swarm's name and every task in it. For status tools.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if `dir` holds no journal; otherwise as [`open`](Self::open).
    pub async fn inspect(
        dir: impl Into<PathBuf>,
    ) -> Result<(String, Vec<TaskSummary>), JournalError> {
        let dir = dir.into();
        tokio::task::spawn_blocking(move || {
            let (store, swarm) = Store::open_existing(&dir)?;
            Ok((swarm, summaries(store.list()?)))
        })
        .await
        .map_err(|e| JournalError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.inner.store.path
    }

    /// A journaled reference to an agent of `swarm` that takes `T` and gives `O`: its tasks
    /// are recorded before they run, and their outcomes when they end. Tasks and outputs must
    /// be serde types; the types say so.
    ///
    /// # Errors
    ///
    /// [`LookupError`] if the swarm has no such agent or it runs other types.
    pub fn agent<T, O>(
        &self,
        swarm: &Swarm,
        name: &str,
    ) -> Result<JournaledAgent<T, O>, LookupError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Ok(JournaledAgent::new(
            self.clone(),
            swarm.agent::<T, O>(name)?,
        ))
    }

    /// How the task `id` ended: its output, or the recorded failure; `None` while it has not
    /// ended (or after retention removed it).
    ///
    /// # Errors
    ///
    /// [`JournalError::Undecodable`] if the record does not decode into `O`.
    pub fn outcome<O: DeserializeOwned>(
        &self,
        id: JournalId,
    ) -> Result<Option<Result<O, Failure>>, JournalError> {
        match self.inner.store.outcome(id.0)? {
            None => Ok(None),
            Some(record) => self.decode_result(id, &record.result).map(Some),
        }
    }

    /// The task recorded under an idempotency key, with its outcome if it has ended.
    ///
    /// # Errors
    ///
    /// As [`outcome`](Self::outcome).
    pub fn outcome_by_key<O: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<KeyedOutcome<O>>, JournalError> {
        let Some(id) = self.inner.store.key(key)? else {
            return Ok(None);
        };
        let id = JournalId(id);
        Ok(Some((id, self.outcome(id)?)))
    }

    /// Removes finished tasks beyond the configured retention now (it also happens on its own
    /// while the journal is written).
    ///
    /// # Errors
    ///
    /// [`JournalError::Closed`] if the writer has stopped.
    pub async fn compact(&self) -> Result<(), JournalError> {
        self.inner.writer.compact().await
    }

    /// What the writer has done since the journal opened: transactions (one fsync each) and
    /// the records they held.
    pub fn stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// The steps recorded for task `id` (`name#n`, in name order).
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] if the file cannot be read.
    pub fn steps(&self, id: JournalId) -> Result<Vec<String>, JournalError> {
        self.inner.store.steps(id.0)
    }

    /// The running total `name`: the sum of every amount added to it with
    /// [`add_to_tally`](Self::add_to_tally) or [`Steps::tally`](crate::Steps::tally) (0 if
    /// none). Totals outlive the tasks that added to them: retention never removes them. A
    /// resumed run reads what a budget had spent before the crash from here.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] if the file cannot be read.
    pub fn tally(&self, name: &str) -> Result<u64, JournalError> {
        self.inner.store.tally(name)
    }

    /// Adds `amount` to the running total `name` (saturating), durably before it returns.
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the write cannot be made durable.
    pub async fn add_to_tally(&self, name: &str, amount: u64) -> Result<(), JournalError> {
        self.add_to_tallies(&[(name, amount)]).await
    }

    /// Adds each `(name, amount)` to its running total, in one durable write.
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the write cannot be made durable.
    pub async fn add_to_tallies(&self, amounts: &[(&str, u64)]) -> Result<(), JournalError> {
        let writes = amounts
            .iter()
            .map(|&(name, add)| Write::Tally {
                name: name.to_owned(),
                add,
            })
            .collect();
        self.write(writes).await
    }

    /// Every task still in the journal, in submission order.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] if the file cannot be read; a record that does not decode is
    /// listed with its failure to decode as its message.
    pub fn tasks(&self) -> Result<Vec<TaskSummary>, JournalError> {
        Ok(summaries(self.inner.store.list()?))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The tasks of `agent` that were recorded without an outcome when the journal opened
    /// (taken: a second call gets none), with every undecodable one.
    pub(crate) fn take_pending(&self, agent: &str) -> Vec<Pending> {
        let mut pending = lock(&self.inner.pending);
        let mut mine = pending.remove(agent).unwrap_or_default();
        mine.extend(pending.remove("").unwrap_or_default());
        mine
    }

    pub(crate) fn decode_result<O: DeserializeOwned>(
        &self,
        id: JournalId,
        recorded: &Recorded,
    ) -> Result<Result<O, Failure>, JournalError> {
        match recorded {
            Recorded::Output(bytes) => {
                postcard::from_bytes(bytes)
                    .map(Ok)
                    .map_err(|e| JournalError::Undecodable {
                        path: self.path().to_owned(),
                        record: format!("output of task {}", id.0),
                        reason: e.to_string(),
                    })
            }
            Recorded::Failed(f) => Ok(Err(f.clone())),
        }
    }

    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<(), JournalError> {
        self.inner.writer.write(writes).await
    }
}

fn summaries(listed: Vec<crate::store::Listed>) -> Vec<TaskSummary> {
    listed
        .into_iter()
        .map(|l| {
            let (agent, key, submitted_ms, unreadable) = match l.task {
                Ok(t) => (t.agent, t.key, t.submitted_ms, None),
                Err(e) => (String::new(), None, 0, Some(e.to_string())),
            };
            let (outcome, ended_ms, message) = match l.outcome {
                None => (None, None, None),
                Some(Ok(o)) => match o.result {
                    Recorded::Output(_) => (Some("completed".to_owned()), Some(o.ended_ms), None),
                    Recorded::Failed(f) => (Some(f.outcome), Some(o.ended_ms), Some(f.message)),
                },
                Some(Err(e)) => (Some("undecodable".to_owned()), None, Some(e.to_string())),
            };
            let message = message.or(unreadable);
            TaskSummary {
                id: JournalId(l.id),
                agent,
                key,
                submitted_ms,
                outcome,
                ended_ms,
                message,
            }
        })
        .collect()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
