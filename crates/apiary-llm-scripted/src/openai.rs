//! The OpenAI chat-completions protocol: the documented request schema, checked, and the
//! answer as a server-sent event stream (or one JSON body without `stream`).

use serde_json::{json, Value};

use crate::reply::{Answer, Piece};
use crate::schema::{expect_object, is_tool_name, Checker};

/// Top-level fields the chat-completions endpoint accepts (others are refused by it).
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "response_format",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "user",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
];

/// Checks a request body against the documented schema; returns every violation.
pub(crate) fn check(body: &Value, authorization: Option<&str>) -> Vec<String> {
    let mut c = Checker::default();
    if authorization.is_some_and(|a| !a.starts_with("Bearer ")) {
        c.fail("header Authorization must be `Bearer <key>`");
    }
    let Some(obj) = expect_object(&mut c, body, "body") else {
        return c.done();
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            c.fail(format!("unrecognized request argument `{key}`"));
        }
    }
    c.non_empty_string(obj.get("model"), "model");
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = obj.get(field)
            && v.as_u64().is_none_or(|n| n == 0)
        {
            c.fail(format!("`{field}` must be a positive integer"));
        }
    }
    if let Some(t) = obj.get("temperature")
        && t.as_f64().is_none_or(|t| !(0.0..=2.0).contains(&t))
    {
        c.fail("`temperature` must be a number in [0, 2]");
    }
    let streaming = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(so) = obj.get("stream_options") {
        if !streaming {
            c.fail("`stream_options` is only allowed with `stream: true`");
        }
        if so.get("include_usage").is_some_and(|v| !v.is_boolean()) {
            c.fail("`stream_options.include_usage` must be a boolean");
        }
    }
    if let Some(tools) = obj.get("tools") {
        match tools.as_array() {
            Some(tools) => {
                for (i, t) in tools.iter().enumerate() {
                    let at = format!("tools[{i}]");
                    if t.get("type").and_then(Value::as_str) != Some("function") {
                        c.fail(format!("{at}.type must be \"function\""));
                    }
                    match t
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                    {
                        Some(name) if is_tool_name(name) => {}
                        _ => c.fail(format!(
                            "{at}.function.name must match ^[a-zA-Z0-9_-]{{1,64}}$"
                        )),
                    }
                    if let Some(p) = t.get("function").and_then(|f| f.get("parameters"))
                        && !p.is_object()
                    {
                        c.fail(format!(
                            "{at}.function.parameters must be a JSON Schema object"
                        ));
                    }
                }
            }
            None => c.fail("`tools` must be an array"),
        }
    }
    if let Some(rf) = obj.get("response_format") {
        match rf.get("type").and_then(Value::as_str) {
            Some("text" | "json_object") => {}
            Some("json_schema") => {
                let js = rf.get("json_schema");
                if js
                    .and_then(|j| j.get("name"))
                    .and_then(Value::as_str)
                    .is_none()
                {
                    c.fail("response_format.json_schema.name is required");
                }
                if !js
                    .and_then(|j| j.get("schema"))
                    .is_some_and(Value::is_object)
                {
                    c.fail("response_format.json_schema.schema must be an object");
                }
            }
            _ => c.fail("response_format.type must be text, json_object or json_schema"),
        }
    }
    check_messages(&mut c, obj.get("messages"));
    c.done()
}

fn check_messages(c: &mut Checker, messages: Option<&Value>) {
    let Some(messages) = messages.and_then(Value::as_array) else {
        c.fail("`messages` must be an array");
        return;
    };
    if messages.is_empty() {
        c.fail("`messages` must not be empty");
    }
    // Tool call ids the last assistant message asked for, and not yet answered.
    let mut open: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content");
        let text_ok = |v: Option<&Value>| {
            v.is_some_and(|v| {
                v.is_string()
                    || v.as_array().is_some_and(|parts| {
                        parts
                            .iter()
                            .all(|p| p.get("type").and_then(Value::as_str).is_some())
                    })
            })
        };
        if role != "tool" && !open.is_empty() {
            c.fail(format!(
                "{at}: the tool calls {open:?} of the assistant message before were not answered"
            ));
            open.clear();
        }
        match role {
            "system" | "developer" | "user" => {
                if !text_ok(content) {
                    c.fail(format!(
                        "{at}.content must be a string or an array of parts"
                    ));
                }
            }
            "assistant" => {
                let calls = m.get("tool_calls").and_then(Value::as_array);
                if !(text_ok(content) || content.is_some_and(Value::is_null) && calls.is_some()) {
                    c.fail(format!(
                        "{at}.content must be a string, or null with tool_calls"
                    ));
                }
                for (j, call) in calls.into_iter().flatten().enumerate() {
                    let at = format!("{at}.tool_calls[{j}]");
                    let id = call.get("id").and_then(Value::as_str);
                    let function = call.get("function");
                    if id.is_none()
                        || call.get("type").and_then(Value::as_str) != Some("function")
                        || function
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .is_none()
                    {
                        c.fail(format!(
                            "{at} needs id, type \"function\" and function.name"
                        ));
                    }
                    // Arguments travel as a string holding JSON, not as an object.
                    match function
                        .and_then(|f| f.get("arguments"))
                        .and_then(Value::as_str)
                    {
                        Some(args) if serde_json::from_str::<Value>(args).is_ok() => {}
                        _ => c.fail(format!("{at}.function.arguments must be a string of JSON")),
                    }
                    open.extend(id.map(str::to_owned));
                }
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str);
                match id {
                    Some(id) if open.iter().any(|o| o == id) => open.retain(|o| o != id),
                    Some(id) => c.fail(format!(
                        "{at}.tool_call_id {id:?} answers no tool call of the assistant message before"
                    )),
                    None => c.fail(format!("{at}.tool_call_id is required")),
                }
                if !text_ok(content) {
                    c.fail(format!("{at}.content must be a string"));
                }
            }
            other => c.fail(format!("{at}.role {other:?} is not a chat role")),
        }
    }
    if !open.is_empty() {
        c.fail(format!("the tool calls {open:?} were not answered"));
    }
}

/// All the text in a request (for the token estimate).
pub(crate) fn request_text(body: &Value) -> usize {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| m.get("content").map_or(0, |c| text_of(c).len()))
        .sum()
}

pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The provider's error body.
pub(crate) fn error_body(code: u16, message: &str) -> Value {
    let kind = match code {
        429 => "rate_limit_exceeded",
        400 => "invalid_request_error",
        401 => "invalid_api_key",
        _ => "server_error",
    };
    json!({ "error": { "message": message, "type": kind, "code": code } })
}

/// The stream's `data:` payloads for `answer` (`None` for a piece that breaks the stream).
pub(crate) fn stream(answer: &Answer, model: &str, include_usage: bool) -> Vec<Piece> {
    let id = format!("chatcmpl-scripted-{}", answer.id);
    let chunk = |delta: Value, finish: Value| {
        Piece::Data(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "system_fingerprint": "apiary-scripted",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            })
            .to_string(),
        )
    };
    let mut out = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    for piece in &answer.text_pieces {
        out.push(chunk(json!({ "content": piece }), Value::Null));
    }
    if let Some((name, args)) = &answer.tool_call {
        let call_id = format!("call_scripted_{}", answer.id);
        let (a, b) = args.split_at(args.len() / 2);
        out.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": call_id, "type": "function",
                                     "function": { "name": name, "arguments": a } }] }),
            Value::Null,
        ));
        out.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": b } }] }),
            Value::Null,
        ));
    }
    if answer.cut {
        out.truncate(out.len().min(2));
        out.push(Piece::Break);
        return out;
    }
    if answer.malformed {
        out.push(Piece::Data(
            "{\"choices\": [{\"delta\": {\"content\": ".to_owned(),
        ));
    }
    let finish = match (answer.unknown_finish, answer.tool_call.is_some()) {
        (true, _) => "sparkles",
        (false, true) => "tool_calls",
        (false, false) => "stop",
    };
    out.push(chunk(json!({}), json!(finish)));
    if include_usage {
        out.push(Piece::Data(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": answer.input_tokens,
                    "completion_tokens": answer.output_tokens,
                    "total_tokens": answer.input_tokens + answer.output_tokens,
                    "prompt_tokens_details": { "cached_tokens": 0 },
                },
            })
            .to_string(),
        ));
    }
    out.push(Piece::Data("[DONE]".to_owned()));
    out
}

/// The answer as one JSON body (a request without `stream`).
pub(crate) fn body(answer: &Answer, model: &str) -> Value {
    let tool_calls = answer.tool_call.as_ref().map(|(name, args)| {
        json!([{ "id": format!("call_scripted_{}", answer.id), "type": "function",
                 "function": { "name": name, "arguments": args } }])
    });
    json!({
        "id": format!("chatcmpl-scripted-{}", answer.id),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "system_fingerprint": "apiary-scripted",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": answer.text_pieces.concat(), "tool_calls": tool_calls },
            "finish_reason": if answer.tool_call.is_some() { "tool_calls" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
        },
    })
}
