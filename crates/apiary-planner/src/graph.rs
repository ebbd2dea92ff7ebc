use std::collections::{HashMap, HashSet, VecDeque};

use foldhash::fast::RandomState;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction::{Incoming, Outgoing};

use crate::{Node, PlanError};

/// The validated dependency DAG: one vertex per agent, an edge from each dependency to the
/// agents that need it (the order things must start in).
///
/// # Examples
///
/// ```
/// use apiary_planner::{DependencyGraph, Node, PlanError};
///
/// let err = DependencyGraph::new(&[
///     Node::new("a").depends_on(["b"]),
///     Node::new("b").depends_on(["c"]),
///     Node::new("c").depends_on(["a"]),
/// ])
/// .unwrap_err();
/// assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
/// ```
#[derive(Debug, Clone)]
pub struct DependencyGraph {
    nodes: Vec<Node>,
    // Vertex weights are indices into `nodes`; vertex i is node i.
    graph: DiGraph<usize, ()>,
    // A topological order, found while checking for cycles and kept for planning.
    order: Vec<NodeIndex>,
}

impl DependencyGraph {
    /// Builds and validates the graph.
    ///
    /// # Errors
    ///
    /// In this order of checks: [`PlanError::DuplicateAgent`] for a repeated name,
    /// [`PlanError::UnknownDependency`] for a dependency no node has (naming both ends), and
    /// [`PlanError::Cycle`] naming the whole cycle. Repeated entries in one node's
    /// dependencies are harmless and counted once.
    pub fn new(nodes: &[Node]) -> Result<Self, PlanError> {
        Self::from_nodes(nodes.to_vec())
    }

    /// [`new`](Self::new), keeping the nodes rather than copying them.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn from_nodes(nodes: Vec<Node>) -> Result<Self, PlanError> {
        let mut index = HashMap::with_capacity_and_hasher(nodes.len(), RandomState::default());
        let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            if index.insert(node.name(), NodeIndex::new(i)).is_some() {
                return Err(PlanError::DuplicateAgent {
                    agent: node.name().to_owned(),
                });
            }
            graph.add_node(i);
        }
        for (i, node) in nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for dep in node.dependencies() {
                let Some(&from) = index.get(dep.as_str()) else {
                    return Err(PlanError::UnknownDependency {
                        agent: node.name().to_owned(),
                        dependency: dep.clone(),
                    });
                };
                if seen.insert(from) {
                    graph.add_edge(from, NodeIndex::new(i), ());
                }
            }
        }
        drop(index);
        if graph.edge_count() == 0 {
            // Nothing depends on anything: declaration order is topological.
            let order = graph.node_indices().collect();
            return Ok(Self {
                nodes,
                graph,
                order,
            });
        }
        // A topological sort finds whether there is a cycle; only then is the cycle looked
        // for, to name it. The order is kept: planning needs it.
        match toposort(&graph, None) {
            Ok(order) => Ok(Self {
                nodes,
                graph,
                order,
            }),
            Err(_) => {
                let this = Self {
                    nodes,
                    graph,
                    order: Vec::new(),
                };
                let path = this.first_cycle().unwrap_or_default();
                Err(PlanError::Cycle { path })
            }
        }
    }

    /// The nodes, in declaration order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Whether any node depends on another.
    pub(crate) fn has_dependencies(&self) -> bool {
        self.graph.edge_count() > 0
    }

    /// For each node, the length of the longest dependency chain above it (0 for a root);
    /// `order` is a topological order of the graph.
    pub(crate) fn levels(&self, order: &[NodeIndex]) -> Vec<usize> {
        let mut level = vec![0; self.nodes.len()];
        for &v in order {
            let l = self
                .graph
                .neighbors_directed(v, Incoming)
                .map(|d| level[d.index()] + 1)
                .max()
                .unwrap_or(0);
            level[v.index()] = l;
        }
        level
    }

    /// For each node, the length of the longest chain of dependents below it (its critical
    /// path; 0 for a node nothing depends on); `order` is a topological order of the graph.
    pub(crate) fn heights(&self, order: &[NodeIndex]) -> Vec<usize> {
        let mut height = vec![0; self.nodes.len()];
        for &v in order.iter().rev() {
            let h = self
                .graph
                .neighbors_directed(v, Outgoing)
                .map(|d| height[d.index()] + 1)
                .max()
                .unwrap_or(0);
            height[v.index()] = h;
        }
        height
    }

    /// The edges as (dependency, dependent) index pairs, in insertion order.
    pub(crate) fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.graph
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index()))
    }

    /// Every node, each after all of its dependencies.
    pub(crate) fn topological_order(&self) -> &[NodeIndex] {
        &self.order
    }

    /// The cycle through the earliest-declared node that lies on one, as names in
    /// `depends on` order, closed (`a -> b -> a`). `None` for a DAG.
    fn first_cycle(&self) -> Option<Vec<String>> {
        let start = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]))
            .filter_map(|scc| scc.into_iter().min())
            .min()?;
        if self.graph.contains_edge(start, start) {
            let name = self.nodes[start.index()].name().to_owned();
            return Some(vec![name.clone(), name]);
        }
        // Breadth-first along `depends on` (incoming edges) for the shortest way back to
        // `start`; the strongly connected component guarantees one exists.
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            let mut deps: Vec<NodeIndex> = self.graph.neighbors_directed(v, Incoming).collect();
            deps.sort();
            for d in deps {
                if d == start {
                    let mut path = vec![start];
                    let mut cur = v;
                    while cur != start {
                        path.push(cur);
                        cur = parent[&cur];
                    }
                    // `path` runs start, then back from v; put it in walking order.
                    path[1..].reverse();
                    path.push(start);
                    return Some(
                        path.into_iter()
                            .map(|i| self.nodes[i.index()].name().to_owned())
                            .collect(),
                    );
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(d) {
                    e.insert(v);
                    queue.push_back(d);
                }
            }
        }
        None
    }
}
