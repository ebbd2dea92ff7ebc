//! Anthropic's Messages protocol: the documented request schema, checked, and the answer as
//! its named server-sent events (or one JSON body without `stream`).

use serde_json::{json, Value};

use crate::reply::{Answer, Piece};
use crate::schema::{expect_object, is_tool_name, Checker};

/// The API version this server speaks (the `anthropic-version` header).
pub const VERSION: &str = "2023-06-01";

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
];

/// Checks headers and body against the documented schema; returns every violation.
pub(crate) fn check(body: &Value, api_key: Option<&str>, version: Option<&str>) -> Vec<String> {
    let mut c = Checker::default();
    if api_key.is_none() {
        c.fail("header x-api-key is required");
    }
    if version != Some(VERSION) {
        c.fail(format!("header anthropic-version must be {VERSION}"));
    }
    let Some(obj) = expect_object(&mut c, body, "body") else {
        return c.done();
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            c.fail(format!("{key}: Extra inputs are not permitted"));
        }
    }
    c.non_empty_string(obj.get("model"), "model");
    if obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        c.fail("`max_tokens` is required and must be a positive integer");
    }
    if let Some(t) = obj.get("temperature")
        && t.as_f64().is_none_or(|t| !(0.0..=1.0).contains(&t))
    {
        c.fail("`temperature` must be a number in [0, 1]");
    }
    if let Some(system) = obj.get("system") {
        let ok = system.is_string()
            || system.as_array().is_some_and(|blocks| {
                blocks
                    .iter()
                    .all(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            });
        if !ok {
            c.fail("`system` must be a string or an array of text blocks");
        }
    }
    let mut tool_names = Vec::new();
    if let Some(tools) = obj.get("tools") {
        match tools.as_array() {
            Some(tools) => {
                for (i, t) in tools.iter().enumerate() {
                    match t.get("name").and_then(Value::as_str) {
                        Some(name) if is_tool_name(name) => tool_names.push(name.to_owned()),
                        _ => c.fail(format!(
                            "tools[{i}].name must match ^[a-zA-Z0-9_-]{{1,64}}$"
                        )),
                    }
                    let schema = t.get("input_schema");
                    if schema.and_then(|s| s.get("type")).and_then(Value::as_str) != Some("object")
                    {
                        c.fail(format!(
                            "tools[{i}].input_schema must be a JSON Schema with type \"object\""
                        ));
                    }
                }
            }
            None => c.fail("`tools` must be an array"),
        }
    }
    if let Some(choice) = obj.get("tool_choice") {
        match choice.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") => match choice.get("name").and_then(Value::as_str) {
                Some(name) if tool_names.iter().any(|t| t == name) => {}
                _ => c.fail("tool_choice.name must name one of `tools`"),
            },
            _ => c.fail("tool_choice.type must be auto, any, tool or none"),
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
    if messages
        .first()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        != Some("user")
    {
        c.fail("messages: the first message must use the user role");
    }
    let mut asked: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            c.fail(format!("{at}.role must be user or assistant"));
        }
        let blocks: Vec<&Value> = match m.get("content") {
            Some(Value::String(_)) => Vec::new(),
            Some(Value::Array(blocks)) if !blocks.is_empty() => blocks.iter().collect(),
            _ => {
                c.fail(format!(
                    "{at}.content must be a string or a non-empty array of blocks"
                ));
                Vec::new()
            }
        };
        let mut answered = Vec::new();
        let mut next_asked = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("{at}.content[{j}]");
            match (b.get("type").and_then(Value::as_str), role) {
                (Some("text"), _) => {
                    if b.get("text").and_then(Value::as_str).is_none() {
                        c.fail(format!("{at}.text must be a string"));
                    }
                }
                (Some("tool_use"), "assistant") => {
                    let id = b.get("id").and_then(Value::as_str);
                    if id.is_none()
                        || b.get("name").and_then(Value::as_str).is_none()
                        || !b.get("input").is_some_and(Value::is_object)
                    {
                        c.fail(format!("{at}: tool_use needs id, name and an object input"));
                    }
                    next_asked.extend(id.map(str::to_owned));
                }
                (Some("tool_result"), "user") => {
                    match b.get("tool_use_id").and_then(Value::as_str) {
                        Some(id) if asked.iter().any(|a| a == id) => answered.push(id.to_owned()),
                        Some(id) => c.fail(format!(
                            "{at}: tool_use_id {id:?} answers no tool_use of the previous message"
                        )),
                        None => c.fail(format!("{at}.tool_use_id is required")),
                    }
                    let content_ok = b
                        .get("content")
                        .is_none_or(|v| v.is_string() || v.is_array());
                    if !content_ok || b.get("is_error").is_some_and(|v| !v.is_boolean()) {
                        c.fail(format!("{at}: tool_result content must be a string or blocks, is_error a boolean"));
                    }
                }
                (kind, role) => c.fail(format!(
                    "{at}: a {kind:?} block is not allowed in a {role} message"
                )),
            }
        }
        if role == "user" && !asked.is_empty() {
            let missing: Vec<&String> = asked.iter().filter(|a| !answered.contains(a)).collect();
            if !missing.is_empty() {
                c.fail(format!(
                    "{at}: tool_use ids {missing:?} were not answered with tool_result blocks"
                ));
            }
        }
        asked = next_asked;
    }
    if !asked.is_empty() {
        c.fail(format!("the tool_use ids {asked:?} were not answered"));
    }
}

/// Bytes of text in a request (for the token estimate).
pub(crate) fn request_text(body: &Value) -> usize {
    let system = body.get("system").map_or(0, |s| text_of(s).len());
    system
        + body
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|m| m.get("content").map_or(0, |c| text_of(c).len()))
            .sum::<usize>()
}

/// The tool a request forces with `tool_choice: {type: "tool"}`, if any.
pub(crate) fn forced_tool(body: &Value) -> Option<&str> {
    let choice = body.get("tool_choice")?;
    (choice.get("type")?.as_str()? == "tool")
        .then(|| choice.get("name")?.as_str())
        .flatten()
}

pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| {
                b.get("text")
                    .and_then(Value::as_str)
                    .or_else(|| b.get("content").and_then(Value::as_str))
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The provider's error body.
pub(crate) fn error_body(code: u16, message: &str) -> Value {
    let kind = match code {
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400 => "invalid_request_error",
        401 => "authentication_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// The stream's events for `answer`.
pub(crate) fn stream(answer: &Answer, model: &str) -> Vec<Piece> {
    let ev = |name: &'static str, data: Value| Piece::Event(name, data.to_string());
    let mut out = vec![ev(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": format!("msg_scripted_{}", answer.id), "type": "message", "role": "assistant",
            "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": answer.input_tokens, "output_tokens": 1,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 } } }),
    )];
    let mut index = 0;
    if !answer.text_pieces.is_empty() {
        out.push(ev(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index,
                    "content_block": { "type": "text", "text": "" } }),
        ));
        out.push(ev("ping", json!({ "type": "ping" })));
        for piece in &answer.text_pieces {
            out.push(ev(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index,
                        "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
        out.push(ev(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    if let Some((name, args)) = &answer.tool_call {
        out.push(ev(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": format!("toolu_scripted_{}", answer.id),
                "name": name, "input": {} } }),
        ));
        let (a, b) = args.split_at(args.len() / 2);
        for part in [a, b] {
            out.push(ev(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index,
                        "delta": { "type": "input_json_delta", "partial_json": part } }),
            ));
        }
        out.push(ev(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
    }
    if answer.cut {
        out.truncate(out.len().min(4));
        out.push(Piece::Break);
        return out;
    }
    if answer.malformed {
        out.push(Piece::Event(
            "content_block_delta",
            "{\"type\": \"content_block_delta\", \"index\": ".to_owned(),
        ));
    }
    let stop = match (answer.unknown_finish, answer.tool_call.is_some()) {
        (true, _) => "sparkles",
        (false, true) => "tool_use",
        (false, false) => "end_turn",
    };
    out.push(ev(
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null },
                "usage": { "output_tokens": answer.output_tokens } }),
    ));
    out.push(ev("message_stop", json!({ "type": "message_stop" })));
    out
}

/// The answer as one JSON body (a request without `stream`).
pub(crate) fn body(answer: &Answer, model: &str) -> Value {
    let mut content = Vec::new();
    if !answer.text_pieces.is_empty() {
        content.push(json!({ "type": "text", "text": answer.text_pieces.concat() }));
    }
    if let Some((name, args)) = &answer.tool_call {
        let input: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        content.push(
            json!({ "type": "tool_use", "id": format!("toolu_scripted_{}", answer.id),
                             "name": name, "input": input }),
        );
    }
    json!({
        "id": format!("msg_scripted_{}", answer.id), "type": "message", "role": "assistant",
        "content": content, "model": model,
        "stop_reason": if answer.tool_call.is_some() { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": { "input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens },
    })
}
