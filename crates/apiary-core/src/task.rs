//! Task identity, state and the handle a submitter holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::telemetry::AgentMetrics;
use crate::{AgentName, EventKind, Outcome, TaskError};

/// A task's number, unique within its swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}", self.0)
    }
}

/// Where a task is in its life. The last four are terminal: a task reaches exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TaskState {
    /// Waiting in its agent's queue.
    Queued = 0,
    /// Waiting in a paused agent's queue.
    Paused = 1,
    /// Being handled by the agent.
    Running = 2,
    /// Finished with an output.
    Completed = 3,
    /// Finished with an error (the agent's, a panic, or the agent stopping).
    Failed = 4,
    /// Cancelled through its handle.
    Cancelled = 5,
    /// Passed its deadline.
    TimedOut = 6,
}

impl TaskState {
    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        self as u8 >= Self::Completed as u8
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Queued,
            1 => Self::Paused,
            2 => Self::Running,
            3 => Self::Completed,
            4 => Self::Failed,
            5 => Self::Cancelled,
            _ => Self::TimedOut,
        }
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Completed => Self::Completed,
            Outcome::Failed | Outcome::Panicked | Outcome::AgentStopped => Self::Failed,
            Outcome::Cancelled => Self::Cancelled,
            Outcome::TimedOut => Self::TimedOut,
        }
    }
}

type Reply<O> = oneshot::Sender<Result<O, TaskError>>;

/// The state one task shares between its submitter, its agent and whoever ends it.
///
/// Whoever takes `reply` ends the task: that is what makes the result exactly-once.
pub(crate) struct TaskShared<O> {
    pub(crate) id: TaskId,
    pub(crate) agent: AgentName,
    replica: AtomicUsize,
    attempts: AtomicU32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: CancellationToken,
    pub(crate) span: tracing::Span,
    state: AtomicU8,
    reply: Mutex<Option<Reply<O>>>,
    submitted_at: Instant,
    started_at: OnceLock<Instant>,
    bus: Arc<EventBus>,
    metrics: Arc<AgentMetrics>,
}

impl<O> TaskShared<O> {
    pub(crate) fn new(
        id: TaskId,
        agent: AgentName,
        deadline: Option<Instant>,
        bus: Arc<EventBus>,
        metrics: Arc<AgentMetrics>,
    ) -> (Arc<Self>, oneshot::Receiver<Result<O, TaskError>>) {
        let (tx, rx) = oneshot::channel();
        metrics.accepted();
        let span = tracing::info_span!("apiary.task", task = id.0, agent = %agent);
        let shared = Arc::new(Self {
            id,
            agent,
            replica: AtomicUsize::new(0),
            attempts: AtomicU32::new(0),
            deadline,
            cancel: CancellationToken::new(),
            span,
            state: AtomicU8::new(TaskState::Queued as u8),
            reply: Mutex::new(Some(tx)),
            submitted_at: Instant::now(),
            started_at: OnceLock::new(),
            bus,
            metrics,
        });
        (shared, rx)
    }

    pub(crate) fn state(&self) -> TaskState {
        TaskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The replica the task was last handed to.
    pub(crate) fn replica(&self) -> usize {
        self.replica.load(Ordering::Relaxed)
    }

    pub(crate) fn set_replica(&self, replica: usize) {
        self.replica.store(replica, Ordering::Relaxed);
    }

    /// How many times the task was run again after its agent crashed on it.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Puts a waiting or crashed task back in line; false if it has ended meanwhile.
    pub(crate) fn requeue(&self) -> bool {
        [TaskState::Running, TaskState::Paused]
            .into_iter()
            .any(|from| self.transition(from, TaskState::Queued))
            || self.state() == TaskState::Queued
    }

    /// Counts a retry of a task whose agent crashed on it and puts it back in line.
    pub(crate) fn retry(&self) -> bool {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.requeue()
    }

    /// Moves a waiting task between queued and paused; false if it is no longer waiting.
    pub(crate) fn set_waiting(&self, paused: bool) -> bool {
        let (from, to) = if paused {
            (TaskState::Queued, TaskState::Paused)
        } else {
            (TaskState::Paused, TaskState::Queued)
        };
        self.transition(from, to) || self.state() == to
    }

    /// Marks the task running; false if it already ended (cancelled or timed out).
    pub(crate) fn start(&self) -> bool {
        let started = self.transition(TaskState::Queued, TaskState::Running)
            || self.transition(TaskState::Paused, TaskState::Running);
        if started {
            // A retried task keeps its first start time: `ran` spans every attempt.
            let _ = self.started_at.set(Instant::now());
            self.bus.publish(|| EventKind::TaskStarted {
                task: self.id,
                agent: self.agent.clone(),
                replica: self.replica(),
            });
        }
        started
    }

    /// Ends the task with `result` unless it has already ended. Returns whether this call
    /// ended it.
    pub(crate) fn finish(&self, outcome: Outcome, result: Result<O, TaskError>) -> bool {
        let Some(reply) = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return false;
        };
        self.state
            .store(TaskState::of(outcome) as u8, Ordering::Release);
        let now = Instant::now();
        let (queued, ran) = match self.started_at.get() {
            Some(&s) => (s - self.submitted_at, now - s),
            None => (now - self.submitted_at, std::time::Duration::ZERO),
        };
        self.metrics
            .finished(outcome, self.started_at.get().map(|_| ran));
        self.bus.publish(|| EventKind::TaskFinished {
            task: self.id,
            agent: self.agent.clone(),
            replica: self.replica(),
            outcome,
            queued,
            ran,
        });
        // Stop the agent working on a task nobody will read; harmless if already stopped.
        if matches!(outcome, Outcome::Cancelled | Outcome::TimedOut) {
            self.cancel.cancel();
        }
        // The submitter may have dropped its handle; the task still ended exactly once.
        let _ = reply.send(result);
        true
    }

    /// Ends the task silently because it was never accepted (the submission failed and the
    /// task went back to the caller).
    pub(crate) fn withdraw(&self) {
        if self
            .reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            self.metrics.withdrawn();
        }
        self.state.store(TaskState::Failed as u8, Ordering::Release);
    }

    pub(crate) fn time_out(&self) -> bool {
        self.finish(
            Outcome::TimedOut,
            Err(TaskError::TimedOut {
                agent: self.agent.clone(),
            }),
        )
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn transition(&self, from: TaskState, to: TaskState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// A submitted task: await it for the result, or cancel it.
///
/// Awaiting yields exactly one result: the agent's output, or a [`TaskError`] saying why
/// there is none. If the task has a deadline, awaiting returns [`TaskError::TimedOut`] at the
/// deadline even while the task still waits in a queue. Dropping the handle does not cancel
/// the task; it runs on and its result is discarded.
///
/// # Examples
///
/// ```
/// # use apiary_core::{Agent, AgentContext, AgentSpec, Swarm, TaskError};
/// # use std::time::Duration;
/// # struct Echo;
/// # impl Agent for Echo {
/// #     type Task = u64; type Output = u64; type Error = std::convert::Infallible;
/// #     async fn handle(&mut self, t: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> { Ok(t) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let swarm = Swarm::builder().agent(AgentSpec::new("echo"), || Echo).start().await?;
/// let handle = swarm.submit("echo", 7).await?;
/// println!("{} is {:?}", handle.id(), handle.state());
/// assert_eq!(handle.await?, 7);
///
/// let handle = swarm.submit("echo", 8).await?;
/// let canceller = handle.canceller();
/// canceller.cancel();
/// assert!(matches!(handle.await, Err(TaskError::Cancelled) | Ok(8)));
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "a task handle does nothing unless awaited; dropping it lets the task run detached"]
pub struct TaskHandle<O> {
    shared: Arc<TaskShared<O>>,
    rx: oneshot::Receiver<Result<O, TaskError>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<O> fmt::Debug for TaskHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.shared.id)
            .field("agent", &self.shared.agent)
            .field("state", &self.shared.state())
            .finish()
    }
}

impl<O> TaskHandle<O> {
    pub(crate) fn new(
        shared: Arc<TaskShared<O>>,
        rx: oneshot::Receiver<Result<O, TaskError>>,
    ) -> Self {
        let sleep = shared
            .deadline
            .map(|d| Box::pin(tokio::time::sleep_until(d)));
        Self { shared, rx, sleep }
    }

    /// The task's number.
    pub fn id(&self) -> TaskId {
        self.shared.id
    }

    /// The agent the task was given to.
    pub fn agent(&self) -> &AgentName {
        &self.shared.agent
    }

    /// Which replica of the agent has the task (the last one, if it was delivered again
    /// after a crash).
    pub fn replica(&self) -> usize {
        self.shared.replica()
    }

    /// The task's state now.
    pub fn state(&self) -> TaskState {
        self.shared.state()
    }

    /// The deadline, if the task has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline
    }

    /// Cancels the task: a queued task never runs, a running one has its `handle` future
    /// dropped. Returns false if the task had already ended.
    pub fn cancel(&self) -> bool {
        cancel(&self.shared)
    }

    /// A cloneable handle that can cancel the task from elsewhere while this one is awaited.
    pub fn canceller(&self) -> TaskCanceller
    where
        O: Send + 'static,
    {
        TaskCanceller {
            inner: self.shared.clone(),
        }
    }
}

fn cancel<O>(shared: &TaskShared<O>) -> bool {
    shared.finish(Outcome::Cancelled, Err(TaskError::Cancelled))
}

impl<O> Future for TaskHandle<O> {
    type Output = Result<O, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(r) = Pin::new(&mut this.rx).poll(cx) {
            return Poll::Ready(r.unwrap_or_else(|_| {
                // The reply was dropped unsent: only possible if the runtime itself vanished.
                Err(TaskError::AgentStopped {
                    agent: this.shared.agent.clone(),
                })
            }));
        }
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                this.sleep = None;
                // Whoever ended the task first has already sent its result; either way the
                // channel now holds exactly one.
                this.shared.time_out();
                return Pin::new(&mut this.rx).poll(cx).map(|r| {
                    r.unwrap_or_else(|_| {
                        Err(TaskError::TimedOut {
                            agent: this.shared.agent.clone(),
                        })
                    })
                });
            }
        }
        Poll::Pending
    }
}

/// Cancels one task from anywhere; cheap to clone.
///
/// # Examples
///
/// See [`TaskHandle`].
pub struct TaskCanceller {
    inner: Arc<dyn Cancel>,
}

impl fmt::Debug for TaskCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCanceller").finish_non_exhaustive()
    }
}

impl Clone for TaskCanceller {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl TaskCanceller {
    /// Cancels the task; false if it had already ended.
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }
}

trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
}

impl<O: Send> Cancel for TaskShared<O> {
    fn cancel(&self) -> bool {
        cancel(self)
    }
}
