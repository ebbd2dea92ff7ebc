//! The committed slice of real all-MiniLM-L6-v2 sentence embeddings (tests/data at the
//! workspace root): 5,000 base vectors, 100 queries, exact top-100 neighbours in the slice.
#![allow(dead_code)]

use std::path::PathBuf;

pub(crate) const DIM: usize = 384;
pub(crate) const GT_K: usize = 100;

pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn read_f16(name: &str) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(data_dir().join(name)).expect("tests/data is committed");
    let flat: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    flat.chunks_exact(DIM).map(<[f32]>::to_vec).collect()
}

pub(crate) fn base() -> Vec<Vec<f32>> {
    read_f16("minilm384_base.f16")
}

pub(crate) fn queries() -> Vec<Vec<f32>> {
    read_f16("minilm384_query.f16")
}

/// Row ids of the exact top-100 neighbours of each query, best first.
pub(crate) fn ground_truth() -> Vec<Vec<u32>> {
    let bytes = std::fs::read(data_dir().join("minilm384_gt.u32")).unwrap();
    let flat: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    flat.chunks_exact(GT_K).map(<[u32]>::to_vec).collect()
}

/// Pattern key of base row `i`.
pub(crate) fn key(i: usize) -> String {
    format!("corpus/s{i:05}")
}

/// Base row of a pattern key.
pub(crate) fn row(key: &str) -> u32 {
    key.trim_start_matches("corpus/s").parse().unwrap()
}
