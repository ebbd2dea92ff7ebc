//! The apiary-ring crate is the ring topology: each agent hands its work on to its successor.
//!
//! Members stand in a ring (their start order, or an order you give). An agent may send only
//! to its successor — the next member that is alive, so a member that is down (restarting, or
//! gone) is routed around until it is back — which
//! [`AgentContext::successor`](apiary_core::AgentContext::successor) names. Hand a task on
//! there with [`AgentContext::hand_off`](apiary_core::AgentContext::hand_off) (the agent is free
//! at once, however many times work goes round) or send it with
//! [`AgentContext::forward`](apiary_core::AgentContext::forward) and await it (which holds the
//! agent, and deadlocks once work comes back round to an agent still waiting). A task submitted
//! to the swarm as a whole enters at the head (the first live member). Each agent takes its
//! tasks in order, so a pipeline around the ring keeps the order tasks entered in.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm};
//! use apiary_ring::Ring;
//!
//! /// Adds its name to the path and passes it on until it has been round once.
//! struct Stage;
//! impl Agent for Stage {
//!     type Task = Vec<String>;
//!     type Output = Vec<String>;
//!     type Error = BoxError;
//!     async fn handle(&mut self, mut path: Vec<String>, ctx: &AgentContext<Vec<String>, Vec<String>>) -> Result<Vec<String>, BoxError> {
//!         path.push(ctx.name().to_string());
//!         if path.len() == 3 {
//!             return Ok(path);
//!         }
//!         let next = ctx.successor::<Vec<String>, Vec<String>>()?;
//!         Err(ctx.hand_off(&next, path).await.into())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .topology(Ring::new())
//!     .agent(AgentSpec::new("parse"), || Stage)
//!     .agent(AgentSpec::new("check"), || Stage)
//!     .agent(AgentSpec::new("emit"), || Stage)
//!     .start()
//!     .await?;
//! let path = swarm.route::<Vec<String>, Vec<String>>(Vec::new()).await?.await?;
//! assert_eq!(path, ["parse", "check", "emit"]);
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

use apiary_core::{AgentName, MemberView, RouteRequest, Topology, TopologyError};

/// Members in a ring; each reaches only its next live member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ring {
    order: Option<Vec<String>>,
}

impl Ring {
    /// A ring in the agents' start order.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring in this order (every name must be an agent of the swarm; agents left out are
    /// not part of the ring).
    pub fn with_order<I, S>(order: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            order: Some(order.into_iter().map(Into::into).collect()),
        }
    }

    /// The members in ring order.
    fn ring<'m, 'a>(&self, members: &'m [MemberView<'a>]) -> Vec<&'m MemberView<'a>> {
        match &self.order {
            None => members.iter().collect(),
            Some(order) => order
                .iter()
                .filter_map(|n| members.iter().find(|m| m.name == n.as_str()))
                .collect(),
        }
    }
}

impl Topology for Ring {
    fn name(&self) -> &str {
        "ring"
    }

    fn validate(&self, members: &[MemberView<'_>]) -> Result<(), TopologyError> {
        if members.is_empty() {
            return Err(TopologyError::new(
                "ring",
                "a ring needs at least one agent",
            ));
        }
        if let Some(order) = &self.order
            && let Some(missing) = order
                .iter()
                .find(|n| !members.iter().any(|m| m.name == n.as_str()))
        {
            return Err(TopologyError::new(
                "ring",
                format!("`{missing}` is in the ring order but not an agent of the swarm"),
            ));
        }
        Ok(())
    }

    fn allows(&self, from: &str, to: &str, members: &[MemberView<'_>]) -> bool {
        self.successor(from, members).is_some_and(|next| next == to)
    }

    fn successor(&self, from: &str, members: &[MemberView<'_>]) -> Option<AgentName> {
        let ring = self.ring(members);
        let at = ring.iter().position(|m| m.name == from)?;
        (1..ring.len())
            .map(|step| ring[(at + step) % ring.len()])
            .find(|m| m.alive())
            .map(|m| m.name.clone())
    }

    fn route(&self, _request: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        self.ring(members)
            .into_iter()
            .find(|m| m.alive())
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(name: &'a AgentName, alive: bool) -> MemberView<'a> {
        MemberView::new(name, "", &[], 0, alive)
    }

    #[test]
    fn successors_skip_dead_members_and_wrap() {
        let names: Vec<AgentName> = ["a", "b", "c", "d"]
            .into_iter()
            .map(AgentName::from)
            .collect();
        let members = [
            view(&names[0], true),
            view(&names[1], true),
            view(&names[2], false),
            view(&names[3], true),
        ];
        let ring = Ring::new();
        assert_eq!(ring.successor("a", &members).unwrap(), "b");
        assert_eq!(
            ring.successor("b", &members).unwrap(),
            "d",
            "c is down: routed around"
        );
        assert_eq!(ring.successor("d", &members).unwrap(), "a", "wraps");
        assert!(ring.allows("b", "d", &members) && !ring.allows("b", "c", &members));
        assert!(!ring.allows("a", "c", &members), "no skipping live members");
        let reversed = Ring::with_order(["d", "b", "a"]);
        assert_eq!(reversed.successor("d", &members).unwrap(), "b");
        assert_eq!(
            reversed.route(&RouteRequest::default(), &members).unwrap(),
            "d"
        );
        let err = Ring::with_order(["a", "zz"])
            .validate(&members)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "topology `ring`: `zz` is in the ring order but not an agent of the swarm"
        );
    }
}
