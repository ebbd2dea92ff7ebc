//! A conversation with a model, whatever the provider: messages of text, tool calls and tool
//! results; a request; a response with its finish reason and usage.
//!
//! Each provider module translates these to and from its own wire format, so agents, tools,
//! budgets and the replay cassette see one shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who said a message (the system prompt is [`ChatRequest::system`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The caller: prompts and tool results.
    User,
    /// The model: text and tool calls.
    Assistant,
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// The model calls a tool.
    ToolCall {
        /// The call's id, quoted by its result.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments (a JSON object).
        arguments: Value,
    },
    /// A tool's answer to a call.
    ToolResult {
        /// The call answered.
        id: String,
        /// The result, as text (JSON for structured results).
        content: String,
        /// Whether the tool failed (the model is told, and may try otherwise).
        is_error: bool,
    },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Vec<Part>,
}

impl Message {
    /// A user message of plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Part::Text { text: text.into() }],
        }
    }

    /// The text parts of the message, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Its arguments, as a JSON Schema object.
    pub parameters: Value,
}

/// A structured answer the model must give: JSON matching a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// A name for the schema.
    pub name: String,
    /// The JSON Schema.
    pub schema: Value,
}

/// One call of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model.
    pub model: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The tools offered.
    pub tools: Vec<ToolSpec>,
    /// The most tokens the answer may have.
    pub max_tokens: u32,
    /// Sampling temperature, if set.
    pub temperature: Option<f32>,
    /// A structured answer, if wanted.
    pub response: Option<ResponseSchema>,
}

impl ChatRequest {
    /// A deliberately high estimate of the prompt's tokens, for reserving budget before the
    /// call: one token per three bytes of text (tokenizers average about four), four per
    /// message and the tool definitions.
    pub fn estimate_input_tokens(&self) -> u64 {
        let mut bytes = self.system.as_ref().map_or(0, String::len);
        for m in &self.messages {
            for p in &m.content {
                bytes += match p {
                    Part::Text { text } => text.len(),
                    Part::ToolCall {
                        name, arguments, ..
                    } => name.len() + arguments.to_string().len(),
                    Part::ToolResult { content, .. } => content.len(),
                };
            }
        }
        for t in &self.tools {
            bytes += t.name.len() + t.description.len() + t.parameters.to_string().len();
        }
        if let Some(r) = &self.response {
            bytes += r.schema.to_string().len();
        }
        (bytes as u64).div_ceil(3) + 4 * self.messages.len() as u64 + 16
    }

    /// The worst case of a call: the prompt estimate and every answer token allowed.
    pub fn worst_case_tokens(&self) -> u64 {
        self.estimate_input_tokens() + u64::from(self.max_tokens)
    }
}

/// Why a model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// It finished its answer.
    Stop,
    /// It reached `max_tokens`.
    Length,
    /// It wants tools called.
    ToolCalls,
    /// The provider's filter stopped it (or the model refused).
    Refused,
}

/// Tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache (a part of `input_tokens`).
    pub cached_input_tokens: u64,
}

impl Usage {
    /// Input and output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
    }
}

/// A model's answer to one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that answered, as the provider names it.
    pub model: String,
    /// Text and tool calls.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub finish: Finish,
    /// Tokens used.
    pub usage: Usage,
}

impl ChatResponse {
    /// The text parts, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The tool calls: `(id, name, arguments)`.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments)),
            _ => None,
        })
    }
}

/// A piece of an answer as it streams in.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// More text.
    Text(String),
    /// A tool call has begun.
    ToolCall {
        /// The tool.
        name: String,
    },
}
