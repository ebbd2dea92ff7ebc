//! The race a training on a store snapshot can meet: writes committed but not yet applied
//! are inside the snapshot, and must reach the new index once, whether they are applied
//! while the training runs or after its index is swapped in.

use crate::{IndexConfig, Memory, MemoryConfig, Pattern, Query};

fn vector(i: usize) -> Vec<f32> {
    // Distinct directions: one-hot-ish rows with a little of every component.
    (0..32)
        .map(|d| {
            if d == i % 32 {
                1.0
            } else {
                0.01 * ((i * 7 + d) % 13) as f32
            }
        })
        .collect()
}

fn patterns(rows: std::ops::Range<usize>) -> Vec<Pattern> {
    rows.map(|i| Pattern::vector(format!("p/{i}"), vector(i)))
        .collect()
}

/// A memory in compact mode on disk (so trainings read a store snapshot) holding 60 patterns.
async fn memory(dir: &std::path::Path) -> Memory {
    let config = MemoryConfig::new(32).persist_to(dir).index(
        IndexConfig::default()
            .factory("Flat")
            .compact(2)
            .train_threshold(1_000),
    );
    let m = Memory::open(config).await.unwrap();
    m.add_patterns(patterns(0..60)).await.unwrap();
    m
}

async fn check(m: &Memory) {
    let stats = m.settle().await.unwrap();
    assert_eq!(stats.index.trainings, 1, "{stats:?}");
    assert_eq!(
        (stats.patterns, stats.index.indexed),
        (110, 110),
        "{stats:?}"
    );
    let hits = m.search(Query::vector(vector(70), 3)).await.unwrap();
    assert_eq!(hits[0].key, "p/70");
    assert_ne!(hits[1].key, "p/70", "indexed twice: {hits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_while_training_they_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let m = memory(dir.path()).await;
    m.train_mid_commit(patterns(60..110), false).await.unwrap();
    check(&m).await;
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_after_the_swap_they_are_not_added_again() {
    let dir = tempfile::tempdir().unwrap();
    let m = memory(dir.path()).await;
    let add = tokio::spawn({
        let m = m.clone();
        async move { m.train_mid_commit(patterns(60..110), true).await }
    });
    // Once the training has started (the message was handled), let it finish and swap in,
    // then apply the held writes.
    loop {
        let index = m.stats().await.unwrap().index;
        if index.training || index.trainings > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let swapped = m.settle().await.unwrap();
    assert_eq!(
        swapped.patterns, 60,
        "held writes not applied yet: {swapped:?}"
    );
    m.release();
    add.await.unwrap().unwrap();
    check(&m).await;
    m.close().await;
}

#[test]
fn a_batch_keeps_the_last_pattern_of_each_key_with_its_row() {
    use super::{super::NewPatterns, keep_last_of_each_key};
    use crate::patterns::PatternInfo;
    let info = |key: &str| PatternInfo {
        key: key.into(),
        metadata: Default::default(),
    };
    let mut batch = NewPatterns {
        infos: vec![
            info("n/a"),
            info("n/b"),
            info("n/a"),
            info("n/c"),
            info("n/b"),
        ],
        vectors: (1..=5).map(|x| vec![x as f32; 2]).collect(),
    };
    keep_last_of_each_key(&mut batch);
    let keys: Vec<&str> = batch.infos.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["n/a", "n/c", "n/b"]);
    assert_eq!(batch.vectors, [[3.0; 2], [4.0; 2], [5.0; 2]]);
}
