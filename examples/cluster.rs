//! A swarm on two nodes on one machine: the `worker` node hosts a `sieve` agent and exports
//! it; the `driver` node runs a `lead` agent that delegates to `sieve` through a hierarchical
//! topology, the member living on the other node. Commands in docs/cluster.md:
//!
//!     cargo run --features cluster --example cluster -- worker 127.0.0.1:7101
//!     cargo run --features cluster --example cluster -- driver 127.0.0.1:7101

use std::time::Instant;

use apiary::cluster::{Node, NodeConfig};
use apiary::prelude::*;
use apiary::topology::Hierarchy;
use apiary::BoxError;
use serde::{Deserialize, Serialize};

const COOKIE: &str = "apiary-example";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Count {
    below: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counted {
    below: u64,
    primes: u64,
    node: String,
    micros: u64,
}

/// Counts primes by trial division: real work, done where the agent lives.
struct Sieve {
    node: String,
}

impl Agent for Sieve {
    type Task = Count;
    type Output = Counted;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        task: Count,
        _ctx: &AgentContext<Count, Counted>,
    ) -> Result<Counted, Self::Error> {
        let started = Instant::now();
        let primes = (2..task.below)
            .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
            .count() as u64;
        Ok(Counted {
            below: task.below,
            primes,
            node: self.node.clone(),
            micros: started.elapsed().as_micros() as u64,
        })
    }
}

/// Splits nothing, decides nothing: hands each count to its member and passes the answer up.
struct Lead;

impl Agent for Lead {
    type Task = Count;
    type Output = Counted;
    type Error = BoxError;

    async fn handle(&mut self, task: Count, ctx: &Ctx<Self>) -> Result<Counted, BoxError> {
        // The member `sieve` lives on another node; the lead hands the task on to it.
        let sieve = ctx.agent::<Count, Counted>("sieve")?;
        Err(ctx.hand_off(&sieve, task).await.into())
    }
}

async fn worker(listen: std::net::SocketAddr) -> Result<(), BoxError> {
    let node = Node::start(NodeConfig::new("worker", COOKIE).listen(listen)).await?;
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("sieve").replicas(2), || Sieve {
            node: "worker".into(),
        })
        .start()
        .await?;
    node.export(&swarm.agent::<Count, Counted>("sieve")?)
        .await?;
    println!(
        "worker: listening on {}, exporting `sieve`; Ctrl-C to stop",
        node.addr()
    );
    let mut events = node.subscribe();
    loop {
        tokio::select! {
            Ok(event) = events.recv() => println!("worker: {event:?}"),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    swarm.shutdown().await;
    node.shutdown().await;
    Ok(())
}

async fn driver(peer: std::net::SocketAddr) -> Result<(), BoxError> {
    let node = Node::start(NodeConfig::new("driver", COOKIE)).await?;
    let peer_name = node.connect(peer).await?;
    println!("driver: connected to `{peer_name}` at {peer}");
    let sieve = node.remote::<Count, Counted>("sieve");
    // Process groups sync right after the handshake; wait until the worker's gateway shows.
    while sieve.nodes().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("lead"), || Lead)
        .agent(AgentSpec::new("sieve").replicas(2), {
            let node = node.clone();
            move || node.remote::<Count, Counted>("sieve")
        })
        .topology(Hierarchy::new().lead("lead", ["sieve"]))
        .start()
        .await?;
    let lead = swarm.agent::<Count, Counted>("lead")?;
    for below in [10_000, 100_000, 1_000_000] {
        let started = Instant::now();
        let counted = lead.submit(Count { below }).await?.await?;
        println!(
            "driver: {} primes below {} counted on `{}` in {} µs ({} µs round trip from here)",
            counted.primes,
            counted.below,
            counted.node,
            counted.micros,
            started.elapsed().as_micros()
        );
    }
    swarm.shutdown().await;
    node.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = |i: usize| -> Result<std::net::SocketAddr, BoxError> {
        Ok(args
            .get(i)
            .map_or("127.0.0.1:7101", String::as_str)
            .parse()?)
    };
    match args.first().map(String::as_str) {
        Some("worker") => worker(addr(1)?).await,
        Some("driver") => driver(addr(1)?).await,
        _ => Err(
            "usage: cluster (worker [LISTEN] | driver [WORKER_ADDR]); see docs/cluster.md".into(),
        ),
    }
}
