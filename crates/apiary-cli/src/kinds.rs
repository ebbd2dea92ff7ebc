//! Agent kinds: what a manifest's `kind = "..."` runs, a registry a binary can extend,
//! and the swarm built from a manifest.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use apiary::{
    cluster::Node,
    topology::{Hierarchy, Mesh, Ring, Star},
    AgentSpec, Manifest, SwarmBuilder, TopologySpec,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use apiary::BoxError;

use crate::step::{Step, StepOutput};

/// What a manifest agent's kind does: checks its config, and adds the agent to the swarm.
///
/// Every kind's agent takes a [`Step`] (one per attempt, with the outputs of the agents it
/// depends on) and gives a [`StepOutput`]. Register yours with [`Kinds::with`] and run
/// [`crate::main`] from a binary of your own.
///
/// ```
/// use apiary::{Agent, AgentContext, AgentSpec, BoxError, SwarmBuilder};
/// use apiary_cli::{Kind, KindContext, Kinds, Step, StepOutput};
///
/// /// `kind = "greet"`: says hello to `config.who`.
/// struct Greet;
///
/// #[derive(serde::Deserialize)]
/// struct GreetConfig { who: String }
///
/// struct Greeter(String);
/// impl Agent for Greeter {
///     type Task = Step;
///     type Output = StepOutput;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, _: Step, _: &AgentContext<Step, StepOutput>) -> Result<StepOutput, Self::Error> {
///         Ok(StepOutput::new(format!("hello, {}", self.0)))
///     }
/// }
///
/// impl Kind for Greet {
///     fn name(&self) -> &str { "greet" }
///     fn check(&self, config: &toml::Table) -> Result<(), BoxError> {
///         apiary_cli::config::<GreetConfig>(config).map(drop)
///     }
///     fn add(&self, builder: SwarmBuilder, spec: AgentSpec, config: &toml::Table, _: &KindContext)
///         -> Result<SwarmBuilder, BoxError> {
///         let who = apiary_cli::config::<GreetConfig>(config)?.who;
///         Ok(builder.agent(spec, move || Greeter(who.clone())))
///     }
/// }
///
/// let kinds = Kinds::builtin().with(Greet);
/// assert!(kinds.names().contains(&"greet"));
/// // fn main() -> std::process::ExitCode { apiary_cli::main(kinds) }
/// ```
pub trait Kind: Send + Sync + 'static {
    /// The name manifests give as `kind = "..."`.
    fn name(&self) -> &str;

    /// Checks an agent's `[agents.config]` without starting anything (`apiary validate`).
    ///
    /// # Errors
    ///
    /// Why the config is not valid; the caller names the agent and kind.
    fn check(&self, config: &toml::Table) -> Result<(), BoxError>;

    /// Adds the agent `spec` to the swarm being built, as an agent taking [`Step`] and
    /// giving [`StepOutput`].
    ///
    /// # Errors
    ///
    /// Why the agent cannot be built; the caller names the agent and kind.
    fn add(
        &self,
        builder: SwarmBuilder,
        spec: AgentSpec,
        config: &toml::Table,
        cx: &KindContext,
    ) -> Result<SwarmBuilder, BoxError>;
}

/// Parses a kind's `[agents.config]` table into its config type (`deny_unknown_fields`
/// there makes a misspelt field an error).
///
/// # Errors
///
/// The TOML error, naming the field.
pub fn config<T: serde::de::DeserializeOwned>(config: &toml::Table) -> Result<T, BoxError> {
    toml::Value::Table(config.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned().into())
}

/// What a kind may need to build its agent.
#[derive(Debug, Clone)]
pub struct KindContext {
    pub(crate) base: PathBuf,
    pub(crate) node: Option<String>,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) journal: Option<apiary::journal::Journal>,
}

impl KindContext {
    /// The manifest's directory: relative paths in configs start here.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The cluster node this process is, if any.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The whole manifest (its `[budget]` table, the other agents).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The run's journal, with `apiary run --state`: where budgets find what an earlier run
    /// of the same state spent.
    pub fn journal(&self) -> Option<&apiary::journal::Journal> {
        self.journal.as_ref()
    }
}

/// The kinds a binary knows, by name: [`builtin`](Self::builtin) ones (`shell`, `memory`,
/// `llm`) and any added with [`with`](Self::with).
#[derive(Clone)]
pub struct Kinds(BTreeMap<String, Arc<dyn Kind>>);

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Kinds {
    /// No kinds at all.
    pub fn empty() -> Self {
        Self(BTreeMap::new())
    }

    /// Adds `kind`, replacing a kind of the same name.
    #[must_use]
    pub fn with(mut self, kind: impl Kind) -> Self {
        self.0.insert(kind.name().to_owned(), Arc::new(kind));
        self
    }

    /// The names of the kinds, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    fn get(&self, agent: &str, kind: &str) -> Result<&Arc<dyn Kind>, KindError> {
        self.0.get(kind).ok_or_else(|| KindError::UnknownKind {
            agent: agent.to_owned(),
            kind: kind.to_owned(),
            known: self.names().join(", "),
        })
    }

    /// Checks every agent's kind and config.
    pub(crate) fn check(&self, manifest: &Manifest) -> Result<(), KindError> {
        for spec in &manifest.agents {
            self.get(&spec.name, &spec.kind)?
                .check(&spec.config)
                .map_err(|e| KindError::config(spec, e))?;
        }
        Ok(())
    }
}

/// A manifest agent's kind, config or placement that cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KindError {
    /// No kind of that name.
    #[error("agent `{agent}`: unknown kind {kind:?} (known kinds: {known})")]
    UnknownKind {
        /// The agent.
        agent: String,
        /// The kind it asked for.
        kind: String,
        /// The kinds there are.
        known: String,
    },
    /// The kind refused the agent's config.
    #[error("agent `{agent}`: invalid {kind} config: {reason}")]
    Config {
        /// The agent.
        agent: String,
        /// Its kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// The agent is placed on a node, but this run is not a cluster.
    #[error(
        "agent `{agent}` is placed on node `{node}`: run with --node and --peer to span nodes"
    )]
    Placed {
        /// The agent.
        agent: String,
        /// Its node.
        node: String,
    },
}

impl KindError {
    fn config(spec: &AgentSpec, e: BoxError) -> Self {
        Self::Config {
            agent: spec.name.clone(),
            kind: spec.kind.clone(),
            reason: e.to_string(),
        }
    }
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

/// The swarm a manifest describes; shell commands run relative to `base`. Every kind takes
/// a [`Step`] and gives a [`StepOutput`].
pub(crate) fn builder(
    kinds: &Kinds,
    manifest: &Manifest,
    base: &Path,
    placement: Placement<'_>,
    journal: Option<&apiary::journal::Journal>,
) -> Result<SwarmBuilder, KindError> {
    let mut builder = SwarmBuilder::new().settings(manifest.swarm.clone());
    let cx = KindContext {
        base: base.to_path_buf(),
        node: placement.here().map(str::to_owned),
        manifest: Arc::new(manifest.clone()),
        journal: journal.cloned(),
    };
    for spec in &manifest.agents {
        let kind = kinds.get(&spec.name, &spec.kind)?;
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
        let config = spec.config.clone();
        builder = kind
            .add(builder, spec.clone(), &config, &cx)
            .map_err(|e| KindError::config(&spec, e))?;
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
