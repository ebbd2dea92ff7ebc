//! Where the runtime records its metrics (names and help live in `apiary-metrics`).
//!
//! Per-task series use handles registered once per agent, so the hot path is an atomic add,
//! not a label lookup. They are registered with the agent's first task, not when it starts:
//! nine labelled series cost more to register than the agent's actor costs to start, and many
//! agents of a large swarm never get a task. Handles bind to the recorder installed at that
//! moment: install the exporter before starting the swarm (as the `apiary` binary does).

use std::sync::OnceLock;
use std::time::Duration;

use apiary_metrics as m;
use metrics::{Counter, Gauge, Histogram};

use crate::{events::BreakerTransition, AgentName, Outcome};

const OUTCOMES: [Outcome; 7] = [
    Outcome::Completed,
    Outcome::Failed,
    Outcome::Panicked,
    Outcome::Cancelled,
    Outcome::TimedOut,
    Outcome::AgentStopped,
    Outcome::Delegated,
];

/// Where an outcome's counter sits in `OUTCOMES` (and in `AgentMetrics::outcomes`).
fn index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Completed => 0,
        Outcome::Failed => 1,
        Outcome::Panicked => 2,
        Outcome::Cancelled => 3,
        Outcome::TimedOut => 4,
        Outcome::AgentStopped => 5,
        Outcome::Delegated => 6,
    }
}

/// One agent's task series, registered with its first task.
pub(crate) struct AgentMetrics {
    agent: AgentName,
    // Boxed: nine handles inline would be ~150 bytes in every agent, most of which never
    // take a task (pools' spares, coordinators that only delegate).
    series: OnceLock<Box<Series>>,
}

struct Series {
    outcomes: [Counter; 7],
    duration: Histogram,
    depth: Gauge,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentMetrics")
    }
}

impl AgentMetrics {
    pub(crate) fn new(agent: &AgentName) -> Self {
        Self {
            agent: agent.clone(),
            series: OnceLock::new(),
        }
    }

    fn series(&self) -> &Series {
        self.series.get_or_init(|| {
            let name = self.agent.shared();
            Box::new(Series {
                outcomes: OUTCOMES.map(|o| {
                    metrics::counter!(m::TASKS_TOTAL.name, "agent" => name.clone(), "outcome" => o.as_str())
                }),
                duration: metrics::histogram!(m::TASK_DURATION_SECONDS.name, "agent" => name.clone()),
                depth: metrics::gauge!(m::QUEUE_DEPTH.name, "agent" => name),
            })
        })
    }

    /// A task was accepted into the agent's queue.
    pub(crate) fn accepted(&self) {
        self.series().depth.increment(1.0);
    }

    /// A task left the queue without being accepted (handed back to the submitter).
    pub(crate) fn withdrawn(&self) {
        self.series().depth.decrement(1.0);
    }

    /// A task ended (or was handed on); `ran` is how long the agent worked on it, if it
    /// started.
    pub(crate) fn finished(&self, outcome: Outcome, ran: Option<Duration>) {
        let series = self.series();
        series.depth.decrement(1.0);
        series.outcomes[index(outcome)].increment(1);
        if let Some(ran) = ran {
            series.duration.record(ran.as_secs_f64());
        }
    }
}

pub(crate) fn restarted(agent: &AgentName) {
    metrics::counter!(m::AGENT_RESTARTS_TOTAL.name, "agent" => agent.shared()).increment(1);
}

pub(crate) fn gave_up(supervisor: &str) {
    metrics::counter!(m::SUPERVISOR_GAVE_UP_TOTAL.name, "agent" => supervisor.to_owned())
        .increment(1);
}

pub(crate) fn dead_letter(agent: &AgentName) {
    metrics::counter!(m::DEAD_LETTERS_TOTAL.name, "agent" => agent.shared()).increment(1);
}

pub(crate) fn breaker(agent: &AgentName, replica: usize, transition: BreakerTransition) {
    let state = match transition {
        BreakerTransition::Closed => 0.0,
        BreakerTransition::HalfOpened => 1.0,
        BreakerTransition::Opened | BreakerTransition::Reopened => 2.0,
    };
    metrics::gauge!(m::BREAKER_STATE.name, "agent" => agent.shared(), "replica" => replica.to_string())
        .set(state);
}

pub(crate) fn spawned(agent: &AgentName, took: Duration) {
    metrics::histogram!(m::SPAWN_DURATION_SECONDS.name, "agent" => agent.shared())
        .record(took.as_secs_f64());
    agents().increment(1.0);
}

pub(crate) fn stopped() {
    agents().decrement(1.0);
}

/// The live-agents gauge's key, hashed at compile time: every start and stop touches it,
/// and `gauge!` would hash the name and drop the key each time.
static AGENTS_KEY: metrics::Key = metrics::Key::from_static_name(m::AGENTS.name);
static AGENTS_META: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn agents() -> Gauge {
    metrics::with_recorder(|r| r.register_gauge(&AGENTS_KEY, &AGENTS_META))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_counter() {
        for (i, outcome) in OUTCOMES.iter().enumerate() {
            assert_eq!(index(*outcome), i, "{outcome:?}");
        }
    }
}
