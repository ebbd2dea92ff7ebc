//! Property test: on random DAGs every agent is planned once, after all of its
//! dependencies, and no batch breaks the limits.

use std::collections::HashMap;

use apiary_planner::{Node, Plan, PlanLimits};
use proptest::prelude::*;

/// A random DAG: node i may depend only on nodes with a smaller index.
fn dag() -> impl Strategy<Value = Vec<Node>> {
    (1usize..60).prop_flat_map(|n| {
        let deps = proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
            n,
        );
        let weights = proptest::collection::vec(1usize..5, n);
        (deps, weights).prop_map(move |(deps, weights)| {
            deps.into_iter()
                .zip(weights)
                .enumerate()
                .map(|(i, (d, w))| {
                    let node = Node::new(format!("a{i}")).weight(w);
                    if i == 0 {
                        node
                    } else {
                        node.depends_on(d.into_iter().map(|ix| format!("a{}", ix.index(i))))
                    }
                })
                .collect()
        })
    })
}

proptest! {
    #[test]
    fn batches_respect_dependencies_and_limits(
        nodes in dag(),
        batch_size in 0usize..6,
        max_concurrency in 0usize..10,
    ) {
        let limits = PlanLimits::default().batch_size(batch_size).max_concurrency(max_concurrency);
        let plan = Plan::new(&nodes, limits).unwrap();
        let weight: HashMap<&str, usize> = nodes.iter().map(|n| (n.name(), n.weight_value())).collect();
        let mut batch_of = HashMap::new();
        for (b, batch) in plan.batches().enumerate() {
            prop_assert!(!batch.is_empty());
            if batch_size > 0 {
                prop_assert!(batch.len() <= batch_size);
            }
            let w: usize = batch.agents().map(|a| weight[a]).sum();
            if max_concurrency > 0 && batch.len() > 1 {
                prop_assert!(w <= max_concurrency);
            }
            // Each index names the node the batch names.
            let by_index: Vec<&str> = batch.indices().map(|i| nodes[i].name()).collect();
            prop_assert_eq!(by_index, batch.agents().collect::<Vec<_>>());
            for agent in batch.agents() {
                prop_assert!(batch_of.insert(agent.to_owned(), b).is_none(), "{} planned twice", agent);
            }
        }
        prop_assert_eq!(batch_of.len(), nodes.len());
        for node in &nodes {
            for dep in node.dependencies() {
                prop_assert!(batch_of[dep] < batch_of[node.name()]);
            }
        }
        // Deterministic: the same input plans the same way, whether the nodes are lent or given.
        prop_assert_eq!(Plan::new(&nodes, limits).unwrap().to_string(), plan.to_string());
        prop_assert_eq!(Plan::from_nodes(nodes.clone(), limits).unwrap().to_string(), plan.to_string());
    }
}
