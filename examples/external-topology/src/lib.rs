//! The apiary-pipeline crate is a pipeline topology: stages in a fixed order, each of which
//! may reach only the next, so work flows one way and the last stage answers.
//!
//! It is written the way any third-party topology would be: against `apiary-core` alone
//! (no FAISS, no HTTP, no cluster), implementing [`Topology`].
//!
//! # Examples
//!
//! ```
//! use apiary_core::{Agent, AgentSpec, BoxError, Ctx, Swarm};
//! use apiary_pipeline::Pipeline;
//!
//! /// Appends its name, then hands the text on to the next stage (the last one answers).
//! struct Stage;
//! impl Agent for Stage {
//!     type Task = String;
//!     type Output = String;
//!     type Error = BoxError;
//!     async fn handle(&mut self, text: String, ctx: &Ctx<Self>) -> Result<String, BoxError> {
//!         let text = format!("{text} > {}", ctx.name());
//!         match ctx.successor::<String, String>() {
//!             Ok(next) => Err(ctx.hand_off(&next, text).await.into()),
//!             Err(_) => Ok(text),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder()
//!     .topology(Pipeline::new(["lex", "parse", "emit"]))
//!     .agent(AgentSpec::new("emit"), || Stage)
//!     .agent(AgentSpec::new("parse"), || Stage)
//!     .agent(AgentSpec::new("lex"), || Stage)
//!     .start()
//!     .await?;
//! let out = swarm.route::<String, String>("src".into()).await?.await?;
//! assert_eq!(out, "src > lex > parse > emit");
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use apiary_core::{AgentName, MemberView, RouteRequest, Topology, TopologyError};

/// Stages in a fixed order; each reaches only the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    stages: Vec<String>,
}

impl Pipeline {
    /// A pipeline through these agents, in this order.
    pub fn new<I, S>(stages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            stages: stages.into_iter().map(Into::into).collect(),
        }
    }

    fn position(&self, agent: &str) -> Option<usize> {
        self.stages.iter().position(|s| s == agent)
    }
}

impl Topology for Pipeline {
    fn name(&self) -> &str {
        "pipeline"
    }

    fn validate(&self, members: &[MemberView<'_>]) -> Result<(), TopologyError> {
        if self.stages.is_empty() {
            return Err(TopologyError::new(self.name(), "a pipeline needs at least one stage"));
        }
        for stage in &self.stages {
            if !members.iter().any(|m| m.name == stage.as_str()) {
                return Err(TopologyError::new(
                    self.name(),
                    format!("stage `{stage}` is not an agent of the swarm"),
                ));
            }
        }
        Ok(())
    }

    fn allows(&self, from: &str, to: &str, _: &[MemberView<'_>]) -> bool {
        matches!((self.position(from), self.position(to)), (Some(f), Some(t)) if t == f + 1)
    }

    fn successor(&self, from: &str, members: &[MemberView<'_>]) -> Option<AgentName> {
        let next = self.stages.get(self.position(from)? + 1)?;
        members
            .iter()
            .find(|m| m.name == next.as_str())
            .map(|m| m.name.clone())
    }

    fn route(&self, _: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        let first = self.stages.first()?;
        members
            .iter()
            .find(|m| m.name == first.as_str() && m.alive())
            .map(|m| m.name.clone())
    }
}
