//! Pattern search through the memory against raw FAISS, on 100k real sentence embeddings
//! (all-MiniLM-L6-v2, 384-d) and 1,000 queries no index ever saw, all in one run.
//!
//! - **Families**: each index family FAISS offers for this, built directly: Flat, IVF-SQ8,
//!   HNSW32, and IVF-PQ fast-scan with FAISS's exact refine (`RFlat`). Each is tuned *on the
//!   queries themselves* to the smallest parameter reaching recall@10 >= 0.95, which no
//!   deployed index could do: the fastest of them is the floor. Beside them, memories of each
//!   family. The first 500 of the dataset's 1,000 queries are their traffic so far: they
//!   search them, then re-tune on that ring of recent queries (`Memory::retune`). Every
//!   figure is measured on the other 500, which no memory saw.
//! - **Thin memory**: each memory's own trained index, read back with FAISS alone from the
//!   file the memory saved at close and searched at the memory's parameter (fast-scan
//!   re-scored exactly against a plain array, as the memory does), against the same searches
//!   through the memory: each query searched by both back to back, the order alternating.
//! - **Inserts**: batches of 1,000 through the memory against FAISS's own `add_with_ids`
//!   into the same trained index, bare and followed by appending the batch's rows to a plain
//!   array holding the collection's (what the memory keeps for re-scoring, retraining and
//!   filtered searches), each on the main thread and on a runtime worker (where the memory's
//!   add runs), and for fast-scan against FAISS's add into that index under its own refine,
//!   `RFlat`, which keeps the rows too (the memory re-scores from its rows: it *is* an
//!   `IVF..,PQ..x4fs,RFlat`), on both kinds of thread too. Each side's total and median
//!   batch are read against the memory's, and its page faults per vector printed beside
//!   them. The kernel is handed freed, host-backed pages first, so that no side's rows land
//!   on pages the host never backed while another's do not.
//!
//! Latencies are single-query searches (k = 10) timed one by one from a task on the tokio
//! runtime, as an agent calls its memory. The systems take turns over several rounds, each
//! round starting with a different one, so the host's drift falls on all of them alike. The
//! headline pair also runs under criterion.
//!
//!     APIARY_DATA_DIR=../shared/data cargo bench --features memory --bench memory_search

mod baseline;
mod minilm384;

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use apiary::memory::{IndexConfig, Memory, MemoryConfig, Pattern, Query};
use criterion::Criterion;
use faiss::{
    index::{autotune::ParameterSpace, refine_flat::RefineFlatIndexImpl, IndexImpl},
    Idx, Index, MetricType,
};
use minilm384::{row, Data, DIM};
use tokio::runtime::Runtime;

/// Rounds of the race: each system searches a twentieth of the queries per round (25, a
/// few milliseconds), so the turns are short and drift on the host falls evenly on every
/// system (120 rounds: each query six times). Turns of a quarter moved the same pair's
/// ratio by 5-10% between runs on this shared host.
const ROUNDS: usize = 120;
/// Parts of the query set.
const PARTS: usize = 20;
/// The recall every figure is compared at.
const TARGET: f64 = 0.95;
/// Candidates per result the fast-scan indexes re-score exactly (FAISS's `k_factor_rf`; the
/// memory's own factor for fast-scan is the same).
const RERANK: usize = 4;

/// Microseconds -> (p50, p99).
fn percentiles(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[(t.len() * 99) / 100])
}

fn set(index: &IndexImpl, name: &str, value: usize) {
    ParameterSpace::new()
        .unwrap()
        .set_index_parameter(index, name, value as f64)
        .unwrap();
}

fn labels(res: &faiss::index::SearchResult) -> Vec<u32> {
    res.labels
        .iter()
        .filter_map(|l| l.get())
        .map(|r| r as u32)
        .collect()
}

/// Inner product in eight lanes, as fast as the memory's own re-scoring (a single running
/// sum is a chain of dependent adds the compiler may not vectorise).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum()
}

/// Something that answers one query with base rows, best first.
enum Searcher {
    /// A FAISS index searched directly.
    Raw(IndexImpl),
    /// A FAISS index fetching `RERANK * k` candidates, re-scored exactly against the base
    /// array (what the memory does for fast-scan, without the memory).
    RawReranked(IndexImpl, std::sync::Arc<Vec<f32>>),
    /// The memory.
    Memory(Memory),
}

impl Searcher {
    async fn search(&mut self, q: &[f32]) -> Vec<u32> {
        match self {
            Searcher::Raw(index) => labels(&index.search(q, 10).unwrap()),
            Searcher::RawReranked(index, base) => reranked(index, base, q),
            Searcher::Memory(memory) => {
                let hits = memory.search(Query::vector(q.to_vec(), 10)).await.unwrap();
                hits.iter().map(|h| row(&h.key)).collect()
            }
        }
    }
}

/// The 10 best of `RERANK * 10` candidates from `index`, re-scored exactly against `base`.
fn reranked(index: &mut IndexImpl, base: &[f32], q: &[f32]) -> Vec<u32> {
    let res = index.search(q, 10 * RERANK).unwrap();
    let mut scored: Vec<(u32, f32)> = labels(&res)
        .into_iter()
        .map(|r| {
            let v = &base[r as usize * DIM..(r as usize + 1) * DIM];
            (r, dot(v, q))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(10).map(|(r, _)| r).collect()
}

/// A named searcher and what it measured.
struct Entry {
    name: String,
    searcher: Option<Searcher>,
    recall: f64,
    found: Vec<Vec<u32>>,
    times: Vec<f64>,
}

impl Entry {
    fn new(name: impl Into<String>, searcher: Searcher) -> Self {
        Self {
            name: name.into(),
            searcher: Some(searcher),
            recall: 0.0,
            found: Vec::new(),
            times: Vec::new(),
        }
    }
}

/// One pass over `queries` on a runtime task, timing each search.
fn pass(
    rt: &Runtime,
    queries: &[Vec<f32>],
    mut searcher: Searcher,
) -> (Searcher, Vec<Vec<u32>>, Vec<f64>) {
    let queries = queries.to_vec();
    rt.block_on(rt.spawn(async move {
        let (mut found, mut times) = (Vec::new(), Vec::new());
        for q in queries {
            let started = Instant::now();
            let rows = searcher.search(&q).await;
            times.push(started.elapsed().as_secs_f64() * 1e6);
            found.push(rows);
        }
        (searcher, found, times)
    }))
    .unwrap()
}

/// Rounds of the thin pairs: each query searched this many times by each side.
const PAIRED_ROUNDS: usize = 6;

/// Two searchers on the same queries, back to back per query (which goes first alternates),
/// so that both meet the same moment of the host: their recall and latencies in query order.
fn paired(
    rt: &Runtime,
    data: &Data,
    a: Searcher,
    b: Searcher,
) -> ((f64, Vec<f64>), (f64, Vec<f64>)) {
    let queries = data.queries.clone();
    let (found, times) = rt
        .block_on(rt.spawn(async move {
            let mut pair = [a, b];
            let mut found = [Vec::new(), Vec::new()];
            let mut times = [Vec::new(), Vec::new()];
            for round in 0..PAIRED_ROUNDS {
                for (i, q) in queries.iter().enumerate() {
                    let first = (round + i) % 2;
                    for side in [first, 1 - first] {
                        let started = Instant::now();
                        let rows = pair[side].search(q).await;
                        times[side].push(started.elapsed().as_secs_f64() * 1e6);
                        if round == 0 {
                            found[side].push(rows);
                        }
                    }
                }
            }
            (found, times)
        }))
        .unwrap();
    let [ta, tb] = times;
    let [fa, fb] = found;
    ((data.recall_at_10(&fa), ta), (data.recall_at_10(&fb), tb))
}

/// Times the entries in turns and prints recall, p50 and p99 for each.
fn race(rt: &Runtime, data: &Data, title: &str, entries: &mut [Entry]) {
    let count = entries.len();
    let part = data.queries.len() / PARTS;
    for e in entries.iter_mut() {
        e.found = vec![Vec::new(); data.queries.len()];
    }
    for round in 0..ROUNDS {
        let range = (round % PARTS) * part..(round % PARTS + 1) * part;
        // Each round starts with a different system, so none always runs first.
        for i in (0..count).map(|j| (j + round) % count) {
            let e = &mut entries[i];
            let (searcher, found, times) =
                pass(rt, &data.queries[range.clone()], e.searcher.take().unwrap());
            e.searcher = Some(searcher);
            e.found.splice(range.clone(), found);
            e.times.extend(times);
        }
    }
    for e in entries.iter_mut() {
        e.recall = data.recall_at_10(&e.found);
    }
    println!(
        "== {title} ({ROUNDS} rounds of {part} queries: each of the {} {} times)",
        data.queries.len(),
        ROUNDS / PARTS
    );
    println!("| system | recall@10 | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for e in entries.iter() {
        let (p50, p99) = percentiles(e.times.clone());
        println!(
            "| {} | {:.3} | {p50:.1} us | {p99:.1} us |",
            e.name, e.recall
        );
    }
}

fn p50(e: &Entry) -> f64 {
    percentiles(e.times.clone()).0
}

/// A raw FAISS family and the parameter tuned on the queries.
struct Family {
    factory: &'static str,
    param: Option<(&'static str, usize)>,
    extra: Option<(&'static str, usize)>,
}

const FAMILIES: [Family; 4] = [
    Family {
        factory: "Flat",
        param: None,
        extra: None,
    },
    Family {
        factory: "IVF1265,SQ8",
        param: Some(("nprobe", 1265)),
        extra: None,
    },
    Family {
        factory: "HNSW32",
        param: Some(("efSearch", 512)),
        extra: None,
    },
    Family {
        factory: "IVF316,PQ192x4fs,RFlat",
        param: Some(("nprobe", 316)),
        extra: Some(("k_factor_rf", RERANK)),
    },
];

fn batch_recall(index: &mut IndexImpl, data: &Data, queries: &[f32]) -> f64 {
    let res = index.search(queries, 10).unwrap();
    let found: Vec<Vec<u32>> = res
        .labels
        .chunks(10)
        .map(|l| l.iter().filter_map(|x| x.get()).map(|x| x as u32).collect())
        .collect();
    data.recall_at_10(&found)
}

/// Builds a family directly (trained on the first 60k vectors) and sets the smallest
/// parameter whose recall@10 on the queries reaches `target`, by bisection.
fn raw_family(data: &Data, flat: &[f32], family: &Family, target: f64) -> (IndexImpl, String) {
    let started = Instant::now();
    let mut index =
        faiss::index_factory(DIM as u32, family.factory, MetricType::InnerProduct).unwrap();
    index.train(&flat[..flat.len().min(60_000 * DIM)]).unwrap();
    index.add(flat).unwrap();
    let built = started.elapsed().as_secs_f64();
    if let Some((name, value)) = family.extra {
        set(&index, name, value);
    }
    let queries: Vec<f32> = data.queries.iter().flatten().copied().collect();
    let Some((name, max)) = family.param else {
        return (index, family.factory.to_owned());
    };
    let (mut miss, mut hit) = (0, max);
    while hit - miss > 1 {
        let mid = miss + (hit - miss) / 2;
        set(&index, name, mid);
        if batch_recall(&mut index, data, &queries) >= target {
            hit = mid;
        } else {
            miss = mid;
        }
    }
    set(&index, name, hit);
    eprintln!(
        "raw {}: built in {built:.1} s, {name} = {hit} tuned on the queries",
        family.factory
    );
    (index, format!("{} {name}={hit}", family.factory))
}

async fn filled(data: &Data, config: MemoryConfig) -> (Memory, f64) {
    let memory = Memory::open(config).await.unwrap();
    let started = Instant::now();
    minilm384::fill(&memory, data).await;
    (memory, started.elapsed().as_secs_f64())
}

/// The index a persisted memory saved at close, read back with FAISS alone.
fn saved_index(dir: &Path) -> IndexImpl {
    faiss::index::io::read_index(dir.join("patterns.faiss").to_str().unwrap()).unwrap()
}

/// A memory of one family: filled, trained, closed (saving its index) and reopened.
struct MemoryRun {
    label: String,
    memory: Memory,
    /// The same configuration without a directory (inserts not waiting for the disk),
    /// trained on the same vectors with the same seed: the same IVF index (HNSW's graph
    /// depends on thread timing).
    in_ram: Memory,
    dir: tempfile::TempDir,
    stats: apiary::memory::MemoryStats,
}

fn memory_run(
    rt: &Runtime,
    data: &Data,
    traffic: &[Vec<f32>],
    label: &str,
    index: IndexConfig,
) -> MemoryRun {
    let n = data.base.len();
    let dir = tempfile::tempdir().unwrap();
    // Re-tuned when the bench says so, not on a timer in the middle of a race.
    let index = index
        .train_threshold(n)
        .retrain_growth(1000.0)
        .query_ring(traffic.len())
        .retune_every(None);
    let config = || {
        MemoryConfig::new(DIM)
            .persist_to(dir.path())
            .index(index.clone())
    };
    let (memory, seconds) = rt.block_on(filled(data, config()));
    rt.block_on(memory.close());
    let memory = rt.block_on(Memory::open(config())).unwrap();
    let stats = rt.block_on(memory.stats()).unwrap();
    let (in_ram, _) = rt.block_on(filled(data, MemoryConfig::new(DIM).index(index)));
    let twin = rt.block_on(in_ram.stats()).unwrap().index;
    if (&twin.param, twin.recall) != (&stats.index.param, stats.index.recall) {
        // HNSW inserts on several threads at once: its graph differs from build to build.
        eprintln!(
            "memory {label}: the in-RAM twin differs ({:?}, recall {:?}); inserts compare \
             the same family and training, not the same index",
            twin.param, twin.recall
        );
    }
    let i = &stats.index;
    eprintln!(
        "memory {label}: {} {:?}, recall on {:?} {:.3}, filled + trained in {seconds:.1} s, \
         reopened {:?}",
        i.factory,
        i.param,
        i.tuned_on,
        i.recall.unwrap_or(f64::NAN),
        i.origin
    );
    // The traffic so far, then a re-tuning on it.
    let (_, _, _) = pass(rt, traffic, Searcher::Memory(memory.clone()));
    let stats = rt.block_on(memory.retune()).unwrap();
    let i = &stats.index;
    eprintln!(
        "memory {label}: re-tuned to {:?}, recall on {:?} {:.3}",
        i.param,
        i.tuned_on,
        i.recall.unwrap_or(f64::NAN)
    );
    MemoryRun {
        label: format!("memory, {label}: {} {:?}", i.factory, i.param),
        memory,
        in_ram,
        dir,
        stats,
    }
}

/// The memory's own index read back raw, at the memory's parameter.
fn raw_twin(run: &MemoryRun, base: &std::sync::Arc<Vec<f32>>) -> Searcher {
    let index = saved_index(run.dir.path());
    if let Some((name, value)) = &run.stats.index.param {
        set(&index, name, *value);
    }
    if run.stats.index.factory.contains("x4fs") {
        Searcher::RawReranked(index, base.clone())
    } else {
        Searcher::Raw(index)
    }
}

fn main() {
    let Some(dir) = minilm384::data_dir() else {
        return minilm384::skipped("memory_search");
    };
    let mut data = minilm384::load(&dir);
    // The memories' traffic before the measurements; everything is measured on the rest.
    let traffic = data.take_queries(data.queries.len() / 2);
    // The raw indexes hold what the memories hold: the same vectors scaled to unit length
    // (indexing the file's rows as they are measured 0.001-0.002 more recall at the same
    // nprobe against the dataset's ground truth, computed on those rows).
    let flat = std::sync::Arc::new(data.flat_base_normalised());
    let rt = baseline::runtime();
    eprintln!(
        "memory_search: {} base vectors, {} queries",
        data.base.len(),
        data.queries.len()
    );

    // `MEMORY_SEARCH_ONLY=inserts`: the default memory's inserts alone (under a minute,
    // where the whole bench takes about three), for repeating issue 16's part 7;
    // `MEMORY_SEARCH_ONLY=inserts:<factory>` the same for another index, such as
    // `inserts:IVF{nlist},SQ8`.
    if let Ok(only) = std::env::var("MEMORY_SEARCH_ONLY") {
        let (label, config) = match only.strip_prefix("inserts:") {
            Some(factory) => (factory, IndexConfig::default().factory(factory)),
            None if only == "inserts" => ("default", IndexConfig::default()),
            None => panic!("MEMORY_SEARCH_ONLY={only}: expected `inserts` or `inserts:<factory>`"),
        };
        let runs = [memory_run(&rt, &data, &traffic, label, config)];
        inserts(&rt, &data, &flat, &runs);
        return;
    }
    let runs = [
        memory_run(&rt, &data, &traffic, "default", IndexConfig::default()),
        memory_run(
            &rt,
            &data,
            &traffic,
            "HNSW32",
            IndexConfig::default().factory("HNSW32"),
        ),
        memory_run(
            &rt,
            &data,
            &traffic,
            "IVF-SQ8",
            IndexConfig::default().factory("IVF{nlist},SQ8"),
        ),
    ];
    // "At the same recall": the raw families are tuned to what the default memory reached
    // on the queries (at least the target), so neither side is compared at less recall.
    let (_, found, _) = pass(&rt, &data.queries, Searcher::Memory(runs[0].memory.clone()));
    let same = data.recall_at_10(&found).max(TARGET);
    eprintln!("the default memory reaches recall@10 {same:.3} on the queries");
    let mut entries: Vec<Entry> = FAMILIES
        .iter()
        .map(|f| {
            let (index, name) = raw_family(&data, &flat, f, same);
            Entry::new(format!("raw FAISS {name}"), Searcher::Raw(index))
        })
        .collect();
    let raw_count = entries.len();
    for run in &runs {
        entries.push(Entry::new(&run.label, Searcher::Memory(run.memory.clone())));
    }
    race(
        &rt,
        &data,
        &format!("search k=10: raw FAISS families tuned on the queries to {same:.3}, and memories"),
        &mut entries,
    );
    // The floor: the fastest raw family (Flat aside) that reached the target.
    let floor = entries[..raw_count]
        .iter()
        .filter(|e| e.recall >= same && !e.name.ends_with("Flat"))
        .min_by(|a, b| p50(a).total_cmp(&p50(b)))
        .unwrap();
    println!("floor: {} at p50 {:.1} us", floor.name, p50(floor));
    for e in &entries[raw_count..] {
        println!(
            "{}: recall {:.3}, p50 {:.2}x the floor",
            e.name,
            e.recall,
            p50(e) / p50(floor)
        );
    }
    drop(entries);

    // The same index and parameter, raw and through the memory.
    for run in &runs {
        let (raw, memory) = paired(
            &rt,
            &data,
            raw_twin(run, &flat),
            Searcher::Memory(run.memory.clone()),
        );
        println!(
            "== thin memory: {} (each query searched by both, back to back, {PAIRED_ROUNDS} times)",
            run.label
        );
        println!("| system | recall@10 | p50 | p99 |");
        println!("| --- | --- | --- | --- |");
        for (name, e) in [
            ("raw FAISS, the memory's saved index", &raw),
            ("through the memory", &memory),
        ] {
            let (p50, p99) = percentiles(e.1.clone());
            println!("| {name} | {:.3} | {p50:.1} us | {p99:.1} us |", e.0);
        }
        let ratios: Vec<f64> = memory.1.iter().zip(&raw.1).map(|(m, r)| m / r).collect();
        println!(
            "{}: memory / raw p50 = {:.3}, median of the paired ratios = {:.3}",
            run.label,
            percentiles(memory.1.clone()).0 / percentiles(raw.1.clone()).0,
            percentiles(ratios).0
        );
    }

    // Criterion on the headline pair: the default memory against its raw twin.
    let mut c = Criterion::default().configure_from_args();
    let next = AtomicUsize::new(0);
    let mut group = c.benchmark_group("memory_search_k10");
    let Searcher::RawReranked(mut twin, base) = raw_twin(&runs[0], &flat) else {
        panic!("the default memory is not fast-scan: {}", runs[0].label);
    };
    // Re-scored as the memory does: before 2026-12-05 this side skipped the re-scoring (40
    // rows read from a 150 MB array), and read about 20% faster than the memory here.
    group.bench_function("faiss_fast_scan_saved_index_rerank", |b| {
        b.iter(|| {
            let q = &data.queries[next.fetch_add(1, Ordering::Relaxed) % data.queries.len()];
            reranked(&mut twin, &base, q)
        })
    });
    let memory = &runs[0].memory;
    group.bench_function("memory_default", |b| {
        b.to_async(&rt).iter(|| {
            let q = data.queries[next.fetch_add(1, Ordering::Relaxed) % data.queries.len()].clone();
            async move { memory.search(Query::vector(q, 10)).await.unwrap() }
        })
    });
    group.finish();

    inserts(&rt, &data, &flat, &runs);
    c.final_summary();
}

/// Minor page faults of the whole process so far (`/proc/self/stat`, field 10): each is a
/// page touched for the first time, which the kernel must zero (and, on a VM, the host may
/// have to back).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// What the first write to a page of a fresh mapping costs here: `bytes` mapped (a zeroed
/// allocation that large is mapped, not taken from the heap), one byte written per 4 KiB
/// page, then unmapped. On a VM a page the host never backed costs several times one the
/// guest's kernel had freed, so this is also how the bench hands the kernel freed pages that
/// are backed already: every side's rows then land on pages of the same kind.
fn touch_pages(bytes: usize) -> Duration {
    const PAGE: usize = 4096;
    let mut fresh = vec![0u8; bytes];
    let started = Instant::now();
    for page in fresh.chunks_mut(PAGE) {
        page[0] = 1;
    }
    let took = started.elapsed();
    std::hint::black_box(&fresh);
    took / (bytes / PAGE) as u32
}

/// New vector `i` for the inserts: the midpoint of two of the collection's (normalised)
/// rows, `i` and `i` plus half the collection, scaled to unit length. Each is new, and lies
/// among the collection's as a sentence's would. Before 2026-12-05 the inserts reused the
/// 500 queries, each then added dozens of times: over 36 batches HNSW added 5.2k of those
/// copies a second, against 7.6k-8.6k new vectors a second since.
fn fresh_vector(flat: &[f32], i: usize) -> Vec<f32> {
    let n = flat.len() / DIM;
    let (a, b) = (i % n, (i + n / 2) % n);
    let sum: Vec<f32> = flat[a * DIM..(a + 1) * DIM]
        .iter()
        .zip(&flat[b * DIM..(b + 1) * DIM])
        .map(|(x, y)| x + y)
        .collect();
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    sum.iter().map(|x| x / norm).collect()
}

/// Runs `work` on `state` in a task on the runtime, so on a worker thread, where the memory's
/// add runs; `state` goes there and comes back.
fn on_a_worker<S: Send + 'static, R: Send + 'static>(
    rt: &Runtime,
    state: &mut Option<S>,
    work: impl FnOnce(&mut S) -> R + Send + 'static,
) -> R {
    let mut s = state
        .take()
        .expect("a side's state is back from its last turn");
    let task = rt.spawn(async move {
        let r = work(&mut s);
        (s, r)
    });
    let (s, r) = rt.block_on(task).unwrap();
    *state = Some(s);
    r
}

/// Batches of 1,000 new vectors into each memory's trained index through the memory (in
/// RAM: with a directory each batch also waits for its commit to disk), against FAISS's
/// `add_with_ids` into the same index read back from the file, all taking turns. The floors:
/// the bare add, and the add plus appending the rows to a plain array holding the
/// collection's (as the memory keeps them), each on the bench's main thread and on a runtime
/// worker (where the memory's add runs: glibc gives each thread but the main one its own
/// heap, which behaves differently); for fast-scan, FAISS's add into the same trained index
/// under FAISS's own refine (`RFlat`), on both kinds of thread as well.
fn inserts(rt: &Runtime, data: &Data, flat: &[f32], runs: &[MemoryRun]) {
    const BATCH: usize = 1_000;
    // Forty: a batch here takes 5-7 ms, and the host stalls one now and then by 3-4 ms,
    // whichever side it is running; over twelve batches one such stall moved a side's
    // figure by 5%.
    const BATCHES: usize = 40;
    println!(
        "== inserts into the trained index, {BATCHES} batches of {BATCH} after one to warm up"
    );
    println!("(the sides take turns, in an order that moves on by one each batch)");
    println!(
        "| index | side | vectors/s | memory / side | memory / side, median batch | page faults per vector |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let n = data.base.len();
    let mut touched = Vec::new();
    for run in runs {
        // Each side's new rows land on pages of one kind: ones the kernel freed, which the
        // host already backs (a page it never backed cost 5-9 us here, against about 1.3 us,
        // and which side got which was luck: the memory's ratio to FAISS's `RFlat` add moved
        // from 0.56 to 0.97 over four runs of the same code).
        let first = touch_pages(1 << 30);
        touched.push((first, touch_pages(256 << 20)));
        // Each floor's array, like the memory's own, already holds the collection: new rows
        // go to pages past it, which it never wrote (a small array would reuse heap memory
        // the process freed, and fault far less than the memory's).
        let mut raw = saved_index(run.dir.path());
        let mut rows_kept = flat.to_vec();
        let mut on_worker = Some((saved_index(run.dir.path()), flat.to_vec()));
        let fast_scan = run.stats.index.factory.contains("x4fs");
        let refined = || {
            // IndexRefineFlat takes an empty base: the same trained index, emptied, then
            // filled with the collection in the memory's chunks (so its array of rows has
            // grown as the memory's did, and has room left, as the memory's has).
            let mut base = saved_index(run.dir.path());
            base.reset().unwrap();
            let mut refined = RefineFlatIndexImpl::new(base).unwrap();
            for chunk in flat.chunks(10_000 * DIM) {
                refined.add(chunk).unwrap();
            }
            refined
        };
        let mut refined_on_main = fast_scan.then(refined);
        let mut refined_on_worker = fast_scan.then(refined);
        // Time and page faults per side, in the order of `SIDES`.
        const SIDES: [&str; 7] = [
            "FAISS add_with_ids",
            "FAISS add + rows kept",
            "FAISS add_with_ids, on a runtime worker",
            "FAISS add + rows kept, on a runtime worker",
            "FAISS add into `RFlat` (its own refine keeps the rows)",
            "FAISS add into `RFlat`, on a runtime worker",
            "through the memory",
        ];
        const MEMORY: usize = SIDES.len() - 1;
        let mut took = [Duration::ZERO; SIDES.len()];
        let mut faults = [0u64; SIDES.len()];
        // Each counted batch's time per side, for the medians.
        let mut batches: [Vec<Duration>; SIDES.len()] = Default::default();
        // Runs `f` (one side's turn), adding its time and page faults to `side`'s.
        fn timed(side: usize, took: &mut [Duration], faults: &mut [u64], f: impl FnOnce()) {
            let before = minor_faults();
            let started = Instant::now();
            f();
            took[side] += started.elapsed();
            faults[side] += minor_faults() - before;
        }
        // Batch 0 warms every side up and is not counted: a side's first add from a thread
        // starts FAISS's OpenMP team for that thread (the memory's first batch took 8.8 ms
        // against 5.9-6.2 ms for the next ones in a harness).
        for b in 0..=BATCHES {
            if b == 1 {
                took = [Duration::ZERO; SIDES.len()];
                faults = [0; SIDES.len()];
            }
            let before = took;
            // New vectors, numbered past the collection.
            let rows: Vec<usize> = (b * BATCH..(b + 1) * BATCH).collect();
            let fresh: Vec<Vec<f32>> = rows.iter().map(|&i| fresh_vector(flat, i)).collect();
            let vectors: Vec<f32> = fresh.concat();
            let ids: Vec<Idx> = rows.iter().map(|&i| Idx::new((n + i) as u64)).collect();
            // The five turns, in an order that moves on by one each batch (each turn comes
            // first in eight batches), so that no side owes its figure to its
            // place: first after the bench's own work, or right after another's add.
            for turn in 0..5 {
                match (turn + b) % 5 {
                    0 => {
                        let (t, f) = (&mut took, &mut faults);
                        timed(0, t, f, || raw.add_with_ids(&vectors, &ids).unwrap());
                        timed(1, t, f, || rows_kept.extend_from_slice(&vectors));
                    }
                    1 => {
                        // Timed inside the task, as the memory's add runs inside its actor.
                        let (v, i) = (vectors.clone(), ids.clone());
                        let (t, f) = on_a_worker(rt, &mut on_worker, move |(index, kept)| {
                            let (mut t, mut f) = ([Duration::ZERO; 2], [0u64; 2]);
                            timed(0, &mut t, &mut f, || index.add_with_ids(&v, &i).unwrap());
                            timed(1, &mut t, &mut f, || kept.extend_from_slice(&v));
                            (t, f)
                        });
                        for side in 0..2 {
                            took[2 + side] += t[side];
                            faults[2 + side] += f[side];
                        }
                    }
                    2 => {
                        if let Some(refined) = &mut refined_on_main {
                            // IndexRefine numbers its vectors itself (no `add_with_ids`).
                            timed(4, &mut took, &mut faults, || refined.add(&vectors).unwrap());
                        }
                    }
                    3 if fast_scan => {
                        let v = vectors.clone();
                        let (t, f) = on_a_worker(rt, &mut refined_on_worker, move |refined| {
                            let (mut t, mut f) = ([Duration::ZERO], [0u64]);
                            timed(0, &mut t, &mut f, || refined.add(&v).unwrap());
                            (t, f)
                        });
                        took[5] += t[0];
                        faults[5] += f[0];
                    }
                    3 => {}
                    _ => {
                        let patterns: Vec<Pattern> = rows
                            .iter()
                            .zip(&fresh)
                            .map(|(i, v)| Pattern::vector(format!("fresh/{i}"), v.clone()))
                            .collect();
                        // Timed inside a task on the runtime, as an agent calls its memory
                        // (and as the worker floors are timed): not the bench's own hop from
                        // the main thread to a worker and back.
                        let memory = run.in_ram.clone();
                        let task = rt.spawn(async move {
                            let before = minor_faults();
                            let started = Instant::now();
                            memory.add_patterns(patterns).await.unwrap();
                            (started.elapsed(), minor_faults() - before)
                        });
                        let (t, f) = rt.block_on(task).unwrap();
                        took[MEMORY] += t;
                        faults[MEMORY] += f;
                    }
                }
            }
            if b > 0 {
                for (side, times) in batches.iter_mut().enumerate() {
                    times.push(took[side] - before[side]);
                }
            }
        }
        // Each rows floor is the add and the append, timed apart.
        for side in [1, 3] {
            took[side] += took[side - 1];
            faults[side] += faults[side - 1];
            let adds = batches[side - 1].clone();
            for (time, add) in batches[side].iter_mut().zip(adds) {
                *time += add;
            }
        }
        let median = |times: &[Duration]| {
            let mut sorted = times.to_vec();
            sorted.sort();
            sorted[sorted.len() / 2].as_secs_f64()
        };
        let per_s = |t: Duration| (BATCHES * BATCH) as f64 / t.as_secs_f64();
        for (side, name) in SIDES.iter().enumerate() {
            if (side == 4 || side == 5) && !fast_scan {
                continue;
            }
            println!(
                "| {} | {name} | {:.1}k | {:.2} | {:.2} | {:.2} |",
                run.stats.index.factory,
                per_s(took[side]) / 1e3,
                took[side].as_secs_f64() / took[MEMORY].as_secs_f64(),
                median(&batches[side]) / median(&batches[MEMORY]),
                faults[side] as f64 / (BATCHES * BATCH) as f64,
            );
        }
    }
    for ((first, then), run) in touched.iter().zip(runs) {
        println!(
            "before the inserts into {}: 1 GiB written at {:.2} us a page, then 256 MiB at \
             {:.2} us a page",
            run.stats.index.factory,
            first.as_secs_f64() * 1e6,
            then.as_secs_f64() * 1e6
        );
    }
}
