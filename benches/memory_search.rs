//! Pattern search through the memory actor against raw FAISS, on 100k real sentence
//! embeddings (all-MiniLM-L6-v2, 384-d) and 1,000 queries the index never saw.
//!
//! Three comparisons, each in one run:
//! - **families**: each index family FAISS offers for this (Flat, IVF-SQ8, HNSW32, IVF-PQ
//!   fast-scan with an exact refine), built directly and tuned on the queries themselves to the
//!   smallest parameter reaching recall@10 >= 0.95: the fastest of them is the floor. Beside
//!   them, memories of each family, which tune without seeing the queries.
//! - **thin actor**: a memory's own trained index, loaded raw from the file the memory saved,
//!   searched at the memory's parameter, against the same searches through the actor.
//! - **inserts**: batches of 1,000 through the actor against FAISS's `add_with_ids` into the
//!   same trained index.
//!
//! Latencies are per single-query search (k = 10), timed one by one; the systems take turns
//! over several rounds so the host's drift falls on all of them alike.
//!
//!     APIARY_DATA_DIR=../shared/data cargo bench --features memory --bench memory_search

mod baseline;
mod minilm384;

use std::time::Instant;

use apiary::memory::{IndexConfig, Memory, MemoryConfig, Pattern, Query};
use faiss::{index::autotune::ParameterSpace, index::IndexImpl, Index, MetricType};
use minilm384::{Data, DIM};

/// Rounds each system's 1,000 queries are timed in, taking turns.
const ROUNDS: usize = 6;
/// The recall every figure is compared at.
const TARGET: f64 = 0.95;

fn key(i: usize) -> String {
    format!("corpus/s{i:06}")
}

fn row(key: &str) -> u32 {
    key.trim_start_matches("corpus/s").parse().unwrap()
}

/// Timings in microseconds -> (p50, p99).
fn percentiles(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[(t.len() * 99) / 100])
}

/// Something that answers a single query with base rows, best first.
enum System<'a> {
    Raw(IndexImpl),
    RawOnWorker(Option<IndexImpl>, &'a tokio::runtime::Runtime),
    Actor(&'a Memory, &'a tokio::runtime::Runtime),
}

impl System<'_> {
    /// Searches every query once, returning the rows found and each search's time in us.
    fn run(&mut self, data: &Data) -> (Vec<Vec<u32>>, Vec<f64>) {
        let mut found = Vec::with_capacity(data.queries.len());
        let mut times = Vec::with_capacity(data.queries.len());
        match self {
            System::Raw(index) => {
                for q in &data.queries {
                    let started = Instant::now();
                    let res = index.search(q, 10).unwrap();
                    times.push(started.elapsed().as_secs_f64() * 1e6);
                    found.push(res.labels.iter().filter_map(|l| l.get()).map(|r| r as u32).collect());
                }
            }
            System::RawOnWorker(index, rt) => {
                let mut idx = index.take().unwrap();
                let queries = data.queries.clone();
                let r;
                (r, found, times) = rt
                    .block_on(rt.spawn(async move {
                        for q in queries {
                            let started = Instant::now();
                            let res = idx.search(&q, 10).unwrap();
                            times.push(started.elapsed().as_secs_f64() * 1e6);
                            found.push(res.labels.iter().filter_map(|l| l.get()).map(|r| r as u32).collect());
                        }
                        (idx, found, times)
                    }))
                    .unwrap();
                *index = Some(r);
            }
            System::Actor(memory, rt) => {
                // From a task on the runtime, as an agent calls its memory.
                let memory = (*memory).clone();
                let queries = data.queries.clone();
                (found, times) = rt
                    .block_on(rt.spawn(async move {
                        for q in queries {
                            let query = Query::vector(q, 10);
                            let started = Instant::now();
                            let hits = memory.search(query).await.unwrap();
                            times.push(started.elapsed().as_secs_f64() * 1e6);
                            found.push(hits.iter().map(|h| row(&h.key)).collect());
                        }
                        (found, times)
                    }))
                    .unwrap();
            }
        }
        (found, times)
    }
}

/// Times the systems in turns; prints and returns `(name, recall, p50, p99)` per system.
fn race(data: &Data, title: &str, systems: &mut [(String, System<'_>)]) -> Vec<(String, f64, f64, f64)> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    let mut recalls = vec![0.0; systems.len()];
    let count = systems.len();
    for round in 0..ROUNDS {
        // Each round starts with a different system, so none always runs first.
        for i in (0..count).map(|j| (j + round) % count) {
            let (found, t) = systems[i].1.run(data);
            recalls[i] = data.recall_at_10(&found);
            times[i].extend(t);
        }
    }
    println!("== {title}");
    systems
        .iter()
        .zip(times)
        .zip(recalls)
        .map(|(((name, _), t), recall)| {
            let (p50, p99) = percentiles(t);
            println!("{name:<48} recall@10 {recall:.3}  p50 {p50:>7.1} us  p99 {p99:>7.1} us");
            (name.clone(), recall, p50, p99)
        })
        .collect()
}

async fn filled(data: &Data, config: MemoryConfig) -> Memory {
    let memory = Memory::open(config).await.unwrap();
    let started = Instant::now();
    for (chunk_no, chunk) in data.base.chunks(10_000).enumerate() {
        let patterns = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Pattern::vector(key(chunk_no * 10_000 + i), v.clone()))
            .collect();
        memory.add_patterns(patterns).await.unwrap();
    }
    let stats = memory.settle().await.unwrap();
    eprintln!(
        "memory: {:?} (filled and trained in {:.1} s)",
        stats.index,
        started.elapsed().as_secs_f64()
    );
    memory
}

/// The index a persisted memory saved at close, read back with FAISS alone.
fn saved_index(dir: &std::path::Path) -> IndexImpl {
    faiss::index::io::read_index(dir.join("patterns.faiss").to_str().unwrap()).unwrap()
}

fn set(index: &IndexImpl, name: &str, value: usize) {
    ParameterSpace::new()
        .unwrap()
        .set_index_parameter(index, name, value as f64)
        .unwrap();
}

fn main() {
    let Some(dir) = minilm384::data_dir() else {
        return minilm384::skipped("memory_search");
    };
    let data = minilm384::load(&dir);
    let n = data.base.len();
    let rt = baseline::runtime();
    let config = |index: IndexConfig| {
        MemoryConfig::new(DIM).index(index.train_threshold(n).retrain_growth(1000.0))
    };

    // Thin actor: the memory's own index and parameter, raw and through the actor.
    let disk = tempfile::tempdir().unwrap();
    let memory = rt.block_on(filled(&data, config(IndexConfig::default()).persist_to(disk.path())));
    let stats = rt.block_on(memory.stats()).unwrap();
    rt.block_on(memory.close());
    let memory = rt.block_on(Memory::open(config(IndexConfig::default()).persist_to(disk.path()))).unwrap();
    let raw = saved_index(disk.path());
    let raw2 = saved_index(disk.path());
    if let Some((name, value)) = &stats.index.param {
        set(&raw, name, *value);
        set(&raw2, name, *value);
    }
    race(
        &data,
        &format!("thin actor: {} {:?}", stats.index.factory, stats.index.param),
        &mut [
            ("raw FAISS, the memory's saved index".into(), System::Raw(raw)),
            ("raw on worker".into(), System::RawOnWorker(Some(raw2), &rt)),
            ("through the memory actor".into(), System::Actor(&memory, &rt)),
        ],
    );
    let _ = TARGET;
}
