//! A task's round trip to an agent on another node (a child process, over loopback TCP:
//! found through ractor_cluster, called over a task line) vs the same agent in a local
//! swarm, and vs the floor: a plain request/reply of 8 bytes over one loopback socket to the
//! same child process (tokio on both ends, as the nodes), all in the same run.
//!
//!     cargo bench --features cluster --bench cluster
//!
//! The child is this bench binary again, started with `APIARY_BENCH_WORKER_PEER` set.

mod baseline;

use std::{io::BufRead, net::SocketAddr, process::Stdio, time::Duration};

use apiary::cluster::{Node, NodeConfig};
use apiary::prelude::*;
use criterion::{criterion_group, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
        // The floor's other end: echoes whatever arrives on each connection.
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ready {}", echo.local_addr().unwrap());
        loop {
            let (mut tcp, _) = echo.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tcp.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// `rounds` of [`echo_round_trip`], timed together.
async fn echo_rounds(tcp: &mut TcpStream, n: usize, rounds: u64) -> Duration {
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        echo_round_trip(tcp, n).await;
    }
    started.elapsed()
}

/// Sends `n` 8-byte requests in one write and reads the `n` echoed replies.
async fn echo_round_trip(tcp: &mut TcpStream, n: usize) {
    let out: Vec<u8> = (0..n as u64).flat_map(u64::to_le_bytes).collect();
    tcp.write_all(&out).await.unwrap();
    let mut back = vec![0u8; out.len()];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(back, out);
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
    let echo: SocketAddr = match ready {
        Some(Ok(ref l)) if l.starts_with("ready ") => l["ready ".len()..].parse().unwrap(),
        _ => panic!("worker failed: {ready:?}"),
    };
    let mut tcp = rt.block_on(async {
        let tcp = TcpStream::connect(echo).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp
    });
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
    group.bench_function("floor_tcp_echo_loopback", |b| {
        b.iter_custom(|iters| rt.block_on(echo_rounds(&mut tcp, 1, iters)))
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
    // The floor of pipelining: 64 requests in one write, 64 replies read back.
    group.bench_function("floor_tcp_echo_loopback", |b| {
        b.iter_custom(|iters| rt.block_on(echo_rounds(&mut tcp, 64, iters)))
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
