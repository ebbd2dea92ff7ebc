//! The apiary crate builds swarms of agents on real ractor actors.
//!
//! This is the facade: it re-exports the runtime ([`apiary_core`]), the planner
//! ([`planner`]), the supervision vocabulary ([`supervisor`]), the built-in [`topology`]s and
//! the metric catalogue ([`metrics`]), and offers a [`prelude`].
//!
//! Implement [`Agent`] for your types (each with its own task and output types), start a
//! [`Swarm`], take a typed [`AgentRef`] to an agent, submit tasks and await their handles.
//! Every agent runs in its own ractor actor behind a bounded queue; agents start in
//! dependency order; every task ends exactly once.
//!
//! # Features
//!
//! Heavy parts are opt-in; with no features, apiary builds without a C++ toolchain.
//!
//! | feature | what it adds | what it pulls in |
//! | --- | --- | --- |
//! | `memory` | `apiary::memory`: the memory actor, KV with TTL and a FAISS pattern index | FAISS (C++, cmake, BLAS), redb |
//! | `cluster` | `apiary::cluster`: swarms across processes and hosts | ractor_cluster, rustls; ractor's `cluster` feature |
//! | `prometheus` | `apiary::metrics::Exporter`: `/metrics` over HTTP | metrics-exporter-prometheus, hyper |
//! | `journal` | `apiary::journal`: durable tasks and steps, resume after a crash | redb (pure Rust) |
//! | `full` | all of the above | |
//!
//! None is on by default. A memory reaches agents as a resource of the swarm
//! ([`SwarmBuilder::resource`], [`AgentContext::resource`]).
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
//!     async fn handle(&mut self, name: String, ctx: &Ctx<Self>) -> Result<String, Self::Error> {
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
//! let greeter = swarm.agent::<String, String>("greeter")?;
//! let reply = greeter.submit("the hive".to_string()).await?.await?;
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

/// The metric catalogue (names, labels, help); with the `prometheus` feature, the exporter
/// that serves them.
pub mod metrics {
    pub use apiary_metrics::*;
}

/// The memory actor: namespaced key/value store with TTL and a FAISS pattern index, crash-safe
/// on disk. Give it to a swarm as a resource:
///
/// ```
/// use apiary::memory::{Memory, MemoryConfig};
/// use apiary::prelude::*;
///
/// struct Recall;
/// impl Agent for Recall {
///     type Task = String;
///     type Output = Option<String>;
///     type Error = BoxError;
///     async fn handle(&mut self, key: String, ctx: &Ctx<Self>) -> Result<Option<String>, BoxError> {
///         Ok(ctx.resource::<Memory>()?.get(&key).await?)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let memory = Memory::open(MemoryConfig::new(64)).await?;
/// memory.put("notes/plan", &"a ring of five".to_string()).await?;
/// let swarm = Swarm::builder()
///     .resource(memory.clone())
///     .agent(AgentSpec::new("recall"), || Recall)
///     .start()
///     .await?;
/// let recall = swarm.agent::<String, Option<String>>("recall")?;
/// let note = recall.submit("notes/plan".into()).await?.await?;
/// assert_eq!(note.as_deref(), Some("a ring of five"));
/// swarm.shutdown().await;
/// memory.close().await;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "memory")]
pub mod memory {
    pub use apiary_memory::*;
}

/// Durable swarms: a journal of tasks and the steps inside them on redb, so a process that
/// dies is resumed without redoing finished work.
#[cfg(feature = "journal")]
pub mod journal {
    pub use apiary_journal::*;
}

/// Model-calling agents: OpenAI-compatible and Anthropic endpoints, streaming, tools (peers
/// of the swarm included), usage and cost, budgets enforced before each call, shared rate
/// limits, record and replay. See `docs/llm.md`.
#[cfg(feature = "llm")]
pub mod llm {
    pub use apiary_llm::*;
}

/// Watch and steer a running swarm from a browser: live events over server-sent events, a
/// JSON snapshot, an embedded page, pause/resume, cancel and approvals.
#[cfg(feature = "web")]
pub mod web {
    pub use apiary_web::*;
}

/// Swarms across processes and hosts through ractor_cluster: nodes, membership, remote
/// agents.
#[cfg(feature = "cluster")]
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
        Agent, AgentContext, AgentRef, AgentSpec, BoxError, Ctx, EventKind, Outcome, SubmitOptions,
        Swarm, SwarmEvent, TaskError, TaskHandle, TaskState,
    };
}

// The README's code samples are compiled and run as doc tests (its memory sample needs the
// `memory` feature).
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
