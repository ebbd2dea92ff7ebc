use std::fmt;

use crate::{DependencyGraph, Node, PlanError, PlanLimits};

/// Agents that may start together: all their dependencies are in earlier batches.
///
/// A view into its [`Plan`]: batches are slices of one list the plan keeps, so planning
/// allocates nothing per batch (an agent started alone is a batch of its own).
///
/// # Examples
///
/// ```
/// use apiary_planner::{Node, Plan, PlanLimits};
///
/// let plan = Plan::new(&[Node::new("a"), Node::new("b")], PlanLimits::default())?;
/// let first = plan.batches().next().unwrap();
/// assert_eq!(first.level(), 0);
/// assert_eq!(first.agents().collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(first.indices().collect::<Vec<_>>(), [0, 1]);
/// # Ok::<(), apiary_planner::PlanError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    level: usize,
    // The agents' positions among the nodes, in start order.
    indices: &'a [usize],
    nodes: &'a [Node],
}

impl<'a> Batch<'a> {
    /// The dependency level: the length of the longest dependency chain above this batch.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The agents of the batch, critical path first.
    pub fn agents(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let nodes = self.nodes;
        self.indices.iter().map(move |&i| nodes[i].name())
    }

    /// The same agents as their positions in the list of nodes the plan was made from, so a
    /// caller holding something per node finds it without a lookup by name.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = usize> + 'a {
        self.indices.iter().copied()
    }

    /// The number of agents in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (a plan never yields one).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("level", &self.level)
            .field("agents", &self.agents().collect::<Vec<_>>())
            .finish()
    }
}

/// Spawn batches for a set of agents, in the order they must start.
///
/// Levels are topological: an agent's level is one more than its deepest dependency. A level
/// is cut into batches by the [`PlanLimits`]; inside a level, agents with the longest chain of
/// dependents start first, ties broken by declaration order.
///
/// `Display` prints one line per batch; [`Plan::to_dot`] gives Graphviz DOT.
///
/// # Examples
///
/// ```
/// use apiary_planner::{Node, Plan, PlanLimits};
///
/// let nodes: Vec<Node> = (0..5).map(|i| Node::new(format!("w{i}"))).collect();
/// let plan = Plan::new(&nodes, PlanLimits::default().batch_size(2))?;
/// assert_eq!(plan.len(), 3);
/// assert_eq!(plan.to_string(), "batch 1 (level 0): w0, w1\nbatch 2 (level 0): w2, w3\nbatch 3 (level 0): w4\n");
/// # Ok::<(), apiary_planner::PlanError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Plan {
    graph: DependencyGraph,
    limits: PlanLimits,
    // Every node's index, in start order: the batches are consecutive runs of it.
    order: Vec<usize>,
    // Each batch's level, and where it starts and ends in `order`.
    batches: Vec<(usize, usize, usize)>,
    // batch number (0-based) of each node, by declaration index
    batch_of: Vec<usize>,
}

impl Plan {
    /// Validates the nodes and plans their batches.
    ///
    /// # Errors
    ///
    /// As [`DependencyGraph::new`]: duplicate names, unknown dependencies, cycles.
    pub fn new(nodes: &[Node], limits: PlanLimits) -> Result<Self, PlanError> {
        Ok(Self::from_graph(DependencyGraph::new(nodes)?, limits))
    }

    /// [`new`](Self::new), keeping the nodes rather than copying them.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn from_nodes(nodes: Vec<Node>, limits: PlanLimits) -> Result<Self, PlanError> {
        Ok(Self::from_graph(
            DependencyGraph::from_nodes(nodes)?,
            limits,
        ))
    }

    /// Plans the batches of an already validated graph.
    pub fn from_graph(graph: DependencyGraph, limits: PlanLimits) -> Self {
        let nodes = graph.nodes();
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        // Without dependencies every level and height is 0: declaration order stands.
        let levels = if graph.has_dependencies() {
            let levels = graph.levels(graph.topological_order());
            let heights = graph.heights(graph.topological_order());
            order.sort_by_key(|&i| (levels[i], std::cmp::Reverse(heights[i]), i));
            levels
        } else {
            vec![0; nodes.len()]
        };

        let mut batches: Vec<(usize, usize, usize)> = Vec::new();
        let mut batch_of = vec![0; nodes.len()];
        let (mut len, mut weight) = (0, 0);
        for (at, &i) in order.iter().enumerate() {
            let next = nodes[i].weight_value();
            let fits = batches.last().is_some_and(|&(level, _, _)| {
                level == levels[i] && limits.admits(len, weight, next)
            });
            if fits {
                len += 1;
                weight += next;
            } else {
                batches.push((levels[i], at, at));
                (len, weight) = (1, next);
            }
            batch_of[i] = batches.len() - 1;
            if let Some(last) = batches.last_mut() {
                last.2 = at + 1;
            }
        }
        Self {
            graph,
            limits,
            order,
            batches,
            batch_of,
        }
    }

    /// The batches, first to start first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = Batch<'_>> + '_ {
        let nodes = self.graph.nodes();
        self.batches.iter().map(move |&(level, start, end)| Batch {
            level,
            indices: &self.order[start..end],
            nodes,
        })
    }

    /// The number of batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether there is nothing to start.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The limits the plan was made with.
    pub fn limits(&self) -> PlanLimits {
        self.limits
    }

    /// The validated graph behind the plan.
    pub fn graph(&self) -> &DependencyGraph {
        &self.graph
    }

    /// The 0-based batch number of `agent`, if the plan has it.
    pub fn batch_of(&self, agent: &str) -> Option<usize> {
        let i = self.graph.nodes().iter().position(|n| n.name() == agent)?;
        Some(self.batch_of[i])
    }

    /// The plan as Graphviz DOT: one vertex per agent labelled with its batch, an edge from
    /// each dependency to its dependent. Ready for `dot -Tsvg`.
    pub fn to_dot(&self) -> String {
        use fmt::Write as _;
        let mut out = String::from("digraph plan {\n    rankdir=LR;\n    node [shape=box];\n");
        for (i, node) in self.graph.nodes().iter().enumerate() {
            let name = escape(node.name());
            let _ = writeln!(
                out,
                "    n{i} [label=\"{name}\\nbatch {}\"];",
                self.batch_of[i] + 1
            );
        }
        for (from, to) in self.graph.edges() {
            let _ = writeln!(out, "    n{from} -> n{to};");
        }
        out.push_str("}\n");
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, batch) in self.batches().enumerate() {
            writeln!(
                f,
                "batch {} (level {}): {}",
                i + 1,
                batch.level,
                batch.agents().collect::<Vec<_>>().join(", ")
            )?;
        }
        Ok(())
    }
}

fn escape(name: &str) -> String {
    name.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(plan: &Plan) -> Vec<Vec<&str>> {
        plan.batches().map(|b| b.agents().collect()).collect()
    }

    #[test]
    fn diamond_runs_in_three_levels() {
        let plan = Plan::new(
            &[
                Node::new("top"),
                Node::new("left").depends_on(["top"]),
                Node::new("right").depends_on(["top"]),
                Node::new("bottom").depends_on(["left", "right"]),
            ],
            PlanLimits::default(),
        )
        .unwrap();
        assert_eq!(
            names(&plan),
            [vec!["top"], vec!["left", "right"], vec!["bottom"]]
        );
        assert_eq!(plan.batch_of("bottom"), Some(2));
    }

    #[test]
    fn critical_path_goes_first_within_a_level() {
        let plan = Plan::new(
            &[
                Node::new("short"),
                Node::new("long"),
                Node::new("mid").depends_on(["long"]),
                Node::new("end").depends_on(["mid"]),
            ],
            PlanLimits::default().batch_size(1),
        )
        .unwrap();
        assert_eq!(
            names(&plan),
            [vec!["long"], vec!["short"], vec!["mid"], vec!["end"]]
        );
    }

    #[test]
    fn without_dependencies_declaration_order_is_cut_by_the_limits() {
        let nodes: Vec<Node> = ["c", "a", "b", "d", "e"]
            .into_iter()
            .map(|n| Node::new(n).weight(if n == "b" { 3 } else { 1 }))
            .collect();
        let plan = Plan::from_nodes(
            nodes,
            PlanLimits::default().batch_size(2).max_concurrency(3),
        )
        .unwrap();
        assert_eq!(names(&plan), [vec!["c", "a"], vec!["b"], vec!["d", "e"]]);
        let batches: Vec<Batch<'_>> = plan.batches().collect();
        assert_eq!(batches[1].indices().collect::<Vec<_>>(), [2]);
        assert_eq!(
            format!("{:?}", batches[2]),
            r#"Batch { level: 0, agents: ["d", "e"] }"#
        );
        assert_eq!(plan.batch_of("e"), Some(2));
        assert!(plan.batches().all(|b| b.level() == 0 && !b.is_empty()));
    }

    #[test]
    fn cycles_of_length_one_two_and_five_are_named_exactly() {
        let one = Plan::new(&[Node::new("a").depends_on(["a"])], PlanLimits::default());
        assert_eq!(
            one.unwrap_err(),
            PlanError::Cycle {
                path: vec!["a".into(), "a".into()]
            }
        );
        let two = Plan::new(
            &[
                Node::new("x"),
                Node::new("a").depends_on(["b"]),
                Node::new("b").depends_on(["a", "x"]),
            ],
            PlanLimits::default(),
        );
        assert_eq!(
            two.unwrap_err().to_string(),
            "dependency cycle: a -> b -> a"
        );
        let five: Vec<Node> = (0..5)
            .map(|i| Node::new(format!("n{i}")).depends_on([format!("n{}", (i + 1) % 5)]))
            .collect();
        assert_eq!(
            Plan::new(&five, PlanLimits::default())
                .unwrap_err()
                .to_string(),
            "dependency cycle: n0 -> n1 -> n2 -> n3 -> n4 -> n0"
        );
    }

    #[test]
    fn unknown_dependency_and_duplicates_name_the_agents() {
        let err = Plan::new(
            &[Node::new("a").depends_on(["ghost"])],
            PlanLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PlanError::UnknownDependency {
                agent: "a".into(),
                dependency: "ghost".into()
            }
        );
        let err = Plan::new(&[Node::new("a"), Node::new("a")], PlanLimits::default()).unwrap_err();
        assert_eq!(err.to_string(), "agent `a` is declared more than once");
    }

    #[test]
    fn weight_limit_splits_levels_and_isolates_heavy_nodes() {
        let plan = Plan::new(
            &[
                Node::new("a").weight(2),
                Node::new("b").weight(2),
                Node::new("huge").weight(9),
                Node::new("c").weight(1),
            ],
            PlanLimits::default().max_concurrency(4),
        )
        .unwrap();
        assert_eq!(names(&plan), [vec!["a", "b"], vec!["huge"], vec!["c"]]);
    }

    #[test]
    fn dot_lists_every_agent_and_edge() {
        let plan = Plan::new(
            &[Node::new("a"), Node::new("b\"q").depends_on(["a"])],
            PlanLimits::default(),
        )
        .unwrap();
        let dot = plan.to_dot();
        assert!(dot.contains("n0 [label=\"a\\nbatch 1\"];"), "{dot}");
        assert!(dot.contains("n1 [label=\"b\\\"q\\nbatch 2\"];"), "{dot}");
        assert!(dot.contains("n0 -> n1;"), "{dot}");
    }
}
