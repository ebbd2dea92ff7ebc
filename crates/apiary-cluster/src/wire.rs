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

/// The gateway actor's message: one remote call per task.
#[derive(RactorClusterMessage)]
pub(crate) enum GatewayMsg {
    #[rpc]
    Call(Wire, RpcReplyPort<Wire>),
}

/// A task on its way to a remote agent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The sending node's name.
    pub(crate) from: String,
    /// postcard of the task.
    pub(crate) task: Vec<u8>,
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
