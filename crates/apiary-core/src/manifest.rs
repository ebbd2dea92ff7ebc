//! Swarm manifests: a swarm described in TOML, validated completely before anything starts.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use apiary_planner::{Node, Plan, PlanError, PlanLimits};
use serde::{Deserialize, Serialize};
use serde_path_to_error::Segment;

use crate::{AgentSpec, SpecError, SwarmSettings, TopologySpec};

/// A swarm described in TOML: a `[swarm]` table of [`SwarmSettings`] and an `[[agents]]`
/// array of [`AgentSpec`]s.
///
/// Loading checks everything a swarm start would: syntax, unknown fields, types, durations,
/// every spec and setting, duplicate names, unknown dependencies and cycles. An error names
/// the agent and field at fault, with the line where the TOML has it.
///
/// # Examples
///
/// ```
/// use apiary_core::{Manifest, ManifestErrorKind};
///
/// let manifest = Manifest::from_toml_str(r#"
///     [swarm]
///     name = "quality"
///     task_timeout = "2m"
///
///     [[agents]]
///     name = "build"
///     kind = "shell"
///
///     [[agents]]
///     name = "test"
///     kind = "shell"
///     depends_on = ["build"]
///     replicas = 2
/// "#)?;
/// assert_eq!(manifest.agents.len(), 2);
/// assert_eq!(manifest.plan()?.to_string(), "batch 1 (level 0): build\nbatch 2 (level 1): test\n");
///
/// let err = Manifest::from_toml_str("[[agents]]\nname = \"a\"\nreplicas = 0\n").unwrap_err();
/// assert_eq!(err.kind(), ManifestErrorKind::Invalid);
/// assert_eq!((err.agent(), err.field(), err.line()), (Some("a"), Some("replicas"), Some(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Manifest {
    /// Swarm-wide settings.
    pub swarm: SwarmSettings,
    /// The agents, in declaration order.
    pub agents: Vec<AgentSpec>,
    /// The `[topology]` table, if any.
    pub topology: Option<TopologySpec>,
    /// The `[budget]` table: what the swarm's model-calling agents may spend, in all and
    /// per agent. Enforced by the agents that spend (`apiary-llm`); empty by default.
    pub budget: BudgetSpec,
    /// The `[memory]` table: how the swarm's memory embeds text. Read by the runner that
    /// opens the memory (the `apiary` binary); the hashing embedder by default.
    pub memory: MemorySpec,
}

/// The `[memory]` table of a manifest: which embedder turns the memory's texts (stored
/// results, lessons, search queries) into vectors.
///
/// ```
/// use apiary_core::{EmbedderKind, Manifest};
///
/// let m = Manifest::from_toml_str(r#"
///     [memory]
///     embedder = "minilm"
///     model_dir = "models/all-MiniLM-L6-v2"
///
///     [[agents]]
///     name = "coder"
/// "#)?;
/// assert_eq!(m.memory.embedder, EmbedderKind::Minilm);
/// # Ok::<(), apiary_core::ManifestError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    /// The embedder.
    #[serde(default)]
    pub embedder: EmbedderKind,
    /// For `minilm`: the directory holding `config.json`, `tokenizer.json` and
    /// `model.safetensors`; a relative path is read from the manifest's directory.
    pub model_dir: Option<PathBuf>,
}

/// The embedders a manifest can choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EmbedderKind {
    /// Feature hashing of words: no model, shared words only.
    #[default]
    Hashing,
    /// all-MiniLM-L6-v2 sentence embeddings, from `model_dir`.
    Minilm,
}

/// Spending limits: tokens, and money in dollars. Unset means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendLimits {
    /// Input plus output tokens.
    pub tokens: Option<u64>,
    /// Dollars.
    pub cost: Option<f64>,
}

/// The `[budget]` table of a manifest: the swarm's limits (`tokens`, `cost`) and, under
/// `[budget.agents.<name>]`, each agent's.
///
/// ```
/// use apiary_core::Manifest;
///
/// let m = Manifest::from_toml_str(r#"
///     [budget]
///     tokens = 200000
///     cost = 1.50
///     [budget.agents.coder]
///     tokens = 50000
///
///     [[agents]]
///     name = "coder"
/// "#)?;
/// assert_eq!(m.budget.swarm.tokens, Some(200_000));
/// assert_eq!(m.budget.agents["coder"].tokens, Some(50_000));
/// # Ok::<(), apiary_core::ManifestError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// The swarm's limits.
    #[serde(flatten)]
    pub swarm: SpendLimits,
    /// Each agent's limits, by name.
    #[serde(default)]
    pub agents: std::collections::BTreeMap<String, SpendLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    swarm: Option<toml::Spanned<SwarmSettings>>,
    #[serde(default)]
    agents: Vec<toml::Spanned<AgentSpec>>,
    #[serde(default)]
    topology: Option<toml::Spanned<TopologySpec>>,
    #[serde(default)]
    budget: Option<toml::Spanned<BudgetSpec>>,
    #[serde(default)]
    memory: Option<toml::Spanned<MemorySpec>>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::Io`] if the file cannot be read; otherwise as
    /// [`from_toml_str`](Self::from_toml_str), with the path in the error.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|e| {
            ManifestError::new(ManifestErrorKind::Io, format!("cannot read the file: {e}"))
        });
        src.and_then(|s| Self::from_toml_str(&s))
            .map_err(|e| e.with_path(path))
    }

    /// Parses and validates a manifest.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`] whose kind says what went wrong: `Syntax` (not TOML), `Schema`
    /// (unknown field, wrong type, bad duration), `Invalid` (a value no swarm can use) or
    /// `Dependency` (duplicate name, unknown dependency, cycle).
    pub fn from_toml_str(src: &str) -> Result<Self, ManifestError> {
        let de = toml::Deserializer::parse(src).map_err(|e| {
            ManifestError::new(ManifestErrorKind::Syntax, e.message()).at(src, e.span())
        })?;
        let raw: RawManifest =
            serde_path_to_error::deserialize(de).map_err(|e| schema_error(src, e))?;

        let (swarm, swarm_span) = match raw.swarm {
            Some(s) => (s.get_ref().clone(), s.span()),
            None => (SwarmSettings::default(), 0..0),
        };
        swarm.validate().map_err(|e| {
            ManifestError::new(ManifestErrorKind::Invalid, e.reason())
                .with_field(e.field())
                .at(src, field_span(src, swarm_span.clone(), e.field()))
        })?;

        let spans: Vec<Range<usize>> = raw.agents.iter().map(toml::Spanned::span).collect();
        let agents: Vec<AgentSpec> = raw
            .agents
            .into_iter()
            .map(toml::Spanned::into_inner)
            .collect();
        for (spec, span) in agents.iter().zip(&spans) {
            spec.validate()
                .map_err(|e| spec_error(src, span.clone(), &e))?;
        }
        let topology = match raw.topology {
            Some(t) => {
                let span = t.span();
                let t = t.into_inner();
                if let Some((field, name)) = t
                    .names()
                    .into_iter()
                    .find(|(_, n)| !agents.iter().any(|a| a.name == *n))
                {
                    return Err(ManifestError::new(
                        ManifestErrorKind::Dependency,
                        format!(
                            "the {} topology names `{name}`, which is not an agent",
                            t.name()
                        ),
                    )
                    .with_field(field)
                    .at(src, Some(span)));
                }
                Some(t)
            }
            None => None,
        };
        let budget = match raw.budget {
            Some(b) => {
                let span = b.span();
                let b = b.into_inner();
                let limits = std::iter::once(("budget".to_owned(), &b.swarm)).chain(
                    b.agents
                        .iter()
                        .map(|(n, l)| (format!("budget.agents.{n}"), l)),
                );
                for (table, l) in limits {
                    if l.cost.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
                        return Err(ManifestError::new(
                            ManifestErrorKind::Invalid,
                            format!("[{table}] cost must be a number of dollars >= 0"),
                        )
                        .with_field("cost")
                        .at(src, Some(span)));
                    }
                }
                if let Some(name) = b
                    .agents
                    .keys()
                    .find(|n| !agents.iter().any(|a| a.name == **n))
                {
                    return Err(ManifestError::new(
                        ManifestErrorKind::Dependency,
                        format!("[budget.agents.{name}] names `{name}`, which is not an agent"),
                    )
                    .with_field("budget")
                    .at(src, Some(span)));
                }
                b
            }
            None => BudgetSpec::default(),
        };
        let memory = match raw.memory {
            Some(m) => {
                let span = m.span();
                let m = m.into_inner();
                let wrong = match (m.embedder, &m.model_dir) {
                    (EmbedderKind::Minilm, None) => Some(
                        "[memory] embedder = \"minilm\" needs model_dir, the directory holding \
                         config.json, tokenizer.json and model.safetensors",
                    ),
                    (EmbedderKind::Hashing, Some(_)) => {
                        Some("[memory] model_dir is only for embedder = \"minilm\"")
                    }
                    _ => None,
                };
                if let Some(message) = wrong {
                    return Err(ManifestError::new(ManifestErrorKind::Invalid, message)
                        .with_field("model_dir")
                        .at(src, Some(span)));
                }
                m
            }
            None => MemorySpec::default(),
        };
        let manifest = Self {
            swarm,
            agents,
            topology,
            budget,
            memory,
        };
        manifest.plan().map_err(|e| {
            let (agent, field) = match &e {
                PlanError::DuplicateAgent { agent } => (agent.as_str(), "name"),
                PlanError::UnknownDependency { agent, .. } => (agent.as_str(), "depends_on"),
                PlanError::Cycle { path } => (path[0].as_str(), "depends_on"),
                _ => ("", "depends_on"),
            };
            // A duplicate is reported where it is declared the second time.
            let at = manifest
                .agents
                .iter()
                .zip(&spans)
                .filter(|(s, _)| s.name == agent)
                .map(|(_, span)| span.clone())
                .next_back();
            let mut err = ManifestError::new(ManifestErrorKind::Dependency, e.to_string())
                .with_agent(agent)
                .with_field(field);
            if let Some(span) = at {
                err = err.at(src, field_span(src, span, field));
            }
            err
        })?;
        Ok(manifest)
    }

    /// The spawn plan of the manifest's agents under its `max_concurrency` and `batch_size`.
    ///
    /// # Errors
    ///
    /// The planner's error: duplicate name, unknown dependency, cycle.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let nodes: Vec<Node> = self
            .agents
            .iter()
            .map(|s| {
                Node::new(s.name.as_str())
                    .depends_on(s.depends_on.iter().map(String::as_str))
                    .weight(s.replicas as usize)
            })
            .collect();
        let limits = PlanLimits::default()
            .max_concurrency(self.swarm.max_concurrency)
            .batch_size(self.swarm.batch_size);
        Plan::new(&nodes, limits)
    }

    /// The spec of the agent with this name.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }
}

fn schema_error(src: &str, err: serde_path_to_error::Error<toml::de::Error>) -> ManifestError {
    let mut agent_index = None;
    let mut keys = Vec::new();
    let mut in_agents = false;
    for segment in err.path().iter() {
        match segment {
            Segment::Map { key } if key.starts_with("$__") => {}
            Segment::Map { key } if keys.is_empty() && agent_index.is_none() && key == "agents" => {
                in_agents = true;
            }
            Segment::Seq { index } if in_agents && agent_index.is_none() => {
                agent_index = Some(*index)
            }
            Segment::Map { key } => keys.push(key.clone()),
            _ => {}
        }
    }
    if keys.first().is_some_and(|k| k == "swarm") {
        keys.remove(0);
    }
    let inner = err.inner();
    let message = inner.message().to_owned();
    let named = between(&message, "unknown field `", "`")
        .or_else(|| between(&message, "missing field `", "`"));
    if let Some(key) = named
        && keys.last().is_none_or(|k| k != key)
    {
        keys.push(key.to_owned());
    }
    let mut out = ManifestError::new(ManifestErrorKind::Schema, message).at(src, inner.span());
    if !keys.is_empty() {
        out = out.with_field(&keys.join("."));
    }
    if let Some(i) = agent_index {
        out = out.with_agent(&agent_name(src, i).unwrap_or_else(|| format!("#{}", i + 1)));
    }
    out
}

fn spec_error(src: &str, span: Range<usize>, e: &SpecError) -> ManifestError {
    ManifestError::new(ManifestErrorKind::Invalid, e.reason())
        .with_agent(e.agent())
        .with_field(e.field())
        .at(src, field_span(src, span, e.field()))
}

/// The name of the `index`th agent, read leniently so it works on a manifest that failed.
fn agent_name(src: &str, index: usize) -> Option<String> {
    let table: toml::Table = toml::from_str(src).ok()?;
    let agent = table.get("agents")?.as_array()?.get(index)?;
    Some(agent.get("name")?.as_str()?.to_owned())
}

/// Where `field` is written inside the table that starts at `span` (its `field =` line, or
/// the table itself if the line is not found, e.g. a default). The table runs from its header
/// to the next header that is not one of its own subtables.
fn field_span(src: &str, span: Range<usize>, field: &str) -> Option<Range<usize>> {
    let text = src.get(span.start..)?;
    let mut offset = span.start;
    let mut first = true;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if !first && trimmed.starts_with('[') && !trimmed.starts_with("[agents.") {
            break;
        }
        first = false;
        if let Some(rest) = trimmed.strip_prefix(field)
            && (rest.trim_start().starts_with('=') || rest.starts_with(']'))
        {
            let start = offset + (line.len() - trimmed.len());
            return Some(start..start + field.len());
        }
        if trimmed.starts_with(&format!("[agents.{field}]")) {
            let start = offset + (line.len() - trimmed.len());
            return Some(start..start + trimmed.trim_end().len());
        }
        offset += line.len();
    }
    Some(span)
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// What kind of problem a manifest has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManifestErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// Valid TOML that does not fit the schema: unknown field, wrong type, bad duration,
    /// missing field.
    Schema,
    /// A value no swarm can use: zero replicas, an empty name, a zero timeout, ...
    Invalid,
    /// Duplicate names, unknown dependencies or a cycle.
    Dependency,
}

/// A manifest that cannot be used, naming the agent, field and line at fault where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorInner {
    kind: ManifestErrorKind,
    message: String,
    path: Option<PathBuf>,
    agent: Option<String>,
    field: Option<String>,
    position: Option<(usize, usize)>,
}

impl ManifestError {
    fn new(kind: ManifestErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorInner {
            kind,
            message: message.into(),
            path: None,
            agent: None,
            field: None,
            position: None,
        }))
    }

    fn with_agent(mut self, agent: &str) -> Self {
        self.0.agent = Some(agent.to_owned());
        self
    }

    fn with_field(mut self, field: &str) -> Self {
        self.0.field = Some(field.to_owned());
        self
    }

    fn at(mut self, src: &str, span: Option<Range<usize>>) -> Self {
        if let Some(span) = span {
            let before = &src[..span.start.min(src.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            self.0.position = Some((line, column));
        }
        self
    }

    fn with_path(mut self, path: &Path) -> Self {
        self.0.path = Some(path.to_owned());
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ManifestErrorKind {
        self.0.kind
    }

    /// The agent at fault, if the problem is in one agent.
    pub fn agent(&self) -> Option<&str> {
        self.0.agent.as_deref()
    }

    /// The field at fault (dotted for nested tables, e.g. `breaker.reset_timeout`).
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The 1-based line of the problem, where the TOML parser or the spec gives one.
    pub fn line(&self) -> Option<usize> {
        self.0.position.map(|(l, _)| l)
    }

    /// The 1-based column of the problem, where known.
    pub fn column(&self) -> Option<usize> {
        self.0.position.map(|(_, c)| c)
    }

    /// The manifest file, when loaded from one.
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.path, self.0.position) {
            (Some(p), Some((l, c))) => write!(f, "{}:{l}:{c}: ", p.display())?,
            (Some(p), None) => write!(f, "{}: ", p.display())?,
            (None, Some((l, c))) => write!(f, "line {l}, column {c}: ")?,
            (None, None) => {}
        }
        if let Some(agent) = &self.0.agent {
            write!(f, "agent `{agent}`: ")?;
        }
        if let Some(field) = &self.0.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(self.0.message.trim_end())
    }
}

impl std::error::Error for ManifestError {}
