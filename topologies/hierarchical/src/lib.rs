//! The apiary-hierarchical crate is the hierarchical topology: a tree of coordinators; tasks
//! flow down to workers, results and failures flow back up.
//!
//! Coordinators are agents that lead others (workers or lower coordinators). A task submitted
//! to the swarm as a whole lands on the root coordinator; a coordinator hands a task down with
//! [`AgentContext::delegate`](apiary_core::AgentContext::delegate) (or hands it down with
//! [`delegate_target`](apiary_core::AgentContext::delegate_target) and
//! [`hand_off`](apiary_core::AgentContext::hand_off)), which picks, among the members it leads
//! whose subtree has the capability asked for, the least-loaded live one. An
//! agent may send only to its coordinator or to the members it leads. A worker's failure comes
//! back to the coordinator that delegated the task (through the task's handle), which decides
//! or passes it further up.
//!
//! Build the tree by hand ([`Hierarchy::lead`]) or from a fan-out
//! ([`Hierarchy::with_fan_out`]).
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm};
//! use apiary_hierarchical::Hierarchy;
//!
//! struct Lead;
//! impl Agent for Lead {
//!     type Task = (String, u32);
//!     type Output = String;
//!     type Error = BoxError;
//!     async fn handle(&mut self, (skill, n): (String, u32), ctx: &AgentContext<(String, u32), String>) -> Result<String, BoxError> {
//!         // Handed down: the worker's answer is this task's, and the lead is free at once.
//!         let worker = ctx.delegate_target(Some(skill.as_str()))?;
//!         Err(ctx.hand_off(&worker, (skill.clone(), n)).await.into())
//!     }
//! }
//!
//! struct Worker;
//! impl Agent for Worker {
//!     type Task = (String, u32);
//!     type Output = String;
//!     type Error = BoxError;
//!     async fn handle(&mut self, (skill, n): (String, u32), ctx: &AgentContext<(String, u32), String>) -> Result<String, BoxError> {
//!         Ok(format!("{} did {skill} #{n}", ctx.name()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .topology(Hierarchy::new().lead("lead", ["rustacean", "writer"]))
//!     .agent(AgentSpec::new("rustacean").capabilities(["rust"]), || Worker)
//!     .agent(AgentSpec::new("writer").capabilities(["docs"]), || Worker)
//!     .agent(AgentSpec::new("lead").depends_on(["rustacean", "writer"]), || Lead)
//!     .start()
//!     .await?;
//! let out = swarm.route::<(String, u32), String>(("docs".into(), 1)).await?.await?;
//! assert_eq!(out, "writer did docs #1");
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use apiary_core::{AgentName, MemberView, RouteRequest, Topology, TopologyError};

/// A tree of coordinators over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchy {
    // member -> its coordinator
    parent: HashMap<String, String>,
    // coordinator -> members it leads, in the order given
    children: BTreeMap<String, Vec<String>>,
}

impl Hierarchy {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// `coordinator` leads `members` (workers or lower coordinators).
    pub fn lead<I, S>(mut self, coordinator: impl Into<String>, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let coordinator = coordinator.into();
        for m in members {
            let m = m.into();
            self.parent.insert(m.clone(), coordinator.clone());
            self.children
                .entry(coordinator.clone())
                .or_default()
                .push(m);
        }
        self
    }

    /// A tree with a fan-out: `workers` are split, in order, into groups of at most
    /// `fan_out` under `coordinators[1..]`, which in turn report to `coordinators[0]` (the
    /// root) — or, with one coordinator, all workers report to it. Leftover coordinators lead
    /// nobody and are rejected by `validate`.
    pub fn with_fan_out(coordinators: &[&str], workers: &[&str], fan_out: usize) -> Self {
        let fan_out = fan_out.max(1);
        let Some((root, middle)) = coordinators.split_first() else {
            return Self::new();
        };
        if middle.is_empty() {
            return Self::new().lead(*root, workers.iter().copied());
        }
        let mut tree = Self::new().lead(*root, middle.iter().copied());
        for (lead, group) in middle.iter().zip(workers.chunks(fan_out)) {
            tree = tree.lead(*lead, group.iter().copied());
        }
        tree
    }

    fn root(&self) -> Option<&str> {
        self.children
            .keys()
            .find(|c| !self.parent.contains_key(c.as_str()))
            .map(String::as_str)
    }

    /// Whether `name`'s subtree (itself included) has an agent with the capability.
    fn subtree_can(
        &self,
        name: &str,
        capability: Option<&str>,
        members: &[MemberView<'_>],
    ) -> bool {
        let me = members.iter().find(|m| m.name == name);
        if me.is_some_and(|m| m.can(capability)) {
            return true;
        }
        self.children.get(name).is_some_and(|kids| {
            kids.iter()
                .any(|k| self.subtree_can(k, capability, members))
        })
    }
}

impl Topology for Hierarchy {
    fn name(&self) -> &str {
        "hierarchical"
    }

    fn validate(&self, members: &[MemberView<'_>]) -> Result<(), TopologyError> {
        let err = |reason: String| Err(TopologyError::new("hierarchical", reason));
        let known: HashSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
        for name in self.parent.keys().chain(self.children.keys()) {
            if !known.contains(name.as_str()) {
                return err(format!(
                    "`{name}` is in the tree but not an agent of the swarm"
                ));
            }
        }
        let roots: Vec<&String> = self
            .children
            .keys()
            .filter(|c| !self.parent.contains_key(c.as_str()))
            .collect();
        match roots.as_slice() {
            [_] => {}
            [] => return err("the tree has no root coordinator (is it a cycle?)".into()),
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                return err(format!("the tree has several roots: {}", names.join(", ")));
            }
        }
        // Every member must reach the root by its coordinators without looping.
        for start in self.parent.keys() {
            let mut seen = HashSet::new();
            let mut at = start.as_str();
            while let Some(up) = self.parent.get(at) {
                if !seen.insert(at) {
                    return err(format!("`{start}` is in a cycle of coordinators"));
                }
                at = up;
            }
        }
        Ok(())
    }

    fn allows(&self, from: &str, to: &str, _members: &[MemberView<'_>]) -> bool {
        self.parent.get(to).is_some_and(|p| p == from)
            || self.parent.get(from).is_some_and(|p| p == to)
    }

    fn supervisor(&self, agent: &str) -> Option<&str> {
        self.parent.get(agent).map(String::as_str)
    }

    fn route(&self, _request: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        let root = self.root()?;
        members
            .iter()
            .find(|m| m.name == root)
            .map(|m| m.name.clone())
    }

    fn delegate(
        &self,
        from: &str,
        request: &RouteRequest<'_>,
        members: &[MemberView<'_>],
    ) -> Option<AgentName> {
        let kids = self.children.get(from)?;
        kids.iter()
            .filter_map(|k| members.iter().find(|m| m.name == k.as_str()))
            .filter(|m| m.alive() && self.subtree_can(m.name.as_str(), request.capability, members))
            .min_by_key(|m| m.load())
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views<'a>(names: &'a [AgentName], caps: &'a [Vec<String>]) -> Vec<MemberView<'a>> {
        names
            .iter()
            .zip(caps)
            .map(|(name, capabilities)| MemberView::new(name, "", capabilities, 0, true))
            .collect()
    }

    #[test]
    fn fan_out_builds_groups_and_edges_go_up_and_down_only() {
        let tree = Hierarchy::with_fan_out(&["root", "l1", "l2"], &["w1", "w2", "w3", "w4"], 2);
        assert!(tree.allows("root", "l1", &[]) && tree.allows("l1", "root", &[]));
        assert!(tree.allows("l2", "w4", &[]) && tree.allows("w3", "l2", &[]));
        assert!(!tree.allows("w1", "w2", &[]), "siblings do not talk");
        assert!(!tree.allows("root", "w1", &[]), "no skipping levels");
    }

    #[test]
    fn delegation_follows_capabilities_down_the_tree() {
        let names: Vec<AgentName> = ["root", "l1", "l2", "w1", "w2"]
            .into_iter()
            .map(AgentName::from)
            .collect();
        let caps = vec![
            vec![],
            vec![],
            vec![],
            vec!["rust".to_string()],
            vec!["go".to_string()],
        ];
        let members = views(&names, &caps);
        let tree = Hierarchy::new()
            .lead("root", ["l1", "l2"])
            .lead("l1", ["w1"])
            .lead("l2", ["w2"]);
        tree.validate(&members).unwrap();
        let go = RouteRequest {
            capability: Some("go"),
        };
        assert_eq!(tree.delegate("root", &go, &members).unwrap(), "l2");
        assert_eq!(tree.delegate("l2", &go, &members).unwrap(), "w2");
        assert_eq!(tree.delegate("l1", &go, &members), None);
        assert_eq!(
            tree.route(&RouteRequest::default(), &members).unwrap(),
            "root"
        );
    }

    #[test]
    fn bad_trees_are_named() {
        let names: Vec<AgentName> = ["a", "b"].into_iter().map(AgentName::from).collect();
        let caps = vec![vec![], vec![]];
        let members = views(&names, &caps);
        let e = Hierarchy::new()
            .lead("a", ["ghost"])
            .validate(&members)
            .unwrap_err();
        assert_eq!(
            e.reason(),
            "`ghost` is in the tree but not an agent of the swarm"
        );
        let e = Hierarchy::new()
            .lead("a", ["b"])
            .lead("b", ["a"])
            .validate(&members)
            .unwrap_err();
        assert!(e.reason().contains("no root"), "{e}");
    }
}
