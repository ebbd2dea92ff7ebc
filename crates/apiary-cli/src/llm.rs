//! The `llm` kind: a step that asks a model, with the outputs of the steps it depends on in
//! its prompt, the manifest's other agents as tools, and the manifest's budgets enforced.
//!
//! ```toml
//! [[agents]]
//! name = "reviewer"
//! kind = "llm"
//! depends_on = ["planner"]
//! [agents.config]
//! provider = "openai"                 # or "anthropic"
//! base_url = "http://127.0.0.1:11434/v1"
//! model = "qwen2.5:7b"
//! api_key_env = "OPENAI_API_KEY"      # optional
//! system = "You review Rust code."
//! prompt = "Review the crate following this plan:\n{{planner}}"
//! max_tokens = 1024
//! tools = ["tests"]                   # agents the model may call
//! price = { input = 0.15, output = 0.60 }   # dollars per million tokens
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use apiary::llm::{
    Budget, Completion, Endpoint, Limits, LlmAgent, LlmError, Money, PeerTool, Price, Prices,
    Prompt, Provider,
};
use apiary::{Agent, AgentContext, AgentSpec, BoxError, SpendLimits, SwarmBuilder};
use serde::Deserialize;
use serde_json::json;

use crate::kinds::{Kind, KindContext};
use crate::step::{Step, StepOutput, StepUsage};

/// `[agents.config]` of an `llm` agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmConfig {
    provider: Provider,
    base_url: String,
    model: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    system: Option<String>,
    /// `{{name}}` is replaced by the output of the dependency `name`.
    prompt: String,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_turns: Option<u32>,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    price: Option<PriceConfig>,
    /// Record every call to this JSONL file.
    #[serde(default)]
    record: Option<PathBuf>,
    /// Answer every call from this JSONL file, offline.
    #[serde(default)]
    replay: Option<PathBuf>,
}

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceConfig {
    input: f64,
    output: f64,
}

/// The `{{name}}` slots of a prompt template: the dependencies whose outputs it uses.
fn template_inputs(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    out
}

/// The prompt with each `{{name}}` replaced by that dependency's output.
fn render(template: &str, inputs: &[(String, String)]) -> String {
    let mut out = template.to_owned();
    for (name, output) in inputs {
        out = out.replace(&format!("{{{{{name}}}}}"), output);
    }
    out
}

/// Budget limits from a manifest's `[budget]` entry.
pub(crate) fn limits(spend: &SpendLimits) -> Limits {
    let mut limits = Limits::none();
    if let Some(t) = spend.tokens {
        limits = limits.tokens(t);
    }
    if let Some(c) = spend.cost {
        limits = limits.cost(Money::from_dollars(c));
    }
    limits
}

/// `kind = "llm"`.
pub(crate) struct LlmKind;

impl Kind for LlmKind {
    fn name(&self) -> &str {
        "llm"
    }

    fn check(&self, config: &toml::Table) -> Result<(), BoxError> {
        let c: LlmConfig = crate::kinds::config(config)?;
        if c.record.is_some() && c.replay.is_some() {
            return Err("`record` and `replay` exclude each other".into());
        }
        Ok(())
    }

    fn add(
        &self,
        builder: SwarmBuilder,
        spec: AgentSpec,
        config: &toml::Table,
        cx: &KindContext,
    ) -> Result<SwarmBuilder, BoxError> {
        let c: LlmConfig = crate::kinds::config(config)?;
        for name in template_inputs(&c.prompt) {
            if !spec.depends_on.iter().any(|d| d == name) {
                return Err(format!(
                    "the prompt uses {{{{{name}}}}}, but `{name}` is not in depends_on"
                )
                .into());
            }
        }
        let manifest = cx.manifest();
        let mut endpoint = Endpoint::builder(c.provider, c.base_url.clone());
        if let Some(var) = &c.api_key_env {
            endpoint = endpoint.api_key_env(var)?;
        }
        if let Some(path) = &c.record {
            endpoint = endpoint.record(cx.base_dir().join(path));
        }
        if let Some(path) = &c.replay {
            endpoint = endpoint.replay(cx.base_dir().join(path));
        }
        let mut agent = LlmAgent::builder(endpoint.build()?, c.model.clone())
            .on_budget_exceeded(|stop, _| format!("stopped before the next model call: {stop}"));
        if let Some(system) = &c.system {
            agent = agent.system(system.clone());
        }
        if let Some(n) = c.max_tokens {
            agent = agent.max_tokens(n);
        }
        if let Some(n) = c.max_turns {
            agent = agent.max_turns(n);
        }
        if let Some(p) = c.price {
            agent = agent
                .prices(Prices::new().with(c.model.clone(), Price::per_million(p.input, p.output)));
        }
        for tool in &c.tools {
            let Some(peer) = manifest.agents.iter().find(|a| a.name == *tool) else {
                return Err(format!("tool `{tool}` is not an agent of the manifest").into());
            };
            let description = format!(
                "Runs the `{}` step `{tool}` of this swarm and returns its output.",
                peer.kind
            );
            agent = agent.tool(
                PeerTool::<Step, StepOutput>::new(tool.clone(), description)
                    .parameters(json!({ "type": "object", "properties": {} })),
            );
        }
        if let Some(spend) = manifest.budget.agents.get(&spec.name) {
            let budget = Budget::new(format!("agent {}", spec.name), limits(spend));
            if let Some(journal) = &cx.journal {
                budget.restore_from(journal)?;
            }
            agent = agent.budget(Arc::new(budget));
        }
        let step = LlmStep {
            agent: agent.build(),
            template: c.prompt,
        };
        Ok(builder.agent(spec, move || step.clone()))
    }
}

/// The agent of an `llm` step.
#[derive(Clone)]
struct LlmStep {
    agent: LlmAgent,
    template: String,
}

impl Agent for LlmStep {
    type Task = Step;
    type Output = StepOutput;
    type Error = LlmError;

    async fn handle(
        &mut self,
        step: Step,
        ctx: &AgentContext<Step, StepOutput>,
    ) -> Result<StepOutput, LlmError> {
        let prompt = render(&self.template, &step.inputs);
        let c: Completion = self
            .agent
            .complete(Prompt::from(prompt), &ctx.caller())
            .await?;
        let cost = c.cost.map(Money::dollars);
        let mut summary = format!(
            "{} {}, {} tokens in, {} out",
            c.calls,
            if c.calls == 1 { "call" } else { "calls" },
            c.usage.input_tokens,
            c.usage.output_tokens
        );
        if let Some(cost) = cost {
            summary.push_str(&format!(", ${cost:.4}"));
        }
        if !c.tools.is_empty() {
            summary.push_str(&format!(", {} tool calls", c.tools.len()));
        }
        Ok(StepOutput {
            summary,
            stdout: c.text,
            usage: Some(StepUsage {
                input_tokens: c.usage.input_tokens,
                output_tokens: c.usage.output_tokens,
                cost,
            }),
            stopped_by: c.stopped_by.map(|s| s.to_string()),
            ..StepOutput::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_their_inputs() {
        assert_eq!(
            template_inputs("a {{plan}} b {{ tests }} {{x"),
            ["plan", "tests"]
        );
        let inputs = [("plan".to_owned(), "1. read".to_owned())];
        assert_eq!(render("do: {{plan}}", &inputs), "do: 1. read");
    }
}
