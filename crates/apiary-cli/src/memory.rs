//! The memory a manifest's swarm gets: stored results of `shell` steps, read by `memory`
//! steps, and the lessons model-calling agents recall. Its embedder is the manifest's
//! `[memory]` choice.

use std::path::Path;

use anyhow::Context as _;
use apiary::{
    memory::{Memory, MemoryConfig},
    EmbedderKind, MemorySpec,
};

/// Dimension of the run's memory patterns with the hashing embedder.
pub(crate) const MEMORY_DIM: usize = 256;

/// Opens the run's memory, in RAM or crash-safe in `dir`, embedding with `spec`'s embedder
/// (a relative `model_dir` is read from `base`, the manifest's directory).
pub(crate) async fn open(
    dir: Option<&Path>,
    spec: &MemorySpec,
    base: &Path,
) -> anyhow::Result<Memory> {
    let mut config = match spec.embedder {
        EmbedderKind::Minilm => {
            let model_dir = base.join(spec.model_dir.as_deref().unwrap_or(Path::new(".")));
            minilm(&model_dir)?
        }
        _ => MemoryConfig::new(MEMORY_DIM),
    }
    .namespace("results");
    if let Some(dir) = dir {
        config = config.persist_to(dir);
    }
    Memory::open(config).await.context("cannot open the memory")
}

#[cfg(feature = "minilm")]
fn minilm(model_dir: &Path) -> anyhow::Result<MemoryConfig> {
    use apiary::memory::{Embedder as _, MiniLmEmbedder};
    let embedder = MiniLmEmbedder::load(model_dir)
        .context("[memory] embedder = \"minilm\": cannot load the model")?;
    Ok(MemoryConfig::new(embedder.dim()).embedder(embedder))
}

#[cfg(not(feature = "minilm"))]
fn minilm(_: &Path) -> anyhow::Result<MemoryConfig> {
    anyhow::bail!(
        "[memory] embedder = \"minilm\": this apiary was built without its `minilm` feature \
         (build it with `cargo build --release -p apiary-cli --features minilm`)"
    )
}
