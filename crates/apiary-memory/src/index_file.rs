//! The trained FAISS index saved beside the store, with a checksum and the pattern
//! generation it reflects.
//!
//! Files: `patterns.faiss` (FAISS's own format) and `patterns.faiss.meta` (postcard). Both
//! are written to temporary names, synced, then renamed, so a crash leaves either the old
//! pair, the new pair, or a mismatch the checksum catches: never a half-written index in use.

use std::{fs::File, io::Write as _, path::Path};

use faiss::{index::IndexImpl, Index};
use serde::{Deserialize, Serialize};

use crate::{index::Quantized, MemoryError, TunedOn};

const INDEX: &str = "patterns.faiss";
const META: &str = "patterns.faiss.meta";

/// What the meta file holds: `Core`, then what later versions added at the end, so a file
/// written before them still decodes as its `Core`.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    core: Core,
    tuned_on: Option<TunedOn>,
}

impl Meta {
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes).or_else(|e| {
            postcard::from_bytes::<Core>(bytes)
                .map(|core| Meta {
                    core,
                    tuned_on: None,
                })
                .map_err(|_| e)
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Core {
    crc32: u32,
    len: u64,
    generation: u64,
    factory: String,
    param: Option<(String, usize)>,
    recall: f64,
    trained_on: usize,
    removable: bool,
}

/// The outcome of looking for a saved index.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// A saved index that matches its checksum and the store.
    Index(Box<Quantized>),
    /// Nothing saved.
    Missing,
    /// A saved index that cannot be used, and why.
    Rejected(String),
}

/// Writes `index` (reflecting pattern `generation`) durably into `dir`.
pub(crate) fn save(dir: &Path, index: &Quantized, generation: u64) -> Result<(), MemoryError> {
    let final_index = dir.join(INDEX);
    let tmp_index = dir.join(format!("{INDEX}.tmp"));
    let path_str = tmp_index.to_str().ok_or_else(|| MemoryError::Io {
        path: tmp_index.clone(),
        source: std::io::Error::other("path is not UTF-8 (FAISS takes a C string)"),
    })?;
    faiss::index::io::write_index(&index.index, path_str)
        .map_err(MemoryError::index("write index"))?;
    let bytes = std::fs::read(&tmp_index).map_err(MemoryError::io(&tmp_index))?;
    File::open(&tmp_index)
        .and_then(|f| f.sync_all())
        .map_err(MemoryError::io(&tmp_index))?;
    let meta = Meta {
        core: Core {
            crc32: crc32fast::hash(&bytes),
            len: bytes.len() as u64,
            generation,
            factory: index.factory.clone(),
            param: index.param.clone(),
            recall: index.recall,
            trained_on: index.trained_on,
            removable: index.removable,
        },
        tuned_on: index.tuned_on,
    };
    let meta_bytes = postcard::to_allocvec(&meta).map_err(|source| MemoryError::Encode {
        key: META.into(),
        source,
    })?;
    let tmp_meta = dir.join(format!("{META}.tmp"));
    File::create(&tmp_meta)
        .and_then(|mut f| f.write_all(&meta_bytes).and_then(|()| f.sync_all()))
        .map_err(MemoryError::io(&tmp_meta))?;
    std::fs::rename(&tmp_index, &final_index).map_err(MemoryError::io(&final_index))?;
    let final_meta = dir.join(META);
    std::fs::rename(&tmp_meta, &final_meta).map_err(MemoryError::io(&final_meta))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(MemoryError::io(dir))?;
    Ok(())
}

/// Loads the saved index if its checksum holds, it reflects `generation`, and it was built
/// with `factory`.
pub(crate) fn load(
    dir: &Path,
    generation: u64,
    factory: impl Fn(usize) -> String,
    rerank: impl Fn(&str) -> Option<usize>,
) -> Loaded {
    let (index_file, meta_file) = (dir.join(INDEX), dir.join(META));
    if !index_file.exists() && !meta_file.exists() {
        return Loaded::Missing;
    }
    let (meta, tuned_on) = match std::fs::read(&meta_file)
        .map_err(|e| e.to_string())
        .and_then(|b| Meta::decode(&b).map_err(|e| e.to_string()))
    {
        Ok(Meta { core, tuned_on }) => (core, tuned_on),
        Err(e) => return Loaded::Rejected(format!("{} unreadable: {e}", meta_file.display())),
    };
    let bytes = match std::fs::read(&index_file) {
        Ok(bytes) => bytes,
        Err(e) => return Loaded::Rejected(format!("{} unreadable: {e}", index_file.display())),
    };
    if bytes.len() as u64 != meta.len || crc32fast::hash(&bytes) != meta.crc32 {
        return Loaded::Rejected(format!(
            "{} is corrupt: checksum mismatch ({} bytes, expected {})",
            index_file.display(),
            bytes.len(),
            meta.len
        ));
    }
    if meta.generation != generation {
        return Loaded::Rejected(format!(
            "{} is stale: saved at pattern generation {}, the store is at {generation}",
            index_file.display(),
            meta.generation
        ));
    }
    if factory(meta.trained_on) != meta.factory {
        return Loaded::Rejected(format!(
            "{} was built as {:?}; the configuration now asks for {:?}",
            index_file.display(),
            meta.factory,
            factory(meta.trained_on)
        ));
    }
    let Some(path) = index_file.to_str() else {
        return Loaded::Rejected(format!("{} is not a UTF-8 path", index_file.display()));
    };
    let index: IndexImpl = match faiss::index::io::read_index(path) {
        Ok(index) => index,
        Err(e) => {
            return Loaded::Rejected(format!("FAISS cannot read {}: {e}", index_file.display()))
        }
    };
    if let Some((name, value)) = &meta.param
        && let Err(e) = crate::index::set_param(&index, name, *value)
    {
        return Loaded::Rejected(format!("cannot set {name} on the saved index: {e}"));
    }
    tracing::debug!(vectors = index.ntotal(), "memory: saved index loaded");
    let rerank = rerank(&meta.factory);
    Loaded::Index(Box::new(Quantized {
        index,
        factory: meta.factory,
        param: meta.param,
        recall: meta.recall,
        tuned_on,
        trained_on: meta.trained_on,
        rerank,
        removable: meta.removable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_written_before_tuned_on_still_reads() {
        let core = || Core {
            crc32: 7,
            len: 9,
            generation: 3,
            factory: "HNSW32".into(),
            param: Some(("efSearch".into(), 24)),
            recall: 0.96,
            trained_on: 5_000,
            removable: false,
        };
        let old = postcard::to_allocvec(&core()).unwrap();
        let meta = Meta::decode(&old).unwrap();
        assert_eq!((meta.core.generation, meta.tuned_on), (3, None));
        let tuned_on = Some(TunedOn::RecentQueries { queries: 1_000 });
        let new = postcard::to_allocvec(&Meta {
            core: core(),
            tuned_on,
        })
        .unwrap();
        assert_eq!(Meta::decode(&new).unwrap().tuned_on, tuned_on);
        assert!(Meta::decode(&old[..old.len() - 1]).is_err());
    }
}
