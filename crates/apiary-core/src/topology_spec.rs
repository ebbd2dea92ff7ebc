//! `[topology]` in a manifest: which built-in topology a swarm runs under, and its shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A built-in topology as a manifest declares it. `apiary-core` does not build topologies
/// (they live in their own crates); the `apiary` binary turns this into one.
///
/// ```toml
/// [topology]
/// kind = "hierarchical"
/// leads = { report = ["build", "fmt"], build = ["lint", "test"] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TopologySpec {
    /// Everyone talks to everyone.
    Mesh,
    /// One hub routes everything.
    Star {
        /// The hub agent.
        hub: String,
    },
    /// Each agent passes work to the next.
    Ring {
        /// The ring order (default: declaration order).
        #[serde(default)]
        order: Vec<String>,
    },
    /// Coordinators lead the agents listed under them; supervision follows the tree.
    Hierarchical {
        /// Coordinator -> the agents it leads.
        leads: BTreeMap<String, Vec<String>>,
    },
}

impl TopologySpec {
    /// The topology's name (`mesh`, `star`, `ring`, `hierarchical`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::Star { .. } => "star",
            Self::Ring { .. } => "ring",
            Self::Hierarchical { .. } => "hierarchical",
        }
    }

    /// Every agent name the spec mentions, with the field it is under.
    pub(crate) fn names(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Mesh => Vec::new(),
            Self::Star { hub } => vec![("topology.hub", hub.as_str())],
            Self::Ring { order } => order
                .iter()
                .map(|n| ("topology.order", n.as_str()))
                .collect(),
            Self::Hierarchical { leads } => leads
                .iter()
                .flat_map(|(lead, members)| {
                    std::iter::once(lead)
                        .chain(members)
                        .map(|n| ("topology.leads", n.as_str()))
                })
                .collect(),
        }
    }
}
