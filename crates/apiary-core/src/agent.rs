//! The `Agent` trait: what a user type implements to run in a swarm.

use std::future::Future;

use crate::AgentContext;

/// The context an agent of type `A` is handed: short for
/// `AgentContext<A::Task, A::Output>`.
pub type Ctx<A> = AgentContext<<A as Agent>::Task, <A as Agent>::Output>;

/// A unit of work in a swarm: a user type that handles one task at a time.
///
/// Each agent has its own task, output and error types; agents of many kinds live in one
/// swarm, and callers reach each through a typed [`AgentRef`](crate::AgentRef). The swarm
/// runs each agent replica inside its own ractor actor, so `handle` takes `&mut self` and
/// never runs twice at once for the same replica; state needs no locks.
///
/// # What the swarm does with the result
///
/// - `Ok(output)` goes to the submitter.
/// - `Err(e)` goes to the submitter as [`TaskError::Agent`](crate::TaskError::Agent) (the
///   original error is inside, ready to downcast). The agent keeps running: an error is a
///   failed task, not a failed agent; its replica's circuit breaker counts it.
/// - A panic fails the task with [`TaskError::Panicked`](crate::TaskError::Panicked) (or runs
///   it again on a restarted replica, within the spec's `max_retries`) and stops the agent's
///   actor, whose supervisor restarts it by its restart type, backoff and intensity. Tasks
///   queued for that actor wait for the restart. Nothing is dropped silently.
/// - A task cancelled, past its deadline, or handed on while running has its `handle` future
///   dropped at its next `.await`.
///
/// # Deadlocks
///
/// Awaiting a peer's result inside `handle` holds this agent until the peer answers. A cycle
/// of such awaits (a ring where each agent awaits its successor, two agents awaiting each
/// other) deadlocks: each agent's queue waits behind a task that waits for the other. Hand
/// the task on instead ([`AgentContext::hand_off`]): the peer's result completes this task,
/// and this agent takes its next task at once. See
/// [`AgentContext`'s deadlock notes](crate::AgentContext#deadlocks).
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentSpec, Ctx, Swarm};
///
/// /// Counts words; remembers how many texts it has seen.
/// #[derive(Default)]
/// struct WordCount {
///     seen: usize,
/// }
///
/// impl Agent for WordCount {
///     type Task = String;
///     type Output = usize;
///     type Error = std::convert::Infallible;
///
///     async fn handle(&mut self, text: String, _ctx: &Ctx<Self>) -> Result<usize, Self::Error> {
///         self.seen += 1;
///         Ok(text.split_whitespace().count())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("words"), WordCount::default)
///     .start()
///     .await?;
/// let words = swarm.agent::<String, usize>("words")?;
/// let n = words.submit("to be or not to be".to_string()).await?.await?;
/// assert_eq!(n, 6);
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub trait Agent: Send + 'static {
    /// What the agent is given.
    type Task: Send + 'static;
    /// What it gives back.
    type Output: Send + 'static;
    /// How it fails a task: any error type, or a [`BoxError`](crate::BoxError) for several.
    type Error: Into<crate::BoxError> + Send + 'static;

    /// Handles one task.
    fn handle(
        &mut self,
        task: Self::Task,
        ctx: &AgentContext<Self::Task, Self::Output>,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Runs once when the agent's actor starts, before it takes any task. An error fails the
    /// agent's start (and with it the swarm's start, which reports this error as its source).
    fn started(
        &mut self,
        ctx: &AgentContext<Self::Task, Self::Output>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs once when the agent is stopped on request, after its queue has drained. Not
    /// called after a panic.
    fn stopping(
        &mut self,
        ctx: &AgentContext<Self::Task, Self::Output>,
    ) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}
