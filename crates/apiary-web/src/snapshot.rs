//! `/state`: the swarm at one moment, from the live picture and what the swarm answers now.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use apiary_core::Swarm;
use serde::Serialize;

use crate::console::BudgetGauge;
use crate::model::{Alert, Breaker, Counts, Model, Usage};

/// The swarm at one moment, as `GET /state` serves it (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    swarm: String,
    topology: Option<String>,
    uptime_s: f64,
    finished: bool,
    last_seq: u64,
    agents: Vec<AgentState>,
    links: Vec<Link>,
    running_tasks: Vec<RunningTask>,
    approvals: Vec<ApprovalState>,
    budgets: Vec<BudgetGauge>,
    tasks: Counts,
    usage: Usage,
    alerts: Vec<Alert>,
    summary: Option<serde_json::Value>,
}

impl Snapshot {
    /// The state of one agent, by name.
    pub fn agent(&self, name: &str) -> Option<&AgentState> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Whether the run is over.
    pub fn finished(&self) -> bool {
        self.finished
    }
}

/// What an agent is doing, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentStatus {
    /// Nothing to do.
    Idle,
    /// Running at least one task.
    Busy,
    /// A replica crashed and is being restarted.
    Restarting,
    /// A replica's circuit breaker is open.
    BreakerOpen,
    /// Its queue is paused.
    Paused,
    /// Every replica has stopped.
    Stopped,
}

/// One agent in a [`Snapshot`].
#[derive(Debug, Clone, Serialize)]
pub struct AgentState {
    name: String,
    kind: String,
    replicas: u32,
    state: AgentStatus,
    paused: bool,
    queue_depth: usize,
    queue_capacity: usize,
    breaker: Option<Breaker>,
    restarts: u64,
    busy: u64,
    tasks: Counts,
    rate_per_s: f64,
    depends_on: Vec<String>,
    tokens: u64,
    cost: f64,
}

impl AgentState {
    /// What it is doing.
    pub fn state(&self) -> AgentStatus {
        self.state
    }

    /// Whether its queue is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Tasks that completed.
    pub fn completed(&self) -> u64 {
        self.tasks.completed
    }
}

#[derive(Debug, Clone, Serialize)]
struct Link {
    from: String,
    to: String,
}

#[derive(Debug, Clone, Serialize)]
struct RunningTask {
    id: u64,
    agent: String,
    replica: usize,
    for_s: f64,
}

#[derive(Debug, Clone, Serialize)]
struct ApprovalState {
    id: String,
    agent: String,
    reason: String,
    task: Option<u64>,
    requested_s_ago: f64,
}

pub(crate) fn take(
    swarm: &Swarm,
    model: &Model,
    links: &[(String, String)],
    budgets: Vec<BudgetGauge>,
    summary: Option<serde_json::Value>,
    finished: bool,
    now: Instant,
) -> Snapshot {
    let mut agents = Vec::new();
    let names: BTreeMap<String, ()> = swarm
        .agents()
        .into_iter()
        .map(|a| (a.to_string(), ()))
        .chain(model.agents.keys().map(|k| (k.to_string(), ())))
        .collect();
    let default_model = Default::default();
    for name in names.keys() {
        let m = model.agents.get(name.as_str()).unwrap_or(&default_model);
        let spec = swarm.spec(name).ok();
        let paused = swarm.is_paused(name).unwrap_or(false);
        let replicas = spec.as_ref().map_or(1, |s| s.replicas);
        let breaker = m.breaker();
        let state = if model.stopped || m.stopped.len() >= replicas as usize {
            AgentStatus::Stopped
        } else if !m.restarting.is_empty() {
            AgentStatus::Restarting
        } else if breaker == Some(Breaker::Open) {
            AgentStatus::BreakerOpen
        } else if paused {
            AgentStatus::Paused
        } else if m.busy > 0 {
            AgentStatus::Busy
        } else {
            AgentStatus::Idle
        };
        agents.push(AgentState {
            name: name.clone(),
            kind: spec.as_ref().map(|s| s.kind.clone()).unwrap_or_default(),
            replicas,
            state,
            paused,
            queue_depth: swarm.queue_depth(name).unwrap_or(0),
            queue_capacity: swarm.queue_capacity(name).unwrap_or(0),
            breaker,
            restarts: m.restarts,
            busy: m.busy,
            tasks: m.tasks.clone(),
            rate_per_s: m.rate_per_s(now),
            depends_on: spec.map(|s| s.depends_on).unwrap_or_default(),
            tokens: m.input_tokens + m.output_tokens,
            cost: m.cost,
        });
    }
    let mut running_tasks: Vec<RunningTask> = model
        .running
        .iter()
        .map(|(id, r)| RunningTask {
            id: id.get(),
            agent: r.agent.to_string(),
            replica: r.replica,
            for_s: now.duration_since(r.since).as_secs_f64(),
        })
        .collect();
    running_tasks.sort_by_key(|t| t.id);
    let wall = SystemTime::now();
    let approvals = swarm
        .approvals()
        .pending()
        .into_iter()
        .map(|p| ApprovalState {
            requested_s_ago: wall
                .duration_since(p.requested_at)
                .unwrap_or_default()
                .as_secs_f64(),
            id: p.id,
            agent: p.agent,
            reason: p.reason,
            task: p.task.map(|t| t.get()),
        })
        .collect();
    Snapshot {
        swarm: swarm.settings().name.clone(),
        topology: swarm.topology(),
        uptime_s: now.duration_since(model.started).as_secs_f64(),
        finished,
        last_seq: model.last_seq,
        agents,
        links: links
            .iter()
            .map(|(from, to)| Link {
                from: from.clone(),
                to: to.clone(),
            })
            .collect(),
        running_tasks,
        approvals,
        budgets,
        tasks: model.totals(),
        usage: model.usage,
        alerts: model.alerts.iter().cloned().collect(),
        summary,
    }
}
