//! Star: a hub routes everything; spokes never talk to each other. The hub hands checksum
//! jobs on to its spokes in turn (`AgentContext::hand_off`: the spoke's answer goes straight
//! to the submitter and the hub is free for the next job at once); a spoke that tries to
//! reach another spoke is refused.
//!
//! Run: `cargo run --example star`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apiary::prelude::*;
use apiary::topology::Star;
use apiary::BoxError;

#[derive(Clone, Debug)]
enum Job {
    /// Checksum these bytes (FNV-1a).
    Checksum(Vec<u8>),
    /// Try to pass a job straight to another spoke.
    Sneak(String),
}

struct Spoke;

impl Agent for Spoke {
    type Task = Job;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, job: Job, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        match job {
            Job::Checksum(bytes) => {
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                });
                Ok(format!("{}: {hash:016x}", ctx.name()))
            }
            Job::Sneak(to) => {
                let other = ctx.agent::<Job, String>(&to)?;
                match other.submit(Job::Checksum(vec![1])).await {
                    Ok(_) => Ok("sneaked through (should not happen)".into()),
                    Err(e) => Ok(format!("refused: {e}")),
                }
            }
        }
    }
}

/// Hands each job on to the next spoke in turn.
struct Hub {
    spokes: Vec<String>,
    // Typed references to the spokes, taken once when the hub starts.
    refs: Vec<AgentRef<Job, String>>,
    assigned: Arc<Mutex<BTreeMap<String, usize>>>,
    next: usize,
}

impl Agent for Hub {
    type Task = Job;
    type Output = String;
    type Error = BoxError;

    async fn started(&mut self, ctx: &Ctx<Self>) -> Result<(), BoxError> {
        for spoke in &self.spokes {
            self.refs.push(ctx.agent::<Job, String>(spoke)?);
        }
        Ok(())
    }

    async fn handle(&mut self, job: Job, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        let spoke = &self.refs[self.next % self.refs.len()];
        self.next += 1;
        *self
            .assigned
            .lock()
            .unwrap()
            .entry(spoke.name().to_string())
            .or_default() += 1;
        Err(ctx.hand_off(spoke, job).await.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let spokes: Vec<String> = (0..4).map(|i| format!("spoke{i}")).collect();
    let assigned: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut builder = Swarm::builder().topology(Star::new("hub"));
    for s in &spokes {
        builder = builder.agent(AgentSpec::new(s.as_str()), || Spoke);
    }
    let (names, a) = (spokes.clone(), assigned.clone());
    builder = builder.agent(
        AgentSpec::new("hub").depends_on(spokes.clone()),
        move || Hub {
            spokes: names.clone(),
            refs: Vec::new(),
            assigned: a.clone(),
            next: 0,
        },
    );
    let swarm = builder.start().await?;

    for i in 0..8u8 {
        let data: Vec<u8> = (0..=i).collect();
        let h = swarm.route::<Job, String>(Job::Checksum(data)).await?;
        let entry = h.agent().clone();
        println!("job {i} -> {entry} -> {}", h.await?);
    }
    println!("spoke0 tries to reach spoke1 directly:");
    let spoke0 = swarm.agent::<Job, String>("spoke0")?;
    println!(
        "  {}",
        spoke0.submit(Job::Sneak("spoke1".into())).await?.await?
    );
    println!("jobs per spoke: {:?}", assigned.lock().unwrap());
    swarm.shutdown().await;
    Ok(())
}
