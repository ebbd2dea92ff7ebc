//! Tools a model may call: plain Rust functions, and peers of the swarm.
//!
//! A tool's failure goes back to the model as a tool error (it may try otherwise); it never
//! fails the task by itself. A peer tool sends a task through the swarm's topology, from the
//! calling agent, with the calling task's deadline: a route the topology refuses is a tool
//! error, and cancelling the calling task cancels the peer's.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use apiary_core::{Caller, SubmitOptions, TaskCanceller};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::agent::Completion;
use crate::chat::ToolSpec;

/// A boxed future of a tool's result: its text, or an error message for the model.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Something a model can call.
///
/// Implement it for tools with state; [`tool_fn`] wraps a closure and [`PeerTool`] a peer.
pub trait Tool: Send + Sync + 'static {
    /// Its name, description and argument schema, as the model sees them.
    fn spec(&self) -> ToolSpec;

    /// Runs it with the model's arguments, inside the calling agent's task.
    fn call<'a>(&'a self, arguments: Value, ctx: &'a Caller) -> ToolFuture<'a>;
}

/// A tool made of an async function from the model's arguments to a result.
pub struct FnTool<F> {
    spec: ToolSpec,
    f: F,
}

impl<F> std::fmt::Debug for FnTool<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool")
            .field("name", &self.spec.name)
            .finish()
    }
}

/// A tool that runs `f` on the model's arguments.
///
/// ```
/// use apiary_llm::tool_fn;
/// use serde_json::json;
///
/// let add = tool_fn(
///     "add",
///     "Adds two integers.",
///     json!({ "type": "object",
///             "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } },
///             "required": ["a", "b"] }),
///     |args| async move {
///         let (a, b) = (args["a"].as_i64(), args["b"].as_i64());
///         match (a, b) {
///             (Some(a), Some(b)) => Ok((a + b).to_string()),
///             _ => Err("a and b must be integers".to_owned()),
///         }
///     },
/// );
/// # let _ = add;
/// ```
pub fn tool_fn<F, Fut>(
    name: impl Into<String>,
    description: impl Into<String>,
    parameters: Value,
    f: F,
) -> FnTool<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    FnTool {
        spec: ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        },
        f,
    }
}

impl<F, Fut> Tool for FnTool<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn call<'a>(&'a self, arguments: Value, _: &'a Caller) -> ToolFuture<'a> {
        Box::pin((self.f)(arguments))
    }
}

/// Another agent of the swarm as a tool: the model's arguments are decoded into the peer's
/// task type `T`, sent through the topology, and the peer's output `O` is the result.
///
/// ```
/// use apiary_llm::{Completion, PeerTool, Prompt};
///
/// // Another LLM agent: the model calls it with `{"prompt": "..."}`.
/// let reviewer = PeerTool::<Prompt, Completion>::new("reviewer", "Reviews a patch.");
/// // Any typed agent, with the schema of its task.
/// let tests = PeerTool::<String, String>::new("tests", "Runs the tests of a crate.")
///     .parameters(serde_json::json!({ "type": "string" }));
/// # let _ = (reviewer, tests);
/// ```
pub struct PeerTool<T, O> {
    spec: ToolSpec,
    agent: String,
    _types: PhantomData<fn(T) -> O>,
}

impl<T, O> std::fmt::Debug for PeerTool<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTool")
            .field("agent", &self.agent)
            .finish()
    }
}

impl<T, O> PeerTool<T, O> {
    /// The peer `agent`, offered to the model under its own name. The arguments default to
    /// `{"prompt": string}` (an LLM peer's [`Prompt`](crate::Prompt)); set others with
    /// [`parameters`](Self::parameters).
    pub fn new(agent: impl Into<String>, description: impl Into<String>) -> Self {
        let agent = agent.into();
        Self {
            spec: ToolSpec {
                name: agent.clone(),
                description: description.into(),
                parameters: json!({
                    "type": "object",
                    "properties": { "prompt": { "type": "string", "description": "What to ask." } },
                    "required": ["prompt"],
                }),
            },
            agent,
            _types: PhantomData,
        }
    }

    /// The JSON Schema of the peer's task, as the model must give it. A schema that is not
    /// an object is wrapped as `{"input": <schema>}` (both protocols want objects).
    pub fn parameters(mut self, schema: Value) -> Self {
        self.spec.parameters = if schema.get("type").and_then(Value::as_str) == Some("object") {
            schema
        } else {
            json!({ "type": "object", "properties": { "input": schema }, "required": ["input"] })
        };
        self
    }

    fn wraps_input(&self) -> bool {
        self.spec.parameters.pointer("/properties/input").is_some()
            && self.spec.parameters.pointer("/properties/prompt").is_none()
    }
}

/// Cancels the peer's task if the calling task is dropped while waiting for it.
struct CancelOnDrop(Option<TaskCanceller>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

impl<T, O> Tool for PeerTool<T, O>
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn call<'a>(&'a self, arguments: Value, ctx: &'a Caller) -> ToolFuture<'a> {
        Box::pin(async move {
            let agent = &self.agent;
            let arguments = if self.wraps_input() {
                arguments.get("input").cloned().unwrap_or(Value::Null)
            } else {
                arguments
            };
            let task: T = serde_json::from_value(arguments)
                .map_err(|e| format!("the arguments do not fit agent `{agent}`'s task: {e}"))?;
            let peer = ctx.agent::<T, O>(agent).map_err(|e| e.to_string())?;
            let options = match ctx.deadline() {
                Some(d) => SubmitOptions::new().deadline(d),
                None => SubmitOptions::new(),
            };
            let handle = peer
                .submit_with(task, options)
                .await
                .map_err(|refused| format!("cannot call agent `{agent}`: {}", refused.kind()))?;
            let mut guard = CancelOnDrop(Some(handle.canceller()));
            let output = handle.await;
            guard.0 = None;
            let output = output.map_err(|e| format!("agent `{agent}` failed: {e}"))?;
            // Another model's answer is its text; the rest (usage, cost) is not for the model.
            if let Some(c) = (&output as &dyn std::any::Any).downcast_ref::<Completion>() {
                return Ok(c.text.clone());
            }
            match serde_json::to_value(&output) {
                Ok(Value::String(s)) => Ok(s),
                Ok(v) => Ok(v.to_string()),
                Err(e) => Err(format!("agent `{agent}`'s output does not encode: {e}")),
            }
        })
    }
}

/// The tools of an agent, by name.
#[derive(Clone, Default)]
pub(crate) struct Tools(pub(crate) Vec<Arc<dyn Tool>>);

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| t.spec().name))
            .finish()
    }
}

impl Tools {
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.0.iter().map(|t| t.spec()).collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.0.iter().find(|t| t.spec().name == name)
    }
}
