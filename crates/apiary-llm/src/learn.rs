//! Learning from experience with what apiary has: outcomes of past tasks stored in the
//! swarm's memory, and the most similar ones recalled into the system prompt of a new task.

use apiary_core::Caller;
use apiary_memory::{Memory, MemoryError, Pattern, Query};

use crate::agent::Completion;

/// Where an agent keeps its lessons, and how many it recalls.
#[derive(Debug, Clone)]
pub(crate) struct Learn {
    pub(crate) namespace: String,
    pub(crate) k: usize,
}

impl Learn {
    /// `system`, with the outcomes of the `k` most similar past tasks appended.
    pub(crate) async fn recall(
        &self,
        ctx: &Caller,
        prompt: &str,
        system: Option<String>,
    ) -> Option<String> {
        let Ok(memory) = ctx.resource::<Memory>() else {
            return system;
        };
        let query = Query::text(prompt, self.k).namespace(self.namespace.clone());
        let hits = match memory.search(query).await {
            Ok(hits) => hits,
            // Nothing stored in the namespace yet: nothing to recall.
            Err(MemoryError::UnknownNamespace { .. }) => return system,
            Err(e) => {
                tracing::warn!(agent = %ctx.name(), error = %e, "cannot recall past outcomes");
                return system;
            }
        };
        let mut lessons = Vec::new();
        for hit in hits {
            if let Ok(Some(outcome)) = memory.get::<String>(&hit.key).await {
                lessons.push(format!("- {outcome}"));
            }
        }
        if lessons.is_empty() {
            return system;
        }
        let recalled = format!(
            "Outcomes of similar earlier tasks, most similar first:\n{}",
            lessons.join("\n")
        );
        Some(match system {
            Some(s) => format!("{s}\n\n{recalled}"),
            None => recalled,
        })
    }

    /// Stores the outcome of a task under a key derived from its prompt and answer.
    pub(crate) async fn store(&self, ctx: &Caller, prompt: &str, completion: &Completion) {
        let Ok(memory) = ctx.resource::<Memory>() else {
            return;
        };
        let hash =
            xxhash_rust::xxh3::xxh3_64(format!("{prompt}\u{0}{}", completion.text).as_bytes());
        let key = format!("{}/{}-{hash:016x}", self.namespace, ctx.name());
        let outcome = format!("task: {prompt} / outcome: {}", completion.text);
        let stored = async {
            memory.put(&key, &outcome).await?;
            memory
                .add_pattern(Pattern::text(key.clone(), prompt).meta("agent", ctx.name().as_str()))
                .await
        };
        if let Err(e) = stored.await {
            tracing::warn!(agent = %ctx.name(), error = %e, "cannot store the outcome to learn from");
        }
    }
}
