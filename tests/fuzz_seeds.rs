//! Writes the valid files the `journal_file` and `memory_files` fuzz targets damage
//! (fuzz/seeds/): a journal and a memory store made by the real code, so the fuzzers start
//! from valid files (random bytes alone never get past a database header). Run by hand
//! after a file format changes:
//!
//!     cargo test --features journal,memory --test fuzz_seeds -- --ignored

#![cfg(all(feature = "journal", feature = "memory"))]

use std::path::Path;

use apiary::journal::{Journal, JournalConfig, Steps};
use apiary::memory::{Memory, MemoryConfig};
use apiary::{Agent, AgentContext, AgentSpec, BoxError, Swarm};

/// Records a step, so the seed journal holds a task, its outcome, its key and a step.
struct Squarer;

impl Agent for Squarer {
    type Task = u64;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, n: u64, ctx: &AgentContext<u64, u64>) -> Result<u64, BoxError> {
        Ok(ctx.step("square", |_| async move { n * n }).await?)
    }
}

fn write(name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[tokio::test]
#[ignore = "writes the fuzz seed corpora; run by hand"]
async fn write_fuzz_seeds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(JournalConfig::new(dir.path(), "seed"))
            .await
            .unwrap();
        let swarm = Swarm::builder()
            .resource(journal.clone())
            .agent(AgentSpec::new("squarer"), || Squarer)
            .start()
            .await
            .unwrap();
        let squarer = journal.agent::<u64, u64>(&swarm, "squarer").unwrap();
        let square = squarer.submit_keyed("job-3", 3).await.unwrap().await;
        assert_eq!(square.unwrap(), 9);
        journal.add_to_tally("runs/last-started", 1).await.unwrap();
        swarm.shutdown().await;
    }
    write(
        "journal.redb",
        &std::fs::read(dir.path().join("journal.redb")).unwrap(),
    );

    let dir = tempfile::tempdir().unwrap();
    {
        let memory = Memory::open(MemoryConfig::new(8).persist_to(dir.path()))
            .await
            .unwrap();
        memory
            .put("lessons/linker", "add -lopenblas")
            .await
            .unwrap();
        memory.close().await;
    }
    write(
        "memory.redb",
        &std::fs::read(dir.path().join("memory.redb")).unwrap(),
    );
}
