//! Healing with replicas, as a user of a busy pool sees it: work goes to replicas that can
//! take it (never waiting behind one that is stuck or waiting out a restart), an agent has
//! its own restart intensity, and once a supervisor gives up every refusal and failed task
//! says so.

mod agents;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agents::{worker, workers, Job, Recorder};
use apiary::prelude::*;
use apiary::supervisor::{Backoff, RestartIntensity};
use apiary::{AgentName, SubmitErrorKind};
use tokio::sync::Semaphore;

/// The chaos run of the issue: 50,000 tasks with 50 ms deadlines to one agent of 8
/// replicas; 5% of tasks panic, 1% sleep past their deadline.
const TASKS: u64 = 50_000;

fn panics(n: u64) -> bool {
    n % 20 == 7
}

fn sleeps(n: u64) -> bool {
    n % 100 == 3
}

struct Flaky;

impl Agent for Flaky {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        if panics(n) {
            panic!("chaos: task {n}");
        }
        if sleeps(n) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(n)
    }
}

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

/// How the chaos run ended: per task, `Ok` or the error's text; and the refusals.
struct ChaosRun {
    results: Vec<(u64, Result<u64, TaskError>)>,
    refused: Vec<(u64, SubmitErrorKind)>,
    finished_events: HashMap<u64, u32>,
}

async fn chaos(intensity: Option<RestartIntensity>) -> ChaosRun {
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
    for n in 0..TASKS {
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
    ChaosRun {
        results,
        refused,
        finished_events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_intensity_raised_a_pool_heals_and_the_healthy_tasks_complete() {
    let run = chaos(Some(RestartIntensity::new(
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
                if !panics(*n) && !sleeps(*n) {
                    completed += 1;
                }
            }
            Err(TaskError::Panicked { .. }) => assert!(panics(*n), "task {n} panicked"),
            Err(e) if e.is_timed_out() => {}
            Err(e) => panic!("task {n}: {e}"),
        }
        if !panics(*n) && !sleeps(*n) {
            normal += 1;
        }
    }
    // Every task ended exactly once.
    assert_eq!(run.finished_events.len() as u64, TASKS);
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
    let run = chaos(None).await;
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
            Err(TaskError::Panicked { .. }) => assert!(panics(*n)),
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
        TASKS as usize,
        "every task accounted for"
    );
}

/// Records the order tasks start in.
struct Starts {
    seen: Arc<Mutex<Vec<u64>>>,
    gate: Arc<Semaphore>,
}

impl Agent for Starts {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        if n == 0 {
            // Task 0 holds its replica until the gate opens.
            let _permit = self.gate.acquire().await;
        } else {
            self.seen.lock().unwrap().push(n);
        }
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_never_wait_behind_a_stuck_replica_and_start_in_order() {
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let gate = Arc::new(Semaphore::new(0));
    let (s, g) = (seen.clone(), gate.clone());
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("pair").replicas(2), move || Starts {
            seen: s.clone(),
            gate: g.clone(),
        })
        .start()
        .await
        .unwrap();
    let pair = swarm.agent::<u64, u64>("pair").unwrap();
    let stuck = pair.submit(0).await.unwrap();
    let mut handles = Vec::new();
    for n in 1..=50 {
        handles.push(pair.submit(n).await.unwrap());
    }
    // All fifty finish on the other replica while task 0 still holds its own.
    for h in handles {
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("a task waited behind the stuck replica")
            .unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), (1..=50).collect::<Vec<_>>());
    gate.add_permits(1);
    assert_eq!(stuck.await.unwrap(), 0);
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_goes_to_healthy_replicas_while_a_crashed_one_waits_out_its_backoff() {
    let rec = Recorder::default();
    let (make, _) = workers();
    // A long backoff: a task left waiting for the crashed replica would wait 30 s.
    let backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(30), 1.0);
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("w").replicas(3).backoff(backoff), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    assert!(matches!(
        w.submit(Job::Panic).await.unwrap().await,
        Err(TaskError::Panicked { .. })
    ));
    let handles: Vec<_> = {
        let mut v = Vec::new();
        for n in 0..200 {
            v.push(w.submit(Job::Sum(vec![n])).await.unwrap());
        }
        v
    };
    for (n, h) in handles.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("a task waited for the crashed replica's restart")
            .unwrap();
        assert_eq!(out, n as u64);
    }
    assert!(
        !rec.kinds()
            .iter()
            .any(|k| matches!(k, EventKind::AgentRestarted { .. })),
        "the crashed replica is still waiting out its backoff"
    );
    // The crashed replica would be back in 30 s; nothing waits for it.
    swarm.shutdown_timeout(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_past_its_own_intensity_stops_alone_and_says_why() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let (make2, _) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(
            AgentSpec::new("flaky")
                .backoff(Backoff::none())
                .intensity(RestartIntensity::new(2, Duration::from_secs(60))),
            make,
        )
        .agent(AgentSpec::new("steady"), make2)
        .start()
        .await
        .unwrap();
    let flaky = worker(&swarm, "flaky");
    for _ in 0..3 {
        let _ = flaky.submit(Job::Panic).await.unwrap().await;
    }
    rec.wait_for("the supervisor to give up on flaky", |k| {
        k.iter().any(|k| {
            matches!(k, EventKind::SupervisorGaveUp { supervisor, .. } if supervisor == "flaky")
        })
    })
    .await;
    let err = flaky.submit(Job::Sum(vec![1])).await.unwrap_err();
    match err.kind() {
        SubmitErrorKind::GaveUp { agent, reason } => {
            assert_eq!(agent.as_str(), "flaky");
            assert!(
                reason.starts_with("its supervisor gave up after 2 restarts in ")
                    && reason.ends_with("(at most 2 within 1m)"),
                "{reason}"
            );
            assert_eq!(
                err.to_string(),
                format!("agent `flaky` has stopped: {reason}")
            );
        }
        other => panic!("refused with {other}"),
    }
    // The rest of the swarm runs on.
    let steady = worker(&swarm, "steady");
    assert_eq!(
        steady
            .submit(Job::Sum(vec![2, 3]))
            .await
            .unwrap()
            .await
            .unwrap(),
        5
    );
    swarm.shutdown().await;
}
