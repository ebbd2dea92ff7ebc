use std::time::Duration;

use apiary_supervisor::{Backoff, BreakerConfig, RestartIntensity, RestartType};
use serde::{Deserialize, Serialize};

use crate::SpecError;

/// The serializable description of one agent: what it is, what it needs, how it is run.
///
/// A swarm manifest is a list of these plus swarm-wide settings. Fields a manifest leaves out
/// take the defaults shown on the builder methods.
///
/// # Examples
///
/// ```
/// use apiary_core::AgentSpec;
///
/// let spec = AgentSpec::new("test")
///     .kind("shell")
///     .capabilities(["rust"])
///     .depends_on(["build"])
///     .replicas(2);
/// spec.validate()?;
/// assert_eq!(spec.depends_on, ["build"]);
/// # Ok::<(), apiary_core::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentSpec {
    /// Unique name within the swarm; tasks are submitted to it.
    pub name: String,
    /// What sort of agent this is (`shell`, `reviewer`, ...); for manifests, the key of the
    /// factory that builds it. Empty when not given.
    #[serde(default)]
    pub kind: String,
    /// Free-form tags that routing may match on.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Agents that must be ready before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// How many actors run behind this name (at least 1).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Which exits its supervisor answers with a restart.
    #[serde(default)]
    pub restart: RestartType,
    /// Delay before each restart of this agent (exponential with jitter).
    #[serde(default)]
    pub backoff: Backoff,
    /// This agent's own restart intensity: at most this many restarts of its replicas within
    /// the period, after which its supervisor gives up on this agent alone (it stops; the
    /// rest of the swarm runs on) and every task refused or ended for it says so. Without
    /// it, an agent with several replicas gets `max_restarts` *per replica* of the swarm's
    /// settings, as its own; an agent with one replica counts against its supervisor's
    /// (the swarm's or its coordinator's) intensity, as in OTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<RestartIntensity>,
    /// How many times a task is run again after this agent crashed on it (panicked). Needs
    /// the swarm to know how to copy tasks ([`SwarmBuilder::retry_crashed_tasks`]); without
    /// it, or once the budget is spent, the task fails with the panic.
    ///
    /// [`SwarmBuilder::retry_crashed_tasks`]: crate::SwarmBuilder::retry_crashed_tasks
    #[serde(default)]
    pub max_retries: u32,
    /// Circuit-breaker settings; `None` runs without a breaker.
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
    /// Bound on tasks queued or running for this agent across its replicas; `None` takes the
    /// swarm's default.
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// Deadline given to each task that is submitted without one; `None` takes the swarm's
    /// default (which may be none).
    #[serde(default, with = "humantime_serde::option")]
    pub task_timeout: Option<Duration>,
    /// The cluster node the agent runs on (see `apiary-cluster`); `None`: the node that runs
    /// the swarm. On every other node the agent is reached remotely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Work of this agent waits for a person's approval, explained by this text: the
    /// `apiary` binary asks ([`Approvals`](crate::Approvals)) before it runs the agent's step;
    /// in code, ask through [`Swarm::approvals`](crate::Swarm::approvals) before submitting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Settings for the agent's kind, left for its factory to read (a shell agent's command,
    /// ...).
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub config: toml::Table,
}

fn one() -> u32 {
    1
}

/// The longest agent name accepted.
pub const MAX_NAME_LEN: usize = 128;

impl AgentSpec {
    /// A spec with the given name and every other field at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: String::new(),
            capabilities: Vec::new(),
            depends_on: Vec::new(),
            replicas: 1,
            restart: RestartType::default(),
            backoff: Backoff::default(),
            intensity: None,
            max_retries: 0,
            breaker: None,
            queue_capacity: None,
            task_timeout: None,
            node: None,
            approval: None,
            config: toml::Table::new(),
        }
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds capabilities.
    pub fn capabilities<I, S>(mut self, caps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities.extend(caps.into_iter().map(Into::into));
        self
    }

    /// Adds dependencies.
    pub fn depends_on<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on.extend(deps.into_iter().map(Into::into));
        self
    }

    /// Sets the number of replicas (default 1).
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = n;
        self
    }

    /// Sets the restart type (default permanent).
    pub fn restart(mut self, restart: RestartType) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the restart backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives the agent its own restart intensity (see [`intensity`](Self::intensity)).
    pub fn intensity(mut self, intensity: RestartIntensity) -> Self {
        self.intensity = Some(intensity);
        self
    }

    /// Sets how many times a task is retried after the agent crashed on it.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the circuit-breaker settings.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Sets the queue bound for this agent.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }

    /// Sets the default deadline of each task.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// Places the agent on a cluster node.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Marks the agent's work as needing a person's approval, explained by `reason`.
    pub fn approval(mut self, reason: impl Into<String>) -> Self {
        self.approval = Some(reason.into());
        self
    }

    /// Sets one key of the kind-specific configuration.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<toml::Value>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Checks the fields that can be checked on their own (names, counts, durations,
    /// breaker settings). Dependencies are checked against the whole swarm by the planner.
    ///
    /// # Errors
    ///
    /// A [`SpecError`] naming the agent and the field at fault.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field: &'static str, reason: String| SpecError::new(&self.name, field, reason);
        check_name(&self.name).map_err(|r| err("name", r))?;
        for dep in &self.depends_on {
            check_name(dep).map_err(|r| err("depends_on", format!("`{dep}`: {r}")))?;
        }
        if self.replicas == 0 {
            return Err(err("replicas", "must be at least 1".into()));
        }
        if let Some(n) = self.queue_capacity {
            crate::settings::check_capacity(n).map_err(|r| err("queue_capacity", r))?;
        }
        if self.task_timeout.is_some_and(|t| t.is_zero()) {
            return Err(err("task_timeout", "must be longer than zero".into()));
        }
        self.backoff
            .validate()
            .map_err(|e| SpecError::new(&self.name, "backoff", e.to_string()))?;
        if let Some(intensity) = &self.intensity {
            intensity
                .validate()
                .map_err(|e| SpecError::new(&self.name, "intensity", e.to_string()))?;
        }
        if let Some(breaker) = &self.breaker {
            breaker
                .validate()
                .map_err(|e| SpecError::new(&self.name, "breaker", e.to_string()))?;
        }
        if let Some(node) = &self.node {
            check_name(node).map_err(|r| err("node", r))?;
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    // Names are nearly always printable ASCII, checked a byte at a time.
    if name.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        return Ok(());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '"')
    {
        return Err(format!("contains the character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_agent_and_field() {
        let e = AgentSpec::new("w").replicas(0).validate().unwrap_err();
        assert_eq!((e.agent(), e.field()), ("w", "replicas"));
        let e = AgentSpec::new("has space").validate().unwrap_err();
        assert_eq!(e.field(), "name");
        let e = AgentSpec::new("w")
            .breaker(BreakerConfig::default().failure_threshold(0))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent `w`, field `breaker`: `failure_threshold`: must be at least 1"
        );
    }
}
