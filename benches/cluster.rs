//! A task's round trip to an agent on another node (a child process, over loopback TCP
//! through ractor_cluster) vs the same agent in a local swarm, in the same run.
//!
//!     cargo bench --features cluster --bench cluster
//!
//! The child is this bench binary again, started with `APIARY_BENCH_WORKER_PEER` set.

mod baseline;

use std::{io::BufRead, process::Stdio, time::Duration};

use apiary::cluster::{Node, NodeConfig};
use apiary::prelude::*;
use criterion::{criterion_group, Criterion, Throughput};

const COOKIE: &str = "apiary-bench";
const PEER_VAR: &str = "APIARY_BENCH_WORKER_PEER";

async fn echo_swarm() -> Swarm {
    Swarm::builder()
        .agent(AgentSpec::new("echo").queue_capacity(1024), || {
            baseline::Adder
        })
        .start()
        .await
        .unwrap()
}

/// The child: a node exporting `echo`, connected to the bench's node.
fn worker(peer: &str) {
    baseline::runtime().block_on(async {
        let node = Node::start(NodeConfig::new("worker", COOKIE))
            .await
            .unwrap();
        let swarm = echo_swarm().await;
        node.export(&swarm.agent::<u64, u64>("echo").unwrap())
            .await
            .unwrap();
        node.connect(peer.parse().unwrap()).await.unwrap();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(c: &mut Criterion) {
    let rt = baseline::runtime();
    let node = rt
        .block_on(Node::start(NodeConfig::new("bench", COOKIE)))
        .unwrap();
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .env(PEER_VAR, node.addr().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let ready = std::io::BufReader::new(stdout).lines().next();
    assert!(
        matches!(ready, Some(Ok(ref l)) if l == "ready"),
        "worker failed: {ready:?}"
    );
    let remote = &node.remote::<u64, u64>("echo");
    rt.block_on(async {
        while remote.nodes() != ["worker"] {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let local_swarm = rt.block_on(echo_swarm());
    let local = &local_swarm.agent::<u64, u64>("echo").unwrap();

    let mut group = c.benchmark_group("cluster_round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("local_agent", |b| {
        b.to_async(&rt)
            .iter(|| async { local.submit(41).await.unwrap().await.unwrap() })
    });
    group.bench_function("remote_agent_loopback", |b| {
        b.to_async(&rt)
            .iter(|| async { remote.submit(&41).await.unwrap() })
    });
    group.finish();

    // 64 in flight at once: what pipelining over one session gives.
    let mut group = c.benchmark_group("cluster_64_in_flight");
    group.throughput(Throughput::Elements(64));
    group.bench_function("local_agent", |b| {
        b.to_async(&rt).iter(|| async {
            let handles = futures::future::join_all((0..64).map(|n| local.submit(n))).await;
            futures::future::join_all(handles.into_iter().map(Result::unwrap)).await
        })
    });
    group.bench_function("remote_agent_loopback", |b| {
        b.to_async(&rt).iter(|| {
            futures::future::join_all(
                (0..64u64).map(|n| async move { remote.submit(&n).await.unwrap() }),
            )
        })
    });
    group.finish();
    drop(child);
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(peer) = std::env::var(PEER_VAR) {
        worker(&peer);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
