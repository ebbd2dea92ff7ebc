//! Training a quantized index and tuning its search parameter against exact search.
//!
//! Runs on a blocking thread (`spawn_blocking`), never inside the memory actor's loop: on
//! 100k vectors it takes seconds to tens of seconds on two cores.

use std::{collections::HashMap, time::Instant};

use faiss::{index::IndexImpl, selector::IdSelector, Idx, Index, MetricType};

use crate::{
    index::{idx, set_param, Quantized},
    vectors::dot,
    MemoryError,
};

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
    // FAISS wants >= 39 points per centroid; 40 per list (at least 10k) trains well without
    // spending minutes on k-means over the whole collection.
    let sample_rows = n.min((40 * nlist.unwrap_or(1)).max(10_000));
    let mut rows: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut rows);
    let sample: Vec<f32> = rows[..sample_rows]
        .iter()
        .flat_map(|&r| &data[r * dim..(r + 1) * dim])
        .copied()
        .collect();
    index.train(&sample).map_err(MemoryError::index("train"))?;
    drop(sample);
    index
        .add_with_ids(data, &idx(ids))
        .map_err(MemoryError::index("add trained"))?;

    let removable = probe_removal(&mut index);
    let (param, recall) = tune(&mut index, &job, nlist, &mut rng)?;
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
            trained_on: n,
            rerank: job.rerank,
            removable,
        },
        seconds: started.elapsed().as_secs_f64(),
    })
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
fn probe_removal(index: &mut IndexImpl) -> bool {
    IdSelector::batch(&[Idx::new(u64::MAX >> 2)])
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

/// Picks the smallest parameter value whose recall@10 reaches the target: doubling until it
/// does, then bisecting between the last miss and the first hit.
fn tune(
    index: &mut IndexImpl,
    job: &TrainJob,
    nlist: Option<usize>,
    rng: &mut fastrand::Rng,
) -> Result<(Option<(String, usize)>, f64), MemoryError> {
    let probe = Probe::new(job, rng)?;
    let Some((name, max)) = tunable(&job.factory, nlist) else {
        return Ok((None, probe.recall(index, job)?));
    };
    let mut at = |value: usize| -> Result<f64, MemoryError> {
        set_param(index, name, value)?;
        probe.recall(index, job)
    };
    let (mut miss, mut hit) = (0, None);
    let mut value = 1;
    loop {
        let recall = at(value)?;
        if recall >= job.target_recall {
            hit = Some((value, recall));
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
            factory = %job.factory, target = job.target_recall,
            "memory: target recall not reached even at {name}={max}"
        );
        let recall = at(max)?;
        return Ok((Some((name.to_owned(), max)), recall));
    };
    while best - miss > 1 {
        let mid = miss + (best - miss) / 2;
        let recall = at(mid)?;
        if recall >= job.target_recall {
            (best, best_recall) = (mid, recall);
        } else {
            miss = mid;
        }
    }
    set_param(index, name, best)?;
    Ok((Some((name.to_owned(), best)), best_recall))
}

/// Sample queries drawn from the collection, with their exact neighbours.
struct Probe {
    queries: Vec<f32>,
    query_ids: Vec<u64>,
    truth: Vec<Vec<u64>>,
    row_of: HashMap<u64, usize>,
}

impl Probe {
    fn new(job: &TrainJob, rng: &mut fastrand::Rng) -> Result<Self, MemoryError> {
        let (dim, n) = (job.dim, job.ids.len());
        let count = job.tune_queries.clamp(1, n);
        let rows = rng.choose_multiple(0..n, count);
        let queries: Vec<f32> = rows
            .iter()
            .flat_map(|&r| &job.data[r * dim..(r + 1) * dim])
            .copied()
            .collect();
        let query_ids: Vec<u64> = rows.iter().map(|&r| job.ids[r]).collect();
        let mut exact = faiss::index_factory(dim as u32, "Flat", MetricType::InnerProduct)
            .map_err(MemoryError::index("create exact index"))?;
        exact
            .add(&job.data)
            .map_err(MemoryError::index("add exact"))?;
        let res = exact
            .search(&queries, RECALL_K + 1)
            .map_err(MemoryError::index("exact search"))?;
        // A query is itself a stored vector: its own id is dropped from both sides.
        let truth = res
            .labels
            .chunks(RECALL_K + 1)
            .zip(&query_ids)
            .map(|(labels, self_id)| {
                labels
                    .iter()
                    .filter_map(|l| l.get().map(|row| job.ids[row as usize]))
                    .filter(|id| id != self_id)
                    .take(RECALL_K)
                    .collect()
            })
            .collect();
        let row_of = job.ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        Ok(Self {
            queries,
            query_ids,
            truth,
            row_of,
        })
    }

    fn recall(&self, index: &mut IndexImpl, job: &TrainJob) -> Result<f64, MemoryError> {
        let dim = job.dim;
        let fetch = (RECALL_K + 1) * job.rerank.unwrap_or(1);
        let fetch = fetch.min(job.ids.len());
        let res = index
            .search(&self.queries, fetch)
            .map_err(MemoryError::index("search"))?;
        let mut hits = 0;
        for (q, labels) in res.labels.chunks(fetch).enumerate() {
            let self_id = self.query_ids[q];
            let query = &self.queries[q * dim..(q + 1) * dim];
            let mut found: Vec<(u64, f32)> = labels
                .iter()
                .filter_map(|l| l.get())
                .filter(|&id| id != self_id)
                .map(|id| (id, 0.0))
                .collect();
            if job.rerank.is_some() {
                for (id, score) in &mut found {
                    let r = self.row_of[id];
                    *score = dot(query, &job.data[r * dim..(r + 1) * dim]);
                }
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
            hits += found
                .iter()
                .take(RECALL_K)
                .filter(|(id, _)| self.truth[q].contains(id))
                .count();
        }
        let possible: usize = self.truth.iter().map(Vec::len).sum();
        Ok(if possible == 0 {
            1.0
        } else {
            hits as f64 / possible as f64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_counts() {
        assert_eq!(list_count("IVF1024,SQ8"), Some(1024));
        assert_eq!(list_count("OPQ16,IVF256,PQ16np"), Some(256));
        assert_eq!(list_count("HNSW32"), None);
    }
}
