//! The FAISS index behind pattern search: exact while small, quantized once trained.

use faiss::{
    index::autotune::ParameterSpace, index::IndexImpl, selector::IdSelector, Idx, Index, MetricType,
};

use crate::{ffi::top, MemoryError};

/// The index searches run against.
pub(crate) enum ActiveIndex {
    /// FAISS `IDMap2,Flat`: exact inner product. Removal is safe on a flat index.
    Exact(IndexImpl),
    /// A trained quantized index (IVF lists hold the ids natively: no `IDMap` wrapper, which
    /// returned wrong ids after removals over IVF in FAISS 1.12).
    Quantized(Quantized),
}

impl std::fmt::Debug for ActiveIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActiveIndex::Exact(i) => write!(f, "Exact({} vectors)", i.ntotal()),
            ActiveIndex::Quantized(q) => write!(
                f,
                "Quantized({:?}, {} vectors)",
                q.factory,
                q.index.ntotal()
            ),
        }
    }
}

impl std::fmt::Debug for Quantized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantized")
            .field("factory", &self.factory)
            .field("vectors", &self.index.ntotal())
            .field("param", &self.param)
            .field("recall", &self.recall)
            .finish_non_exhaustive()
    }
}

/// A trained quantized index and what tuning measured.
pub(crate) struct Quantized {
    pub(crate) index: IndexImpl,
    pub(crate) factory: String,
    /// The tuned search parameter (`nprobe` or `efSearch`) and its value, if the index has one.
    pub(crate) param: Option<(String, usize)>,
    /// recall@10 against exact search measured at that parameter.
    pub(crate) recall: f64,
    /// The queries `recall` was measured on (`None`: loaded from an older file).
    pub(crate) tuned_on: Option<crate::TunedOn>,
    /// Collection size at training time.
    pub(crate) trained_on: usize,
    /// Compact mode: candidates per result re-ranked exactly.
    pub(crate) rerank: Option<usize>,
    /// Whether `remove_ids` works on this index (HNSW cannot remove).
    pub(crate) removable: bool,
}

pub(crate) fn exact_index(dim: usize) -> Result<IndexImpl, MemoryError> {
    faiss::index_factory(dim as u32, "IDMap2,Flat", MetricType::InnerProduct)
        .map_err(MemoryError::index("create exact index"))
}

pub(crate) fn idx(ids: &[u64]) -> Vec<Idx> {
    ids.iter().map(|&i| Idx::new(i)).collect()
}

/// Sets a tuning parameter by name (`nprobe`, `efSearch`) through FAISS's `ParameterSpace`,
/// which sees through wrappers such as `PreTransform` and `Refine`.
pub(crate) fn set_param(index: &IndexImpl, name: &str, value: usize) -> Result<(), MemoryError> {
    ParameterSpace::new()
        .and_then(|ps| ps.set_index_parameter(index, name, value as f64))
        .map_err(MemoryError::index("set search parameter"))
}

impl ActiveIndex {
    pub(crate) fn add(&mut self, ids: &[u64], data: &[f32]) -> Result<(), MemoryError> {
        if ids.is_empty() {
            return Ok(());
        }
        let index = match self {
            ActiveIndex::Exact(i) => i,
            ActiveIndex::Quantized(q) => &mut q.index,
        };
        index
            .add_with_ids(data, &idx(ids))
            .map_err(MemoryError::index("add"))
    }

    /// Removes ids; returns false when the index cannot remove (the caller then filters
    /// the dead ids out of results).
    pub(crate) fn remove(&mut self, ids: &[u64]) -> Result<bool, MemoryError> {
        if ids.is_empty() {
            return Ok(true);
        }
        let (index, removable) = match self {
            ActiveIndex::Exact(i) => (i, true),
            ActiveIndex::Quantized(q) => (&mut q.index, q.removable),
        };
        if !removable {
            return Ok(false);
        }
        let selector = IdSelector::batch(&idx(ids)).map_err(MemoryError::index("select ids"))?;
        index
            .remove_ids(&selector)
            .map_err(MemoryError::index("remove"))?;
        Ok(true)
    }

    /// Candidates for a query asking for `want` results: more than `want` in compact mode.
    pub(crate) fn candidates(
        &self,
        q: &[f32],
        want: usize,
    ) -> Result<Vec<(u64, f32)>, MemoryError> {
        match self {
            ActiveIndex::Exact(i) => top(i, q, want),
            ActiveIndex::Quantized(z) => {
                let fetch = want.saturating_mul(z.rerank.unwrap_or(1));
                top(&z.index, q, fetch)
            }
        }
    }

    pub(crate) fn reranks(&self) -> bool {
        matches!(
            self,
            ActiveIndex::Quantized(Quantized {
                rerank: Some(_),
                ..
            })
        )
    }

    pub(crate) fn ntotal(&self) -> usize {
        match self {
            ActiveIndex::Exact(i) => i.ntotal() as usize,
            ActiveIndex::Quantized(q) => q.index.ntotal() as usize,
        }
    }
}
