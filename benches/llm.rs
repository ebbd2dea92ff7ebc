//! apiary's own cost per model call and per tool round trip, against the floor measured in
//! the same run: the same streamed request sent with bare reqwest to the same local scripted
//! server, its whole SSE body read. What apiary adds beyond the floor is its overhead: the
//! actor hop, the request encoding, the SSE decoding into deltas, events, budgets, metrics.
//!
//! Run: `cargo bench --features llm --bench llm`

use std::time::Duration;

use apiary::llm::{
    Completion, Endpoint, Limits, LlmAgent, PeerTool, Prompt, Provider, SwarmBudget,
};
use apiary::prelude::*;
use apiary_llm_scripted::{Reply, Script, ScriptedServer};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use serde_json::json;

mod baseline;
use baseline::runtime;

/// The answer of every plain call: about 40 tokens, streamed in 15 pieces.
const ANSWER: &str = "a scripted answer of some forty tokens, streamed in pieces of about \
                      three words each, as a model would send them over server-sent events";

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
        Ok(format!("rain in {city}"))
    }
}

/// An agent whose task is the floor's bare call: splits the overhead between the actor
/// hop and the LLM agent's own code.
struct RawCaller {
    client: std::sync::Arc<reqwest::Client>,
    url: std::sync::Arc<String>,
    body: std::sync::Arc<serde_json::Value>,
}

impl Agent for RawCaller {
    type Task = ();
    type Output = ();
    type Error = std::convert::Infallible;
    async fn handle(&mut self, _: (), _: &AgentContext<(), ()>) -> Result<(), Self::Error> {
        raw_call(&self.client, &self.url, &self.body).await;
        Ok(())
    }
}

/// An agent whose task is one `Endpoint::call` of the LLM agent's request: splits the
/// LLM agent's overhead between the endpoint (HTTP, SSE decoding) and the agent's loop.
struct EndpointCaller {
    endpoint: Endpoint,
    req: apiary::llm::ChatRequest,
}

impl Agent for EndpointCaller {
    type Task = ();
    type Output = ();
    type Error = apiary::llm::LlmError;
    async fn handle(&mut self, _: (), _: &AgentContext<(), ()>) -> Result<(), Self::Error> {
        self.endpoint
            .call(&self.req, None, &mut |_| {})
            .await
            .map(drop)
    }
}

/// One streamed chat completion with bare reqwest, read to its end: the floor.
async fn raw_call(client: &reqwest::Client, url: &str, body: &serde_json::Value) {
    let response = client
        .post(url)
        .bearer_auth("bench")
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut stream = response.bytes_stream();
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.unwrap().len();
    }
    assert!(bytes > 0);
}

fn llm(c: &mut Criterion) {
    let rt = runtime();
    let script = Script::new().on("plain", [Reply::text(ANSWER)]).on(
        "weather",
        [
            Reply::tool_call("forecast", json!({ "input": "Oslo" })),
            Reply::text(ANSWER),
        ],
    );
    let server = rt.block_on(ScriptedServer::start(script)).unwrap();
    let base = server.openai_base_url();
    let url = format!("{base}/chat/completions");
    let client = reqwest::Client::new();
    let endpoint = Endpoint::builder(Provider::OpenAi, base.clone())
        .api_key("bench")
        .build()
        .unwrap();
    let bench_endpoint = endpoint.clone();
    let agent = LlmAgent::builder(endpoint, "m")
        .max_tokens(256)
        .tool(
            PeerTool::<String, String>::new("forecast", "The forecast.")
                .parameters(json!({ "type": "string" })),
        )
        .build();
    let swarm = rt
        .block_on(
            Swarm::builder()
                // Budgets are on the measured path: reserve and settle on every call.
                .resource(SwarmBudget::new(Limits::none().tokens(u64::MAX / 2)))
                .agent(AgentSpec::new("forecast"), || Forecast)
                .agent(AgentSpec::new("assistant"), move || agent.clone())
                .start(),
        )
        .unwrap();
    let assistant = swarm.agent::<Prompt, Completion>("assistant").unwrap();

    // The floor sends exactly the bodies apiary sent (same tools, same messages), so the
    // server does the same work for both: one plain call, then a tool round trip's two.
    rt.block_on(async {
        assistant
            .submit("plain question".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assistant
            .submit("what is the weather?".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let sent: Vec<serde_json::Value> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(sent.len(), 3);
    let plain_body = sent[0].clone();
    let tool_bodies = [sent[1].clone(), sent[2].clone()];

    // Interleaved pairs (floor, then apiary, 2,000 times): this shared machine drifts by tens
    // of percent between criterion's groups, so the overhead is also read as the median of
    // per-pair differences, which drift cancels.
    let (client, url) = (std::sync::Arc::new(client), std::sync::Arc::new(url));
    let plain_body = std::sync::Arc::new(plain_body);
    let tool_bodies = std::sync::Arc::new(tool_bodies);
    // The LLM agent's first request, as the endpoint takes it.
    let req = apiary::llm::ChatRequest {
        model: "m".into(),
        system: None,
        messages: vec![apiary::llm::Message::user("plain question")],
        tools: vec![apiary::llm::ToolSpec {
            name: "forecast".into(),
            description: "The forecast.".into(),
            parameters: json!({ "type": "object", "properties": { "input": { "type": "string" } },
                                "required": ["input"] }),
        }],
        max_tokens: 256,
        temperature: None,
        response: None,
    };
    let raw_caller = {
        let (client, url, body) = (client.clone(), url.clone(), plain_body.clone());
        let endpoint = bench_endpoint.clone();
        rt.block_on(
            Swarm::builder()
                .agent(AgentSpec::new("raw"), move || RawCaller {
                    client: client.clone(),
                    url: url.clone(),
                    body: body.clone(),
                })
                .agent(AgentSpec::new("endpoint"), move || EndpointCaller {
                    endpoint: endpoint.clone(),
                    req: req.clone(),
                })
                .start(),
        )
        .unwrap()
    };
    let raw_agent = raw_caller.agent::<(), ()>("raw").unwrap();
    let endpoint_agent = raw_caller.agent::<(), ()>("endpoint").unwrap();
    let mut in_agent = Vec::with_capacity(2_000);
    let mut endpoint_in_agent = Vec::with_capacity(2_000);
    let pairs = rt.block_on(async {
        let mut pairs = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let (c, u, b) = (client.clone(), url.clone(), plain_body.clone());
            let started = std::time::Instant::now();
            tokio::spawn(async move { raw_call(&c, &u, &b).await })
                .await
                .unwrap();
            let floor = started.elapsed();
            let started = std::time::Instant::now();
            raw_agent.submit(()).await.unwrap().await.unwrap();
            in_agent.push(started.elapsed().as_secs_f64() * 1e6);
            let started = std::time::Instant::now();
            endpoint_agent.submit(()).await.unwrap().await.unwrap();
            endpoint_in_agent.push(started.elapsed().as_secs_f64() * 1e6);
            let started = std::time::Instant::now();
            assistant
                .submit("plain question".into())
                .await
                .unwrap()
                .await
                .unwrap();
            pairs.push((floor, started.elapsed()));
        }
        pairs
    });
    rt.block_on(raw_caller.shutdown());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let floor = median(pairs.iter().map(|p| p.0.as_secs_f64() * 1e6).collect());
    let agent = median(pairs.iter().map(|p| p.1.as_secs_f64() * 1e6).collect());
    let overhead = median(
        pairs
            .iter()
            .map(|p| (p.1.as_secs_f64() - p.0.as_secs_f64()) * 1e6)
            .collect(),
    );
    let in_agent = median(in_agent);
    let endpoint_in_agent = median(endpoint_in_agent);
    eprintln!(
        "llm: interleaved, 2,000 rounds (medians): floor {floor:.1} us; the same call inside a \
         plain agent {in_agent:.1} us; Endpoint::call inside a plain agent \
         {endpoint_in_agent:.1} us; LlmAgent {agent:.1} us; per-pair overhead of the LlmAgent \
         over the floor {overhead:.1} us"
    );

    let mut group = c.benchmark_group("llm/call");
    group.measurement_time(Duration::from_secs(8));
    // The floor runs in a spawned task, as an agent's call does: the iteration itself runs
    // on the bench thread, and hyper's connection tasks on the runtime's workers.
    group.bench_function("raw_reqwest_sse", |b| {
        b.to_async(&rt).iter(|| {
            let (client, url, body) = (client.clone(), url.clone(), plain_body.clone());
            async move {
                tokio::spawn(async move { raw_call(&client, &url, &body).await })
                    .await
                    .unwrap();
            }
        });
    });
    group.bench_function("apiary_llm_agent", |b| {
        b.to_async(&rt).iter(|| async {
            let c = assistant
                .submit("plain question".into())
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(c.calls, 1);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("llm/tool_round_trip");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw_reqwest_sse_x2", |b| {
        b.to_async(&rt).iter(|| {
            let (client, url, bodies) = (client.clone(), url.clone(), tool_bodies.clone());
            async move {
                tokio::spawn(async move {
                    for body in bodies.iter() {
                        raw_call(&client, &url, body).await;
                    }
                })
                .await
                .unwrap();
            }
        });
    });
    group.bench_function("apiary_llm_agent_peer_tool", |b| {
        b.to_async(&rt).iter(|| async {
            let c = assistant
                .submit("what is the weather?".into())
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(c.calls, 2);
        });
    });
    group.finish();
    rt.block_on(swarm.shutdown());
}

criterion_group!(benches, llm);
criterion_main!(benches);
