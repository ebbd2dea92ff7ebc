//! The MiniLM embedder against sentence-transformers, on the real model files.
//!
//! The model directory is `target/models/all-MiniLM-L6-v2` (made by `scripts/minilm-model.sh`,
//! which `scripts/setup.sh test` runs) or `APIARY_MINILM_DIR`.
#![cfg(feature = "minilm")]

use std::path::{Path, PathBuf};

use apiary_memory::{
    Embedder, HashingEmbedder, Memory, MemoryConfig, MiniLmEmbedder, ModelError, Pattern, Query,
};

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("APIARY_MINILM_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models/all-MiniLM-L6-v2"),
        PathBuf::from,
    );
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no model: run scripts/minilm-model.sh (scripts/setup.sh test does)",
        dir.display()
    );
    dir
}

fn fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm");
    let text = std::fs::read_to_string(data.join("sentences.txt")).unwrap();
    // Lines as they are: leading and trailing spaces belong to a fixture sentence.
    let mut sentences: Vec<String> = text.split('\n').map(str::to_owned).collect();
    sentences.pop();
    let bytes = std::fs::read(data.join("reference.f32")).unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let reference: Vec<Vec<f32>> = floats.chunks_exact(384).map(<[f32]>::to_vec).collect();
    assert_eq!(sentences.len(), reference.len());
    (sentences, reference)
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn agrees_with_sentence_transformers_on_every_fixture_sentence() {
    let minilm = MiniLmEmbedder::load(model_dir()).unwrap();
    assert_eq!(minilm.dim(), 384);
    let (sentences, reference) = fixture();
    assert!(sentences.len() >= 200);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let vectors = minilm.embed_batch(&texts).unwrap();
    let mut worst = (1.0f32, 0);
    for (i, (v, r)) in vectors.iter().zip(&reference).enumerate() {
        let c = cos(v, r);
        if c < worst.0 {
            worst = (c, i);
        }
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sentence {i} has norm {norm}");
    }
    eprintln!("lowest cosine: {} (sentence {})", worst.0, worst.1);
    assert!(
        worst.0 >= 0.999,
        "sentence {} ({:?}) has cosine {} to its reference",
        worst.1,
        sentences[worst.1],
        worst.0
    );
    // One text at a time (no padding) gives the same vectors as the batch.
    for i in [0, 100, sentences.len() - 1] {
        let one = minilm.embed(&sentences[i]).unwrap();
        assert!(cos(&one, &vectors[i]) > 0.99999, "sentence {i} alone");
    }
}

/// Each query, its paraphrase (the source, sharing almost no words with it), and a
/// distractor that shares the query's words but not its meaning.
const CASES: [(&str, &str, &str); 6] = [
    (
        "the linker cannot find openblas",
        "undefined reference errors when linking against the BLAS library",
        "the cat cannot find its favourite toy",
    ),
    (
        "the test suite hangs forever waiting on the network",
        "tests block indefinitely because a socket never answers",
        "the hotel suite was waiting for us on the beach",
    ),
    (
        "the build ran out of memory while compiling",
        "compilation was killed because RAM was exhausted",
        "the children ran out of the house to play",
    ),
    (
        "rotate the API keys every ninety days",
        "credentials should be replaced each quarter",
        "grandma keeps her house keys in a jar",
    ),
    (
        "the reviewer rejected the patch for lacking tests",
        "the change was turned down since it had no test coverage",
        "a patch of sunflowers grew behind the barn",
    ),
    (
        "how do I speed up a slow database query",
        "make the SQL statement run faster",
        "the slow turtle won the race",
    ),
];

async fn ranks_sources(embedder: impl Embedder) -> usize {
    let memory = Memory::open(MemoryConfig::new(embedder.dim()).embedder(embedder))
        .await
        .unwrap();
    let mut patterns = Vec::new();
    for (i, (_, source, distractor)) in CASES.iter().enumerate() {
        patterns.push(Pattern::text(format!("lessons/source-{i}"), *source));
        patterns.push(Pattern::text(
            format!("lessons/distractor-{i}"),
            *distractor,
        ));
    }
    memory.add_patterns(patterns).await.unwrap();
    let mut found = 0;
    for (i, (query, _, _)) in CASES.iter().enumerate() {
        let hits = memory.search(Query::text(*query, 1)).await.unwrap();
        found += usize::from(hits[0].key == format!("lessons/source-{i}"));
    }
    memory.close().await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paraphrase_finds_its_source_among_distractors_sharing_its_words() {
    let minilm = MiniLmEmbedder::load(model_dir()).unwrap();
    assert_eq!(ranks_sources(minilm).await, CASES.len());
    // The hashing embedder sees only shared words, and falls for the distractors.
    assert!(ranks_sources(HashingEmbedder::new(384)).await < CASES.len());
}

fn copy_model(to: &Path) {
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir().join(name), to.join(name)).unwrap();
    }
}

#[test]
fn a_missing_or_corrupt_file_is_an_error_naming_it() {
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        let dir = tempfile::tempdir().unwrap();
        copy_model(dir.path());
        std::fs::remove_file(dir.path().join(name)).unwrap();
        match MiniLmEmbedder::load(dir.path()) {
            Err(ModelError::Missing { path }) => assert_eq!(path, dir.path().join(name)),
            other => panic!("{name} removed: {other:?}"),
        }
    }
    type Damage = fn(Vec<u8>) -> Vec<u8>;
    let damage: [(&str, Damage); 5] = [
        ("config.json", |_| b"{\"model_type\": \"bert\"".to_vec()),
        ("config.json", |b| {
            String::from_utf8(b)
                .unwrap()
                .replace("\"gelu\"", "\"relu\"")
                .into_bytes()
        }),
        ("tokenizer.json", |b| b[..b.len() / 2].to_vec()),
        ("model.safetensors", |b| b[..b.len() / 2].to_vec()),
        ("model.safetensors", |mut b| {
            // The header names the tensors: rename the first layer's query weights.
            let at = b
                .windows(7)
                .position(|w| w == b"layer.0")
                .expect("a tensor name in the header");
            b[at + 6] = b'9';
            b
        }),
    ];
    for (name, damage) in damage {
        let dir = tempfile::tempdir().unwrap();
        copy_model(dir.path());
        let path = dir.path().join(name);
        std::fs::write(&path, damage(std::fs::read(&path).unwrap())).unwrap();
        match MiniLmEmbedder::load(dir.path()) {
            Err(e @ ModelError::Corrupt { .. }) => {
                let ModelError::Corrupt { path: at, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(at, &path, "{e}");
                assert!(e.to_string().contains(name), "{e}");
            }
            other => panic!("{name} damaged: {other:?}"),
        }
    }
}

#[test]
fn long_texts_are_cut_at_the_token_limit() {
    let minilm = MiniLmEmbedder::load(model_dir()).unwrap();
    // One sentence, then 400 tokens about something else.
    let long = format!(
        "the build failed because the linker could not find openblas. {}",
        "the weather is sunny and warm by the sea. ".repeat(40)
    );
    let cut = minilm.embed(&long).unwrap();
    let longer = format!("{long} and then something else entirely happened");
    // Everything past 256 tokens is dropped, so the tail changes nothing.
    assert!(cos(&cut, &minilm.embed(&longer).unwrap()) > 0.99999);
    let short = minilm.clone().max_tokens(16);
    assert!(cos(&cut, &short.embed(&long).unwrap()) < 0.99999);
}
