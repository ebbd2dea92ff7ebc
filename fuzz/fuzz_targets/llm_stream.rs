//! A model server's streamed answer (or error body), cut anywhere by the network, through
//! the SSE parser and each provider's decoder.
#![no_main]

use apiary_llm::Provider;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let provider = if head & 1 == 0 {
        Provider::OpenAi
    } else {
        Provider::Anthropic
    };
    let split = usize::from(head >> 2) * body.len() / 64;
    apiary_llm::fuzzing::decode_stream(provider, body, split, head & 2 != 0);
});
