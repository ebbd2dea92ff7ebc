//! What the memory reports about itself.

use serde::Serialize;

/// Sizes and index state, from [`Memory::stats`](crate::Memory::stats).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Key/value entries held (expired ones until the next sweep).
    pub keys: usize,
    /// Patterns stored.
    pub patterns: usize,
    /// Known namespaces, sorted.
    pub namespaces: Vec<String>,
    /// Bytes of full-precision vectors (and their ids) kept in RAM for training and
    /// re-ranking: 0 in compact mode with a directory, where they are read from the store.
    pub vector_bytes: usize,
    /// The pattern index.
    pub index: IndexStats,
    /// Writes stored durably since start (0 without a directory).
    pub durable_writes: u64,
    /// The transactions that stored them, one fsync each: `durable_writes / commits` is how
    /// many writes shared an fsync.
    pub commits: u64,
}

/// The pattern index in use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexStats {
    /// `Flat` while exact, else the factory string of the quantized index.
    pub factory: String,
    /// The tuned search parameter and its value (`nprobe`, `efSearch`).
    pub param: Option<(String, usize)>,
    /// recall@10 against exact search measured when the index was tuned.
    pub recall: Option<f64>,
    /// The queries that recall was measured on (`None` while exact, or for an index saved
    /// before this was recorded).
    pub tuned_on: Option<TunedOn>,
    /// Vectors in the index.
    pub indexed: usize,
    /// Whether a training is running in the background.
    pub training: bool,
    /// Trainings finished (swapped in or failed) since start.
    pub trainings: u64,
    /// Where the index came from at start.
    pub origin: IndexOrigin,
    /// The last training failure, if any.
    pub last_error: Option<String>,
}

/// Where the index came from when the memory opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IndexOrigin {
    /// Built from scratch (in-memory, or a new directory, or too few patterns to quantize).
    Fresh,
    /// Loaded from the saved index file (checksum and generation matched).
    Loaded,
    /// Rebuilt from the stored vectors because the saved index could not be used.
    Rebuilt {
        /// Why (missing, corrupt, stale, configuration changed).
        reason: String,
    },
}

/// The queries a quantized index's search parameter was tuned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum TunedOn {
    /// Vectors held out of the collection at training (the ring of recent queries was not
    /// full yet). They are easier than real queries: recall on real traffic may be lower.
    HeldOut {
        /// How many.
        queries: usize,
    },
    /// The most recent queries searched
    /// ([`IndexConfig::query_ring`](crate::IndexConfig::query_ring)).
    RecentQueries {
        /// How many.
        queries: usize,
    },
}
