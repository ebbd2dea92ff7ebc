//! The LLM agent: a model in a loop with its tools, within its budgets.
//!
//! Each task is a conversation: the prompt goes to the model; while the model asks for tools,
//! they run (peers through the topology) and their results go back; the last answer is the
//! task's [`Completion`]. Before each call the call's worst case is reserved in every budget
//! that covers it (the task's, the agent's, the swarm's) and settled to its real usage after.
//! Deltas, calls and tool uses are published as swarm events; usage and cost go to
//! Prometheus. In a journaled task every call and tool result is a recorded step: a task
//! delivered again after a crash gets them from the journal instead of sending them again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use apiary_core::{Agent, AgentContext, ApprovalRequest, Caller, Decision, Rejected};
use apiary_journal::{Steps, TryStepError};
use apiary_metrics as m;
use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::budget::{Budget, BudgetExceeded, Held, Limits};
use crate::chat::{
    ChatRequest, ChatResponse, Delta, Finish, Message, Part, ResponseSchema, Role, Usage,
};
use crate::endpoint::Endpoint;
use crate::money::{Money, Prices};
use crate::tool::{Tool, Tools};
use crate::LlmError;

/// The task of an LLM agent: a prompt, and optionally a budget for this task alone.
///
/// It converts from a string, and deserializes from `"text"` or `{"prompt": "text"}` (what
/// a model gives when it calls an LLM agent as a tool).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    /// What to do.
    pub prompt: String,
    /// Limits for this task alone, on top of the agent's and the swarm's budgets.
    pub budget: Option<Limits>,
}

impl Prompt {
    /// A prompt with a budget of its own.
    pub fn with_budget(prompt: impl Into<String>, budget: Limits) -> Self {
        Self {
            prompt: prompt.into(),
            budget: Some(budget),
        }
    }
}

impl From<&str> for Prompt {
    fn from(prompt: &str) -> Self {
        prompt.to_owned().into()
    }
}

impl From<String> for Prompt {
    fn from(prompt: String) -> Self {
        Self {
            prompt,
            budget: None,
        }
    }
}

impl<'de> Deserialize<'de> for Prompt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            prompt: String,
            #[serde(default)]
            budget: Option<Limits>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Full(Full),
        }
        // Binary formats (the journal's postcard) cannot tell the two forms apart: there a
        // prompt is always the struct it serializes as.
        if !d.is_human_readable() {
            let f = Full::deserialize(d)?;
            return Ok(Self {
                prompt: f.prompt,
                budget: f.budget,
            });
        }
        Ok(match Either::deserialize(d)? {
            Either::Text(prompt) => prompt.into(),
            Either::Full(f) => Self {
                prompt: f.prompt,
                budget: f.budget,
            },
        })
    }
}

/// One tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    /// The tool.
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
}

/// What an LLM agent's task gives back: the answer and what it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The model's last answer.
    pub text: String,
    /// The endpoint that answered (provider and base URL).
    pub provider: String,
    /// The model that answered last.
    pub model: String,
    /// Tokens of every call of the task.
    pub usage: Usage,
    /// Their cost, when every model used is priced.
    pub cost: Option<Money>,
    /// Model calls made (those answered from a journal included).
    pub calls: u32,
    /// Tool calls, in order.
    pub tools: Vec<ToolUse>,
    /// Why the model stopped.
    pub finish: Finish,
    /// Set when a budget stopped the task and the agent's finishing step produced `text`.
    pub stopped_by: Option<BudgetExceeded>,
}

impl Completion {
    /// The answer parsed as `T` (for agents asked for a structured answer).
    ///
    /// # Errors
    ///
    /// [`LlmError::Structured`] naming the provider, the model and the type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, LlmError> {
        serde_json::from_str(&self.text).map_err(|e| LlmError::Structured {
            provider: self.provider.clone(),
            model: self.model.clone(),
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }
}

/// Which endpoint and model an agent calls.
#[derive(Debug, Clone)]
pub struct Route {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The model.
    pub model: String,
}

/// Switches an agent's model or endpoint while the swarm runs; the change applies from the
/// agent's next call. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ModelSwitch(Arc<ArcSwap<Route>>);

impl ModelSwitch {
    /// Calls go to `model` on the current endpoint from now on.
    pub fn set_model(&self, model: impl Into<String>) {
        let current = self.0.load();
        self.0.store(Arc::new(Route {
            endpoint: current.endpoint.clone(),
            model: model.into(),
        }));
    }

    /// Calls go to `model` at `endpoint` from now on.
    pub fn set(&self, endpoint: Endpoint, model: impl Into<String>) {
        self.0.store(Arc::new(Route {
            endpoint,
            model: model.into(),
        }));
    }

    /// Where calls go now.
    pub fn current(&self) -> Arc<Route> {
        self.0.load_full()
    }
}

/// A budget shared by every LLM agent of a swarm: give it to the swarm as a resource
/// (`SwarmBuilder::resource(SwarmBudget::new(..))`).
#[derive(Debug, Clone)]
pub struct SwarmBudget(pub Arc<Budget>);

impl SwarmBudget {
    /// A swarm budget of `limits`.
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(Budget::new("swarm", limits)))
    }
}

/// What a task stopped by a budget answers instead of failing: called with the refusal and
/// the conversation so far.
pub type Finisher = Arc<dyn Fn(&BudgetExceeded, &[Message]) -> String + Send + Sync>;

pub(crate) struct Config {
    route: ModelSwitch,
    prices: Prices,
    system: Option<String>,
    max_tokens: u32,
    temperature: Option<f32>,
    max_turns: u32,
    tools: Tools,
    /// Tools whose calls wait for a person's approval, with the reason shown.
    gated: std::collections::HashMap<String, String>,
    budget: Option<Arc<Budget>>,
    task_limits: Limits,
    response: Option<ResponseSchema>,
    finisher: Option<Finisher>,
    #[cfg(feature = "memory")]
    learn: Option<crate::learn::Learn>,
}

/// A model-calling agent; see the [crate docs](crate). Clone it into the swarm builder's
/// factory: clones share their configuration, model switch and budget.
///
/// ```
/// use apiary_llm::{Endpoint, LlmAgent, Prompt, Provider, Completion};
/// use apiary_core::{AgentSpec, Swarm};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let endpoint = Endpoint::builder(Provider::OpenAi, "http://127.0.0.1:11434/v1").build()?;
/// let planner = LlmAgent::builder(endpoint, "qwen2.5:7b")
///     .system("You plan software changes in numbered steps.")
///     .max_tokens(512)
///     .build();
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("planner"), move || planner.clone())
///     .start()
///     .await?;
/// let plan: Completion = swarm
///     .agent::<Prompt, Completion>("planner")?
///     .submit("Add a --verbose flag to the CLI".into())
///     .await?
///     .await?;
/// println!("{} ({} tokens)", plan.text, plan.usage.total());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LlmAgent {
    cfg: Arc<Config>,
}

impl std::fmt::Debug for LlmAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let route = self.cfg.route.current();
        f.debug_struct("LlmAgent")
            .field("endpoint", &route.endpoint.to_string())
            .field("model", &route.model)
            .field("tools", &self.cfg.tools)
            .finish_non_exhaustive()
    }
}

/// Builds an [`LlmAgent`].
pub struct LlmAgentBuilder {
    cfg: Config,
}

impl std::fmt::Debug for LlmAgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmAgentBuilder").finish_non_exhaustive()
    }
}

impl LlmAgentBuilder {
    /// The system prompt.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.cfg.system = Some(system.into());
        self
    }

    /// The most tokens of each answer (default 1,024); part of each call's worst case.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.cfg.max_tokens = n.max(1);
        self
    }

    /// Sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.cfg.temperature = Some(t);
        self
    }

    /// The most model calls of one task (default 8): a model still calling tools after them
    /// fails the task with [`LlmError::TurnLimit`].
    pub fn max_turns(mut self, n: u32) -> Self {
        self.cfg.max_turns = n.max(1);
        self
    }

    /// Offers `tool` to the model.
    pub fn tool(mut self, tool: impl Tool) -> Self {
        self.cfg.tools.0.push(Arc::new(tool));
        self
    }

    /// Offers `tool` to the model, each call of it waiting for a person's approval first
    /// ([`Approvals`](apiary_core::Approvals): the web console lists it with `reason` and the
    /// model's arguments). A rejection ends the task with [`LlmError::Rejected`], naming who
    /// rejected. Journaled, a decision is a step: a resumed task does not ask again.
    ///
    /// The wait happens inside the task, so the replica running it waits too; give the agent
    /// replicas if others should go on meanwhile. (To gate a whole task without holding a
    /// replica, ask before submitting it.)
    pub fn tool_with_approval(mut self, tool: impl Tool, reason: impl Into<String>) -> Self {
        self.cfg.gated.insert(tool.spec().name, reason.into());
        self.cfg.tools.0.push(Arc::new(tool));
        self
    }

    /// Offers an already shared tool.
    pub fn shared_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.cfg.tools.0.push(tool);
        self
    }

    /// Prices of the models this agent may call (needed for money budgets and costs).
    pub fn prices(mut self, prices: Prices) -> Self {
        self.cfg.prices = prices;
        self
    }

    /// The agent's budget (shared by its replicas; share it with other agents by passing
    /// the same `Arc`).
    pub fn budget(mut self, budget: Arc<Budget>) -> Self {
        self.cfg.budget = Some(budget);
        self
    }

    /// Limits for each task (a [`Prompt`]'s own budget wins).
    pub fn task_budget(mut self, limits: Limits) -> Self {
        self.cfg.task_limits = limits;
        self
    }

    /// Asks for a structured answer matching `schema` (a JSON Schema object); read it with
    /// [`Completion::parse`].
    pub fn response_schema(mut self, name: impl Into<String>, schema: serde_json::Value) -> Self {
        self.cfg.response = Some(ResponseSchema {
            name: name.into(),
            schema,
        });
        self
    }

    /// When a budget refuses a call, the task completes with `finisher`'s text (and
    /// [`Completion::stopped_by`] set) instead of failing: a summary of what was done.
    pub fn on_budget_exceeded(
        mut self,
        finisher: impl Fn(&BudgetExceeded, &[Message]) -> String + Send + Sync + 'static,
    ) -> Self {
        self.cfg.finisher = Some(Arc::new(finisher));
        self
    }

    /// Learns from experience: before each task, the `k` most similar past outcomes stored
    /// in the swarm's memory (a `Memory` resource) under `namespace` are added to the system
    /// prompt; after it, the outcome is stored there.
    #[cfg(feature = "memory")]
    pub fn learn(mut self, namespace: impl Into<String>, k: usize) -> Self {
        self.cfg.learn = Some(crate::learn::Learn {
            namespace: namespace.into(),
            k: k.max(1),
        });
        self
    }

    /// The agent.
    pub fn build(self) -> LlmAgent {
        LlmAgent {
            cfg: Arc::new(self.cfg),
        }
    }
}

impl LlmAgent {
    /// An agent calling `model` at `endpoint`.
    pub fn builder(endpoint: Endpoint, model: impl Into<String>) -> LlmAgentBuilder {
        LlmAgentBuilder {
            cfg: Config {
                route: ModelSwitch(Arc::new(ArcSwap::from_pointee(Route {
                    endpoint,
                    model: model.into(),
                }))),
                prices: Prices::new(),
                system: None,
                max_tokens: 1024,
                temperature: None,
                max_turns: 8,
                tools: Tools::default(),
                gated: std::collections::HashMap::new(),
                budget: None,
                task_limits: Limits::none(),
                response: None,
                finisher: None,
                #[cfg(feature = "memory")]
                learn: None,
            },
        }
    }

    /// The switch that changes this agent's model or endpoint at run time.
    pub fn switch(&self) -> ModelSwitch {
        self.cfg.route.clone()
    }

    /// The agent's budget, if it has one.
    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.cfg.budget.as_ref()
    }
}

/// A conversation in progress and what it has cost.
struct Run {
    messages: Vec<Message>,
    usage: Usage,
    cost: Option<Money>,
    calls: u32,
    tools: Vec<ToolUse>,
    provider: String,
    model: String,
}

impl Agent for LlmAgent {
    type Task = Prompt;
    type Output = Completion;
    type Error = LlmError;

    async fn handle(
        &mut self,
        task: Prompt,
        ctx: &AgentContext<Prompt, Completion>,
    ) -> Result<Completion, LlmError> {
        self.complete(task, &ctx.caller()).await
    }
}

impl LlmAgent {
    /// Runs one task of this agent's loop for an agent of any types: what
    /// [`Agent::handle`] does, for a wrapper agent that takes another task (a CLI step, a
    /// ticket) and turns it into a prompt. `caller` is the wrapper's
    /// [`AgentContext::caller`]; budgets, tools, events, journal steps and the topology
    /// are the wrapper's.
    ///
    /// # Errors
    ///
    /// [`LlmError`] as for [`Agent::handle`].
    pub async fn complete(&self, task: Prompt, ctx: &Caller) -> Result<Completion, LlmError> {
        let cfg = &self.cfg;
        let mut budgets: Vec<Arc<Budget>> = Vec::new();
        budgets.extend(cfg.budget.clone());
        if let Ok(swarm) = ctx.resource::<SwarmBudget>() {
            budgets.push(Arc::clone(&swarm.0));
        }
        // The agent's and the swarm's spending outlives the task (journaled); a task's
        // budget is the task's own, and goes last.
        let lasting = budgets.len();
        let task_limits = task.budget.unwrap_or(cfg.task_limits);
        if task_limits.is_limited() {
            let name = ctx
                .task_id()
                .map_or_else(|| "task".to_owned(), |id| format!("task {id}"));
            budgets.push(Arc::new(Budget::new(name, task_limits)));
        }
        #[allow(unused_mut)]
        let mut system = cfg.system.clone();
        #[cfg(feature = "memory")]
        if let Some(learn) = &cfg.learn {
            system = learn.recall(ctx, &task.prompt, system).await;
        }
        let mut run = Run {
            messages: vec![Message::user(task.prompt.clone())],
            usage: Usage::default(),
            cost: Some(Money::ZERO),
            calls: 0,
            tools: Vec::new(),
            provider: String::new(),
            model: String::new(),
        };
        for _turn in 0..cfg.max_turns {
            let route = cfg.route.current();
            let req = ChatRequest {
                model: route.model.clone(),
                system: system.clone(),
                messages: run.messages.clone(),
                tools: cfg.tools.specs(),
                max_tokens: cfg.max_tokens,
                temperature: cfg.temperature,
                response: cfg.response.clone(),
            };
            let response = match self.call(ctx, &route, &req, &budgets, lasting).await {
                Ok(r) => r,
                Err(LlmError::Budget(stop)) => {
                    metrics::counter!(m::LLM_BUDGET_REFUSED_TOTAL.name, "budget" => stop.budget.clone())
                        .increment(1);
                    ctx.emit("llm.budget", || json!(stop));
                    let Some(finisher) = &cfg.finisher else {
                        return Err(LlmError::Budget(stop));
                    };
                    let text = finisher(&stop, &run.messages);
                    return Ok(run.complete(text, Finish::Stop, Some(stop)));
                }
                Err(e) => return Err(e),
            };
            run.calls += 1;
            run.usage.add(&response.usage);
            run.cost = match (run.cost, cfg.prices.cost(&response.model, &response.usage)) {
                (Some(total), Some(c)) => Some(total.saturating_add(c)),
                _ => None,
            };
            route.endpoint.to_string().clone_into(&mut run.provider);
            response.model.clone_into(&mut run.model);
            let calls: Vec<(String, String, serde_json::Value)> = response
                .tool_calls()
                .map(|(id, name, args)| (id.to_owned(), name.to_owned(), args.clone()))
                .collect();
            run.messages.push(Message {
                role: Role::Assistant,
                content: response.content.clone(),
            });
            if calls.is_empty() {
                let text = response.text();
                if cfg.response.is_some()
                    && let Err(e) = serde_json::from_str::<serde_json::Value>(&text)
                {
                    return Err(LlmError::Structured {
                        provider: run.provider,
                        model: run.model,
                        type_name: "JSON",
                        reason: e.to_string(),
                    });
                }
                let completion = run.complete(text, response.finish, None);
                #[cfg(feature = "memory")]
                if let Some(learn) = &cfg.learn {
                    learn.store(ctx, &task.prompt, &completion).await;
                }
                return Ok(completion);
            }
            let mut results = Vec::with_capacity(calls.len());
            for (id, name, args) in calls {
                let (ok, content) = self.run_tool(ctx, &name, args).await?;
                run.tools.push(ToolUse {
                    name: name.clone(),
                    ok,
                });
                results.push(Part::ToolResult {
                    id,
                    content,
                    is_error: !ok,
                });
            }
            run.messages.push(Message {
                role: Role::User,
                content: results,
            });
        }
        Err(LlmError::TurnLimit {
            agent: ctx.name().to_string(),
            turns: cfg.max_turns,
        })
    }
}

impl Run {
    fn complete(
        self,
        text: String,
        finish: Finish,
        stopped_by: Option<BudgetExceeded>,
    ) -> Completion {
        Completion {
            text,
            provider: self.provider,
            model: self.model,
            usage: self.usage,
            cost: self.cost,
            calls: self.calls,
            tools: self.tools,
            finish,
            stopped_by,
        }
    }
}

impl LlmAgent {
    /// One model call: reserved in every budget, streamed with deltas published, settled,
    /// counted; a recorded step in a journaled task.
    async fn call(
        &self,
        ctx: &Caller,
        route: &Route,
        req: &ChatRequest,
        budgets: &[Arc<Budget>],
        lasting: usize,
    ) -> Result<ChatResponse, LlmError> {
        let cfg = &self.cfg;
        let agent = ctx.name().to_string();
        let price = cfg.prices.get(&req.model).copied();
        let ran = AtomicBool::new(false);
        let started = Instant::now();
        let recorded = ctx
            .try_step("llm", |_key| async {
                ran.store(true, Ordering::Relaxed);
                let input = req.estimate_input_tokens();
                let worst = Usage {
                    input_tokens: input,
                    output_tokens: u64::from(req.max_tokens),
                    cached_input_tokens: 0,
                };
                let worst_cost = match price {
                    Some(p) => p.cost(&worst),
                    None => {
                        if let Some(b) = budgets.iter().find(|b| b.limits().cost.is_some()) {
                            return Err(LlmError::Config {
                                what: format!("model `{}`", req.model),
                                reason: format!(
                                    "has no price, but budget `{}` limits money",
                                    b.name()
                                ),
                            });
                        }
                        Money::ZERO
                    }
                };
                let held = Held::reserve(budgets, worst.total(), worst_cost)?;
                let streamed = AtomicU64::new(0);
                let mut on_delta = |d: Delta| {
                    if let Delta::Text(t) = &d {
                        streamed.fetch_add(t.len() as u64, Ordering::Relaxed);
                    }
                    ctx.emit("llm.delta", || match &d {
                        Delta::Text(t) => json!({ "model": req.model, "text": t }),
                        Delta::ToolCall { name } => {
                            json!({ "model": req.model, "tool_call": name })
                        }
                    });
                };
                match route
                    .endpoint
                    .call(req, ctx.deadline(), &mut on_delta)
                    .await
                {
                    Ok(response) => {
                        let cost = price.map_or(Money::ZERO, |p| p.cost(&response.usage));
                        held.settle(response.usage.total(), cost);
                        // Journaled before the call's own record: a crash between the
                        // two counts the call twice, never zero times.
                        journal_spend(ctx, &budgets[..lasting], response.usage.total(), cost)
                            .await?;
                        Ok(Recorded(response))
                    }
                    Err(e) => {
                        // A stream that broke was billed for what it produced; a refused or
                        // unanswered request was not.
                        let out = streamed.load(Ordering::Relaxed).div_ceil(4);
                        let used = match &e {
                            LlmError::StreamCut { .. }
                            | LlmError::Malformed { .. }
                            | LlmError::UnknownFinish { .. }
                            | LlmError::Timeout {
                                waiting_for: "next chunk" | "complete answer",
                                ..
                            } => input + out,
                            _ => 0,
                        };
                        let cost = price.map_or(Money::ZERO, |p| {
                            p.cost(&Usage {
                                input_tokens: if used > 0 { input } else { 0 },
                                output_tokens: if used > 0 { out } else { 0 },
                                cached_input_tokens: 0,
                            })
                        });
                        held.settle(used, cost);
                        journal_spend(ctx, &budgets[..lasting], used, cost).await?;
                        Err(e)
                    }
                }
            })
            .await;
        let replayed = !ran.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let model = req.model.clone();
        let response = match recorded {
            Ok(Recorded(response)) => response,
            Err(TryStepError::Effect(e)) => {
                let outcome = if matches!(e, LlmError::Budget(_)) {
                    "budget"
                } else {
                    "failed"
                };
                metrics::counter!(m::LLM_CALLS_TOTAL.name, "agent" => agent, "model" => model, "outcome" => outcome)
                    .increment(1);
                return Err(e);
            }
            Err(TryStepError::Journal(e)) => return Err(LlmError::Journal(e.to_string())),
        };
        let cost = price.map(|p| p.cost(&response.usage));
        let usage = response.usage;
        let outcome = if replayed { "replayed" } else { "completed" };
        metrics::counter!(m::LLM_CALLS_TOTAL.name, "agent" => agent.clone(), "model" => model.clone(), "outcome" => outcome)
            .increment(1);
        if !replayed {
            for (kind, n) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cached_input", usage.cached_input_tokens),
            ] {
                metrics::counter!(m::LLM_TOKENS_TOTAL.name, "agent" => agent.clone(), "model" => model.clone(), "kind" => kind)
                    .increment(n);
            }
            if let Some(c) = cost {
                metrics::counter!(m::LLM_COST_MICRODOLLARS_TOTAL.name, "agent" => agent.clone(), "model" => model.clone())
                    .increment(c.nanos() / 1_000);
            }
            metrics::histogram!(m::LLM_CALL_DURATION_SECONDS.name, "agent" => agent, "model" => model)
                .record(seconds);
            for b in budgets {
                metrics::gauge!(m::LLM_BUDGET_USED_RATIO.name, "budget" => b.name().to_owned())
                    .set(b.used_fraction());
            }
        }
        ctx.emit("llm.call", || {
            json!({
                "model": response.model,
                "usage": usage,
                "cost": cost.map(Money::dollars),
                "finish": response.finish,
                "seconds": seconds,
                "replayed": replayed,
            })
        });
        Ok(response)
    }

    /// Waits for a person's decision on a gated tool call; a yes or no is journaled (a
    /// withdrawn request, the swarm shutting down, is not: the resumed task asks again).
    async fn approve_tool(
        &self,
        ctx: &Caller,
        name: &str,
        reason: &str,
        args: &serde_json::Value,
    ) -> Result<(), LlmError> {
        let agent = ctx.name().to_string();
        let task = ctx.task_id().map_or(0, |t| t.get());
        let decided = ctx
            .try_step(&format!("approval-{name}"), |key| async move {
                let request = ApprovalRequest::new(
                    agent.clone(),
                    format!("{reason} (tool `{name}`, arguments {args})"),
                )
                .id(format!("task-{task}/{key}"));
                let request = match ctx.task_id() {
                    Some(t) => request.task(t),
                    None => request,
                };
                let gate = ctx
                    .approvals()
                    .request(request)
                    .map_err(|e| e.to_string())?;
                let id = gate.id().to_owned();
                match gate.await {
                    Ok(approved) => Ok((id, true, approved.by, None)),
                    Err(Decision::Rejected(r)) => Ok((id, false, r.by, r.reason)),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        match decided {
            Ok((_, true, _, _)) => Ok(()),
            Ok((id, false, by, reason)) => Err(LlmError::Rejected(Rejected {
                id,
                agent: ctx.name().to_string(),
                by,
                reason,
            })),
            Err(TryStepError::Effect(why)) => Err(LlmError::Approval(why)),
            Err(TryStepError::Journal(e)) => Err(LlmError::Journal(e.to_string())),
        }
    }

    /// Runs one tool call; a tool's failure is a result for the model, not an error.
    async fn run_tool(
        &self,
        ctx: &Caller,
        name: &str,
        args: serde_json::Value,
    ) -> Result<(bool, String), LlmError> {
        if let Some(reason) = self.cfg.gated.get(name) {
            self.approve_tool(ctx, name, reason, &args).await?;
        }
        let started = Instant::now();
        let result = ctx
            .step(&format!("tool-{name}"), |_key| async {
                match self.cfg.tools.get(name) {
                    Some(tool) => match tool.call(args, ctx).await {
                        Ok(text) => (true, text),
                        Err(message) => (false, message),
                    },
                    None => (false, format!("there is no tool named `{name}`")),
                }
            })
            .await
            .map_err(|e| LlmError::Journal(e.to_string()))?;
        ctx.emit(
            "llm.tool",
            || json!({ "tool": name, "ok": result.0, "seconds": started.elapsed().as_secs_f64() }),
        );
        Ok(result)
    }
}

/// Adds a call's spending to the journal's tallies of the lasting budgets (in a journaled
/// task; otherwise nothing), so a resumed run starts from what was spent.
async fn journal_spend(
    ctx: &Caller,
    budgets: &[Arc<Budget>],
    tokens: u64,
    cost: Money,
) -> Result<(), LlmError> {
    if tokens == 0 && cost == Money::ZERO {
        return Ok(());
    }
    let names: Vec<(String, String)> = budgets.iter().map(|b| b.tally_names()).collect();
    let amounts: Vec<(&str, u64)> = names
        .iter()
        .flat_map(|(t, c)| [(t.as_str(), tokens), (c.as_str(), cost.nanos())])
        .collect();
    ctx.tally(&amounts)
        .await
        .map_err(|e| LlmError::Journal(e.to_string()))
}

/// A call's answer as a journal step holds it: JSON text (the journal's postcard cannot hold
/// the JSON values of tool arguments), encoded only when a journal records it and decoded only
/// when one replays it.
struct Recorded(ChatResponse);

impl Serialize for Recorded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&json)
    }
}

impl<'de> Deserialize<'de> for Recorded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = String::deserialize(d)?;
        serde_json::from_str(&json).map(Recorded).map_err(|e| {
            serde::de::Error::custom(format!("a recorded model call does not decode: {e}"))
        })
    }
}
