//! The memory on 100k real sentence embeddings (all-MiniLM-L6-v2, 384-d): search through the
//! memory actor vs exact FAISS Flat search in the same run, recall@10 against the dataset's
//! exact neighbours, bytes per vector, and insert throughput into a trained index.
//!
//! The full set is not in the repository: point `APIARY_DATA_DIR` at the directory holding
//! `minilm384_{base,query}.f16` and `minilm384_gt.u32` (in this workplace, `../shared/data`).
//!
//!     APIARY_DATA_DIR=../shared/data cargo bench --features memory --bench memory

mod baseline;
mod minilm384;

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use apiary::memory::{IndexConfig, Memory, MemoryConfig, Pattern, Query};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use faiss::{index::IndexImpl, Index, MetricType};
use minilm384::{data_dir, load, read_f16, row, Data, DIM};

/// The "standard" memory of this bench: IVF-SQ8, the default until fast-scan replaced it
/// (`benches/memory_search.rs` compares the families), kept so its figures stay comparable.
fn ivf_sq8() -> IndexConfig {
    IndexConfig::default().factory("IVF{nlist},SQ8")
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Serialized size of a FAISS index: its codes, ids and centroids, i.e. what it holds in RAM.
fn index_bytes(index: &IndexImpl) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.faiss");
    faiss::index::io::write_index(index, path.to_str().unwrap()).unwrap();
    std::fs::metadata(&path).unwrap().len() as usize
}

async fn filled(data: &Data, config: MemoryConfig) -> (Memory, f64) {
    let memory = Memory::open(config).await.unwrap();
    let started = Instant::now();
    let stats = minilm384::fill(&memory, data).await;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("memory: {stats:?} (filled and trained in {seconds:.1} s)");
    (memory, seconds)
}

async fn recall_at_10(memory: &Memory, data: &Data) -> f64 {
    let mut hits = 0;
    for (q, truth) in data.queries.iter().zip(&data.gt) {
        let found = memory.search(Query::vector(q.clone(), 10)).await.unwrap();
        hits += found
            .iter()
            .filter(|h| truth[..10].contains(&row(&h.key)))
            .count();
    }
    hits as f64 / (data.queries.len() * 10) as f64
}

/// The same index type as the memory's quantized one, built directly with FAISS.
fn quantized_index(data: &Data, factory: &str) -> IndexImpl {
    let mut index = faiss::index_factory(DIM as u32, factory, MetricType::InnerProduct).unwrap();
    let flat: Vec<f32> = data.base.iter().flatten().copied().collect();
    let sample = &flat[..flat.len().min(60_000 * DIM)];
    index.train(sample).unwrap();
    let ids: Vec<faiss::Idx> = (0..data.base.len() as u64).map(faiss::Idx::new).collect();
    index.add_with_ids(&flat, &ids).unwrap();
    index
}

fn bench(c: &mut Criterion) {
    let Some(dir) = data_dir() else {
        return minilm384::skipped("memory");
    };
    let rt = baseline::runtime();
    let data = load(&dir);
    let n = data.base.len();
    let f32_bytes = DIM * 4;
    eprintln!(
        "memory bench: {n} base vectors, {} queries",
        data.queries.len()
    );

    // Exact baseline: FAISS Flat (inner product), searched directly.
    let mut flat = faiss::index_factory(DIM as u32, "Flat", MetricType::InnerProduct).unwrap();
    let all: Vec<f32> = data.base.iter().flatten().copied().collect();
    flat.add(&all).unwrap();
    drop(all);

    let config = |index: IndexConfig| {
        MemoryConfig::new(DIM).index(index.train_threshold(n).retrain_growth(1000.0))
    };
    // Two persisted memories, closed (saving their indexes) and reopened in a child process
    // each to read what they cost in RAM; the compact one is then reopened here.
    let disk = tempfile::tempdir().unwrap();
    let sq8_disk = tempfile::tempdir().unwrap();
    let compact_config = || config(IndexConfig::default().compact(10)).persist_to(disk.path());
    let (on_disk, on_disk_train_s) = rt.block_on(filled(&data, compact_config()));
    rt.block_on(on_disk.close());
    let (sq8, _) = rt.block_on(filled(&data, config(ivf_sq8()).persist_to(sq8_disk.path())));
    rt.block_on(sq8.close());
    let rss_sq8 = reopened_rss(sq8_disk.path(), "standard", n);
    let rss_compact = reopened_rss(disk.path(), "compact", n);
    let on_disk = rt.block_on(Memory::open(compact_config())).unwrap();

    let rss_0 = rss_bytes();
    let (standard, train_s) = rt.block_on(filled(&data, config(ivf_sq8())));
    let rss_1 = rss_bytes();
    let (strict, strict_train_s) =
        rt.block_on(filled(&data, config(ivf_sq8().target_recall(0.96))));
    let (compact, compact_train_s) =
        rt.block_on(filled(&data, config(IndexConfig::default().compact(10))));
    let s_stats = rt.block_on(standard.stats()).unwrap();
    let t_stats = rt.block_on(strict.stats()).unwrap();
    let c_stats = rt.block_on(compact.stats()).unwrap();
    let d_stats = rt.block_on(on_disk.stats()).unwrap();

    let mut direct = quantized_index(&data, &s_stats.index.factory);
    let bytes_standard = index_bytes(&direct);
    let bytes_compact = index_bytes(&quantized_index(&data, &c_stats.index.factory));
    let bytes_flat = index_bytes(&flat);
    println!("== memory report ({n} x {DIM} all-MiniLM-L6-v2 vectors, 1,000 queries)");
    for (name, memory, stats, bytes, train) in [
        (
            "standard (target 0.95)",
            &standard,
            &s_stats,
            bytes_standard,
            train_s,
        ),
        (
            "standard (target 0.96)",
            &strict,
            &t_stats,
            bytes_standard,
            strict_train_s,
        ),
        (
            "compact (target 0.95)",
            &compact,
            &c_stats,
            bytes_compact,
            compact_train_s,
        ),
        (
            "compact on disk (target 0.95)",
            &on_disk,
            &d_stats,
            bytes_compact,
            on_disk_train_s,
        ),
    ] {
        let recall = rt.block_on(recall_at_10(memory, &data));
        println!(
            "{name}: {} {:?}, tuned recall {:.4}, recall@10 vs dataset ground truth {recall:.3}, \
             index {:.1} bytes/vector = 1/{:.1} of f32, exact vectors in RAM {} bytes/vector, \
             fill+train {train:.1} s",
            stats.index.factory,
            stats.index.param,
            stats.index.recall.unwrap_or(f64::NAN),
            bytes as f64 / n as f64,
            (n * f32_bytes) as f64 / bytes as f64,
            stats.vector_bytes / n,
        );
    }
    println!(
        "flat: {:.1} bytes/vector; process RSS growth: filling and training the standard memory \
         {:.1} bytes/vector; reopening from disk in a fresh process and running the 1,000 \
         queries: standard (SQ8) {rss_sq8:.1} bytes/vector, compact on disk {rss_compact:.1} \
         bytes/vector",
        bytes_flat as f64 / n as f64,
        rss_1.saturating_sub(rss_0) as f64 / n as f64,
    );

    let next = AtomicUsize::new(0);
    let mut group = c.benchmark_group("memory_search_k10");
    group.throughput(Throughput::Elements(1));
    group.bench_function("faiss_flat_exact", |b| {
        b.iter(|| {
            let q = &data.queries[next.fetch_add(1, Ordering::Relaxed) % data.queries.len()];
            flat.search(q, 10).unwrap()
        })
    });
    for (name, memory) in [
        ("actor_ivf_sq8", &standard),
        ("actor_ivf_sq8_target_0.96", &strict),
        ("actor_compact_pq_rerank", &compact),
        ("actor_compact_pq_rerank_on_disk", &on_disk),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let q =
                    data.queries[next.fetch_add(1, Ordering::Relaxed) % data.queries.len()].clone();
                async move { memory.search(Query::vector(q, 10)).await.unwrap() }
            })
        });
    }
    group.finish();

    // Inserts into the trained index, batches of 1,000 new vectors: through the memory actor
    // (key checks, normalisation, tables, exact copy, FAISS add) vs FAISS's own add into the
    // same kind of trained index.
    let mut group = c.benchmark_group("memory_insert_trained");
    let batch = 1_000;
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(20);
    let fresh = AtomicUsize::new(0);
    let batch_vectors = |fresh: &AtomicUsize| -> Vec<(usize, Vec<f32>)> {
        (0..batch)
            .map(|_| {
                let i = fresh.fetch_add(1, Ordering::Relaxed);
                (i, data.queries[i % data.queries.len()].clone())
            })
            .collect()
    };
    group.bench_with_input(
        BenchmarkId::new("faiss_ivf_sq8_direct", batch),
        &batch,
        |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rows = batch_vectors(&fresh);
                    let ids: Vec<faiss::Idx> = rows
                        .iter()
                        .map(|(i, _)| faiss::Idx::new((n + i) as u64))
                        .collect();
                    let flat: Vec<f32> = rows.into_iter().flat_map(|(_, v)| v).collect();
                    let started = Instant::now();
                    direct.add_with_ids(&flat, &ids).unwrap();
                    total += started.elapsed();
                }
                total
            })
        },
    );
    group.bench_with_input(BenchmarkId::new("actor_ivf_sq8", batch), &batch, |b, _| {
        b.to_async(&rt).iter_custom(|iters| {
            let (fresh, standard, batch_vectors) = (&fresh, &standard, &batch_vectors);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let patterns: Vec<Pattern> = batch_vectors(fresh)
                        .into_iter()
                        .map(|(i, v)| Pattern::vector(format!("fresh/{i}"), v))
                        .collect();
                    let started = Instant::now();
                    standard.add_patterns(patterns).await.unwrap();
                    total += started.elapsed();
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

/// Set in the child process that measures a reopened memory's RSS: `<dir> <compact|standard>`.
const RSS_CHILD_VAR: &str = "APIARY_BENCH_RSS_CHILD";

/// Opens the persisted memory in `dir` in a fresh process, runs the dataset's queries, and
/// prints the process's RSS growth: what a memory of this kind costs once it runs again
/// from disk, free of whatever filling and training left in the allocator.
fn rss_child(spec: &str) {
    let (dir, kind) = spec.rsplit_once(' ').expect("<dir> <kind>");
    // Only the queries are loaded: freed base rows would leave heap for the memory to reuse.
    let data_dir = data_dir().expect("APIARY_DATA_DIR");
    let queries = read_f16(&data_dir.join("minilm384_query.f16"));
    let n = std::fs::metadata(data_dir.join("minilm384_base.f16"))
        .unwrap()
        .len() as usize
        / (DIM * 2);
    let index = match kind {
        "compact" => IndexConfig::default().compact(10),
        _ => ivf_sq8(),
    };
    let rt = baseline::runtime();
    let before = rss_bytes();
    let memory = rt
        .block_on(Memory::open(
            MemoryConfig::new(DIM)
                .persist_to(dir)
                .index(index.train_threshold(n).retrain_growth(1000.0)),
        ))
        .unwrap();
    for q in &queries {
        rt.block_on(memory.search(Query::vector(q.clone(), 10)))
            .unwrap();
    }
    let stats = rt.block_on(memory.stats()).unwrap();
    let grown = rss_bytes().saturating_sub(before);
    println!("rss_growth {grown} origin {:?}", stats.index.origin);
}

/// Runs [`rss_child`] for `dir` and returns the RSS growth per vector.
fn reopened_rss(dir: &Path, kind: &str, n: usize) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(RSS_CHILD_VAR, format!("{} {kind}", dir.display()))
        .output()
        .expect("run the RSS child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("rss_growth "))
        .unwrap_or_else(|| {
            panic!(
                "RSS child failed: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("{kind} memory reopened: {line}");
    let bytes: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    bytes / n as f64
}

fn main() {
    if let Ok(spec) = std::env::var(RSS_CHILD_VAR) {
        return rss_child(&spec);
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
