//! A journaled swarm of LLM agents killed with SIGKILL mid-task and resumed by another
//! process: the calls that had finished are not sent again (counted at the scripted server,
//! which lives in the parent and outlives the kill), and the swarm's budget starts from
//! what the killed run spent.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use apiary_core::{AgentSpec, Swarm};
use apiary_journal::{Journal, JournalConfig};
use apiary_llm::{tool_fn, Completion, Limits, LlmAgent, Prompt, Provider, SwarmBudget};
use apiary_llm_scripted::{Reply, Script, SCRIPTED};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const TASKS: usize = 6;
const SWARM: &str = "resume-test";

/// The swarm of both processes: an agent whose model first calls `fetch`, then answers.
/// In the child, `fetch` says so on stdout and never returns (the kill lands there).
async fn swarm(journal: &Journal, base: String, hold: bool, budget: SwarmBudget) -> Swarm {
    let endpoint = apiary_llm::Endpoint::builder(Provider::OpenAi, base)
        .build()
        .unwrap();
    let fetch = tool_fn(
        "fetch",
        "Fetches a page.",
        json!({ "type": "object" }),
        move |_| async move {
            if hold {
                println!("holding");
                std::future::pending::<()>().await;
            }
            Ok("the page".to_owned())
        },
    );
    let agent = LlmAgent::builder(endpoint, "m").tool(fetch).build();
    Swarm::builder()
        .configure(|s| s.name = SWARM.into())
        .resource(journal.clone())
        .resource(budget)
        .agent(AgentSpec::new("reader").replicas(TASKS as u32), move || {
            agent.clone()
        })
        .start()
        .await
        .unwrap()
}

/// The process that is killed: submits the tasks, and works until each holds in `fetch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by `a_killed_run_does_not_send_finished_calls_again` as a child process"]
async fn child_calls_models_until_killed() {
    let dir = PathBuf::from(std::env::var("APIARY_TEST_JOURNAL").unwrap());
    let base = std::env::var("APIARY_TEST_BASE").unwrap();
    let journal = Journal::open(JournalConfig::new(&dir, SWARM))
        .await
        .unwrap();
    let budget = SwarmBudget::new(Limits::none().tokens(1_000_000));
    let swarm = swarm(&journal, base, true, budget).await;
    let reader = journal
        .agent::<Prompt, Completion>(&swarm, "reader")
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..TASKS {
        handles.push(
            reader
                .submit(format!("read page {n}").into())
                .await
                .unwrap(),
        );
    }
    for h in handles {
        let _ = h.await;
    }
    println!("finished before the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_does_not_send_finished_calls_again() {
    let script = Script::new().on(
        "read page",
        [Reply::tool_call("fetch", json!({})), Reply::text("read it")],
    );
    let server = common::server(script).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_calls_models_until_killed",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APIARY_TEST_JOURNAL", &dir)
        .env("APIARY_TEST_BASE", server.openai_base_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let all_holding = async {
        let mut holding = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.ends_with("holding") {
                holding += 1;
                if holding == TASKS {
                    return;
                }
            }
        }
        panic!("the child exited before every task reached its tool");
    };
    tokio::time::timeout(Duration::from_secs(120), all_holding)
        .await
        .expect("every task reached its tool within 120 s");
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    // Each task's first call finished (and was recorded) before its tool ran.
    assert_eq!(server.requests().len(), TASKS);

    let journal = Journal::open(JournalConfig::new(&dir, SWARM))
        .await
        .unwrap();
    for t in journal.tasks().unwrap() {
        assert!(t.outcome.is_none(), "{t:?}");
        assert_eq!(
            journal.steps(t.id).unwrap(),
            ["llm#1"],
            "the first call is recorded"
        );
    }
    let budget = SwarmBudget::new(Limits::none().tokens(1_000_000));
    budget.0.restore_from(&journal).unwrap();
    let spent_before = budget.0.spent().0;
    let billed_before: u64 = server
        .requests()
        .iter()
        .map(|r| r.usage_tokens.expect("the server counted the usage"))
        .sum();
    assert_eq!(
        spent_before, billed_before,
        "the killed run's spending came back"
    );

    let swarm = swarm(&journal, server.openai_base_url(), false, budget.clone()).await;
    let reader = journal
        .agent::<Prompt, Completion>(&swarm, "reader")
        .unwrap();
    let report = reader.resume().await;
    assert_eq!(report.resumed.len(), TASKS);
    for h in report.resumed {
        let c = h.await.unwrap();
        assert_eq!(c.text, format!("{SCRIPTED} read it"));
        // Both calls count in the task's usage, the replayed one included.
        assert_eq!(c.calls, 2);
    }
    // One new request per task: the second call. The first was not sent again.
    assert_eq!(server.requests().len(), 2 * TASKS);
    let billed: u64 = server
        .requests()
        .iter()
        .map(|r| r.usage_tokens.unwrap())
        .sum();
    assert_eq!(
        budget.0.spent().0,
        billed,
        "the budget counts every billed call once"
    );
    swarm.shutdown().await;
}
