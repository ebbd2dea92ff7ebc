//! Sentence embeddings per second: apiary's MiniLM embedder (candle) against
//! sentence-transformers on PyTorch (CPU), same model files, sentences and batch size, in the
//! same run.
//!
//! The sentences are the agreement fixture's 240 (crates/apiary-memory/tests/data/minilm),
//! embedded 32 at a time, as sentence-transformers' `encode` does by default: `fixture` is all
//! of them, one of which runs past the 256-token limit; `short` leaves that one out, so no
//! group is padded far past its texts and the two sides' arithmetic is compared alone. The PyTorch side
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
fn pytorch(sentences: &Path, n: usize) -> String {
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
        .arg(sentences)
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
    let all = sentences();
    let short: Vec<String> = all.iter().filter(|s| s.len() < 1000).cloned().collect();
    let short_path = root().join("target/embed-short-sentences.txt");
    std::fs::write(
        &short_path,
        short.iter().map(|s| format!("{s}\n")).collect::<String>(),
    )
    .expect("write the short sentences");
    let minilm = MiniLmEmbedder::load(model_dir())
        .unwrap_or_else(|e| panic!("{e} (bash scripts/minilm-model.sh fetches the model)"))
        .batch_size(BATCH);

    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, texts, path) in [
        (
            "fixture",
            &all,
            root().join("crates/apiary-memory/tests/data/minilm/sentences.txt"),
        ),
        ("short", &short, short_path.clone()),
    ] {
        // The baseline first, while nothing else of this process is running.
        println!("embed/{name}/pytorch: {}", pytorch(&path, texts.len()));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(refs.len() as u64));
        group.bench_function(format!("{name}/minilm_candle"), |b| {
            b.iter(|| minilm.embed_batch(&refs).expect("embed"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
