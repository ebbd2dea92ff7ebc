//! The `memory` kind: stores or recalls entries of the swarm's shared memory.

use apiary::{
    memory::{Memory, MemoryError, Query},
    Agent, AgentContext, MissingResource,
};
use serde::Deserialize;

use crate::step::{Step, StepOutput, StepRecord};

/// `[agents.config]` of a `memory` agent: one action.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum MemoryAction {
    /// Store a string under a key.
    Put { key: String, value: String },
    /// Print the value under a key.
    Get { key: String },
    /// Print the step records stored under a prefix (what `shell` steps `store`).
    Report { prefix: String },
    /// Print the stored patterns most similar to a text.
    Search {
        query: String,
        #[serde(default = "default_k")]
        k: usize,
        #[serde(default)]
        namespace: Option<String>,
    },
}

fn default_k() -> usize {
    5
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RecallError {
    #[error(transparent)]
    NoMemory(#[from] MissingResource),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("nothing stored under {0:?}")]
    Missing(String),
}

#[derive(Debug)]
pub(crate) struct MemoryAgent {
    action: MemoryAction,
}

impl MemoryAgent {
    pub(crate) fn new(action: MemoryAction) -> Self {
        Self { action }
    }
}

impl Agent for MemoryAgent {
    type Task = Step;
    type Output = StepOutput;
    type Error = RecallError;

    async fn handle(
        &mut self,
        _step: Step,
        ctx: &AgentContext<Step, StepOutput>,
    ) -> Result<StepOutput, RecallError> {
        let memory = ctx.resource::<Memory>()?;
        let (summary, stdout) = match &self.action {
            MemoryAction::Put { key, value } => {
                memory.put(key, value).await?;
                (format!("stored {key}"), String::new())
            }
            MemoryAction::Get { key } => {
                let value: String = memory
                    .get(key)
                    .await?
                    .ok_or_else(|| RecallError::Missing(key.clone()))?;
                (format!("recalled {key}"), value)
            }
            MemoryAction::Report { prefix } => {
                let keys = memory.list(prefix).await?;
                let mut lines = Vec::with_capacity(keys.len());
                let mut passed = 0;
                for key in &keys {
                    if let Some(r) = memory.get::<StepRecord>(key).await? {
                        passed += usize::from(r.ok);
                        lines.push(format!(
                            "{key}: {} on attempt {} ({}, {} ms)",
                            if r.ok { "passed" } else { "failed" },
                            r.attempt,
                            r.summary,
                            r.millis
                        ));
                    }
                }
                (
                    format!("{passed}/{} stored results passed", lines.len()),
                    lines.join("\n"),
                )
            }
            MemoryAction::Search {
                query,
                k,
                namespace,
            } => {
                let mut q = Query::text(query.clone(), *k);
                if let Some(ns) = namespace {
                    q = q.namespace(ns.clone());
                }
                let hits = memory.search(q).await?;
                let lines: Vec<String> = hits
                    .iter()
                    .map(|h| format!("{:.3} {}", h.score, h.key))
                    .collect();
                (
                    format!("{} matches for {query:?}", hits.len()),
                    lines.join("\n"),
                )
            }
        };
        Ok(StepOutput {
            summary,
            stdout,
            stderr: String::new(),
            exit_code: None,
            ..StepOutput::default()
        })
    }
}

/// `kind = "memory"`: stores or recalls in the run's memory.
pub(crate) struct MemoryKind;

impl crate::kinds::Kind for MemoryKind {
    fn name(&self) -> &str {
        "memory"
    }

    fn check(&self, config: &toml::Table) -> Result<(), apiary::BoxError> {
        crate::kinds::config::<MemoryAction>(config).map(drop)
    }

    fn add(
        &self,
        builder: apiary::SwarmBuilder,
        spec: apiary::AgentSpec,
        config: &toml::Table,
        _: &crate::kinds::KindContext,
    ) -> Result<apiary::SwarmBuilder, apiary::BoxError> {
        let action: MemoryAction = crate::kinds::config(config)?;
        Ok(builder.agent(spec, move || MemoryAgent::new(action.clone())))
    }
}
