//! The memory sharded over two node processes: searches scatter to both shards and merge the
//! top k exactly; pattern writes land on one shard by key; a dead shard is reported.

use std::time::Duration;

mod common;

use apiary_cluster::{Node, NodeConfig};
use apiary_memory::{IndexConfig, Memory, MemoryConfig, Pattern, Query};

const COOKIE: &str = "apiary-shard-cookie";
const DIM: usize = 384;

/// The committed slice of real embeddings (tests/data at the workspace root).
fn read_f16(name: &str) -> Vec<Vec<f32>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name);
    let bytes = std::fs::read(path).unwrap();
    let flat: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    flat.chunks_exact(DIM).map(<[f32]>::to_vec).collect()
}

fn ground_truth() -> Vec<Vec<u32>> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/minilm384_gt.u32");
    let bytes = std::fs::read(path).unwrap();
    let flat: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    flat.chunks_exact(100).map(<[u32]>::to_vec).collect()
}

/// An exact memory holding base rows `rows`.
async fn shard(rows: std::ops::Range<usize>) -> Memory {
    let memory = Memory::open(
        MemoryConfig::new(DIM).index(IndexConfig::default().train_threshold(1_000_000)),
    )
    .await
    .unwrap();
    let base = read_f16("minilm384_base.f16");
    let patterns = rows
        .map(|i| Pattern::vector(format!("corpus/s{i:05}"), base[i].clone()))
        .collect();
    memory.add_patterns(patterns).await.unwrap();
    memory
}

/// The child: a node whose memory shard holds the second half of the slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "node process of memory_shards_on_two_processes_search_as_one"]
async fn shard_process() {
    let Ok(peer) = std::env::var("APIARY_SHARD_PEER") else {
        return;
    };
    let node = Node::start(NodeConfig::new("shard-b", COOKIE))
        .await
        .unwrap();
    let memory = shard(2_500..5_000).await;
    node.export_memory(&memory).await.unwrap();
    node.connect(peer.parse().unwrap()).await.unwrap();
    println!("ready shard-b");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_shards_on_two_processes_search_as_one() {
    let node = Node::start(NodeConfig::new("shard-a", COOKIE))
        .await
        .unwrap();
    let memory = shard(0..2_500).await;
    node.export_memory(&memory).await.unwrap();
    let mut child = common::start(
        "shard_process",
        &[("APIARY_SHARD_PEER", node.addr().to_string())],
        "ready shard-b",
    )
    .await;
    let sharded = node.sharded_memory();
    while sharded.nodes() != ["shard-a", "shard-b"] {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Both shards are exact: the merged top 10 is exactly the slice's ground truth.
    let gt = ground_truth();
    for (q, truth) in read_f16("minilm384_query.f16")
        .into_iter()
        .zip(&gt)
        .take(50)
    {
        let found = sharded.search(Query::vector(q, 10)).await;
        assert_eq!((found.answered, found.failed.len()), (2, 0));
        let mut rows: Vec<u32> = found
            .hits
            .iter()
            .map(|h| h.key[8..].parse().unwrap())
            .collect();
        let mut expected = truth[..10].to_vec();
        rows.sort_unstable();
        expected.sort_unstable();
        assert_eq!(rows, expected);
    }

    // Writes go to one shard per key, spread over both, and are found from here.
    let base = read_f16("minilm384_base.f16");
    let mut homes = Vec::new();
    for (i, row) in base.iter().enumerate().take(20) {
        let v: Vec<f32> = row.iter().map(|x| -x).collect();
        homes.push(
            sharded
                .add_pattern(Pattern::vector(format!("mirror/m{i}"), v))
                .await
                .unwrap(),
        );
    }
    assert!(
        homes.contains(&"shard-a".to_owned()) && homes.contains(&"shard-b".to_owned()),
        "{homes:?}"
    );
    let v: Vec<f32> = base[3].iter().map(|x| -x).collect();
    let found = sharded
        .search(Query::vector(v, 1).namespace("mirror"))
        .await;
    assert_eq!(found.hits[0].key, "mirror/m3");

    // A shard that dies is reported (or already gone from the group), never waited on forever.
    child.0.start_kill().unwrap();
    child.0.wait().await.unwrap();
    let found = sharded.search(Query::vector(base[0].clone(), 5)).await;
    assert_eq!(found.answered, 1, "{found:?}");
    assert!(found.failed.iter().all(|(node, _)| node == "shard-b"));
    assert_eq!(found.hits[0].key, "corpus/s00000");
    node.shutdown().await;
}
