//! Star: a hub routes everything; spokes never talk to each other. The hub hands checksum
//! jobs to its spokes in turn; a spoke that tries to reach another spoke is refused.
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

    async fn handle(
        &mut self,
        job: Job,
        ctx: &AgentContext<Job, String>,
    ) -> Result<String, BoxError> {
        match job {
            Job::Checksum(bytes) => {
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                });
                Ok(format!("{hash:016x}"))
            }
            Job::Sneak(to) => match ctx.send(&to, Job::Checksum(vec![1])).await {
                Ok(_) => Ok("sneaked through (should not happen)".into()),
                Err(e) => Ok(format!("refused: {e}")),
            },
        }
    }
}

/// Sends each job to the next spoke in turn.
struct Hub {
    spokes: Vec<String>,
    assigned: Arc<Mutex<BTreeMap<String, usize>>>,
    next: usize,
}

impl Agent for Hub {
    type Task = Job;
    type Output = String;
    type Error = BoxError;

    async fn handle(
        &mut self,
        job: Job,
        ctx: &AgentContext<Job, String>,
    ) -> Result<String, BoxError> {
        let spoke = self.spokes[self.next % self.spokes.len()].clone();
        self.next += 1;
        *self
            .assigned
            .lock()
            .unwrap()
            .entry(spoke.clone())
            .or_default() += 1;
        Ok(format!("{spoke}: {}", ctx.send(&spoke, job).await?.await?))
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
            assigned: a.clone(),
            next: 0,
        },
    );
    let swarm = builder.start().await?;

    for i in 0..8u8 {
        let data: Vec<u8> = (0..=i).collect();
        let h = swarm.route(Job::Checksum(data)).await?;
        let entry = h.agent().clone();
        println!("job {i} -> {entry} -> {}", h.await?);
    }
    println!("spoke0 tries to reach spoke1 directly:");
    println!(
        "  {}",
        swarm
            .submit("spoke0", Job::Sneak("spoke1".into()))
            .await?
            .await?
    );
    println!("jobs per spoke: {:?}", assigned.lock().unwrap());
    swarm.shutdown().await;
    Ok(())
}
