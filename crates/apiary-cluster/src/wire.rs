//! What crosses nodes: postcard-encoded envelopes inside ractor_cluster's serializable
//! messages.
//!
//! ractor_cluster's `BytesConvertable::from_bytes` cannot fail, so the wire types are plain
//! bytes there, and decoding into typed values happens in apiary's code, where a failure
//! becomes an error reply and a [`MembershipEvent::DecodeFailed`](crate::MembershipEvent)
//! naming the peer, never a panic.

use ractor::{BytesConvertable, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{node::Shared, MembershipEvent};

/// Opaque bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire(pub(crate) Vec<u8>);

impl BytesConvertable for Wire {
    fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

/// The gateway actor's message: one remote call per task, or a ticket for a task line
/// (see [`line`](crate::line)).
#[derive(RactorClusterMessage)]
pub(crate) enum GatewayMsg {
    #[rpc]
    Call(Wire, RpcReplyPort<Wire>),
    /// Carries the caller's node name; answered with a `Result<LineTicket, String>`: a
    /// ticket, or why there is none.
    #[rpc]
    Open(Wire, RpcReplyPort<Wire>),
}

/// Where and how to open a task line to a gateway.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LineTicket {
    /// The port of the node's task-line listener.
    pub(crate) port: u16,
    /// The single-use token to say in the hello.
    pub(crate) token: crate::line::frame::Token,
}

/// Every request between nodes: who sends it, and the postcard of what it carries (a task,
/// a query, a pattern).
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    from: String,
    body: Vec<u8>,
}

/// Wraps `body` in a request from node `from`.
pub(crate) fn seal<T: Serialize>(from: &str, body: &T) -> Result<Wire, String> {
    encode(&Request {
        from: from.to_owned(),
        body: encode(body)?,
    })
    .map(Wire)
}

/// Unwraps a request for `target` (an agent, or the memory). A request that does not decode
/// is published as [`MembershipEvent::DecodeFailed`] naming the sender (`?` if even the
/// envelope is unreadable), and its error returned for the answer.
pub(crate) fn open<T: DeserializeOwned>(
    wire: &Wire,
    shared: &Shared,
    target: &str,
) -> Result<T, String> {
    let request: Request =
        decode(&wire.0).map_err(|e| undecodable(shared, "?".into(), target, e))?;
    decode(&request.body).map_err(|e| undecodable(shared, request.from, target, e))
}

/// Publishes that a message from `node` for `target` did not decode, and returns why.
pub(crate) fn undecodable(shared: &Shared, node: String, target: &str, error: String) -> String {
    tracing::warn!(%node, target, %error, "cluster: a message does not decode");
    shared.publish(MembershipEvent::DecodeFailed {
        node,
        agent: target.to_owned(),
        error: error.clone(),
    });
    error
}

/// The answer: postcard of the output, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Output(Vec<u8>),
    Failed(String),
    Undecodable(String),
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| e.to_string())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}
