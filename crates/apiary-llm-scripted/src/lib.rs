//! A local HTTP server that speaks two model protocols - OpenAI's chat completions
//! (`POST /v1/chat/completions`) and Anthropic's Messages (`POST /v1/messages`) - streaming
//! included, with scripted answers: for tests, benches and demos on machines that cannot reach
//! a model provider.
//!
//! - Every request is checked against its protocol's documented schema (required fields,
//!   types, roles, tool calls answered by tool results, headers); a violation is answered
//!   `400` in the provider's error format and kept in [`ScriptedServer::violations`], so a test
//!   can assert that a client sends only valid requests.
//! - Answers come from a [`Script`]; every text answer starts with `[scripted]`, and ids and
//!   fingerprints say `scripted`: no output can pass for a model's.
//! - Faults a real provider shows are scriptable: error statuses with `Retry-After`, a stream
//!   broken mid-way, a chunk that is not JSON, an unknown finish reason, a slow first byte.
//! - Every request received is kept ([`ScriptedServer::requests`]), so a test can count what
//!   reached the "provider".
//!
//! ```
//! use apiary_llm_scripted::{Reply, Script, ScriptedServer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let server = ScriptedServer::start(Script::new().on("hello", [Reply::text("hi there")])).await?;
//! // Point an OpenAI-compatible client at server.openai_base_url(), an Anthropic one at
//! // server.anthropic_base_url().
//! assert!(server.openai_base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.requests().len(), 0);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod anthropic;
mod openai;
mod reply;
mod schema;
mod script;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;

pub use anthropic::VERSION as ANTHROPIC_VERSION;
pub use script::{Reply, Script, SCRIPTED};

use reply::{Answer, Piece};

/// Which protocol a request spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The protocol.
    pub protocol: Protocol,
    /// The body, as JSON (`Null` if it was not JSON).
    pub body: Value,
    /// What the server answered: an HTTP status.
    pub status: u16,
    /// The tokens (input and output) the answer reported in its usage; `None` for an error,
    /// or for an answer that broke before its usage.
    pub usage_tokens: Option<u64>,
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct State {
    script: Script,
    next_id: AtomicU64,
    /// Attempts so far per (rule, first message, turn).
    attempts: Mutex<HashMap<(usize, String, usize), usize>>,
    received: Mutex<Vec<Received>>,
    violations: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScriptedServer {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Errors
    ///
    /// The port could not be bound.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("a valid address"), script).await
    }

    /// Starts a server on `addr`.
    ///
    /// # Errors
    ///
    /// `addr` could not be bound (in use, not local), named in the error.
    pub async fn bind(addr: SocketAddr, script: Script) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            script,
            next_id: AtomicU64::new(1),
            attempts: Mutex::new(HashMap::new()),
            received: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_route))
            .route("/v1/messages", post(anthropic_route))
            .with_state(Arc::clone(&state));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "scripted model server stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for OpenAI-compatible clients (`http://127.0.0.1:PORT/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL for Anthropic clients (`http://127.0.0.1:PORT`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Every schema violation found in the requests so far.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state.violations).clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn openai_route(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, Protocol::OpenAi, &headers, &body).await
}

async fn anthropic_route(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, Protocol::Anthropic, &headers, &body).await
}

async fn answer(state: &State, protocol: Protocol, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut violations = if json.is_null() {
        vec!["the body is not JSON".to_owned()]
    } else {
        match protocol {
            Protocol::OpenAi => openai::check(&json, header("authorization")),
            Protocol::Anthropic => {
                anthropic::check(&json, header("x-api-key"), header("anthropic-version"))
            }
        }
    };
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        violations.push("header content-type must be application/json".to_owned());
    }
    let record = |status: u16, usage_tokens: Option<u64>| {
        lock(&state.received).push(Received {
            protocol,
            body: json.clone(),
            status,
            usage_tokens,
        });
    };
    if !violations.is_empty() {
        let message = violations.join("; ");
        lock(&state.violations).extend(violations);
        record(400, None);
        return error(protocol, 400, &message, None);
    }

    let (first, turn) = match protocol {
        Protocol::OpenAi => schema::conversation(&json, openai::text_of),
        Protocol::Anthropic => schema::conversation(&json, anthropic::text_of),
    };
    let mut reply = match state.script.rule(&first) {
        Some((index, rule)) => {
            let pick = rule.turns.get(turn).or(rule.turns.last());
            match pick {
                Some(Reply::Attempts(attempts)) => {
                    let mut seen = lock(&state.attempts);
                    let n = seen.entry((index, first.clone(), turn)).or_insert(0);
                    let reply = attempts.get(*n).or(attempts.last()).cloned();
                    *n += 1;
                    reply.unwrap_or_else(|| Reply::text("an empty list of attempts"))
                }
                Some(reply) => reply.clone(),
                None => Reply::text("a rule without replies"),
            }
        }
        None => Reply::text(format!(
            "no script for this conversation: {:?}",
            first.chars().take(80).collect::<String>()
        )),
    };
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    if let Reply::Status { code, retry_after } = reply {
        record(code, None);
        return error(protocol, code, "scripted failure", retry_after);
    }
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (input, forced) = match protocol {
        Protocol::OpenAi => (openai::request_text(&json), None),
        Protocol::Anthropic => (
            anthropic::request_text(&json),
            anthropic::forced_tool(&json),
        ),
    };
    let answer = Answer::new(&reply, id, input, forced);
    let whole = !(answer.cut || answer.malformed);
    record(
        200,
        whole.then_some(answer.input_tokens + answer.output_tokens),
    );
    if !json.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let body = match protocol {
            Protocol::OpenAi => openai::body(&answer, &model),
            Protocol::Anthropic => anthropic::body(&answer, &model),
        };
        return axum::Json(body).into_response();
    }
    let pieces = match protocol {
        Protocol::OpenAi => {
            let usage = json
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            openai::stream(&answer, &model, usage)
        }
        Protocol::Anthropic => anthropic::stream(&answer, &model),
    };
    let frames = futures::stream::iter(pieces).then(|piece| async move {
        match piece {
            Piece::Data(data) => Ok(Bytes::from(format!("data: {data}\n\n"))),
            Piece::Event(name, data) => Ok(Bytes::from(format!("event: {name}\ndata: {data}\n\n"))),
            Piece::Break => {
                // Pending once, so hyper flushes the head and the pieces before the cut;
                // an error in the same poll would drop the connection before any byte.
                tokio::task::yield_now().await;
                Err(std::io::Error::other("scripted: the stream is cut here"))
            }
        }
    });
    let mut response = Response::new(Body::from_stream(frames));
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn error(protocol: Protocol, code: u16, message: &str, retry_after: Option<u64>) -> Response {
    let body = match protocol {
        Protocol::OpenAi => openai::error_body(code, message),
        Protocol::Anthropic => anthropic::error_body(code, message),
    };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}
