//! What can go wrong between nodes, each naming the node or agent at fault.

use std::net::SocketAddr;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The node could not listen on its address.
    #[error("node `{node}` cannot listen on {addr}: {reason}")]
    Listen {
        /// This node.
        node: String,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS's reason.
        reason: String,
    },
    /// The peer could not be reached.
    #[error("cannot connect to {peer}: {reason}")]
    Connect {
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The peer closed the session before it was ready: a wrong cookie, most often.
    #[error("{peer} refused the connection (wrong cookie?)")]
    Refused {
        /// The peer's address.
        peer: SocketAddr,
    },
    /// The peer did not finish the handshake in time.
    #[error("{peer} did not complete the handshake within {seconds} s")]
    HandshakeTimeout {
        /// The peer's address.
        peer: SocketAddr,
        /// How long was waited.
        seconds: u64,
    },
    /// A node or swarm name that cannot be used.
    #[error("{what} name `{name}` cannot be used: {reason}")]
    Name {
        /// `node` or `swarm`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An actor of the node failed to start.
    #[error("node `{node}`: {reason}")]
    Actor {
        /// This node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// Why a task sent to a remote agent did not come back with an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No node of the cluster exports the agent (any more).
    #[error("no node exports agent `{agent}`")]
    NoNode {
        /// The agent.
        agent: String,
    },
    /// Every node that exported the agent dropped out while holding the task.
    #[error("agent `{agent}`: node `{node}` dropped out with the task ({cause})")]
    NodeDown {
        /// The agent.
        agent: String,
        /// The last node tried.
        node: String,
        /// What the transport said.
        cause: String,
    },
    /// The remote agent ran the task and it failed there.
    #[error("agent `{agent}` on node `{node}`: {message}")]
    Task {
        /// The agent.
        agent: String,
        /// Where it ran.
        node: String,
        /// The remote error, as text.
        message: String,
    },
    /// A message did not decode (a different task type on either side, or corruption).
    #[error("agent `{agent}`: message from node `{node}` does not decode: {message}")]
    Decode {
        /// The agent.
        agent: String,
        /// The node that sent the bad message.
        node: String,
        /// postcard's complaint.
        message: String,
    },
    /// No answer within the deadline.
    #[error("agent `{agent}` on node `{node}`: no answer within {seconds} s")]
    Timeout {
        /// The agent.
        agent: String,
        /// The node asked.
        node: String,
        /// The deadline.
        seconds: u64,
    },
}
