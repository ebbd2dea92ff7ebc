//! The built-in agent kinds a manifest can use, and the swarm built from a manifest.

use std::path::Path;

use apiary::{
    topology::{Hierarchy, Mesh, Ring, Star},
    Manifest, SwarmBuilder, TopologySpec,
};

use crate::{
    recall::{MemoryAction, MemoryAgent},
    shell::{ShellAgent, ShellConfig},
    step::{Step, StepOutput},
};

/// The kinds `apiary run` knows.
pub(crate) const KINDS: &[&str] = &["shell", "memory"];

/// A manifest agent's kind or config that `apiary` cannot run.
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

/// The swarm a manifest describes; shell commands run relative to `base`.
pub(crate) fn builder(
    manifest: &Manifest,
    base: &Path,
) -> Result<SwarmBuilder<Step, StepOutput>, KindError> {
    let mut builder = SwarmBuilder::new().settings(manifest.swarm.clone());
    for spec in &manifest.agents {
        builder = match parse(&spec.name, &spec.kind, &spec.config)? {
            Built::Shell(config) => {
                let base = base.to_path_buf();
                builder.agent(spec.clone(), move || ShellAgent::new(config.clone(), &base))
            }
            Built::Memory(action) => {
                builder.agent(spec.clone(), move || MemoryAgent::new(action.clone()))
            }
        };
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
