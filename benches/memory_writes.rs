//! Durable memory writes: acknowledged `put`s per second through the memory actor, one writer
//! at a time and many at once, against the disk's own fsync rate and redb committing one
//! transaction per write, all in the same run.
//!
//! Run: `cargo bench --features memory --bench memory_writes`

use std::time::Duration;

use apiary::memory::{Memory, MemoryConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt as _;

mod baseline;
use baseline::{fsyncs_per_second, runtime};

const KV: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");

/// A value the size of a short note an agent keeps.
fn note(i: u64) -> String {
    format!("note {i}: the linker needs -lopenblas when lapack is static")
}

/// Puts `n` notes with `in_flight` writers at once, each acknowledged only once durable.
async fn put_all(memory: &Memory, round: u64, n: u64, in_flight: usize) {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let key = format!("notes/{}", round * n + i);
            memory.put(&key, &note(i)).await.unwrap();
        })
        .buffer_unordered(in_flight)
        .collect::<()>()
        .await;
}

fn memory_writes(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let fsyncs = fsyncs_per_second(dir.path(), 500);
    eprintln!(
        "memory_writes: this disk does {fsyncs:.0} fsyncs/s (64-byte write + fdatasync, 500 times)"
    );

    let mut group = c.benchmark_group("memory_writes");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(10);
    const N: u64 = 1000;
    group.throughput(Throughput::Elements(N));

    // The floor of the old design: redb itself, one durable transaction per write.
    let db = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let mut next = 0u64;
    group.bench_function("redb_txn_per_write", |b| {
        b.iter(|| {
            for i in 0..N {
                let txn = db.begin_write().unwrap();
                {
                    let mut t = txn.open_table(KV).unwrap();
                    let key = format!("notes/{next}");
                    t.insert(key.as_str(), note(i).as_bytes()).unwrap();
                }
                txn.commit().unwrap();
                next += 1;
            }
        })
    });
    drop(db);

    let memory = rt
        .block_on(Memory::open(
            MemoryConfig::new(8).persist_to(dir.path().join("memory")),
        ))
        .unwrap();
    for in_flight in [1usize, 64, 1000] {
        let mut round = 0u64;
        group.bench_with_input(
            BenchmarkId::new("memory_put", in_flight),
            &in_flight,
            |b, &in_flight| {
                b.to_async(&rt).iter(|| {
                    round += 1;
                    put_all(&memory, round + 1_000_000 * in_flight as u64, N, in_flight)
                })
            },
        );
    }
    group.finish();
    let stats = rt.block_on(memory.stats()).unwrap();
    eprintln!(
        "memory_writes: {} durable writes in {} commits ({:.1} writes per fsync'd transaction)",
        stats.durable_writes,
        stats.commits,
        stats.durable_writes as f64 / stats.commits.max(1) as f64
    );
    rt.block_on(memory.close());
}

criterion_group!(benches, memory_writes);
criterion_main!(benches);
