//! `apiary run`: starts the manifest's swarm and runs each agent's step once its
//! dependencies succeeded, retrying failed steps and waiting out open breakers.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use apiary::{metrics::Exporter, Manifest, SubmitErrorKind, SwarmEvent};
use futures::{stream::FuturesUnordered, StreamExt};

use crate::approve::Gate;
use crate::{
    cluster::{self, ClusterOptions},
    kinds::{self, Kinds, Placement},
    memory,
    orphans::Orphans,
    printer::{Printer, Status, StepReport},
    state::{AttemptError, RunState, Runner, StateOptions},
    step::{Step, StepOutput},
    ui::{self, UiOptions},
};

/// Options of `apiary run`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) json: bool,
    pub(crate) metrics: Option<SocketAddr>,
    pub(crate) memory_dir: Option<PathBuf>,
    /// Keep serving metrics this long after the run (for a last scrape).
    pub(crate) linger: Option<Duration>,
    /// Run as this node of a cluster (agents with `node = ...` run on their nodes).
    pub(crate) cluster: Option<ClusterOptions>,
    /// Journal every step's attempts in this directory (and resume the last run).
    pub(crate) state: Option<StateOptions>,
    /// Serve the web console while running.
    pub(crate) ui: Option<UiOptions>,
    /// Approve every approval gate at once.
    pub(crate) auto_approve: bool,
}

/// Runs the manifest; true if every step succeeded.
pub(crate) async fn run(kinds: &Kinds, path: &Path, options: RunOptions) -> anyhow::Result<bool> {
    let manifest = Manifest::load(path)?;
    kinds.check(&manifest)?;
    let base = kinds::base_dir(path)?;
    let printer = Arc::new(Printer::new(options.json, manifest.agents.len()));

    // Before the swarm: per-agent series bind to the recorder present when it starts.
    let exporter = options.metrics.map(Exporter::install).transpose()?;
    if let Some(e) = &exporter {
        printer.note(
            "metrics",
            &format!("serving Prometheus metrics on http://{}/metrics", e.addr()),
        );
    }
    let memory = memory::open(options.memory_dir.as_deref(), &manifest.memory, &base).await?;

    let node = match &options.cluster {
        Some(c) => Some(cluster::join(c).await?),
        None => None,
    };
    let placement = node.as_ref().map_or(Placement::Alone, Placement::Driver);
    if let Some(node) = &node {
        printer.note(
            "cluster",
            &format!(
                "node `{}` on {}, peers: {}",
                node.name(),
                node.addr(),
                node.peers().join(", ")
            ),
        );
        cluster::await_placed(node, &manifest).await?;
    }

    // The journal first: it is opened by one process at a time, so what a killed run left
    // running can be stopped before anything runs again.
    let state = match &options.state {
        Some(s) => Some(RunState::open(s, &manifest).await?),
        None => None,
    };
    if options.ui.is_none() && !options.auto_approve {
        let mut unanswered = None;
        for gated in manifest.agents.iter().filter(|a| a.approval.is_some()) {
            let earlier = match &state {
                Some(s) => Gate::approved_earlier(&s.journal, s.run, &gated.name)?,
                None => false,
            };
            if !earlier {
                unanswered = Some(gated);
                break;
            }
        }
        if let Some(gated) = unanswered {
            anyhow::bail!(
                "step `{}` needs approval, and nobody could give it: run with --ui ADDR (then approve on the page or with `apiary approve`) or --auto-approve",
                gated.name
            );
        }
    }
    let orphans = options.state.as_ref().map(|s| Orphans::new(&s.dir));
    for (step, pgid) in orphans.iter().flat_map(Orphans::reap) {
        printer.note(
            "state",
            &format!("stopped process group {pgid} of step `{step}`, left running by a killed run"),
        );
    }
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<SwarmEvent>();
    let mut builder = kinds::builder(
        kinds,
        &manifest,
        &base,
        placement,
        state.as_ref().map(|s| &s.journal),
    )?;
    if let Some(orphans) = orphans {
        builder = builder.resource(orphans);
    }
    // The manifest's `[budget]`: one budget for every model-calling step, journaled with
    // --state so a resumed run does not get back what it spent.
    let limits = crate::llm::limits(&manifest.budget.swarm);
    let mut swarm_budget = None;
    if limits.is_limited() {
        let budget = apiary::llm::SwarmBudget::new(limits);
        swarm_budget = Some(budget.clone());
        if let Some(state) = &state {
            budget.0.restore_from(&state.journal)?;
            let (tokens, cost) = budget.0.spent();
            if tokens > 0 {
                printer.note(
                    "budget",
                    &format!("earlier runs spent {tokens} tokens ({cost}) of the swarm budget"),
                );
            }
        }
        builder = builder.resource(budget);
    }
    let swarm = builder
        .resource(memory.clone())
        .hook(move |e: &SwarmEvent| {
            let _ = tx.send(e.clone());
        })
        .start()
        .await
        .with_context(|| format!("cannot start swarm `{}`", manifest.swarm.name))?;
    if let Some(node) = &node {
        cluster::export(node, &manifest, placement, &swarm).await?;
    }
    let console = match &options.ui {
        Some(ui_options) => {
            let (console, served) =
                ui::start(&swarm, &manifest, swarm_budget.as_ref(), ui_options).await?;
            printer.note(
                "ui",
                &format!(
                    "web console on {}",
                    ui::url(&served, ui_options.token.as_deref())
                ),
            );
            Some((console, served))
        }
        None => None,
    };
    let gate = Arc::new(Gate {
        approvals: swarm.approvals().clone(),
        auto: options.auto_approve,
        journal: state.as_ref().map(|s| (s.journal.clone(), s.run)),
        where_: console
            .as_ref()
            .map(|(_, served)| format!("http://{}/", served.addr())),
    });
    let mut runners: HashMap<String, Arc<Runner>> = HashMap::new();
    for spec in &manifest.agents {
        let runner = Runner::new(
            &swarm,
            spec,
            state.as_ref(),
            console.as_ref().map(|(c, _)| c.clone()),
        )?;
        runners.insert(spec.name.clone(), Arc::new(runner));
    }
    if let Some(state) = &state {
        let resuming = options.state.as_ref().is_some_and(|s| s.resume);
        printer.note(
            "state",
            &format!(
                "{} run {} in {}",
                if resuming { "resuming" } else { "journaling" },
                state.run,
                state.journal.path().display()
            ),
        );
        if resuming {
            for runner in runners.values() {
                for problem in runner.resume().await {
                    printer.note("state", &format!("kept, not resumed: {problem}"));
                }
            }
        }
    }

    if let Some(state) = &state {
        state.begin().await?;
    }
    let started = Instant::now();
    let kinds_of: HashMap<&str, &str> = manifest
        .agents
        .iter()
        .map(|a| (a.name.as_str(), a.kind.as_str()))
        .collect();
    let mut status: HashMap<String, Option<Status>> = manifest
        .agents
        .iter()
        .map(|a| (a.name.clone(), None))
        .collect();
    let mut launched: Vec<String> = Vec::new();
    let mut reports: Vec<StepReport> = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        // Launch what is ready; skip what can no longer run. Repeat until nothing changes,
        // so a skip propagates down the whole chain at once.
        let mut changed = true;
        while changed {
            changed = false;
            for spec in &manifest.agents {
                if status[&spec.name].is_some() || launched.contains(&spec.name) {
                    continue;
                }
                let deps: Vec<Option<Status>> = spec.depends_on.iter().map(|d| status[d]).collect();
                if deps.iter().all(|s| *s == Some(Status::Succeeded)) {
                    launched.push(spec.name.clone());
                    // What each dependency answered: an `llm` step's prompt may use it.
                    let inputs = spec
                        .depends_on
                        .iter()
                        .map(|d| {
                            let output = reports
                                .iter()
                                .find(|r| r.agent == *d)
                                .map(|r| r.output.clone())
                                .unwrap_or_default();
                            (d.clone(), output)
                        })
                        .collect();
                    running.push(run_step(
                        runners[&spec.name].clone(),
                        spec.name.clone(),
                        spec.max_retries,
                        inputs,
                        printer.clone(),
                        spec.approval.clone().map(|reason| (gate.clone(), reason)),
                    ));
                    changed = true;
                } else if deps
                    .iter()
                    .any(|s| matches!(s, Some(Status::Failed | Status::Skipped | Status::Stopped)))
                {
                    let report = StepReport {
                        agent: spec.name.clone(),
                        kind: spec.kind.clone(),
                        status: Status::Skipped,
                        attempts: 0,
                        seconds: 0.0,
                        detail: "skipped: a dependency did not succeed".into(),
                        output: String::new(),
                        usage: None,
                    };
                    printer.step(&report);
                    status.insert(spec.name.clone(), Some(Status::Skipped));
                    reports.push(report);
                    changed = true;
                }
            }
        }
        let in_flight: Vec<String> = launched
            .iter()
            .filter(|a| status[*a].is_none())
            .cloned()
            .collect();
        printer.running(&in_flight);
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some(mut report) = running.next() => {
                report.kind = kinds_of.get(report.agent.as_str()).copied().unwrap_or("").to_owned();
                printer.step(&report);
                status.insert(report.agent.clone(), Some(report.status));
                reports.push(report);
            }
            Some(event) = events.recv() => printer.event(&event),
        }
    }

    swarm.shutdown().await;
    while let Ok(event) = events.try_recv() {
        printer.event(&event);
    }
    memory.close().await;
    if let Some(node) = &node {
        node.shutdown().await;
    }
    // Report in manifest order.
    reports.sort_by_key(|r| manifest.agents.iter().position(|a| a.name == r.agent));
    printer.summary(
        &manifest.swarm.name,
        &reports,
        started.elapsed().as_secs_f64(),
    );
    if let Some((console, _)) = &console {
        console.finish(summary_json(&manifest.swarm.name, &reports));
    }
    if let Some(linger) = options
        .linger
        .filter(|_| exporter.is_some() || console.is_some())
    {
        printer.note(
            "linger",
            &format!(
                "serving{}{} for {} more",
                exporter
                    .as_ref()
                    .map(|e| format!(" metrics on {}", e.addr()))
                    .unwrap_or_default(),
                console
                    .as_ref()
                    .map(|(_, s)| format!(" the console on {}", s.addr()))
                    .unwrap_or_default(),
                humantime::format_duration(linger)
            ),
        );
        tokio::time::sleep(linger).await;
    }
    if let Some((_, served)) = console {
        served.shutdown().await;
    }
    Ok(reports.iter().all(|r| r.status == Status::Succeeded))
}

/// The run's end as the console's page shows it.
fn summary_json(swarm: &str, reports: &[StepReport]) -> serde_json::Value {
    let count = |s| reports.iter().filter(|r| r.status == s).count();
    serde_json::json!({
        "title": format!(
            "{swarm}: {} succeeded, {} failed, {} skipped",
            count(Status::Succeeded),
            count(Status::Failed),
            count(Status::Skipped)
        ),
        "steps": reports,
    })
}

/// Runs one agent's step: up to `1 + retries` attempts; an open breaker is waited out (it is
/// not an attempt: nothing ran). A step that needs approval asks first.
async fn run_step(
    runner: Arc<Runner>,
    agent: String,
    retries: u32,
    inputs: Vec<(String, String)>,
    printer: Arc<Printer>,
    approval: Option<(Arc<Gate>, String)>,
) -> StepReport {
    let started = Instant::now();
    if let Some((gate, reason)) = approval
        && let Err(why) = gate.ask(&agent, &reason, &printer).await
    {
        return StepReport {
            agent,
            kind: String::new(),
            status: Status::Failed,
            attempts: 0,
            seconds: started.elapsed().as_secs_f64(),
            detail: why,
            output: String::new(),
            usage: None,
        };
    }
    let mut attempt = 0;
    let mut try_ = 0;
    let mut recorded = false;
    let result: Result<StepOutput, String> = loop {
        if try_ == 0 {
            attempt += 1;
        }
        try_ += 1;
        let step = Step {
            attempt,
            inputs: inputs.clone(),
        };
        let outcome = match runner.attempt(step, try_).await {
            Ok((output, replay)) => {
                recorded = replay;
                Ok(output)
            }
            Err(AttemptError::Refused(SubmitErrorKind::BreakerOpen { retry_after, .. })) => {
                printer.note(
                    "breaker",
                    &format!(
                        "{agent}: breaker open, next trial in {}",
                        humantime::format_duration(retry_after)
                    ),
                );
                tokio::time::sleep(retry_after.max(Duration::from_millis(10))).await;
                continue;
            }
            Err(AttemptError::RefusedEarlier) => continue,
            // Refused for good (stopped, unknown): nothing to retry.
            Err(AttemptError::Refused(kind)) => break Err(kind.to_string()),
            Err(AttemptError::Failed(error)) => Err(error),
        };
        try_ = 0;
        match outcome {
            Ok(output) => break Ok(output),
            Err(error) if attempt <= retries => printer.retry(&agent, attempt, &error),
            Err(error) => break Err(error),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(output) => StepReport {
            agent,
            kind: String::new(),
            // A budget stopped it before its next model call: not a success to build on.
            status: if output.stopped_by.is_some() {
                Status::Stopped
            } else {
                Status::Succeeded
            },
            attempts: attempt,
            seconds,
            usage: output.usage,
            detail: match (&output.stopped_by, recorded) {
                (Some(stop), _) => format!("{}; stopped by {stop}", output.summary),
                (None, true) => format!("{} (recorded in an earlier run)", output.summary),
                (None, false) => output.summary,
            },
            output: if output.stdout.is_empty() {
                output.stderr
            } else {
                output.stdout
            },
        },
        Err(error) => StepReport {
            agent,
            kind: String::new(),
            status: Status::Failed,
            attempts: attempt,
            seconds,
            detail: error,
            output: String::new(),
            usage: None,
        },
    }
}
