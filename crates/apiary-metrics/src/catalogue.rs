//! The definitions of every metric apiary records.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (Prometheus counter, name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations bucketed (Prometheus histogram).
    Histogram,
}

/// One metric: what Prometheus shows and what `docs/metrics.md` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Full series name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Label names, in the order they are documented.
    pub labels: &'static [&'static str],
    /// Base unit (`seconds`, `ratio`, ...), empty for plain counts.
    pub unit: &'static str,
    /// What it measures, and where it is counted.
    pub help: &'static str,
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $kind:ident, [$($label:literal),*], $unit:literal, $help:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $id: Metric = Metric {
                name: $name,
                kind: Kind::$kind,
                labels: &[$($label),*],
                unit: $unit,
                help: $help,
            };
        )*
        /// Every metric apiary records.
        pub fn catalogue() -> &'static [Metric] {
            &[$($id),*]
        }
    };
}

catalogue! {
    /// Tasks finished, by agent and outcome.
    TASKS_TOTAL = "apiary_tasks_total", Counter, ["agent", "outcome"], "",
        "Tasks finished, by agent and outcome (completed, failed, panicked, cancelled, timed_out, agent_stopped, delegated: handed on to a peer).";
    /// Time an agent spent running a task.
    TASK_DURATION_SECONDS = "apiary_task_duration_seconds", Histogram, ["agent"], "seconds",
        "Time from a task's start on an agent to its result.";
    /// Tasks queued or running per agent.
    QUEUE_DEPTH = "apiary_queue_depth", Gauge, ["agent"], "",
        "Tasks accepted by an agent (all replicas) and not yet finished: queued or running.";
    /// Agent actor restarts.
    AGENT_RESTARTS_TOTAL = "apiary_agent_restarts_total", Counter, ["agent"], "",
        "Agent actors restarted by their supervisor.";
    /// Supervisors that exceeded their restart intensity.
    SUPERVISOR_GAVE_UP_TOTAL = "apiary_supervisor_gave_up_total", Counter, ["agent"], "",
        "Times a supervisor exceeded its restart intensity and stopped the agents it supervises.";
    /// Circuit breaker state per replica.
    BREAKER_STATE = "apiary_breaker_state", Gauge, ["agent", "replica"], "",
        "Circuit breaker state per agent replica: 0 closed, 1 half-open, 2 open.";
    /// Tasks nobody could run.
    DEAD_LETTERS_TOTAL = "apiary_dead_letters_total", Counter, ["agent"], "",
        "Tasks that could not be delivered (agent stopped for good) and were failed back.";
    /// Time to start one agent.
    SPAWN_DURATION_SECONDS = "apiary_spawn_duration_seconds", Histogram, ["agent"], "seconds",
        "Time from spawning an agent's actors to its started hook returning.";
    /// Agents currently running.
    AGENTS = "apiary_agents", Gauge, [], "",
        "Agent actors (replicas) running in this process.";
    /// Time of one pattern search through the memory actor.
    MEMORY_SEARCH_DURATION_SECONDS = "apiary_memory_search_duration_seconds", Histogram, ["index"], "seconds",
        "Time the memory actor spent answering one pattern search, by index kind (exact, quantized).";
    /// Measured recall of the quantized index.
    MEMORY_RECALL = "apiary_memory_recall", Gauge, [], "ratio",
        "recall@10 of the quantized index against exact search, measured on sample queries when it was tuned.";
    /// Patterns stored.
    MEMORY_PATTERNS = "apiary_memory_patterns", Gauge, [], "",
        "Patterns (vectors) stored in the memory.";
    /// Keys stored.
    MEMORY_KEYS = "apiary_memory_keys", Gauge, [], "",
        "Key/value entries stored in the memory (expired ones leave at the next sweep).";
    /// Keys removed because their TTL passed.
    MEMORY_EXPIRED_TOTAL = "apiary_memory_expired_total", Counter, [], "",
        "Key/value entries removed because their TTL passed.";
    /// Durable writes.
    MEMORY_WRITES_TOTAL = "apiary_memory_writes_total", Counter, ["op"], "",
        "Writes the memory applied and acknowledged, by operation (put, delete, add_patterns, remove_pattern).";
    /// Quantized index trainings.
    MEMORY_TRAININGS_TOTAL = "apiary_memory_trainings_total", Counter, ["outcome"], "",
        "Quantized index trainings, by outcome (swapped, failed).";
    /// Time of one training.
    MEMORY_TRAINING_DURATION_SECONDS = "apiary_memory_training_duration_seconds", Histogram, [], "seconds",
        "Time to train, fill and tune a quantized index on a blocking thread.";
    /// Cluster peers with a ready session.
    CLUSTER_PEERS = "apiary_cluster_peers", Gauge, ["node"], "",
        "Peers of a node of this process whose ractor_cluster session is authenticated and ready.";
    /// Task lines opened to peers.
    CLUSTER_TASK_LINES_TOTAL = "apiary_cluster_task_lines_total", Counter, ["node", "peer", "outcome"], "",
        "Task lines a node of this process tried to open to an agent's gateway on a peer, by outcome (opened, failed: that gateway's tasks then go through the ractor_cluster session).";
    /// Tasks sent to agents on other nodes.
    REMOTE_TASKS_TOTAL = "apiary_remote_tasks_total", Counter, ["node", "agent", "outcome"], "",
        "Tasks a node of this process sent to an agent on another node, by outcome (completed, failed, node_down, no_node, undecodable, timed_out).";
    /// Remote tasks whose node dropped out.
    REMOTE_FAILOVERS_TOTAL = "apiary_remote_failovers_total", Counter, ["node", "agent"], "",
        "Times a remote task's node dropped out before answering (the task then goes to the next node exporting the agent, if any).";
    /// Round trip of a remote task.
    REMOTE_TASK_DURATION_SECONDS = "apiary_remote_task_duration_seconds", Histogram, ["node", "agent"], "seconds",
        "Time from sending a task to another node to its answer, failovers included.";
    /// Model calls.
    LLM_CALLS_TOTAL = "apiary_llm_calls_total", Counter, ["agent", "model", "outcome"], "",
        "Model calls made by LLM agents, by outcome (completed, failed, budget, replayed).";
    /// Tokens of model calls.
    LLM_TOKENS_TOTAL = "apiary_llm_tokens_total", Counter, ["agent", "model", "kind"], "",
        "Tokens of model calls, by kind (input, output, cached_input: the part of input read from the provider's cache).";
    /// Money spent on model calls.
    LLM_COST_MICRODOLLARS_TOTAL = "apiary_llm_cost_microdollars_total", Counter, ["agent", "model"], "",
        "Money spent on model calls, in millionths of a US dollar, from the price table (unpriced models count nothing).";
    /// Time of one model call.
    LLM_CALL_DURATION_SECONDS = "apiary_llm_call_duration_seconds", Histogram, ["agent", "model"], "seconds",
        "Time of one model call, from sending the request to the end of the answer, waits for rate limits included.";
    /// Calls told to wait by the provider.
    LLM_RATE_LIMITED_TOTAL = "apiary_llm_rate_limited_total", Counter, ["endpoint"], "",
        "Answers telling a caller to wait (429, 503, 529): every caller of the endpoint then waits.";
    /// Calls a budget refused.
    LLM_BUDGET_REFUSED_TOTAL = "apiary_llm_budget_refused_total", Counter, ["budget"], "",
        "Model calls not made because a budget could not cover their worst case.";
    /// Share of a budget used.
    LLM_BUDGET_USED_RATIO = "apiary_llm_budget_used_ratio", Gauge, ["budget"], "ratio",
        "Share of a budget spent or reserved (the tightest of its token and money limits), from 0 to 1.";
}

/// Registers the help text and unit of every metric with the installed recorder, so
/// exporters print `# HELP` lines even before a series has a value.
pub fn describe() {
    for m in catalogue() {
        let help = m.help;
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, help),
            Kind::Gauge => metrics::describe_gauge!(m.name, help),
            Kind::Histogram => metrics::describe_histogram!(m.name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus naming: snake case, `apiary_` prefix, counters end in `_total`, units last.
    #[test]
    fn names_follow_prometheus_rules() {
        let mut seen = std::collections::HashSet::new();
        for m in catalogue() {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("apiary_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            if m.unit == "seconds" {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(!m.help.is_empty());
        }
    }
}

/// The catalogue as the Markdown table in `docs/metrics.md`.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| metric | type | labels | unit | what it counts |\n|---|---|---|---|---|\n");
    for m in catalogue() {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let labels = m
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {kind} | {labels} | {} | {} |\n",
            m.name, m.unit, m.help
        ));
    }
    out
}

#[cfg(test)]
mod docs {
    /// docs/metrics.md lists exactly the catalogue (regenerate the table from the message).
    #[test]
    fn docs_metrics_md_matches_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let table = super::markdown_table();
        assert!(
            doc.contains(&table),
            "docs/metrics.md is out of date; its table should be:\n{table}"
        );
    }
}
