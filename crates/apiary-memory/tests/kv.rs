//! Key/value semantics: namespaces, prefix and glob listing, TTL on tokio's paused clock.

use std::time::Duration;

use apiary_memory::{Memory, MemoryConfig, MemoryError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Design {
    topology: String,
    agents: u32,
}

async fn memory() -> Memory {
    Memory::open(MemoryConfig::new(8)).await.unwrap()
}

#[tokio::test]
async fn put_get_delete_round_trip_serde_values() {
    let m = memory().await;
    let design = Design {
        topology: "ring".into(),
        agents: 5,
    };
    m.put("swarm/phase1/design", &design).await.unwrap();
    assert_eq!(
        m.get::<Design>("swarm/phase1/design").await.unwrap(),
        Some(design)
    );
    m.put(
        "swarm/phase1/design",
        &Design {
            topology: "mesh".into(),
            agents: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        m.get::<Design>("swarm/phase1/design")
            .await
            .unwrap()
            .unwrap()
            .topology,
        "mesh"
    );
    assert!(m.delete("swarm/phase1/design").await.unwrap());
    assert!(!m.delete("swarm/phase1/design").await.unwrap());
    assert_eq!(m.get::<Design>("swarm/phase1/design").await.unwrap(), None);
    m.close().await;
}

#[tokio::test]
async fn prefix_and_glob_listing() {
    let m = memory().await;
    for key in [
        "swarm/phase1/design",
        "swarm/phase1/review",
        "swarm/phase2/design",
        "swarmy/x",
        "other/a",
    ] {
        m.put(key, &1u8).await.unwrap();
    }
    assert_eq!(
        m.list("swarm/phase1/").await.unwrap(),
        ["swarm/phase1/design", "swarm/phase1/review"]
    );
    // A bare prefix is a plain string prefix across namespaces.
    assert_eq!(m.list("swarm").await.unwrap().len(), 4);
    assert_eq!(
        m.glob("swarm/*/design").await.unwrap(),
        ["swarm/phase1/design", "swarm/phase2/design"]
    );
    // `*` stays within a segment; `**` crosses them.
    assert_eq!(m.glob("swarm/*").await.unwrap(), Vec::<String>::new());
    assert_eq!(m.glob("swarm/**").await.unwrap().len(), 3);
    assert_eq!(m.glob("*/a").await.unwrap(), ["other/a"]);
    m.close().await;
}

#[tokio::test]
async fn bad_keys_globs_types_and_namespaces_are_named() {
    let m = Memory::open(MemoryConfig::new(8).namespace("declared"))
        .await
        .unwrap();
    for key in ["nonamespace", "/x", "ns/", "a//b"] {
        match m.put(key, &1u8).await {
            Err(MemoryError::InvalidKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    let err = m.list("nosuch/").await.unwrap_err();
    assert!(
        matches!(&err, MemoryError::UnknownNamespace { namespace } if namespace == "nosuch"),
        "{err}"
    );
    assert!(err.to_string().contains("nosuch"));
    assert!(m.glob("nosuch/*").await.is_err());
    // Declared namespaces exist before any write.
    assert_eq!(m.list("declared/").await.unwrap(), Vec::<String>::new());
    let err = m.glob("x/[").await.unwrap_err();
    assert!(matches!(err, MemoryError::InvalidGlob { .. }), "{err}");

    m.put("declared/n", &"a string").await.unwrap();
    let err = m.get::<Design>("declared/n").await.unwrap_err();
    assert!(
        matches!(&err, MemoryError::Decode { key, .. } if key == "declared/n"),
        "{err}"
    );
    m.close().await;
}

#[tokio::test(start_paused = true)]
async fn ttl_hides_then_reclaims_expired_keys() {
    let m = memory().await;
    m.put_with_ttl("cache/a", &1u32, Duration::from_secs(10))
        .await
        .unwrap();
    m.put_with_ttl("cache/b", &2u32, Duration::from_secs(30))
        .await
        .unwrap();
    m.put("cache/keep", &3u32).await.unwrap();

    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(m.get::<u32>("cache/a").await.unwrap(), Some(1));

    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(m.get::<u32>("cache/a").await.unwrap(), None);
    assert_eq!(m.list("cache/").await.unwrap(), ["cache/b", "cache/keep"]);
    // The sweep at t=10s removed the entry itself, not only hid it.
    assert_eq!(m.stats().await.unwrap().keys, 2);

    // Rewriting with a new TTL moves the expiry.
    m.put_with_ttl("cache/b", &4u32, Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(m.get::<u32>("cache/b").await.unwrap(), Some(4));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(m.get::<u32>("cache/b").await.unwrap(), None);
    assert!(!m.delete("cache/b").await.unwrap());
    assert_eq!(m.stats().await.unwrap().keys, 1);
    m.close().await;
}
