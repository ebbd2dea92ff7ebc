//! Handing a task on (`AgentContext::hand_off`): work goes round a ring of bounded queues
//! without holding any agent, the peer's result answers the original submitter, and
//! cancellation and deadlines follow the task from hop to hop.

mod agents;

use std::sync::Arc;
use std::time::Duration;

use agents::{settle, Recorder};
use apiary::prelude::*;
use apiary::topology::{Ring, Star};
use apiary::{LookupError, SubmitErrorKind};
use tokio::sync::Semaphore;

/// A token that must go round the ring `rounds` times.
#[derive(Debug, Clone)]
struct Token {
    id: usize,
    hops: usize,
    goal: usize,
}

/// Passes the token to its successor: by hand-off, or by sending it and awaiting the answer.
struct Stage {
    hand_off: bool,
}

impl Agent for Stage {
    type Task = Token;
    type Output = (usize, usize);
    type Error = BoxError;

    async fn handle(
        &mut self,
        mut token: Token,
        ctx: &Ctx<Self>,
    ) -> Result<(usize, usize), BoxError> {
        token.hops += 1;
        if token.hops == token.goal {
            return Ok((token.id, token.hops));
        }
        let next = ctx.successor::<Token, (usize, usize)>()?;
        if self.hand_off {
            Err(ctx.hand_off(&next, token).await.into())
        } else {
            Ok(next.submit(token).await?.await?)
        }
    }
}

async fn ring(n: usize, capacity: usize, hand_off: bool) -> Swarm {
    let mut builder = Swarm::builder().topology(Ring::new());
    for i in 0..n {
        builder = builder.agent(
            AgentSpec::new(format!("r{i}")).queue_capacity(capacity),
            move || Stage { hand_off },
        );
    }
    builder.start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_passing_work_by_hand_off_finishes_every_token() {
    // Five stages with room for three tasks each; ten tokens go round the ring twenty times
    // (a hundred hops each). Every stage is free again as soon as it has passed a token on.
    // (Hand-offs wait for room in the next queue, so fewer tokens than the ring's total room
    // can never block all at once.)
    let swarm = ring(5, 3, true).await;
    let tokens = 10;
    let mut handles = Vec::new();
    for id in 0..tokens {
        let token = Token {
            id,
            hops: 0,
            goal: 100,
        };
        handles.push(swarm.route::<Token, (usize, usize)>(token).await.unwrap());
    }
    for (id, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), (id, 100));
    }
    // Nothing is left queued or running anywhere: the swarm drains at once.
    assert!(swarm.shutdown_timeout(Duration::from_secs(10)).await);
}

#[tokio::test(start_paused = true)]
async fn the_same_ring_awaiting_each_successor_deadlocks() {
    // One token that must come back to the first stage: that stage is still awaiting its
    // successor, so the token waits in its queue forever. (The clock is paused: the timeout
    // fires as soon as nothing can run any more.)
    let swarm = ring(3, 2, false).await;
    let token = Token {
        id: 0,
        hops: 0,
        goal: 4,
    };
    let handle = swarm.route::<Token, (usize, usize)>(token).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .is_err(),
        "awaiting round a ring completed: the deadlock this test shows is gone"
    );
    assert!(!swarm.shutdown_timeout(Duration::from_secs(1)).await);
}

/// Hands every task on to `worker`; the worker holds each on a gate.
struct Front;

impl Agent for Front {
    type Task = u32;
    type Output = u32;
    type Error = BoxError;

    async fn handle(&mut self, n: u32, ctx: &Ctx<Self>) -> Result<u32, BoxError> {
        let worker = ctx.agent::<u32, u32>("worker")?;
        Err(ctx.hand_off(&worker, n).await.into())
    }
}

struct Gated(Arc<Semaphore>);

impl Agent for Gated {
    type Task = u32;
    type Output = u32;
    type Error = BoxError;

    async fn handle(&mut self, n: u32, ctx: &Ctx<Self>) -> Result<u32, BoxError> {
        let _permit = self.0.acquire().await?;
        Ok(n * 10 + ctx.replica() as u32)
    }
}

async fn front_and_worker(gate: &Arc<Semaphore>, rec: &Recorder) -> Swarm {
    let gate = gate.clone();
    Swarm::builder()
        .hook(rec.hook())
        .agent(AgentSpec::new("worker"), move || Gated(gate.clone()))
        .agent(AgentSpec::new("front"), || Front)
        .start()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_peers_result_answers_the_original_task_and_the_front_is_free_at_once() {
    let gate = Arc::new(Semaphore::new(0));
    let rec = Recorder::default();
    let swarm = front_and_worker(&gate, &rec).await;
    let front = swarm.agent::<u32, u32>("front").unwrap();
    let first = front.submit(4).await.unwrap();
    let second = front.submit(5).await.unwrap();
    settle().await;
    // Both tasks passed through the front, which holds nothing: they wait at the worker.
    assert_eq!(swarm.queue_depth("front").unwrap(), 0);
    assert_eq!(swarm.queue_depth("worker").unwrap(), 2);
    assert_eq!(first.state(), TaskState::Running);
    assert_eq!(second.state(), TaskState::Queued);

    gate.add_permits(2);
    assert_eq!(first.await.unwrap(), 40);
    assert_eq!(second.await.unwrap(), 50);
    rec.wait_for("both hops to end", |kinds| {
        kinds
            .iter()
            .filter(|k| matches!(k, EventKind::TaskFinished { .. }))
            .count()
            == 4
    })
    .await;
    let ends: Vec<(String, Outcome)> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::TaskFinished { agent, outcome, .. } => Some((agent.to_string(), outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("front".to_string(), Outcome::Delegated),
            ("front".to_string(), Outcome::Delegated),
            ("worker".to_string(), Outcome::Completed),
            ("worker".to_string(), Outcome::Completed),
        ]
    );
    let delegated = rec
        .kinds()
        .into_iter()
        .filter(|k| matches!(k, EventKind::TaskDelegated { agent, to_agent, .. } if agent == "front" && to_agent == "worker"))
        .count();
    assert_eq!(delegated, 2);
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_handed_on_task_cancels_the_peers_task() {
    let gate = Arc::new(Semaphore::new(0));
    let rec = Recorder::default();
    let swarm = front_and_worker(&gate, &rec).await;
    let handle = swarm
        .agent::<u32, u32>("front")
        .unwrap()
        .submit(1)
        .await
        .unwrap();
    settle().await;
    assert_eq!(handle.state(), TaskState::Running, "running at the worker");
    assert!(handle.cancel());
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    rec.wait_for("the worker's hop to be cancelled", |kinds| {
        kinds.iter().any(|k| {
            matches!(k, EventKind::TaskFinished { agent, outcome: Outcome::Cancelled, .. } if agent == "worker")
        })
    })
    .await;
    // The worker was stopped working on it: it is free for the next task.
    gate.add_permits(1);
    let next = swarm
        .agent::<u32, u32>("front")
        .unwrap()
        .submit(2)
        .await
        .unwrap();
    assert_eq!(next.await.unwrap(), 20);
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handed_on_task_keeps_its_deadline() {
    let gate = Arc::new(Semaphore::new(0));
    let rec = Recorder::default();
    let swarm = front_and_worker(&gate, &rec).await;
    let front = swarm.agent::<u32, u32>("front").unwrap();
    let handle = front
        .submit_with(3, SubmitOptions::new().timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = handle.await.unwrap_err();
    assert!(err.is_timed_out(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    rec.wait_for("the worker's hop to time out", |kinds| {
        kinds.iter().any(|k| {
            matches!(k, EventKind::TaskFinished { agent, outcome: Outcome::TimedOut, .. } if agent == "worker")
        })
    })
    .await;
    swarm.shutdown().await;
}

/// Tries to hand its task to a spoke; the star refuses, so it answers itself.
struct Spoke;

impl Agent for Spoke {
    type Task = u32;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, n: u32, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        if n == 0 {
            return Ok(format!("{} did it", ctx.name()));
        }
        let other = ctx.agent::<u32, String>("b")?;
        let refused = ctx.hand_off(&other, 7).await;
        let kind = refused.kind().clone();
        // The task comes back with the refusal.
        let task = refused.into_task();
        Ok(format!("{} kept {task}: {kind}", ctx.name()))
    }
}

/// Tries to hand a task on from its `started` hook, where it is handling none.
struct Early(Arc<std::sync::Mutex<Option<SubmitErrorKind>>>);

impl Agent for Early {
    type Task = u32;
    type Output = u32;
    type Error = BoxError;

    async fn started(&mut self, ctx: &Ctx<Self>) -> Result<(), BoxError> {
        let me = ctx.agent::<u32, u32>(ctx.name().as_str())?;
        let refused = ctx.hand_off(&me, 1).await;
        *self.0.lock().unwrap() = Some(refused.kind().clone());
        Ok(())
    }

    async fn handle(&mut self, n: u32, _: &Ctx<Self>) -> Result<u32, BoxError> {
        Ok(n)
    }
}

#[tokio::test]
async fn a_refused_hand_off_gives_the_task_back_and_the_agent_answers_itself() {
    let swarm = Swarm::builder()
        .topology(Star::new("hub"))
        .agent(AgentSpec::new("a"), || Spoke)
        .agent(AgentSpec::new("b"), || Spoke)
        .agent(AgentSpec::new("hub"), || Spoke)
        .start()
        .await
        .unwrap();
    let a = swarm.agent::<u32, String>("a").unwrap();
    let out = a.submit(1).await.unwrap().await.unwrap();
    assert_eq!(
        out,
        "a kept 7: topology `star` does not let `a` send to `b`"
    );
    swarm.shutdown().await;
}

#[tokio::test]
async fn handing_off_outside_a_task_is_refused() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("early"), {
            let seen = seen.clone();
            move || Early(seen.clone())
        })
        .start()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(SubmitErrorKind::NoTask));
    // A peer looked up with the wrong types is refused by name and types.
    let err = swarm.agent::<String, u32>("early").unwrap_err();
    assert!(matches!(err, LookupError::WrongType { ref agent, .. } if agent == "early"));
    swarm.shutdown().await;
}

/// Streams ticks from a task of its own until its task is cancelled.
struct Ticker(tokio::sync::mpsc::UnboundedSender<u32>);

impl Agent for Ticker {
    type Task = ();
    type Output = u32;
    type Error = BoxError;

    async fn handle(&mut self, (): (), ctx: &Ctx<Self>) -> Result<u32, BoxError> {
        let (ctx, tx) = (ctx.clone(), self.0.clone());
        let worker = tokio::spawn(async move {
            let mut ticks = 0;
            loop {
                tokio::select! {
                    () = ctx.cancelled() => return (ticks, ctx.is_cancelled()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        ticks += 1;
                        let _ = tx.send(ticks);
                    }
                }
            }
        });
        let (ticks, cancelled) = worker.await?;
        assert!(cancelled);
        Ok(ticks)
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_sees_its_task_cancelled_and_its_deadline() {
    let (tx, mut ticks) = tokio::sync::mpsc::unbounded_channel();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("ticker"), move || Ticker(tx.clone()))
        .start()
        .await
        .unwrap();
    let ticker = swarm.agent::<(), u32>("ticker").unwrap();
    let handle = ticker
        .submit_with(
            (),
            SubmitOptions::new().timeout(Duration::from_millis(3500)),
        )
        .await
        .unwrap();
    let deadline = handle.deadline().unwrap();
    assert!(handle.await.unwrap_err().is_timed_out());
    // The spawned worker saw the deadline pass through `ctx.cancelled()` and stopped: three
    // ticks, none after.
    let mut seen = Vec::new();
    settle().await;
    while let Ok(t) = ticks.try_recv() {
        seen.push(t);
    }
    assert_eq!(seen, [1, 2, 3]);
    assert!(tokio::time::Instant::now() >= deadline);
    swarm.shutdown().await;
}
