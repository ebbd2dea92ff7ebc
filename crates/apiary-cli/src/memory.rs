//! The memory a manifest's swarm gets: stored results of `shell` steps, read by `memory`
//! steps.

use std::path::Path;

use anyhow::Context as _;
use apiary::memory::{Memory, MemoryConfig};

/// Dimension of the run's memory patterns (hashing embedder).
pub(crate) const MEMORY_DIM: usize = 256;

/// Opens the run's memory: in RAM, or crash-safe in `dir`.
pub(crate) async fn open(dir: Option<&Path>) -> anyhow::Result<Memory> {
    let mut config = MemoryConfig::new(MEMORY_DIM).namespace("results");
    if let Some(dir) = dir {
        config = config.persist_to(dir);
    }
    Memory::open(config).await.context("cannot open the memory")
}
