use std::future::Future;

use crate::AgentContext;

/// A unit of work in a swarm: a user type that handles one task at a time.
///
/// The swarm runs each agent inside its own ractor actor, so `handle` takes `&mut self` and
/// never runs twice at once for the same agent; state needs no locks. The types a swarm
/// carries are shared by all of its agents: every agent of a `Swarm<T, O>` implements
/// `Agent<Task = T, Output = O>`, and each may have its own `Error`.
///
/// # What the swarm does with the result
///
/// - `Ok(output)` goes to the submitter.
/// - `Err(e)` goes to the submitter as [`TaskError::Agent`](crate::TaskError::Agent) (the
///   original error is inside, ready to downcast). The agent keeps running: an error is a
///   failed task, not a failed agent.
/// - A panic fails the task with [`TaskError::Panicked`](crate::TaskError::Panicked) and
///   stops the agent's actor, whose supervisor sees it fail; tasks still queued for that actor
///   end with [`TaskError::AgentStopped`](crate::TaskError::AgentStopped). Nothing is dropped
///   silently.
/// - A task cancelled or past its deadline while running has its `handle` future dropped at
///   its next `.await`.
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
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
///     async fn handle(&mut self, text: String, _ctx: &AgentContext<String, usize>) -> Result<usize, Self::Error> {
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
/// let n = swarm.submit("words", "to be or not to be".to_string()).await?.await?;
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
    /// agent's start (and with it the swarm's start).
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
