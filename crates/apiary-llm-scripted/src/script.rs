//! What the server answers: rules matched on a conversation's first user message, one reply
//! per turn, and the faults a real provider shows (status codes, cut streams, bad JSON, slow
//! starts).

use std::time::Duration;

use serde_json::Value;

/// The answers of a [`ScriptedServer`](crate::ScriptedServer).
///
/// A conversation is matched by its first user message: the first rule whose text it
/// contains answers it. Its turn (how many assistant messages the request already holds)
/// picks the reply, so the replies of a tool loop are given in order, and concurrent
/// conversations never take each other's.
///
/// ```
/// use apiary_llm_scripted::{Reply, Script};
/// use serde_json::json;
///
/// let script = Script::new()
///     .on("weather", [Reply::tool_call("forecast", json!({ "city": "Oslo" })), Reply::text("rain")])
///     .on("flaky", [Reply::attempts([Reply::status(500), Reply::text("fine now")])]);
/// # let _ = script;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub(crate) rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) when: String,
    pub(crate) turns: Vec<Reply>,
}

impl Script {
    /// A script with no rules: every request gets the "no script" answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers conversations whose first user message contains `when`, turn by turn (the
    /// last reply repeats for later turns).
    pub fn on(mut self, when: impl Into<String>, turns: impl IntoIterator<Item = Reply>) -> Self {
        self.rules.push(Rule {
            when: when.into(),
            turns: turns.into_iter().collect(),
        });
        self
    }

    /// The rule for a conversation starting with `first`, if any.
    pub(crate) fn rule(&self, first: &str) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| first.contains(&r.when))
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Reply {
    /// A text answer, streamed a few words at a time; it always starts with `[scripted]`.
    Text(String),
    /// A call of the tool `name` with these arguments.
    ToolCall {
        /// The tool.
        name: String,
        /// Its arguments (a JSON object).
        arguments: Value,
    },
    /// A structured answer: this JSON as the text (or, when the request forces a tool, as
    /// that tool's input). The response's id and fingerprint say it is scripted.
    Json(Value),
    /// An error status with the provider's error body; `retry_after` sets `Retry-After`.
    Status {
        /// The HTTP status.
        code: u16,
        /// Seconds for `Retry-After`.
        retry_after: Option<u64>,
    },
    /// Starts streaming `text`, then breaks the connection mid-way.
    CutStream(String),
    /// Streams a chunk that is not JSON.
    Malformed,
    /// A well-formed stream whose finish reason is not one the protocol defines.
    UnknownFinish,
    /// Waits `delay` before the response starts, then answers with the inner reply.
    Slow(Duration, Box<Reply>),
    /// Successive attempts of the same turn (a retry gets the next; the last repeats).
    Attempts(Vec<Reply>),
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text(text.into())
    }

    /// A tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Reply::ToolCall {
            name: name.into(),
            arguments,
        }
    }

    /// An error status without `Retry-After`.
    pub fn status(code: u16) -> Self {
        Reply::Status {
            code,
            retry_after: None,
        }
    }

    /// `429 Too Many Requests` with `Retry-After: seconds`.
    pub fn rate_limited(seconds: u64) -> Self {
        Reply::Status {
            code: 429,
            retry_after: Some(seconds),
        }
    }

    /// `reply`, after `delay`.
    pub fn slow(delay: Duration, reply: Reply) -> Self {
        Reply::Slow(delay, Box::new(reply))
    }

    /// Successive attempts of one turn.
    pub fn attempts(replies: impl IntoIterator<Item = Reply>) -> Self {
        Reply::Attempts(replies.into_iter().collect())
    }
}

/// The text every scripted text answer starts with.
pub const SCRIPTED: &str = "[scripted]";

/// `text`, marked as scripted.
pub(crate) fn marked(text: &str) -> String {
    if text.starts_with(SCRIPTED) {
        text.to_owned()
    } else {
        format!("{SCRIPTED} {text}")
    }
}
