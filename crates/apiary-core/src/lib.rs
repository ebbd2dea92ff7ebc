//! The apiary-core crate is the apiary runtime: agents as ractor actors, the swarm that runs
//! them, task handles, lifecycle events and swarm manifests.
//!
//! A user type implements [`Agent`]; a [`Swarm`] runs each agent in its own ractor actor
//! behind a bounded queue, starts agents in dependency order (planned by `apiary-planner`),
//! and hands out a [`TaskHandle`] per submitted task. Every task ends exactly once, with its
//! output or a [`TaskError`] saying why not. Lifecycle [`SwarmEvent`]s go to [`Hook`]s and to
//! [`EventStream`] subscribers. A [`Manifest`] loads a swarm's description from TOML and
//! validates all of it before anything starts.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
//!
//! struct Square;
//! impl Agent for Square {
//!     type Task = i64;
//!     type Output = i64;
//!     type Error = std::convert::Infallible;
//!     async fn handle(&mut self, n: i64, _: &AgentContext<i64, i64>) -> Result<i64, Self::Error> {
//!         Ok(n * n)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .agent(AgentSpec::new("square"), || Square)
//!     .start()
//!     .await?;
//! let mut handles = Vec::new();
//! for n in 1..=3 {
//!     handles.push(swarm.submit("square", n).await?);
//! }
//! let mut squares = Vec::new();
//! for h in handles {
//!     squares.push(h.await?);
//! }
//! assert_eq!(squares, [1, 4, 9]);
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actor;
mod agent;
mod builder;
mod context;
mod entry;
mod envelope;
mod error;
mod events;
mod manifest;
mod name;
mod pool;
mod queue;
mod root;
mod settings;
mod spec;
mod submit;
mod swarm;
mod task;
mod telemetry;
mod topology;
mod topology_spec;

pub use agent::Agent;
pub use builder::SwarmBuilder;
pub use context::AgentContext;
pub use error::{
    BoxError, SpecError, SubmitError, SubmitErrorKind, SwarmError, TaskError, UnknownAgent,
};
pub use events::{
    BreakerTransition, EventKind, EventStream, Hook, Outcome, RecvError, StopReason, SwarmEvent,
};
pub use manifest::{Manifest, ManifestError, ManifestErrorKind};
pub use name::AgentName;
pub use pool::{Pool, PoolBuilder, PoolError, Pooled};
pub use settings::{SwarmSettings, MAX_QUEUE_CAPACITY};
pub use spec::{AgentSpec, MAX_NAME_LEN};
pub use submit::SubmitOptions;
pub use swarm::Swarm;
pub use task::{TaskCanceller, TaskHandle, TaskId, TaskState};
pub use topology::{MemberView, RouteRequest, Topology, TopologyError};
pub use topology_spec::TopologySpec;

/// The shared memory agents reach through [`AgentContext::memory`]: key/value store and
/// FAISS pattern index.
pub use apiary_memory as memory;
pub use apiary_memory::Memory;
pub use apiary_supervisor::{BreakerConfig, RestartType};
