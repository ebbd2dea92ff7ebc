//! [`Caller`]: an agent's context without its task and output types.
//!
//! Libraries that serve agents of any types - a model-calling loop, a tool that calls a peer,
//! a recorded step - take a `&Caller` instead of a generic `&AgentContext<T, O>`: it can
//! name the agent, read the task's deadline and attachments, publish events, reach the
//! swarm's resources and send to peers through the topology, everything that does not need
//! the agent's own types. Get one with [`AgentContext::caller`].

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use tokio::time::Instant;

use crate::agent_ref::AgentRef;
use crate::context::{AgentContext, Base};
use crate::error::LookupError;
use crate::name::AgentName;
use crate::resources::MissingResource;
use crate::signal::Signal;
use crate::spec::AgentSpec;
use crate::submit::Attachment;
use crate::task::TaskShared;
use crate::task_id::TaskId;

/// What a [`Caller`] sees of the task being handled, whatever its output type.
pub(crate) trait TaskView: Send + Sync {
    fn id(&self) -> TaskId;
    fn deadline(&self) -> Option<Instant>;
    fn attachment(&self) -> Option<&Attachment>;
    fn stop(&self) -> &Signal;
}

impl<O: Send + 'static> TaskView for TaskShared<O> {
    fn id(&self) -> TaskId {
        self.id
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn attachment(&self) -> Option<&Attachment> {
        self.attachment.as_ref()
    }
    fn stop(&self) -> &Signal {
        self.stop_signal()
    }
}

/// An agent's context with its task types erased: for libraries that serve agents of any
/// types (a model-calling loop, a tool that calls a peer, a recorded step). Get one with
/// [`AgentContext::caller`].
///
/// ```
/// use apiary_core::{Agent, AgentContext, Caller};
///
/// /// Works for an agent of any types.
/// fn trace(caller: &Caller, what: &str) {
///     caller.emit("trace", || serde_json::json!({ "agent": caller.name().as_str(), "what": what }));
/// }
///
/// struct Echo;
/// impl Agent for Echo {
///     type Task = String;
///     type Output = String;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, s: String, ctx: &AgentContext<String, String>) -> Result<String, Self::Error> {
///         trace(&ctx.caller(), "echo");
///         Ok(s)
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Caller {
    base: Arc<Base>,
    task: Option<Arc<dyn TaskView>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.base.name)
            .field("task", &self.task_id())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, O: Send + 'static> AgentContext<T, O> {
    /// This context with its task types erased, for code that serves agents of any types
    /// (see [`Caller`]).
    pub fn caller(&self) -> Caller {
        let task = self.task.clone().map(|t| t as Arc<dyn TaskView>);
        Caller {
            base: Arc::clone(&self.base),
            task,
        }
    }
}

impl Caller {
    /// The agent's name.
    pub fn name(&self) -> &AgentName {
        &self.base.name
    }

    /// Which replica of the agent this is (0-based).
    pub fn replica(&self) -> usize {
        self.base.replica
    }

    /// The agent's spec.
    pub fn spec(&self) -> &AgentSpec {
        &self.base.spec
    }

    /// The number of the task being handled; `None` outside `handle`.
    pub fn task_id(&self) -> Option<TaskId> {
        self.task.as_ref().map(|t| t.id())
    }

    /// What the submitter attached to the task being handled, if it is a `V`.
    pub fn attached<V: Any>(&self) -> Option<&V> {
        self.task.as_ref()?.attachment()?.downcast_ref::<V>()
    }

    /// The deadline of the task being handled, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.task.as_ref().and_then(|t| t.deadline())
    }

    /// Whether the task being handled must stop (see [`AgentContext::is_cancelled`]).
    ///
    pub fn is_cancelled(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.stop().is_raised())
    }

    /// Completes when the task being handled must stop; never, outside a task.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        match &self.task {
            Some(t) => t.stop().raised().await,
            None => std::future::pending().await,
        }
    }

    /// A typed reference to a peer, checked against the topology on each submit, as
    /// [`AgentContext::agent`].
    ///
    /// # Errors
    ///
    /// [`LookupError`] if no agent has this name or it runs other types.
    pub fn agent<T: Send + 'static, O: Send + 'static>(
        &self,
        name: &str,
    ) -> Result<AgentRef<T, O>, LookupError> {
        self.base.peer(name)
    }

    /// Publishes an event of the agent's own, as [`AgentContext::emit`].
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        self.base.emit(self.task_id(), name.into(), data);
    }

    /// The swarm's approval gates ([`Approvals`](crate::Approvals)): ask a person before
    /// work that needs one.
    pub fn approvals(&self) -> &crate::Approvals {
        &self.base.rt.approvals
    }

    /// A resource the swarm was given, by type.
    ///
    /// # Errors
    ///
    /// [`MissingResource`], naming the type, if the swarm has none of that type.
    pub fn resource<R: Send + Sync + 'static>(&self) -> Result<&R, MissingResource> {
        self.base.rt.resources.get::<R>()
    }
}
