//! Ring: each agent hands its work on to its successor. Sentences flow through a four-stage
//! text pipeline (split, lowercase, drop stop words, count); the last stage prints them in
//! the order they entered. Midway one stage is stopped and the ring routes around it.
//!
//! Run: `cargo run --example ring`

use std::sync::{Arc, Mutex};

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
    Count(Arc<Mutex<Vec<String>>>),
}

struct Stage(Step);

impl Agent for Stage {
    type Task = Item;
    type Output = ();
    type Error = BoxError;

    async fn handle(
        &mut self,
        mut item: Item,
        ctx: &AgentContext<Item, ()>,
    ) -> Result<(), BoxError> {
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
            Step::Count(out) => {
                out.lock().unwrap().push(format!(
                    "#{} {} words {:?} via {}",
                    item.id,
                    item.words.len(),
                    item.words,
                    item.stages.join(" -> ")
                ));
                return Ok(());
            }
        }
        // Hand on without waiting: this stage takes its next item meanwhile.
        drop(ctx.forward(item).await?);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let out: Arc<Mutex<Vec<String>>> = Arc::default();
    let o = out.clone();
    let swarm = Swarm::builder()
        .topology(Ring::new())
        .agent(AgentSpec::new("split"), || Stage(Step::Split))
        .agent(
            AgentSpec::new("lower").restart(RestartType::Temporary),
            || Stage(Step::Lower),
        )
        .agent(AgentSpec::new("stopwords"), || Stage(Step::DropStopWords))
        .agent(AgentSpec::new("count"), move || {
            Stage(Step::Count(o.clone()))
        })
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
    for (id, s) in sentences.iter().enumerate() {
        let item = Item {
            id,
            words: vec![s.to_string()],
            stages: Vec::new(),
        };
        drop(swarm.route(item).await?);
        if *s == "CRASH" {
            // Wait for the crash before sending more, so later items are routed around the
            // stopped stage rather than queued for it.
            loop {
                if let EventKind::AgentStopped { agent, .. } = events.recv().await?.kind() {
                    println!("stage `{agent}` stopped; the ring now skips it");
                    break;
                }
            }
        }
    }
    // Shutdown waits until the pipeline is empty, then stops the stages.
    swarm.shutdown().await;
    println!(
        "items in arrival order at the last stage (after the crash, `lower` is routed around):"
    );
    for line in out.lock().unwrap().iter() {
        println!("  {line}");
    }
    Ok(())
}
