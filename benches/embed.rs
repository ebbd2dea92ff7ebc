//! Sentence embeddings per second: apiary's MiniLM embedder (candle) against
//! sentence-transformers on PyTorch (CPU), same model files, sentences and batch size, in the
//! same run.
//!
//! The sentences are the agreement fixture's 240 (crates/apiary-memory/tests/data/minilm),
//! embedded 32 at a time, as sentence-transformers' `encode` does by default. The PyTorch side
//! runs `scripts/minilm-reference.py bench` in the environment `scripts/pytorch-env.sh` makes
//! (`target/pyenv`), and is skipped with a note when that environment is missing.
//!
//!     bash scripts/minilm-model.sh && bash scripts/pytorch-env.sh
//!     cargo bench --features minilm --bench embed

use std::{path::Path, process::Command, time::Duration};

use apiary::memory::{Embedder, MiniLmEmbedder};
use criterion::{criterion_group, Criterion, Throughput};

const BATCH: usize = 32;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sentences() -> Vec<String> {
    let path = root().join("crates/apiary-memory/tests/data/minilm/sentences.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    lines.pop();
    lines
}

fn model_dir() -> std::path::PathBuf {
    std::env::var_os("APIARY_MINILM_DIR").map_or_else(
        || root().join("target/models/all-MiniLM-L6-v2"),
        std::path::PathBuf::from,
    )
}

/// sentence-transformers' figure, printed by the script, or why there is none.
fn pytorch(n: usize) -> String {
    let python = root().join("target/pyenv/bin/python");
    if !python.exists() {
        return format!(
            "skipped: {} is missing (bash scripts/pytorch-env.sh)",
            python.display()
        );
    }
    let out = Command::new(python)
        .arg(root().join("scripts/minilm-reference.py"))
        .arg("bench")
        .arg(root().join("crates/apiary-memory/tests/data/minilm/sentences.txt"))
        .arg(n.to_string())
        .arg(BATCH.to_string())
        .output()
        .expect("run the PyTorch side");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        stdout.trim().to_owned()
    } else {
        format!("failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr))
    }
}

fn bench(c: &mut Criterion) {
    let texts = sentences();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let minilm = MiniLmEmbedder::load(model_dir())
        .unwrap_or_else(|e| panic!("{e} (bash scripts/minilm-model.sh fetches the model)"))
        .batch_size(BATCH);

    // The baseline first, while nothing else of this process is running.
    println!("embed/pytorch: {}", pytorch(refs.len()));

    let mut group = c.benchmark_group("embed");
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("minilm_candle", |b| {
        b.iter(|| minilm.embed_batch(&refs).expect("embed"))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
