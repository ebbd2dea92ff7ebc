//! The `apiary` command line as a library: validate, plan, graph and run swarms described
//! in TOML manifests - with the built-in kinds (`shell`, `memory`, `llm`) or kinds of your
//! own.
//!
//! A binary of your own that knows one more kind:
//!
//! ```no_run
//! # struct MyKind;
//! # impl apiary_cli::Kind for MyKind {
//! #     fn name(&self) -> &str { "mine" }
//! #     fn check(&self, _: &toml::Table) -> Result<(), apiary::BoxError> { Ok(()) }
//! #     fn add(&self, b: apiary::SwarmBuilder, _: apiary::AgentSpec, _: &toml::Table,
//! #            _: &apiary_cli::KindContext) -> Result<apiary::SwarmBuilder, apiary::BoxError> { Ok(b) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     apiary_cli::main(apiary_cli::Kinds::builtin().with(MyKind))
//! }
//! ```
//!
//! The command line itself (`apiary --help`) is the same as the `apiary` binary's.
#![deny(missing_docs)]

mod approve;
mod cluster;
mod graph;
mod kinds;
mod llm;
mod memory;
mod orphans;
mod printer;
mod recall;
mod run;
mod shell;
mod state;
mod step;
mod ui;
mod upgrade;

pub use kinds::{config, Kind, KindContext, KindError, Kinds};
pub use step::{Step, StepOutput, StepUsage};

// Here, at the root, so that `kinds` need not know the kinds built on it.
impl Kinds {
    /// The kinds the `apiary` binary knows: `shell`, `memory` and `llm`.
    pub fn builtin() -> Self {
        Self::empty()
            .with(shell::ShellKind)
            .with(recall::MemoryKind)
            .with(llm::LlmKind)
    }
}

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use apiary::Manifest;
use clap::{Parser, Subcommand};

/// Run swarms of agents described in TOML manifests.
#[derive(Debug, Parser)]
#[command(name = "apiary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a manifest completely (schema, values, dependencies, topology, agent configs).
    Validate {
        /// The manifest.
        file: PathBuf,
    },
    /// Print the spawn plan: which agents start together, batch by batch.
    Plan {
        /// The manifest.
        file: PathBuf,
    },
    /// Print the topology and the dependency plan as Graphviz DOT (`| dot -Tsvg > swarm.svg`).
    Graph {
        /// The manifest.
        file: PathBuf,
    },
    /// Run the swarm: each agent's step once its dependencies succeeded.
    Run {
        /// The manifest.
        file: PathBuf,
        /// Print one JSON object per event and step result instead of progress and a table.
        #[arg(long)]
        json: bool,
        /// Serve Prometheus metrics on this address while running (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Keep the memory in this directory (crash-safe) instead of in RAM.
        #[arg(long, value_name = "DIR")]
        memory_dir: Option<PathBuf>,
        /// Keep serving metrics and the web console this long after the run ends (e.g. 30s),
        /// for a last scrape or look.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        linger: Option<Duration>,
        #[command(flatten)]
        ui: UiArgs,
        /// Approve every approval gate at once (unattended runs); without it and without
        /// --ui, a manifest with approvals is refused.
        #[arg(long)]
        auto_approve: bool,
        /// Journal every step's attempts and outcome in this directory, so a killed run can
        /// be resumed.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Resume the last run journaled in --state: run only what did not finish (and steps
        /// whose manifest entry changed).
        #[arg(long, requires = "state")]
        resume: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show the runs journaled in a state directory: every step's attempts and outcomes.
    Status {
        /// The state directory given to `run --state`.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Host the agents placed on this node (`node = "..."` in the manifest) for a cluster run.
    Serve {
        /// The manifest.
        file: PathBuf,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        ui: UiArgs,
    },
    /// Approve a step waiting for approval in a run served with --ui.
    Approve {
        /// The approval's id (shown by the run and on its page; a step's is its name).
        id: String,
        #[command(flatten)]
        target: DecideArgs,
    },
    /// Reject a step waiting for approval in a run served with --ui: the step fails.
    Reject {
        /// The approval's id.
        id: String,
        /// Why (shown in the run's report).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: DecideArgs,
    },
    /// Convert the journal and memory files in these directories (a --state or --memory-dir)
    /// from the format apiary wrote before it moved to redb 4. Files in the current format are
    /// left alone.
    Upgrade {
        /// Directories holding journal.redb or memory.redb.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

/// The web console (`--ui`).
#[derive(Debug, clap::Args)]
struct UiArgs {
    /// Serve the web console (live view, pause/resume, cancel, approvals) on this address
    /// while running, e.g. 127.0.0.1:8080. A non-loopback address needs --ui-token.
    #[arg(long, value_name = "ADDR")]
    ui: Option<SocketAddr>,
    /// The console's access token, required on every request when given.
    #[arg(
        long,
        env = "APIARY_UI_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    ui_token: Option<String>,
}

impl UiArgs {
    fn options(self) -> Option<ui::UiOptions> {
        self.ui.map(|addr| ui::UiOptions {
            addr,
            token: self.ui_token.filter(|t| !t.is_empty()),
        })
    }
}

/// Which console `approve`/`reject` talk to, and as whom.
#[derive(Debug, clap::Args)]
struct DecideArgs {
    /// The address the run's console is served on (its --ui).
    #[arg(long, value_name = "ADDR")]
    ui: SocketAddr,
    /// The console's access token.
    #[arg(
        long,
        env = "APIARY_UI_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    ui_token: Option<String>,
    /// Who decides, as the run will report it (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

impl DecideArgs {
    fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "apiary approve".to_owned())
    }
}

/// Joining a cluster (ractor_cluster: cookie-authenticated TCP).
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// This node's name; agents with `node = "<name>"` run here. Enables cluster mode.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Address to listen on for peers.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A peer to connect to (repeatable).
    #[arg(long, value_name = "ADDR")]
    peer: Vec<SocketAddr>,
    /// The cluster's shared secret.
    #[arg(
        long,
        env = "APIARY_COOKIE",
        value_name = "COOKIE",
        hide_env_values = true
    )]
    cookie: Option<String>,
}

impl ClusterArgs {
    fn options(self) -> anyhow::Result<Option<cluster::ClusterOptions>> {
        let Some(node) = self.node else {
            anyhow::ensure!(
                self.peer.is_empty(),
                "--peer needs --node (this node's name)"
            );
            return Ok(None);
        };
        let cookie = self
            .cookie
            .context("cluster mode needs a cookie: --cookie or APIARY_COOKIE")?;
        Ok(Some(cluster::ClusterOptions {
            node,
            listen: self.listen,
            peers: self.peer,
            cookie,
        }))
    }
}

fn load(kinds: &Kinds, file: &PathBuf) -> anyhow::Result<Manifest> {
    let manifest = Manifest::load(file)?;
    kinds.check(&manifest)?;
    Ok(manifest)
}

async fn main_inner(kinds: Kinds, cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Validate { file } => {
            let manifest = load(&kinds, &file)?;
            let plan = manifest.plan()?;
            println!(
                "{}: ok: swarm `{}`, {} agents in {} batches, topology {}",
                file.display(),
                manifest.swarm.name,
                manifest.agents.len(),
                plan.batches().len(),
                manifest.topology.as_ref().map_or("none", |t| t.name())
            );
            Ok(true)
        }
        Command::Plan { file } => {
            print!("{}", load(&kinds, &file)?.plan()?);
            Ok(true)
        }
        Command::Graph { file } => {
            let manifest = load(&kinds, &file)?;
            print!("{}", graph::dot(&manifest, &manifest.plan()?));
            Ok(true)
        }
        Command::Run {
            file,
            json,
            metrics,
            memory_dir,
            linger,
            ui,
            auto_approve,
            state,
            resume,
            cluster,
        } => {
            let options = run::RunOptions {
                json,
                metrics,
                memory_dir,
                linger,
                ui: ui.options(),
                auto_approve,
                cluster: cluster.options()?,
                state: state.map(|dir| state::StateOptions { dir, resume }),
            };
            run::run(&kinds, &file, options)
                .await
                .with_context(|| format!("apiary run {}", file.display()))
        }
        Command::Status { state, json } => state::status(&state, json).await,
        Command::Serve { file, cluster, ui } => {
            let options = cluster.options()?.context("apiary serve needs --node")?;
            cluster::serve(&kinds, &file, &options, ui.options().as_ref())
                .await
                .with_context(|| format!("apiary serve {}", file.display()))
        }
        Command::Approve { id, target } => {
            let by = target.by();
            ui::decide(target.ui, target.ui_token.as_deref(), &id, true, &by, None).await
        }
        Command::Reject { id, reason, target } => {
            let by = target.by();
            ui::decide(
                target.ui,
                target.ui_token.as_deref(),
                &id,
                false,
                &by,
                reason.as_deref(),
            )
            .await
        }
        Command::Upgrade { dirs } => upgrade::upgrade(&dirs),
    }
}

/// Runs the `apiary` command line with `kinds`: parses the arguments, runs the command,
/// prints errors, and gives the exit code (0 success, 1 a step failed, 2 an error).
pub fn main(kinds: Kinds) -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APIARY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_inner(kinds, cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each said once: many library errors already put
/// their source in their own message.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let message = cause.to_string();
        if out.contains(&message) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&message);
    }
    out
}
