//! A flood of submissions is held back by the bounded queue: memory stays flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary::prelude::*;

/// Adds each task's number to a shared total: cheap, so the flood is all overhead.
struct Tally(Arc<AtomicU64>);

impl Agent for Tally {
    type Task = u64;
    type Output = ();
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<(), Self::Error> {
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const FLOOD: u64 = 1_000_000;
const CAPACITY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_submissions_never_exceed_the_queue_bound() {
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    let swarm = Swarm::builder()
        .agent(
            AgentSpec::new("tally").queue_capacity(CAPACITY),
            move || Tally(t.clone()),
        )
        .start()
        .await
        .unwrap();
    let tally = swarm.agent::<u64, ()>("tally").unwrap();

    let rss_before = rss_bytes();
    let mut max_depth = 0;
    let mut last = None;
    for n in 1..=FLOOD {
        // Each submit waits for room; the handles are dropped, the tasks still run.
        let h = tally.submit(n).await.unwrap();
        if n % 1024 == 0 {
            max_depth = max_depth.max(tally.queue_depth());
        }
        if n == FLOOD {
            last = Some(h);
        }
    }
    let rss_flood = rss_bytes();
    last.unwrap().await.unwrap();
    swarm.shutdown().await;

    assert_eq!(
        total.load(Ordering::Relaxed),
        FLOOD * (FLOOD + 1) / 2,
        "every task ran once"
    );
    assert!(
        max_depth <= CAPACITY,
        "queue depth {max_depth} exceeded {CAPACITY}"
    );
    // An unbounded mailbox would hold up to a million envelopes (well over 100 MiB);
    // the bound keeps the growth to noise.
    let grown = rss_flood.saturating_sub(rss_before);
    assert!(
        grown < 32 << 20,
        "RSS grew by {grown} bytes during the flood"
    );
}

#[tokio::test(start_paused = true)]
async fn try_submit_on_a_full_queue_is_busy_and_hands_the_task_back() {
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("tally").queue_capacity(4), || {
            Tally(Arc::default())
        })
        .start()
        .await
        .unwrap();
    let tally = swarm.agent::<u64, ()>("tally").unwrap();
    swarm.pause("tally").unwrap();
    let mut accepted = Vec::new();
    let mut busy = 0;
    for n in 0..100u64 {
        match tally.try_submit(n) {
            Ok(h) => accepted.push(h),
            Err(e) => {
                assert!(e.is_busy(), "{e}");
                assert_eq!(e.to_string(), "agent `tally` is busy: its queue is full");
                assert_eq!(e.into_task(), n);
                busy += 1;
            }
        }
    }
    assert_eq!((accepted.len(), busy), (4, 96));
    // A waiting submit blocks until room frees up. The clock is paused: it only jumps the
    // minute ahead once every task (the agent's actor included) waits, so the submit is
    // really stuck, and the queue still holds only the four.
    let mut waiting = {
        let tally = tally.clone();
        tokio::spawn(async move { tally.submit(1000).await.map(|_| ()) })
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(60), &mut waiting)
            .await
            .is_err(),
        "a submit to a full queue must wait"
    );
    assert_eq!(tally.queue_depth(), 4);
    swarm.resume("tally").unwrap();
    for h in accepted {
        h.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiting submit goes through once room frees up")
        .unwrap()
        .unwrap();
    swarm.shutdown().await;
}
