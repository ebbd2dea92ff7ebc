//! A small checker for request bodies: collects every violation with where it is.

use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub(crate) struct Checker {
    errors: Vec<String>,
}

impl Checker {
    pub(crate) fn fail(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    pub(crate) fn non_empty_string(&mut self, v: Option<&Value>, at: &str) {
        if v.and_then(Value::as_str).is_none_or(str::is_empty) {
            self.fail(format!("`{at}` must be a non-empty string"));
        }
    }

    pub(crate) fn done(self) -> Vec<String> {
        self.errors
    }
}

pub(crate) fn expect_object<'a>(
    c: &mut Checker,
    v: &'a Value,
    at: &str,
) -> Option<&'a Map<String, Value>> {
    let obj = v.as_object();
    if obj.is_none() {
        c.fail(format!("{at} must be a JSON object"));
    }
    obj
}

/// Tool names both protocols accept: `^[a-zA-Z0-9_-]{1,64}$`.
pub(crate) fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The conversation's first user message (its text, by the protocol's `text_of`) and its
/// turn (assistant messages so far).
pub(crate) fn conversation(body: &Value, text_of: fn(&Value) -> String) -> (String, usize) {
    let messages = body.get("messages").and_then(Value::as_array);
    let first = messages
        .into_iter()
        .flatten()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(text_of)
        .unwrap_or_default();
    let turn = messages
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .count();
    (first, turn)
}
