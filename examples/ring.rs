//! Ring: each agent hands its work on to its successor. Sentences flow through a four-stage
//! text pipeline (split, lowercase, drop stop words, count). Each stage hands the task on
//! (`AgentContext::hand_off`) instead of waiting for the rest of the ring, so the result of
//! the last stage answers the submitter of the first. Midway one stage crashes on an item
//! (its submitter gets the panic) and the ring routes around the stopped stage.
//!
//! Run: `cargo run --example ring`

use apiary::prelude::*;
use apiary::topology::Ring;
use apiary::{BoxError, RestartType};

#[derive(Clone, Debug)]
struct Item {
    id: usize,
    words: Vec<String>,
    stages: Vec<String>,
}

enum Step {
    Split,
    Lower,
    DropStopWords,
    Count,
}

struct Stage(Step);

impl Agent for Stage {
    type Task = Item;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, mut item: Item, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        item.stages.push(ctx.name().to_string());
        match &self.0 {
            Step::Split => {
                item.words = item
                    .words
                    .join(" ")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            Step::Lower => {
                if item.words.iter().any(|w| w == "CRASH") {
                    panic!("stage `lower` crashes on item #{}", item.id);
                }
                item.words.iter_mut().for_each(|w| *w = w.to_lowercase());
            }
            Step::DropStopWords => item
                .words
                .retain(|w| !["the", "a", "of", "and"].contains(&w.as_str())),
            Step::Count => {
                return Ok(format!(
                    "#{} {} words {:?} via {}",
                    item.id,
                    item.words.len(),
                    item.words,
                    item.stages.join(" -> ")
                ));
            }
        }
        // Hand on without waiting: the successor's result answers this item's submitter, and
        // this stage takes its next item at once.
        let next = ctx.successor::<Item, String>()?;
        Err(ctx.hand_off(&next, item).await.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let swarm = Swarm::builder()
        .topology(Ring::new())
        .agent(AgentSpec::new("split"), || Stage(Step::Split))
        .agent(
            AgentSpec::new("lower").restart(RestartType::Temporary),
            || Stage(Step::Lower),
        )
        .agent(AgentSpec::new("stopwords"), || Stage(Step::DropStopWords))
        .agent(AgentSpec::new("count"), || Stage(Step::Count))
        .start()
        .await?;

    let sentences = [
        "The Queen of the Hive",
        "A Drone and a Worker",
        "CRASH",
        "Pollen and Nectar",
        "The Dance of the Bees",
    ];
    std::panic::set_hook(Box::new(|info| eprintln!("(expected) {info}")));
    let mut events = swarm.subscribe();
    let mut results = Vec::new();
    for (id, s) in sentences.iter().enumerate() {
        let item = Item {
            id,
            words: vec![s.to_string()],
            stages: Vec::new(),
        };
        let handle = swarm.route::<Item, String>(item).await?;
        if *s == "CRASH" {
            // Wait for the crash before sending more, so later items are routed around the
            // stopped stage rather than queued for it.
            println!("#{id} {:?}", handle.await.map_err(|e| e.to_string()));
            loop {
                if let EventKind::AgentStopped { agent, .. } = events.recv().await?.kind() {
                    println!("stage `{agent}` stopped; the ring now skips it");
                    break;
                }
            }
        } else {
            results.push(handle);
        }
    }
    println!("results, each answered by the last stage it reached:");
    for handle in results {
        println!("  {}", handle.await?);
    }
    swarm.shutdown().await;
    Ok(())
}
