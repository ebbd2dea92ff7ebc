//! The built-in agent kinds a manifest can use, and the swarm built from a manifest.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use apiary::{
    cluster::Node,
    topology::{Hierarchy, Mesh, Ring, Star},
    AgentSpec, Manifest, SwarmBuilder, TopologySpec,
};

use crate::{
    recall::{MemoryAction, MemoryAgent},
    shell::{ShellAgent, ShellConfig},
    step::{Step, StepOutput},
};

/// The kinds `apiary run` knows.
pub(crate) const KINDS: &[&str] = &["shell", "memory"];

/// A manifest agent's kind, config or placement that `apiary` cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KindError {
    #[error("agent `{agent}`: unknown kind {kind:?} (built-in kinds: {})", KINDS.join(", "))]
    UnknownKind { agent: String, kind: String },
    #[error("agent `{agent}`: invalid {kind} config: {reason}")]
    Config {
        agent: String,
        kind: String,
        reason: String,
    },
    #[error(
        "agent `{agent}` is placed on node `{node}`: run with --node and --peer to span nodes"
    )]
    Placed { agent: String, node: String },
}

enum Built {
    Shell(ShellConfig),
    Memory(MemoryAction),
}

fn parse(agent: &str, kind: &str, config: &toml::Table) -> Result<Built, KindError> {
    let bad = |e: toml::de::Error| KindError::Config {
        agent: agent.to_owned(),
        kind: kind.to_owned(),
        reason: e.message().to_owned(),
    };
    let value = toml::Value::Table(config.clone());
    match kind {
        "shell" => value.try_into().map(Built::Shell).map_err(bad),
        "memory" => value.try_into().map(Built::Memory).map_err(bad),
        _ => Err(KindError::UnknownKind {
            agent: agent.to_owned(),
            kind: kind.to_owned(),
        }),
    }
}

/// Checks every agent's kind and config.
pub(crate) fn check(manifest: &Manifest) -> Result<(), KindError> {
    for spec in &manifest.agents {
        parse(&spec.name, &spec.kind, &spec.config)?;
    }
    Ok(())
}

/// Where the swarm being built runs: alone, or as one node of a cluster.
#[derive(Clone, Copy)]
pub(crate) enum Placement<'a> {
    /// One process: placed agents are refused.
    Alone,
    /// The node that runs the manifest: agents placed elsewhere are remote members.
    Driver(&'a Node),
    /// A node that only hosts the agents placed on it.
    Host(&'a Node),
}

impl Placement<'_> {
    fn here(&self) -> Option<&str> {
        match self {
            Placement::Alone => None,
            Placement::Driver(n) | Placement::Host(n) => Some(n.name()),
        }
    }

    /// Whether this process runs the agent itself.
    pub(crate) fn runs_here(&self, spec: &AgentSpec) -> bool {
        match (self, &spec.node) {
            (Placement::Host(node), Some(at)) => at == node.name(),
            (Placement::Host(_), None) => false,
            (_, None) => true,
            (_, Some(at)) => Some(at.as_str()) == self.here(),
        }
    }
}

/// The manifest's directory, where shell commands run from.
pub(crate) fn base_dir(path: &Path) -> anyhow::Result<PathBuf> {
    path.parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("cannot resolve the directory of {}", path.display()))
}

/// The swarm a manifest describes; shell commands run relative to `base`. Every built-in
/// kind takes a [`Step`] and gives a [`StepOutput`].
pub(crate) fn builder(
    manifest: &Manifest,
    base: &Path,
    placement: Placement<'_>,
) -> Result<SwarmBuilder, KindError> {
    let mut builder = SwarmBuilder::new().settings(manifest.swarm.clone());
    let here = placement.here().map(str::to_owned);
    for spec in &manifest.agents {
        let built = parse(&spec.name, &spec.kind, &spec.config)?;
        if !placement.runs_here(spec) {
            builder = match (placement, &spec.node) {
                (Placement::Alone, Some(node)) => {
                    return Err(KindError::Placed {
                        agent: spec.name.clone(),
                        node: node.clone(),
                    })
                }
                // The driver reaches it on its node; another host has no use for it.
                (Placement::Driver(node), _) => {
                    let (node, name) = (node.clone(), spec.name.clone());
                    builder.agent(spec.clone(), move || node.remote::<Step, StepOutput>(&name))
                }
                _ => builder,
            };
            continue;
        }
        // A host runs its agents on request: ordering is the driver's business.
        let spec = match placement {
            Placement::Host(_) => {
                let mut spec = spec.clone();
                spec.depends_on.clear();
                spec
            }
            _ => spec.clone(),
        };
        builder = match built {
            Built::Shell(config) => {
                let (base, here) = (base.to_path_buf(), here.clone());
                builder.agent(spec, move || {
                    ShellAgent::new(config.clone(), &base, here.clone())
                })
            }
            Built::Memory(action) => builder.agent(spec, move || MemoryAgent::new(action.clone())),
        };
    }
    if matches!(placement, Placement::Host(_)) {
        return Ok(builder);
    }
    Ok(match &manifest.topology {
        None => builder,
        Some(TopologySpec::Mesh) => builder.topology(Mesh),
        Some(TopologySpec::Star { hub }) => builder.topology(Star::new(hub.clone())),
        Some(TopologySpec::Ring { order }) if order.is_empty() => builder.topology(Ring::new()),
        Some(TopologySpec::Ring { order }) => builder.topology(Ring::with_order(order.clone())),
        Some(TopologySpec::Hierarchical { leads }) => {
            builder.topology(leads.iter().fold(Hierarchy::new(), |h, (lead, members)| {
                h.lead(lead.clone(), members.clone())
            }))
        }
    })
}
