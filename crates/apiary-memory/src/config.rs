//! How a memory is set up: dimension, directory, embedder and index policy.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use crate::{Embedder, HashingEmbedder, MemoryError};

/// Settings for [`Memory::open`](crate::Memory::open).
///
/// ```
/// use apiary_memory::{IndexConfig, MemoryConfig};
///
/// let config = MemoryConfig::new(384)
///     .namespace("results")
///     .index(IndexConfig::default().train_threshold(20_000).target_recall(0.97));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct MemoryConfig {
    pub(crate) dim: usize,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) store_cache: usize,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) index: IndexConfig,
    pub(crate) namespaces: Vec<String>,
}

impl fmt::Debug for MemoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConfig")
            .field("dim", &self.dim)
            .field("dir", &self.dir)
            .field("store_cache", &self.store_cache)
            .field("embedder_dim", &self.embedder.dim())
            .field("index", &self.index)
            .field("namespaces", &self.namespaces)
            .finish()
    }
}

impl MemoryConfig {
    /// An in-memory store for `dim`-dimensional patterns, embedding text with a
    /// [`HashingEmbedder`] of the same dimension.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            dir: None,
            store_cache: 8 << 20,
            embedder: Arc::new(HashingEmbedder::new(dim)),
            index: IndexConfig::default(),
            namespaces: Vec::new(),
        }
    }

    /// Keeps everything in `dir` (created if missing): a crash-safe redb database for keys and
    /// pattern vectors, and the trained FAISS index beside it. Writes are acknowledged only
    /// once on disk.
    pub fn persist_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The most RAM the on-disk store may use to cache its pages (default 8 MiB). Keys and
    /// values are held in RAM by the memory itself, so the cache serves only writes and the
    /// vectors compact mode reads back; redb's own default, 1 GiB, would hold a large
    /// collection's vectors in RAM again. Reads beyond it go to the operating system's page
    /// cache: on 100k vectors, 8 MiB instead of 64 MiB cut a reopened compact memory's RSS
    /// from 200 MB to 46 MB and cost its searches about 8% (`benches/memory.rs`).
    pub fn store_cache(mut self, bytes: usize) -> Self {
        self.store_cache = bytes;
        self
    }

    /// Embeds text with `embedder`; its dimension must equal the memory's.
    pub fn embedder(mut self, embedder: impl Embedder) -> Self {
        self.embedder = Arc::new(embedder);
        self
    }

    /// Declares a namespace up front, so listing or searching it works before anything is
    /// stored in it. Namespaces also come into being with their first write.
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespaces.push(name.into());
        self
    }

    /// The pattern index policy.
    pub fn index(mut self, index: IndexConfig) -> Self {
        self.index = index;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), MemoryError> {
        let bad = |field, reason: String| Err(MemoryError::Config { field, reason });
        if self.dim == 0 {
            return bad("dim", "must be at least 1".into());
        }
        if self.embedder.dim() != self.dim {
            return bad(
                "embedder",
                format!(
                    "embeds into {} dimensions, the memory has {}",
                    self.embedder.dim(),
                    self.dim
                ),
            );
        }
        if let Some(ns) = self
            .namespaces
            .iter()
            .find(|n| n.is_empty() || n.contains('/'))
        {
            return bad(
                "namespace",
                format!("{ns:?} must be non-empty and contain no '/'"),
            );
        }
        self.index.validate(self.dim)
    }
}

/// When and how the pattern index turns from exact into quantized.
///
/// Below `train_threshold` patterns the index is exact (FAISS `Flat`, inner product on unit
/// vectors). Past it, the quantized index (`factory`) is trained on a sample on a blocking
/// thread while the exact index keeps answering, then swapped in; its search parameter
/// (`nprobe` for IVF, `efSearch` for HNSW) is set to the smallest value whose recall@10
/// against exact search reaches `target_recall` with 95% confidence, judged from the spread
/// of recall between the queries it was measured on. Those are the most recent queries
/// searched, once the [`query_ring`](Self::query_ring) is full; before that, vectors held
/// out of the collection, which are easier queries than real ones. The memory re-tunes the
/// live index on the ring every [`retune_every`](Self::retune_every) once the ring has been
/// renewed, and on [`Memory::retune`](crate::Memory::retune).
/// [`IndexStats`](crate::IndexStats) reports the recall measured and what it was measured
/// on. The collection is retrained when it grows `retrain_growth` times past the size it
/// was trained at, or when removed vectors an index cannot drop pass a tenth of it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    pub(crate) factory: Option<String>,
    pub(crate) train_threshold: usize,
    pub(crate) target_recall: f64,
    pub(crate) compact: Option<usize>,
    pub(crate) tune_queries: usize,
    pub(crate) retrain_growth: f64,
    pub(crate) query_ring: usize,
    pub(crate) retune_every: Option<Duration>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            factory: None,
            train_threshold: 10_000,
            target_recall: 0.95,
            compact: None,
            tune_queries: 2_000,
            retrain_growth: 4.0,
            query_ring: 1_000,
            retune_every: Some(Duration::from_secs(600)),
        }
    }
}

impl IndexConfig {
    /// A FAISS `index_factory` string, e.g. `IVF1024,SQ8`, `IVF316,PQ192x4fs`, `HNSW32`.
    /// `{nlist}` is replaced by a list count chosen from the collection size (4·√n) and
    /// `{sqrt_n}` by √n.
    ///
    /// The default is `IVF{sqrt_n},PQ{d/2}x4fs`: product-quantization codes of 4 bits per
    /// pair of dimensions scanned with FAISS's SIMD fast-scan kernels, the candidates then
    /// re-scored exactly from the full-precision vectors. On 100k real sentence embeddings it
    /// was the fastest family at recall@10 0.95 (`benches/memory_search.rs`, results in
    /// `docs/benchmarks.md`), ahead of HNSW32 and far ahead of IVF-SQ8. In compact mode the
    /// default is `IVF{nlist},PQ{d/8}np`, whose codes are four times smaller.
    ///
    /// Indexes that cannot remove vectors (fast-scan, HNSW) keep removed ones until the next
    /// training; searches fetch that many extra candidates and skip them.
    pub fn factory(mut self, factory: impl Into<String>) -> Self {
        self.factory = Some(factory.into());
        self
    }

    /// Patterns needed before the quantized index is trained (default 10,000).
    pub fn train_threshold(mut self, n: usize) -> Self {
        self.train_threshold = n;
        self
    }

    /// Recall@10 against exact search that tuning aims for (default 0.95).
    pub fn target_recall(mut self, recall: f64) -> Self {
        self.target_recall = recall;
        self
    }

    /// Compact mode for large collections: the index keeps only product-quantization codes,
    /// and each search re-ranks `rerank × k` candidates exactly from the stored vectors.
    ///
    /// With a directory ([`MemoryConfig::persist_to`]) the full-precision vectors are not
    /// kept in RAM at all: re-ranking, training and filtered searches read them from the
    /// store, so once the index is trained RAM holds only its codes (about `d/8` bytes a
    /// vector, plus ids). Without
    /// one, they stay in RAM, there being nowhere else.
    pub fn compact(mut self, rerank: usize) -> Self {
        self.compact = Some(rerank);
        self
    }

    /// Vectors held out of the collection to measure recall on while tuning (default 2,000,
    /// at most a tenth of the collection). More narrow the confidence margin tuning keeps
    /// above the target, so the parameter lands closer to the smallest that reaches it on
    /// new queries; each costs one exact search at training.
    pub fn tune_queries(mut self, n: usize) -> Self {
        self.tune_queries = n;
        self
    }

    /// Recent queries kept to tune on (default 1,000; 0 keeps none). Once the ring is full,
    /// trainings and re-tunings measure recall on these queries, the traffic the index
    /// actually serves, instead of on held-out vectors of the collection, which are easier:
    /// on 100k MiniLM vectors a target met on held-out vectors was missed by up to 0.011 on
    /// the dataset's own queries. Recording costs a copy of the query per search.
    pub fn query_ring(mut self, queries: usize) -> Self {
        self.query_ring = queries;
        self
    }

    /// How often the memory checks whether to re-tune the search parameter on the recent
    /// queries (default every 10 minutes; `None`: only on [`Memory::retune`] and at
    /// trainings). It re-tunes when the ring is full and every query in it arrived after the
    /// last tuning. A re-tuning runs on a blocking thread: one exact search per ring query
    /// over the collection, then a few passes of the ring over a copy of the index.
    ///
    /// [`Memory::retune`]: crate::Memory::retune
    pub fn retune_every(mut self, every: Option<Duration>) -> Self {
        self.retune_every = every;
        self
    }

    /// Retrain once the collection is this many times the size it was trained at (default 4).
    pub fn retrain_growth(mut self, factor: f64) -> Self {
        self.retrain_growth = factor;
        self
    }

    /// The factory string for a collection of `n` vectors of `dim` dimensions.
    pub(crate) fn factory_for(&self, n: usize, dim: usize) -> String {
        let template = match (&self.factory, self.compact) {
            (Some(f), _) => f.clone(),
            (None, Some(_)) => format!("IVF{{nlist}},PQ{}np", pq_subquantizers(dim)),
            (None, None) => format!("IVF{{sqrt_n}},PQ{}x4fs", fast_scan_subquantizers(dim)),
        };
        template
            .replace("{nlist}", &nlist_for(n).to_string())
            .replace("{sqrt_n}", &sqrt_lists(n).to_string())
    }

    /// Candidates per result re-scored exactly from the full-precision vectors: compact
    /// mode's factor, else [`FAST_SCAN_RERANK`] for fast-scan codes (too coarse to rank
    /// alone), else none.
    pub(crate) fn rerank_for(&self, factory: &str) -> Option<usize> {
        self.compact
            .or_else(|| is_fast_scan(factory).then_some(FAST_SCAN_RERANK))
    }

    fn validate(&self, dim: usize) -> Result<(), MemoryError> {
        let bad = |field, reason: String| Err(MemoryError::Config { field, reason });
        if !(self.target_recall > 0.0 && self.target_recall <= 1.0) {
            return bad(
                "target_recall",
                format!("{} is not in (0, 1]", self.target_recall),
            );
        }
        if self.train_threshold < 2 {
            return bad("train_threshold", "must be at least 2".into());
        }
        if self.compact == Some(0) {
            return bad("compact", "rerank factor must be at least 1".into());
        }
        if self.retune_every.is_some_and(|e| e.is_zero()) {
            return bad(
                "retune_every",
                "must be above zero (None turns it off)".into(),
            );
        }
        if self.retrain_growth.is_nan() || self.retrain_growth <= 1.0 {
            return bad(
                "retrain_growth",
                format!("{} must be above 1", self.retrain_growth),
            );
        }
        // Build the index once, untrained, so a bad factory string fails at open, naming itself.
        let factory = self.factory_for(self.train_threshold, dim);
        faiss::index_factory(
            dim as u32,
            crate::train::with_ids(&factory),
            faiss::MetricType::InnerProduct,
        )
        .map(drop)
        .or_else(|e| bad("factory", format!("FAISS rejects {factory:?}: {e}")))
    }
}

/// Candidates per result a fast-scan index fetches for exact re-scoring. 4 reached the IVF
/// probing's own recall on 100k MiniLM vectors (k_factor 2 lost ~0.02, 8 gained nothing).
pub(crate) const FAST_SCAN_RERANK: usize = 4;

/// Whether a factory string asks for 4-bit fast-scan codes (`PQ96x4fs`, `PQ48x4fsr`).
fn is_fast_scan(factory: &str) -> bool {
    factory.contains("x4fs")
}

/// √n lists (at least 1, at most n/39): fast-scan reads its codes so fast that fewer,
/// longer lists win; 316 lists beat 632 and 1,265 on 100k vectors at the same recall.
fn sqrt_lists(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).min(n / 39).max(1)
}

/// Fast-scan sub-quantizers: one per pair of dimensions (4-bit codes, d/4 bytes a vector),
/// or one per dimension when `dim` is odd.
fn fast_scan_subquantizers(dim: usize) -> usize {
    if dim.is_multiple_of(2) {
        dim / 2
    } else {
        dim
    }
}

/// IVF list count for `n` vectors: 4·√n, at least 1, and at most n/39 so k-means has the
/// 39 points per centroid FAISS asks for.
pub(crate) fn nlist_for(n: usize) -> usize {
    let by_size = (4.0 * (n as f64).sqrt()).round() as usize;
    by_size.min(n / 39).max(1)
}

/// Product-quantizer sub-vector count: the largest divisor of `dim` not above `dim / 8`
/// (48 one-byte codes for 384 dimensions: 1/32 of the f32 size).
fn pq_subquantizers(dim: usize) -> usize {
    (1..=(dim / 8).max(1))
        .rev()
        .find(|m| dim.is_multiple_of(*m))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_strings() {
        let c = IndexConfig::default();
        assert_eq!(c.factory_for(100_000, 384), "IVF316,PQ192x4fs");
        assert_eq!(c.rerank_for("IVF316,PQ192x4fs"), Some(FAST_SCAN_RERANK));
        assert_eq!(
            c.clone()
                .factory("IVF{nlist},SQ8")
                .factory_for(100_000, 384),
            "IVF1265,SQ8"
        );
        assert_eq!(c.rerank_for("IVF1265,SQ8"), None);
        assert_eq!(
            c.clone().compact(10).factory_for(100_000, 384),
            "IVF1265,PQ48np"
        );
        assert_eq!(nlist_for(50), 1);
        assert_eq!(c.factory("HNSW32").factory_for(10, 8), "HNSW32");
    }
}
