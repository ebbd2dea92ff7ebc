//! `--state DIR`: a journal of every step's attempts, so that a run killed midway resumes
//! where it stopped (`--resume`), and `apiary status` shows what happened.
//!
//! Each attempt of a step is one journaled task under the key
//! `r<run>/<step>/<attempt>.<try>/<config>`: the run's number, the step (agent) name, the
//! attempt (and which try of it, when an open breaker refused the earlier ones), and a hash of
//! the step's manifest entry. Resuming replays the last run: attempts that had ended answer
//! from the journal, the one in flight at the crash is delivered again, and a step whose
//! manifest entry changed gets a new key, so it runs again.

use std::path::PathBuf;

use anyhow::Context as _;
use apiary::journal::{
    Journal, JournalConfig, JournalHandle, JournalSubmitErrorKind, JournalTaskError,
    JournaledAgent, TaskSummary,
};
use apiary::web::Console;
use apiary::{AgentRef, AgentSpec, Manifest, SubmitErrorKind, Swarm};
use serde::Serialize;

use crate::step::{Step, StepOutput};

/// `--state DIR` and `--resume`.
#[derive(Debug, Clone)]
pub(crate) struct StateOptions {
    pub(crate) dir: PathBuf,
    pub(crate) resume: bool,
}

/// A journal tally holding the number of the last run started.
const RUNS_TALLY: &str = "runs/last-started";

/// The journal of a run, and which run this is.
pub(crate) struct RunState {
    pub(crate) journal: Journal,
    pub(crate) run: u64,
}

impl RunState {
    /// Opens the journal in `options.dir` for `manifest`'s swarm and picks the run: the last
    /// one again with `--resume`, a new one otherwise.
    pub(crate) async fn open(options: &StateOptions, manifest: &Manifest) -> anyhow::Result<Self> {
        let journal = Journal::open(JournalConfig::new(&options.dir, &manifest.swarm.name))
            .await
            .with_context(|| format!("cannot open the run state in {}", options.dir.display()))?;
        // The last run: from its attempts' keys, or (a run killed before its first attempt,
        // say while a step waited for approval) from the tally every run leaves at its start.
        let started = journal.tally(RUNS_TALLY)?;
        let last = journal
            .tasks()?
            .iter()
            .filter_map(|t| t.key.as_deref().and_then(parse_key))
            .map(|k| k.run)
            .chain((started > 0).then_some(started))
            .max();
        let run = match (options.resume, last) {
            (true, Some(run)) => run,
            (true, None) => anyhow::bail!(
                "nothing to resume: {} holds no run of swarm `{}`",
                options.dir.display(),
                manifest.swarm.name
            ),
            (false, last) => last.unwrap_or(0) + 1,
        };
        Ok(Self { journal, run })
    }

    /// Records that this run has begun (once nothing can refuse it any more), so that a run
    /// killed before its first attempt, say while a step waited for approval, is the one
    /// `--resume` picks.
    pub(crate) async fn begin(&self) -> anyhow::Result<()> {
        // Tallies only grow: raise "the last run started" to this one.
        let started = self.journal.tally(RUNS_TALLY)?;
        if self.run > started {
            self.journal
                .add_to_tally(RUNS_TALLY, self.run - started)
                .await?;
        }
        Ok(())
    }
}

/// How a step's attempts are submitted, and the console (if any) that may cancel them.
pub(crate) struct Runner {
    how: How,
    console: Option<Console>,
}

enum How {
    /// Straight to the agent.
    Plain(AgentRef<Step, StepOutput>),
    /// Journaled, under keys of this run and this version of the step's manifest entry.
    Journaled {
        agent: JournaledAgent<Step, StepOutput>,
        run: u64,
        config: String,
    },
}

/// Why an attempt gave no output.
pub(crate) enum AttemptError {
    /// The swarm refused it (an open breaker: wait and try again).
    Refused(SubmitErrorKind),
    /// The recorded run shows this try refused: go on to the next one.
    RefusedEarlier,
    /// It ran (now or in the recorded run) and failed, or could not be journaled.
    Failed(String),
}

/// An attempt's output, and whether it came from the journal instead of running.
pub(crate) type Attempted = Result<(StepOutput, bool), AttemptError>;

impl Runner {
    pub(crate) fn new(
        swarm: &Swarm,
        spec: &AgentSpec,
        state: Option<&RunState>,
        console: Option<Console>,
    ) -> anyhow::Result<Self> {
        let how = match state {
            None => How::Plain(swarm.agent::<Step, StepOutput>(&spec.name)?),
            Some(state) => How::Journaled {
                agent: state.journal.agent::<Step, StepOutput>(swarm, &spec.name)?,
                run: state.run,
                config: config_hash(spec),
            },
        };
        Ok(Self { how, console })
    }

    /// Runs one try of one attempt.
    pub(crate) async fn attempt(&self, step: Step, try_: u32) -> Attempted {
        let attempt = step.attempt;
        match &self.how {
            How::Plain(agent) => match agent.submit(step).await {
                Ok(handle) => {
                    if let Some(console) = &self.console {
                        console.track(&handle);
                    }
                    handle
                        .await
                        .map(|out| (out, false))
                        .map_err(|e| AttemptError::Failed(e.to_string()))
                }
                Err(refused) => Err(AttemptError::Refused(refused.kind().clone())),
            },
            How::Journaled { agent, run, config } => {
                let key = format!("r{run}/{}/{attempt}.{try_}/{config}", agent.name());
                match agent.submit_keyed(key, step).await {
                    Ok(handle) => {
                        if let (Some(console), Some(task), Some(canceller)) =
                            (&self.console, handle.task(), handle.canceller())
                        {
                            console.track_canceller(task, canceller);
                        }
                        finish(handle).await
                    }
                    Err(refused) => match refused.kind() {
                        JournalSubmitErrorKind::Refused(kind) => {
                            Err(AttemptError::Refused(kind.clone()))
                        }
                        other => Err(AttemptError::Failed(other.to_string())),
                    },
                }
            }
        }
    }

    /// Delivers again the attempts of this step that were in flight when the last run died.
    pub(crate) async fn resume(&self) -> Vec<String> {
        let How::Journaled { agent, .. } = &self.how else {
            return Vec::new();
        };
        let report = agent.resume().await;
        // Their ends are recorded as they come; the run's own submissions (same keys) wait
        // for them.
        drop(report.resumed);
        report
            .undecodable
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }
}

async fn finish(handle: JournalHandle<StepOutput>) -> Attempted {
    let replay = handle.is_replay();
    match handle.await {
        Ok(out) => Ok((out, replay)),
        // A recorded refusal is an open breaker's: try again under the next key.
        Err(JournalTaskError::Failed(f)) if f.outcome == "refused" => {
            Err(AttemptError::RefusedEarlier)
        }
        Err(e) => Err(AttemptError::Failed(e.to_string())),
    }
}

/// A hash of a step's manifest entry: a changed entry is a new step.
fn config_hash(spec: &AgentSpec) -> String {
    let text = toml::to_string(spec).unwrap_or_else(|_| format!("{spec:?}"));
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// A step attempt's key, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AttemptKey {
    pub(crate) run: u64,
    pub(crate) step: String,
    pub(crate) attempt: u32,
    pub(crate) try_: u32,
    pub(crate) config: String,
}

fn parse_key(key: &str) -> Option<AttemptKey> {
    let mut parts = key.splitn(4, '/');
    let run = parts.next()?.strip_prefix('r')?.parse().ok()?;
    let step = parts.next()?.to_owned();
    let (attempt, try_) = parts.next()?.split_once('.')?;
    let config = parts.next()?.to_owned();
    Some(AttemptKey {
        run,
        step,
        attempt: attempt.parse().ok()?,
        try_: try_.parse().ok()?,
        config,
    })
}

/// One line of `apiary status`.
#[derive(Debug, Serialize)]
struct StatusLine {
    run: u64,
    step: String,
    attempt: u32,
    outcome: String,
    message: Option<String>,
    submitted_ms: u64,
    ended_ms: Option<u64>,
}

/// `apiary status --state DIR`: every recorded attempt of every run, oldest first.
pub(crate) async fn status(dir: &std::path::Path, json: bool) -> anyhow::Result<bool> {
    let (swarm, tasks) = Journal::inspect(dir)
        .await
        .with_context(|| format!("cannot read the run state in {}", dir.display()))?;
    let lines: Vec<StatusLine> = tasks.into_iter().filter_map(line).collect();
    if json {
        for line in &lines {
            println!("{}", serde_json::to_string(line)?);
        }
        return Ok(true);
    }
    println!("swarm `{swarm}`, state in {}", dir.display());
    println!(
        "{:<4} {:<16} {:<8} {:<14} detail",
        "run", "step", "attempt", "outcome"
    );
    for l in &lines {
        println!(
            "{:<4} {:<16} {:<8} {:<14} {}",
            l.run,
            l.step,
            l.attempt,
            l.outcome,
            l.message.as_deref().unwrap_or("")
        );
    }
    Ok(true)
}

fn line(task: TaskSummary) -> Option<StatusLine> {
    let key = parse_key(task.key.as_deref()?)?;
    Some(StatusLine {
        run: key.run,
        step: key.step,
        attempt: key.attempt,
        outcome: task.outcome.unwrap_or_else(|| "unfinished".to_owned()),
        message: task.message,
        submitted_ms: task.submitted_ms,
        ended_ms: task.ended_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back() {
        let key = parse_key("r3/build/2.1/00ff").unwrap();
        assert_eq!(
            (
                key.run,
                key.step.as_str(),
                key.attempt,
                key.try_,
                key.config.as_str()
            ),
            (3, "build", 2, 1, "00ff")
        );
        assert!(parse_key("job-1").is_none());
    }

    #[test]
    fn a_changed_entry_hashes_differently() {
        let a = AgentSpec::new("build").kind("shell");
        let b = AgentSpec::new("build").kind("shell").replicas(2);
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_eq!(config_hash(&a), config_hash(&a.clone()));
    }
}
