//! The apiary-core crate is the apiary runtime: agents of many kinds as ractor actors, the
//! swarm that runs them, typed references, task handles, lifecycle events and swarm
//! manifests. It knows nothing of FAISS, redb or HTTP: what agents need from those parts
//! reaches them as typed resources of the swarm.
//!
//! A user type implements [`Agent`], with its own task, output and error types; a [`Swarm`]
//! runs each agent replica in its own ractor actor behind a bounded queue, starts agents in
//! dependency order (planned by `apiary-planner`), supervises and restarts them, and gives
//! out typed references ([`AgentRef`]) through which tasks are submitted. Each submission
//! returns a [`TaskHandle`]; every task ends exactly once, with its output or a
//! [`TaskError`] saying why not. Lifecycle [`SwarmEvent`]s go to [`Hook`]s and to
//! [`EventStream`] subscribers. A [`Topology`] decides who may reach whom and where
//! swarm-level tasks land. A [`Manifest`] loads a swarm's description from TOML and
//! validates all of it before anything starts.
//!
//! # Layers
//!
//! Modules import only from the layers below them:
//!
//! 1. plain data: names and ids, specs, settings, manifests, errors, submit options,
//!    resources, the topology trait;
//! 2. events and metrics; tasks (their shared state and handles); queues;
//! 3. the mailbox (messages, envelopes, tickets), then agent entries (replicas, delivery,
//!    parking), then the registry (agents by name, started members, topology);
//! 4. the runtime the parts share, typed references, contexts, the `Agent` trait;
//! 5. the actor that runs an agent and the factory that starts it; the supervising root,
//!    which sees the swarm only through a narrow trait;
//! 6. the public swarm, its builder, and pools.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentSpec, Ctx, Swarm};
//!
//! struct Square;
//! impl Agent for Square {
//!     type Task = i64;
//!     type Output = i64;
//!     type Error = std::convert::Infallible;
//!     async fn handle(&mut self, n: i64, _: &Ctx<Self>) -> Result<i64, Self::Error> {
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
//! let square = swarm.agent::<i64, i64>("square")?;
//! let mut handles = Vec::new();
//! for n in 1..=3 {
//!     handles.push(square.submit(n).await?);
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

// Layer 1: plain data.
mod error;
mod manifest;
mod name;
mod resources;
mod settings;
mod spec;
mod submit;
mod task_id;
mod topology;
mod topology_spec;
// Layer 2: events, metrics, tasks, queues.
pub mod events;
mod line;
mod queue;
mod signal;
mod sync;
mod task;
mod telemetry;
// Layer 3: delivery.
mod entry;
mod mailbox;
mod registry;
// Layer 4: what agents and callers hold.
mod agent;
mod agent_ref;
mod approval;
mod caller;
mod context;
mod runtime;
// Layer 5: actors.
mod actor;
mod factory;
mod root;
// Layer 6: the public swarm.
mod builder;
mod pool;
mod swarm;

pub use agent::{Agent, Ctx};
pub use agent_ref::AgentRef;
pub use approval::{
    Approval, ApprovalError, ApprovalRequest, Approvals, Approved, Decision, PendingApproval,
    Rejected,
};
pub use builder::SwarmBuilder;
pub use caller::Caller;
pub use context::AgentContext;
pub use error::{
    BoxError, LookupError, SpecError, SubmitError, SubmitErrorKind, SwarmError, TaskError,
    UnknownAgent,
};
pub use events::{
    BreakerTransition, EventKind, EventStream, Hook, Outcome, RecvError, StopReason, SwarmEvent,
};
pub use manifest::{
    BudgetSpec, EmbedderKind, Manifest, ManifestError, ManifestErrorKind, MemorySpec, SpendLimits,
};
pub use name::AgentName;
pub use pool::{Pool, PoolBuilder, PoolError, Pooled};
pub use resources::MissingResource;
pub use settings::{SwarmSettings, MAX_QUEUE_CAPACITY};
pub use spec::{AgentSpec, MAX_NAME_LEN};
pub use submit::SubmitOptions;
pub use swarm::Swarm;
pub use task::{TaskCanceller, TaskHandle, TaskState};
pub use task_id::TaskId;
pub use topology::{MemberView, RouteRequest, Topology, TopologyError};
pub use topology_spec::TopologySpec;

pub use apiary_supervisor::{BreakerConfig, RestartType};
