//! A code review of `examples/sample-crate` by model-calling agents: a planner, two
//! reviewers that may run the crate's tests as a tool (a star whose hub is the `tests`
//! agent: reviewers reach it, not each other), and a summariser - under one token budget.
//!
//! Point it at any OpenAI-compatible endpoint (or Anthropic's) through the environment:
//!
//! ```text
//! APIARY_LLM_BASE_URL=http://127.0.0.1:11434/v1 APIARY_LLM_MODEL=qwen2.5:7b \
//!     cargo run --example code_review --features llm
//! # optional: APIARY_LLM_PROVIDER=anthropic, APIARY_LLM_API_KEY=...
//! ```
//!
//! Without `APIARY_LLM_BASE_URL` it runs against apiary's scripted test server and says so:
//! every answer then starts with `[scripted]`, and none is a model's.
//!
//! Run: `cargo run --example code_review --features llm`

use std::path::PathBuf;
use std::time::Duration;

use apiary::llm::{
    Completion, Endpoint, Limits, LlmAgent, PeerTool, Prompt, Provider, SwarmBudget,
};
use apiary::prelude::*;
use apiary::topology::Star;
use apiary::BoxError;
use apiary_llm_scripted::{Reply, Script, ScriptedServer};
use serde_json::json;

/// Runs the sample crate's tests and answers their last lines.
struct Tests {
    dir: PathBuf,
}

impl Agent for Tests {
    type Task = String;
    type Output = String;
    type Error = BoxError;

    async fn handle(
        &mut self,
        _: String,
        _: &AgentContext<String, String>,
    ) -> Result<String, BoxError> {
        let out = tokio::time::timeout(
            Duration::from_secs(300),
            tokio::process::Command::new("cargo")
                .args(["test", "--quiet", "--offline"])
                .current_dir(&self.dir)
                .kill_on_drop(true)
                .output(),
        )
        .await??;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        Ok(format!(
            "cargo test exited with {}:\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// What the scripted server answers when no endpoint is given; every answer it sends
/// starts with `[scripted]`.
fn script() -> Script {
    Script::new()
        .on(
            "Plan a review",
            [Reply::text(
                "1. check the public API of lib.rs 2. run the tests 3. look for edge cases",
            )],
        )
        .on(
            "Review the API",
            [
                Reply::tool_call("tests", json!({ "input": "run" })),
                Reply::text("the API is small and documented; the tests pass"),
            ],
        )
        .on(
            "Review the edge cases",
            [Reply::text(
                "empty input and punctuation deserve a test each",
            )],
        )
        .on("Summarise", [Reply::text("approve, with two tests to add")])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sample-crate");
    let source = std::fs::read_to_string(crate_dir.join("src/lib.rs"))?;

    // A real endpoint from the environment, or the scripted server (said loudly).
    let mut scripted = None;
    let (provider, base, model) = match std::env::var("APIARY_LLM_BASE_URL") {
        Ok(base) => {
            let provider = match std::env::var("APIARY_LLM_PROVIDER").as_deref() {
                Ok("anthropic") => Provider::Anthropic,
                _ => Provider::OpenAi,
            };
            let model = std::env::var("APIARY_LLM_MODEL")
                .map_err(|_| "APIARY_LLM_MODEL must name the model")?;
            (provider, base, model)
        }
        Err(_) => {
            let server = ScriptedServer::start(script()).await?;
            println!(
                "no APIARY_LLM_BASE_URL: running against apiary's scripted test server on {}.\n\
                 Every answer below is scripted (marked [scripted]); none comes from a model.\n",
                server.addr()
            );
            let base = server.openai_base_url();
            scripted = Some(server);
            (Provider::OpenAi, base, "scripted-model".to_owned())
        }
    };
    let mut endpoint = Endpoint::builder(provider, base);
    if let Ok(key) = std::env::var("APIARY_LLM_API_KEY") {
        endpoint = endpoint.api_key(key);
    }
    let endpoint = endpoint.build()?;
    let llm = |system: &str| {
        LlmAgent::builder(endpoint.clone(), model.clone())
            .system(system.to_owned())
            .max_tokens(600)
    };
    let tests_tool = || {
        PeerTool::<String, String>::new("tests", "Runs the crate's tests; answers their summary.")
            .parameters(json!({ "type": "string", "description": "anything" }))
    };
    let planner = llm("You plan code reviews in three numbered steps.").build();
    let reviewer = llm("You review Rust code. Run the tests when they matter.")
        .tool(tests_tool())
        .max_turns(4)
        .build();
    let summariser = llm("You merge reviews into one verdict.").build();

    let budget = SwarmBudget::new(Limits::none().tokens(30_000));
    let spent = budget.0.clone();
    let swarm = Swarm::builder()
        .resource(budget)
        .topology(Star::new("tests"))
        .agent(AgentSpec::new("tests"), move || Tests {
            dir: crate_dir.clone(),
        })
        .agent(AgentSpec::new("planner"), move || planner.clone())
        .agent(AgentSpec::new("reviewer").replicas(2), move || {
            reviewer.clone()
        })
        .agent(AgentSpec::new("summariser"), move || summariser.clone())
        .start()
        .await?;
    let ask = |agent: &str| swarm.agent::<Prompt, Completion>(agent);
    let show = |who: &str, c: &Completion| {
        println!(
            "── {who} ({} calls, {} tokens, tools: {:?})\n{}\n",
            c.calls,
            c.usage.total(),
            c.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
            c.text
        );
    };

    let plan = ask("planner")?
        .submit(format!("Plan a review of this crate:\n```rust\n{source}\n```").into())
        .await?
        .await?;
    show("planner", &plan);
    // Both reviews at once, on the two replicas.
    let reviewer = ask("reviewer")?;
    let api = reviewer
        .submit(
            format!(
                "Review the API of this crate, following the plan:\n{}\n```rust\n{source}\n```",
                plan.text
            )
            .into(),
        )
        .await?;
    let edges = reviewer
        .submit(format!("Review the edge cases of this crate:\n```rust\n{source}\n```").into())
        .await?;
    let (api, edges) = (api.await?, edges.await?);
    show("reviewer (API)", &api);
    show("reviewer (edge cases)", &edges);
    let verdict = ask("summariser")?
        .submit(
            format!(
                "Summarise these reviews into one verdict:\n- {}\n- {}",
                api.text, edges.text
            )
            .into(),
        )
        .await?
        .await?;
    show("summariser", &verdict);
    println!("budget: {} of 30,000 tokens spent", spent.spent().0);
    swarm.shutdown().await;
    if scripted.is_some() {
        println!("(scripted run: set APIARY_LLM_BASE_URL and APIARY_LLM_MODEL to ask a model)");
    }
    Ok(())
}
