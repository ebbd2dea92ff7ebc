//! Where the full-precision vectors live: in RAM, or only in the store on disk.
//!
//! Exact re-ranking, the exact fallback of filtered searches, training and replay after
//! training read full-precision vectors. Compact mode with a directory reads them from the
//! redb store, so that RAM holds only the index's PQ codes; otherwise they stay in RAM.

use std::sync::Arc;

use crate::{
    store::{Snapshot as StoreSnapshot, Store},
    vectors::{dot, dot_many, VectorSlab},
    MemoryError,
};

/// The memory's full-precision vectors, by pattern id.
#[derive(Debug)]
pub(crate) enum StoredVectors {
    /// Kept in RAM: without a directory there is nowhere else, and outside compact mode
    /// the quantized index's codes are a fraction of them anyway.
    Ram(VectorSlab),
    /// Read from the store when needed (compact mode with a directory). Every pattern write
    /// reaches the store before the actor applies it, so the store always has them.
    Store(Arc<Store>),
}

/// The vectors as of one moment, to be read on a training thread.
#[derive(Debug)]
pub(crate) enum Snapshot {
    /// A copy of the RAM slab.
    Owned(Vec<u64>, Vec<f32>),
    /// A read transaction on the store.
    Store(StoreSnapshot),
}

impl Snapshot {
    /// Ids and concatenated rows.
    pub(crate) fn read(self) -> Result<(Vec<u64>, Vec<f32>), MemoryError> {
        match self {
            Snapshot::Owned(ids, data) => Ok((ids, data)),
            Snapshot::Store(s) => s.vectors(),
        }
    }
}

impl StoredVectors {
    /// Keeps a batch's rows in RAM, if they are kept there, and returns them concatenated
    /// when the slab holds them so (see [`VectorSlab::insert_batch`]).
    pub(crate) fn insert_batch(&mut self, ids: &[u64], rows: &[Vec<f32>]) -> Option<&[f32]> {
        match self {
            StoredVectors::Ram(slab) => slab.insert_batch(ids, rows),
            StoredVectors::Store(_) => None,
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        if let StoredVectors::Ram(slab) = self {
            slab.remove(id);
        }
    }

    /// Calls `f` with the vector of each of `ids` that is stored.
    pub(crate) fn each(
        &self,
        ids: &[u64],
        mut f: impl FnMut(u64, &[f32]),
    ) -> Result<(), MemoryError> {
        match self {
            StoredVectors::Ram(slab) => {
                for &id in ids {
                    if let Some(v) = slab.get(id) {
                        f(id, v);
                    }
                }
                Ok(())
            }
            StoredVectors::Store(store) => store.each_vector(ids, f),
        }
    }

    /// Exact cosine scores of `ids` against `q` (ids not stored are left out), best first.
    pub(crate) fn scores(&self, q: &[f32], ids: &[u64]) -> Result<Vec<(u64, f32)>, MemoryError> {
        let mut scored = Vec::with_capacity(ids.len());
        match self {
            StoredVectors::Ram(slab) => {
                let rows: Vec<(u64, &[f32])> = ids
                    .iter()
                    .filter_map(|&id| Some((id, slab.get(id)?)))
                    .collect();
                // The rows sit at random places in a slab far larger than the cache. One
                // load per cache line of every row first: independent loads, which the CPU
                // overlaps by the dozen, where a scoring loop keeps only a few misses in
                // flight; the scoring then reads from cache.
                let mut seen = 0u32;
                for (_, v) in &rows {
                    for x in v.iter().step_by(16) {
                        seen ^= x.to_bits();
                    }
                }
                std::hint::black_box(seen);
                for group in rows.chunks(4) {
                    let mut vectors: [&[f32]; 4] = [&[]; 4];
                    for (slot, (_, v)) in vectors.iter_mut().zip(group) {
                        *slot = v;
                    }
                    let dots = dot_many(q, &vectors[..group.len()]);
                    scored.extend(group.iter().zip(dots).map(|((id, _), d)| (*id, d)));
                }
            }
            StoredVectors::Store(_) => self.each(ids, |id, v| scored.push((id, dot(q, v))))?,
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(scored)
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot, MemoryError> {
        match self {
            StoredVectors::Ram(slab) => {
                let (ids, data) = slab.snapshot();
                Ok(Snapshot::Owned(ids, data))
            }
            StoredVectors::Store(store) => store.snapshot().map(Snapshot::Store),
        }
    }

    /// Bytes held in RAM.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            StoredVectors::Ram(slab) => slab.bytes(),
            StoredVectors::Store(_) => 0,
        }
    }
}
