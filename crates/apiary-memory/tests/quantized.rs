//! The exact -> quantized lifecycle on 5,000 real embeddings: background training, tuned
//! recall, changes made during training, removal from IVF lists, compact mode.

mod common;

use apiary_memory::{IndexConfig, Memory, MemoryConfig, MemoryError, Pattern, Query, TunedOn};
use common::{base, ground_truth, key, queries, row, DIM};

/// recall@10 of the memory on the slice's 100 queries against the exact ground truth.
async fn recall_at_10(m: &Memory) -> f64 {
    recall_on(m, 0..queries().len()).await
}

fn corpus(rows: std::ops::Range<usize>) -> Vec<Pattern> {
    let base = base();
    rows.map(|i| Pattern::vector(key(i), base[i].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trains_in_the_background_and_reaches_target_recall() {
    let config = IndexConfig::default().train_threshold(4_000);
    let m = Memory::open(MemoryConfig::new(DIM).index(config))
        .await
        .unwrap();
    m.add_patterns(corpus(0..3_999)).await.unwrap();
    assert_eq!(m.stats().await.unwrap().index.factory, "Flat");

    // The 4,000th pattern starts the training; the exact index keeps answering meanwhile.
    m.add_patterns(corpus(3_999..4_000)).await.unwrap();
    let during = m.stats().await.unwrap();
    assert!(during.index.training, "{during:?}");
    let q = queries()[0].clone();
    let exact_answer = m.search(Query::vector(q.clone(), 10)).await.unwrap();
    assert_eq!(exact_answer.len(), 10);
    // Patterns added and removed while training are carried over to the new index.
    m.add_patterns(corpus(4_000..5_000)).await.unwrap();
    assert!(m.remove_pattern(&key(4_500)).await.unwrap());

    let stats = m.settle().await.unwrap();
    // The default: fast-scan codes over sqrt(4,000) lists, re-scored exactly.
    assert_eq!(stats.index.factory, "IVF63,PQ192x4fs", "{stats:?}");
    assert_eq!(stats.index.indexed, 4_999);
    let (param, value) = stats.index.param.clone().unwrap();
    assert_eq!(param, "nprobe");
    assert!((1..=63).contains(&value));
    let tuned = stats.index.recall.unwrap();
    assert!(tuned >= 0.95, "tuning measured {tuned}");

    // Measured independently on held-out queries against the committed exact ground truth
    // (which includes row 4,500, removed above: at most one miss per query that had it).
    let recall = recall_at_10(&m).await;
    assert!(recall >= 0.93, "recall@10 = {recall}");

    // Removal from the IVF lists: the pattern is gone and the index shrank.
    let top = m
        .search(Query::vector(base()[123].clone(), 1))
        .await
        .unwrap();
    assert_eq!(top[0].key, key(123));
    assert!(m.remove_pattern(&key(123)).await.unwrap());
    let after = m
        .search(Query::vector(base()[123].clone(), 10))
        .await
        .unwrap();
    assert!(after.iter().all(|h| h.key != key(123)));
    assert_eq!(m.stats().await.unwrap().index.indexed, 4_998);
    m.close().await;
}

/// recall@10 on `queries` (indexes into the slice's queries) against the ground truth.
async fn recall_on(m: &Memory, which: std::ops::Range<usize>) -> f64 {
    let (all, gt) = (queries(), ground_truth());
    let mut hits = 0;
    for i in which.clone() {
        let found = m.search(Query::vector(all[i].clone(), 10)).await.unwrap();
        hits += found
            .iter()
            .filter(|h| gt[i][..10].contains(&row(&h.key)))
            .count();
    }
    hits as f64 / (which.len() * 10) as f64
}

/// The ring of recent queries: a training tunes on it once it is full, and `retune` tunes
/// the live index on it again; recall holds on queries neither saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunes_on_the_queries_it_serves() {
    let config = IndexConfig::default()
        .train_threshold(5_000)
        .query_ring(50)
        .retune_every(None);
    let m = Memory::open(MemoryConfig::new(DIM).index(config))
        .await
        .unwrap();
    m.add_patterns(corpus(0..4_000)).await.unwrap();
    let exact = m.retune().await.unwrap_err();
    assert!(
        matches!(&exact, MemoryError::CannotRetune { reason } if reason.contains("exact")),
        "{exact}"
    );
    // 50 queries fill the ring while the index is exact; the training tunes on them.
    recall_on(&m, 0..50).await;
    m.add_patterns(corpus(4_000..5_000)).await.unwrap();
    let trained = m.settle().await.unwrap();
    assert_eq!(
        trained.index.tuned_on,
        Some(TunedOn::RecentQueries { queries: 50 }),
        "{trained:?}"
    );
    assert!(trained.index.recall.unwrap() >= 0.95, "{trained:?}");

    // Traffic moves on: the next 50 queries replace them, and a re-tuning measures on those.
    recall_on(&m, 50..100).await;
    let retuned = m.retune().await.unwrap();
    assert_eq!(
        retuned.index.tuned_on,
        Some(TunedOn::RecentQueries { queries: 50 })
    );
    let tuned = retuned.index.recall.unwrap();
    assert!(tuned >= 0.95, "re-tuning measured {tuned}");
    assert!(retuned.index.param.is_some());
    // Unseen by the second tuning: the first 50 queries (50 queries: a standard error of
    // about 0.015).
    let unseen = recall_on(&m, 0..50).await;
    assert!(
        unseen >= 0.92,
        "recall@10 on queries the tuning did not see: {unseen}"
    );
    m.close().await;

    // Without a ring, trainings tune on held-out vectors, and there is nothing to re-tune on.
    let config = IndexConfig::default().train_threshold(5_000).query_ring(0);
    let m = Memory::open(MemoryConfig::new(DIM).index(config))
        .await
        .unwrap();
    m.add_patterns(corpus(0..5_000)).await.unwrap();
    let stats = m.settle().await.unwrap();
    assert_eq!(
        stats.index.tuned_on,
        Some(TunedOn::HeldOut { queries: 500 })
    );
    recall_on(&m, 0..10).await;
    let none = m.retune().await.unwrap_err();
    assert!(matches!(none, MemoryError::CannotRetune { .. }), "{none}");
    m.close().await;
}

/// Every index family the memory offers, trained on 5,000 vectors: recall on the 100 queries
/// the index never saw, and removal (indexes that cannot remove skip removed ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_index_family_reaches_its_target_on_unseen_queries() {
    for (factory, compact) in [
        (None, None),
        (Some("IVF{nlist},SQ8"), None),
        (Some("HNSW32"), None),
        (None, Some(10)),
    ] {
        let mut config = IndexConfig::default().train_threshold(5_000);
        if let Some(f) = factory {
            config = config.factory(f);
        }
        if let Some(r) = compact {
            config = config.compact(r);
        }
        let m = Memory::open(MemoryConfig::new(DIM).index(config))
            .await
            .unwrap();
        m.add_patterns(corpus(0..5_000)).await.unwrap();
        let stats = m.settle().await.unwrap();
        let name = &stats.index.factory;
        assert_ne!(name, "Flat", "{stats:?}");
        let tuned = stats.index.recall.unwrap();
        assert!(tuned >= 0.95, "{name}: tuning measured {tuned}");
        // 100 queries: a standard error of about 0.01 around the true recall.
        let recall = recall_at_10(&m).await;
        assert!(
            recall >= 0.93,
            "{name}: recall@10 on unseen queries {recall}"
        );
        eprintln!(
            "{name} {:?}: tuned {tuned:.3}, unseen queries {recall:.3}",
            stats.index.param
        );

        for i in [7, 1_234, 4_321] {
            assert!(m.remove_pattern(&key(i)).await.unwrap());
            let hits = m
                .search(Query::vector(base()[i].clone(), 10))
                .await
                .unwrap();
            assert_eq!(hits.len(), 10, "{name}");
            assert!(hits.iter().all(|h| h.key != key(i)), "{name}: {i} removed");
        }
        assert_eq!(m.stats().await.unwrap().index.indexed, 4_997, "{name}");
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_mode_reranks_pq_candidates_exactly() {
    // Tuning aims a little above the 0.9 asserted on held-out queries: its own sample
    // measures recall with some noise.
    let config = IndexConfig::default()
        .train_threshold(5_000)
        .compact(10)
        .target_recall(0.92);
    let m = Memory::open(MemoryConfig::new(DIM).index(config))
        .await
        .unwrap();
    m.add_patterns(corpus(0..5_000)).await.unwrap();
    let stats = m.settle().await.unwrap();
    assert_eq!(stats.index.factory, "IVF128,PQ48np", "{stats:?}");
    let recall = recall_at_10(&m).await;
    assert!(recall >= 0.9, "recall@10 = {recall}");
    // Scores are exact cosines (re-ranked from stored vectors): a stored vector scores 1.
    let top = m
        .search(Query::vector(base()[42].clone(), 1))
        .await
        .unwrap();
    assert_eq!(top[0].key, key(42));
    assert!((top[0].score - 1.0).abs() < 1e-4, "{}", top[0].score);
    // Without a directory the exact vectors have nowhere to live but RAM.
    // Each row, its id (8 bytes) and its slot in the dense array of positions (4).
    assert_eq!(stats.vector_bytes, 5_000 * (DIM * 4 + 8 + 4));
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_mode_on_disk_reads_exact_vectors_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        MemoryConfig::new(DIM).persist_to(dir.path()).index(
            IndexConfig::default()
                .train_threshold(4_000)
                .compact(10)
                .target_recall(0.92),
        )
    };
    let m = Memory::open(config()).await.unwrap();
    m.add_patterns(corpus(0..4_000)).await.unwrap();
    assert!(m.stats().await.unwrap().index.training);
    // Written while the training reads its snapshot from the store: replayed from the store.
    let tagged: Vec<Pattern> = corpus(4_000..5_000)
        .into_iter()
        .enumerate()
        .map(|(i, p)| if i < 3 { p.meta("tag", "rare") } else { p })
        .collect();
    m.add_patterns(tagged).await.unwrap();
    assert!(m.remove_pattern(&key(4_500)).await.unwrap());

    let stats = m.settle().await.unwrap();
    assert!(stats.index.factory.ends_with(",PQ48np"), "{stats:?}");
    assert_eq!(stats.index.indexed, 4_999);
    assert_eq!(stats.vector_bytes, 0, "no exact vectors in RAM: {stats:?}");
    let recall = recall_at_10(&m).await;
    assert!(recall >= 0.9, "recall@10 = {recall}");
    let top = m
        .search(Query::vector(base()[4_001].clone(), 1))
        .await
        .unwrap();
    assert_eq!(top[0].key, key(4_001));
    assert!((top[0].score - 1.0).abs() < 1e-4, "{}", top[0].score);
    // A filter matching 3 of 4,999 falls back to exact scoring, reading from the store.
    let rare = m
        .search(Query::vector(base()[4_002].clone(), 3).filter("tag", "rare"))
        .await
        .unwrap();
    let keys: Vec<&str> = rare.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(keys[0], key(4_002));
    assert_eq!(rare.len(), 3, "{keys:?}");
    let (a, b) = (&base()[4_000], &base()[4_002]);
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    let exact = dot(a, b) / (dot(a, a) * dot(b, b)).sqrt();
    let scored = rare.iter().find(|h| h.key == key(4_000)).unwrap().score;
    assert!((scored - exact).abs() < 1e-3, "{scored} vs {exact}");
    m.close().await;

    // Reopened: the saved codes are loaded; the vectors are still read from disk.
    let m = Memory::open(config()).await.unwrap();
    let stats = m.stats().await.unwrap();
    assert_eq!(stats.vector_bytes, 0);
    assert_eq!(stats.index.indexed, 4_999);
    let recall_again = recall_at_10(&m).await;
    assert_eq!(recall_again, recall);
    m.close().await;

    // Without the saved index, the exact index is rebuilt from the store's vectors (and the
    // quantized one retrained in the background); they still do not stay in RAM.
    std::fs::remove_file(dir.path().join("patterns.faiss")).unwrap();
    let m = Memory::open(config()).await.unwrap();
    let stats = m.stats().await.unwrap();
    assert!(
        matches!(
            stats.index.origin,
            apiary_memory::IndexOrigin::Rebuilt { .. }
        ),
        "{stats:?}"
    );
    assert_eq!(stats.vector_bytes, 0);
    let top = m.search(Query::vector(base()[7].clone(), 1)).await.unwrap();
    assert_eq!(top[0].key, key(7));
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_factory_string_is_accepted() {
    // HNSW cannot remove: removed patterns are filtered out of its results instead.
    let config = IndexConfig::default()
        .train_threshold(2_000)
        .factory("HNSW16");
    let m = Memory::open(MemoryConfig::new(DIM).index(config))
        .await
        .unwrap();
    m.add_patterns(corpus(0..2_000)).await.unwrap();
    let stats = m.settle().await.unwrap();
    assert_eq!(stats.index.factory, "HNSW16", "{stats:?}");
    assert_eq!(stats.index.param.as_ref().unwrap().0, "efSearch");
    assert!(m.remove_pattern(&key(5)).await.unwrap());
    let hits = m.search(Query::vector(base()[5].clone(), 5)).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.key != key(5)));
    m.close().await;
}
