//! Anthropic Messages: request body and named stream events.
//!
//! A stream is `message_start` (with the input usage), then per content block a
//! `content_block_start`, its deltas (`text_delta`, `input_json_delta`) and a
//! `content_block_stop`, then `message_delta` (stop reason, output usage) and `message_stop`.
//! `ping`s and event types this decoder does not know are skipped, as the API asks.
//!
//! A structured answer is asked for the documented way: a tool whose input schema is the
//! answer's, forced with `tool_choice`; its input becomes the answer's text.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{excerpt, parse_arguments, DecodeError, WireEvent};
use crate::chat::{ChatRequest, ChatResponse, Delta, Finish, Part, Role, Usage};

/// The API version spoken.
pub(crate) const VERSION: &str = "2023-06-01";

pub(super) fn encode(req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let blocks: Vec<Value> = m
                .content
                .iter()
                .map(|p| match p {
                    Part::Text { text } => json!({ "type": "text", "text": text }),
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } => json!({ "type": "tool_use", "id": id, "name": name, "input": arguments }),
                    Part::ToolResult {
                        id,
                        content,
                        is_error,
                    } => json!({ "type": "tool_result", "tool_use_id": id,
                                 "content": content, "is_error": is_error }),
                })
                .collect();
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({ "role": role, "content": blocks })
        })
        .collect();
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(system) = &req.system {
        body["system"] = json!(system);
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
        .collect();
    if let Some(schema) = &req.response {
        tools.push(json!({
            "name": answer_tool(&schema.name),
            "description": "Give the answer, in exactly this shape.",
            "input_schema": schema.schema,
        }));
        body["tool_choice"] = json!({ "type": "tool", "name": answer_tool(&schema.name) });
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// The forced tool that carries a structured answer.
fn answer_tool(schema: &str) -> String {
    let name: String = schema
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("answer_{name}")
}

#[derive(Debug)]
enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

#[derive(Debug)]
pub(crate) struct Decoder {
    model: String,
    /// The forced answer tool, when a structured answer was asked for.
    answer_tool: Option<String>,
    blocks: BTreeMap<u64, Block>,
    stop: Option<String>,
    usage: Usage,
    done: bool,
}

impl Decoder {
    pub(super) fn new(req: &ChatRequest) -> Self {
        Self {
            model: req.model.clone(),
            answer_tool: req.response.as_ref().map(|r| answer_tool(&r.name)),
            blocks: BTreeMap::new(),
            stop: None,
            usage: Usage::default(),
            done: false,
        }
    }

    pub(super) fn feed(
        &mut self,
        event: &WireEvent,
        on: &mut dyn FnMut(Delta),
    ) -> Result<bool, DecodeError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|e| {
            DecodeError::Malformed(format!(
                "event {:?} is not JSON ({e}): {}",
                event.event.as_deref().unwrap_or("message"),
                excerpt(&event.data)
            ))
        })?;
        // The `type` inside the data names the event too; it is what counts.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        let index = || data.get("index").and_then(Value::as_u64).unwrap_or(0);
        let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let m = data.get("message").unwrap_or(&Value::Null);
                if let Some(model) = m.get("model").and_then(Value::as_str) {
                    model.clone_into(&mut self.model);
                }
                let cached = n(m, "/usage/cache_read_input_tokens");
                self.usage.input_tokens = n(m, "/usage/input_tokens")
                    + cached
                    + n(m, "/usage/cache_creation_input_tokens");
                self.usage.cached_input_tokens = cached;
                self.usage.output_tokens = n(m, "/usage/output_tokens");
            }
            "content_block_start" => {
                let b = data.get("content_block").unwrap_or(&Value::Null);
                let block = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = b.get("text").and_then(Value::as_str).unwrap_or("");
                        Block::Text(text.to_owned())
                    }
                    Some("tool_use") => {
                        let name = b
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        if self.answer_tool.as_deref() != Some(name.as_str()) {
                            on(Delta::ToolCall { name: name.clone() });
                        }
                        Block::Tool {
                            id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                            name,
                            json: String::new(),
                        }
                    }
                    // Thinking and other block kinds carry nothing this crate uses.
                    _ => return Ok(false),
                };
                self.blocks.insert(index(), block);
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let (i, kind) = (index(), delta.get("type").and_then(Value::as_str));
                match (self.blocks.get_mut(&i), kind) {
                    (Some(Block::Text(text)), Some("text_delta")) => {
                        let piece = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        text.push_str(piece);
                        on(Delta::Text(piece.to_owned()));
                    }
                    (Some(Block::Tool { json, .. }), Some("input_json_delta")) => {
                        let piece = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        json.push_str(piece);
                        if self.answer_tool.is_some() {
                            on(Delta::Text(piece.to_owned()));
                        }
                    }
                    (None, _) => {
                        return Err(DecodeError::Malformed(format!(
                            "a delta for block {i}, which never started"
                        )))
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(stop) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(stop.to_owned());
                }
                if let Some(out) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = out;
                }
            }
            "message_stop" => {
                self.done = true;
                return Ok(true);
            }
            "error" => {
                let kind = data
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let message = data
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error without a message")
                    .to_owned();
                return Err(DecodeError::Remote {
                    message: format!("{kind}: {message}"),
                    overloaded: kind == "overloaded_error",
                });
            }
            // ping, content_block_stop, and kinds added after this was written.
            _ => {}
        }
        Ok(false)
    }

    pub(super) fn finish(self) -> Result<ChatResponse, DecodeError> {
        if !self.done {
            return Err(DecodeError::Cut(
                "the stream ended before `message_stop`".to_owned(),
            ));
        }
        let mut finish = match self.stop.as_deref() {
            Some("end_turn" | "stop_sequence" | "pause_turn") => Finish::Stop,
            Some("max_tokens") => Finish::Length,
            Some("tool_use") => Finish::ToolCalls,
            Some("refusal") => Finish::Refused,
            Some(other) => return Err(DecodeError::UnknownFinish(other.to_owned())),
            None => {
                return Err(DecodeError::Malformed(
                    "the stream ended without a stop reason".to_owned(),
                ))
            }
        };
        let mut content = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(text) if !text.is_empty() => content.push(Part::Text { text }),
                Block::Text(_) => {}
                Block::Tool { name, json, .. }
                    if self.answer_tool.as_deref() == Some(name.as_str()) =>
                {
                    // The forced answer tool: its input is the structured answer.
                    let value = parse_arguments(&name, &json)?;
                    content.push(Part::Text {
                        text: value.to_string(),
                    });
                    finish = Finish::Stop;
                }
                Block::Tool { id, name, json } => {
                    let arguments = parse_arguments(&name, &json)?;
                    content.push(Part::ToolCall {
                        id,
                        name,
                        arguments,
                    });
                }
            }
        }
        Ok(ChatResponse {
            model: self.model,
            content,
            finish,
            usage: self.usage,
        })
    }
}
