//! The console over real HTTP: event streams that reconnect without loss, clients that stop
//! reading, tokens, controls, approvals, and bad requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use apiary_core::{
    Agent, AgentContext, AgentSpec, ApprovalRequest, Decision, EventKind, Swarm, SwarmEvent,
};
use apiary_web::{serve, serve_with, AgentStatus, Console, ServeError, ServeOptions};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Echo;

impl Agent for Echo {
    type Task = u64;
    type Output = u64;
    type Error = Infallible;
    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Infallible> {
        Ok(n)
    }
}

/// Waits forever until released: a task that stays running.
struct Gate;

impl Agent for Gate {
    type Task = ();
    type Output = ();
    type Error = Infallible;
    async fn handle(&mut self, _: (), ctx: &AgentContext<(), ()>) -> Result<(), Infallible> {
        ctx.cancelled().await;
        Ok(())
    }
}

async fn swarm() -> Swarm {
    Swarm::builder()
        .agent(AgentSpec::new("echo").kind("echo").replicas(2), || Echo)
        .agent(AgentSpec::new("gate").kind("gate"), || Gate)
        .start()
        .await
        .unwrap()
}

async fn run_tasks(swarm: &Swarm, n: u64) {
    let echo = swarm.agent::<u64, u64>("echo").unwrap();
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(echo.submit(i).await.unwrap());
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u64);
    }
}

/// One SSE message: its id, event name and data.
#[derive(Debug, Clone)]
struct Message {
    id: Option<u64>,
    event: Option<String>,
    data: String,
}

fn parse(frames: &str) -> Vec<Message> {
    frames
        .split("\n\n")
        .filter(|f| !f.trim().is_empty() && !f.starts_with(':'))
        .map(|f| {
            let mut m = Message {
                id: None,
                event: None,
                data: String::new(),
            };
            for line in f.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    m.id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    m.event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    m.data.push_str(v);
                }
            }
            m
        })
        .collect()
}

/// Reads messages from `/events` until `until` says stop (or 10 s pass).
async fn read_events(
    addr: SocketAddr,
    last_event_id: Option<u64>,
    mut until: impl FnMut(&[Message]) -> bool,
) -> Vec<Message> {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/events"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Only whole messages count.
        let whole = text.rfind("\n\n").map_or("", |end| &text[..end + 2]);
        let messages = parse(whole);
        if until(&messages) {
            return messages;
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => panic!("stream ended; got {messages:?}"),
            Err(_) => panic!(
                "timed out; got {} messages, the last {:?}",
                messages.len(),
                messages.last()
            ),
        }
    }
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().filter_map(|m| m.id).collect()
}

fn finished_tasks(messages: &[Message]) -> usize {
    messages
        .iter()
        .filter(|m| m.data.contains("\"event\":\"task_finished\""))
        .count()
}

/// Every event the swarm published, in the order a subscriber received them.
async fn all_seqs(events: &mut apiary_core::EventStream) -> Vec<u64> {
    let mut out = Vec::new();
    // `recv` with a short wait, not `try_recv`: tokio's cooperative budget makes a long run of
    // `try_recv`s report "nothing waiting" early.
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
        let e: SwarmEvent = e.unwrap();
        out.push(e.seq());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing_buffered() {
    let swarm = swarm().await;
    let mut reference = swarm.subscribe();
    let console = Console::builder(&swarm).buffer(10_000).start();
    let served = serve(&console, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = served.addr();

    run_tasks(&swarm, 100).await;
    // First connection: read up to the end of the first 100 tasks, then drop the connection.
    let first = read_events(addr, None, |m| finished_tasks(m) >= 100).await;
    let last = *seqs(&first).last().unwrap();
    // While disconnected, more happens.
    run_tasks(&swarm, 150).await;
    let expected = all_seqs(&mut reference).await;
    let second = read_events(addr, Some(last), |m| seqs(m).last() == expected.last()).await;
    assert!(
        second.iter().all(|m| m.event.is_none()),
        "no lag notice: nothing was evicted"
    );
    let mut seen = seqs(&first);
    seen.extend(seqs(&second));
    assert_eq!(
        seen, expected,
        "every event exactly once, in publication order"
    );
    served.shutdown().await;
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_the_buffer_is_told_how_much_it_missed() {
    let swarm = swarm().await;
    let console = Console::builder(&swarm).buffer(32).start();
    let served = serve(&console, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    run_tasks(&swarm, 5).await;
    let first = read_events(served.addr(), None, |m| finished_tasks(m) >= 5).await;
    let last = *seqs(&first).last().unwrap();
    run_tasks(&swarm, 200).await;
    let second = read_events(served.addr(), Some(last), |m| m.len() >= 2).await;
    assert_eq!(second[0].event.as_deref(), Some("lagged"), "{second:?}");
    let missed: serde_json::Value = serde_json::from_str(&second[0].data).unwrap();
    assert!(missed["missed"].as_u64().unwrap() > 0, "{missed}");
    served.shutdown().await;
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_the_swarm_back() {
    let swarm = swarm().await;
    let console = Console::builder(&swarm).buffer(256).start();
    let served = serve(&console, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A client that asks for the stream and never reads a byte of it.
    let mut stalled = tokio::net::TcpStream::connect(served.addr()).await.unwrap();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // Far more events than the buffer and the socket buffers hold: all tasks still end.
    tokio::time::timeout(Duration::from_secs(60), run_tasks(&swarm, 20_000))
        .await
        .expect("the swarm went on while a client did not read");
    // When the client reads at last, it is told it fell behind.
    let mut text = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&text).contains("event: lagged") {
        let n = tokio::time::timeout_at(deadline, stalled.read(&mut buf))
            .await
            .expect("a lag notice")
            .unwrap();
        assert!(n > 0, "stream closed without a lag notice");
        text.extend_from_slice(&buf[..n]);
    }
    served.shutdown().await;
    swarm.shutdown().await;
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_every_route_needs_the_token() {
    let swarm = swarm().await;
    let console = Console::builder(&swarm).start();
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    match serve(&console, any).await {
        Err(e @ ServeError::TokenRequired { .. }) => {
            assert!(e.to_string().contains("0.0.0.0:0"), "{e}")
        }
        other => panic!("expected TokenRequired, got {other:?}"),
    }
    let served = serve_with(&console, any, ServeOptions::default().token("t0ken"))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", served.addr().port());
    let client = reqwest::Client::new();
    let routes: [(&str, &str); 8] = [
        ("GET", "/"),
        ("GET", "/state"),
        ("GET", "/events"),
        ("GET", "/approvals"),
        ("POST", "/agents/echo/pause"),
        ("POST", "/tasks/1/cancel"),
        ("POST", "/approvals/a1/approve"),
        ("GET", "/no/such/route"),
    ];
    for (method, path) in routes {
        let url = format!("{base}{path}");
        let req = |c: &reqwest::Client| {
            c.request(method.parse().unwrap(), &url)
                .header("X-Apiary-Request", "1")
        };
        assert_eq!(
            status(req(&client)).await,
            401,
            "{method} {path} without a token"
        );
        assert_eq!(
            status(req(&client).bearer_auth("wrong")).await,
            401,
            "{method} {path} with a wrong token"
        );
        assert_eq!(
            status(req(&client).query(&[("token", "t0ken!")])).await,
            401,
            "{method} {path} with a wrong query token"
        );
    }
    // The right token, as a header and in the URL.
    let ok = client
        .get(format!("{base}/state"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let page = client
        .get(format!("{base}/?token=t0ken"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    served.shutdown().await;
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_an_error_naming_it() {
    let swarm = swarm().await;
    let console = Console::builder(&swarm).start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = serve(&console, addr).await.unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }));
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    swarm.shutdown().await;
}

async fn post(base: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("X-Apiary-Request", "1")
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_pause_resume_cancel_and_decide_approvals() {
    let swarm = swarm().await;
    let mut events = swarm.subscribe();
    let console = Console::builder(&swarm).start();
    let served = serve(&console, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", served.addr());

    // Pause: the swarm holds the agent's tasks; the snapshot and the events say so.
    let (code, _) = post(&base, "/agents/echo/pause", "{}").await;
    assert_eq!(code, 200);
    assert!(swarm.is_paused("echo").unwrap());
    assert_eq!(
        console.snapshot().agent("echo").unwrap().state(),
        AgentStatus::Paused
    );
    let echo = swarm.agent::<u64, u64>("echo").unwrap();
    let held = echo.submit(7).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!held.state().is_terminal(), "a paused agent starts nothing");
    let (code, _) = post(&base, "/agents/echo/resume", "").await;
    assert_eq!(code, 200);
    assert_eq!(held.await.unwrap(), 7);
    let mut saw = Vec::new();
    while let Some(Ok(e)) = events.try_recv() {
        saw.push(e.into_kind());
    }
    assert!(saw
        .iter()
        .any(|k| matches!(k, EventKind::AgentPaused { agent } if agent == "echo")));
    assert!(saw
        .iter()
        .any(|k| matches!(k, EventKind::AgentResumed { agent } if agent == "echo")));

    // Without the control header, or from another site: refused, nothing happens.
    let refused = reqwest::Client::new()
        .post(format!("{base}/agents/echo/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let cross = reqwest::Client::new()
        .post(format!("{base}/agents/echo/pause"))
        .header("X-Apiary-Request", "1")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(!swarm.is_paused("echo").unwrap());

    // Cancel a tracked running task.
    let gate = swarm.agent::<(), ()>("gate").unwrap();
    let running = gate.submit(()).await.unwrap();
    console.track(&running);
    let id = running.id().get();
    let (code, body) = post(&base, &format!("/tasks/{id}/cancel"), "{}").await;
    assert_eq!((code, body["cancelled"].as_bool()), (200, Some(true)));
    assert!(running.await.unwrap_err().is_cancelled());
    let (code, body) = post(&base, &format!("/tasks/{id}/cancel"), "{}").await;
    assert_eq!(code, 404, "{body}");

    // Approvals: approved from the page, rejected naming who and why.
    let approval = swarm
        .approvals()
        .request(ApprovalRequest::new("echo", "run it?"))
        .unwrap();
    let id = approval.id().to_owned();
    let state: serde_json::Value = reqwest::get(format!("{base}/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["approvals"][0]["id"], id.as_str());
    let (code, _) = post(
        &base,
        &format!("/approvals/{id}/approve"),
        r#"{"by": "page"}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(approval.await.unwrap().by, "page");
    let approval = swarm
        .approvals()
        .request(ApprovalRequest::new("echo", "again?"))
        .unwrap();
    let id = approval.id().to_owned();
    let (code, _) = post(
        &base,
        &format!("/approvals/{id}/reject"),
        r#"{"by": "alice", "reason": "too late"}"#,
    )
    .await;
    assert_eq!(code, 200);
    match approval.await {
        Err(Decision::Rejected(r)) => {
            assert_eq!(
                (r.by.as_str(), r.reason.as_deref()),
                ("alice", Some("too late"))
            )
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    served.shutdown().await;
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_never_break_the_server() {
    let swarm = swarm().await;
    let console = Console::builder(&swarm).start();
    let served = serve(&console, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", served.addr());
    for (path, body, want) in [
        ("/agents/nobody/pause", "{}", 404),
        ("/agents/echo/explode", "{}", 404),
        ("/tasks/not-a-number/cancel", "{}", 400),
        ("/tasks/99999999999999999999999/cancel", "{}", 400),
        ("/approvals/none/approve", "{}", 404),
        ("/approvals/none/maybe", "{}", 404),
        ("/approvals/x/reject", "{not json", 400),
        ("/approvals/x/reject", r#"{"by": 5}"#, 400),
        ("/approvals/x/reject", r#"{"unknown": 1}"#, 400),
        ("/nothing/here", "", 404),
    ] {
        let (code, json) = post(&base, path, body).await;
        assert_eq!(code, want, "{path} {body}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    // Raw garbage on the socket.
    for garbage in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET /events?last_event_id=%%%% HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: -1\r\n\r\n",
        b"POST /approvals/a/approve HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Apiary-Request: 1\r\nContent-Length: 99999\r\n\r\n{",
    ] {
        let mut s = tokio::net::TcpStream::connect(served.addr()).await.unwrap();
        s.write_all(garbage).await.unwrap();
        drop(s);
    }
    // A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) still sends
    // that name: without a token, only loopback names are answered.
    let mut s = tokio::net::TcpStream::connect(served.addr()).await.unwrap();
    s.write_all(b"GET /state HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("not loopback"), "{answer}");
    // Still serving.
    let state = reqwest::get(format!("{base}/state")).await.unwrap();
    assert_eq!(state.status(), 200);
    served.shutdown().await;
    swarm.shutdown().await;
}
