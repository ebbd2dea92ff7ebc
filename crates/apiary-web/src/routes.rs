//! The HTTP surface: the page, `/state`, `/events` and the controls.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page (embedded; no CDN) |
//! | `GET /state` | a [`Snapshot`](crate::Snapshot) as JSON |
//! | `GET /events` | server-sent events: one swarm event per message, `id` = its number |
//! | `GET /approvals` | approvals waiting, as JSON |
//! | `POST /agents/{name}/pause`, `/resume` | pause or resume an agent's queue |
//! | `POST /tasks/{id}/cancel` | cancel a task the console tracks |
//! | `POST /approvals/{id}/approve`, `/reject` | decide; body `{"by": "...", "reason": "..."}` |
//!
//! Errors are JSON `{"error": "..."}` with a fitting status; nothing a client sends can
//! panic a handler.

use std::time::Duration;

use apiary_core::ApprovalError;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream;
use serde::Deserialize;

use crate::access::{self, Access};
use crate::console::{named, Console};
use crate::ring::Read;

/// The page, built into the binary.
const PAGE: &str = include_str!("../assets/index.html");
/// Frames written to a client per write, at most.
const CHUNK: usize = 512;
/// The least time between two `lagged` notices to one client.
const LAG_BACKOFF: Duration = Duration::from_millis(250);
/// A comment line sent on an idle stream, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) fn error(message: impl Into<String>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "error": message.into() }))
}

fn ok(extra: serde_json::Value) -> Response {
    let mut body = serde_json::json!({ "ok": true });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    Json(body).into_response()
}

/// What the handlers share: the console, and the signal that ends this server's streams.
#[derive(Clone)]
pub(crate) struct App {
    console: Console,
    closing: tokio::sync::watch::Receiver<bool>,
}

/// The console's routes, behind its access rules (`token`: see [`crate::access`]); event
/// streams end when `closing` turns true (or its sender goes).
pub(crate) fn router(
    console: Console,
    token: Option<String>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let access = Access { token };
    Router::new()
        .route("/", get(page))
        .route("/state", get(state))
        .route("/events", get(events))
        .route("/approvals", get(approvals))
        .route("/agents/{name}/{action}", post(agent_control))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/approvals/{id}/{decision}", post(decide))
        .fallback(|| async { (StatusCode::NOT_FOUND, error("no such route")) })
        .with_state(App { console, closing })
        .layer(axum::middleware::from_fn_with_state(access, access::check))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything is inline and same-origin: nothing may load from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn state(State(App { console, .. }): State<App>) -> Response {
    Json(console.snapshot()).into_response()
}

async fn approvals(State(App { console, .. }): State<App>) -> Response {
    Json(console.swarm().approvals().pending()).into_response()
}

/// `Last-Event-ID` as a browser resends it on reconnecting (or `?last_event_id=`).
fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| {
            query?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == "last_event_id").then(|| v.parse().ok()).flatten()
            })
        })
}

async fn events(
    State(App { console, closing }): State<App>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let shared = console.inner.shared.clone();
    let (cursor, missed) = shared
        .ring
        .cursor_after(last_event_id(&headers, uri.query()));
    let changed = shared.ring.watch();
    let pace = console.inner.pace;
    // The console itself must not be held by a stream: a lingering client would keep the
    // swarm alive.
    drop(console);
    let client = Client {
        shared,
        cursor,
        changed,
        closing,
        first: (missed > 0).then(|| lagged(missed)),
        wrote: None,
        pace,
    };
    let body = stream::unfold(client, |mut client| async move {
        let chunk = client.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(chunk), client))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn lagged(missed: u64) -> Bytes {
    named("lagged", &serde_json::json!({ "missed": missed }))
        .bytes()
        .clone()
}

/// One client's place in the event stream.
struct Client {
    shared: std::sync::Arc<crate::console::Shared>,
    cursor: u64,
    changed: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// A lag notice owed from the reconnect.
    first: Option<Bytes>,
    /// When the last chunk was written: the next waits until `pace` after it, so a client
    /// costs at most one wake-up per `pace` however busy the swarm. A client that needs more
    /// than `CHUNK` frames per `pace` falls behind and is told so.
    wrote: Option<tokio::time::Instant>,
    pace: Duration,
}

impl Client {
    /// The next bytes to write; `None` ends the stream (the server is closing).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.first.take() {
            return Some(bytes);
        }
        if let Some(wrote) = self.wrote.filter(|_| !self.pace.is_zero()) {
            tokio::time::sleep_until(wrote + self.pace).await;
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            match self.shared.ring.read(&mut self.cursor, CHUNK) {
                Read::Frames(frames) => {
                    let mut out = bytes::BytesMut::new();
                    for f in &frames {
                        out.extend_from_slice(f.bytes());
                    }
                    self.wrote = Some(tokio::time::Instant::now());
                    return Some(out.freeze());
                }
                Read::Missed(n) => {
                    // A client this far behind is looked at again after `LAG_BACKOFF`, not
                    // `pace`: while a flood lasts it could only be told it lags, 100 times a
                    // second, and its page would re-read the snapshot each time.
                    let backoff = LAG_BACKOFF.saturating_sub(self.pace);
                    self.wrote = Some(tokio::time::Instant::now() + backoff);
                    return Some(lagged(n));
                }
                Read::Empty => {}
            }
            tokio::select! {
                r = self.changed.changed() => if r.is_err() { return None },
                r = self.closing.changed() => if r.is_err() { return None },
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}

async fn agent_control(
    State(App { console, .. }): State<App>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let swarm = console.swarm();
    let result = match action.as_str() {
        "pause" => swarm.pause(&name),
        "resume" => swarm.resume(&name),
        other => {
            return (
                StatusCode::NOT_FOUND,
                error(format!("unknown agent action `{other}` (pause or resume)")),
            )
                .into_response()
        }
    };
    match result {
        Ok(()) => ok(serde_json::json!({ "agent": name, "paused": action == "pause" })),
        Err(e) => (StatusCode::NOT_FOUND, error(e.to_string())).into_response(),
    }
}

async fn cancel(State(App { console, .. }): State<App>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.trim_start_matches("task-").parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            error(format!("`{id}` is not a task number")),
        )
            .into_response();
    };
    match console.cancel(number) {
        Some(cancelled) => ok(serde_json::json!({ "task": number, "cancelled": cancelled })),
        None => (
            StatusCode::NOT_FOUND,
            error(format!(
                "task {number} is not tracked by this console (finished, or never handed to Console::track)"
            )),
        )
            .into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    by: Option<String>,
    reason: Option<String>,
}

async fn decide(
    State(App { console, .. }): State<App>,
    Path((id, decision)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: DecideBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecideBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error(format!("the body is not {{\"by\", \"reason\"}} JSON: {e}")),
                )
                    .into_response()
            }
        }
    };
    let by = body
        .by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "the web console".to_owned());
    let approvals = console.swarm().approvals();
    let result = match decision.as_str() {
        "approve" => approvals.approve(&id, by),
        "reject" => approvals.reject(&id, by, body.reason),
        other => {
            return (
                StatusCode::NOT_FOUND,
                error(format!("unknown decision `{other}` (approve or reject)")),
            )
                .into_response()
        }
    };
    match result {
        Ok(()) => ok(serde_json::json!({ "approval": id, "decision": decision })),
        Err(e @ ApprovalError::Unknown(_)) => {
            (StatusCode::NOT_FOUND, error(e.to_string())).into_response()
        }
        Err(e) => (StatusCode::CONFLICT, error(e.to_string())).into_response(),
    }
}
