//! A task's round trip through apiary (a typed `AgentRef`) against a raw ractor `call` to an
//! equivalent actor, in the same run: one at a time (latency) and 1,000 in flight
//! (throughput).
//!
//! Run: `cargo bench --bench round_trip`

use std::time::Duration;

use apiary::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ractor::Actor;

mod baseline;
use baseline::{raw_call, runtime, Adder, RawAdder};

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let (raw, _) = rt.block_on(Actor::spawn(None, RawAdder, ())).unwrap();
    let swarm = rt
        .block_on(
            Swarm::builder()
                .agent(AgentSpec::new("adder").queue_capacity(4096), || Adder)
                .start(),
        )
        .unwrap();
    let adder = swarm.agent::<u64, u64>("adder").unwrap();

    let mut group = c.benchmark_group("round_trip/sequential");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_ractor_call", |b| {
        b.to_async(&rt).iter(|| async { raw_call(&raw, 1).await })
    });
    group.bench_function("apiary_agent_ref", |b| {
        b.to_async(&rt)
            .iter(|| async { adder.submit(1).await.unwrap().await.unwrap() })
    });
    group.finish();

    const IN_FLIGHT: u64 = 1000;
    let mut group = c.benchmark_group("round_trip/in_flight");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_with_input(
        BenchmarkId::new("raw_ractor_call", IN_FLIGHT),
        &IN_FLIGHT,
        |b, &n| {
            b.to_async(&rt).iter(|| async {
                let calls = (0..n).map(|i| raw_call(&raw, i));
                futures::future::join_all(calls).await
            })
        },
    );
    group.bench_with_input(
        BenchmarkId::new("apiary_agent_ref", IN_FLIGHT),
        &IN_FLIGHT,
        |b, &n| {
            b.to_async(&rt).iter(|| async {
                let mut handles = Vec::with_capacity(n as usize);
                for i in 0..n {
                    handles.push(adder.submit(i).await.unwrap());
                }
                futures::future::join_all(handles).await
            })
        },
    );
    group.finish();

    rt.block_on(swarm.shutdown());
    raw.stop(None);
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
