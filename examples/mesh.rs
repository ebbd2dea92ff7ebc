//! Mesh: every agent reaches every other. Six shard agents each hold part of a text; one of
//! them broadcasts a query to all its peers and merges their answers, and swarm-level tasks
//! go to the least-loaded agent with the right capability.
//!
//! Run: `cargo run --example mesh`

use std::sync::{Arc, Mutex};

use apiary::prelude::*;
use apiary::topology::Mesh;
use apiary::{BoxError, RouteRequest};

const TEXT: &str = "the bee visits the flower and the flower feeds the bee \
    a swarm is many bees working as one and one bee alone makes little honey \
    the hive keeps the queen warm and the workers bring pollen home";

#[derive(Clone, Debug)]
enum Query {
    /// Count this word in your shard.
    Count(String),
    /// Ask every peer to count this word and add up their answers.
    Gather(String),
}

struct Shard {
    words: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent for Shard {
    type Task = Query;
    type Output = usize;
    type Error = BoxError;

    async fn handle(&mut self, q: Query, ctx: &Ctx<Self>) -> Result<usize, BoxError> {
        match q {
            Query::Count(word) => {
                let n = self.words.iter().filter(|w| **w == word).count();
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("{} counted {n} x `{word}`", ctx.name()));
                Ok(n)
            }
            Query::Gather(word) => {
                let mut total = self.words.iter().filter(|w| **w == word).count();
                for (peer, sent) in ctx
                    .broadcast::<Query, usize>(Query::Count(word.clone()))
                    .await
                {
                    let n = sent?.await?;
                    self.log
                        .lock()
                        .unwrap()
                        .push(format!("{} heard {n} from {peer}", ctx.name()));
                    total += n;
                }
                Ok(total)
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let words: Vec<String> = TEXT.split_whitespace().map(str::to_owned).collect();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut builder = Swarm::builder().topology(Mesh);
    for (i, chunk) in words.chunks(words.len().div_ceil(6)).enumerate() {
        let (chunk, log) = (chunk.to_vec(), log.clone());
        let caps = if i % 2 == 0 {
            vec!["even"]
        } else {
            vec!["odd"]
        };
        builder = builder.agent(
            AgentSpec::new(format!("shard{i}")).capabilities(caps),
            move || Shard {
                words: chunk.clone(),
                log: log.clone(),
            },
        );
    }
    let swarm = builder.start().await?;

    let shard0 = swarm.agent::<Query, usize>("shard0")?;
    let total = shard0.submit(Query::Gather("the".into())).await?.await?;
    let expected = words.iter().filter(|w| *w == "the").count();
    println!("`the` appears {total} times across the mesh (checked: {expected})");
    for line in log.lock().unwrap().drain(..) {
        println!("  {line}");
    }

    let odd = RouteRequest {
        capability: Some("odd"),
    };
    for word in ["bee", "hive", "honey"] {
        let h = swarm
            .route_with::<_, usize>(Query::Count(word.into()), odd, SubmitOptions::new())
            .await?;
        let agent = h.agent().clone();
        println!(
            "routed `{word}` to {agent} (capability `odd`, least loaded): {}",
            h.await?
        );
    }
    swarm.shutdown().await;
    Ok(())
}
