//! Journaled tasks against plain ones, 1,000 in flight, in the same run, with the disk's own
//! fsync rate measured beside them so the figures read against the physical limit.
//!
//! Run: `cargo bench --features journal --bench journal`

use std::time::{Duration, Instant};

use apiary::journal::{Journal, JournalConfig};
use apiary::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod baseline;
use baseline::{fsyncs_per_second, runtime, Adder};

const IN_FLIGHT: u64 = 1000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn journal(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let fsyncs = fsyncs_per_second(dir.path(), 500);
    eprintln!(
        "journal: this disk does {fsyncs:.0} fsyncs/s (64-byte write + fdatasync, 500 times)"
    );

    let journal = rt
        .block_on(Journal::open(
            JournalConfig::new(dir.path(), "bench").keep_finished(100_000),
        ))
        .unwrap();
    let swarm = rt
        .block_on(
            Swarm::builder()
                .resource(journal.clone())
                .agent(AgentSpec::new("adder").queue_capacity(4096), || Adder)
                .start(),
        )
        .unwrap();
    let plain = swarm.agent::<u64, u64>("adder").unwrap();
    let journaled = journal.agent::<u64, u64>(&swarm, "adder").unwrap();

    // Acknowledgement latency (submit until durable) with 1,000 in flight.
    let mut acks: Vec<Duration> = rt.block_on(async {
        let mut acks = Vec::new();
        for _ in 0..20 {
            let submissions = (0..IN_FLIGHT).map(|i| {
                let journaled = journaled.clone();
                async move {
                    let started = Instant::now();
                    let handle = journaled.submit(i).await.unwrap();
                    (started.elapsed(), handle)
                }
            });
            for (ack, handle) in futures::future::join_all(submissions).await {
                acks.push(ack);
                handle.await.unwrap();
            }
        }
        acks
    });
    acks.sort();
    eprintln!(
        "journal: acknowledgement with {IN_FLIGHT} in flight: p50 {:?}, p99 {:?} ({} submissions)",
        percentile(&acks, 0.5),
        percentile(&acks, 0.99),
        acks.len()
    );

    let mut group = c.benchmark_group("journal/in_flight");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_with_input(BenchmarkId::new("plain", IN_FLIGHT), &IN_FLIGHT, |b, &n| {
        b.to_async(&rt).iter(|| async {
            let mut handles = Vec::with_capacity(n as usize);
            for i in 0..n {
                handles.push(plain.submit(i).await.unwrap());
            }
            futures::future::join_all(handles).await
        })
    });
    group.bench_with_input(
        BenchmarkId::new("journaled", IN_FLIGHT),
        &IN_FLIGHT,
        |b, &n| {
            b.to_async(&rt).iter(|| async {
                // Durable before each submission returns, and each outcome before its handle.
                let submissions = (0..n).map(|i| journaled.submit(i));
                let handles = futures::future::join_all(submissions).await;
                futures::future::join_all(handles.into_iter().map(Result::unwrap)).await
            })
        },
    );
    group.finish();
    let stats = journal.stats();
    eprintln!(
        "journal: {} records in {} transactions ({:.1} records per fsync'd transaction; a journaled task is two records, its submission and its outcome)",
        stats.records,
        stats.transactions,
        stats.records as f64 / stats.transactions.max(1) as f64
    );
    rt.block_on(swarm.shutdown());
}

criterion_group!(benches, journal);
criterion_main!(benches);
