//! Pools of pre-warmed agents: ready on acquire, reset on release, bounded, shrinking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary::prelude::*;
use apiary::{Pool, PoolError};

/// Keeps a transcript of its current user's tasks; counts how often it was warmed up.
struct Transcript {
    lines: Vec<String>,
    warmups: Arc<AtomicUsize>,
}

impl Agent for Transcript {
    type Task = String;
    type Output = Vec<String>;
    type Error = std::convert::Infallible;

    async fn started(&mut self, _: &Ctx<Self>) -> Result<(), Self::Error> {
        self.warmups.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn handle(&mut self, line: String, _: &Ctx<Self>) -> Result<Vec<String>, Self::Error> {
        self.lines.push(line);
        Ok(self.lines.clone())
    }
}

async fn swarm() -> Swarm {
    Swarm::builder().start().await.unwrap()
}

fn factory() -> (
    impl Fn() -> Transcript + Send + Sync + 'static,
    Arc<AtomicUsize>,
) {
    let warmups = Arc::new(AtomicUsize::new(0));
    let w = warmups.clone();
    (
        move || Transcript {
            lines: Vec::new(),
            warmups: w.clone(),
        },
        warmups,
    )
}

#[tokio::test]
async fn acquired_agents_are_warm_and_state_never_leaks_between_users() {
    let swarm = swarm().await;
    let (make, warmups) = factory();
    let pool = Pool::builder(AgentSpec::new("scribe"), make)
        .min_idle(2)
        .max_size(2)
        .start(&swarm)
        .await
        .unwrap();
    assert_eq!(
        warmups.load(Ordering::Relaxed),
        2,
        "min_idle agents warmed before start returns"
    );
    assert_eq!((pool.size(), pool.idle()), (2, 2));

    // Default reset: a fresh value from the factory in the same warm actor.
    let a = pool.acquire().await.unwrap();
    let id = a.id();
    a.run("secret".into()).await.unwrap();
    assert_eq!(a.run("more".into()).await.unwrap(), ["secret", "more"]);
    a.release().await;
    let b = pool.acquire().await.unwrap();
    assert_eq!(b.id(), id, "the warmest agent is reused");
    assert_eq!(
        b.run("hello".into()).await.unwrap(),
        ["hello"],
        "no leftover from the last user"
    );
    drop(b); // dropping releases too
    assert_eq!(
        warmups.load(Ordering::Relaxed),
        2,
        "reuse does not warm up again"
    );
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_custom_reset_clears_state_in_place() {
    let swarm = swarm().await;
    let (make, _) = factory();
    let resets = Arc::new(AtomicUsize::new(0));
    let r = resets.clone();
    let pool = Pool::builder(AgentSpec::new("scribe"), make)
        .min_idle(1)
        .max_size(1)
        .reset(move |t: &mut Transcript| {
            r.fetch_add(1, Ordering::Relaxed);
            t.lines.clear();
        })
        .start(&swarm)
        .await
        .unwrap();
    for user in ["ann", "bob", "cy"] {
        let agent = pool.acquire().await.unwrap();
        assert_eq!(agent.run(user.into()).await.unwrap(), [user]);
        agent.release().await;
    }
    assert_eq!(resets.load(Ordering::Relaxed), 3);
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pool_grows_to_its_bound_and_then_waits_for_a_release() {
    let swarm = swarm().await;
    let (make, warmups) = factory();
    let pool = Pool::builder(AgentSpec::new("scribe"), make)
        .min_idle(0)
        .max_size(3)
        .start(&swarm)
        .await
        .unwrap();
    assert_eq!(pool.size(), 0);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    assert_eq!((pool.size(), warmups.load(Ordering::Relaxed)), (3, 3));
    let mut waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(|a| a.id()) })
    };
    // The clock is paused: it jumps the minute ahead only once every task waits, so a waiter
    // still unfinished then is really stuck.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), &mut waiting)
            .await
            .is_err(),
        "a fourth agent must wait at max_size"
    );
    assert_eq!(pool.size(), 3, "no fourth agent started meanwhile");
    assert_eq!(warmups.load(Ordering::Relaxed), 3);
    let freed = held.pop().unwrap();
    let freed_id = freed.id();
    freed.release().await;
    let got = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiter gets the released agent")
        .unwrap()
        .unwrap();
    assert_eq!(got, freed_id);
    assert_eq!(pool.size(), 3, "never above max_size");
    drop(held);
    swarm.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_agents_above_min_idle_are_stopped_after_the_timeout() {
    let swarm = swarm().await;
    let (make, _) = factory();
    let pool = Pool::builder(AgentSpec::new("scribe"), make)
        .min_idle(1)
        .max_size(4)
        .idle_timeout(Duration::from_secs(10))
        .start(&swarm)
        .await
        .unwrap();
    let held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for a in held {
        a.release().await;
    }
    assert_eq!((pool.size(), pool.idle()), (4, 4));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pool.size(), 4, "not idle long enough yet");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!((pool.size(), pool.idle()), (1, 1), "shrunk to min_idle");
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_closed_pool_refuses_and_shutdown_stops_pooled_actors() {
    let swarm = swarm().await;
    let (make, _) = factory();
    let pool = Pool::builder(AgentSpec::new("scribe"), make)
        .min_idle(2)
        .start(&swarm)
        .await
        .unwrap();
    let agent = pool.acquire().await.unwrap();
    let handle = agent.submit("x".into()).await.unwrap();
    assert_eq!(handle.await.unwrap(), ["x"]);
    pool.close().await;
    assert!(matches!(
        pool.acquire().await.unwrap_err(),
        PoolError::Closed(name) if name == "scribe"
    ));
    assert_eq!(
        pool.size(),
        1,
        "idle agents stopped; the checked-out one lives on"
    );
    swarm.shutdown().await;
    assert!(matches!(
        agent.run("y".into()).await,
        Err(TaskError::AgentStopped { .. })
    ));
}
