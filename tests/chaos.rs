//! Chaos: 64 agents, 100,000 tasks; 1% of tasks crash their agent, 0.1% hang past their
//! deadline. Every task must end exactly once with its output or a cause, the swarm must
//! stay up, and restarts must stay within the configured intensity. And a pool under fire:
//! one agent of 8 replicas, 50,000 tasks with 50 ms deadlines, 5% panic and 1% sleep past
//! their deadline; healthy replicas take the work, and with the default intensity every
//! refusal and failure names the supervisor that gave up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary::prelude::*;
use apiary::supervisor::{Backoff, RestartIntensity};
use apiary::{AgentName, SubmitErrorKind};

const AGENTS: u64 = 64;
const TASKS: u64 = 100_000;
const MAX_RESTARTS: u32 = 10_000;

/// Returns its task number, except for the unlucky ones.
struct Chaos;

fn panics(n: u64) -> bool {
    n % 100 == 7
}

fn hangs(n: u64) -> bool {
    n % 1000 == 3
}

impl Agent for Chaos {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        if panics(n) {
            panic!("chaos: task {n}");
        }
        if hangs(n) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok(n)
    }
}

/// Thousands of expected panics: keep their messages (and backtraces) out of the output.
fn quiet_chaos_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let expected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("chaos: "));
        if !expected {
            default_hook(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_task_ends_exactly_once_and_the_swarm_survives() {
    quiet_chaos_panics();
    let finished: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let restarts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f, r, g) = (finished.clone(), restarts.clone(), gave_up.clone());
    let mut builder = Swarm::builder()
        .retry_crashed_tasks::<u64>()
        .queue_capacity(256)
        .configure(|s| {
            s.max_restarts = MAX_RESTARTS;
            s.restart_window = Duration::from_secs(600);
        })
        .hook(move |e: &SwarmEvent| match e.kind() {
            EventKind::TaskFinished { task, .. } => {
                *f.lock().unwrap().entry(task.get()).or_default() += 1
            }
            EventKind::AgentRestarted { .. } => {
                r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            EventKind::SupervisorGaveUp { .. } => {
                g.store(true, std::sync::atomic::Ordering::Relaxed)
            }
            _ => {}
        });
    for i in 0..AGENTS {
        let spec = AgentSpec::new(format!("a{i}"))
            .max_retries(1)
            .backoff(Backoff::none());
        builder = builder.agent(spec, || Chaos);
    }
    let swarm = builder.start().await.unwrap();
    let agents: Vec<AgentRef<u64, u64>> = (0..AGENTS)
        .map(|i| swarm.agent::<u64, u64>(&format!("a{i}")).unwrap())
        .collect();

    let mut handles = Vec::with_capacity(TASKS as usize);
    for n in 0..TASKS {
        let agent = &agents[(n % AGENTS) as usize];
        let timeout = if hangs(n) {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(60)
        };
        let h = agent
            .submit_with(n, SubmitOptions::new().timeout(timeout))
            .await
            .unwrap_or_else(|e| panic!("task {n} refused: {e}"));
        handles.push((n, h));
    }
    let (mut completed, mut panicked, mut timed_out, mut other) = (0u64, 0u64, 0u64, Vec::new());
    for (n, h) in handles {
        match h.await {
            Ok(v) => {
                assert_eq!(v, n, "task {n} got another task's output");
                completed += 1;
            }
            Err(TaskError::Panicked { .. }) => {
                assert!(panics(n), "task {n} panicked but should not");
                panicked += 1;
            }
            Err(e) if e.is_timed_out() => {
                assert!(hangs(n), "task {n} timed out but should not");
                timed_out += 1;
            }
            Err(e) => other.push((n, e.to_string())),
        }
    }
    assert!(
        other.is_empty(),
        "unexpected failures: {:?}",
        &other[..other.len().min(5)]
    );
    let expected_panics = (0..TASKS).filter(|&n| panics(n)).count() as u64;
    let expected_hangs = (0..TASKS).filter(|&n| hangs(n)).count() as u64;
    assert_eq!(panicked, expected_panics);
    assert_eq!(timed_out, expected_hangs);
    assert_eq!(
        completed + panicked + timed_out,
        TASKS,
        "every task accounted for"
    );

    // Exactly one result per task, as the event stream saw it. (The guard must not live
    // past this block: the hook needs the lock for the tasks below.)
    {
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len() as u64, TASKS);
        assert!(finished.values().all(|&c| c == 1), "a task finished twice");
    }

    // Each panicking task crashed its agent twice (first run + one retry).
    let restarts = restarts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(u64::from(restarts), expected_panics * 2);
    assert!(restarts <= MAX_RESTARTS);
    assert!(!gave_up.load(std::sync::atomic::Ordering::Relaxed));

    // Still up: every agent answers.
    for agent in &agents {
        assert_eq!(agent.submit(1).await.unwrap().await.unwrap(), 1);
    }
    swarm.shutdown().await;
}

/// The chaos run of the issue: 50,000 tasks with 50 ms deadlines to one agent of 8
/// replicas; 5% of tasks panic, 1% sleep past their deadline.
const POOL_TASKS: u64 = 50_000;

fn pool_panics(n: u64) -> bool {
    n % 20 == 7
}

fn pool_sleeps(n: u64) -> bool {
    n % 100 == 3
}

struct Flaky;

impl Agent for Flaky {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        if pool_panics(n) {
            panic!("chaos: task {n}");
        }
        if pool_sleeps(n) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(n)
    }
}

/// How the chaos run ended: per task, `Ok` or the error's text; and the refusals.
struct PoolRun {
    results: Vec<(u64, Result<u64, TaskError>)>,
    refused: Vec<(u64, SubmitErrorKind)>,
    finished_events: HashMap<u64, u32>,
}

async fn pool_chaos(intensity: Option<RestartIntensity>) -> PoolRun {
    quiet_chaos_panics();
    let finished: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let f = finished.clone();
    // The user's own settings: a queue of 64 (8 per replica) and the default backoff.
    let mut spec = AgentSpec::new("flaky").replicas(8).queue_capacity(64);
    if let Some(i) = intensity {
        spec = spec.intensity(i);
    }
    let swarm = Swarm::builder()
        .hook(move |e: &SwarmEvent| {
            if let EventKind::TaskFinished { task, .. } = e.kind() {
                *f.lock().unwrap().entry(task.get()).or_default() += 1;
            }
        })
        .agent(spec, || Flaky)
        .start()
        .await
        .unwrap();
    let agent = swarm.agent::<u64, u64>("flaky").unwrap();
    let mut handles = Vec::new();
    let mut refused = Vec::new();
    for n in 0..POOL_TASKS {
        match agent
            .submit_with(n, SubmitOptions::new().timeout(Duration::from_millis(50)))
            .await
        {
            Ok(h) => handles.push((n, h)),
            Err(e) => refused.push((n, e.kind().clone())),
        }
    }
    let mut results = Vec::new();
    for (n, h) in handles {
        results.push((n, h.await));
    }
    swarm.shutdown().await;
    let finished_events = std::mem::take(&mut *finished.lock().unwrap());
    PoolRun {
        results,
        refused,
        finished_events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_intensity_raised_a_pool_heals_and_the_healthy_tasks_complete() {
    let run = pool_chaos(Some(RestartIntensity::new(
        100_000,
        Duration::from_secs(10),
    )))
    .await;
    assert!(run.refused.is_empty(), "refused: {:?}", &run.refused[..1]);
    let (mut normal, mut completed) = (0u64, 0u64);
    for (n, r) in &run.results {
        match r {
            Ok(v) => {
                assert_eq!(v, n, "task {n} got another task's output");
                if !pool_panics(*n) && !pool_sleeps(*n) {
                    completed += 1;
                }
            }
            Err(TaskError::Panicked { .. }) => assert!(pool_panics(*n), "task {n} panicked"),
            Err(e) if e.is_timed_out() => {}
            Err(e) => panic!("task {n}: {e}"),
        }
        if !pool_panics(*n) && !pool_sleeps(*n) {
            normal += 1;
        }
    }
    // Every task ended exactly once.
    assert_eq!(run.finished_events.len() as u64, POOL_TASKS);
    assert!(run.finished_events.values().all(|&c| c == 1));
    let share = completed as f64 / normal as f64;
    eprintln!("{completed} of {normal} tasks that neither panic nor sleep completed ({share:.4})");
    assert!(
        share >= 0.99,
        "only {completed} of {normal} healthy tasks completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_defaults_every_refused_or_failed_task_names_the_cause() {
    let run = pool_chaos(None).await;
    // 5% of tasks panic: the default intensity (10 restarts per replica within 10 s) is
    // used up within the run, and the supervisor gives up on this agent.
    assert!(!run.refused.is_empty(), "the supervisor gave up");
    let gave_up = |agent: &AgentName, reason: &str| {
        agent.as_str() == "flaky"
            && reason.starts_with("its supervisor gave up after 80 restarts in ")
            && reason.ends_with("(at most 80 within 10s)")
    };
    for (n, kind) in &run.refused {
        assert!(
            matches!(kind, SubmitErrorKind::GaveUp { agent, reason } if gave_up(agent, reason)),
            "task {n} refused with: {kind}"
        );
    }
    let mut named = 0;
    for (n, r) in &run.results {
        match r {
            Ok(_) => {}
            Err(TaskError::Panicked { .. }) => assert!(pool_panics(*n)),
            Err(TaskError::GaveUp { agent, reason }) => {
                assert!(gave_up(agent, reason), "{reason}");
                named += 1;
            }
            Err(e) if e.is_timed_out() => {}
            Err(e) => panic!("task {n} failed without its cause: {e}"),
        }
    }
    eprintln!(
        "{} refused and {named} accepted tasks ended naming the supervisor that gave up",
        run.refused.len()
    );
    assert_eq!(
        run.results.len() + run.refused.len(),
        POOL_TASKS as usize,
        "every task accounted for"
    );
}
