//! A long run under steady load, for docs/reliability.md: `scripts/soak.sh [MINUTES]`.
//!
//! A swarm of two agents runs for the given minutes: `work` (4 replicas, journaled, every
//! task with a 100 ms deadline) takes 1,000 tasks a second, of which 0.1% panic and 0.1%
//! sleep past their deadline; `memo` writes keys (with a TTL) and patterns to a persistent
//! memory and searches it, 100 tasks a second. Every 10 s one CSV line goes to stdout:
//! elapsed seconds, RSS (KiB), open file descriptors, tasks submitted, completed, panicked,
//! timed out, ended otherwise, in flight, and the journal's file size. At the end, every task
//! submitted must have ended (the run exits 1 otherwise).
//!
//!     cargo run --release --features journal,memory --example soak -- 30 /tmp/soak

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary::journal::{Journal, JournalConfig};
use apiary::memory::{Memory, MemoryConfig, Pattern, Query};
use apiary::prelude::*;
use futures::stream::{FuturesUnordered, StreamExt};

struct Work;

impl Agent for Work {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        if n % 1000 == 7 {
            panic!("soak: task {n} panics, as 0.1% do");
        }
        if n % 1000 == 3 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // A little real work: FNV-1a over the task's bytes, 64 rounds.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for _ in 0..64 {
            for b in n.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        Ok(h)
    }
}

struct Memo {
    memory: Memory,
}

impl Agent for Memo {
    type Task = u64;
    type Output = usize;
    type Error = apiary::memory::MemoryError;

    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<usize, Self::Error> {
        // A bounded key space with a TTL: the store's size levels off.
        let key = format!("soak/k{}", n % 5_000);
        self.memory
            .put_with_ttl(&key, &n, Duration::from_secs(60))
            .await?;
        if n.is_multiple_of(10) {
            let note = format!("lesson {} about linker flags and test order", n % 2_000);
            self.memory
                .add_pattern(Pattern::text(format!("notes/p{}", n % 2_000), note))
                .await?;
        }
        if n % 10 == 5 {
            let hits = self.memory.search(Query::text("linker flags", 5)).await?;
            return Ok(hits.len());
        }
        Ok(0)
    }
}

#[derive(Default)]
struct Counts {
    submitted: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    timed_out: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    /// Tasks that ended, whichever way.
    fn ended(&self) -> u64 {
        self.completed.load(Relaxed)
            + self.panicked.load(Relaxed)
            + self.timed_out.load(Relaxed)
            + self.other.load(Relaxed)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Expected panics: one line each would bury the samples.
    std::panic::set_hook(Box::new(|_| {}));
    let mut args = std::env::args().skip(1);
    let minutes: f64 = args.next().map_or(Ok(30.0), |m| m.parse())?;
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/soak".into()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let journal =
        Journal::open(JournalConfig::new(dir.join("journal"), "soak").keep_finished(10_000))
            .await?;
    let memory = Memory::open(MemoryConfig::new(64).persist_to(dir.join("memory"))).await?;
    let m = memory.clone();
    let swarm = Swarm::builder()
        .resource(journal.clone())
        .agent(
            AgentSpec::new("work").replicas(4).queue_capacity(256),
            || Work,
        )
        .agent(AgentSpec::new("memo").queue_capacity(64), move || Memo {
            memory: m.clone(),
        })
        .start()
        .await?;
    let work = journal.agent::<u64, u64>(&swarm, "work")?;
    let memo = swarm.agent::<u64, usize>("memo")?;

    let counts = Arc::new(Counts::default());
    let journal_file = dir.join("journal").join("journal.redb");
    let started = Instant::now();
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    println!("elapsed_s,rss_kib,open_fds,submitted,completed,panicked,timed_out,other,in_flight,journal_bytes");
    let sampler = {
        let counts = counts.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let c = &counts;
                let ended = c.ended();
                println!(
                    "{},{},{},{},{},{},{},{},{},{}",
                    started.elapsed().as_secs(),
                    rss_kib(),
                    open_fds(),
                    c.submitted.load(Relaxed),
                    c.completed.load(Relaxed),
                    c.panicked.load(Relaxed),
                    c.timed_out.load(Relaxed),
                    c.other.load(Relaxed),
                    c.submitted.load(Relaxed) - ended,
                    std::fs::metadata(&journal_file).map_or(0, |m| m.len()),
                );
            }
        })
    };

    let mut pending = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let mut others = Vec::new();
    while started.elapsed() < run_for {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                counts.submitted.fetch_add(1, Relaxed);
                let options = SubmitOptions::new().timeout(Duration::from_millis(100));
                match work.submit_with(n, options).await {
                    Ok(h) => pending.push(Box::pin(async move { (n, h.await.map(drop)) })
                        as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>),
                    Err(e) => { counts.other.fetch_add(1, Relaxed); others.push(e.to_string()); }
                }
                if n.is_multiple_of(10) {
                    counts.submitted.fetch_add(1, Relaxed);
                    match memo.submit(n / 10).await {
                        Ok(h) => pending.push(Box::pin(async move {
                            (n, h.await.map(drop).map_err(|e| apiary::journal::JournalTaskError::Failed(
                                apiary::journal::Failure { agent: "memo".into(), outcome: "failed".into(), message: e.to_string() })))
                        })),
                        Err(e) => { counts.other.fetch_add(1, Relaxed); others.push(e.to_string()); }
                    }
                }
            }
            Some((_, result)) = pending.next(), if !pending.is_empty() => count(&counts, result, &mut others),
        }
    }
    while let Some((_, result)) = pending.next().await {
        count(&counts, result, &mut others);
    }
    sampler.abort();
    let c = &counts;
    let ended = c.ended();
    println!(
        "# end: {} submitted, {} ended ({} completed, {} panicked, {} timed out, {} other); rss {} KiB, {} fds",
        c.submitted.load(Relaxed),
        ended,
        c.completed.load(Relaxed),
        c.panicked.load(Relaxed),
        c.timed_out.load(Relaxed),
        c.other.load(Relaxed),
        rss_kib(),
        open_fds(),
    );
    for o in others.iter().take(5) {
        println!("# other: {o}");
    }
    swarm.shutdown().await;
    memory.close().await;
    if ended != c.submitted.load(Relaxed) {
        eprintln!(
            "soak: {} tasks have no outcome",
            c.submitted.load(Relaxed) - ended
        );
        std::process::exit(1);
    }
    Ok(())
}

fn count(
    counts: &Counts,
    result: Result<(), apiary::journal::JournalTaskError>,
    others: &mut Vec<String>,
) {
    match result {
        Ok(()) => counts.completed.fetch_add(1, Relaxed),
        Err(e) => match e.failure() {
            Some(f) if f.outcome == "panicked" => counts.panicked.fetch_add(1, Relaxed),
            Some(f) if f.is_timed_out() => counts.timed_out.fetch_add(1, Relaxed),
            _ => {
                if others.len() < 100 {
                    others.push(e.to_string());
                }
                counts.other.fetch_add(1, Relaxed)
            }
        },
    };
}
