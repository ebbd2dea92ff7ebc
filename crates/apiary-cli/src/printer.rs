//! What `apiary run` shows: live progress and a summary table on a terminal, or one JSON
//! object per line with `--json`.

use std::{io::Write as _, time::Duration};

use apiary::{EventKind, SwarmEvent};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::step::StepUsage;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Succeeded,
    Failed,
    /// Not run: a dependency did not succeed.
    Skipped,
    /// A budget stopped it before its next model call.
    Stopped,
}

/// One step's end, as reported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepReport {
    pub(crate) agent: String,
    pub(crate) kind: String,
    pub(crate) status: Status,
    pub(crate) attempts: u32,
    #[serde(rename = "seconds")]
    pub(crate) seconds: f64,
    /// `exit 0`, the error, or why it was skipped.
    pub(crate) detail: String,
    /// What the step printed (the end of it).
    pub(crate) output: String,
    /// What a model-calling step spent (written by hand in JSON: `cost` only when priced).
    #[serde(skip)]
    pub(crate) usage: Option<StepUsage>,
}

/// `{"input_tokens": N, "output_tokens": N}`, plus `"cost"` when priced.
fn usage_json(u: &StepUsage) -> serde_json::Value {
    let mut v = json!({ "input_tokens": u.input_tokens, "output_tokens": u.output_tokens });
    if let (Some(cost), Some(map)) = (u.cost, v.as_object_mut()) {
        map.insert("cost".into(), json!(cost));
    }
    v
}

pub(crate) enum Printer {
    Human(ProgressBar),
    Json,
}

impl Printer {
    pub(crate) fn new(json: bool, steps: usize) -> Self {
        if json {
            return Self::Json;
        }
        // indicatif draws only when stderr is a terminal; lines go to stdout either way.
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self::Human(bar)
    }

    fn line(&self, text: &str) {
        if let Self::Human(bar) = self {
            bar.suspend(|| println!("{text}"));
        }
    }

    fn json(value: &serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
    }

    pub(crate) fn note(&self, kind: &str, text: &str) {
        match self {
            Self::Human(_) => self.line(&format!("· {text}")),
            Self::Json => Self::json(&json!({ "type": kind, "message": text })),
        }
    }

    pub(crate) fn running(&self, agents: &[String]) {
        if let Self::Human(bar) = self {
            bar.set_message(format!("running: {}", agents.join(", ")));
        }
    }

    pub(crate) fn event(&self, event: &SwarmEvent) {
        match self {
            Self::Json => {
                let mut value = serde_json::to_value(event).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("type".into(), "event".into());
                }
                Self::json(&value);
            }
            Self::Human(_) => match event.kind() {
                EventKind::AgentRestarted {
                    agent,
                    replica,
                    restarts,
                    delay,
                } => self.line(&format!(
                    "↻ {agent}#{replica} restarted (restart {restarts}, after {})",
                    humantime::format_duration(*delay)
                )),
                EventKind::BreakerChanged {
                    agent,
                    replica,
                    transition,
                } => self.line(&format!(
                    "⚡ {agent}#{replica} circuit breaker {transition:?}"
                )),
                EventKind::DeadLetter { agent, cause, .. } => {
                    self.line(&format!("✉ {agent}: dead letter: {cause}"))
                }
                EventKind::SupervisorGaveUp { supervisor, reason } => {
                    self.line(&format!("✖ supervisor {supervisor} gave up: {reason}"))
                }
                EventKind::AgentPaused { agent } => self.line(&format!("⏸ {agent} paused")),
                EventKind::AgentResumed { agent } => self.line(&format!("▶ {agent} resumed")),
                EventKind::ApprovalDecided {
                    id,
                    approved: false,
                    by,
                    reason,
                    ..
                } => self.line(&format!(
                    "✋ `{id}` rejected by {by}{}",
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )),
                _ => {}
            },
        }
    }

    pub(crate) fn retry(&self, agent: &str, attempt: u32, error: &str) {
        match self {
            Self::Human(_) => self.line(&format!(
                "↺ {agent} attempt {attempt} failed, retrying: {error}"
            )),
            Self::Json => Self::json(
                &json!({ "type": "retry", "agent": agent, "attempt": attempt, "error": error }),
            ),
        }
    }

    pub(crate) fn step(&self, report: &StepReport) {
        match self {
            Self::Human(bar) => {
                bar.inc(1);
                let mark = match report.status {
                    Status::Succeeded => "✔",
                    Status::Failed => "✘",
                    Status::Skipped => "–",
                    Status::Stopped => "■",
                };
                self.line(&format!(
                    "{mark} {} ({}, {:.2}s)",
                    report.agent, report.detail, report.seconds
                ));
                // What a memory step recalled, or a model answered, is the point of running
                // it: show it (a model's answer by its first lines).
                let shown = match report.kind.as_str() {
                    "memory" => usize::MAX,
                    "llm" => 12,
                    _ => 0,
                };
                for line in report.output.lines().take(shown) {
                    self.line(&format!("    {line}"));
                }
            }
            Self::Json => {
                let mut value = serde_json::to_value(report).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("type".into(), "step".into());
                    if let Some(u) = &report.usage {
                        map.insert("usage".into(), usage_json(u));
                    }
                }
                Self::json(&value);
            }
        }
    }

    /// The summary table (or JSON object) once the run is over.
    pub(crate) fn summary(&self, swarm: &str, reports: &[StepReport], seconds: f64) {
        let ok = reports.iter().all(|r| r.status == Status::Succeeded);
        let count = |s| reports.iter().filter(|r| r.status == s).count();
        match self {
            Self::Json => Self::json(&json!({
                "type": "summary",
                "swarm": swarm,
                "ok": ok,
                "steps": reports.len(),
                "succeeded": count(Status::Succeeded),
                "failed": count(Status::Failed),
                "skipped": count(Status::Skipped),
                "stopped_by_budget": count(Status::Stopped),
                "usage": total_usage(reports).as_ref().map(usage_json),
                "seconds": seconds,
            })),
            Self::Human(bar) => {
                bar.finish_and_clear();
                println!("\n{}", table(reports));
                let stopped = match count(Status::Stopped) {
                    0 => String::new(),
                    n => format!(", {n} stopped by a budget"),
                };
                let spent = match total_usage(reports) {
                    Some(u) => format!(
                        "; models: {} tokens in, {} out{}",
                        u.input_tokens,
                        u.output_tokens,
                        u.cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
                    ),
                    None => String::new(),
                };
                println!(
                    "{swarm}: {} succeeded, {} failed, {} skipped{stopped} in {seconds:.1}s{spent}",
                    count(Status::Succeeded),
                    count(Status::Failed),
                    count(Status::Skipped)
                );
            }
        }
    }
}

/// The usage of every model-calling step together; `None` if none called a model.
fn total_usage(reports: &[StepReport]) -> Option<StepUsage> {
    let mut used = reports.iter().filter_map(|r| r.usage.as_ref()).peekable();
    used.peek()?;
    Some(used.fold(StepUsage::default(), |a, u| StepUsage {
        input_tokens: a.input_tokens + u.input_tokens,
        output_tokens: a.output_tokens + u.output_tokens,
        cost: match (a.cost, u.cost) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        },
    }))
}

fn table(reports: &[StepReport]) -> String {
    let header = [
        "step", "kind", "status", "attempts", "time", "tokens", "cost", "result",
    ];
    let rows: Vec<[String; 8]> = reports
        .iter()
        .map(|r| {
            [
                r.agent.clone(),
                r.kind.clone(),
                format!("{:?}", r.status).to_lowercase(),
                r.attempts.to_string(),
                format!("{:.2}s", r.seconds),
                r.usage
                    .map(|u| (u.input_tokens + u.output_tokens).to_string())
                    .unwrap_or_default(),
                r.usage
                    .and_then(|u| u.cost)
                    .map(|c| format!("${c:.4}"))
                    .unwrap_or_default(),
                r.detail
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(70)
                    .collect(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![render(&header.map(String::from))];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.extend(rows.iter().map(|r| render(r)));
    out.join("\n")
}
