//! Re-tuning the live index's search parameter on the queries searched most recently.
//!
//! A training tunes once, on what it has then: the ring of recent queries if full, else
//! vectors held out of the collection. Traffic changes, and held-out vectors are easier than
//! real queries, so the memory re-tunes on the ring: on [`Memory::retune`], and on a timer
//! once every query in the ring arrived after the last tuning. The work (exact search of each
//! ring query over the collection, then passes of the ring over a copy of the index) runs on
//! a blocking thread; the actor only swaps the parameter in, if the index is still the one
//! that was copied.
//!
//! [`Memory::retune`]: crate::Memory::retune

use ractor::ActorRef;

use super::{off_the_loop, MemoryMsg, Reply, State};
use crate::{
    index::{set_param, ActiveIndex},
    train::{retune, RetuneJob, Retuned},
    MemoryError, MemoryStats, TunedOn,
};

/// A re-tuning in flight.
pub(super) struct Retuning {
    /// The trainings count when it started: a training swapped in since makes it moot.
    pub(super) trainings: u64,
    pub(super) waiters: Vec<Reply<MemoryStats>>,
}

impl State {
    /// `Memory::retune`: starts a re-tuning (or joins the one running) and answers once the
    /// new parameter is in use. During a training, answers when the training is done: it
    /// tunes on the ring too.
    pub(super) fn retune_now(&mut self, myself: &ActorRef<MemoryMsg>, reply: Reply<MemoryStats>) {
        if self.training.is_some() {
            self.settle_waiters.push(reply);
            return;
        }
        if let Some(running) = &mut self.retuning {
            running.waiters.push(reply);
            return;
        }
        match self.start_retune(myself) {
            Ok(()) => {
                if let Some(running) = &mut self.retuning {
                    running.waiters.push(reply);
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// The timer: re-tunes when the ring is full of queries the last tuning never saw.
    pub(super) fn retune_due(&mut self, myself: &ActorRef<MemoryMsg>) {
        let ring = self.shared.ring();
        let renewed = ring.full() && ring.fresh() >= self.config.query_ring;
        if renewed
            && self.training.is_none()
            && self.retuning.is_none()
            && let Err(e) = self.start_retune(myself)
        {
            tracing::debug!(error = %e, "memory: no re-tuning");
        }
        if let Some(every) = self.config.retune_every {
            myself.send_after(every, || MemoryMsg::RetuneDue);
        }
    }

    fn start_retune(&mut self, myself: &ActorRef<MemoryMsg>) -> Result<(), MemoryError> {
        let cannot = |reason: &str| MemoryError::CannotRetune {
            reason: reason.to_owned(),
        };
        let job = {
            let s = self.shared.read();
            let ActiveIndex::Quantized(q) = &s.index else {
                return Err(cannot("the index is still exact"));
            };
            if q.param.is_none() {
                return Err(cannot(&format!("{} has no search parameter", q.factory)));
            }
            let queries = self.shared.ring().take();
            if queries.is_empty() {
                return Err(cannot(
                    "no query has been searched yet (or the query ring is off)",
                ));
            }
            let index = faiss::index::TryClone::try_clone(&q.index)
                .map_err(MemoryError::index("copy the index to re-tune"))?;
            let snapshot = s.vectors.snapshot()?;
            (
                RetuneJob {
                    dim: self.dim,
                    index,
                    factory: q.factory.clone(),
                    target_recall: self.config.target_recall,
                    rerank: q.rerank,
                    dead: s.dead_in_index,
                    ids: Vec::new(),
                    data: Vec::new(),
                    queries,
                },
                snapshot,
            )
        };
        self.retuning = Some(Retuning {
            trainings: self.trainings,
            waiters: Vec::new(),
        });
        off_the_loop(
            myself,
            "re-tuning",
            move || {
                let (mut job, snapshot) = job;
                (job.ids, job.data) = snapshot.read()?;
                retune(job)
            },
            MemoryMsg::Retuned,
        );
        Ok(())
    }

    /// Sets the re-tuned parameter on the live index (unless a training replaced it since)
    /// and saves it.
    pub(super) fn retuned(&mut self, result: Result<Retuned, MemoryError>) {
        let Some(running) = self.retuning.take() else {
            return;
        };
        let outcome = result.and_then(|r| {
            if running.trainings != self.trainings {
                return Ok(false);
            }
            let shared = self.shared.clone();
            let mut s = shared.write();
            let ActiveIndex::Quantized(q) = &mut s.index else {
                return Ok(false);
            };
            set_param(&q.index, &r.param.0, r.param.1)?;
            q.param = Some(r.param);
            q.recall = r.recall;
            q.tuned_on = Some(TunedOn::RecentQueries { queries: r.queries });
            Ok(true)
        });
        match outcome {
            Ok(true) => self.save_index(),
            Ok(false) => {}
            Err(ref e) => {
                tracing::warn!(error = %e, "memory: re-tuning failed; the parameter stays");
            }
        }
        // One answer for every waiter; the error's text, as the error itself is not `Clone`.
        let answer = outcome
            .map(|_| self.stats())
            .map_err(|e| format!("re-tuning failed: {e}"));
        for waiter in running.waiters {
            let _ = waiter.send(
                answer
                    .clone()
                    .map_err(|reason| MemoryError::CannotRetune { reason }),
            );
        }
    }
}
