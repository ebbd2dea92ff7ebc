//! Model-calling agents for apiary.
//!
//! - [`Endpoint`]: an OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM,
//!   llama.cpp's server, OpenRouter: base URL, model, optional key) or Anthropic's Messages
//!   API, always streamed; with a limiter shared by its callers (concurrency, requests and
//!   tokens per minute, and a pause when the provider says `Retry-After`), timeouts, retries,
//!   and a cassette to record calls to or replay them from.
//! - [`LlmAgent`]: an [`Agent`](apiary_core::Agent) whose task is a [`Prompt`] and whose
//!   output is a [`Completion`]: the model runs in a loop with its [`Tool`]s (Rust functions
//!   with [`tool_fn`], other agents of the swarm with [`PeerTool`]) up to a turn limit, may be
//!   asked for a structured answer, and can be switched to another model at run time
//!   ([`ModelSwitch`]).
//! - [`Budget`]s in tokens and money per task, per agent and per swarm ([`SwarmBudget`]),
//!   enforced before each call by reserving its worst case; [`Prices`] turn usage into money.
//! - Usage and cost of every call in events (`llm.delta`, `llm.call`, `llm.tool`,
//!   `llm.budget`, through [`AgentContext::emit`](apiary_core::AgentContext::emit)), in the
//!   [`Completion`], and in Prometheus.
//! - In a journaled task (see `apiary-journal`) every call and tool result is a recorded step:
//!   a task delivered again after a crash does not send its finished calls again.
//!
//! `docs/llm.md` says how to point it at a provider, and what each setting does.
#![deny(missing_docs)]

mod agent;
mod budget;
mod cassette;
mod chat;
mod endpoint;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "memory")]
mod learn;
mod limiter;
mod money;
mod provider;
mod sse;
mod sync;
mod tool;

pub use agent::{
    Completion, Finisher, LlmAgent, LlmAgentBuilder, ModelSwitch, Prompt, Route, SwarmBudget,
    ToolUse,
};
pub use budget::{Budget, BudgetExceeded, Limits, Reservation, Resource};
pub use chat::{
    ChatRequest, ChatResponse, Delta, Finish, Message, Part, ResponseSchema, Role, ToolSpec, Usage,
};
pub use endpoint::{Endpoint, EndpointBuilder, RetryPolicy, Timeouts};
pub use error::LlmError;
pub use limiter::RateLimits;
pub use money::{Money, Price, Prices};
pub use provider::{Provider, WireEvent};
pub use tool::{tool_fn, FnTool, PeerTool, Tool, ToolFuture};
