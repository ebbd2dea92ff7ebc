use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A value attached to a task, shared with every hop it is handed on to.
pub(crate) type Attachment = Arc<dyn Any + Send + Sync>;

/// How a task is submitted: its deadline, whether to wait for room in a full queue, and a
/// value attached to it for the agent to read.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apiary_core::SubmitOptions;
///
/// // Fail fast with `Busy` instead of waiting, and give up after 2 s.
/// let opts = SubmitOptions::new().no_wait().timeout(Duration::from_secs(2));
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct SubmitOptions {
    pub(crate) deadline: Option<Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) wait: bool,
    pub(crate) attachment: Option<Attachment>,
}

impl fmt::Debug for SubmitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitOptions")
            .field("deadline", &self.deadline)
            .field("timeout", &self.timeout)
            .field("wait", &self.wait)
            .field("attachment", &self.attachment.is_some())
            .finish()
    }
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            timeout: None,
            wait: true,
            attachment: None,
        }
    }
}

impl SubmitOptions {
    /// Waits for room, with the agent's default deadline (if any).
    pub fn new() -> Self {
        Self::default()
    }

    /// The task must finish by `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The task must finish within `timeout` of being submitted. An explicit
    /// [`deadline`](Self::deadline) wins over this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long the task may take from now, as these options say (the agent's default
    /// timeout aside): the time to the deadline, or the timeout.
    pub fn expires_in(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .or(self.timeout)
    }

    /// Fail with `Busy` instead of waiting when the agent's queue is full.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// Attaches a value to the task, which the agent reads with
    /// [`AgentContext::attached`](crate::AgentContext::attached) (as does any peer the task is
    /// handed on to): a request id, a trace, a durable journal's record of the task. One value
    /// per task; a second replaces the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use apiary_core::{Agent, AgentContext, AgentSpec, SubmitOptions, Swarm};
    ///
    /// /// Who asked for the task.
    /// struct Requester(&'static str);
    ///
    /// struct Greeter;
    /// impl Agent for Greeter {
    ///     type Task = ();
    ///     type Output = String;
    ///     type Error = std::convert::Infallible;
    ///     async fn handle(&mut self, (): (), ctx: &AgentContext<(), String>) -> Result<String, Self::Error> {
    ///         let who = ctx.attached::<Requester>().map_or("nobody", |r| r.0);
    ///         Ok(format!("hello, {who}"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let swarm = Swarm::builder().agent(AgentSpec::new("greeter"), || Greeter).start().await?;
    /// let greeter = swarm.agent::<(), String>("greeter")?;
    /// let options = SubmitOptions::new().attach(Requester("ada"));
    /// assert_eq!(greeter.submit_with((), options).await?.await?, "hello, ada");
    /// assert_eq!(greeter.submit(()).await?.await?, "hello, nobody");
    /// # swarm.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn attach<V: Any + Send + Sync>(mut self, value: V) -> Self {
        self.attachment = Some(Arc::new(value));
        self
    }
}
