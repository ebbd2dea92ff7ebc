//! Shared by the tests: the scripted server, endpoints on it for each protocol, and a swarm
//! with an LLM agent.
#![allow(dead_code)]

use std::time::Duration;

use apiary_core::{AgentSpec, EventKind, Swarm, SwarmEvent};
use apiary_llm::{Endpoint, LlmAgentBuilder, Provider, RetryPolicy, Timeouts};
use apiary_llm_scripted::{Script, ScriptedServer};

pub(crate) const PROVIDERS: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

pub(crate) async fn server(script: Script) -> ScriptedServer {
    ScriptedServer::start(script)
        .await
        .expect("the scripted server starts")
}

/// An endpoint of `provider` on `server`, with quick retries and a short first-byte timeout.
pub(crate) fn endpoint(server: &ScriptedServer, provider: Provider) -> Endpoint {
    builder(server, provider).build().unwrap()
}

pub(crate) fn builder(server: &ScriptedServer, provider: Provider) -> apiary_llm::EndpointBuilder {
    let base = match provider {
        Provider::OpenAi => server.openai_base_url(),
        Provider::Anthropic => server.anthropic_base_url(),
    };
    Endpoint::builder(provider, base)
        .api_key("test-key")
        .timeouts(Timeouts {
            first_byte: Duration::from_secs(5),
            ..Timeouts::default()
        })
        .retry(RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        })
}

/// A swarm of one LLM agent, `agent`.
pub(crate) async fn swarm_of(name: &str, agent: LlmAgentBuilder) -> Swarm {
    let agent = agent.build();
    Swarm::builder()
        .agent(AgentSpec::new(name), move || agent.clone())
        .start()
        .await
        .unwrap()
}

/// The `Emitted` events named `name` among `events`.
pub(crate) fn emitted<'a>(events: &'a [SwarmEvent], name: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter_map(|e| match e.kind() {
            EventKind::Emitted { name: n, data, .. } if n == name => Some(&**data),
            _ => None,
        })
        .collect()
}
