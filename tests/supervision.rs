//! Self-healing as a user sees it: restarts by strategy and restart type, restart intensity,
//! backoff on tokio's clock, retries of crashed tasks, circuit breakers, dead letters.

mod agents;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use agents::{settle, stage_crash, worker, workers, Job, Recorder, StagedCrash};
use apiary::prelude::*;
use apiary::supervisor::{Backoff, BreakerConfig, Strategy};
use apiary::{BreakerTransition, RestartType, StopReason, SubmitErrorKind};
use tokio::sync::Semaphore;

fn restarts_in(kinds: &[EventKind]) -> Vec<(String, Duration)> {
    kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::AgentRestarted { agent, delay, .. } => Some((agent.to_string(), *delay)),
            _ => None,
        })
        .collect()
}

fn restarts(rec: &Recorder) -> Vec<(String, Duration)> {
    restarts_in(&rec.kinds())
}

fn no_backoff(spec: AgentSpec) -> AgentSpec {
    spec.backoff(Backoff::none())
}

#[tokio::test]
async fn a_crashed_agent_is_restarted_fresh_and_its_queue_is_not_lost() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(no_backoff(AgentSpec::new("w")), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    assert_eq!(w.submit(Job::Seen).await.unwrap().await.unwrap(), 1);
    let gate = Arc::new(Semaphore::new(0));
    let hold = w.submit(Job::Hold(gate.clone())).await.unwrap();
    let boom = w.submit(Job::Panic).await.unwrap();
    // Queued behind the crash: these must run on the restarted agent.
    let mut behind = Vec::new();
    for i in 0..10 {
        behind.push(w.submit(Job::Sum(vec![i, 1])).await.unwrap());
    }
    gate.add_permits(1);
    assert_eq!(hold.await.unwrap(), 1);
    assert!(matches!(boom.await, Err(TaskError::Panicked { .. })));
    for (i, h) in behind.into_iter().enumerate() {
        assert_eq!(
            h.await.unwrap(),
            i as u64 + 1,
            "queued task {i} survives the crash"
        );
    }
    // A fresh agent: its own count restarted (10 sums, then this one).
    assert_eq!(w.submit(Job::Seen).await.unwrap().await.unwrap(), 11);
    assert_eq!(restarts(&rec).len(), 1);
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_crashed_task_is_retried_within_its_budget_and_reported_beyond_it() {
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .retry_crashed_tasks::<Job>()
        .agent(no_backoff(AgentSpec::new("w")).max_retries(2), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    // Panics twice, then succeeds: within a budget of two retries.
    let flaky = Arc::new(AtomicUsize::new(2));
    let h = w.submit(Job::PanicTimes(flaky.clone())).await.unwrap();
    assert_eq!(h.await.unwrap(), 7);
    // Panics three times: the budget runs out and the submitter gets the panic, once.
    let h = w
        .submit(Job::PanicTimes(Arc::new(AtomicUsize::new(3))))
        .await
        .unwrap();
    assert!(matches!(h.await, Err(TaskError::Panicked { .. })));
    assert_eq!(w.submit(Job::Sum(vec![2])).await.unwrap().await.unwrap(), 2);
    swarm.shutdown().await;
}

// The clock is paused so that `settle` can let the supervisor handle both crashes: nothing
// is published when it decides not to restart the temporary agent.
#[tokio::test(start_paused = true)]
async fn transient_agents_restart_after_a_crash_and_temporary_ones_do_not() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let make = Arc::new(make);
    let (m1, m2) = (make.clone(), make.clone());
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(
            no_backoff(AgentSpec::new("transient").restart(RestartType::Transient)),
            move || m1(),
        )
        .agent(
            no_backoff(AgentSpec::new("temporary").restart(RestartType::Temporary)),
            move || m2(),
        )
        .start()
        .await
        .unwrap();
    let (transient, temporary) = (worker(&swarm, "transient"), worker(&swarm, "temporary"));
    for agent in [&transient, &temporary] {
        let _ = agent.submit(Job::Panic).await.unwrap().await;
    }
    rec.wait_for("the transient agent's restart", |k| {
        restarts_in(k).iter().any(|(a, _)| a == "transient")
    })
    .await;
    settle().await;
    assert_eq!(
        transient
            .submit(Job::Sum(vec![1]))
            .await
            .unwrap()
            .await
            .unwrap(),
        1
    );
    let err = temporary.submit(Job::Sum(vec![1])).await.unwrap_err();
    assert_eq!(
        err.kind(),
        &SubmitErrorKind::AgentStopped("temporary".into())
    );
    assert!(restarts(&rec).iter().all(|(a, _)| a == "transient"));
    swarm.shutdown().await;
}

async fn three_in_a_row(strategy: Strategy) -> (Swarm, Recorder) {
    let rec = Recorder::default();
    let (make, _) = workers();
    let make = Arc::new(make);
    let mut b = Swarm::builder()
        .hook(rec.hook())
        .configure(|s| s.strategy = strategy);
    for (name, deps) in [("a", vec![]), ("b", vec!["a"]), ("c", vec!["b"])] {
        let m = make.clone();
        b = b.agent(
            no_backoff(AgentSpec::new(name).depends_on(deps)),
            move || m(),
        );
    }
    let swarm = b.start().await.unwrap();
    for agent in ["a", "b", "c"] {
        worker(&swarm, agent)
            .submit(Job::Seen)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    (swarm, rec)
}

async fn seen_after_crash_of_b(strategy: Strategy) -> Vec<u64> {
    let (swarm, rec) = three_in_a_row(strategy).await;
    let _ = worker(&swarm, "b").submit(Job::Panic).await.unwrap().await;
    let expected = match strategy {
        Strategy::OneForOne => 1,
        Strategy::OneForAll => 3,
        Strategy::RestForOne => 2,
    };
    rec.wait_for("the restarts", |k| restarts_in(k).len() == expected)
        .await;
    let mut seen = Vec::new();
    for agent in ["a", "b", "c"] {
        seen.push(
            worker(&swarm, agent)
                .submit(Job::Seen)
                .await
                .unwrap()
                .await
                .unwrap(),
        );
    }
    assert_eq!(restarts(&rec).len(), expected, "no restart beyond those");
    swarm.shutdown().await;
    seen
}

#[tokio::test]
async fn strategies_restart_the_right_children() {
    // An agent that was not restarted has handled two `Seen` tasks; a restarted one, one.
    assert_eq!(seen_after_crash_of_b(Strategy::OneForOne).await, [2, 1, 2]);
    assert_eq!(seen_after_crash_of_b(Strategy::OneForAll).await, [1, 1, 1]);
    assert_eq!(seen_after_crash_of_b(Strategy::RestForOne).await, [2, 1, 1]);
}

/// Crashes (agents stopped by a panic) and the supervisor's answers to them so far.
fn crashes_and_answers(kinds: &[EventKind]) -> (usize, usize) {
    let crashes = kinds
        .iter()
        .filter(|k| {
            matches!(
                k,
                EventKind::AgentStopped {
                    reason: StopReason::Failed(_),
                    ..
                }
            )
        })
        .count();
    let answers = kinds
        .iter()
        .filter(|k| {
            matches!(
                k,
                EventKind::AgentRestarted { .. } | EventKind::SupervisorGaveUp { .. }
            )
        })
        .count();
    (crashes, answers)
}

#[tokio::test]
async fn past_the_restart_intensity_the_supervisor_gives_up_and_nothing_waits_forever() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .configure(|s| {
            s.max_restarts = 2;
            s.restart_window = Duration::from_secs(60);
        })
        .agent(no_backoff(AgentSpec::new("w")), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    for n in 1..=3 {
        // The handle is dropped: the crash is observed through events.
        drop(w.submit(Job::Panic).await);
        rec.wait_for("the crash to be handled", |k| {
            crashes_and_answers(k) == (n, n)
        })
        .await;
    }
    assert!(
        rec.kinds()
            .iter()
            .any(|k| matches!(k, EventKind::SupervisorGaveUp { .. })),
        "the supervisor gave up"
    );
    assert_eq!(
        restarts(&rec).len(),
        2,
        "restarts stayed within the intensity"
    );
    // A refusal names the agent and why it stopped.
    let err = w.submit(Job::Sum(vec![])).await.unwrap_err();
    assert!(
        matches!(err.kind(), SubmitErrorKind::GaveUp { agent, reason }
            if agent.as_str() == "w"
                && reason.starts_with("the swarm's supervisor gave up after 2 restarts in ")
                && reason.ends_with("(at most 2 within 1m)")),
        "{err}"
    );
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_exponentially_on_tokios_clock() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 2.0);
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .configure(|s| s.max_restarts = 100)
        .agent(AgentSpec::new("w").backoff(backoff), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    // A crash loop: each task crashes the new actor before it completes anything (each
    // waits for the restart before it runs), so the delays grow.
    for _ in 0..4 {
        let _ = w.submit(Job::Panic).await.unwrap().await;
    }
    let t0 = tokio::time::Instant::now();
    // Submitted while the agent is down: waits for the fourth restart, then runs.
    assert_eq!(w.submit(Job::Sum(vec![1])).await.unwrap().await.unwrap(), 1);
    let waited = t0.elapsed();
    let delays: Vec<Duration> = restarts(&rec).into_iter().map(|(_, d)| d).collect();
    assert_eq!(delays.len(), 4);
    for (n, delay) in delays.iter().enumerate() {
        let base = Duration::from_millis(100 * 2u64.pow(n as u32));
        assert!(
            *delay >= base / 2 && *delay <= base,
            "restart {n}: {delay:?} outside [{:?}, {base:?}]",
            base / 2
        );
    }
    assert!(
        waited >= delays[3],
        "the task waited for the restart: {waited:?} < {:?}",
        delays[3]
    );
    // The new actor completed a task: its next crash is the task's fault, not a loop, and
    // the backoff starts over.
    let _ = w.submit(Job::Panic).await.unwrap().await;
    assert_eq!(w.submit(Job::Sum(vec![2])).await.unwrap().await.unwrap(), 2);
    let delays: Vec<Duration> = restarts(&rec).into_iter().map(|(_, d)| d).collect();
    assert_eq!(delays.len(), 5);
    assert!(
        delays[4] >= Duration::from_millis(50) && delays[4] <= Duration::from_millis(100),
        "after a served task the backoff starts over: {:?}",
        delays[4]
    );
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opens_fails_fast_lets_one_trial_through_and_closes() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let breaker = BreakerConfig::default()
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(1));
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("w").breaker(breaker), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    for _ in 0..3 {
        let h = w.submit(Job::Fail("down".into())).await.unwrap();
        assert!(h.await.is_err());
    }
    let err = w.submit(Job::Sum(vec![1])).await.unwrap_err();
    match err.kind() {
        SubmitErrorKind::BreakerOpen { agent, retry_after } => {
            assert_eq!(agent, "w");
            assert!(*retry_after <= Duration::from_secs(1));
        }
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Half-open: the first caller is the trial, a concurrent second one is refused.
    let gate = Arc::new(Semaphore::new(0));
    let trial = w.submit(Job::Hold(gate.clone())).await.unwrap();
    assert!(matches!(
        w.submit(Job::Sum(vec![1])).await.unwrap_err().kind(),
        SubmitErrorKind::BreakerOpen { .. }
    ));
    gate.add_permits(1);
    assert_eq!(trial.await.unwrap(), 1);
    assert_eq!(w.submit(Job::Sum(vec![5])).await.unwrap().await.unwrap(), 5);
    let transitions: Vec<BreakerTransition> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::BreakerChanged { transition, .. } => Some(transition),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        [
            BreakerTransition::Opened,
            BreakerTransition::HalfOpened,
            BreakerTransition::Closed
        ]
    );
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_reopens_for_longer_and_tasks_past_deadline_count_as_failures() {
    let (make, _) = workers();
    let breaker = BreakerConfig::default()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(1))
        .max_reset_timeout(Duration::from_secs(10));
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("w").breaker(breaker), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    // A task that hangs past its deadline opens the breaker.
    let h = w
        .submit_with(
            Job::Sleep(Duration::from_secs(60)),
            SubmitOptions::new().timeout(Duration::from_millis(10)),
        )
        .await
        .unwrap();
    assert!(h.await.unwrap_err().is_timed_out());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let trial = w.submit(Job::Fail("still down".into())).await.unwrap();
    assert!(trial.await.is_err());
    let retry_after = match w.submit(Job::Sum(vec![])).await.unwrap_err().kind() {
        SubmitErrorKind::BreakerOpen { retry_after, .. } => *retry_after,
        other => panic!("{other:?}"),
    };
    assert!(
        retry_after > Duration::from_secs(1),
        "the open period doubled: {retry_after:?}"
    );
    swarm.shutdown().await;
}

#[tokio::test]
async fn an_open_breaker_on_one_replica_sends_tasks_to_the_others() {
    let (make, _) = workers();
    let breaker = BreakerConfig::default()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(60));
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("w").replicas(2).breaker(breaker), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    let failed = w.submit(Job::Fail("x".into())).await.unwrap();
    let bad = failed.replica();
    assert!(failed.await.is_err());
    for _ in 0..20 {
        let h = w.submit(Job::Sum(vec![1])).await.unwrap();
        assert_ne!(h.replica(), bad, "the open replica is skipped");
        assert_eq!(h.await.unwrap(), 1);
    }
    swarm.shutdown().await;
}

#[tokio::test]
async fn tasks_waiting_when_the_supervisor_gives_up_become_dead_letters() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .configure(|s| s.max_restarts = 0)
        .agent(AgentSpec::new("w"), make)
        .start()
        .await
        .unwrap();
    let StagedCrash {
        gate,
        hold,
        crash: boom,
        behind: waiting,
    } = stage_crash(&worker(&swarm, "w"), 5).await;
    gate.add_permits(1);
    hold.await.unwrap();
    assert!(matches!(boom.await, Err(TaskError::Panicked { .. })));
    for h in waiting {
        let err = h.await.unwrap_err();
        assert!(
            matches!(&err, TaskError::GaveUp { agent, reason }
                if agent.as_str() == "w" && reason.contains("gave up after 0 restarts")),
            "{err}"
        );
    }
    let dead = rec
        .kinds()
        .into_iter()
        .filter(|k| matches!(k, EventKind::DeadLetter { .. }))
        .count();
    assert_eq!(dead, 5, "each undeliverable task is a dead letter");
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_restarting_agent_to_finish_its_queue() {
    let (make, handled) = workers();
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1.0);
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("w").backoff(backoff), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    let crash = w.submit(Job::Panic).await.unwrap();
    let queued = w.submit(Job::Sum(vec![4])).await.unwrap();
    let t0 = tokio::time::Instant::now();
    swarm.shutdown().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "shutdown waited for the restart"
    );
    assert!(matches!(crash.await, Err(TaskError::Panicked { .. })));
    assert_eq!(
        queued.await.unwrap(),
        4,
        "the queued task ran on the restarted agent"
    );
    assert_eq!(handled.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// `root` leads `left` and `right`; each leads two workers.
async fn tree_swarm(rec: &Recorder, strategy: Strategy, max_restarts: u32) -> Swarm {
    let (make, _) = workers();
    let make = Arc::new(make);
    let tree = apiary::topology::Hierarchy::new()
        .lead("root", ["left", "right"])
        .lead("left", ["l1", "l2"])
        .lead("right", ["r1", "r2"]);
    let mut b = Swarm::builder()
        .hook(rec.hook())
        .topology(tree)
        .configure(|s| {
            s.strategy = strategy;
            s.max_restarts = max_restarts;
            s.restart_window = Duration::from_secs(60);
        });
    for (name, deps) in [
        ("l1", vec![]),
        ("l2", vec![]),
        ("r1", vec![]),
        ("r2", vec![]),
        ("left", vec!["l1", "l2"]),
        ("right", vec!["r1", "r2"]),
        ("root", vec!["left", "right"]),
    ] {
        let m = make.clone();
        b = b.agent(
            no_backoff(AgentSpec::new(name).depends_on(deps)),
            move || m(),
        );
    }
    let swarm = b.start().await.unwrap();
    seen(&swarm, &["l1", "l2", "r1", "r2", "left", "right", "root"]).await;
    swarm
}

async fn seen(swarm: &Swarm, agents: &[&str]) -> Vec<u64> {
    let mut out = Vec::new();
    for a in agents {
        out.push(
            worker(swarm, a)
                .submit(Job::Seen)
                .await
                .unwrap()
                .await
                .unwrap(),
        );
    }
    out
}

async fn crash(swarm: &Swarm, agent: &str) {
    let _ = worker(swarm, agent).submit(Job::Panic).await.unwrap().await;
}

#[tokio::test]
async fn a_coordinator_supervises_its_own_subtree() {
    // one_for_all inside `left`'s group: l1's crash restarts l1 and l2, nobody else.
    let rec = Recorder::default();
    let swarm = tree_swarm(&rec, Strategy::OneForAll, 10).await;
    crash(&swarm, "l1").await;
    rec.wait_for("left's children restarted", |k| restarts_in(k).len() == 2)
        .await;
    let mut restarted: Vec<String> = restarts(&rec).into_iter().map(|(a, _)| a).collect();
    restarted.sort();
    assert_eq!(restarted, ["l1", "l2"]);
    // Fresh l1/l2 (1), untouched others (2).
    assert_eq!(
        seen(&swarm, &["l1", "l2", "r1", "r2", "left", "right", "root"]).await,
        [1, 1, 2, 2, 2, 2, 2]
    );
    assert_eq!(restarts(&rec).len(), 2, "nobody else was restarted");
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_coordinator_past_its_intensity_has_its_subtree_restarted_by_its_supervisor() {
    let rec = Recorder::default();
    let swarm = tree_swarm(&rec, Strategy::OneForOne, 1).await;
    // A crash in each subtree: within each coordinator's own budget of one.
    for agent in ["l1", "r1"] {
        crash(&swarm, agent).await;
    }
    rec.wait_for("two one-for-one restarts", |k| restarts_in(k).len() == 2)
        .await;
    // A second crash under `left` exceeds left's intensity: left gives up, and `root`
    // restarts left's whole subtree (left, l1, l2); `right`'s subtree is untouched.
    crash(&swarm, "l2").await;
    rec.wait_for("left's subtree restarted", |k| restarts_in(k).len() == 5)
        .await;
    let gave_up: Vec<String> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::SupervisorGaveUp { supervisor, .. } => Some(supervisor),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up, ["left"]);
    assert_eq!(
        seen(&swarm, &["left", "l1", "l2", "right", "r2", "root"]).await,
        [1, 1, 1, 2, 2, 2]
    );
    // The swarm is still up.
    assert_eq!(
        worker(&swarm, "root")
            .submit(Job::Sum(vec![1]))
            .await
            .unwrap()
            .await
            .unwrap(),
        1
    );
    swarm.shutdown().await;
}
