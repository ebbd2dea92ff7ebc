//! Entry points for the fuzz targets under `fuzz/`, compiled only under `--cfg fuzzing`
//! (which cargo-fuzz sets): the decoders of what a model server sends back.

use std::collections::VecDeque;

use serde_json::json;

use crate::chat::{ChatRequest, Message, ResponseSchema, ToolSpec};
use crate::provider::Provider;
use crate::sse::SseParser;

/// Runs `body` through the endpoint's decoders as a streamed answer of `provider` would
/// go: the SSE parser (fed in two chunks split at `split`, as the network may cut it), then
/// the provider's decoder, event by event, to its answer; and as an error body. Errors are
/// expected; a panic is a bug.
pub fn decode_stream(provider: Provider, body: &[u8], split: usize, structured: bool) {
    let req = ChatRequest {
        model: "fuzz".into(),
        system: None,
        messages: vec![Message::user("fuzz")],
        tools: vec![ToolSpec {
            name: "run".into(),
            description: "runs".into(),
            parameters: json!({"type": "object"}),
        }],
        max_tokens: 64,
        temperature: None,
        response: structured.then(|| ResponseSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
        }),
    };
    let _ = provider.error_message(body);
    let mut parser = SseParser::default();
    let mut events = VecDeque::new();
    let mut decoder = provider.decoder(&req);
    let split = split.min(body.len());
    for chunk in [&body[..split], &body[split..]] {
        if parser.feed(chunk, &mut events).is_err() {
            return;
        }
        while let Some(event) = events.pop_front() {
            match decoder.feed(&event, &mut |_| {}) {
                Ok(false) => {}
                Ok(true) => {
                    let _ = decoder.finish();
                    return;
                }
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
}
