//! Agents the integration tests share: small, but each does real work.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary::prelude::*;
use apiary::BoxError;
use tokio::sync::{Notify, Semaphore};

/// What a [`Worker`] can be asked to do: its own command set, every variant of which it
/// handles.
#[derive(Debug, Clone)]
pub enum Job {
    /// Count the words of a text.
    Words(String),
    /// Add numbers up.
    Sum(Vec<u64>),
    /// Ask the worker named `to` to do `job`, and answer with its result plus one.
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

/// The error a [`Worker`] fails a job with.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("job failed: {0}")]
pub struct JobError(pub String);

/// Counts words; keeps a running total across tasks to show state survives between them.
#[derive(Default)]
pub struct WordCounter {
    pub total: u64,
}

impl Agent for WordCounter {
    type Task = String;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, text: String, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        let n = text.split_whitespace().count() as u64;
        self.total += n;
        Ok(n)
    }
}

/// Adds numbers.
pub struct Summer;

impl Agent for Summer {
    type Task = Vec<u64>;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, numbers: Vec<u64>, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        Ok(numbers.iter().sum())
    }
}

/// Does any [`Job`]: relays through peers, holds, sleeps, fails and panics on request.
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

    async fn handle(&mut self, job: Job, ctx: &Ctx<Self>) -> Result<u64, BoxError> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.mine += 1;
        match job {
            Job::Words(text) => Ok(text.split_whitespace().count() as u64),
            Job::Sum(v) => Ok(v.iter().sum()),
            Job::Relay { to, job } => {
                let peer = ctx.agent::<Job, u64>(&to)?;
                Ok(peer.submit(*job).await?.await? + 1)
            }
            Job::Hold(gate) => {
                let _permit = gate.acquire().await?;
                Ok(1)
            }
            Job::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(0)
            }
            Job::Fail(msg) => Err(Box::new(JobError(msg))),
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

/// The typed reference to a worker agent of `swarm`.
pub fn worker(swarm: &Swarm, name: &str) -> AgentRef<Job, u64> {
    swarm.agent::<Job, u64>(name).unwrap()
}

/// Collects every event a hook sees, and lets a test wait for the one it expects.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<SwarmEvent>>>,
    arrived: Arc<Notify>,
}

impl Recorder {
    pub fn hook(&self) -> impl Fn(&SwarmEvent) + Send + Sync + 'static {
        let (events, arrived) = (self.events.clone(), self.arrived.clone());
        move |e: &SwarmEvent| {
            events.lock().unwrap().push(e.clone());
            arrived.notify_waiters();
        }
    }

    pub fn kinds(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind().clone())
            .collect()
    }

    /// Waits until the events seen so far satisfy `cond`, woken by each new event (no
    /// polling). Fails after 10 s on tokio's clock: at once, in a test with the clock paused
    /// (the runtime jumps ahead when nothing else can run), so a missing event fails the test
    /// instead of hanging it.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&[EventKind]) -> bool) {
        loop {
            let arrived = self.arrived.notified();
            let mut arrived = std::pin::pin!(arrived);
            arrived.as_mut().enable();
            if cond(&self.kinds()) {
                return;
            }
            tokio::time::timeout(Duration::from_secs(10), arrived)
                .await
                .unwrap_or_else(|_| panic!("no event brought {what}: {:?}", self.kinds()));
        }
    }
}

/// With tokio's clock paused (`start_paused`), returns once every other task on the runtime
/// (agents' actors included) has run until it waits: the clock only moves when nothing is
/// ready to run.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A swarm of one worker agent with this spec.
pub async fn one_worker(spec: AgentSpec) -> Swarm {
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
pub async fn stage_crash(agent: &AgentRef<Job, u64>, n: u64) -> StagedCrash {
    let gate = Arc::new(Semaphore::new(0));
    let hold = agent.submit(Job::Hold(gate.clone())).await.unwrap();
    let crash = agent.submit(Job::Panic).await.unwrap();
    let mut behind = Vec::new();
    for i in 0..n {
        behind.push(agent.submit(Job::Sum(vec![i])).await.unwrap());
    }
    StagedCrash {
        gate,
        hold,
        crash,
        behind,
    }
}
