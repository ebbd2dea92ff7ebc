use thiserror::Error;

/// Why a set of declared dependencies cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Two nodes share a name.
    #[error("agent `{agent}` is declared more than once")]
    DuplicateAgent {
        /// The repeated name.
        agent: String,
    },
    /// A node depends on a name that no node has.
    #[error("agent `{agent}` depends on `{dependency}`, which is not declared")]
    UnknownDependency {
        /// The node that declares the dependency.
        agent: String,
        /// The missing dependency.
        dependency: String,
    },
    /// The dependencies form a cycle; the path is given in `depends on` order and ends
    /// where it started.
    #[error("dependency cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The agents on the cycle, the first repeated at the end (`a -> b -> a`).
        path: Vec<String>,
    },
}
