//! Topologies against raw ractor in the same run: task round-trip throughput through
//! `Swarm::route` for mesh, star and ring (1,000 in flight), ring per-hop latency, and a mesh
//! broadcast to 64 agents.
//!
//! Run: `cargo bench --bench topologies`

use std::time::Duration;

use apiary::prelude::*;
use apiary::topology::{Mesh, Ring, Star};
use apiary::{BoxError, Topology};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ractor::Actor;

mod baseline;
use baseline::{raw_call, runtime, RawAdder};

/// Adds one; with `hops > 0`, forwards to its successor first (for the ring).
#[derive(Clone)]
enum Msg {
    Add(u64),
    /// Go round the ring this many more hops, each agent awaiting its successor.
    Hop(u32),
    /// Go round the ring this many more hops, each agent handing the task on.
    Pass(u32),
    Broadcast,
}

struct Node;

impl Agent for Node {
    type Task = Msg;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, msg: Msg, ctx: &AgentContext<Msg, u64>) -> Result<u64, BoxError> {
        match msg {
            Msg::Add(n) => Ok(n + 1),
            Msg::Hop(0) | Msg::Pass(0) => Ok(0),
            Msg::Hop(h) => Ok(ctx
                .forward::<Msg, u64>(Msg::Hop(h - 1))
                .await
                .map_err(|e| e.to_string())?
                .await?
                + 1),
            Msg::Pass(h) => {
                let next = ctx.successor::<Msg, u64>()?;
                Err(ctx
                    .hand_off(&next, Msg::Pass(h - 1))
                    .await
                    .to_string()
                    .into())
            }
            Msg::Broadcast => {
                let mut n = 0;
                for (_, sent) in ctx.broadcast::<Msg, u64>(Msg::Add(1)).await {
                    n += sent.map_err(|e| e.to_string())?.await?;
                }
                Ok(n)
            }
        }
    }
}

async fn swarm_of(n: usize, topology: impl Topology) -> Swarm {
    let mut b = Swarm::builder().topology(topology).queue_capacity(4096);
    for i in 0..n {
        b = b.agent(AgentSpec::new(format!("n{i}")), || Node);
    }
    b.start().await.unwrap()
}

fn topologies(c: &mut Criterion) {
    let rt = runtime();
    let (raw, _) = rt.block_on(Actor::spawn(None, RawAdder, ())).unwrap();
    let mesh = rt.block_on(swarm_of(4, Mesh));
    let star = rt.block_on(swarm_of(4, Star::new("n0")));
    let ring = rt.block_on(swarm_of(8, Ring::new()));

    const IN_FLIGHT: u64 = 1000;
    let mut group = c.benchmark_group("route_round_trip_1000");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_function("raw_ractor_call", |b| {
        b.to_async(&rt).iter(|| async {
            futures::future::join_all((0..IN_FLIGHT).map(|i| raw_call(&raw, i))).await
        })
    });
    for (name, swarm) in [("mesh", &mesh), ("star", &star), ("ring", &ring)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut handles = Vec::with_capacity(IN_FLIGHT as usize);
                for i in 0..IN_FLIGHT {
                    handles.push(swarm.route::<Msg, u64>(Msg::Add(i)).await.unwrap());
                }
                futures::future::join_all(handles).await
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("ring_hops");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw_ractor_call", |b| {
        b.to_async(&rt).iter(|| raw_call(&raw, 1))
    });
    for hops in [0u32, 7] {
        group.bench_with_input(BenchmarkId::new("ring_await", hops), &hops, |b, &h| {
            b.to_async(&rt).iter(|| async {
                ring.route::<Msg, u64>(Msg::Hop(h))
                    .await
                    .unwrap()
                    .await
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("ring_hand_off", hops), &hops, |b, &h| {
            b.to_async(&rt).iter(|| async {
                ring.route::<Msg, u64>(Msg::Pass(h))
                    .await
                    .unwrap()
                    .await
                    .unwrap()
            })
        });
    }
    group.finish();

    let wide = rt.block_on(swarm_of(64, Mesh));
    let raws: Vec<_> = (0..63)
        .map(|_| rt.block_on(Actor::spawn(None, RawAdder, ())).unwrap().0)
        .collect();
    let n0 = wide.agent::<Msg, u64>("n0").unwrap();
    let mut group = c.benchmark_group("broadcast_63_peers");
    group.bench_function("raw_ractor_calls", |b| {
        b.to_async(&rt)
            .iter(|| async { futures::future::join_all(raws.iter().map(|a| raw_call(a, 1))).await })
    });
    group.bench_function("mesh_broadcast", |b| {
        b.to_async(&rt)
            .iter(|| async { n0.submit(Msg::Broadcast).await.unwrap().await.unwrap() })
    });
    group.finish();

    for s in [mesh, star, ring, wide] {
        rt.block_on(s.shutdown());
    }
}

criterion_group!(benches, topologies);
criterion_main!(benches);
