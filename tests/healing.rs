//! Healing with replicas, as a user of a busy pool sees it: work goes to replicas that can
//! take it (never waiting behind one that is stuck or waiting out a restart), an agent has
//! its own restart intensity, and once a supervisor gives up every refusal says so. (The
//! pool's chaos run is in `chaos.rs`.)

mod agents;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agents::{worker, workers, Job, Recorder};
use apiary::prelude::*;
use apiary::supervisor::{Backoff, RestartIntensity};
use apiary::SubmitErrorKind;
use tokio::sync::Semaphore;

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
    // Each exactly once, started in arrival order: nothing overtakes the head of the line.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "started out of order");
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
