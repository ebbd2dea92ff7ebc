//! The two wire protocols: each turns a [`ChatRequest`] into its JSON body and decodes its
//! server-sent events back into a [`ChatResponse`], reporting deltas as they arrive.
//!
//! Decoding works on [`WireEvent`]s (an SSE event's name and data), so a recorded stream
//! replays through the very same decoder as a live one.

mod anthropic;
mod openai;

pub(crate) use anthropic::VERSION as ANTHROPIC_VERSION;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse, Delta};

/// A model provider's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI's chat completions, as also served by Ollama, vLLM, llama.cpp's server,
    /// OpenRouter and others (`POST {base}/chat/completions`).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API (`POST {base}/v1/messages`).
    Anthropic,
}

impl Provider {
    /// The provider's name, as manifests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The request path under the base URL.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/chat/completions",
            Provider::Anthropic => "/v1/messages",
        }
    }

    /// The request body (always streaming).
    pub(crate) fn encode(self, req: &ChatRequest) -> Value {
        match self {
            Provider::OpenAi => openai::encode(req),
            Provider::Anthropic => anthropic::encode(req),
        }
    }

    /// A decoder for the answer to `req`.
    pub(crate) fn decoder(self, req: &ChatRequest) -> Decoder {
        match self {
            Provider::OpenAi => Decoder::OpenAi(openai::Decoder::new(req)),
            Provider::Anthropic => Decoder::Anthropic(anthropic::Decoder::new(req)),
        }
    }

    /// The message of an error body, whatever its shape.
    pub(crate) fn error_message(self, body: &[u8]) -> String {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        json.as_ref()
            .and_then(|j| j.pointer("/error/message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| excerpt(&String::from_utf8_lossy(body)))
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One server-sent event: its name (Anthropic names them) and its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The `event:` field, if not the default `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `data:` field.
    pub data: String,
}

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DecodeError {
    /// A payload that does not parse.
    Malformed(String),
    /// The stream ended early.
    Cut(String),
    /// A finish reason the protocol does not define.
    UnknownFinish(String),
    /// The provider sent an error event mid-stream; `overloaded` if it asks to retry.
    Remote { message: String, overloaded: bool },
}

/// A decoder in progress.
#[derive(Debug)]
pub(crate) enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    /// Feeds one event; `Ok(true)` once the stream says it is complete.
    pub(crate) fn feed(
        &mut self,
        event: &WireEvent,
        on: &mut dyn FnMut(Delta),
    ) -> Result<bool, DecodeError> {
        match self {
            Decoder::OpenAi(d) => d.feed(event, on),
            Decoder::Anthropic(d) => d.feed(event, on),
        }
    }

    /// The answer, once the stream is complete.
    pub(crate) fn finish(self) -> Result<ChatResponse, DecodeError> {
        match self {
            Decoder::OpenAi(d) => d.finish(),
            Decoder::Anthropic(d) => d.finish(),
        }
    }
}

/// The first 120 characters of `s`, for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(120).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Tool arguments streamed as JSON text, parsed (an empty text is no arguments).
pub(crate) fn parse_arguments(tool: &str, text: &str) -> Result<Value, DecodeError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text).map_err(|e| {
        DecodeError::Malformed(format!(
            "the arguments of tool `{tool}` are not JSON ({e}): {}",
            excerpt(text)
        ))
    })
}
