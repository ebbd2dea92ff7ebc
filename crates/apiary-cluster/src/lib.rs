//! Swarms beyond one machine, through ractor's own cluster layer (`ractor_cluster`).
//!
//! - [`Node`]: a `NodeServer` listening on 127.0.0.1 unless told otherwise, with cookie
//!   authentication; [`Node::connect`] to peers; [`Node::subscribe`] to [`MembershipEvent`]s.
//!   A [`Heartbeat`] drops a peer that stops answering and redials the peers a node
//!   connected to, so a cut link shows as `Down` within seconds and a healed one rejoins.
//! - [`Node::export`] makes an agent of a local swarm reachable from every node serving the
//!   same swarm ([`NodeConfig::swarm`]); tasks and outputs cross nodes postcard-encoded on
//!   *task lines*, connections of apiary's own opened with a single-use ticket handed out
//!   over the authenticated session (inside ractor_cluster's messages if a line cannot be
//!   opened). Several nodes may share one process, and
//!   several swarms one cluster: each node sees only its own exports and those of its peers
//!   in its swarm.
//! - [`Node::remote`] gives a [`RemoteAgent`] that sends tasks to whichever nodes export the
//!   agent, moving a task to another node if its node drops out, and failing it back with
//!   the cause when none is left. A `RemoteAgent` is an agent too: a local swarm's topology
//!   routes to and supervises members that live on other nodes.
//! - With the `memory` feature, `Node::export_memory` / `Node::sharded_memory`: memories of
//!   several nodes as one; searches scatter to every shard and merge the top k.
//!
//! Depending on this crate switches ractor's `cluster` feature on for the whole build (ractor
//! then needs an explicit `ractor::Message` impl on every message type); apiary's own types
//! follow through apiary-core's and apiary-memory's `cluster` features.
#![deny(missing_docs)]

mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod heartbeat;
mod line;
mod members;
mod node;
mod remote;
#[cfg(feature = "memory")]
mod shard;
mod wire;

pub use error::{ClusterError, RemoteError};
pub use heartbeat::Heartbeat;
pub use node::{MembershipEvent, Node, NodeConfig, Tls};
pub use remote::RemoteAgent;
#[cfg(feature = "memory")]
pub use shard::{ShardedHits, ShardedMemory};
/// The rustls integration `Tls` is built from (the version ractor_cluster uses).
pub use tokio_rustls;
