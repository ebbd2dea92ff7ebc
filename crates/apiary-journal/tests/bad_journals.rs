//! Journals that cannot be used as they are: another swarm's, another format's, a damaged
//! file, a record that no longer decodes into its agent's type. Each is an error naming the
//! file (and the record); nothing is deleted.

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
use apiary_journal::{Journal, JournalConfig, JournalError};

struct Echo;

impl Agent for Echo {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        Ok(n)
    }
}

/// Takes text where `Echo` took numbers: the same agent name, a changed task type.
struct Shout;

impl Agent for Shout {
    type Task = String;
    type Output = String;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        s: String,
        _: &AgentContext<String, String>,
    ) -> Result<String, Self::Error> {
        Ok(s.to_uppercase())
    }
}

/// A journal of swarm `swarm_name` in `dir` with one finished task and `pending` recorded but
/// never run: written on a runtime of its own that is then dropped with the tasks still
/// queued, as a process that died would leave it.
async fn write_journal(dir: &std::path::Path, swarm_name: &str, pending: u64) {
    let (dir, swarm_name) = (dir.to_owned(), swarm_name.to_owned());
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let kept = rt.block_on(async {
            let journal = Journal::open(JournalConfig::new(&dir, &swarm_name))
                .await
                .unwrap();
            let swarm = Swarm::builder()
                .resource(journal.clone())
                .agent(AgentSpec::new("echo"), || Echo)
                .start()
                .await
                .unwrap();
            let echo = journal.agent::<u64, u64>(&swarm, "echo").unwrap();
            assert_eq!(echo.submit(7).await.unwrap().await.unwrap(), 7);
            swarm.pause("echo").unwrap();
            let mut handles = Vec::new();
            for n in 0..pending {
                handles.push(echo.submit(n).await.unwrap());
            }
            (journal, swarm, echo, handles)
        });
        // The "process" dies: every task still queued goes with its runtime, unrecorded.
        drop(rt);
        drop(kept);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn another_swarms_journal_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 0).await;
    let err = Journal::open(JournalConfig::new(dir.path(), "beta"))
        .await
        .unwrap_err();
    let JournalError::Foreign {
        path,
        expected,
        found,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(path, &dir.path().join("journal.redb"));
    assert_eq!((expected.as_str(), found.as_str()), ("beta", "alpha"));
    assert!(err
        .to_string()
        .contains("belongs to swarm `alpha`, not `beta`"));
}

#[tokio::test]
async fn a_damaged_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 0).await;
    let file = dir.path().join("journal.redb");
    // Truncated to half, as a disk that filled up or a copy cut short would leave it.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = Journal::open(JournalConfig::new(dir.path(), "alpha"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Storage { ref path, .. } if path == &file),
        "{err}"
    );
    assert!(err.to_string().contains("journal.redb"), "{err}");

    // Not a database at all.
    std::fs::write(&file, b"this is not a journal").unwrap();
    let err = Journal::open(JournalConfig::new(dir.path(), "alpha"))
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("journal.redb"), "{err}");
    // Nothing was deleted or replaced.
    assert_eq!(std::fs::read(&file).unwrap(), b"this is not a journal");
}

#[tokio::test]
async fn a_header_redb_would_assert_on_is_an_error_not_a_panic() {
    // Found by the `journal_file` fuzz target: a header whose page size disagrees with the
    // build made redb 2 assert while `inspect` (and `apiary journal`) opened the file; redb 4
    // reports it, and the error names the file.
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 0).await;
    let file = dir.path().join("journal.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..4], b"redb");
    bytes[12..16].copy_from_slice(&8192u32.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let err = Journal::inspect(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Storage { ref path, .. } if path == &file),
        "{err}"
    );
    assert!(err.to_string().contains("page size"), "{err}");
    let err = Journal::open(JournalConfig::new(dir.path(), "alpha"))
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::Storage { .. }), "{err}");
}

#[tokio::test]
async fn a_task_that_no_longer_decodes_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 3).await;
    let journal = Journal::open(JournalConfig::new(dir.path(), "alpha"))
        .await
        .unwrap();
    let swarm = Swarm::builder()
        .resource(journal.clone())
        .agent(AgentSpec::new("echo"), || Shout)
        .start()
        .await
        .unwrap();
    let shout = journal.agent::<String, String>(&swarm, "echo").unwrap();
    let report = shout.resume().await;
    assert!(report.resumed.is_empty());
    assert_eq!(report.undecodable.len(), 3);
    for err in &report.undecodable {
        let JournalError::Undecodable { path, record, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(path, &dir.path().join("journal.redb"));
        assert!(
            record.starts_with("task ") && record.contains("agent `echo`"),
            "{record}"
        );
    }
    // Kept: still recorded, still without an outcome.
    let unfinished: Vec<_> = journal
        .tasks()
        .unwrap()
        .into_iter()
        .filter(|t| t.outcome.is_none())
        .collect();
    assert_eq!(unfinished.len(), 3);
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_journal_of_another_format_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 0).await;
    let file = dir.path().join("journal.redb");
    // As a later apiary would stamp it.
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).unwrap();
            meta.insert("format", 2u32.to_le_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Journal::open(JournalConfig::new(dir.path(), "alpha"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Version { found: 2, expected: 1, ref path } if path == &file),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "journal {} has format 2; this build reads format 1",
            file.display()
        )
    );
}

#[tokio::test]
async fn a_byte_damaged_anywhere_is_an_error_or_harmless_never_a_panic() {
    // Without verifying checksums at open, redb panics on many damaged pages (the
    // `journal_file` fuzz target found dozens). One byte set at offsets spread over a real
    // journal: each open either works or is an error naming the file.
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "alpha", 3).await;
    let file = dir.path().join("journal.redb");
    let original = std::fs::read(&file).unwrap();
    let (mut errors, mut opened) = (0, 0);
    for at in (0..original.len()).step_by(211) {
        let mut bytes = original.clone();
        bytes[at] ^= 0x5A;
        std::fs::write(&file, &bytes).unwrap();
        match Journal::inspect(dir.path()).await {
            Ok(_) => opened += 1,
            Err(err) => {
                assert!(err.to_string().contains("journal.redb"), "{err}");
                errors += 1;
            }
        }
    }
    // Damage inside the live pages must be caught, not only in the header.
    assert!(errors > 3, "{errors} errors, {opened} harmless");
}
