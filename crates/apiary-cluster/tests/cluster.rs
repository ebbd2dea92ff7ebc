//! Swarms across OS processes on 127.0.0.1: three nodes (this test process and two copies of
//! this test binary, re-executed as node processes), one killed with SIGKILL mid-run; a wrong
//! cookie refused; a message that does not decode reported, not panicked on; nodes and swarms
//! sharing a process or a cluster without seeing each other's agents.
//!
//! These tests pass as threads of one process (`cargo test`) as well as one process each
//! (nextest): each uses node names of its own, and reads metrics by its own node's label.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

mod common;
#[path = "common/sieve.rs"]
mod sieve;

use apiary_cluster::{ClusterError, Heartbeat, MembershipEvent, Node, NodeConfig, RemoteError};
use apiary_core::{Agent, AgentContext, AgentSpec, BoxError, Swarm, TaskError};
use common::NodeProcess;
use futures::StreamExt;
use sieve::{eventually, primes_below, sieve_swarm, Done, Job};

const COOKIE: &str = "apiary-test-cookie";

/// A node process: exports its `sieve` agent and joins the cluster through the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "node process of three_node_processes_lose_no_task_when_one_is_killed"]
async fn node_process() {
    let (Ok(name), Ok(peer)) = (
        std::env::var("APIARY_NODE_NAME"),
        std::env::var("APIARY_NODE_PEER"),
    ) else {
        return;
    };
    let node = Node::start(NodeConfig::new(&name, COOKIE)).await.unwrap();
    let swarm = sieve_swarm(&name).await;
    node.export(&swarm.agent::<Job, Done>("sieve").unwrap())
        .await
        .unwrap();
    node.connect(peer.parse().unwrap()).await.unwrap();
    println!("ready {name}");
    std::future::pending::<()>().await;
}

async fn spawn_node(name: &str, peer: SocketAddr) -> NodeProcess {
    let env = [
        ("APIARY_NODE_NAME", name.to_owned()),
        ("APIARY_NODE_PEER", peer.to_string()),
    ];
    common::start("node_process", &env, &format!("ready {name}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_processes_lose_no_task_when_one_is_killed() {
    let exporter = apiary_metrics::Exporter::install("127.0.0.1:0".parse().unwrap()).unwrap();
    let coordinator = Node::start(NodeConfig::new("coordinator", COOKIE))
        .await
        .unwrap();
    let mut events = coordinator.subscribe();
    let _b = spawn_node("b", coordinator.addr()).await;
    let mut c = spawn_node("c", coordinator.addr()).await;
    let sieve = coordinator.remote::<Job, Done>("sieve");
    eventually("both nodes' gateways", || {
        (sieve.nodes() == ["b", "c"]).then_some(())
    })
    .await;

    const TASKS: u64 = 300;
    let limit = 20_000;
    let expected = primes_below(limit);
    let mut results = futures::stream::iter(0..TASKS)
        .map(|id| {
            let sieve = &sieve;
            async move { (id, sieve.submit(&Job { id, limit }).await) }
        })
        .buffer_unordered(16);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut killed_at = None;
    while let Some((id, result)) = results.next().await {
        match result {
            Ok(d) => {
                assert_eq!(
                    (d.id, d.primes),
                    (id, expected),
                    "task {id} computed wrongly"
                );
                done.push((d, killed_at.is_some()));
            }
            Err(e) => failed.push((id, e)),
        }
        if done.len() == 60 && killed_at.is_none() {
            c.0.start_kill().unwrap(); // SIGKILL, with tasks in flight on it
            killed_at = Some(Instant::now());
        }
    }
    c.0.wait().await.unwrap();

    // Every task is accounted for, and none was lost: b took over what c held.
    assert_eq!(done.len() + failed.len(), TASKS as usize);
    assert!(
        failed.is_empty(),
        "tasks failed although b stayed up: {failed:?}"
    );
    assert!(
        done.iter().any(|(d, _)| d.node == "c"),
        "c ran nothing before it was killed"
    );
    assert!(done.iter().any(|(d, after)| *after && d.node == "b"));
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(MembershipEvent::Down { node, .. }) = events.recv().await
                && node == "c"
            {
                return;
            }
        }
    })
    .await;
    assert!(down.is_ok(), "no membership event for c going down");
    assert_eq!(sieve.nodes(), ["b"]);

    // The same story in the metrics, counted where it happened.
    let metrics = exporter.render();
    assert!(
        metrics.contains(
            r#"apiary_remote_tasks_total{node="coordinator",agent="sieve",outcome="completed"} 300"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"apiary_cluster_peers{node="coordinator"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"apiary_remote_task_duration_seconds_count{node="coordinator",agent="sieve"} 300"#
    ));
    // The tasks travelled on task lines, one to each worker's gateway, none refused.
    for peer in ["b", "c"] {
        let opened = format!(
            r#"apiary_cluster_task_lines_total{{node="coordinator",peer="{peer}",outcome="opened"}} 1"#
        );
        assert!(metrics.contains(&opened), "{metrics}");
    }
    assert!(!metrics.contains(r#"outcome="failed""#), "{metrics}");
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_cookie_is_refused() {
    let good = Node::start(NodeConfig::new("good", COOKIE)).await.unwrap();
    let intruder = Node::start(NodeConfig::new("intruder", "not-the-cookie"))
        .await
        .unwrap();
    let err = intruder.connect(good.addr()).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Refused { peer } if peer == good.addr()),
        "{err}"
    );
    assert!(good.peers().is_empty());
    assert!(intruder.peers().is_empty());

    // A listening port in use is an error naming it.
    let err = Node::start(NodeConfig::new("twin", COOKIE).listen(good.addr()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::Listen { addr, .. } if *addr == good.addr()),
        "{err}"
    );
    good.shutdown().await;
    intruder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_an_error_event_naming_the_peer() {
    let node = Node::start(NodeConfig::new("solo", COOKIE)).await.unwrap();
    let mut events = node.subscribe();
    let swarm = sieve_swarm("solo").await;
    node.export(&swarm.agent::<Job, Done>("sieve").unwrap())
        .await
        .unwrap();
    let sieve = node.remote::<Job, Done>("sieve");
    eventually("the gateway", || (!sieve.nodes().is_empty()).then_some(())).await;
    let ok = sieve.submit(&Job { id: 1, limit: 100 }).await.unwrap();
    assert_eq!(ok.primes, 25);

    // The unit type encodes to no bytes at all: not a Job.
    let wrong = node.remote::<(), Done>("sieve");
    let err = wrong.submit(&()).await.unwrap_err();
    assert!(
        matches!(&err, RemoteError::Decode { agent, .. } if agent == "sieve"),
        "{err}"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, MembershipEvent::DecodeFailed { node, agent, .. } if node == "solo" && agent == "sieve"),
        "{event:?}"
    );
    // The gateway is still there and answers.
    assert_eq!(
        sieve
            .submit(&Job { id: 2, limit: 10 })
            .await
            .unwrap()
            .primes,
        4
    );

    let nobody = node.remote::<Job, Done>("nobody");
    assert_eq!(
        nobody.submit(&Job { id: 3, limit: 10 }).await.unwrap_err(),
        RemoteError::NoNode {
            agent: "nobody".into()
        }
    );
    node.shutdown().await;
}

/// Delegates each job to its member `sieve` through the topology.
struct Lead;

impl Agent for Lead {
    type Task = Job;
    type Output = Done;
    type Error = BoxError;

    async fn handle(&mut self, job: Job, ctx: &AgentContext<Job, Done>) -> Result<Done, BoxError> {
        Ok(ctx.agent::<Job, Done>("sieve")?.submit(job).await?.await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topology_spans_nodes_through_remote_members() {
    let here = Node::start(NodeConfig::new("here", COOKIE)).await.unwrap();
    let mut far = spawn_node("far", here.addr()).await;
    let sieve = here.remote::<Job, Done>("sieve");
    eventually("the far gateway", || {
        (sieve.nodes() == ["far"]).then_some(())
    })
    .await;

    // `lead` runs here; its member `sieve` is the far node's agent.
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("lead"), || Lead)
        .agent(AgentSpec::new("sieve").replicas(2), {
            let here = here.clone();
            move || here.remote::<Job, Done>("sieve")
        })
        .topology(apiary_hierarchical::Hierarchy::new().lead("lead", ["sieve"]))
        .start()
        .await
        .unwrap();
    let done = swarm
        .agent::<Job, Done>("lead")
        .unwrap()
        .submit(Job {
            id: 7,
            limit: 1_000,
        })
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((done.primes, done.node.as_str()), (168, "far"));

    // The far node dies: the task fails back to its submitter naming the node, the proxy
    // agent stays up (a task error, not a crash), and the swarm keeps answering.
    far.0.start_kill().unwrap();
    far.0.wait().await.unwrap();
    eventually("the far gateway to leave", || {
        sieve.nodes().is_empty().then_some(())
    })
    .await;
    let err = swarm
        .agent::<Job, Done>("sieve")
        .unwrap()
        .submit(Job { id: 8, limit: 10 })
        .await
        .unwrap()
        .await
        .unwrap_err();
    let TaskError::Agent { .. } = &err else {
        panic!("{err}")
    };
    let remote = err.agent_error::<RemoteError>().expect("a RemoteError");
    assert!(
        matches!(remote, RemoteError::NoNode { agent } if agent == "sieve"),
        "{remote}"
    );
    swarm.shutdown().await;
    here.shutdown().await;
}

async fn node(name: &str, swarm: &str) -> Node {
    Node::start(NodeConfig::new(name, COOKIE).swarm(swarm))
        .await
        .unwrap()
}

async fn export_sieve(node: &Node) -> Swarm {
    let swarm = sieve_swarm(node.name()).await;
    node.export(&swarm.agent::<Job, Done>("sieve").unwrap())
        .await
        .unwrap();
    swarm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_in_one_process_see_only_their_own_and_their_peers_agents() {
    // Three nodes of one swarm in this process: `host` exports `sieve`, `user` is connected
    // to it, `loner` to nobody (ractor's process groups are global to the process).
    let host = node("scoped-host", "default").await;
    let user = node("scoped-user", "default").await;
    let loner = node("scoped-loner", "default").await;
    let _swarm = export_sieve(&host).await;
    user.connect(host.addr()).await.unwrap();
    let sieve = user.remote::<Job, Done>("sieve");
    eventually("the host's gateway", || {
        (sieve.nodes() == ["scoped-host"]).then_some(())
    })
    .await;
    let done = sieve.submit(&Job { id: 1, limit: 100 }).await.unwrap();
    assert_eq!((done.primes, done.node.as_str()), (25, "scoped-host"));
    // No reflection of its own gateway through the peer, and nothing for the loner.
    assert_eq!(host.remote::<Job, Done>("sieve").nodes(), ["scoped-host"]);
    assert!(loner.remote::<Job, Done>("sieve").nodes().is_empty());
    assert!(matches!(
        loner
            .remote::<Job, Done>("sieve")
            .submit(&Job { id: 2, limit: 10 })
            .await,
        Err(RemoteError::NoNode { .. })
    ));

    // Shut down, the host's gateway is gone for its peer too.
    host.shutdown().await;
    eventually("the host's gateway to leave", || {
        sieve.nodes().is_empty().then_some(())
    })
    .await;
    user.shutdown().await;
    loner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swarms_in_one_cluster_never_see_each_others_agents() {
    // Two swarms, `build` and `check`, each with a node exporting an agent called `sieve` and
    // a node calling it; all four nodes connected to each other.
    let build_worker = node("build-worker", "build").await;
    let check_worker = node("check-worker", "check").await;
    let build_caller = node("build-caller", "build").await;
    let check_caller = node("check-caller", "check").await;
    let _b = export_sieve(&build_worker).await;
    let _c = export_sieve(&check_worker).await;
    let all = [&build_worker, &check_worker, &build_caller, &check_caller];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            a.connect(b.addr()).await.unwrap();
        }
    }
    for (caller, worker) in [
        (&build_caller, "build-worker"),
        (&check_caller, "check-worker"),
    ] {
        let sieve = caller.remote::<Job, Done>("sieve");
        eventually("the swarm's own gateway", || {
            (sieve.nodes() == [worker]).then_some(())
        })
        .await;
        for id in 0..20 {
            let done = sieve.submit(&Job { id, limit: 100 }).await.unwrap();
            assert_eq!(
                done.node,
                worker,
                "a task of {} ran elsewhere",
                caller.name()
            );
        }
    }
    assert_eq!(
        build_caller.peers(),
        ["build-worker", "check-caller", "check-worker"],
        "the sessions are there; only the agents are scoped"
    );
    for n in all {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_cannot_be_used_is_refused() {
    let err = Node::start(NodeConfig::new("a@b", COOKIE))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::Name { what: "node", name, .. } if name == "a@b"),
        "{err}"
    );
    let err = Node::start(NodeConfig::new("ok", COOKIE).swarm(""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::Name { what: "swarm", .. }),
        "{err}"
    );
}

/// Waits for `event` from `events`, for up to `secs` seconds.
async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<MembershipEvent>,
    secs: u64,
    event: impl Fn(&MembershipEvent) -> bool,
) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match events.recv().await {
                Ok(e) if event(&e) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("membership events ended: {e}"),
            }
        }
    })
    .await
    .is_ok()
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("the node process runs").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_is_dropped_and_rejoins_when_it_thaws() {
    // A peer that stops answering without closing its socket (SIGSTOP: what a cut network
    // looks like from here) is dropped by the heartbeat; thawed, it dials back in.
    let beat = Heartbeat {
        interval: Duration::from_millis(200),
        misses: 3,
    };
    let here = Node::start(NodeConfig::new("thaw-here", COOKIE).heartbeat(beat))
        .await
        .unwrap();
    let mut events = here.subscribe();
    let frozen = spawn_node("frozen", here.addr()).await;
    let sieve = here.remote::<Job, Done>("sieve");
    eventually("the frozen node's gateway", || {
        (sieve.nodes() == ["frozen"]).then_some(())
    })
    .await;

    signal(&frozen.0, "-STOP");
    let stopped = Instant::now();
    assert!(
        wait_for(
            &mut events,
            10,
            |e| matches!(e, MembershipEvent::Down { node, .. } if node == "frozen")
        )
        .await,
        "no Down for a peer that stopped answering"
    );
    let detected = stopped.elapsed();
    assert!(sieve.nodes().is_empty());
    assert!(matches!(
        sieve.submit(&Job { id: 1, limit: 10 }).await,
        Err(RemoteError::NoNode { .. })
    ));

    signal(&frozen.0, "-CONT");
    assert!(
        wait_for(
            &mut events,
            15,
            |e| matches!(e, MembershipEvent::Up { node, .. } if node == "frozen")
        )
        .await,
        "the thawed peer did not dial back in"
    );
    eventually("the thawed node's gateway", || {
        (sieve.nodes() == ["frozen"]).then_some(())
    })
    .await;
    let done = sieve.submit(&Job { id: 2, limit: 100 }).await.unwrap();
    assert_eq!((done.primes, done.node.as_str()), (25, "frozen"));
    // Three misses of 200 ms, and the first one's wait.
    assert!(
        detected < Duration::from_secs(3),
        "detected after {detected:?}"
    );
    here.shutdown().await;
}
