//! The apiary-mesh crate is the mesh topology: every agent may reach every other.
//!
//! Peer sends are never refused, so agents can broadcast
//! ([`AgentContext::broadcast`](apiary_core::AgentContext::broadcast)) to all of their peers or
//! gossip ([`AgentContext::gossip`](apiary_core::AgentContext::gossip)) to a few random ones, and
//! a task submitted to the swarm as a whole goes to the least-loaded agent that has the
//! capability it asks for (the first started, on a tie). Supervision is flat: every agent is a
//! direct child of the swarm's supervisor.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentContext, AgentSpec, RouteRequest, SubmitOptions, Swarm};
//! use apiary_mesh::Mesh;
//!
//! struct Echo;
//! impl Agent for Echo {
//!     type Task = String;
//!     type Output = String;
//!     type Error = std::convert::Infallible;
//!     async fn handle(&mut self, s: String, ctx: &AgentContext<String, String>) -> Result<String, Self::Error> {
//!         Ok(format!("{} did {s}", ctx.name()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .topology(Mesh)
//!     .agent(AgentSpec::new("coder").capabilities(["rust"]), || Echo)
//!     .agent(AgentSpec::new("writer").capabilities(["docs"]), || Echo)
//!     .start()
//!     .await?;
//! let docs = RouteRequest { capability: Some("docs") };
//! let out = swarm
//!     .route_with::<String, String>("a guide".into(), docs, SubmitOptions::new())
//!     .await?
//!     .await?;
//! assert_eq!(out, "writer did a guide");
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

use apiary_core::{AgentName, MemberView, RouteRequest, Topology};

/// Every agent may reach every other; swarm-level tasks go to the least-loaded capable agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mesh;

impl Topology for Mesh {
    fn name(&self) -> &str {
        "mesh"
    }

    fn allows(&self, _from: &str, _to: &str, _: &[MemberView<'_>]) -> bool {
        true
    }

    fn route(&self, request: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        members
            .iter()
            .filter(|m| m.can(request.capability))
            .min_by_key(|m| m.load())
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_to_the_least_loaded_capable_member() {
        let (a, b, c) = (
            AgentName::from("a"),
            AgentName::from("b"),
            AgentName::from("c"),
        );
        let rust = vec!["rust".to_string()];
        let none = Vec::new();
        let members = [
            MemberView::new(&a, "", &rust, 5, true),
            MemberView::new(&b, "", &none, 0, true),
            MemberView::new(&c, "", &rust, 2, true),
        ];
        let rust_task = RouteRequest {
            capability: Some("rust"),
        };
        assert_eq!(Mesh.route(&rust_task, &members), Some(c.clone()));
        assert_eq!(
            Mesh.route(&RouteRequest::default(), &members),
            Some(b.clone())
        );
        let go_task = RouteRequest {
            capability: Some("go"),
        };
        assert_eq!(Mesh.route(&go_task, &members), None);
        assert!(Mesh.allows("a", "c", &[]));
    }
}
