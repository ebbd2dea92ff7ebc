use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

use super::shared::TaskShared;
use super::TaskState;
use crate::{AgentName, Outcome, TaskError, TaskId};

/// A submitted task: await it for the result, or cancel it.
///
/// Awaiting yields exactly one result: the agent's output, or a [`TaskError`] saying why
/// there is none. If the task has a deadline, awaiting returns [`TaskError::TimedOut`] at the
/// deadline even while the task still waits in a queue. If the agent handed the task on to a
/// peer, the handle yields the peer's result, and cancelling it cancels the peer's task.
/// Dropping the handle does not cancel the task; it runs on and its result is discarded.
///
/// # Examples
///
/// ```
/// # use apiary_core::{Agent, AgentContext, AgentSpec, Swarm, TaskError, TaskState};
/// # use std::sync::Arc;
/// # use tokio::sync::Semaphore;
/// /// Waits for a permit, then echoes.
/// struct Gate(Arc<Semaphore>);
/// impl Agent for Gate {
///     type Task = u64;
///     type Output = u64;
///     type Error = tokio::sync::AcquireError;
///     async fn handle(&mut self, t: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
///         let _permit = self.0.acquire().await?;
///         Ok(t)
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gate = Arc::new(Semaphore::new(0));
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("gate"), { let g = gate.clone(); move || Gate(g.clone()) })
///     .start()
///     .await?;
/// let agent = swarm.agent::<u64, u64>("gate")?;
///
/// // The first task holds the agent until the gate opens; the second waits behind it.
/// let first = agent.submit(7).await?;
/// let second = agent.submit(8).await?;
/// assert_eq!(second.state(), TaskState::Queued);
///
/// // Cancelled while queued: it never runs.
/// let canceller = second.canceller();
/// assert!(canceller.cancel());
/// assert!(matches!(second.await, Err(TaskError::Cancelled)));
///
/// gate.add_permits(1);
/// assert_eq!(first.await?, 7);
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "a task handle does nothing unless awaited; dropping it lets the task run detached"]
pub struct TaskHandle<O> {
    shared: Arc<TaskShared<O>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<O> fmt::Debug for TaskHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.shared.id)
            .field("agent", self.shared.agent())
            .field("state", &self.shared.chain_state())
            .finish()
    }
}

impl<O> TaskHandle<O> {
    pub(crate) fn new(shared: Arc<TaskShared<O>>) -> Self {
        let sleep = shared
            .deadline
            .map(|d| Box::pin(tokio::time::sleep_until(d)));
        Self { shared, sleep }
    }

    /// The task's number.
    pub fn id(&self) -> TaskId {
        self.shared.id
    }

    /// The agent the task was given to.
    pub fn agent(&self) -> &AgentName {
        self.shared.agent()
    }

    /// Which replica of the agent has the task (the last one, if it was delivered again
    /// after a crash).
    pub fn replica(&self) -> usize {
        self.shared.replica()
    }

    /// The task's state now. After its agent handed it on, the state of the peer's task
    /// that carries it.
    pub fn state(&self) -> TaskState {
        self.shared.chain_state()
    }

    /// The deadline, if the task has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline
    }

    /// Cancels the task: a queued task never runs, a running one has its `handle` future
    /// dropped. Returns false if the task had already ended.
    pub fn cancel(&self) -> bool {
        self.shared.end_chain(Outcome::Cancelled)
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

impl<O> Future for TaskHandle<O> {
    type Output = Result<O, TaskError>;

    /// # Panics
    ///
    /// If polled again after it completed.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(answer) = this.shared.poll_answer() {
            return Poll::Ready(answer);
        }
        // Registered before looking again: an answer put in place after the look wakes us.
        this.shared.register(cx.waker());
        if let Poll::Ready(answer) = this.shared.poll_answer() {
            return Poll::Ready(answer);
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.sleep = None;
            // Whoever ended the task first has already answered; either way the answer
            // is in place now.
            this.shared.end_chain(Outcome::TimedOut);
            return this.shared.poll_answer();
        }
        Poll::Pending
    }
}

/// Cancels one task from anywhere; cheap to clone.
///
/// # Examples
///
/// See [`TaskHandle`].
#[derive(Clone)]
pub struct TaskCanceller {
    inner: Arc<dyn Cancel>,
}

impl fmt::Debug for TaskCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCanceller").finish_non_exhaustive()
    }
}

impl TaskCanceller {
    /// Cancels the task; false if it had already ended.
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// Whether the task has ended (however it ended).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
    fn is_finished(&self) -> bool;
}

impl<O: Send> Cancel for TaskShared<O> {
    fn cancel(&self) -> bool {
        self.end_chain(Outcome::Cancelled)
    }

    fn is_finished(&self) -> bool {
        self.chain_state().is_terminal()
    }
}
