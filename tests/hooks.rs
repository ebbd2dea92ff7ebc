//! Hooks run outside any lock: a hook may cancel a task, submit one or subscribe, from
//! inside. Subscriptions are `futures::Stream`s, and event numbers stay unique under load.

mod agents;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agents::{settle, Summer};
use apiary::prelude::*;
use apiary::{EventStream, TaskCanceller};
use futures::StreamExt;
use tokio::sync::Semaphore;

/// Holds every task on a gate, then echoes it.
struct Gate(Arc<Semaphore>);

impl Agent for Gate {
    type Task = u64;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, BoxError> {
        let _permit = self.0.acquire().await?;
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_hook_can_cancel_the_task_whose_start_it_sees() {
    let canceller: Arc<OnceLock<TaskCanceller>> = Arc::default();
    let hook = {
        let canceller = canceller.clone();
        move |e: &SwarmEvent| {
            if let EventKind::TaskStarted { .. } = e.kind() {
                // Cancelling publishes `TaskFinished` from inside this hook: with a lock held
                // while hooks run, this would deadlock.
                if let Some(c) = canceller.get() {
                    c.cancel();
                }
            }
        }
    };
    let gate = Arc::new(Semaphore::new(0));
    let swarm = Swarm::builder()
        .hook(hook)
        .agent(AgentSpec::new("gate"), {
            let gate = gate.clone();
            move || Gate(gate.clone())
        })
        .start()
        .await
        .unwrap();
    let agent = swarm.agent::<u64, u64>("gate").unwrap();
    swarm.pause("gate").unwrap();
    let handle = agent.submit(1).await.unwrap();
    let _ = canceller.set(handle.canceller());
    swarm.resume("gate").unwrap();
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    // The agent is free: the next task runs through.
    gate.add_permits(1);
    assert_eq!(agent.submit(2).await.unwrap().await.unwrap(), 2);
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_can_submit_and_subscribe() {
    // When `gate` finishes a task, the hook submits its output to `sum` and, the first time,
    // subscribes to the swarm's events.
    let swarm_slot: Arc<OnceLock<Swarm>> = Arc::default();
    let follow_ups: Arc<Mutex<Vec<TaskHandle<u64>>>> = Arc::default();
    let stream: Arc<Mutex<Option<EventStream>>> = Arc::default();
    let hook = {
        let (swarm_slot, follow_ups, stream) =
            (swarm_slot.clone(), follow_ups.clone(), stream.clone());
        move |e: &SwarmEvent| {
            let EventKind::TaskFinished { agent, .. } = e.kind() else {
                return;
            };
            let Some(swarm) = swarm_slot.get() else {
                return;
            };
            if agent == "gate" {
                let sum = swarm.agent::<Vec<u64>, u64>("sum").unwrap();
                follow_ups
                    .lock()
                    .unwrap()
                    .push(sum.try_submit(vec![e.seq(), 1]).unwrap());
                stream
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| swarm.subscribe());
            }
        }
    };
    let gate = Arc::new(Semaphore::new(10));
    let swarm = Swarm::builder()
        .hook(hook)
        .agent(AgentSpec::new("gate"), {
            let gate = gate.clone();
            move || Gate(gate.clone())
        })
        .agent(AgentSpec::new("sum"), || Summer)
        .start()
        .await
        .unwrap();
    let _ = swarm_slot.set(swarm.clone());
    let agent = swarm.agent::<u64, u64>("gate").unwrap();
    agent.submit(1).await.unwrap().await.unwrap();
    agent.submit(2).await.unwrap().await.unwrap();
    settle().await;
    let follow_ups: Vec<_> = follow_ups.lock().unwrap().drain(..).collect();
    assert_eq!(follow_ups.len(), 2, "one submission per finished gate task");
    for handle in follow_ups {
        // seq + 1: the hook's own submission ran.
        assert!(handle.await.unwrap() > 1);
    }
    // The stream subscribed from inside the hook saw the second round of events.
    let mut stream = stream
        .lock()
        .unwrap()
        .take()
        .expect("subscribed in the hook");
    let seen: Vec<EventKind> = std::iter::from_fn(|| stream.try_recv())
        .map(|e| e.unwrap().into_kind())
        .collect();
    assert!(
        seen.iter()
            .any(|k| matches!(k, EventKind::TaskFinished { agent, .. } if agent == "sum")),
        "{seen:?}"
    );
    drop(stream);
    // The hook holds a clone of the swarm; shutting down still works.
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_is_a_stream_with_unique_numbers_under_load() {
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("sum").replicas(4), || Summer)
        .start()
        .await
        .unwrap();
    let events = swarm.subscribe();
    let sum = swarm.agent::<Vec<u64>, u64>("sum").unwrap();
    // Two submitters at once, so events are published from both worker threads.
    let submit = |base: u64| {
        let sum = sum.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                sum.submit(vec![base, i]).await.unwrap().await.unwrap();
            }
        })
    };
    let (a, b) = (submit(0), submit(1000));
    a.await.unwrap();
    b.await.unwrap();
    // 1,000 tasks: a start and a finish each.
    let got: Vec<SwarmEvent> = tokio::time::timeout(
        Duration::from_secs(30),
        events
            .filter_map(|e| async move { e.ok() })
            .filter(|e| {
                let task = matches!(
                    e.kind(),
                    EventKind::TaskStarted { .. } | EventKind::TaskFinished { .. }
                );
                async move { task }
            })
            .take(2000)
            .collect(),
    )
    .await
    .expect("every task's two events arrive");
    let numbers: HashSet<u64> = got.iter().map(SwarmEvent::seq).collect();
    assert_eq!(numbers.len(), 2000, "event numbers are unique");
    // Along each task, numbers increase: its start comes before its finish.
    let mut started = std::collections::HashMap::new();
    for e in &got {
        match e.kind() {
            EventKind::TaskStarted { task, .. } => {
                started.insert(*task, e.seq());
            }
            EventKind::TaskFinished { task, .. } => {
                assert!(started[task] < e.seq(), "{task} finished before it started");
            }
            _ => {}
        }
    }
    swarm.shutdown().await;
}
