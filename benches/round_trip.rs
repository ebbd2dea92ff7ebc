//! A task's round trip through apiary (a typed `AgentRef`) against a raw ractor `call` to an
//! equivalent actor, in the same run: one at a time (latency) and 1,000 in flight
//! (throughput).
//!
//! On a shared machine the two criterion groups can run under different load, so the bench
//! also prints a paired figure first: rounds of 1,000 in flight, raw and apiary alternating,
//! and the median of the per-pair throughput ratios.
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
    paired(&rt, &raw, &adder);

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

/// Alternates raw and apiary rounds of 1,000 in flight, and prints the median ratio of their
/// throughputs (apiary / raw) over the pairs: each pair ran under the same load.
fn paired(
    rt: &tokio::runtime::Runtime,
    raw: &ractor::ActorRef<baseline::RawMsg>,
    adder: &apiary::AgentRef<u64, u64>,
) {
    const PAIRS: usize = 200;
    const N: u64 = 1000;
    let mut ratios = Vec::with_capacity(PAIRS);
    rt.block_on(async {
        for round in 0..PAIRS + 5 {
            let started = std::time::Instant::now();
            futures::future::join_all((0..N).map(|i| raw_call(raw, i))).await;
            let raw_took = started.elapsed();
            let started = std::time::Instant::now();
            let mut handles = Vec::with_capacity(N as usize);
            for i in 0..N {
                handles.push(adder.submit(i).await.unwrap());
            }
            futures::future::join_all(handles).await;
            let apiary_took = started.elapsed();
            // The first rounds warm both up.
            if round >= 5 {
                ratios.push(raw_took.as_secs_f64() / apiary_took.as_secs_f64());
            }
        }
    });
    ratios.sort_by(f64::total_cmp);
    eprintln!(
        "round_trip/in_flight paired: apiary / raw throughput, median of {PAIRS} alternating \
         rounds of {N}: {:.2} (quartiles {:.2} .. {:.2})",
        ratios[PAIRS / 2],
        ratios[PAIRS / 4],
        ratios[3 * PAIRS / 4]
    );
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
