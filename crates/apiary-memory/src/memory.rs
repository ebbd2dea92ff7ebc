//! [`Memory`]: the handle agents and swarms hold to reach the memory actor.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorRef, RpcReplyPort};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    actor::{MemoryActor, MemoryMsg, NewPatterns, Start},
    key::{namespace_of, pinned_namespace},
    patterns::{Content, PatternInfo},
    query_ring::QueryRing,
    searchable::{Searchable, Shared},
    store::Store,
    vectors::normalised,
    Embedder, Hit, MemoryConfig, MemoryError, MemoryStats, Pattern, Query,
};

/// A handle to a running memory actor; cheap to clone and share between agents.
///
/// Keys are `namespace/name` paths. Values are any serde type, stored as postcard bytes.
/// Patterns are vectors (or texts, embedded by the configured [`Embedder`]) searched by
/// cosine similarity through FAISS.
///
/// ```
/// use apiary_memory::{Memory, MemoryConfig, Pattern, Query};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), apiary_memory::MemoryError> {
/// let memory = Memory::open(MemoryConfig::new(64)).await?;
/// memory.put("swarm/phase1/design", &"use a ring").await?;
/// let design: Option<String> = memory.get("swarm/phase1/design").await?;
/// assert_eq!(design.as_deref(), Some("use a ring"));
///
/// memory.add_pattern(Pattern::text("lessons/linker", "link with openblas for lapack")).await?;
/// memory.add_pattern(Pattern::text("lessons/flaky", "retry the flaky network test")).await?;
/// let hits = memory.search(Query::text("lapack link error", 1)).await?;
/// assert_eq!(hits[0].key, "lessons/linker");
/// memory.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Memory {
    actor: ActorRef<MemoryMsg>,
    /// Read directly by searches (see [`crate::searchable`]).
    shared: Shared,
    embedder: Arc<dyn Embedder>,
    dim: usize,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("actor", &self.actor.get_id())
            .field("dim", &self.dim)
            .finish()
    }
}

impl Memory {
    /// Validates `config`, reads the store (if a directory is configured) and starts the
    /// actor. A saved index is loaded if its checksum and generation match the store; otherwise
    /// the index is rebuilt from the stored vectors and [`IndexStats::origin`](crate::IndexStats)
    /// says why.
    ///
    /// The first open in a process logs a warning if FAISS was built without SIMD on a CPU
    /// that has it (see [the crate docs](crate#speed-build-faiss-with-simd)).
    pub async fn open(config: MemoryConfig) -> Result<Self, MemoryError> {
        config.validate()?;
        crate::simd::warn_if_generic();
        let store = match &config.dir {
            Some(dir) => {
                let dir = dir.clone();
                let cache = config.store_cache;
                // Compact mode reads vectors from the store when it needs them, not at open.
                let with_vectors = config.index.compact.is_none();
                let (store, contents) = tokio::task::spawn_blocking({
                    let dir = dir.clone();
                    move || Store::open(&dir, cache, with_vectors)
                })
                .await
                .map_err(|e| MemoryError::Panicked {
                    what: "store open",
                    reason: e.to_string(),
                })??;
                Some((Arc::new(store), dir, contents))
            }
            None => None,
        };
        let shared = Shared::new(
            Searchable::new(config.dim, config.namespaces.iter().cloned().collect())?,
            QueryRing::new(config.dim, config.index.query_ring),
        );
        let start = Start {
            dim: config.dim,
            index: config.index.clone(),
            shared: shared.clone(),
            store,
        };
        let (actor, _) =
            Actor::spawn(None, MemoryActor, start)
                .await
                .map_err(|e| MemoryError::Panicked {
                    what: "memory actor start",
                    reason: e.to_string(),
                })?;
        Ok(Self {
            actor,
            shared,
            embedder: config.embedder,
            dim: config.dim,
        })
    }

    /// The dimension of every pattern vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    async fn call<R: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<Result<R, MemoryError>>) -> MemoryMsg,
    ) -> Result<R, MemoryError> {
        match self.actor.call(msg, None).await {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(MemoryError::Closed),
        }
    }

    /// Stores `value` under `key` (replacing any value), durably if persistent.
    pub async fn put<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
    ) -> Result<(), MemoryError> {
        self.write(key, value, None).await
    }

    /// Stores `value` under `key` for `ttl`; after that `key` reads as absent, and the entry
    /// is removed (from RAM and disk) by the next expiry sweep.
    pub async fn put_with_ttl<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        self.write(key, value, Some(ttl)).await
    }

    async fn write<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), MemoryError> {
        namespace_of(key)?;
        let value = postcard::to_allocvec(value).map_err(|source| MemoryError::Encode {
            key: key.to_owned(),
            source,
        })?;
        let key = key.to_owned();
        self.call(|reply| MemoryMsg::Put {
            key,
            value,
            ttl,
            reply,
        })
        .await
    }

    /// The value under `key`, decoded as `V`; `None` if absent or expired.
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, MemoryError> {
        namespace_of(key)?;
        let owned = key.to_owned();
        let Some(bytes) = self
            .call(|reply| MemoryMsg::Get { key: owned, reply })
            .await?
        else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|source| MemoryError::Decode {
                key: key.to_owned(),
                source,
            })
    }

    /// Deletes `key`; true if it was present (and not expired).
    pub async fn delete(&self, key: &str) -> Result<bool, MemoryError> {
        namespace_of(key)?;
        let key = key.to_owned();
        self.call(|reply| MemoryMsg::Delete { key, reply }).await
    }

    /// Live keys starting with `prefix`, sorted. A prefix that names a namespace
    /// (`results/...`) must name a known one.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, MemoryError> {
        let namespace = pinned_namespace(prefix, false).map(str::to_owned);
        let prefix = prefix.to_owned();
        self.call(|reply| MemoryMsg::List {
            prefix,
            namespace,
            reply,
        })
        .await
    }

    /// Live keys matching a glob (`swarm/*/design`, `results/**`), sorted. `*` and `?` stay
    /// within one segment; `**` crosses segments.
    pub async fn glob(&self, pattern: &str) -> Result<Vec<String>, MemoryError> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| MemoryError::InvalidGlob {
                pattern: pattern.to_owned(),
                source,
            })?
            .compile_matcher();
        let namespace = pinned_namespace(pattern, true).map(str::to_owned);
        self.call(|reply| MemoryMsg::Glob {
            glob,
            namespace,
            reply,
        })
        .await
    }

    /// Stores one pattern (replacing any pattern under the same key).
    pub async fn add_pattern(&self, pattern: Pattern) -> Result<(), MemoryError> {
        self.add_patterns(vec![pattern]).await
    }

    /// Stores several patterns in one durable write: all or none. Their texts are embedded
    /// in one batch.
    pub async fn add_patterns(&self, patterns: Vec<Pattern>) -> Result<(), MemoryError> {
        let patterns = self.prepare(patterns).await?;
        self.call(|reply| MemoryMsg::AddPatterns { patterns, reply })
            .await
    }

    /// Checks keys, embeds the texts in one batch and normalises every vector in place.
    async fn prepare(&self, mut patterns: Vec<Pattern>) -> Result<NewPatterns, MemoryError> {
        let mut texts = Vec::new();
        for p in &mut patterns {
            namespace_of(&p.key)?;
            // Moved out, not copied: the pattern's text is not needed past embedding.
            if let Content::Text(text) = &mut p.content {
                texts.push(std::mem::take(text));
            }
        }
        let mut embedded = self.embed(texts).await?.into_iter();
        let mut batch = NewPatterns {
            infos: Vec::with_capacity(patterns.len()),
            vectors: Vec::with_capacity(patterns.len()),
        };
        for p in patterns {
            let vector = match p.content {
                Content::Vector(v) => v,
                Content::Text(_) => embedded.next().unwrap_or_default(),
            };
            batch.vectors.push(normalised(
                &format_args!("pattern {:?}", p.key),
                vector,
                self.dim,
            )?);
            batch.infos.push(PatternInfo {
                key: p.key,
                metadata: p.metadata,
            });
        }
        Ok(batch)
    }

    /// One vector per text, in order. Never inside the actor: on the caller's task for a
    /// cheap embedder, else on tokio's blocking pool so a model taking milliseconds does not
    /// hold up the caller's async worker.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, MemoryError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = texts.len();
        let embedder = Arc::clone(&self.embedder);
        let run = move || {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed_batch(&texts)
        };
        let vectors = if self.embedder.is_cheap() {
            run()
        } else {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| MemoryError::Embed(format!("the embedding task ended: {e}").into()))?
        }
        .map_err(MemoryError::Embed)?;
        if vectors.len() != wanted {
            return Err(MemoryError::Embed(
                format!(
                    "the embedder returned {} vectors for {wanted} texts",
                    vectors.len()
                )
                .into(),
            ));
        }
        Ok(vectors)
    }

    /// Removes the pattern under `key`; true if there was one.
    pub async fn remove_pattern(&self, key: &str) -> Result<bool, MemoryError> {
        namespace_of(key)?;
        let key = key.to_owned();
        self.call(|reply| MemoryMsg::RemovePattern { key, reply })
            .await
    }

    /// The `k` stored patterns most similar to the query, best first.
    pub async fn search(&self, query: Query) -> Result<Vec<Hit>, MemoryError> {
        if query.k == 0 {
            return Err(MemoryError::ZeroK);
        }
        let vector = match query.content {
            Content::Vector(v) => v,
            Content::Text(text) => self.embed(vec![text]).await?.pop().unwrap_or_default(),
        };
        let vector = normalised(&"query", vector, self.dim)?;
        self.shared.ring().record(&vector);
        // On this thread, under the read lock, while the actor runs and writes nothing.
        if matches!(self.actor.get_status(), ractor::ActorStatus::Running)
            && let Some(searchable) = self.shared.try_read()
        {
            return searchable.search(&vector, query.k, query.namespace.as_deref(), &query.filter);
        }
        // A write holds the lock (or the actor has stopped): queue behind it at the actor
        // rather than block this thread.
        self.call(|reply| MemoryMsg::Search {
            vector,
            k: query.k,
            namespace: query.namespace,
            filter: query.filter,
            reply,
        })
        .await
    }

    /// How many patterns are stored.
    pub async fn pattern_count(&self) -> Result<usize, MemoryError> {
        Ok(self.stats().await?.patterns)
    }

    /// Sizes, the index in use and what tuning measured.
    pub async fn stats(&self) -> Result<MemoryStats, MemoryError> {
        self.call(|reply| MemoryMsg::Stats { reply }).await
    }

    /// Re-tunes the quantized index's search parameter now, on the queries searched most
    /// recently (see [`IndexConfig::query_ring`](crate::IndexConfig::query_ring)), and
    /// returns the stats once the new parameter is in use. Searches go on meanwhile.
    ///
    /// The memory also does this on its own, every
    /// [`retune_every`](crate::IndexConfig::retune_every), once the ring holds only queries
    /// the last tuning never saw. Fails with [`MemoryError::CannotRetune`] while the index is
    /// exact or has no search parameter, or before any query was searched.
    pub async fn retune(&self) -> Result<MemoryStats, MemoryError> {
        self.call(|reply| MemoryMsg::Retune { reply }).await
    }

    /// Waits until no index training is running, then returns the stats.
    pub async fn settle(&self) -> Result<MemoryStats, MemoryError> {
        self.call(|reply| MemoryMsg::Settle { reply }).await
    }

    /// Tests only: see `MemoryMsg::TrainMidCommit`.
    #[cfg(test)]
    pub(crate) async fn train_mid_commit(
        &self,
        patterns: Vec<Pattern>,
        hold: bool,
    ) -> Result<(), MemoryError> {
        let patterns = self.prepare(patterns).await?;
        self.call(|reply| MemoryMsg::TrainMidCommit {
            patterns,
            hold,
            reply,
        })
        .await
    }

    /// Tests only: ends the hold of `train_mid_commit`.
    #[cfg(test)]
    pub(crate) fn release(&self) {
        let _ = self.actor.cast(MemoryMsg::Release);
    }

    /// Stops the actor after the messages already sent, saving a trained index beside the
    /// store. Other handles see [`MemoryError::Closed`] afterwards.
    pub async fn close(&self) {
        let _ = self.actor.stop_and_wait(None, None).await;
    }
}
