//! The memory actor: owns the tables, the vectors and the index; applies writes durably.
//!
//! The life of a quantized index (when to train, the background run, replaying what changed
//! meanwhile, swapping it in and saving it) is in [`training`].

mod commit;
mod retuning;
mod training;

use commit::{InFlight, Then};
use retuning::Retuning;
use training::Training;

use std::{path::PathBuf, sync::Arc, time::Duration};

use apiary_metrics as m;
use globset::GlobMatcher;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::{
    clock::Clock,
    config::IndexConfig,
    index::ActiveIndex,
    index_file::{self, Loaded},
    kv::{Entry, KvTable},
    patterns::{Hit, Metadata, PatternInfo},
    searchable::Shared,
    store::{Contents, Store},
    stored_vectors::StoredVectors,
    train::{Retuned, Trained},
    vectors::VectorSlab,
    writer::Writer,
    IndexOrigin, IndexStats, MemoryError, MemoryStats,
};

type Reply<T> = RpcReplyPort<Result<T, MemoryError>>;

/// Patterns ready to store: keys checked, vectors checked and normalised in place (row `i`
/// is `infos[i]`'s).
///
/// The rows stay the callers' own buffers: the slab copies them once, and the index reads
/// the batch from the slab's new rows. Concatenating them first wrote the whole batch once
/// more (1.5 MB for 1,000 rows of 384) into a fresh buffer, whose pages glibc often handed
/// back to the kernel and faulted in again: 0.4 more page faults a vector than FAISS's own
/// add plus rows in three of five IVF-SQ8 insert runs.
#[derive(Debug, Default)]
pub(crate) struct NewPatterns {
    pub(crate) infos: Vec<PatternInfo>,
    pub(crate) vectors: Vec<Vec<f32>>,
}

pub(crate) enum MemoryMsg {
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
        reply: Reply<()>,
    },
    Get {
        key: String,
        reply: Reply<Option<Vec<u8>>>,
    },
    Delete {
        key: String,
        reply: Reply<bool>,
    },
    List {
        prefix: String,
        namespace: Option<String>,
        reply: Reply<Vec<String>>,
    },
    Glob {
        glob: GlobMatcher,
        namespace: Option<String>,
        reply: Reply<Vec<String>>,
    },
    AddPatterns {
        patterns: NewPatterns,
        reply: Reply<()>,
    },
    RemovePattern {
        key: String,
        reply: Reply<bool>,
    },
    Search {
        vector: Vec<f32>,
        k: usize,
        namespace: Option<String>,
        filter: Metadata,
        reply: Reply<Vec<Hit>>,
    },
    Stats {
        reply: Reply<MemoryStats>,
    },
    Settle {
        reply: Reply<MemoryStats>,
    },
    Retune {
        reply: Reply<MemoryStats>,
    },
    /// The re-tuning timer (`IndexConfig::retune_every`).
    RetuneDue,
    Retuned(Box<Result<Retuned, MemoryError>>),
    Sweep,
    /// The writer has stored writes: apply them and reply.
    Committed,
    Trained(Box<Result<Trained, MemoryError>>),
    /// Tests only: stores `patterns`, and once the writer has committed them starts a
    /// training before applying them (the race a store snapshot can meet).
    /// With `hold`, applies nothing more until `Release`, so that the training can be
    /// swapped in first.
    #[cfg(test)]
    TrainMidCommit {
        patterns: NewPatterns,
        hold: bool,
        reply: Reply<()>,
    },
    #[cfg(test)]
    Release,
}

// Only with ractor's `cluster` feature: without it, ractor's blanket impl covers this type.
#[cfg(feature = "cluster")]
impl ractor::Message for MemoryMsg {}

/// Runs `work` on tokio's blocking pool, off the actor's loop, and sends its result back
/// to the actor as `message(result)`; a panic in `work` becomes [`MemoryError::Panicked`]
/// naming `what`. If the actor has stopped meanwhile, the result is dropped.
fn off_the_loop<T: Send + 'static>(
    myself: &ActorRef<MemoryMsg>,
    what: &'static str,
    work: impl FnOnce() -> Result<T, MemoryError> + Send + 'static,
    message: fn(Box<Result<T, MemoryError>>) -> MemoryMsg,
) {
    let me = myself.clone();
    tokio::spawn(async move {
        let result = tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
            Err(MemoryError::Panicked {
                what,
                reason: e.to_string(),
            })
        });
        let _ = me.cast(message(Box::new(result)));
    });
}

/// What `open` hands the actor: the store's contents already read (so open fails with a
/// typed error, not an actor start failure).
pub(crate) struct Start {
    pub(crate) dim: usize,
    pub(crate) index: IndexConfig,
    /// What searches read, shared with the handles (see [`crate::searchable`]).
    pub(crate) shared: Shared,
    pub(crate) store: Option<(Arc<Store>, PathBuf, Contents)>,
}

pub(crate) struct MemoryActor;

pub(crate) struct State {
    dim: usize,
    config: IndexConfig,
    clock: Clock,
    kv: KvTable,
    /// The index, patterns, vectors and namespaces: written only here, read by searches on
    /// the handles' threads.
    shared: Shared,
    /// The pattern generation applied to the tables (each pattern write adds one).
    generation: u64,
    /// The generation the index already reflects beyond what was applied to it: a trained
    /// index built from a store snapshot holds the writes committed before the snapshot,
    /// even those the actor had not applied yet, and must not get them twice.
    index_covers: u64,
    store: Option<(Arc<Store>, PathBuf)>,
    /// The group-commit thread, with a store.
    writer: Option<Writer<Then>>,
    in_flight: InFlight,
    /// Tests only: `Committed` applies nothing while set.
    #[cfg(test)]
    held: bool,
    origin: IndexOrigin,
    training: Option<Training>,
    trainings: u64,
    retuning: Option<Retuning>,
    last_error: Option<String>,
    /// Collection size at the last failed training: retried only once it doubles.
    failed_at: Option<usize>,
    settle_waiters: Vec<Reply<MemoryStats>>,
    sweep_at: Option<u64>,
    /// The background save of the last trained index, if still running: the next save
    /// waits for it, and stopping waits for it, so no save outlives the actor.
    saving: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for MemoryActor {
    type Msg = MemoryMsg;
    type State = State;
    type Arguments = Start;

    async fn pre_start(
        &self,
        myself: ActorRef<MemoryMsg>,
        start: Start,
    ) -> Result<State, ActorProcessingErr> {
        let Start {
            dim,
            index: config,
            shared,
            store,
        } = start;
        let mut state = State {
            dim,
            clock: Clock::new(),
            kv: KvTable::default(),
            shared,
            generation: 0,
            index_covers: 0,
            store: None,
            writer: None,
            in_flight: InFlight::default(),
            #[cfg(test)]
            held: false,
            origin: IndexOrigin::Fresh,
            training: None,
            trainings: 0,
            retuning: None,
            last_error: None,
            failed_at: None,
            settle_waiters: Vec::new(),
            sweep_at: None,
            saving: None,
            config,
        };
        if let Some((store, dir, contents)) = store {
            if state.config.compact.is_some() {
                state.shared.write().vectors = StoredVectors::Store(Arc::clone(&store));
            }
            state.restore(&store, &dir, contents)?;
            state.index_covers = state.generation;
            let me = myself.clone();
            state.writer = Some(Writer::start(Arc::clone(&store), move || {
                // Fails only once the actor has stopped; it then drains the writer itself.
                let _ = me.cast(MemoryMsg::Committed);
            })?);
            state.store = Some((store, dir));
        }
        state.publish_sizes();
        state.schedule_sweep(&myself);
        state.maybe_train(&myself);
        if let Some(every) = state.config.retune_every {
            myself.send_after(every, || MemoryMsg::RetuneDue);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<MemoryMsg>,
        msg: MemoryMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MemoryMsg::Put {
                key,
                value,
                ttl,
                reply,
            } => {
                let expires_at =
                    ttl.map(|t| state.clock.now_ms().saturating_add(t.as_millis() as u64));
                state.put(key, Entry { value, expires_at }, reply);
                state.settle_writes(&myself);
            }
            MemoryMsg::Get { key, reply } => {
                let now = state.clock.now_ms();
                let _ = reply.send(Ok(state.kv.get(&key, now).map(|e| e.value.clone())));
            }
            MemoryMsg::Delete { key, reply } => {
                if state.may_have_key(&key, state.clock.now_ms()) {
                    state.delete(key, reply);
                    state.settle_writes(&myself);
                } else {
                    // Absent or expired: nothing to store, but an expired entry still goes
                    // at the next sweep.
                    let _ = reply.send(Ok(false));
                }
            }
            MemoryMsg::List {
                prefix,
                namespace,
                reply,
            } => {
                let result = state
                    .shared
                    .read()
                    .known(namespace.as_deref())
                    .map(|()| state.kv.keys_with_prefix(&prefix, state.clock.now_ms()));
                let _ = reply.send(result);
            }
            MemoryMsg::Glob {
                glob,
                namespace,
                reply,
            } => {
                let result = state
                    .shared
                    .read()
                    .known(namespace.as_deref())
                    .map(|()| state.kv.keys_matching(&glob, state.clock.now_ms()));
                let _ = reply.send(result);
            }
            MemoryMsg::AddPatterns { patterns, reply } => {
                state.add_patterns(patterns, reply);
                state.settle_writes(&myself);
            }
            MemoryMsg::RemovePattern { key, reply } => {
                state.remove_pattern(key, reply);
                state.settle_writes(&myself);
            }
            MemoryMsg::Search {
                vector,
                k,
                namespace,
                filter,
                reply,
            } => {
                // Only searches that met a write in progress come here (see `searchable`).
                let result = state
                    .shared
                    .read()
                    .search(&vector, k, namespace.as_deref(), &filter);
                let _ = reply.send(result);
            }
            MemoryMsg::Stats { reply } => {
                let _ = reply.send(Ok(state.stats()));
            }
            MemoryMsg::Settle { reply } => {
                if state.training.is_some() {
                    state.settle_waiters.push(reply);
                } else {
                    let _ = reply.send(Ok(state.stats()));
                }
            }
            MemoryMsg::Sweep => {
                state.sweep_at = None;
                // A sweep in flight schedules the next once applied.
                if !state.in_flight.expiring {
                    let now = state.clock.now_ms();
                    let due = state.kv.due(now);
                    if !due.is_empty() {
                        state.expire(due, now);
                    }
                }
                state.settle_writes(&myself);
            }
            MemoryMsg::Committed => {
                #[cfg(test)]
                if state.held {
                    return Ok(());
                }
                state.apply_committed();
                state.settle_writes(&myself);
            }
            MemoryMsg::Trained(result) => state.trained(*result),
            MemoryMsg::Retune { reply } => state.retune_now(&myself, reply),
            MemoryMsg::RetuneDue => state.retune_due(&myself),
            MemoryMsg::Retuned(result) => state.retuned(*result),
            #[cfg(test)]
            MemoryMsg::TrainMidCommit {
                patterns,
                hold,
                reply,
            } => {
                let stored = |state: &State| state.writer.as_ref().map_or(0, |w| w.counts().0);
                let before = stored(state);
                state.add_patterns(patterns, reply);
                while stored(state) == before {
                    std::thread::yield_now();
                }
                state.config.train_threshold = 2;
                state.maybe_train(&myself);
                state.held = hold;
                if !hold {
                    state.apply_committed();
                }
                state.settle_writes(&myself);
            }
            #[cfg(test)]
            MemoryMsg::Release => {
                state.held = false;
                state.apply_committed();
                state.settle_writes(&myself);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MemoryMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Every write handed to the writer is stored, applied and acknowledged.
        if let Some(writer) = state.writer.take() {
            let rest = tokio::task::spawn_blocking(move || writer.finish())
                .await
                .unwrap_or_default();
            for committed in rest {
                state.apply(committed.then, committed.result);
            }
        }
        // Save the index as it stands, so the next start need not retrain.
        if let Some(saving) = state.saving.take() {
            let _ = saving.await;
        }
        let generation = state.index_generation();
        let mut shared = state.shared.write();
        if let (ActiveIndex::Quantized(q), Some((_, dir))) = (&shared.index, &state.store)
            && let Err(e) = index_file::save(dir, q, generation)
        {
            tracing::warn!(error = %e, "memory: saving the index at stop failed; it will be rebuilt");
        }
        shared.close(state.dim);
        Ok(())
    }
}

impl State {
    /// Fills the tables from the store and picks up the saved index if it is sound. Vectors
    /// are read only if they stay in RAM or the index must be rebuilt from them.
    fn restore(
        &mut self,
        store: &Store,
        dir: &std::path::Path,
        contents: Contents,
    ) -> Result<(), MemoryError> {
        let shared = self.shared.clone();
        let mut s = shared.write();
        for (key, entry) in contents.kv {
            // Expired entries are loaded too: invisible to reads, they leave at the first sweep.
            s.note_namespace(&key);
            self.kv.insert(key, entry);
        }
        for (id, info) in contents.patterns {
            s.note_namespace(&info.key);
            s.patterns.insert(id, info);
        }
        self.generation = contents.generation;
        if s.patterns.len() == 0 {
            return Ok(());
        }
        let (config, dim) = (&self.config, self.dim);
        let rebuild = match index_file::load(
            dir,
            self.generation,
            |n| config.factory_for(n, dim),
            |factory| config.rerank_for(factory),
        ) {
            Loaded::Index(q) => {
                s.index = ActiveIndex::Quantized(*q);
                // An index that cannot remove was saved with its removed ids inside.
                s.dead_in_index = s.index.ntotal().saturating_sub(s.patterns.len());
                self.origin = IndexOrigin::Loaded;
                if let ActiveIndex::Quantized(q) = &s.index {
                    metrics::gauge!(m::MEMORY_RECALL.name).set(q.recall);
                }
                false
            }
            Loaded::Missing if s.patterns.len() < self.config.train_threshold => true,
            Loaded::Missing => {
                self.origin = IndexOrigin::Rebuilt {
                    reason: format!("no saved index in {}", dir.display()),
                };
                true
            }
            Loaded::Rejected(reason) => {
                tracing::warn!(%reason, "memory: saved index rejected; rebuilding from stored vectors");
                self.origin = IndexOrigin::Rebuilt { reason };
                true
            }
        };
        let (ids, data) = match contents.vectors {
            Some(read_at_open) => read_at_open,
            None if rebuild => store.snapshot()?.vectors()?,
            None => return Ok(()),
        };
        if rebuild {
            s.index.add(&ids, &data)?;
        }
        if matches!(s.vectors, StoredVectors::Ram(_)) {
            s.vectors = StoredVectors::Ram(VectorSlab::from_parts(self.dim, ids, data));
        }
        Ok(())
    }

    /// Records `key`'s namespace; the write lock only for a namespace not seen yet.
    fn note_namespace(&self, key: &str) {
        let Some((ns, _)) = key.split_once('/') else {
            return;
        };
        if !self.shared.read().namespaces.contains(ns) {
            self.shared.write().note_namespace(key);
        }
    }

    /// After a message that may have changed the tables: publish sizes, schedule the expiry
    /// sweep, train if the collection grew enough.
    fn settle_writes(&mut self, myself: &ActorRef<MemoryMsg>) {
        self.publish_sizes();
        self.schedule_sweep(myself);
        self.maybe_train(myself);
    }

    /// The store generation the index reflects (see `index_covers`).
    fn index_generation(&self) -> u64 {
        self.generation.max(self.index_covers)
    }

    fn store_path(&self) -> PathBuf {
        self.store
            .as_ref()
            .map_or_else(PathBuf::new, |(store, _)| store.path().to_owned())
    }

    fn schedule_sweep(&mut self, myself: &ActorRef<MemoryMsg>) {
        let Some(next) = self.kv.next_expiry() else {
            return;
        };
        if self.in_flight.expiring {
            return;
        }
        if self.sweep_at.is_some_and(|at| at <= next) {
            return;
        }
        self.sweep_at = Some(next);
        let delay = Duration::from_millis(next.saturating_sub(self.clock.now_ms()));
        myself.send_after(delay, || MemoryMsg::Sweep);
    }

    fn publish_sizes(&self) {
        metrics::gauge!(m::MEMORY_KEYS.name).set(self.kv.len() as f64);
        metrics::gauge!(m::MEMORY_PATTERNS.name).set(self.shared.read().patterns.len() as f64);
    }

    fn stats(&self) -> MemoryStats {
        let s = self.shared.read();
        let (kind, param, recall, tuned_on) = match &s.index {
            ActiveIndex::Exact(_) => ("Flat".to_owned(), None, None, None),
            ActiveIndex::Quantized(q) => (
                q.factory.clone(),
                q.param.clone(),
                Some(q.recall),
                q.tuned_on,
            ),
        };
        let (durable_writes, commits) = self.writer.as_ref().map_or((0, 0), Writer::counts);
        MemoryStats {
            durable_writes,
            commits,
            keys: self.kv.len(),
            patterns: s.patterns.len(),
            namespaces: s.namespaces.iter().cloned().collect(),
            vector_bytes: s.vectors.bytes(),
            index: IndexStats {
                factory: kind,
                param,
                recall,
                tuned_on,
                indexed: s.index.ntotal() - s.dead_in_index,
                training: self.training.is_some(),
                trainings: self.trainings,
                origin: self.origin.clone(),
                last_error: self.last_error.clone(),
            },
        }
    }
}
