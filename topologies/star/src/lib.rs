//! The apiary-star crate is the star topology: a hub routes everything; spokes never talk to
//! each other directly.
//!
//! Every task submitted to the swarm as a whole lands on the hub, which hands work to spokes
//! through its context. A spoke may send to the hub only; a spoke-to-spoke send fails with
//! [`SubmitErrorKind::NotAllowed`](apiary_core::SubmitErrorKind::NotAllowed), naming both ends.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, SubmitErrorKind, Swarm};
//! use apiary_star::Star;
//!
//! struct Spoke;
//! impl Agent for Spoke {
//!     type Task = u32;
//!     type Output = u32;
//!     type Error = BoxError;
//!     async fn handle(&mut self, n: u32, ctx: &AgentContext<u32, u32>) -> Result<u32, BoxError> {
//!         if n == 0 {
//!             // Talking to another spoke is refused by the topology.
//!             let right = ctx.agent::<u32, u32>("right")?;
//!             return Ok(right.submit(1).await.map(|_| 1).unwrap_or_else(|e| {
//!                 assert!(matches!(e.kind(), SubmitErrorKind::NotAllowed { .. }));
//!                 99
//!             }));
//!         }
//!         Ok(n * 10)
//!     }
//! }
//!
//! struct Hub;
//! impl Agent for Hub {
//!     type Task = u32;
//!     type Output = u32;
//!     type Error = BoxError;
//!     async fn handle(&mut self, n: u32, ctx: &AgentContext<u32, u32>) -> Result<u32, BoxError> {
//!         let spoke = if n % 2 == 0 { "left" } else { "right" };
//!         Ok(ctx.agent::<u32, u32>(spoke)?.submit(n).await?.await?)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .topology(Star::new("hub"))
//!     .agent(AgentSpec::new("left"), || Spoke)
//!     .agent(AgentSpec::new("right"), || Spoke)
//!     .agent(AgentSpec::new("hub").depends_on(["left", "right"]), || Hub)
//!     .start()
//!     .await?;
//! assert_eq!(swarm.route::<u32, u32>(3).await?.await?, 30); // hub -> right
//! assert_eq!(swarm.route::<u32, u32>(0).await?.await?, 99); // hub -> left, whose send to right is refused
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

use apiary_core::{AgentName, MemberView, RouteRequest, Topology, TopologyError};

/// A hub that routes everything; spokes reach only the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Star {
    hub: String,
}

impl Star {
    /// A star around the agent named `hub`.
    pub fn new(hub: impl Into<String>) -> Self {
        Self { hub: hub.into() }
    }

    /// The hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }
}

impl Topology for Star {
    fn name(&self) -> &str {
        "star"
    }

    fn validate(&self, members: &[MemberView<'_>]) -> Result<(), TopologyError> {
        if members.iter().any(|m| m.name == self.hub.as_str()) {
            Ok(())
        } else {
            Err(TopologyError::new(
                "star",
                format!("the hub `{}` is not an agent of the swarm", self.hub),
            ))
        }
    }

    fn allows(&self, from: &str, to: &str, _: &[MemberView<'_>]) -> bool {
        from == self.hub || to == self.hub
    }

    fn route(&self, _request: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        members
            .iter()
            .find(|m| m.name == self.hub.as_str())
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spokes_reach_only_the_hub() {
        let star = Star::new("hub");
        assert!(star.allows("hub", "a", &[]) && star.allows("a", "hub", &[]));
        assert!(!star.allows("a", "b", &[]));
    }

    #[test]
    fn a_missing_hub_is_an_error_naming_it() {
        let a = AgentName::from("a");
        let members = [MemberView::new(&a, "", &[], 0, true)];
        let err = Star::new("hub").validate(&members).unwrap_err();
        assert_eq!(
            err.to_string(),
            "topology `star`: the hub `hub` is not an agent of the swarm"
        );
    }
}
