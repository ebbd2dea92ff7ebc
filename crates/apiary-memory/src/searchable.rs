//! What a pattern search reads, shared between the memory actor and every [`Memory`] handle.
//!
//! The actor is the only writer: it applies committed writes, swaps trained indexes in and
//! takes the write lock only for that. Searches do not queue in its mailbox: a handle takes
//! the read lock and searches on its own thread, so a search costs what FAISS costs plus a
//! lock, not an actor round trip, and searches from several agents run side by side (FAISS
//! allows concurrent searches on an index nothing is writing to). While the actor holds the
//! write lock, a search is sent to the actor instead of blocking the caller's thread, and
//! runs there once the write is done.
//!
//! [`Memory`]: crate::Memory

use std::{
    collections::BTreeSet,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Instant,
};

use apiary_metrics as m;

use crate::{
    index::ActiveIndex,
    patterns::{Hit, Metadata, PatternInfo, PatternTable},
    query_ring::QueryRing,
    stored_vectors::StoredVectors,
    MemoryError,
};

/// The index, the pattern table, the full-precision vectors and the namespaces.
#[derive(Debug)]
pub(crate) struct Searchable {
    /// False once the actor has stopped: searches then fail with `Closed`, as every call.
    pub(crate) open: bool,
    pub(crate) namespaces: BTreeSet<String>,
    pub(crate) patterns: PatternTable,
    pub(crate) vectors: StoredVectors,
    pub(crate) index: ActiveIndex,
    /// Removed ids still inside an index that cannot remove (HNSW, fast-scan); searches fetch
    /// this many extra candidates and skip them.
    pub(crate) dead_in_index: usize,
}

/// The lock around [`Searchable`]. Poisoning is ignored: the actor writes whole values
/// under the lock (a table entry, an index swap), and a FAISS failure is an error, not a panic.
/// Beside it, the ring of recent queries searches record into.
#[derive(Debug, Clone)]
pub(crate) struct Shared(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    lock: RwLock<Searchable>,
    ring: QueryRing,
}

impl Shared {
    pub(crate) fn new(searchable: Searchable, ring: QueryRing) -> Self {
        Self(Arc::new(Inner {
            lock: RwLock::new(searchable),
            ring,
        }))
    }

    /// The recent queries (see [`crate::query_ring`]).
    pub(crate) fn ring(&self) -> &QueryRing {
        &self.0.ring
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Searchable> {
        self.0
            .lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Searchable> {
        self.0
            .lock
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The read lock if no write holds it (or waits for it).
    pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, Searchable>> {
        match self.0.lock.try_read() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

impl Searchable {
    /// An open memory's state before anything is stored: an exact index, vectors in RAM.
    pub(crate) fn new(dim: usize, namespaces: BTreeSet<String>) -> Result<Self, MemoryError> {
        Ok(Self {
            open: true,
            namespaces,
            patterns: PatternTable::default(),
            vectors: StoredVectors::Ram(crate::vectors::VectorSlab::new(dim)),
            index: ActiveIndex::Exact(crate::index::exact_index(dim)?),
            dead_in_index: 0,
        })
    }

    pub(crate) fn known(&self, namespace: Option<&str>) -> Result<(), MemoryError> {
        match namespace {
            Some(ns) if !self.namespaces.contains(ns) => Err(MemoryError::UnknownNamespace {
                namespace: ns.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// At stop: marks the memory closed and lets go of the index, the vectors and the store
    /// they may read from, so the store can be reopened and the RAM returns while handles
    /// are still held.
    pub(crate) fn close(&mut self, dim: usize) {
        self.open = false;
        self.patterns = PatternTable::default();
        self.vectors = StoredVectors::Ram(crate::vectors::VectorSlab::new(dim));
        self.dead_in_index = 0;
        match crate::index::exact_index(dim) {
            Ok(empty) => self.index = ActiveIndex::Exact(empty),
            Err(e) => {
                tracing::warn!(error = %e, "memory: the closed memory keeps its index until its handles are dropped")
            }
        }
    }

    pub(crate) fn note_namespace(&mut self, key: &str) {
        if let Some((ns, _)) = key.split_once('/')
            && !self.namespaces.contains(ns)
        {
            self.namespaces.insert(ns.to_owned());
        }
    }

    /// The `k` best matches of `q` (normalised), timed into the search histogram.
    pub(crate) fn search(
        &self,
        q: &[f32],
        k: usize,
        namespace: Option<&str>,
        filter: &Metadata,
    ) -> Result<Vec<Hit>, MemoryError> {
        if !self.open {
            return Err(MemoryError::Closed);
        }
        let started = Instant::now();
        // A closure, so that every way out of the search is timed.
        let result = (|| -> Result<Vec<Hit>, MemoryError> {
            self.known(namespace)?;
            let filtered = namespace.is_some() || !filter.is_empty();
            // Filtered searches over-fetch; if the index still yields too few matches, the
            // matching patterns are scored exactly, so a filter never comes up short.
            let want = if filtered { k.saturating_mul(8) } else { k } + self.dead_in_index;
            let mut found = self.index.candidates(q, want)?;
            if self.index.reranks() {
                let ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
                found = self.vectors.scores(q, &ids)?;
            }
            let mut hits: Vec<Hit> = found
                .into_iter()
                .filter_map(|(id, score)| {
                    let info = self.patterns.get(id)?;
                    info.matches(namespace, filter).then(|| Hit {
                        key: info.key.clone(),
                        score,
                        metadata: info.metadata.clone(),
                    })
                })
                .take(k)
                .collect();
            if filtered && hits.len() < k {
                let matching: Vec<u64> = self
                    .patterns
                    .iter()
                    .filter(|(_, info)| info.matches(namespace, filter))
                    .map(|(id, _)| id)
                    .collect();
                let mut exact: Vec<(f32, &PatternInfo)> = self
                    .vectors
                    .scores(q, &matching)?
                    .into_iter()
                    .filter_map(|(id, score)| Some((score, self.patterns.get(id)?)))
                    .collect();
                exact.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
                hits = exact
                    .into_iter()
                    .take(k)
                    .map(|(score, info)| Hit {
                        key: info.key.clone(),
                        score,
                        metadata: info.metadata.clone(),
                    })
                    .collect();
            }
            Ok(hits)
        })();
        let kind = if matches!(self.index, ActiveIndex::Exact(_)) {
            "exact"
        } else {
            "quantized"
        };
        metrics::histogram!(m::MEMORY_SEARCH_DURATION_SECONDS.name, "index" => kind)
            .record(started.elapsed().as_secs_f64());
        result
    }
}
