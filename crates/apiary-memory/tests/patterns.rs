//! Pattern add / search / remove on real sentence embeddings, and every bad input.

mod common;

use apiary_memory::{IndexConfig, Memory, MemoryConfig, MemoryError, Pattern, Query};
use common::{base, key, queries, row, DIM};

async fn exact_memory(rows: usize) -> Memory {
    // A threshold above the collection keeps the index exact.
    let m = Memory::open(
        MemoryConfig::new(DIM).index(IndexConfig::default().train_threshold(1_000_000)),
    )
    .await
    .unwrap();
    let patterns = base()
        .into_iter()
        .take(rows)
        .enumerate()
        .map(|(i, v)| {
            Pattern::vector(key(i), v).meta("parity", if i % 2 == 0 { "even" } else { "odd" })
        })
        .collect();
    m.add_patterns(patterns).await.unwrap();
    m
}

fn exact_top(base: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut scored: Vec<(f32, u32)> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u32))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[tokio::test]
async fn exact_search_matches_brute_force_and_filters_hold() {
    let m = exact_memory(2_000).await;
    assert_eq!(m.pattern_count().await.unwrap(), 2_000);
    let base: Vec<_> = base().into_iter().take(2_000).collect();
    for q in queries().iter().take(10) {
        let hits = m.search(Query::vector(q.clone(), 10)).await.unwrap();
        let got: Vec<u32> = hits.iter().map(|h| row(&h.key)).collect();
        assert_eq!(got, exact_top(&base, q, 10, |_| true));
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

        // A metadata filter returns the best *matching* patterns, k of them.
        let odd = m
            .search(Query::vector(q.clone(), 10).filter("parity", "odd"))
            .await
            .unwrap();
        let got: Vec<u32> = odd.iter().map(|h| row(&h.key)).collect();
        assert_eq!(got, exact_top(&base, q, 10, |i| i % 2 == 1));
        assert!(odd.iter().all(|h| h.metadata["parity"] == "odd"));
    }
    m.close().await;
}

#[tokio::test]
async fn remove_and_replace_patterns() {
    let m = exact_memory(500).await;
    let q = base()[7].clone();
    let top = m.search(Query::vector(q.clone(), 1)).await.unwrap();
    assert_eq!(top[0].key, key(7));
    assert!((top[0].score - 1.0).abs() < 1e-4);

    assert!(m.remove_pattern(&key(7)).await.unwrap());
    assert!(!m.remove_pattern(&key(7)).await.unwrap());
    let hits = m.search(Query::vector(q.clone(), 500)).await.unwrap();
    assert_eq!(hits.len(), 499);
    assert!(hits.iter().all(|h| h.key != key(7)));

    // Re-adding a key replaces its vector: the old one is never returned.
    m.add_pattern(Pattern::vector(key(8), q.clone()).meta("v", "2"))
        .await
        .unwrap();
    let hits = m
        .search(Query::vector(base()[8].clone(), 500))
        .await
        .unwrap();
    assert_eq!(hits.iter().filter(|h| h.key == key(8)).count(), 1);
    let top = m.search(Query::vector(q, 1)).await.unwrap();
    assert_eq!(
        (top[0].key.as_str(), top[0].metadata["v"].as_str()),
        (key(8).as_str(), "2")
    );
    assert_eq!(m.pattern_count().await.unwrap(), 499);
    m.close().await;
}

#[tokio::test]
async fn namespaces_scope_searches() {
    let m = Memory::open(MemoryConfig::new(64)).await.unwrap();
    m.add_patterns(vec![
        Pattern::text("lessons/linker", "link FAISS against openblas and lapack"),
        Pattern::text("notes/linker", "the linker wants lapack and openblas"),
        Pattern::text("lessons/flaky", "retry the flaky network test twice"),
    ])
    .await
    .unwrap();
    let hits = m
        .search(Query::text("openblas lapack", 3).namespace("notes"))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, "notes/linker");
    let hits = m
        .search(Query::text("openblas lapack", 1).namespace("lessons"))
        .await
        .unwrap();
    assert_eq!(hits[0].key, "lessons/linker");
    m.close().await;
}

#[tokio::test]
async fn bad_inputs_are_refused_with_the_culprit_named() {
    let m = Memory::open(MemoryConfig::new(4)).await.unwrap();
    m.add_pattern(Pattern::vector("ns/a", vec![1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();

    let err = m
        .add_pattern(Pattern::vector("ns/short", vec![1.0; 3]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Dimension {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ns/short"), "{err}");

    let err = m
        .add_pattern(Pattern::vector("ns/nan", vec![1.0, f32::NAN, 0.0, 0.0]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MemoryError::NotFinite { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ns/nan"), "{err}");

    let err = m
        .add_pattern(Pattern::vector("ns/zero", vec![0.0; 4]))
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::ZeroVector { .. }), "{err}");

    let err = m.search(Query::vector(vec![1.0; 4], 0)).await.unwrap_err();
    assert!(matches!(err, MemoryError::ZeroK), "{err}");

    let err = m.search(Query::vector(vec![1.0; 5], 1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Dimension {
                expected: 4,
                got: 5,
                ..
            }
        ),
        "{err}"
    );

    let err = m
        .search(Query::vector(vec![f32::INFINITY, 0.0, 0.0, 0.0], 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MemoryError::NotFinite { index: 0, .. }),
        "{err}"
    );

    let err = m
        .search(Query::vector(vec![1.0; 4], 1).namespace("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MemoryError::UnknownNamespace { namespace } if namespace == "nope"),
        "{err}"
    );

    let err = m.search(Query::text("   ", 1)).await.unwrap_err();
    assert!(matches!(err, MemoryError::Embed(_)), "{err}");

    let err = m
        .add_pattern(Pattern::vector("bare", vec![1.0; 4]))
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::InvalidKey { .. }), "{err}");

    // A batch with one bad pattern stores none of it.
    let err = m
        .add_patterns(vec![
            Pattern::vector("ns/ok", vec![0.0, 1.0, 0.0, 0.0]),
            Pattern::vector("ns/bad", vec![1.0]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Dimension { .. }));
    assert_eq!(m.pattern_count().await.unwrap(), 1);
    m.close().await;

    assert!(matches!(
        m.get::<u8>("ns/a").await,
        Err(MemoryError::Closed)
    ));
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let err = Memory::open(
        MemoryConfig::new(384).index(IndexConfig::default().factory("IVF{nlist},NOPE")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Config {
                field: "factory",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("NOPE"), "{err}");
    let err = Memory::open(MemoryConfig::new(8).embedder(apiary_memory::HashingEmbedder::new(16)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Config {
                field: "embedder",
                ..
            }
        ),
        "{err}"
    );
    let err = Memory::open(MemoryConfig::new(8).index(IndexConfig::default().target_recall(1.5)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Config {
                field: "target_recall",
                ..
            }
        ),
        "{err}"
    );
}
