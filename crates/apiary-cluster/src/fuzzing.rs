//! Entry points for the fuzz targets under `fuzz/`, compiled only under `--cfg fuzzing`
//! (which cargo-fuzz sets): what a node decodes of what its peers send.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::line::frame::{self, Hello};
use crate::line::Lines;
use crate::node::Shared;
use crate::wire::{decode, open, LineTicket, Reply, Wire};
use crate::MembershipEvent;

/// Decodes `bytes` as everything a node takes off the wire: a request for an agent (its
/// envelope, then a task of a few types), a request for the memory (a query, a pattern),
/// a reply, and a task line's frames (a hello, a call's id, an answer, a ticket). Errors are expected; a panic is a bug. A request that does not decode must
/// be published as a `DecodeFailed` event, and one that does must not be.
pub fn decode_all(bytes: &[u8]) {
    let (events, mut seen) = broadcast::channel(16);
    let shared = Arc::new(Shared::new(
        "fuzz".into(),
        "default".into(),
        events,
        Lines::new(0, None),
    ));
    let wire = Wire(bytes.to_vec());
    check(open::<u64>(&wire, &shared, "a"), &mut seen);
    check(open::<String>(&wire, &shared, "a"), &mut seen);
    check(open::<Vec<(String, f32)>>(&wire, &shared, "a"), &mut seen);
    check(
        open::<apiary_memory::Query>(&wire, &shared, "memory"),
        &mut seen,
    );
    check(
        open::<apiary_memory::Pattern>(&wire, &shared, "memory"),
        &mut seen,
    );
    let _ = decode::<Reply>(bytes);
    let _ = decode::<Hello>(bytes);
    let _ = decode::<Result<LineTicket, String>>(bytes);
    let _ = frame::split_id(bytes);
    if let Ok((id, reply)) = frame::read_answer(bytes) {
        // What decodes encodes back to the same frame.
        assert_eq!(
            frame::answer(id, &reply),
            bytes,
            "an answer frame changed on a round trip"
        );
    }
}

fn check<T>(decoded: Result<T, String>, seen: &mut broadcast::Receiver<MembershipEvent>) {
    let published = seen.try_recv();
    match decoded {
        Ok(_) => assert!(
            published.is_err(),
            "a good request was reported undecodable"
        ),
        Err(e) => match published {
            Ok(MembershipEvent::DecodeFailed { error, .. }) => assert_eq!(error, e),
            other => panic!("an undecodable request was not reported: {other:?}"),
        },
    }
}
