//! What the built-in agents of a manifest swarm take and give.

use serde::{Deserialize, Serialize};

/// One run of a step: the runner submits one per attempt (across nodes too,
/// postcard-encoded).
/// A model calling a step as a tool gives `{}`: a first attempt without inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Step {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What each agent this one depends on answered (its output text), by name, in
    /// `depends_on` order.
    pub inputs: Vec<(String, String)>,
}

impl Default for Step {
    /// The first attempt, with no inputs.
    fn default() -> Self {
        Self {
            attempt: 1,
            inputs: Vec::new(),
        }
    }
}

/// A step's result: a one-line summary, what it printed, and what it spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepOutput {
    /// One line: `exit 0`, `3 calls, 1,204 tokens`.
    pub summary: String,
    /// Its output: a command's stdout, a model's answer.
    pub stdout: String,
    /// A command's stderr.
    pub stderr: String,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// Tokens and money a model-calling step spent.
    pub usage: Option<StepUsage>,
    /// The budget that stopped the step early (it then answers what its finisher said).
    pub stopped_by: Option<String>,
}

impl StepOutput {
    /// An output that is only a summary.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            ..Self::default()
        }
    }
}

/// What a model-calling step spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepUsage {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Dollars, when the model has a price.
    pub cost: Option<f64>,
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
