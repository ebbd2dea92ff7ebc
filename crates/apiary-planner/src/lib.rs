//! The apiary-planner crate turns the dependencies agents declare into spawn batches.
//!
//! Every agent of a batch has all of its dependencies in earlier batches, so a runtime can
//! start a batch concurrently and move on once all of it is ready. Inside a dependency level
//! the agents on the longest remaining dependency chain (the critical path) come first, and
//! batches respect a [`PlanLimits`]. The plan is deterministic: the same input always gives
//! the same batches in the same order.
//!
//! The planner knows nothing of actors; it plans names. A caller that keeps something per
//! node (an apiary swarm keeps each agent's entry) finds it through [`Batch::indices`], the
//! agents' positions in the list of nodes, rather than by name; [`Plan::from_nodes`] takes
//! that list without copying it, and batches are views into the plan: planning allocates
//! nothing per batch.
//!
//! # Examples
//!
//! ```
//! use apiary_planner::{Node, Plan, PlanLimits};
//!
//! let nodes = [
//!     Node::new("fetch"),
//!     Node::new("lint").depends_on(["fetch"]),
//!     Node::new("build").depends_on(["fetch"]),
//!     Node::new("test").depends_on(["build"]),
//! ];
//! let plan = Plan::new(&nodes, PlanLimits::default())?;
//! let batches: Vec<Vec<&str>> = plan.batches().map(|b| b.agents().collect()).collect();
//! // `build` leads a longer chain than `lint`, so it comes first in its level.
//! assert_eq!(batches, [vec!["fetch"], vec!["build", "lint"], vec!["test"]]);
//! # Ok::<(), apiary_planner::PlanError>(())
//! ```

mod error;
mod graph;
mod limits;
mod node;
mod plan;

pub use error::PlanError;
pub use graph::DependencyGraph;
pub use limits::PlanLimits;
pub use node::Node;
pub use plan::{Batch, Plan};
