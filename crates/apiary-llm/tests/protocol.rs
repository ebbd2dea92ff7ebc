//! Both protocols against the scripted server: plain answers, tool calls to peers (allowed
//! and refused by the topology), rate limits, server errors, broken streams, bad JSON, slow
//! starts, unknown finish reasons, usage in the last chunk, structured answers - and every
//! request checked against the protocol's schema.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm, SwarmEvent, TaskError};
use apiary_llm::{
    tool_fn, Completion, LlmAgent, LlmError, PeerTool, Prompt, Provider, RetryPolicy, Timeouts,
};
use apiary_llm_scripted::{Protocol, Reply, Script, SCRIPTED};
use common::{emitted, endpoint, server, PROVIDERS};
use serde_json::json;

/// A plain Rust agent the model can call: the forecast for a city.
struct Forecast;

impl Agent for Forecast {
    type Task = String;
    type Output = String;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        city: String,
        _: &AgentContext<String, String>,
    ) -> Result<String, Self::Error> {
        Ok(format!("rain in {city} tomorrow"))
    }
}

async fn ask(swarm: &Swarm, prompt: &str) -> Result<Completion, TaskError> {
    swarm
        .agent::<Prompt, Completion>("assistant")
        .unwrap()
        .submit(prompt.into())
        .await
        .unwrap()
        .await
}

fn llm_error(e: TaskError) -> LlmError {
    e.agent_error::<LlmError>()
        .cloned()
        .unwrap_or_else(|| panic!("not an LLM error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_answer_streams_deltas_and_reports_usage() {
    for provider in PROVIDERS {
        let server = server(Script::new().on("hello", [Reply::text("hello to you, human")])).await;
        let events = Arc::new(Mutex::new(Vec::<SwarmEvent>::new()));
        let agent = LlmAgent::builder(endpoint(&server, provider), "model-a")
            .system("be brief")
            .build();
        let seen = Arc::clone(&events);
        let swarm = Swarm::builder()
            .agent(AgentSpec::new("assistant"), move || agent.clone())
            .hook(move |e: &SwarmEvent| seen.lock().unwrap().push(e.clone()))
            .start()
            .await
            .unwrap();
        let c = ask(&swarm, "hello there").await.unwrap();
        assert_eq!(
            c.text,
            format!("{SCRIPTED} hello to you, human"),
            "{provider}"
        );
        assert_eq!(c.model, "model-a");
        assert_eq!(c.calls, 1);
        // Usage as the server counted it: one token per four bytes of the answer.
        assert_eq!(
            c.usage.output_tokens,
            (c.text.len() as u64).div_ceil(4),
            "{provider}"
        );
        assert!(c.usage.input_tokens > 0);
        // A copy: the hook still takes the lock while the swarm shuts down.
        let events = events.lock().unwrap().clone();
        let deltas: String = emitted(&events, "llm.delta")
            .iter()
            .filter_map(|d| d["text"].as_str())
            .collect();
        assert_eq!(deltas, c.text, "the deltas make up the answer");
        assert!(
            emitted(&events, "llm.delta").len() >= 2,
            "streamed in pieces"
        );
        let calls = emitted(&events, "llm.call");
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0]["usage"]["output_tokens"],
            json!(c.usage.output_tokens)
        );
        assert!(server.violations().is_empty(), "{:?}", server.violations());
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let expected = match provider {
            Provider::OpenAi => Protocol::OpenAi,
            Provider::Anthropic => Protocol::Anthropic,
        };
        assert_eq!(requests[0].protocol, expected);
        swarm.shutdown().await;
    }
}

/// The swarm of the tool tests: `assistant` may call `forecast`, unless `star` makes them
/// two spokes of a hub that is neither.
async fn forecasting_swarm(
    provider: Provider,
    server: &apiary_llm_scripted::ScriptedServer,
    star: bool,
) -> Swarm {
    let agent = LlmAgent::builder(endpoint(server, provider), "model-t")
        .tool(
            PeerTool::<String, String>::new("forecast", "The weather forecast for a city.")
                .parameters(json!({ "type": "string" })),
        )
        .build();
    let mut builder = Swarm::builder()
        .agent(AgentSpec::new("forecast"), || Forecast)
        .agent(AgentSpec::new("assistant"), move || agent.clone());
    if star {
        builder = builder
            .agent(AgentSpec::new("hub"), || Forecast)
            .topology(apiary_star::Star::new("hub"));
    }
    builder.start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_calls_a_peer_through_the_topology() {
    for provider in PROVIDERS {
        let script = Script::new().on(
            "weather",
            [
                Reply::tool_call("forecast", json!({ "input": "Oslo" })),
                Reply::text("take an umbrella"),
            ],
        );
        let server = server(script).await;
        let swarm = forecasting_swarm(provider, &server, false).await;
        let c = ask(&swarm, "what is the weather in Oslo?").await.unwrap();
        assert_eq!(c.text, format!("{SCRIPTED} take an umbrella"));
        assert_eq!(c.calls, 2);
        assert_eq!(c.tools.len(), 1);
        assert!(c.tools[0].ok, "{provider}: {:?}", c.tools);
        // The second request carries the peer's answer as the tool result.
        let second = server.requests()[1].body.to_string();
        assert!(
            second.contains("rain in Oslo tomorrow"),
            "{provider}: {second}"
        );
        assert!(server.violations().is_empty(), "{:?}", server.violations());
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_the_topology_refuses_is_a_tool_error_for_the_model() {
    for provider in PROVIDERS {
        let script = Script::new().on(
            "weather",
            [
                Reply::tool_call("forecast", json!({ "input": "Oslo" })),
                Reply::text("I could not get a forecast"),
            ],
        );
        let server = server(script).await;
        let swarm = forecasting_swarm(provider, &server, true).await;
        let c = ask(&swarm, "what is the weather in Oslo?").await.unwrap();
        assert_eq!(c.tools.len(), 1);
        assert!(
            !c.tools[0].ok,
            "{provider}: a spoke cannot call another spoke"
        );
        let second = server.requests()[1].body.to_string();
        assert!(
            second.contains("cannot call agent `forecast`"),
            "{provider}: {second}"
        );
        assert!(!second.contains("rain in Oslo"));
        assert!(server.violations().is_empty(), "{:?}", server.violations());
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_wait_for_retry_after_and_server_errors_are_retried() {
    for provider in PROVIDERS {
        let script = Script::new()
            .on(
                "busy",
                [Reply::attempts([
                    Reply::rate_limited(1),
                    Reply::text("done"),
                ])],
            )
            .on(
                "flaky",
                [Reply::attempts([Reply::status(500), Reply::text("done")])],
            );
        let server = server(script).await;
        let swarm = common::swarm_of(
            "assistant",
            LlmAgent::builder(endpoint(&server, provider), "m"),
        )
        .await;
        let started = Instant::now();
        let c = ask(&swarm, "busy?").await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited for Retry-After"
        );
        assert!(c.text.ends_with("done"));
        let c = ask(&swarm, "flaky?").await.unwrap();
        assert!(c.text.ends_with("done"));
        let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200, 500, 200], "{provider}");
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_are_errors_naming_provider_and_model() {
    for provider in PROVIDERS {
        let script = Script::new()
            .on(
                "cut",
                [Reply::CutStream("this answer will not finish".into())],
            )
            .on("garbled", [Reply::Malformed])
            .on("strange", [Reply::UnknownFinish])
            .on("refused", [Reply::status(400)]);
        let server = server(script).await;
        let swarm = common::swarm_of(
            "assistant",
            LlmAgent::builder(endpoint(&server, provider), "model-x"),
        )
        .await;
        let named = |e: &LlmError| {
            let text = e.to_string();
            assert!(text.contains(provider.name()), "{text}");
            assert!(text.contains("model-x"), "{text}");
        };
        let e = llm_error(ask(&swarm, "cut").await.unwrap_err());
        assert!(matches!(e, LlmError::StreamCut { .. }), "{provider}: {e}");
        named(&e);
        let e = llm_error(ask(&swarm, "garbled").await.unwrap_err());
        assert!(matches!(e, LlmError::Malformed { .. }), "{provider}: {e}");
        named(&e);
        let e = llm_error(ask(&swarm, "strange").await.unwrap_err());
        assert!(
            matches!(e, LlmError::UnknownFinish { ref reason, .. } if reason == "sparkles"),
            "{e}"
        );
        named(&e);
        let e = llm_error(ask(&swarm, "refused").await.unwrap_err());
        assert!(matches!(e, LlmError::Status { status: 400, .. }), "{e}");
        named(&e);
        // A 400 is not retried; the broken streams are not retried either (their deltas
        // are out): one request each.
        assert_eq!(server.requests().len(), 4, "{provider}");
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_byte_times_out() {
    for provider in PROVIDERS {
        let script = Script::new().on(
            "slow",
            [Reply::slow(Duration::from_secs(3), Reply::text("late"))],
        );
        let server = server(script).await;
        let endpoint = common::builder(&server, provider)
            .timeouts(Timeouts {
                first_byte: Duration::from_millis(300),
                ..Timeouts::default()
            })
            .retry(RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let swarm = common::swarm_of("assistant", LlmAgent::builder(endpoint, "m")).await;
        let started = Instant::now();
        let e = llm_error(ask(&swarm, "slow").await.unwrap_err());
        assert!(
            matches!(
                e,
                LlmError::Timeout {
                    waiting_for: "first byte",
                    ..
                }
            ),
            "{provider}: {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        swarm.shutdown().await;
    }
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Review {
    verdict: String,
    issues: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_answer_parses_into_a_type() {
    for provider in PROVIDERS {
        let script = Script::new().on(
            "review",
            [Reply::Json(json!({ "verdict": "approve", "issues": 2 }))],
        );
        let server = server(script).await;
        let agent = LlmAgent::builder(endpoint(&server, provider), "m").response_schema(
            "review",
            json!({ "type": "object",
                    "properties": { "verdict": { "type": "string" }, "issues": { "type": "integer" } },
                    "required": ["verdict", "issues"] }),
        );
        let swarm = common::swarm_of("assistant", agent).await;
        let c = ask(&swarm, "review this").await.unwrap();
        let review: Review = c.parse().unwrap();
        assert_eq!(
            review,
            Review {
                verdict: "approve".into(),
                issues: 2
            },
            "{provider}"
        );
        let wrong = c.parse::<Vec<u8>>().unwrap_err();
        assert!(wrong.to_string().contains("Vec<u8>"), "{wrong}");
        assert!(server.violations().is_empty(), "{:?}", server.violations());
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_checks_catch_bad_requests() {
    let server = server(Script::new()).await;
    let client = reqwest::Client::new();
    // A tool result that answers no tool call, and an unknown field.
    let bad = json!({
        "model": "m", "stream": true, "n_beams": 3,
        "messages": [{ "role": "user", "content": "hi" },
                     { "role": "tool", "tool_call_id": "call_1", "content": "x" }],
    });
    let r = client
        .post(format!("{}/chat/completions", server.openai_base_url()))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Anthropic without its headers and without max_tokens.
    let r = client
        .post(format!("{}/v1/messages", server.anthropic_base_url()))
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = server.violations().join("\n");
    for expected in [
        "unrecognized request argument `n_beams`",
        "answers no tool call",
        "x-api-key",
        "anthropic-version",
        "max_tokens",
    ] {
        assert!(v.contains(expected), "missing {expected:?} in:\n{v}");
    }
}

/// Answers the first approval that appears: yes, or no with a reason.
async fn decide_first(swarm: &Swarm, approve: bool) -> apiary_core::PendingApproval {
    let approvals = swarm.approvals();
    let pending = loop {
        if let Some(p) = approvals.pending().into_iter().next() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if approve {
        approvals.approve(&pending.id, "ops").unwrap();
    } else {
        approvals
            .reject(&pending.id, "alice", Some("not today".into()))
            .unwrap();
    }
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_tool_call_waits_for_a_person_and_a_rejection_ends_the_task() {
    let ran = Arc::new(Mutex::new(0));
    let script = Script::new().on(
        "ship",
        [
            Reply::tool_call("deploy", json!({ "version": "2.0" })),
            Reply::text("deployed"),
        ],
    );
    let server = server(script).await;
    let counter = ran.clone();
    let agent = LlmAgent::builder(endpoint(&server, Provider::OpenAi), "model-t")
        .tool_with_approval(
            tool_fn(
                "deploy",
                "Deploys a version.",
                json!({ "type": "object", "properties": { "version": { "type": "string" } } }),
                move |_| {
                    let counter = counter.clone();
                    async move {
                        *counter.lock().unwrap() += 1;
                        Ok("done".to_owned())
                    }
                },
            ),
            "deploy to production?",
        )
        .build();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("assistant"), move || agent.clone())
        .start()
        .await
        .unwrap();

    // Approved: the tool runs and the model goes on.
    let (answer, pending) = tokio::join!(ask(&swarm, "ship it"), decide_first(&swarm, true));
    assert!(
        pending
            .reason
            .starts_with("deploy to production? (tool `deploy`"),
        "{pending:?}"
    );
    assert!(pending.reason.contains("2.0"), "{pending:?}");
    assert_eq!(pending.agent, "assistant");
    assert!(pending.task.is_some());
    assert_eq!(answer.unwrap().text, format!("{SCRIPTED} deployed"));
    assert_eq!(*ran.lock().unwrap(), 1);

    // Rejected: the tool does not run; the task fails naming who rejected and why.
    let (answer, _) = tokio::join!(ask(&swarm, "ship it"), decide_first(&swarm, false));
    match llm_error(answer.unwrap_err()) {
        LlmError::Rejected(r) => {
            assert_eq!(
                (r.by.as_str(), r.reason.as_deref()),
                ("alice", Some("not today"))
            );
            assert_eq!(r.agent, "assistant");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(*ran.lock().unwrap(), 1, "a rejected tool call does not run");
    swarm.shutdown().await;
}
