//! Record and replay: calls recorded against the scripted server answer again, identically
//! and streamed, with the server gone; a request that was never recorded is an error naming
//! it; a damaged cassette is an error naming the file and line.

mod common;

use std::sync::{Arc, Mutex};

use apiary_core::{AgentSpec, Swarm, SwarmEvent};
use apiary_llm::{tool_fn, Completion, Endpoint, LlmAgent, LlmError, Prompt, Provider};
use apiary_llm_scripted::{Reply, Script};
use common::{emitted, PROVIDERS};
use serde_json::json;

async fn run(endpoint: Endpoint, prompt: &str) -> (Result<Completion, LlmError>, String) {
    let add = tool_fn(
        "add",
        "Adds.",
        json!({ "type": "object" }),
        |args| async move {
            Ok((args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0)).to_string())
        },
    );
    let agent = LlmAgent::builder(endpoint, "model-r").tool(add).build();
    let deltas = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&deltas);
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("assistant"), move || agent.clone())
        .hook(move |e: &SwarmEvent| {
            for d in emitted(std::slice::from_ref(e), "llm.delta") {
                seen.lock()
                    .unwrap()
                    .push_str(d["text"].as_str().unwrap_or(""));
            }
        })
        .start()
        .await
        .unwrap();
    let r = swarm
        .agent::<Prompt, Completion>("assistant")
        .unwrap()
        .submit(prompt.into())
        .await
        .unwrap()
        .await
        .map_err(|e| e.agent_error::<LlmError>().cloned().expect("an LLM error"));
    swarm.shutdown().await;
    let deltas = deltas.lock().unwrap().clone();
    (r, deltas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_calls_replay_offline_and_identically() {
    for provider in PROVIDERS {
        let dir = tempfile::tempdir().unwrap();
        let cassette = dir.path().join("calls.jsonl");
        let script = Script::new().on(
            "sum",
            [
                Reply::tool_call("add", json!({ "a": 2, "b": 3 })),
                Reply::text("the sum is 5"),
            ],
        );
        let server = common::server(script).await;
        let recording = common::builder(&server, provider)
            .record(&cassette)
            .build()
            .unwrap();
        let (recorded, recorded_deltas) = run(recording, "sum 2 and 3").await;
        let recorded = recorded.unwrap();
        assert_eq!(server.requests().len(), 2);
        drop(server); // nothing to call from here on

        let replaying = Endpoint::builder(provider, "http://127.0.0.1:9/unreachable")
            .replay(&cassette)
            .build()
            .unwrap();
        let (replayed, replayed_deltas) = run(replaying.clone(), "sum 2 and 3").await;
        let replayed = replayed.unwrap();
        assert_eq!(replayed.text, recorded.text, "{provider}");
        assert_eq!(replayed.usage, recorded.usage);
        assert_eq!(replayed.tools, recorded.tools);
        assert_eq!(replayed_deltas, recorded_deltas, "the stream replays too");

        let (missed, _) = run(replaying, "sum 4 and 5").await;
        match missed.unwrap_err() {
            LlmError::ReplayMiss { path, summary, .. } => {
                assert_eq!(path, cassette);
                assert!(
                    summary.contains("model-r") && summary.contains("sum 4 and 5"),
                    "{summary}"
                );
            }
            e => panic!("{provider}: not a replay miss: {e}"),
        }
    }
}

#[tokio::test]
async fn a_damaged_cassette_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = dir.path().join("calls.jsonl");
    std::fs::write(&cassette, "{\"key\": \"abc\"}\nnot json at all\n").unwrap();
    let e = Endpoint::builder(Provider::OpenAi, "http://127.0.0.1:9")
        .replay(&cassette)
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("calls.jsonl") && text.contains("line 1"),
        "{text}"
    );
    let missing = Endpoint::builder(Provider::OpenAi, "http://127.0.0.1:9")
        .replay(dir.path().join("none.jsonl"))
        .build()
        .unwrap_err();
    assert!(missing.to_string().contains("none.jsonl"), "{missing}");
}
