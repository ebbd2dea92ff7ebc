use std::sync::Arc;

/// One agent as the planner sees it: a name, its dependencies and its weight.
///
/// The weight is the number of actors the agent becomes (its replicas); it is what
/// [`PlanLimits::max_concurrency`](crate::PlanLimits::max_concurrency) counts.
///
/// # Examples
///
/// ```
/// use apiary_planner::Node;
///
/// let node = Node::new("test").depends_on(["build"]).weight(3);
/// assert_eq!(node.name(), "test");
/// assert_eq!(node.dependencies(), ["build"]);
/// assert_eq!(node.weight_value(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    // Shared: a caller that already holds the name (an apiary swarm does) gives it without a copy.
    name: Arc<str>,
    depends_on: Vec<String>,
    weight: usize,
}

impl Node {
    /// A node with no dependencies and weight 1. The name is a `&str`, a `String`, or an
    /// `Arc<str>` the caller already holds (which the node then shares).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            depends_on: Vec::new(),
            weight: 1,
        }
    }

    /// Adds dependencies: this node starts only after all of them are ready.
    pub fn depends_on<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on.extend(deps.into_iter().map(Into::into));
        self
    }

    /// Sets the weight (the number of actors this node starts); zero is treated as one.
    pub fn weight(mut self, weight: usize) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names this node depends on, in declaration order.
    pub fn dependencies(&self) -> &[String] {
        &self.depends_on
    }

    /// The node's weight.
    pub fn weight_value(&self) -> usize {
        self.weight
    }
}
