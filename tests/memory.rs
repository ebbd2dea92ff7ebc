//! Agents share the swarm's memory through their context: one stores results and patterns,
//! another recalls them by key and by similarity.

use apiary::memory::{Memory, MemoryConfig, Pattern, Query};
use apiary::prelude::*;
use apiary::MissingResource;

/// Stores each note under `notes/<n>` and as a text pattern; answers with the key.
struct Scribe {
    written: usize,
}

/// Finds the note most similar to the task text; answers with its stored value.
struct Librarian;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct MemoryFailure(String);

impl From<apiary::memory::MemoryError> for MemoryFailure {
    fn from(e: apiary::memory::MemoryError) -> Self {
        Self(e.to_string())
    }
}

impl From<MissingResource> for MemoryFailure {
    fn from(e: MissingResource) -> Self {
        Self(e.to_string())
    }
}

impl Agent for Scribe {
    type Task = String;
    type Output = String;
    type Error = MemoryFailure;

    async fn handle(&mut self, note: String, ctx: &Ctx<Self>) -> Result<String, MemoryFailure> {
        let memory = ctx.resource::<Memory>()?;
        let key = format!("notes/{}-{}", ctx.name(), self.written);
        self.written += 1;
        memory.put(&key, &note).await?;
        memory
            .add_pattern(Pattern::text(key.clone(), note).meta("by", ctx.name().as_str()))
            .await?;
        Ok(key)
    }
}

impl Agent for Librarian {
    type Task = String;
    type Output = String;
    type Error = MemoryFailure;

    async fn handle(&mut self, question: String, ctx: &Ctx<Self>) -> Result<String, MemoryFailure> {
        let memory = ctx.resource::<Memory>()?;
        let hits = memory
            .search(Query::text(question, 1).namespace("notes"))
            .await?;
        let hit = hits
            .first()
            .ok_or_else(|| MemoryFailure("nothing stored".into()))?;
        let value: Option<String> = memory.get(&hit.key).await?;
        value.ok_or_else(|| MemoryFailure(format!("{} has no value", hit.key)))
    }
}

#[tokio::test]
async fn agents_store_and_recall_through_the_swarm_memory() {
    let memory = Memory::open(MemoryConfig::new(128).namespace("notes"))
        .await
        .unwrap();
    let swarm = Swarm::builder()
        .resource(memory.clone())
        .agent(AgentSpec::new("scribe"), || Scribe { written: 0 })
        .agent(AgentSpec::new("librarian").depends_on(["scribe"]), || {
            Librarian
        })
        .start()
        .await
        .unwrap();
    let scribe = swarm.agent::<String, String>("scribe").unwrap();
    let librarian = swarm.agent::<String, String>("librarian").unwrap();

    for note in [
        "the linker needs openblas for lapack symbols",
        "the flaky test passes on the second attempt",
        "clippy wants the unused import removed",
    ] {
        scribe.submit(note.to_owned()).await.unwrap().await.unwrap();
    }
    let answer = librarian
        .submit("which test is flaky".to_owned())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(answer, "the flaky test passes on the second attempt");

    // The swarm and the agents see the same memory.
    let keys = swarm
        .resource::<Memory>()
        .unwrap()
        .list("notes/")
        .await
        .unwrap();
    assert_eq!(keys, ["notes/scribe-0", "notes/scribe-1", "notes/scribe-2"]);
    let hits = memory
        .search(Query::text("openblas", 3).filter("by", "scribe"))
        .await
        .unwrap();
    assert_eq!(hits[0].key, "notes/scribe-0");

    swarm.shutdown().await;
    // The swarm does not own the memory: it is still open after shutdown.
    assert_eq!(memory.pattern_count().await.unwrap(), 3);
    memory.close().await;
}
