//! Swarms beyond one machine, through ractor's own cluster layer (`ractor_cluster`).
//!
//! - [`Node`]: a `NodeServer` listening on 127.0.0.1 unless told otherwise, with cookie
//!   authentication; [`Node::connect`] to peers; [`Node::subscribe`] to [`MembershipEvent`]s.
//! - [`Node::export`] makes an agent of a local swarm reachable from every node; tasks and
//!   outputs cross nodes postcard-encoded inside ractor_cluster's serializable messages.
//! - [`Node::remote`] gives a [`RemoteAgent`] that sends tasks to whichever nodes export the
//!   agent, moving a task to another node if its node drops out, and failing it back with
//!   the cause when none is left.
#![deny(missing_docs)]

mod error;
mod gateway;
mod node;
mod remote;
mod wire;

pub use error::{ClusterError, RemoteError};
pub use node::{MembershipEvent, Node, NodeConfig};
pub use remote::RemoteAgent;
