//! The manifest's `[memory]` table: the embedder the run's memory searches with.
#![cfg(feature = "minilm")]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn apiary() -> Command {
    Command::cargo_bin("apiary").unwrap()
}

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
    dir.canonicalize().unwrap()
}

/// Two stored results and a search whose query shares words with the wrong one only.
fn swarm(memory: &str) -> String {
    format!(
        r#"
        [swarm]
        name = "recall"
        {memory}

        [[agents]]
        name = "one"
        kind = "shell"
        config = {{ command = "echo undefined reference errors when linking against the BLAS library", store = "results/one" }}

        [[agents]]
        name = "two"
        kind = "shell"
        config = {{ command = "echo the cat cannot find its favourite toy", store = "results/two" }}

        [[agents]]
        name = "search"
        kind = "memory"
        depends_on = ["one", "two"]
        config = {{ action = "search", query = "the linker cannot find openblas", k = 1, namespace = "results" }}
        "#
    )
}

fn best_match(dir: &tempfile::TempDir, memory: &str) -> String {
    let path = dir.path().join("swarm.toml");
    std::fs::write(&path, swarm(memory)).unwrap();
    let out = apiary()
        .arg("run")
        .arg(&path)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "step" && l["agent"] == "search")
        .expect("the search step's line")["output"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn minilm_finds_the_stored_result_by_meaning_where_hashing_finds_shared_words() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = format!(
        "[memory]\nembedder = \"minilm\"\nmodel_dir = {:?}",
        model_dir().display().to_string()
    );
    let found = best_match(&dir, &minilm);
    assert!(found.trim_end().ends_with("results/one"), "{found}");
    assert!(best_match(&dir, "").trim_end().ends_with("results/two"));
}

#[test]
fn a_relative_model_dir_is_read_from_the_manifests_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(model_dir(), dir.path().join("model")).unwrap();
    let memory = "[memory]\nembedder = \"minilm\"\nmodel_dir = \"model\"";
    assert!(best_match(&dir, memory).trim_end().ends_with("results/one"));
}

#[test]
fn bad_memory_tables_are_errors_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.toml");
    let cases = [
        ("[memory]\nembedder = \"minilm\"", "needs model_dir"),
        (
            "[memory]\nmodel_dir = \"model\"",
            "model_dir is only for embedder = \"minilm\"",
        ),
        ("[memory]\nembedder = \"bert\"", "unknown variant `bert`"),
    ];
    for (memory, message) in cases {
        std::fs::write(&path, swarm(memory)).unwrap();
        apiary()
            .arg("validate")
            .arg(&path)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message));
    }
    // A model directory without the weights: the run stops before any step, naming the file.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(
        &path,
        swarm("[memory]\nembedder = \"minilm\"\nmodel_dir = \"empty\""),
    )
    .unwrap();
    apiary()
        .arg("run")
        .arg(&path)
        .assert()
        .failure()
        .stderr(predicate::str::contains("empty/config.json: missing"));
}
