//! The `shell` kind: runs a command, with a timeout; its exit status decides success.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use apiary::{
    memory::{Memory, Pattern},
    Agent, AgentContext,
};
use nix::{sys::signal::Signal, unistd::Pid};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::orphans::Orphans;
use crate::step::{tail, Step, StepOutput, StepRecord};

/// Bytes of stdout/stderr kept per run (the end, where errors are).
const KEEP: usize = 16 * 1024;

/// `[agents.config]` of a `shell` agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellConfig {
    /// Run by `sh -c`.
    command: String,
    /// Working directory, relative to the manifest's directory.
    #[serde(default)]
    dir: Option<PathBuf>,
    /// Kill the command (and everything it started) after this long.
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    /// Extra environment variables.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Memory key to store each attempt's outcome under (also added as a text pattern).
    #[serde(default)]
    store: Option<String>,
}

/// Why a shell step failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShellError {
    #[error("`{command}` could not start: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` exited with {status}: {stderr}")]
    Exit {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` timed out after {}", humantime::format_duration(*.after))]
    TimedOut { command: String, after: Duration },
}

#[derive(Debug)]
pub(crate) struct ShellAgent {
    config: ShellConfig,
    dir: PathBuf,
    /// The cluster node this runs on, if any (`APIARY_NODE` for the command).
    node: Option<String>,
}

impl ShellAgent {
    pub(crate) fn new(config: ShellConfig, base: &Path, node: Option<String>) -> Self {
        let dir = match &config.dir {
            Some(d) => base.join(d),
            None => base.to_path_buf(),
        };
        Self { config, dir, node }
    }
}

/// Kills the command's whole process group when dropped (timeout, cancellation, shutdown):
/// `sh -c` would otherwise leave its children (a `cargo test`, say) running.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Agent for ShellAgent {
    type Task = Step;
    type Output = StepOutput;
    type Error = ShellError;

    async fn handle(
        &mut self,
        step: Step,
        ctx: &AgentContext<Step, StepOutput>,
    ) -> Result<StepOutput, ShellError> {
        let command = self.config.command.clone();
        let started = Instant::now();
        // With --state, the group is noted while it runs (see `orphans`), and the command
        // waits for the note: `sh` first reads a line from a pipe, then becomes the
        // command. Started at once, the command could act (and `apiary` be killed) before
        // the note was written, leaving an orphan no later run knows of. If `apiary` dies
        // before the line is written, the read sees end of file and nothing runs.
        let orphans = ctx.resource::<Orphans>().ok();
        let mut sh = tokio::process::Command::new("sh");
        match orphans {
            Some(_) => sh
                .arg("-c")
                .arg(r#"read -r _ && exec sh -c "$1""#)
                .arg("sh")
                .arg(&command)
                .stdin(Stdio::piped()),
            None => sh.arg("-c").arg(&command).stdin(Stdio::null()),
        };
        let mut child = sh
            .current_dir(&self.dir)
            .envs(&self.config.env)
            .env("APIARY_AGENT", ctx.name().as_str())
            .env("APIARY_ATTEMPT", step.attempt.to_string())
            .env("APIARY_NODE", self.node.as_deref().unwrap_or(""))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ShellError::Spawn {
                command: command.clone(),
                source,
            })?;
        let mut guard = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
        let _noted = match (orphans, guard.0) {
            (Some(orphans), Some(pgid)) => orphans.note(ctx.name().as_str(), pgid.as_raw()).ok(),
            _ => None,
        };
        if let Some(mut gate) = child.stdin.take() {
            // Then the command runs, its stdin at end of file as without --state. A write
            // that fails means `sh` is already gone; waiting below says how it ended.
            let _ = gate.write_all(b"go\n").await;
        }
        let waited = match self.config.timeout {
            Some(after) => match tokio::time::timeout(after, child.wait_with_output()).await {
                Ok(out) => out,
                Err(_) => {
                    self.record(ctx, step, false, None, started, "timed out")
                        .await;
                    return Err(ShellError::TimedOut { command, after });
                }
            },
            None => child.wait_with_output().await,
        };
        let out = waited.map_err(|source| ShellError::Spawn {
            command: command.clone(),
            source,
        })?;
        // The command's own process exited; anything it left in its group goes too.
        drop(std::mem::replace(&mut guard, GroupGuard(None)));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = out.status.success();
        let summary = match out.status.code() {
            Some(code) => format!("exit {code}"),
            None => format!("{}", out.status),
        };
        self.record(ctx, step, ok, out.status.code(), started, &summary)
            .await;
        if !ok {
            let last_line = tail(stderr.trim_end(), 2_000)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned();
            return Err(ShellError::Exit {
                command,
                status: summary,
                stderr: last_line,
            });
        }
        Ok(StepOutput {
            summary,
            stdout: tail(&stdout, KEEP).to_owned(),
            stderr: tail(&stderr, KEEP).to_owned(),
            exit_code: out.status.code(),
            ..StepOutput::default()
        })
    }
}

impl ShellAgent {
    /// Stores the attempt's outcome in the swarm's memory under the configured key.
    async fn record(
        &self,
        ctx: &AgentContext<Step, StepOutput>,
        step: Step,
        ok: bool,
        exit_code: Option<i32>,
        started: Instant,
        summary: &str,
    ) {
        let (Some(key), Ok(memory)) = (&self.config.store, ctx.resource::<Memory>()) else {
            return;
        };
        let record = StepRecord {
            agent: ctx.name().to_string(),
            attempt: step.attempt,
            ok,
            exit_code,
            millis: started.elapsed().as_millis() as u64,
            summary: summary.to_owned(),
        };
        let text = format!(
            "{} {} {} {}",
            ctx.name(),
            self.config.command,
            if ok { "passed" } else { "failed" },
            summary
        );
        let stored = async {
            memory.put(key, &record).await?;
            memory
                .add_pattern(Pattern::text(key.clone(), text).meta("agent", ctx.name().as_str()))
                .await
        };
        if let Err(e) = stored.await {
            tracing::warn!(agent = %ctx.name(), error = %e, "could not store the step's result in memory");
        }
    }
}

/// `kind = "shell"`: runs `config.command`.
pub(crate) struct ShellKind;

impl crate::kinds::Kind for ShellKind {
    fn name(&self) -> &str {
        "shell"
    }

    fn check(&self, config: &toml::Table) -> Result<(), apiary::BoxError> {
        crate::kinds::config::<ShellConfig>(config).map(drop)
    }

    fn add(
        &self,
        builder: apiary::SwarmBuilder,
        spec: apiary::AgentSpec,
        config: &toml::Table,
        cx: &crate::kinds::KindContext,
    ) -> Result<apiary::SwarmBuilder, apiary::BoxError> {
        let config: ShellConfig = crate::kinds::config(config)?;
        let (base, node) = (cx.base_dir().to_owned(), cx.node().map(str::to_owned));
        Ok(builder.agent(spec, move || {
            ShellAgent::new(config.clone(), &base, node.clone())
        }))
    }
}
