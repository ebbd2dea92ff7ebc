//! Task lines between two nodes of one process: used, cut, reopened, and refused without a
//! valid ticket.

use std::sync::Arc;
use std::time::Duration;

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_util::codec::Framed;

use super::frame::{self, Hello};
use super::server::Serve;
use crate::node::Shared;
use crate::wire::Reply;
use crate::{MembershipEvent, Node, NodeConfig, RemoteError};

/// Adds one; task 0 first says it arrived, then waits for a permit of its own.
struct Gate {
    arrived: Arc<Notify>,
    open: Arc<Semaphore>,
}

impl Agent for Gate {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        if n == 0 {
            self.arrived.notify_one();
            // Taken for good: each permit lets one task 0 through.
            if let Ok(permit) = self.open.acquire().await {
                permit.forget();
            }
        }
        Ok(n + 1)
    }
}

/// A swarm of two `gate` replicas, the notice that a task 0 arrived, and its permits.
async fn gated() -> (Swarm, Arc<Notify>, Arc<Semaphore>) {
    let (arrived, open) = (Arc::new(Notify::new()), Arc::new(Semaphore::new(0)));
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("gate").replicas(2), {
            let (arrived, open) = (arrived.clone(), open.clone());
            move || Gate {
                arrived: arrived.clone(),
                open: open.clone(),
            }
        })
        .start()
        .await
        .unwrap();
    (swarm, arrived, open)
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

/// Two nodes, `{name}-caller` and `{name}-server`; the server exports `swarm`'s agent `agent`
/// and the caller waits until it sees that gateway.
async fn exported<T, O>(name: &str, swarm: &Swarm, agent: &str) -> (Node, Node)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let caller = Node::start(NodeConfig::new(format!("{name}-caller"), "c"))
        .await
        .unwrap();
    let server = Node::start(NodeConfig::new(format!("{name}-server"), "c"))
        .await
        .unwrap();
    server
        .export(&swarm.agent::<T, O>(agent).unwrap())
        .await
        .unwrap();
    caller.connect(server.addr()).await.unwrap();
    let remote = caller.remote::<T, O>(agent);
    let server_name = format!("{name}-server");
    until("the gateway", || remote.nodes() == [server_name.as_str()]).await;
    (caller, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_travel_on_a_line_a_cut_line_ends_its_calls_once_and_a_new_one_opens() {
    let (swarm, arrived, open) = gated().await;
    let (caller, server) = exported::<u64, u64>("line", &swarm, "gate").await;
    let gate = caller.remote::<u64, u64>("gate");

    assert_eq!(gate.submit(&1).await.unwrap(), 2);
    assert_eq!(caller.shared.lines.open_to("line-server"), 1);

    // A task in flight when the line is cut ends with the cause, once.
    let stuck = tokio::spawn({
        let gate = caller.remote::<u64, u64>("gate");
        async move { gate.submit(&0).await }
    });
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .unwrap();
    caller
        .shared
        .lines
        .close_node("line-server", "cut by the test");
    let err = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, RemoteError::NodeDown { node, cause, .. } if node == "line-server" && cause.contains("cut by the test")),
        "{err}"
    );
    assert_eq!(caller.shared.lines.open_to("line-server"), 0);

    // The next task opens a new line.
    assert_eq!(gate.submit(&41).await.unwrap(), 42);
    assert_eq!(caller.shared.lines.open_to("line-server"), 1);

    // A task that does not decode on the far side: an error to the caller, and an event
    // there naming the caller; the line stays open.
    let mut events = server.subscribe();
    let wrong = caller.remote::<(), u64>("gate");
    let err = wrong.submit(&()).await.unwrap_err();
    assert!(
        matches!(&err, RemoteError::Decode { node, .. } if node == "line-server"),
        "{err}"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, MembershipEvent::DecodeFailed { node, agent, .. } if node == "line-caller" && agent == "gate"),
        "{event:?}"
    );
    assert_eq!(gate.submit(&2).await.unwrap(), 3);
    assert_eq!(caller.shared.lines.open_to("line-server"), 1);

    open.add_permits(1);
    caller.shutdown().await;
    server.shutdown().await;
    swarm.shutdown().await;
}

/// `f`'s output, or a panic naming `what` after 10 s.
async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} within 10 s"))
}

/// A call held on the far side does not hold up the calls made meanwhile on its line, and a
/// call that times out leaves the line working for the calls after it, alone or together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_holds_up_no_other_and_a_timed_out_one_leaves_the_line_working() {
    let (swarm, arrived, open) = gated().await;
    let (caller, server) = exported::<u64, u64>("lone", &swarm, "gate").await;
    let gate = caller.remote::<u64, u64>("gate");
    let gate = &gate;

    // Alone on the line, held on the far side.
    let held = tokio::spawn({
        let gate = caller.remote::<u64, u64>("gate");
        async move { gate.submit(&0).await }
    });
    within("task 0 reached the agent", arrived.notified()).await;
    // Calls made meanwhile go to the other replica and are answered.
    let meanwhile = within(
        "the calls made meanwhile were answered",
        futures::future::join_all((1..=8u64).map(|n| async move { gate.submit(&n).await })),
    )
    .await;
    for (n, answer) in (1..=8u64).zip(meanwhile) {
        assert_eq!(answer.unwrap(), n + 1);
    }
    assert!(!held.is_finished());
    open.add_permits(1);
    let answer = within("task 0 was answered", held).await;
    assert_eq!(answer.unwrap().unwrap(), 1);

    // Alone and given up on: the calls after it, alone or together, are answered.
    let hasty = caller
        .remote::<u64, u64>("gate")
        .timeout(Duration::from_millis(200));
    let err = within("the hasty call's time-out", hasty.submit(&0))
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Timeout { .. }), "{err}");
    let answer = within(
        "a lone call after the time-out was answered",
        gate.submit(&41),
    )
    .await;
    assert_eq!(answer.unwrap(), 42);
    let together = within(
        "the calls after the time-out were answered",
        futures::future::join_all((100..116u64).map(|n| async move { gate.submit(&n).await })),
    )
    .await;
    for (n, answer) in (100..116u64).zip(together) {
        assert_eq!(answer.unwrap(), n + 1);
    }
    assert_eq!(caller.shared.lines.open_to("lone-server"), 1);

    open.add_permits(1);
    caller.shutdown().await;
    server.shutdown().await;
    swarm.shutdown().await;
}

/// Answers with the task's length and the sum of its bytes.
struct Weigh;

impl Agent for Weigh {
    type Task = Vec<u8>;
    type Output = (usize, u64);
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        task: Vec<u8>,
        _: &AgentContext<Vec<u8>, (usize, u64)>,
    ) -> Result<(usize, u64), Self::Error> {
        Ok(weight(&task))
    }
}

fn weight(task: &[u8]) -> (usize, u64) {
    (task.len(), task.iter().map(|&b| u64::from(b)).sum())
}

/// A call alone on its line writes its own frame, and one far larger than the socket takes
/// at once is finished by the writer task; calls in flight together go through the writer.
/// Either way every frame arrives whole and every call gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_the_socket_takes_arrive_whole_alone_or_together() {
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("weigh").replicas(2), || Weigh)
        .start()
        .await
        .unwrap();
    let (caller, server) = exported::<Vec<u8>, (usize, u64)>("big", &swarm, "weigh").await;
    let weigh = caller.remote::<Vec<u8>, (usize, u64)>("weigh");

    // Alone: 16 MiB, far more than a loopback socket's buffers take in one write. If the
    // rest of the frame were never written, the answer would never come.
    let big: Vec<u8> = (0..16usize << 20).map(|i| (i % 251) as u8).collect();
    let answer = tokio::time::timeout(Duration::from_secs(30), weigh.submit(&big))
        .await
        .expect("the 16 MiB call was answered within 30 s");
    assert_eq!(answer.unwrap(), weight(&big));
    assert_eq!(caller.shared.lines.open_to("big-server"), 1);

    // Together: eight of 1 MiB and eight small ones at once, each answered as its own.
    let tasks: Vec<Vec<u8>> = (0..16u8)
        .map(|n| {
            let len = if n % 2 == 0 { 1 << 20 } else { 3 };
            (0..len).map(|i| (i as u8).wrapping_mul(n)).collect()
        })
        .collect();
    let answers = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(tasks.iter().map(|t| weigh.submit(t))),
    )
    .await
    .expect("the calls in flight together were answered within 30 s");
    for (task, answer) in tasks.iter().zip(answers) {
        assert_eq!(answer.unwrap(), weight(task));
    }
    // Then alone again, on the same line.
    assert_eq!(weigh.submit(&vec![7u8; 100]).await.unwrap(), (100, 700));
    assert_eq!(caller.shared.lines.open_to("big-server"), 1);

    caller.shutdown().await;
    server.shutdown().await;
    swarm.shutdown().await;
}

/// Answers every task with a failure; only its ticket matters here.
struct Refuses;

impl Serve for Refuses {
    fn serve(&self, _: &Shared, _: &str, _: &[u8]) -> futures::future::BoxFuture<'static, Reply> {
        Box::pin(std::future::ready(Reply::Failed("served".into())))
    }
}

/// Connects to `node`'s line listener and says `hello`; the answer frame, `None` if the
/// connection closed instead.
async fn hello(node: &Node, hello: &Hello) -> Option<String> {
    let tcp = TcpStream::connect(("127.0.0.1", node.shared.lines.port))
        .await
        .unwrap();
    let mut line = Framed::new(tcp, frame::codec());
    let hello = postcard::to_allocvec(hello).unwrap();
    line.send(Bytes::from(hello)).await.unwrap();
    match line.next().await {
        Some(Ok(answer)) => Some(String::from_utf8(answer.to_vec()).unwrap()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_opens_only_once_per_ticket_and_only_for_the_node_it_was_issued_to() {
    let node = Node::start(NodeConfig::new("line-tickets", "c"))
        .await
        .unwrap();
    let tickets = &node.shared.lines.tickets;

    let unknown = Hello {
        from: "mallory".into(),
        token: [7; 16],
    };
    let refusal = hello(&node, &unknown).await.unwrap();
    assert!(
        refusal.contains("has no ticket of node `mallory`"),
        "{refusal}"
    );

    let token = tickets.issue("alice".into(), Arc::new(Refuses)).unwrap();
    let stolen = Hello {
        from: "mallory".into(),
        token,
    };
    assert!(hello(&node, &stolen).await.unwrap().contains("no ticket"));
    // Shown once to the wrong node, the ticket is spent.
    let late = Hello {
        from: "alice".into(),
        token,
    };
    assert!(hello(&node, &late).await.unwrap().contains("no ticket"));

    let token = tickets.issue("alice".into(), Arc::new(Refuses)).unwrap();
    let good = Hello {
        from: "alice".into(),
        token,
    };
    assert_eq!(hello(&node, &good).await.unwrap(), "", "accepted");
    assert!(hello(&node, &good).await.unwrap().contains("no ticket"));

    // A "hello" larger than any hello is not read: the connection is closed, which the
    // sender may already see while still writing the megabyte (reset by peer).
    let tcp = TcpStream::connect(("127.0.0.1", node.shared.lines.port))
        .await
        .unwrap();
    let mut line = Framed::new(tcp, frame::codec());
    let sent = line.send(Bytes::from(vec![0u8; 1 << 20])).await;
    assert!(sent.is_err() || line.next().await.is_none_or(|r| r.is_err()));

    // Not a hello at all: the connection is closed.
    let tcp = TcpStream::connect(("127.0.0.1", node.shared.lines.port))
        .await
        .unwrap();
    let mut line = Framed::new(tcp, frame::codec());
    line.send(Bytes::from_static(&[0xff; 3])).await.unwrap();
    assert!(line.next().await.is_none_or(|r| r.is_err()));
    node.shutdown().await;
}
