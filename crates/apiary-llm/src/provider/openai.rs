//! OpenAI chat completions: request body and streamed chunks.
//!
//! Streams are asked with `stream_options.include_usage`, so the last chunk (with no
//! choices) carries the usage; `data: [DONE]` ends the stream. Tool call arguments arrive as
//! pieces of a JSON string, per tool call index.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{excerpt, parse_arguments, DecodeError, WireEvent};
use crate::chat::{ChatRequest, ChatResponse, Delta, Finish, Part, Role, Usage};

pub(super) fn encode(req: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for m in &req.messages {
        match m.role {
            Role::User => {
                // Tool results are messages of their own, right after the assistant's calls.
                for part in &m.content {
                    if let Part::ToolResult {
                        id,
                        content,
                        is_error,
                    } = part
                    {
                        let content = if *is_error {
                            format!("error: {content}")
                        } else {
                            content.clone()
                        };
                        messages.push(
                            json!({ "role": "tool", "tool_call_id": id, "content": content }),
                        );
                    }
                }
                let text = m.text();
                if !text.is_empty() {
                    messages.push(json!({ "role": "user", "content": text }));
                }
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall {
                            id,
                            name,
                            arguments,
                        } => Some(json!({
                            "id": id, "type": "function",
                            "function": { "name": name, "arguments": arguments.to_string() },
                        })),
                        _ => None,
                    })
                    .collect();
                let text = m.text();
                let mut msg = json!({ "role": "assistant" });
                msg["content"] = if text.is_empty() && !calls.is_empty() {
                    Value::Null
                } else {
                    Value::String(text)
                };
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
        }
    }
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({ "type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters } })
            })
            .collect();
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(schema) = &req.response {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": schema.name, "schema": schema.schema, "strict": true },
        });
    }
    body
}

#[derive(Debug, Default)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug)]
pub(crate) struct Decoder {
    model: String,
    prompt_estimate: u64,
    text: String,
    calls: BTreeMap<u64, Call>,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl Decoder {
    pub(super) fn new(req: &ChatRequest) -> Self {
        Self {
            model: req.model.clone(),
            prompt_estimate: req.estimate_input_tokens(),
            text: String::new(),
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }

    pub(super) fn streamed_bytes(&self) -> usize {
        self.text.len()
            + self
                .calls
                .values()
                .map(|c| c.arguments.len())
                .sum::<usize>()
    }

    pub(super) fn feed(
        &mut self,
        event: &WireEvent,
        on: &mut dyn FnMut(Delta),
    ) -> Result<bool, DecodeError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        let chunk: wire::Chunk<'_> = serde_json::from_str(data).map_err(|e| {
            DecodeError::Malformed(format!("a chunk is not JSON ({e}): {}", excerpt(data)))
        })?;
        if let Some(error) = chunk.error {
            return Err(DecodeError::Remote {
                message: error.message.map_or_else(
                    || "an error without a message".to_owned(),
                    |m| m.into_owned(),
                ),
                overloaded: false,
            });
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty())
            && model != self.model
        {
            self.model = model.into_owned();
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                cached_input_tokens: usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            });
        }
        let Some(choices) = chunk.choices else {
            return Err(DecodeError::Malformed(format!(
                "a chunk has no `choices`: {}",
                excerpt(data)
            )));
        };
        for choice in choices {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.text.push_str(&text);
                    on(Delta::Text(text.into_owned()));
                }
                for call in delta.tool_calls.into_iter().flatten() {
                    let entry = self.calls.entry(call.index).or_default();
                    if let Some(id) = call.id {
                        entry.id = id.into_owned();
                    }
                    if let Some(f) = call.function {
                        if let Some(name) = f.name {
                            if entry.name.is_empty() {
                                on(Delta::ToolCall {
                                    name: name.clone().into_owned(),
                                });
                            }
                            entry.name.push_str(&name);
                        }
                        if let Some(args) = f.arguments {
                            entry.arguments.push_str(&args);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason.into_owned());
            }
        }
        Ok(false)
    }

    pub(super) fn finish(self) -> Result<ChatResponse, DecodeError> {
        let streamed = self.streamed_bytes();
        if !self.done {
            return Err(DecodeError::Cut(
                "the stream ended before `data: [DONE]`".to_owned(),
            ));
        }
        let finish = match self.finish.as_deref() {
            Some("stop") => Finish::Stop,
            Some("length") => Finish::Length,
            Some("tool_calls" | "function_call") => Finish::ToolCalls,
            Some("content_filter") => Finish::Refused,
            Some(other) => return Err(DecodeError::UnknownFinish(other.to_owned())),
            None => {
                return Err(DecodeError::Malformed(
                    "the stream ended without a finish reason".to_owned(),
                ))
            }
        };
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(Part::Text { text: self.text });
        }
        for call in self.calls.into_values() {
            if call.name.is_empty() {
                return Err(DecodeError::Malformed(format!(
                    "tool call {:?} has no name",
                    call.id
                )));
            }
            let arguments = parse_arguments(&call.name, &call.arguments)?;
            content.push(Part::ToolCall {
                id: call.id,
                name: call.name,
                arguments,
            });
        }
        // A server that ignores `include_usage` reports nothing: count high rather than
        // let a budget undercount.
        let usage = self.usage.unwrap_or_else(|| {
            tracing::warn!(model = %self.model, "the endpoint reported no usage; counting an estimate");
            Usage {
                input_tokens: self.prompt_estimate,
                output_tokens: streamed.div_ceil(3) as u64,
                cached_input_tokens: 0,
            }
        });
        Ok(ChatResponse {
            model: self.model,
            content,
            finish,
            usage,
        })
    }
}

/// The streamed chunk, typed: strings borrowed from the event where they need no unescaping,
/// and unknown fields ignored (providers add their own).
mod wire {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Chunk<'a> {
        #[serde(borrow, default)]
        pub(super) model: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) choices: Option<Vec<Choice<'a>>>,
        #[serde(default)]
        pub(super) usage: Option<UsageJson>,
        #[serde(borrow, default)]
        pub(super) error: Option<ErrorJson<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Choice<'a> {
        #[serde(borrow, default)]
        pub(super) delta: Option<DeltaJson<'a>>,
        #[serde(borrow, default)]
        pub(super) finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub(super) struct DeltaJson<'a> {
        #[serde(borrow, default)]
        pub(super) content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) tool_calls: Option<Vec<CallJson<'a>>>,
    }

    #[derive(Deserialize)]
    pub(super) struct CallJson<'a> {
        #[serde(default)]
        pub(super) index: u64,
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) function: Option<FunctionJson<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct FunctionJson<'a> {
        #[serde(borrow, default)]
        pub(super) name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) arguments: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub(super) struct UsageJson {
        #[serde(default)]
        pub(super) prompt_tokens: u64,
        #[serde(default)]
        pub(super) completion_tokens: u64,
        #[serde(default)]
        pub(super) prompt_tokens_details: Option<DetailsJson>,
    }

    #[derive(Deserialize)]
    pub(super) struct DetailsJson {
        #[serde(default)]
        pub(super) cached_tokens: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct ErrorJson<'a> {
        #[serde(borrow, default)]
        pub(super) message: Option<Cow<'a, str>>,
    }
}
