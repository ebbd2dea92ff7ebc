//! The swarm as a user drives it: real agents, real tasks, real results.

mod agents;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use agents::{
    one_worker, settle, stage_crash, worker, workers, Job, JobError, Recorder, StagedCrash, Summer,
    WordCounter,
};
use apiary::prelude::*;
use apiary::{BoxError, LookupError, RestartType, StopReason, SubmitErrorKind, SwarmError};
use ractor::ActorStatus;
use tokio::sync::Semaphore;

/// Sums its numbers on the `sum` agent (another agent type) and answers with the sum plus one.
struct AddOne;

impl Agent for AddOne {
    type Task = Vec<u64>;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, numbers: Vec<u64>, ctx: &Ctx<Self>) -> Result<u64, BoxError> {
        let sum = ctx.agent::<Vec<u64>, u64>("sum")?;
        Ok(sum.submit(numbers).await?.await? + 1)
    }
}

#[tokio::test]
async fn several_agent_types_return_their_results() {
    let swarm = Swarm::builder()
        .agent(
            AgentSpec::new("words").kind("counter"),
            WordCounter::default,
        )
        .agent(AgentSpec::new("sum").kind("summer"), || Summer)
        .agent(
            AgentSpec::new("relay")
                .depends_on(["words", "sum"])
                .replicas(3),
            || AddOne,
        )
        .start()
        .await
        .unwrap();
    let words = swarm.agent::<String, u64>("words").unwrap();
    let sum = swarm.agent::<Vec<u64>, u64>("sum").unwrap();
    let relay = swarm.agent::<Vec<u64>, u64>("relay").unwrap();

    let mut handles = Vec::new();
    for i in 0..100u64 {
        let text = "word ".repeat(i as usize);
        handles.push((i, words.submit(text).await.unwrap()));
    }
    let mut sums = Vec::new();
    for i in 0..100u64 {
        sums.push((i, sum.submit((0..=i).collect()).await.unwrap()));
    }
    let relayed = relay.submit(vec![40, 1]).await.unwrap();

    for (i, h) in handles {
        assert_eq!(h.await.unwrap(), i);
    }
    for (i, h) in sums {
        assert_eq!(h.await.unwrap(), i * (i + 1) / 2);
    }
    assert_eq!(relayed.await.unwrap(), 42);
    swarm.shutdown().await;
}

#[tokio::test]
async fn asking_for_the_wrong_types_is_refused_and_the_agent_keeps_working() {
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("words"), WordCounter::default)
        .agent(AgentSpec::new("w"), make)
        .start()
        .await
        .unwrap();
    // `words` takes text, not jobs: refused when the reference is asked for, before any task.
    let err = swarm.agent::<Job, u64>("words").unwrap_err();
    match &err {
        LookupError::WrongType { agent, asked, runs } => {
            assert_eq!(agent, "words");
            assert_eq!(*asked, (std::any::type_name::<Job>(), "u64"));
            assert_eq!(*runs, (std::any::type_name::<String>(), "u64"));
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "agent `words` takes `alloc::string::String` and gives `u64`, not `{}` and `u64`",
            std::any::type_name::<Job>()
        )
    );
    assert!(err.to_string().contains("Job"), "{err}");
    let words = swarm.agent::<String, u64>("words").unwrap();
    let n = words.submit("still here".into()).await.unwrap();
    assert_eq!(n.await.unwrap(), 2);

    // An agent's own error reaches the submitter typed, and the agent keeps working.
    let w = worker(&swarm, "w");
    let err = w
        .submit(Job::Fail("no".into()))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.agent_error::<JobError>(), Some(&JobError("no".into())));
    assert_eq!(err.to_string(), "agent `w` failed the task: job failed: no");
    let n = w.submit(Job::Words("still here".into())).await.unwrap();
    assert_eq!(n.await.unwrap(), 2);
    swarm.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_queued_or_running_task_ends_it_as_cancelled() {
    let rec = Recorder::default();
    let (make, handled) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("w"), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    let gate = Arc::new(Semaphore::new(0));
    let running = w.submit(Job::Hold(gate.clone())).await.unwrap();
    let queued = w.submit(Job::Words("never counted".into())).await.unwrap();
    let first = running.id();
    rec.wait_for("the first task to run", |kinds| {
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::TaskStarted { task, .. } if *task == first))
    })
    .await;
    assert_eq!(running.state(), TaskState::Running);
    assert_eq!(queued.state(), TaskState::Queued);

    assert!(queued.cancel());
    assert!(!queued.cancel(), "a task ends once");
    assert_eq!(queued.state(), TaskState::Cancelled);
    assert!(matches!(queued.await, Err(TaskError::Cancelled)));

    // Cancel the running one from elsewhere while awaiting it.
    let canceller = running.canceller();
    let waiter = tokio::spawn(running);
    canceller.cancel();
    assert!(matches!(waiter.await.unwrap(), Err(TaskError::Cancelled)));

    // The agent dropped the held job and moved on; the queued one never ran.
    let next = w.submit(Job::Sum(vec![2, 3])).await.unwrap();
    assert_eq!(next.await.unwrap(), 5);
    assert_eq!(
        handled.load(Ordering::Relaxed),
        2,
        "hold + sum; the cancelled job never ran"
    );
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deadlines_time_out_running_and_queued_tasks_on_time() {
    let swarm = one_worker(AgentSpec::new("w")).await;
    let w = worker(&swarm, "w");
    let t0 = tokio::time::Instant::now();
    let slow = w
        .submit_with(
            Job::Sleep(Duration::from_secs(60)),
            SubmitOptions::new().timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    // Queued behind the slow task; its own deadline is earlier than the slow task's end.
    let queued = w
        .submit_with(
            Job::Words("late".into()),
            SubmitOptions::new().timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let err = queued.await.unwrap_err();
    assert!(err.is_timed_out(), "{err}");
    assert_eq!(t0.elapsed(), Duration::from_millis(500));
    let err = slow.await.unwrap_err();
    assert!(err.is_timed_out(), "{err}");
    assert_eq!(t0.elapsed(), Duration::from_secs(1));

    // The agent's default deadline from its spec applies when the submission sets none.
    swarm.shutdown().await;
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .agent(
            AgentSpec::new("w").task_timeout(Duration::from_secs(2)),
            make,
        )
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    let h = w.submit(Job::Sleep(Duration::from_secs(5))).await.unwrap();
    assert!(h.deadline().is_some());
    assert!(h.await.unwrap_err().is_timed_out());
    let ok = w.submit(Job::Sleep(Duration::from_secs(1))).await.unwrap();
    assert_eq!(ok.await.unwrap(), 0);
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_panic_fails_its_task_and_stops_a_temporary_agent_losing_nothing() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("w").restart(RestartType::Temporary), make)
        .start()
        .await
        .unwrap();
    let w = worker(&swarm, "w");
    let StagedCrash {
        gate,
        hold: first,
        crash: boom,
        behind,
    } = stage_crash(&w, 5).await;
    gate.add_permits(1);
    assert_eq!(first.await.unwrap(), 1);
    match boom.await {
        Err(TaskError::Panicked { agent, message }) => {
            assert_eq!(agent, "w");
            assert_eq!(message, "asked to panic");
        }
        other => panic!("expected a panic result, got {other:?}"),
    }
    for h in behind {
        assert!(matches!(h.await, Err(TaskError::AgentStopped { .. })));
    }
    // The agent is gone: a new task comes straight back, not lost.
    let err = w.submit(Job::Sum(vec![1])).await.unwrap_err();
    assert_eq!(err.kind(), &SubmitErrorKind::AgentStopped("w".into()));
    assert!(matches!(err.into_task(), Job::Sum(v) if v == [1]));
    rec.wait_for("the failure event", |kinds| {
        kinds.iter().any(|k| {
            matches!(k, EventKind::AgentStopped { reason: StopReason::Failed(m), .. } if m.contains("asked to panic"))
        })
    })
    .await;
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_holds_tasks_until_resumed_and_keeps_their_order() {
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("words"), WordCounter::default)
        .start()
        .await
        .unwrap();
    let mut events = swarm.subscribe();
    let words = swarm.agent::<String, u64>("words").unwrap();
    swarm.pause("words").unwrap();
    assert!(swarm.is_paused("words").unwrap());
    let mut handles = Vec::new();
    for i in 1..=5 {
        handles.push(words.submit("w ".repeat(i)).await.unwrap());
    }
    // Once the agent has seen them all, each is held, none started.
    settle().await;
    for h in &handles {
        assert_eq!(h.state(), TaskState::Paused);
    }
    assert_eq!(swarm.queue_depth("words").unwrap(), 5);
    let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
    swarm.resume("words").unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u64 + 1);
    }
    let mut started = Vec::new();
    while let Some(Ok(e)) = events.try_recv() {
        if let EventKind::TaskStarted { task, .. } = e.kind() {
            started.push(*task);
        }
    }
    assert_eq!(started, ids, "held tasks run in arrival order");
    swarm.shutdown().await;
}

#[tokio::test]
async fn events_arrive_in_order_with_outcomes_and_durations() {
    let swarm = one_worker(AgentSpec::new("w")).await;
    let mut events = swarm.subscribe();
    let jobs = [
        Job::Sum(vec![1]),
        Job::Fail("no".into()),
        Job::Sleep(Duration::from_millis(20)),
    ];
    let w = worker(&swarm, "w");
    let mut ids = Vec::new();
    for job in jobs {
        let h = w.submit(job).await.unwrap();
        ids.push(h.id());
        let _ = h.await;
    }
    swarm.shutdown().await;

    let mut seen = Vec::new();
    let mut last_seq = 0;
    loop {
        match events.recv().await {
            Ok(e) => {
                assert!(e.seq() > last_seq, "seq must increase");
                last_seq = e.seq();
                seen.push(e.into_kind());
            }
            Err(apiary::RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
        if matches!(seen.last(), Some(EventKind::SwarmStopped)) {
            break;
        }
    }
    let mut expected = Vec::new();
    for (id, outcome) in ids
        .iter()
        .zip([Outcome::Completed, Outcome::Failed, Outcome::Completed])
    {
        expected.push(("started", *id, None));
        expected.push(("finished", *id, Some(outcome)));
    }
    let got: Vec<_> = seen
        .iter()
        .filter_map(|k| match k {
            EventKind::TaskStarted { task, .. } => Some(("started", *task, None)),
            EventKind::TaskFinished { task, outcome, .. } => {
                Some(("finished", *task, Some(*outcome)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, expected);
    let slept = seen.iter().find_map(|k| match k {
        EventKind::TaskFinished { task, ran, .. } if *task == ids[2] => Some(*ran),
        _ => None,
    });
    assert!(slept.unwrap() >= Duration::from_millis(20));
    assert!(matches!(
        &seen[seen.len() - 2..],
        [
            EventKind::AgentStopped {
                reason: StopReason::Normal,
                ..
            },
            EventKind::SwarmStopped
        ]
    ));
}

#[tokio::test]
async fn shutdown_drains_queues_stops_in_reverse_order_and_leaves_no_actor() {
    let rec = Recorder::default();
    let (make, handled) = workers();
    let make = Arc::new(make);
    let (m1, m2, m3) = (make.clone(), make.clone(), make.clone());
    let swarm = Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("a"), move || m1())
        .agent(
            AgentSpec::new("b").depends_on(["a"]).replicas(2),
            move || m2(),
        )
        .agent(AgentSpec::new("c").depends_on(["b"]), move || m3())
        .start()
        .await
        .unwrap();
    let cells = swarm.actor_cells();
    assert_eq!(cells.len(), 5, "root + a + 2 b + c");
    // Queue work everywhere and walk away from the handles: shutdown must still run it all.
    let refs: Vec<_> = ["a", "b", "c"].map(|a| worker(&swarm, a)).into();
    for agent in &refs {
        for _ in 0..50 {
            drop(
                agent
                    .submit(Job::Sleep(Duration::from_millis(1)))
                    .await
                    .unwrap(),
            );
        }
    }
    swarm.shutdown().await;
    assert_eq!(
        handled.load(Ordering::Relaxed),
        150,
        "every queued task ran"
    );
    for cell in &cells {
        assert_eq!(
            cell.get_status(),
            ActorStatus::Stopped,
            "{:?} still alive",
            cell.get_id()
        );
    }
    let stopped: Vec<String> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::AgentStopped {
                agent,
                reason: StopReason::Normal,
                ..
            } => Some(agent.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(stopped, ["c", "b", "b", "a"]);
    let err = refs[0].submit(Job::Sum(vec![])).await.unwrap_err();
    assert_eq!(err.kind(), &SubmitErrorKind::SwarmStopped);
    swarm.shutdown().await; // idempotent
}

#[tokio::test]
async fn agents_start_after_their_dependencies() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let make = Arc::new(make);
    let spec = |name: &str, deps: &[&str]| AgentSpec::new(name).depends_on(deps.iter().copied());
    let specs = [
        spec("top", &[]),
        spec("left", &["top"]),
        spec("right", &["top"]),
        spec("bottom", &["left", "right"]),
        spec("wide1", &[]),
        spec("wide2", &[]),
        spec("wide3", &["wide1", "wide2", "top"]),
    ];
    let mut builder = Swarm::builder().hook(rec.hook());
    for s in specs.iter().cloned() {
        let m = make.clone();
        builder = builder.agent(s, move || m());
    }
    let swarm = builder.start().await.unwrap();
    let spawned: Vec<String> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::AgentSpawned { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(spawned.len(), specs.len());
    for s in &specs {
        let at = spawned.iter().position(|n| *n == s.name).unwrap();
        for dep in &s.depends_on {
            let dep_at = spawned.iter().position(|n| n == dep).unwrap();
            assert!(dep_at < at, "{dep} must start before {}", s.name);
        }
    }
    swarm.shutdown().await;
}

/// Fails its start hook: stands for an agent whose resources are missing.
struct Broken;

impl Agent for Broken {
    type Task = Job;
    type Output = u64;
    type Error = JobError;

    async fn started(&mut self, _: &Ctx<Self>) -> Result<(), JobError> {
        Err(JobError("database unreachable".into()))
    }

    async fn handle(&mut self, _: Job, _: &Ctx<Self>) -> Result<u64, JobError> {
        unreachable!("never started")
    }
}

#[tokio::test]
async fn a_start_failure_in_batch_three_of_five_leaves_no_actor_alive() {
    let rec = Recorder::default();
    let (make, _) = workers();
    let make = Arc::new(make);
    let mut builder = Swarm::builder().hook(rec.hook());
    // A chain of five levels, two agents wide; one agent of level 3 cannot start.
    for level in 0..5 {
        for side in ["x", "y"] {
            let mut spec = AgentSpec::new(format!("{side}{level}")).replicas(2);
            if level > 0 {
                spec = spec.depends_on([format!("x{}", level - 1), format!("y{}", level - 1)]);
            }
            if level == 2 && side == "y" {
                builder = builder.agent(spec, || Broken);
            } else {
                let m = make.clone();
                builder = builder.agent(spec, move || m());
            }
        }
    }
    let err = builder.start().await.unwrap_err();
    match &err {
        SwarmError::AgentStart { agent, source, .. } => {
            assert_eq!(agent, "y2");
            assert_eq!(
                source.downcast_ref::<JobError>(),
                Some(&JobError("database unreachable".into()))
            );
            assert!(
                source.to_string().contains("database unreachable"),
                "{source}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let kinds = rec.kinds();
    let spawned: HashSet<(String, usize)> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::AgentSpawned { agent, replica, .. } => Some((agent.to_string(), *replica)),
            _ => None,
        })
        .collect();
    let stopped: HashSet<(String, usize)> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::AgentStopped { agent, replica, .. } => Some((agent.to_string(), *replica)),
            _ => None,
        })
        .collect();
    assert!(spawned.contains(&("x1".into(), 1)));
    assert!(!spawned
        .iter()
        .any(|(a, _)| a.ends_with('3') || a.ends_with('4')));
    assert_eq!(spawned, stopped, "everything started was stopped again");
    assert!(matches!(kinds.last(), Some(EventKind::SwarmStopped)));
}

#[tokio::test]
async fn replicas_share_an_agents_work() {
    let swarm = one_worker(AgentSpec::new("w").replicas(3)).await;
    let w = worker(&swarm, "w");
    let gate = Arc::new(Semaphore::new(0));
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(w.submit(Job::Hold(gate.clone())).await.unwrap());
    }
    let replicas: HashSet<usize> = handles.iter().map(|h| h.replica()).collect();
    assert_eq!(
        replicas.len(),
        3,
        "the least-loaded replica takes each task"
    );
    gate.add_permits(3);
    for h in handles {
        assert_eq!(h.await.unwrap(), 1);
    }
    swarm.shutdown().await;
}

#[tokio::test]
async fn bad_names_and_specs_fail_before_anything_starts() {
    let (make, _) = workers();
    let err = Swarm::builder()
        .agent(AgentSpec::new("w").replicas(0), make)
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent `w`, field `replicas`: must be at least 1"
    );

    let (make, _) = workers();
    let err = Swarm::builder()
        .agent(AgentSpec::new("w").depends_on(["ghost"]), make)
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent `w` depends on `ghost`, which is not declared"
    );

    let swarm = one_worker(AgentSpec::new("w")).await;
    let err = swarm.agent::<Job, u64>("nobody").unwrap_err();
    assert_eq!(err, LookupError::UnknownAgent("nobody".into()));
    assert_eq!(err.to_string(), "no agent named `nobody`");
    assert_eq!(
        swarm.pause("nobody").unwrap_err().to_string(),
        "no agent named `nobody`"
    );
    swarm.shutdown().await;
}
