//! The `minilm384` dataset (`../shared/data` in this workplace): 100,000 all-MiniLM-L6-v2
//! sentence embeddings, 1,000 queries the base never saw, and each query's exact top 100.
//! Benches find it through `APIARY_DATA_DIR` and say they are skipped without it.
#![allow(dead_code, unreachable_pub)] // each bench uses the part it needs

use std::path::{Path, PathBuf};

use apiary::memory::{Memory, Pattern};

/// Floats per vector.
pub const DIM: usize = 384;
/// Ground-truth ids per query.
pub const GT_K: usize = 100;

/// The whole set, decoded to f32 (the ground truth was computed in f32).
pub struct Data {
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    pub gt: Vec<Vec<u32>>,
}

/// `APIARY_DATA_DIR`, if it holds the set.
pub fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("APIARY_DATA_DIR")?);
    dir.join("minilm384_base.f16").exists().then_some(dir)
}

/// Prints why a bench did nothing.
pub fn skipped(bench: &str) {
    eprintln!(
        "{bench} bench SKIPPED: set APIARY_DATA_DIR to the directory with minilm384_base.f16, \
         minilm384_query.f16 and minilm384_gt.u32 (the full 100k set; e.g. ../shared/data)"
    );
}

/// Little-endian f16 rows of `DIM` floats, as f32.
pub fn read_f16(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let flat: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    flat.chunks_exact(DIM).map(<[f32]>::to_vec).collect()
}

/// Reads the base vectors, the queries and the ground truth.
pub fn load(dir: &Path) -> Data {
    let gt_bytes = std::fs::read(dir.join("minilm384_gt.u32")).unwrap();
    let gt: Vec<u32> = gt_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Data {
        base: read_f16(&dir.join("minilm384_base.f16")),
        queries: read_f16(&dir.join("minilm384_query.f16")),
        gt: gt.chunks_exact(GT_K).map(<[u32]>::to_vec).collect(),
    }
}

impl Data {
    /// recall@10 of `found[q]` (base rows, best first) against the ground truth.
    pub fn recall_at_10(&self, found: &[Vec<u32>]) -> f64 {
        let hits: usize = found
            .iter()
            .zip(&self.gt)
            .map(|(f, truth)| {
                f.iter()
                    .take(10)
                    .filter(|id| truth[..10].contains(id))
                    .count()
            })
            .sum();
        hits as f64 / (found.len() * 10) as f64
    }

    /// Takes the first `n` queries (and their ground truth) out of the set.
    pub fn take_queries(&mut self, n: usize) -> Vec<Vec<f32>> {
        self.gt.drain(..n);
        self.queries.drain(..n).collect()
    }

    /// The base as one row-major slice of unit vectors: what a memory stores (its vectors
    /// are normalised for cosine; the f16 file's rows are off unit length by up to ~1e-3).
    pub fn flat_base_normalised(&self) -> Vec<f32> {
        self.base
            .iter()
            .flat_map(|v| {
                let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                v.iter().map(move |x| (f64::from(*x) / norm) as f32)
            })
            .collect()
    }
}

/// The memory key of base row `i`.
pub fn key(i: usize) -> String {
    format!("corpus/s{i:06}")
}

/// The base row a key names.
pub fn row(key: &str) -> u32 {
    key.trim_start_matches("corpus/s").parse().unwrap()
}

/// Adds every base vector to `memory` in batches of 10,000 and waits for its training.
pub async fn fill(memory: &Memory, data: &Data) -> apiary::memory::MemoryStats {
    for (chunk_no, chunk) in data.base.chunks(10_000).enumerate() {
        let patterns = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Pattern::vector(key(chunk_no * 10_000 + i), v.clone()))
            .collect();
        memory.add_patterns(patterns).await.unwrap();
    }
    memory.settle().await.unwrap()
}
