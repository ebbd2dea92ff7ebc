//! Training a quantized index and tuning its search parameter against exact search.
//!
//! Runs on a blocking thread (`spawn_blocking`), never inside the memory actor's loop: on
//! 100k vectors it takes seconds to tens of seconds on two cores.

use std::{collections::HashMap, time::Instant};

use faiss::{index::IndexImpl, selector::IdSelector, Idx, Index, MetricType};

use crate::{
    index::{idx, set_param, Quantized},
    vectors::dot,
    MemoryError, TunedOn,
};

/// k-means iterations for an IVF index's lists. FAISS gives IVF 10; on 100k MiniLM vectors
/// (`IVF316,PQ192x4fs`, three trainings on different samples) 10 reached recall@10
/// 0.955-0.961 at `nprobe` 31 and 25 reached 0.958-0.960 (mean +0.002, about one `nprobe`
/// less for the same recall), for 2.5-4 s more training. 50, or the best of two runs of
/// 25, did no better.
const KMEANS_ITERATIONS: i32 = 25;

/// recall@K is what tuning measures and what the memory reports.
pub(crate) const RECALL_K: usize = 10;

/// Everything a training run needs, copied out of the actor.
pub(crate) struct TrainJob {
    pub(crate) dim: usize,
    pub(crate) factory: String,
    pub(crate) ids: Vec<u64>,
    pub(crate) data: Vec<f32>,
    pub(crate) target_recall: f64,
    pub(crate) tune_queries: usize,
    pub(crate) rerank: Option<usize>,
    pub(crate) seed: u64,
    /// Recent queries to tune on (concatenated rows), when the ring is full; else tuning
    /// measures on vectors held out of the collection.
    pub(crate) queries: Option<Vec<f32>>,
}

/// The trained index, ready to swap in.
pub(crate) struct Trained {
    pub(crate) quantized: Quantized,
    pub(crate) seconds: f64,
}

pub(crate) fn train(job: TrainJob) -> Result<Trained, MemoryError> {
    let started = Instant::now();
    let TrainJob {
        dim,
        ref factory,
        ref ids,
        ref data,
        ..
    } = job;
    let n = ids.len();
    let mut rng = fastrand::Rng::with_seed(job.seed);
    let mut index = faiss::index_factory(dim as u32, with_ids(factory), MetricType::InnerProduct)
        .map_err(MemoryError::index("create quantized index"))?;

    let nlist = list_count(factory);
    let mut rows: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut rows);
    // Held-out queries: vectors kept out of the index while tuning (at most a tenth of the
    // collection), so recall is measured on queries the index has not seen, as real queries
    // are. They are added once tuning is done.
    let held = job.tune_queries.min(n / 10).max(1);
    let (probe_rows, rest_rows) = rows.split_at(held);
    let sample_rows = rest_rows.len().min(sample_size(nlist.unwrap_or(1)));
    let gather = |rows: &[usize]| -> (Vec<u64>, Vec<f32>) {
        let ids = rows.iter().map(|&r| ids[r]).collect();
        let vectors = rows
            .iter()
            .flat_map(|&r| &data[r * dim..(r + 1) * dim])
            .copied()
            .collect();
        (ids, vectors)
    };
    let (_, sample) = gather(&rest_rows[..sample_rows]);
    // The lists first, with more k-means iterations than FAISS gives them; `train` then
    // trains only the codes.
    crate::ffi::train_lists(&mut index, &sample, KMEANS_ITERATIONS)?;
    index.train(&sample).map_err(MemoryError::index("train"))?;
    drop(sample);
    let (rest_ids, rest) = gather(rest_rows);
    index
        .add_with_ids(&rest, &idx(&rest_ids))
        .map_err(MemoryError::index("add trained"))?;
    let (probe_ids, probe) = gather(probe_rows);
    let (tuned_on, queries) = match &job.queries {
        Some(q) => (
            TunedOn::RecentQueries {
                queries: q.len() / dim,
            },
            q.clone(),
        ),
        None => (TunedOn::HeldOut { queries: held }, probe.clone()),
    };
    let tuning = Tuning {
        param: tunable(factory, nlist),
        target: job.target_recall,
        rerank: job.rerank,
        dead: 0,
    };
    let tuned = Probe::new(dim, queries, &rest_ids, &rest)
        .and_then(|p| tune(&mut index, &tuning, &p, &rest));
    drop(rest);
    let (param, recall) = tuned?;
    index
        .add_with_ids(&probe, &idx(&probe_ids))
        .map_err(MemoryError::index("add held-out"))?;

    let removable = probe_removal(&mut index, factory);
    tracing::info!(
        factory = %factory, vectors = n, ?param, recall,
        seconds = started.elapsed().as_secs_f64(), "memory: quantized index trained"
    );
    Ok(Trained {
        quantized: Quantized {
            index,
            factory: factory.clone(),
            param,
            recall,
            tuned_on: Some(tuned_on),
            trained_on: n,
            rerank: job.rerank,
            removable,
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Vectors to train on for `nlist` lists. k-means costs about sample x lists, so the
/// sample is what a fixed budget (25M point-centroid pairs a round) allows, within FAISS's
/// own bounds: at least 39 points a list (40 here) and at most 256 (it subsamples past that).
/// 40 per list had trained IVF316 lists badly enough that the memory needed nprobe 32 to
/// reach what an index trained on 60k vectors reached at 29.
fn sample_size(nlist: usize) -> usize {
    let budget = 25_000_000 / nlist.max(1);
    budget.min(256 * nlist).max(40 * nlist).max(10_000)
}

/// The factory string to build: IVF keeps ids in its lists natively (and `IDMap` over IVF
/// returned wrong ids after removals in FAISS 1.12), other indexes (HNSW, PQ, LSH) get an
/// `IDMap2` wrapper so they accept ids.
pub(crate) fn with_ids(factory: &str) -> String {
    if factory.contains("IVF") || factory.starts_with("IDMap") {
        factory.to_owned()
    } else {
        format!("IDMap2,{factory}")
    }
}

/// `IVF1024,...` -> 1024.
fn list_count(factory: &str) -> Option<usize> {
    let at = factory.find("IVF")? + 3;
    let digits: String = factory[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// HNSW throws on `remove_ids`; IVF removes. Asking to remove an id never assigned tells
/// which without touching data.
///
/// Fast-scan lists remove their codes but never count them (FAISS 1.12's
/// `BlockInvertedLists::remove_ids` adds the new size minus itself), so the index's size
/// would stay wrong forever; they are treated as unable to remove, and searches skip the
/// removed ids until the next training.
fn probe_removal(index: &mut IndexImpl, factory: &str) -> bool {
    !factory.contains("x4fs")
        && IdSelector::batch(&[Idx::new(u64::MAX >> 2)])
            .and_then(|sel| index.remove_ids(&sel))
            .is_ok()
}

/// The search parameter this index exposes, with the largest value worth trying.
fn tunable(factory: &str, nlist: Option<usize>) -> Option<(&'static str, usize)> {
    if let Some(nlist) = nlist {
        Some(("nprobe", nlist))
    } else if factory.contains("HNSW") {
        Some(("efSearch", 1024))
    } else {
        None
    }
}

/// recall@10 measured on held-out queries: the mean, and the low end of its 95% confidence
/// interval (the bound is exceeded with 97.5% confidence: with a one-sided 95% bound the
/// default memory reached 0.949 on the bench's 1,000 unseen queries, just short of 0.95).
#[derive(Debug, Clone, Copy)]
struct Measured {
    mean: f64,
    low: f64,
}

impl Measured {
    /// From each query's own recall. The interval comes from the spread between queries,
    /// not from counting (query, neighbour) pairs as independent: a query's ten neighbours
    /// are found or missed together (they sit in the same lists), so the pairs-as-samples
    /// interval was about three times too narrow, and a target tuned by it was missed on new
    /// queries (0.956 held out, 0.945 on the dataset's queries).
    fn from_queries(per_query: &[f64]) -> Self {
        let n = per_query.len().max(1) as f64;
        let mean = per_query.iter().sum::<f64>() / n;
        let variance =
            per_query.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self {
            mean,
            low: mean - 1.96 * (variance / n).sqrt(),
        }
    }

    /// Whether the target is reached with confidence: a bare mean would pick the first value
    /// that reaches it by sampling luck, and fall short on new queries about half the time.
    fn reaches(&self, target: f64) -> bool {
        self.low >= target
    }
}

/// What a tuning aims for and how searches run.
struct Tuning {
    /// The parameter to tune and the largest value worth trying (`None`: nothing to tune).
    param: Option<(&'static str, usize)>,
    target: f64,
    /// Candidates per result re-scored exactly, as searches do.
    rerank: Option<usize>,
    /// Removed ids still in the index, skipped as searches skip them.
    dead: usize,
}

/// Picks the smallest parameter value whose recall@10 reaches the target (see [`reaches`]):
/// doubling until it does, then bisecting between the last miss and the first hit.
///
/// [`reaches`]: Measured::reaches
fn tune(
    index: &mut IndexImpl,
    tuning: &Tuning,
    probe: &Probe,
    data: &[f32],
) -> Result<(Option<(String, usize)>, f64), MemoryError> {
    let Some((name, max)) = tuning.param else {
        return Ok((None, probe.recall(index, tuning, data)?.mean));
    };
    let mut at = |value: usize| -> Result<Measured, MemoryError> {
        set_param(index, name, value)?;
        probe.recall(index, tuning, data)
    };
    let (mut miss, mut hit) = (0, None);
    let mut value = 1;
    loop {
        let recall = at(value)?;
        if recall.reaches(tuning.target) {
            hit = Some((value, recall.mean));
            break;
        }
        miss = value;
        if value >= max {
            break;
        }
        value = (value * 2).min(max);
    }
    let Some((mut best, mut best_recall)) = hit else {
        tracing::warn!(
            target = tuning.target,
            "memory: target recall not reached even at {name}={max}"
        );
        let recall = at(max)?;
        return Ok((Some((name.to_owned(), max)), recall.mean));
    };
    while best - miss > 1 {
        let mid = miss + (best - miss) / 2;
        let recall = at(mid)?;
        if recall.reaches(tuning.target) {
            (best, best_recall) = (mid, recall.mean);
        } else {
            miss = mid;
        }
    }
    set_param(index, name, best)?;
    Ok((Some((name.to_owned(), best)), best_recall))
}

/// A re-tuning of a live index on the recent queries, run on a blocking thread.
pub(crate) struct RetuneJob {
    pub(crate) dim: usize,
    /// A copy of the live index: tuning sets its parameter, which searches must not see.
    pub(crate) index: IndexImpl,
    pub(crate) factory: String,
    pub(crate) target_recall: f64,
    pub(crate) rerank: Option<usize>,
    pub(crate) dead: usize,
    /// The live collection: exact search over it is the truth.
    pub(crate) ids: Vec<u64>,
    pub(crate) data: Vec<f32>,
    pub(crate) queries: Vec<f32>,
}

/// What a re-tuning found.
#[derive(Debug)]
pub(crate) struct Retuned {
    pub(crate) param: (String, usize),
    pub(crate) recall: f64,
    pub(crate) queries: usize,
}

pub(crate) fn retune(job: RetuneJob) -> Result<Retuned, MemoryError> {
    let started = Instant::now();
    let RetuneJob { dim, mut index, .. } = job;
    let queries = job.queries.len() / dim.max(1);
    let tuning = Tuning {
        param: tunable(&job.factory, list_count(&job.factory)),
        target: job.target_recall,
        rerank: job.rerank,
        dead: job.dead,
    };
    let probe = Probe::new(dim, job.queries, &job.ids, &job.data)?;
    let (param, recall) = tune(&mut index, &tuning, &probe, &job.data)?;
    let param = param.ok_or_else(|| MemoryError::CannotRetune {
        reason: format!("{} has no search parameter", job.factory),
    })?;
    tracing::info!(
        factory = %job.factory, ?param, recall, queries,
        seconds = started.elapsed().as_secs_f64(), "memory: search parameter re-tuned on recent queries"
    );
    Ok(Retuned {
        param,
        recall,
        queries,
    })
}

/// Queries with their exact neighbours among the indexed vectors.
struct Probe {
    dim: usize,
    queries: Vec<f32>,
    truth: Vec<Vec<u64>>,
    /// Indexed id -> row in the indexed vectors, for exact re-scoring (and to know the
    /// removed ids an index still holds: they are not here).
    row_of: HashMap<u64, usize>,
}

impl Probe {
    /// `queries` (concatenated rows) against `ids`, whose rows are concatenated in `data`.
    fn new(dim: usize, queries: Vec<f32>, ids: &[u64], data: &[f32]) -> Result<Self, MemoryError> {
        let mut exact = faiss::index_factory(dim as u32, "Flat", MetricType::InnerProduct)
            .map_err(MemoryError::index("create exact index"))?;
        exact.add(data).map_err(MemoryError::index("add exact"))?;
        let res = exact
            .search(&queries, RECALL_K)
            .map_err(MemoryError::index("exact search"))?;
        let truth = res
            .labels
            .chunks(RECALL_K)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|l| l.get().map(|row| ids[row as usize]))
                    .collect()
            })
            .collect();
        let row_of = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        Ok(Self {
            dim,
            queries,
            truth,
            row_of,
        })
    }

    /// recall@10 of `index` searched as the memory searches it; `data` holds the rows
    /// `row_of` points into.
    fn recall(
        &self,
        index: &mut IndexImpl,
        tuning: &Tuning,
        data: &[f32],
    ) -> Result<Measured, MemoryError> {
        let dim = self.dim;
        let fetch = ((RECALL_K + tuning.dead) * tuning.rerank.unwrap_or(1))
            .min(index.ntotal() as usize)
            .max(1);
        let res = index
            .search(&self.queries, fetch)
            .map_err(MemoryError::index("search"))?;
        let mut per_query = Vec::with_capacity(self.truth.len());
        for (q, labels) in res.labels.chunks(fetch).enumerate() {
            let query = &self.queries[q * dim..(q + 1) * dim];
            let mut found: Vec<(u64, f32)> = labels
                .iter()
                .filter_map(|l| l.get())
                .filter_map(|id| Some((id, self.row_of.get(&id)?)))
                .map(|(id, &r)| {
                    let score = match tuning.rerank {
                        Some(_) => dot(query, &data[r * dim..(r + 1) * dim]),
                        None => 0.0,
                    };
                    (id, score)
                })
                .collect();
            if tuning.rerank.is_some() {
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
            let truth = &self.truth[q];
            if truth.is_empty() {
                continue;
            }
            let hits = found
                .iter()
                .take(RECALL_K)
                .filter(|(id, _)| truth.contains(id))
                .count();
            per_query.push(hits as f64 / truth.len() as f64);
        }
        if per_query.is_empty() {
            return Ok(Measured {
                mean: 1.0,
                low: 1.0,
            });
        }
        Ok(Measured::from_queries(&per_query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_a_target_takes_confidence_from_the_spread_between_queries() {
        // 500 queries, each finding 10/10 or 8/10: mean 0.96, low end about 0.953.
        let even: Vec<f64> = (0..500)
            .map(|i| if i % 5 == 0 { 0.8 } else { 1.0 })
            .collect();
        let m = Measured::from_queries(&even);
        assert!((m.mean - 0.96).abs() < 1e-9 && m.reaches(0.95), "{m:?}");
        // The same mean with misses bunched on a few queries is less certain.
        let bunched: Vec<f64> = (0..500)
            .map(|i| if i % 25 == 0 { 0.0 } else { 1.0 })
            .collect();
        let m = Measured::from_queries(&bunched);
        assert!((m.mean - 0.96).abs() < 1e-9 && !m.reaches(0.95), "{m:?}");
        assert!(Measured::from_queries(&[1.0; 10]).reaches(0.99));
    }

    #[test]
    fn training_samples() {
        assert_eq!(sample_size(316), 79_113);
        assert_eq!(sample_size(1265), 50_600);
        assert_eq!(sample_size(10), 10_000);
    }

    #[test]
    fn list_counts() {
        assert_eq!(list_count("IVF1024,SQ8"), Some(1024));
        assert_eq!(list_count("OPQ16,IVF256,PQ16np"), Some(256));
        assert_eq!(list_count("HNSW32"), None);
    }
}
