//! The number that names a task.

use std::fmt;

use serde::Serialize;

/// A task's number, unique within its swarm.
///
/// # Examples
///
/// ```
/// # use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
/// # struct Echo;
/// # impl Agent for Echo {
/// #     type Task = u8; type Output = u8; type Error = std::convert::Infallible;
/// #     async fn handle(&mut self, t: u8, _: &AgentContext<u8, u8>) -> Result<u8, Self::Error> { Ok(t) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let swarm = Swarm::builder().agent(AgentSpec::new("echo"), || Echo).start().await?;
/// let echo = swarm.agent::<u8, u8>("echo")?;
/// let first = echo.submit(1).await?;
/// let second = echo.submit(2).await?;
/// assert!(first.id() < second.id());
/// assert_eq!(first.id().to_string(), format!("task-{}", first.id().get()));
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A task number read back from outside (an event stream, a URL): it names a task only in
/// the swarm that gave it out.
impl From<u64> for TaskId {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}", self.0)
    }
}
