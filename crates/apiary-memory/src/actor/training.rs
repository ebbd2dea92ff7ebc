//! The training lifecycle of the memory's quantized index: deciding to train, training in
//! the background on a snapshot, replaying what changed meanwhile, swapping the new index in
//! without blocking searches, and saving it.

use apiary_metrics as m;
use ractor::ActorRef;

use super::{off_the_loop, MemoryMsg, State};
use crate::{
    index::ActiveIndex,
    index_file,
    stored_vectors::Snapshot,
    train::{train, TrainJob, Trained},
    MemoryError,
};

/// Changes made while a training runs, replayed onto the new index before it is swapped in.
#[derive(Default)]
pub(super) struct Training {
    /// The pattern generation the training's snapshot shows: writes up to it are inside.
    pub(super) since: u64,
    pub(super) added: Vec<u64>,
    pub(super) removed: Vec<u64>,
}

impl State {
    /// Starts a background training when the collection passed the threshold (or grew enough
    /// since the last training), unless one is running.
    pub(super) fn maybe_train(&mut self, myself: &ActorRef<MemoryMsg>) {
        let shared = self.shared.clone();
        let s = shared.read();
        let n = s.patterns.len();
        let due = match &s.index {
            ActiveIndex::Exact(_) => n >= self.config.train_threshold,
            // Removed vectors an index cannot drop cost every search extra candidates:
            // once they pass a tenth of the collection, a training sheds them.
            ActiveIndex::Quantized(q) => {
                n as f64 >= q.trained_on as f64 * self.config.retrain_growth
                    || s.dead_in_index > n / 10
            }
        };
        let retry_ok = self.failed_at.is_none_or(|f| n >= 2 * f);
        if !due || !retry_ok || self.training.is_some() {
            return;
        }
        // Taken now, read on the training thread: the training sees exactly the patterns
        // applied so far, and what changes meanwhile is replayed onto it.
        let snapshot = match s.vectors.snapshot() {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(error = %e, "memory: cannot read the vectors to train on; the current index stays");
                self.failed_at = Some(n);
                self.last_error = Some(e.to_string());
                return;
            }
        };
        // A store snapshot may hold writes committed but not applied yet; a copy of RAM
        // holds exactly those applied.
        let since = match &snapshot {
            Snapshot::Store(s) => s.generation(),
            Snapshot::Owned(..) => self.generation,
        };
        let (dim, factory) = (self.dim, self.config.factory_for(n, self.dim));
        let (target_recall, tune_queries, rerank) = (
            self.config.target_recall,
            self.config.tune_queries,
            self.config.rerank_for(&factory),
        );
        let seed = self.trainings ^ n as u64;
        // A full ring of recent queries is what the new index is tuned on.
        let ring = self.shared.ring();
        let queries = ring.full().then(|| ring.take());
        self.training = Some(Training {
            since,
            ..Training::default()
        });
        tracing::info!(vectors = n, factory = %factory, "memory: training a quantized index in the background");
        off_the_loop(
            myself,
            "training",
            move || {
                let (ids, data) = snapshot.read()?;
                train(TrainJob {
                    dim,
                    factory,
                    ids,
                    data,
                    target_recall,
                    tune_queries,
                    rerank,
                    seed,
                    queries,
                })
            },
            MemoryMsg::Trained,
        );
    }

    /// Replays what changed during training onto the new index, swaps it in and saves it.
    pub(super) fn trained(&mut self, result: Result<Trained, MemoryError>) {
        let changes = self.training.take().unwrap_or_default();
        self.trainings += 1;
        let outcome = match result.and_then(|t| self.swap_in(t, changes)) {
            Ok(()) => "swapped",
            Err(e) => {
                tracing::warn!(error = %e, "memory: training failed; the current index stays");
                self.failed_at = Some(self.shared.read().patterns.len());
                self.last_error = Some(e.to_string());
                "failed"
            }
        };
        metrics::counter!(m::MEMORY_TRAININGS_TOTAL.name, "outcome" => outcome).increment(1);
        let stats = self.stats();
        for waiter in self.settle_waiters.drain(..) {
            let _ = waiter.send(Ok(stats.clone()));
        }
    }

    fn swap_in(&mut self, trained: Trained, changes: Training) -> Result<(), MemoryError> {
        let Trained { quantized, seconds } = trained;
        let mut index = ActiveIndex::Quantized(quantized);
        let mut ids = Vec::new();
        let mut data = Vec::new();
        self.shared.read().vectors.each(&changes.added, |id, v| {
            ids.push(id);
            data.extend_from_slice(v);
        })?;
        // The replay runs on the new index, outside the lock: searches go on meanwhile.
        // Removed ids the snapshot held are in the new index; those added during training
        // and removed since are not (their vectors are gone, so the replay skipped them).
        let added: std::collections::HashSet<u64> = changes.added.iter().copied().collect();
        let removed: Vec<u64> = changes
            .removed
            .into_iter()
            .filter(|id| !added.contains(id))
            .collect();
        let dead = if index.remove(&removed)? {
            0
        } else {
            removed.len()
        };
        index.add(&ids, &data)?;
        metrics::histogram!(m::MEMORY_TRAINING_DURATION_SECONDS.name).record(seconds);
        let shared = self.shared.clone();
        {
            let mut s = shared.write();
            s.index = index;
            s.dead_in_index = dead;
        }
        self.index_covers = self.index_covers.max(changes.since);
        self.failed_at = None;
        self.save_index();
        Ok(())
    }

    /// Publishes the index's recall and, with a directory, saves a copy of the index on a
    /// blocking thread while searches go on against the original.
    pub(super) fn save_index(&mut self) {
        let shared = self.shared.clone();
        let s = shared.read();
        let ActiveIndex::Quantized(q) = &s.index else {
            return;
        };
        metrics::gauge!(m::MEMORY_RECALL.name).set(q.recall);
        let Some((_, dir)) = &self.store else {
            return;
        };
        let copy = match faiss::index::TryClone::try_clone(&q.index) {
            Ok(copy) => copy,
            Err(e) => {
                tracing::warn!(error = %e, "memory: cannot copy the index to save it");
                return;
            }
        };
        let q = crate::index::Quantized {
            index: copy,
            factory: q.factory.clone(),
            param: q.param.clone(),
            ..*q
        };
        let (dir, generation, previous) =
            (dir.clone(), self.index_generation(), self.saving.take());
        self.saving = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let saved =
                tokio::task::spawn_blocking(move || index_file::save(&dir, &q, generation)).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!(error = %e, "memory: saving the trained index failed; it will be rebuilt at the next start");
            }
        }));
    }
}
