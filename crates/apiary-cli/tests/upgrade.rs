//! Files apiary wrote on redb 2 (tests/fixtures/redb2: a journal and a memory store made by
//! the real code before apiary moved to redb 4) are refused with an error that names them and
//! says how to convert them; `apiary upgrade` converts them, and what they held reads back.

use std::path::Path;

use apiary::journal::{Journal, JournalConfig, JournalError};
use apiary::memory::{Memory, MemoryConfig, MemoryError};
use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn old_files() -> tempfile::TempDir {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redb2");
    let dir = tempfile::tempdir().unwrap();
    for name in ["journal.redb", "memory.redb"] {
        std::fs::copy(fixtures.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// `apiary upgrade DIR`, run.
fn upgrade(dir: &Path) -> assert_cmd::assert::Assert {
    Command::cargo_bin("apiary")
        .unwrap()
        .arg("upgrade")
        .arg(dir)
        .assert()
}

#[tokio::test]
async fn old_files_are_refused_naming_them_then_upgrade_converts_them() {
    let dir = old_files();
    let journal = dir.path().join("journal.redb");
    let store = dir.path().join("memory.redb");
    let before = std::fs::read(&journal).unwrap();

    let err = Journal::inspect(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, JournalError::OldFormat { ref path, .. } if path == &journal),
        "{err}"
    );
    assert!(err.to_string().contains("apiary upgrade"), "{err}");
    let err = Memory::open(MemoryConfig::new(8).persist_to(dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MemoryError::OldFormat { ref path, .. } if path == &store),
        "{err}"
    );
    // Refusing did not touch the file.
    assert_eq!(std::fs::read(&journal).unwrap(), before);

    Command::cargo_bin("apiary")
        .unwrap()
        .args(["status", "--state"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("journal.redb").and(contains("apiary upgrade")));

    upgrade(dir.path()).success().stdout(
        contains("journal.redb: converted to the current format")
            .and(contains("memory.redb: converted to the current format")),
    );

    // Everything the old journal held reads back: tasks, their outcomes, their steps (a table
    // whose key encoding changed) and tallies.
    let (swarm, _) = Journal::inspect(dir.path()).await.unwrap();
    assert_eq!(swarm, "seed");
    {
        let journal = Journal::open(JournalConfig::new(dir.path(), "seed"))
            .await
            .unwrap();
        let tasks = journal.tasks().unwrap();
        let mut squares = Vec::new();
        for task in &tasks {
            match journal.outcome::<u64>(task.id).unwrap() {
                Some(Ok(square)) => squares.push(square),
                other => panic!("task {}: {other:?}", task.id.get()),
            }
            let steps = journal.steps(task.id).unwrap();
            assert_eq!(steps.len(), 2, "task {}: {steps:?}", task.id.get());
            assert!(steps.iter().any(|s| s.starts_with("square")), "{steps:?}");
        }
        squares.sort_unstable();
        assert_eq!(squares, [1, 4, 9]);
        assert_eq!(journal.tally("runs/last-started").unwrap(), 1);
    }
    Command::cargo_bin("apiary")
        .unwrap()
        .args(["status", "--state"])
        .arg(dir.path())
        .assert()
        .success();
    let memory = Memory::open(MemoryConfig::new(8).persist_to(dir.path()))
        .await
        .unwrap();
    let lesson: Option<String> = memory.get("lessons/linker").await.unwrap();
    assert_eq!(lesson.as_deref(), Some("add -lopenblas"));
    memory.close().await;

    // Again: nothing to do, and it says so.
    upgrade(dir.path())
        .success()
        .stdout(contains("journal.redb: already in the current format"));
}

#[test]
fn upgrade_of_a_directory_without_apiary_files_names_it() {
    let dir = tempfile::tempdir().unwrap();
    upgrade(dir.path())
        .code(2)
        .stderr(contains(dir.path().to_str().unwrap()).and(contains("no journal.redb")));
}

#[test]
fn upgrade_of_a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("journal.redb"), b"this is not a journal").unwrap();
    upgrade(dir.path()).code(2).stderr(contains("journal.redb"));
    assert_eq!(
        std::fs::read(dir.path().join("journal.redb")).unwrap(),
        b"this is not a journal"
    );
}
