//! The apiary crate builds swarms of agents on real ractor actors.
//!
//! This is the facade: it re-exports the runtime ([`apiary_core`]), the planner
//! ([`planner`]) and the supervision vocabulary ([`supervisor`]), and offers a [`prelude`].
//!
//! Implement [`Agent`] for your types, start a [`Swarm`], submit tasks and await their
//! handles. Every agent runs in its own ractor actor behind a bounded queue; agents start in
//! dependency order; every task ends exactly once.
//!
//! # Examples
//!
//! ```
//! use apiary::prelude::*;
//!
//! struct Greeter;
//!
//! impl Agent for Greeter {
//!     type Task = String;
//!     type Output = String;
//!     type Error = std::convert::Infallible;
//!
//!     async fn handle(&mut self, name: String, ctx: &AgentContext<String, String>) -> Result<String, Self::Error> {
//!         Ok(format!("{} greets {name}", ctx.name()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .agent(AgentSpec::new("greeter"), || Greeter)
//!     .start()
//!     .await?;
//! let reply = swarm.submit("greeter", "the hive".to_string()).await?.await?;
//! assert_eq!(reply, "greeter greets the hive");
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub use apiary_core::*;

/// Dependency planning: petgraph DAG to spawn batches.
pub mod planner {
    pub use apiary_planner::*;
}

/// Restart types and circuit-breaker settings.
pub mod supervisor {
    pub use apiary_supervisor::*;
}

/// Swarms across processes and hosts through ractor_cluster: nodes, membership, remote
/// agents.
pub mod cluster {
    pub use apiary_cluster::*;
}

/// The built-in topologies, one crate each.
pub mod topology {
    pub use apiary_hierarchical::Hierarchy;
    pub use apiary_mesh::Mesh;
    pub use apiary_ring::Ring;
    pub use apiary_star::Star;
}

/// The types almost every swarm needs.
pub mod prelude {
    pub use apiary_core::{
        Agent, AgentContext, AgentSpec, EventKind, Memory, Outcome, SubmitOptions, Swarm,
        SwarmEvent, TaskError, TaskHandle, TaskState,
    };
}

// The README's code sample is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
