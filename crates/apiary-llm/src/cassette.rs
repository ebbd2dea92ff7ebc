//! Record and replay: model calls kept in a file, so that a run can be repeated offline and
//! deterministically.
//!
//! A cassette is a JSON-lines file; each line is one call: the hash of its request
//! (canonicalised: the provider and the request with object keys sorted), the model, a short
//! summary, and every server-sent event of the answer. Replaying feeds those events through
//! the same decoder as a live stream. The n-th call of a request gets the n-th recording (the
//! last one repeats); a request never recorded is an error naming it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::ChatRequest;
use crate::provider::{excerpt, Provider, WireEvent};
use crate::LlmError;

/// The recorded answers to one request, in order, and how many were replayed so far.
type Takes = (Vec<Vec<WireEvent>>, usize);

/// One recorded call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    key: String,
    provider: Provider,
    model: String,
    summary: String,
    events: Vec<WireEvent>,
}

/// Whether a cassette is written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Record,
    Replay,
}

#[derive(Debug)]
pub(crate) struct Cassette {
    path: PathBuf,
    mode: Mode,
    /// Recordings by key, and how many times each key was served.
    recorded: Mutex<HashMap<String, Takes>>,
    file: Option<Mutex<std::fs::File>>,
}

impl Cassette {
    /// Opens `path` to append recordings to.
    pub(crate) fn record(path: &Path) -> Result<Self, LlmError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| cassette_error(path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| cassette_error(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            mode: Mode::Record,
            recorded: Mutex::new(HashMap::new()),
            file: Some(Mutex::new(file)),
        })
    }

    /// Reads every recording of `path`.
    pub(crate) fn replay(path: &Path) -> Result<Self, LlmError> {
        let file = std::fs::File::open(path).map_err(|e| cassette_error(path, e))?;
        let mut recorded: HashMap<String, Takes> = HashMap::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| cassette_error(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: Recorded = serde_json::from_str(&line).map_err(|e| LlmError::Cassette {
                path: path.to_owned(),
                reason: format!("line {} is not a recorded call: {e}", n + 1),
            })?;
            recorded.entry(r.key).or_default().0.push(r.events);
        }
        Ok(Self {
            path: path.to_owned(),
            mode: Mode::Replay,
            recorded: Mutex::new(recorded),
            file: None,
        })
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The recorded answer to `req`.
    pub(crate) fn lookup(
        &self,
        provider: Provider,
        req: &ChatRequest,
    ) -> Result<Vec<WireEvent>, LlmError> {
        let key = key(provider, req);
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        match recorded.get_mut(&key) {
            Some((answers, served)) if !answers.is_empty() => {
                let events = answers[(*served).min(answers.len() - 1)].clone();
                *served += 1;
                Ok(events)
            }
            _ => Err(LlmError::ReplayMiss {
                path: self.path.clone(),
                key,
                summary: summary(req),
            }),
        }
    }

    /// Appends one call.
    pub(crate) fn append(
        &self,
        provider: Provider,
        req: &ChatRequest,
        model: &str,
        events: Vec<WireEvent>,
    ) -> Result<(), LlmError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let line = serde_json::to_string(&Recorded {
            key: key(provider, req),
            provider,
            model: model.to_owned(),
            summary: summary(req),
            events,
        })
        .map_err(|e| cassette_error(&self.path, e))?;
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        // One write per line: concurrent calls never interleave within a line.
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| cassette_error(&self.path, e))
    }
}

fn cassette_error(path: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Cassette {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The hash of a request: provider and request, canonicalised.
pub(crate) fn key(provider: Provider, req: &ChatRequest) -> String {
    let value = serde_json::json!({ "provider": provider, "request": req });
    let hash = xxhash_rust::xxh3::xxh3_128(canonical(&value).as_bytes());
    format!("{hash:032x}")
}

/// `value` as JSON text with every object's keys sorted, whatever map the build uses.
pub(crate) fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

fn summary(req: &ChatRequest) -> String {
    let last = req.messages.last().map(|m| m.text()).unwrap_or_default();
    format!("model `{}`, last message {:?}", req.model, excerpt(&last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            system: None,
            messages: vec![Message::user(text)],
            tools: Vec::new(),
            max_tokens: 10,
            temperature: None,
            response: None,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn a_recording_replays_and_a_miss_names_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let events = vec![WireEvent {
            event: None,
            data: "[DONE]".into(),
        }];
        let rec = Cassette::record(&path).unwrap();
        rec.append(Provider::OpenAi, &request("hello"), "m", events.clone())
            .unwrap();
        drop(rec);
        let play = Cassette::replay(&path).unwrap();
        assert_eq!(
            play.lookup(Provider::OpenAi, &request("hello")).unwrap(),
            events
        );
        // Another provider or request misses, naming it.
        let miss = play
            .lookup(Provider::Anthropic, &request("hello"))
            .unwrap_err();
        assert!(
            miss.to_string().contains("last message \"hello\""),
            "{miss}"
        );
        assert!(play.lookup(Provider::OpenAi, &request("bye")).is_err());
    }

    #[test]
    fn a_damaged_cassette_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        std::fs::write(&path, "{\"key\": 1}\n").unwrap();
        let err = Cassette::replay(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
