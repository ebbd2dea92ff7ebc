//! The `sieve` agent the cluster tests spread over nodes: it counts primes (real work whose
//! answer the caller can check) and says which node it ran on.
// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
use serde::{Deserialize, Serialize};

/// Count the primes below `limit` (real work, checkable by the caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) limit: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Done {
    pub(crate) id: u64,
    pub(crate) primes: u64,
    pub(crate) node: String,
}

pub(crate) fn primes_below(limit: u64) -> u64 {
    (2..limit)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count() as u64
}

pub(crate) struct Sieve {
    pub(crate) node: String,
}

impl Agent for Sieve {
    type Task = Job;
    type Output = Done;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        job: Job,
        _ctx: &AgentContext<Job, Done>,
    ) -> Result<Done, Self::Error> {
        Ok(Done {
            id: job.id,
            primes: primes_below(job.limit),
            node: self.node.clone(),
        })
    }
}

pub(crate) async fn sieve_swarm(node: &str) -> Swarm {
    let node = node.to_owned();
    Swarm::builder()
        .agent(AgentSpec::new("sieve").replicas(2), move || Sieve {
            node: node.clone(),
        })
        .start()
        .await
        .unwrap()
}

pub(crate) async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
