//! Agents the integration tests share: small, but each does real work.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary::prelude::*;
use apiary::BoxError;
use tokio::sync::Semaphore;

/// What the test swarms are asked to do.
#[derive(Debug, Clone)]
pub enum Job {
    /// Count the words of a text.
    Words(String),
    /// Add numbers up.
    Sum(Vec<u64>),
    /// Ask the agent named `to` to do `job`, and answer with its result plus one.
    Relay { to: String, job: Box<Job> },
    /// Wait for a permit from the gate, then answer 1 (for holding an agent busy).
    Hold(Arc<Semaphore>),
    /// Sleep on tokio's clock, then answer 0.
    Sleep(Duration),
    /// Fail with this message.
    Fail(String),
    /// Panic.
    Panic,
    /// Panic while `left` is above zero (counting it down), then answer 7.
    PanicTimes(Arc<std::sync::atomic::AtomicUsize>),
    /// Answer how many tasks this agent instance has handled, this one included (a restarted
    /// agent starts again from 1).
    Seen,
}

/// The error the test agents fail with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JobError {
    #[error("job failed: {0}")]
    Failed(String),
    #[error("agent `{agent}` does not do {job}")]
    WrongJob { agent: String, job: &'static str },
}

fn wrong(ctx: &AgentContext<Job, u64>, job: &Job) -> JobError {
    let job = match job {
        Job::Words(_) => "Words",
        Job::Sum(_) => "Sum",
        Job::Relay { .. } => "Relay",
        Job::Hold(_) => "Hold",
        Job::Sleep(_) => "Sleep",
        Job::Fail(_) => "Fail",
        Job::Panic => "Panic",
        Job::PanicTimes(_) => "PanicTimes",
        Job::Seen => "Seen",
    };
    JobError::WrongJob {
        agent: ctx.name().to_string(),
        job,
    }
}

/// Counts words; keeps a running total across tasks to show state survives between them.
#[derive(Default)]
pub struct WordCounter {
    pub total: u64,
}

impl Agent for WordCounter {
    type Task = Job;
    type Output = u64;
    type Error = JobError;

    async fn handle(&mut self, job: Job, ctx: &AgentContext<Job, u64>) -> Result<u64, JobError> {
        match job {
            Job::Words(text) => {
                let n = text.split_whitespace().count() as u64;
                self.total += n;
                Ok(n)
            }
            other => Err(wrong(ctx, &other)),
        }
    }
}

/// Adds numbers.
pub struct Summer;

impl Agent for Summer {
    type Task = Job;
    type Output = u64;
    type Error = JobError;

    async fn handle(&mut self, job: Job, ctx: &AgentContext<Job, u64>) -> Result<u64, JobError> {
        match job {
            Job::Sum(v) => Ok(v.iter().sum()),
            other => Err(wrong(ctx, &other)),
        }
    }
}

/// Does any job: relays through peers, holds, sleeps, fails and panics on request.
pub struct Worker {
    /// Counts tasks handled by every worker made from the same factory.
    pub handled: Arc<AtomicU64>,
    /// Tasks handled by this instance.
    pub mine: u64,
}

impl Agent for Worker {
    type Task = Job;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, job: Job, ctx: &AgentContext<Job, u64>) -> Result<u64, BoxError> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.mine += 1;
        match job {
            Job::Words(text) => Ok(text.split_whitespace().count() as u64),
            Job::Sum(v) => Ok(v.iter().sum()),
            Job::Relay { to, job } => Ok(ctx.send(&to, *job).await?.await? + 1),
            Job::Hold(gate) => {
                let _permit = gate.acquire().await?;
                Ok(1)
            }
            Job::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(0)
            }
            Job::Fail(msg) => Err(Box::new(JobError::Failed(msg))),
            Job::Panic => panic!("asked to panic"),
            Job::PanicTimes(left) => {
                if left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    panic!("flaky panic");
                }
                Ok(7)
            }
            Job::Seen => Ok(self.mine),
        }
    }
}

/// A factory of workers sharing one counter.
pub fn workers() -> (impl Fn() -> Worker + Send + Sync + 'static, Arc<AtomicU64>) {
    let handled = Arc::new(AtomicU64::new(0));
    let shared = handled.clone();
    (
        move || Worker {
            handled: shared.clone(),
            mine: 0,
        },
        handled,
    )
}

/// Collects every event a hook sees.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<std::sync::Mutex<Vec<SwarmEvent>>>);

impl Recorder {
    pub fn hook(&self) -> impl Fn(&SwarmEvent) + Send + Sync + 'static {
        let events = self.0.clone();
        move |e: &SwarmEvent| events.lock().unwrap().push(e.clone())
    }

    pub fn kinds(&self) -> Vec<EventKind> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind().clone())
            .collect()
    }
}

/// Polls `cond` until it holds, yielding to the runtime in between; panics after 5 s of
/// real time so a broken test fails instead of hanging.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// A swarm of one worker agent with this spec.
pub async fn one_worker(spec: AgentSpec) -> Swarm<Job, u64> {
    let (make, _) = workers();
    Swarm::builder().agent(spec, make).start().await.unwrap()
}

/// A crash staged behind a held task: `hold` keeps the agent busy until `gate` opens, `crash`
/// panics it next, and `behind` are sums (of `[i]`) queued after the crash.
pub struct StagedCrash {
    pub gate: Arc<Semaphore>,
    pub hold: TaskHandle<u64>,
    pub crash: TaskHandle<u64>,
    pub behind: Vec<TaskHandle<u64>>,
}

/// Stages a crash on `agent` with `n` tasks queued behind it; open `gate` to let it happen.
pub async fn stage_crash(swarm: &Swarm<Job, u64>, agent: &str, n: u64) -> StagedCrash {
    let gate = Arc::new(Semaphore::new(0));
    let hold = swarm.submit(agent, Job::Hold(gate.clone())).await.unwrap();
    let crash = swarm.submit(agent, Job::Panic).await.unwrap();
    let mut behind = Vec::new();
    for i in 0..n {
        behind.push(swarm.submit(agent, Job::Sum(vec![i])).await.unwrap());
    }
    StagedCrash {
        gate,
        hold,
        crash,
        behind,
    }
}
