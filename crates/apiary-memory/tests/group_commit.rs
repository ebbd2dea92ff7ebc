//! Group commit: concurrent writers share transactions (and fsyncs), every acknowledged write
//! is on disk, and writes in flight together still apply in the order they were sent.

mod common;

use std::{path::Path, time::Duration};

use apiary_memory::{IndexConfig, Memory, MemoryConfig, Pattern, Query};
use common::{base, key, DIM};
use futures::{future::join_all, StreamExt as _};

fn config(dir: &Path) -> MemoryConfig {
    MemoryConfig::new(DIM).persist_to(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_every_ack_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let m = Memory::open(config(dir.path())).await.unwrap();
    const N: u64 = 2_000;
    futures::stream::iter(0..N)
        .map(|i| {
            let m = m.clone();
            async move { m.put(&format!("notes/n{i}"), &i).await.unwrap() }
        })
        .buffer_unordered(200)
        .collect::<()>()
        .await;
    // Every tenth note deleted, again by many writers at once.
    let deleted: Vec<bool> = futures::stream::iter((0..N).step_by(10))
        .map(|i| {
            let m = m.clone();
            async move { m.delete(&format!("notes/n{i}")).await.unwrap() }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert!(deleted.iter().all(|d| *d));

    let stats = m.stats().await.unwrap();
    assert_eq!(stats.durable_writes, N + N / 10, "{stats:?}");
    assert!(
        stats.commits * 2 < stats.durable_writes,
        "200 writers at once should share transactions: {} writes in {} commits",
        stats.durable_writes,
        stats.commits
    );
    m.close().await;

    let m = Memory::open(config(dir.path())).await.unwrap();
    for i in 0..N {
        let expected = (i % 10 != 0).then_some(i);
        assert_eq!(
            m.get::<u64>(&format!("notes/n{i}")).await.unwrap(),
            expected
        );
    }
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_together_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = Memory::open(config(dir.path())).await.unwrap();
    let base = base();
    // join_all polls in order, so the actor receives these in order, all before the first
    // is stored: each is computed against the ones still in flight.
    let (puts, deleted) = futures::join!(
        join_all([
            m.put("plan/step", &1u32),
            m.put("plan/step", &2u32),
            m.put("plan/other", &7u32),
        ]),
        m.delete("plan/step"),
    );
    assert!(puts.iter().all(Result::is_ok));
    assert!(
        deleted.unwrap(),
        "the delete sees the puts in flight before it"
    );
    m.put("plan/step", &3u32).await.unwrap();

    let (added, removed, removed_again, readded) = futures::join!(
        m.add_patterns(vec![
            Pattern::vector("lessons/a", base[0].clone()),
            Pattern::vector("lessons/b", base[1].clone()),
        ]),
        m.remove_pattern("lessons/a"),
        m.remove_pattern("lessons/a"),
        m.add_pattern(Pattern::vector("lessons/a", base[2].clone())),
    );
    added.unwrap();
    assert!(removed.unwrap(), "removes the pattern added just before");
    assert!(
        !removed_again.unwrap(),
        "already removed by the write before it"
    );
    readded.unwrap();

    let target = base[2].clone();
    let check = |m: Memory| {
        let target = target.clone();
        async move {
            assert_eq!(m.get::<u32>("plan/step").await.unwrap(), Some(3));
            assert_eq!(m.get::<u32>("plan/other").await.unwrap(), Some(7));
            let stats = m.stats().await.unwrap();
            assert_eq!((stats.patterns, stats.index.indexed), (2, 2), "{stats:?}");
            let hits = m.search(Query::vector(target, 2)).await.unwrap();
            assert_eq!(hits[0].key, "lessons/a");
            assert!((hits[0].score - 1.0).abs() < 1e-4);
            m.close().await;
        }
    };
    check(m).await;
    // The same after a restart: no ghost of the removed or replaced pattern on disk.
    check(Memory::open(config(dir.path())).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_sweep_keeps_a_key_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let m = Memory::open(config(dir.path())).await.unwrap();
    const N: usize = 200;
    for i in 0..N {
        m.put_with_ttl(&format!("lease/l{i}"), &0u8, Duration::from_millis(20))
            .await
            .unwrap();
    }
    // Written again without a TTL while the sweep of the first writes is due or in flight.
    let rewrites = (0..N).map(|i| {
        let m = m.clone();
        async move {
            tokio::time::sleep(Duration::from_millis((i % 40) as u64)).await;
            m.put(&format!("lease/l{i}"), &1u8).await.unwrap();
        }
    });
    join_all(rewrites).await;
    // Let any sweep still scheduled run (the TTL was 20 ms; the rewrites ended after it).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = m.stats().await.unwrap();
    assert_eq!(stats.keys, N, "{stats:?}");
    m.close().await;

    let m = Memory::open(config(dir.path())).await.unwrap();
    for i in 0..N {
        assert_eq!(
            m.get::<u8>(&format!("lease/l{i}")).await.unwrap(),
            Some(1),
            "lease/l{i}"
        );
    }
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_snapshot_taken_with_writes_in_flight_indexes_each_once() {
    // Compact mode on disk trains on a store snapshot, which can hold writes committed but
    // not yet applied by the actor: those must reach the new index once, not twice.
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        MemoryConfig::new(DIM).persist_to(dir.path()).index(
            IndexConfig::default()
                .train_threshold(2_000)
                .compact(10)
                .tune_queries(100),
        )
    };
    let m = Memory::open(config()).await.unwrap();
    let base = base();
    const N: usize = 3_000;
    futures::stream::iter(0..N)
        .map(|i| {
            let (m, v) = (m.clone(), base[i].clone());
            async move { m.add_pattern(Pattern::vector(key(i), v)).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
    let stats = m.settle().await.unwrap();
    assert!(stats.index.trainings >= 1, "{stats:?}");
    assert_eq!((stats.patterns, stats.index.indexed), (N, N), "{stats:?}");
    for i in (0..N).step_by(97) {
        let hits = m.search(Query::vector(base[i].clone(), 1)).await.unwrap();
        assert_eq!(hits[0].key, key(i));
    }
    m.close().await;
    let m = Memory::open(config()).await.unwrap();
    let stats = m.settle().await.unwrap();
    assert_eq!((stats.patterns, stats.index.indexed), (N, N), "{stats:?}");
    m.close().await;
}
