//! The live picture of a swarm, folded from its events: what each agent is doing, how its
//! tasks ended, its breakers and restarts, model usage, alerts.
//!
//! Only the console's pump writes it (one event at a time); `/state` reads a copy. What the
//! swarm can answer itself at the moment of asking (queue depths, pauses, pending
//! approvals) is not kept here but asked for when a snapshot is made.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use apiary_core::{
    AgentName, BreakerTransition, EventKind, Outcome, StopReason, SwarmEvent, TaskId,
};
use serde::Serialize;

/// How far back `rate_per_s` looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Alerts kept.
const ALERTS: usize = 100;

/// Tasks of one agent by how they went.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Counts {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    pub(crate) cancelled: u64,
    pub(crate) timed_out: u64,
    pub(crate) agent_stopped: u64,
    pub(crate) delegated: u64,
}

impl Counts {
    fn count(&mut self, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Completed => &mut self.completed,
            Outcome::Failed => &mut self.failed,
            Outcome::Panicked => &mut self.panicked,
            Outcome::Cancelled => &mut self.cancelled,
            Outcome::TimedOut => &mut self.timed_out,
            Outcome::AgentStopped => &mut self.agent_stopped,
            Outcome::Delegated => &mut self.delegated,
        };
        *slot += 1;
    }

    fn add(&mut self, other: &Counts) {
        self.started += other.started;
        self.completed += other.completed;
        self.failed += other.failed;
        self.panicked += other.panicked;
        self.cancelled += other.cancelled;
        self.timed_out += other.timed_out;
        self.agent_stopped += other.agent_stopped;
        self.delegated += other.delegated;
    }
}

/// A replica's breaker as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

/// What the events say about one agent.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentModel {
    pub(crate) busy: u64,
    pub(crate) tasks: Counts,
    pub(crate) restarts: u64,
    /// Replicas whose actor stopped with a failure and has not been restarted yet.
    pub(crate) restarting: BTreeMap<usize, ()>,
    /// Replicas stopped for good (shutdown, or their supervisor gave up).
    pub(crate) stopped: BTreeMap<usize, ()>,
    pub(crate) breakers: BTreeMap<usize, Breaker>,
    finishes: VecDeque<Instant>,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost: f64,
}

impl AgentModel {
    /// The worst breaker among the replicas (open beats half-open beats closed).
    pub(crate) fn breaker(&self) -> Option<Breaker> {
        let mut worst = None;
        for b in self.breakers.values() {
            worst = match (worst, *b) {
                (_, Breaker::Open) | (Some(Breaker::Open), _) => Some(Breaker::Open),
                (_, Breaker::HalfOpen) | (Some(Breaker::HalfOpen), _) => Some(Breaker::HalfOpen),
                _ => Some(Breaker::Closed),
            };
        }
        worst
    }

    pub(crate) fn rate_per_s(&self, now: Instant) -> f64 {
        let recent = self
            .finishes
            .iter()
            .filter(|t| now.duration_since(**t) <= RATE_WINDOW)
            .count();
        recent as f64 / RATE_WINDOW.as_secs_f64()
    }
}

/// A task that started and has not finished.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) agent: AgentName,
    pub(crate) replica: usize,
    pub(crate) since: Instant,
}

/// An alert: something a person watching should notice.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alert {
    pub(crate) seq: u64,
    pub(crate) level: &'static str,
    pub(crate) message: String,
}

/// Model usage over the whole swarm.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost: f64,
}

/// The swarm as its events describe it.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) started: Instant,
    pub(crate) last_seq: u64,
    pub(crate) agents: BTreeMap<AgentName, AgentModel>,
    pub(crate) running: HashMap<TaskId, Running>,
    pub(crate) usage: Usage,
    pub(crate) alerts: VecDeque<Alert>,
    pub(crate) stopped: bool,
}

impl Model {
    pub(crate) fn new(agents: impl IntoIterator<Item = AgentName>) -> Self {
        Self {
            started: Instant::now(),
            last_seq: 0,
            agents: agents
                .into_iter()
                .map(|a| (a, AgentModel::default()))
                .collect(),
            running: HashMap::new(),
            usage: Usage::default(),
            alerts: VecDeque::new(),
            stopped: false,
        }
    }

    /// Tasks of every agent by how they went.
    pub(crate) fn totals(&self) -> Counts {
        let mut all = Counts::default();
        for a in self.agents.values() {
            all.add(&a.tasks);
        }
        all
    }

    pub(crate) fn alert(&mut self, seq: u64, level: &'static str, message: String) {
        if self.alerts.len() == ALERTS {
            self.alerts.pop_back();
        }
        self.alerts.push_front(Alert {
            seq,
            level,
            message,
        });
    }

    fn agent(&mut self, name: &AgentName) -> &mut AgentModel {
        // An Arc clone, not a string copy, per event.
        self.agents.entry(name.clone()).or_default()
    }

    /// Folds one event in.
    pub(crate) fn apply(&mut self, event: &SwarmEvent) {
        let seq = event.seq();
        self.last_seq = self.last_seq.max(seq);
        let now = Instant::now();
        match event.kind() {
            EventKind::AgentSpawned { agent, replica, .. } => {
                let a = self.agent(agent);
                a.restarting.remove(replica);
                a.stopped.remove(replica);
            }
            EventKind::AgentStopped {
                agent,
                replica,
                reason,
            } => {
                let a = self.agent(agent);
                match reason {
                    // A failed actor is restarted unless its supervisor gives up.
                    StopReason::Failed(_) => {
                        a.restarting.insert(*replica, ());
                    }
                    StopReason::Normal => {
                        a.stopped.insert(*replica, ());
                    }
                }
            }
            EventKind::AgentRestarted { agent, replica, .. } => {
                let a = self.agent(agent);
                a.restarts += 1;
                a.restarting.remove(replica);
            }
            EventKind::TaskStarted {
                task,
                agent,
                replica,
            } => {
                let a = self.agent(agent);
                a.busy += 1;
                a.tasks.started += 1;
                self.running.insert(
                    *task,
                    Running {
                        agent: agent.clone(),
                        replica: *replica,
                        since: now,
                    },
                );
            }
            EventKind::TaskFinished {
                task,
                agent,
                outcome,
                ..
            } => {
                let was_running = self.running.remove(task).is_some();
                let a = self.agent(agent);
                if was_running {
                    a.busy = a.busy.saturating_sub(1);
                }
                a.tasks.count(*outcome);
                a.finishes.push_back(now);
                while a
                    .finishes
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
                {
                    a.finishes.pop_front();
                }
            }
            EventKind::BreakerChanged {
                agent,
                replica,
                transition,
            } => {
                let state = match transition {
                    BreakerTransition::Opened | BreakerTransition::Reopened => Breaker::Open,
                    BreakerTransition::HalfOpened => Breaker::HalfOpen,
                    BreakerTransition::Closed => Breaker::Closed,
                };
                self.agent(agent).breakers.insert(*replica, state);
                match transition {
                    BreakerTransition::Opened => {
                        self.alert(seq, "warn", format!("breaker of {agent} opened"))
                    }
                    BreakerTransition::Reopened => self.alert(
                        seq,
                        "warn",
                        format!("breaker of {agent} opened again: its trial failed"),
                    ),
                    _ => {}
                }
            }
            EventKind::SupervisorGaveUp { supervisor, reason } => self.alert(
                seq,
                "error",
                format!("supervisor `{supervisor}` gave up: {reason}"),
            ),
            EventKind::DeadLetter { agent, cause, .. } => {
                self.alert(seq, "warn", format!("dead letter for {agent}: {cause}"))
            }
            EventKind::Emitted {
                agent, name, data, ..
            } if name == "llm.call" => {
                let usage = &data["usage"];
                let input = usage["input_tokens"].as_u64().unwrap_or(0);
                let output = usage["output_tokens"].as_u64().unwrap_or(0);
                let cost = data["cost"].as_f64().unwrap_or(0.0);
                let a = self.agent(agent);
                a.input_tokens += input;
                a.output_tokens += output;
                a.cost += cost;
                self.usage.input_tokens += input;
                self.usage.output_tokens += output;
                self.usage.cost += cost;
            }
            EventKind::Emitted {
                agent, name, data, ..
            } if name == "llm.budget" => self.alert(
                seq,
                "error",
                format!(
                    "{agent} stopped by its budget: {}",
                    data.get("budget").and_then(|b| b.as_str()).unwrap_or("?")
                ),
            ),
            EventKind::SwarmStopped => self.stopped = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiary_core::events::EventBus;
    use apiary_core::RecvError;

    #[tokio::test]
    async fn events_fold_into_states_counts_breakers_and_alerts() {
        let bus = EventBus::new(64, Vec::new());
        let mut events = bus.subscribe();
        let agent: apiary_core::AgentName = "smoke".into();
        bus.publish(|| EventKind::TaskStarted {
            task: TaskId::from(1),
            agent: agent.clone(),
            replica: 0,
        });
        bus.publish(|| EventKind::BreakerChanged {
            agent: agent.clone(),
            replica: 0,
            transition: BreakerTransition::Opened,
        });
        bus.publish(|| EventKind::TaskFinished {
            task: TaskId::from(1),
            agent: agent.clone(),
            replica: 0,
            outcome: Outcome::Failed,
            queued: Duration::ZERO,
            ran: Duration::from_millis(5),
        });
        let mut model = Model::new([agent.clone()]);
        for _ in 0..3 {
            let e: Result<SwarmEvent, RecvError> = events.recv().await;
            model.apply(&e.unwrap());
        }
        let smoke = &model.agents["smoke"];
        assert_eq!(smoke.busy, 0);
        assert_eq!(smoke.tasks.started, 1);
        assert_eq!(smoke.tasks.failed, 1);
        assert_eq!(smoke.breaker(), Some(Breaker::Open));
        assert!(model.running.is_empty());
        assert_eq!(model.alerts[0].message, "breaker of smoke opened");
    }
}
