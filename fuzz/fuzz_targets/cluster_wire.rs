//! What a node takes off the wire from its peers: request envelopes (tasks for agents,
//! queries and patterns for the memory), replies, and task-line frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    apiary_cluster::fuzzing::decode_all(data);
});
