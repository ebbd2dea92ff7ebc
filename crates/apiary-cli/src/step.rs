//! What the built-in agents of a manifest swarm take and give.

use serde::{Deserialize, Serialize};

/// One run of a step: the runner submits one per attempt (across nodes too, postcard-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Step {
    /// 1 for the first attempt.
    pub(crate) attempt: u32,
}

/// A step's result: a one-line summary and what it printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepOutput {
    pub(crate) summary: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) exit_code: Option<i32>,
}

/// What a step stores in memory under its `store` key: the last attempt's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepRecord {
    pub(crate) agent: String,
    pub(crate) attempt: u32,
    pub(crate) ok: bool,
    pub(crate) exit_code: Option<i32>,
    pub(crate) millis: u64,
    pub(crate) summary: String,
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 10), "hello");
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("aé", 1), "");
    }
}
