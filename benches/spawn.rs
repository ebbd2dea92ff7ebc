//! Starting agents: 10,000 independent agents planner-batched vs one by one vs raw ractor
//! spawns (free, and linked under a supervisor as agents are), 10,000 agents in a 100-level
//! DAG, and a pooled acquire vs the floor of any async pool (a semaphore permit and a locked
//! deque) and vs a fresh spawn.
//! Memory per agent is printed first: RSS growth over 10,000 started agents, each side measured
//! in a fresh process of its own. Stopping 10,000 agents is measured against stopping 10,000
//! raw actors.
//!
//! Run: `cargo bench --bench spawn`

use std::time::{Duration, Instant};

use apiary::prelude::*;
use apiary::Pool;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ractor::{Actor, ActorRef};

mod baseline;
use baseline::{runtime, RawIdle};

const N: usize = 10_000;

struct Idle;

impl Agent for Idle {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        Ok(n)
    }
}

fn independent() -> Vec<AgentSpec> {
    (0..N).map(|i| AgentSpec::new(format!("a{i}"))).collect()
}

/// 100 levels of 100 agents; each depends on two agents of the level above.
fn layered() -> Vec<AgentSpec> {
    (0..N)
        .map(|i| {
            let (level, pos) = (i / 100, i % 100);
            let spec = AgentSpec::new(format!("a{i}"));
            if level == 0 {
                spec
            } else {
                let above = (level - 1) * 100;
                spec.depends_on([
                    format!("a{}", above + pos),
                    format!("a{}", above + (pos + 1) % 100),
                ])
            }
        })
        .collect()
}

async fn start(specs: &[AgentSpec], batch_size: usize) -> Swarm {
    let mut b = Swarm::builder().spawn_limits(0, batch_size);
    for s in specs {
        b = b.agent(s.clone(), || Idle);
    }
    b.start().await.unwrap()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096
}

/// Which side `memory_per_agent` measures in a child process (the variable's value).
const RSS_SIDE: &str = "APIARY_SPAWN_RSS_SIDE";

/// RSS growth per agent while 10,000 run, each side in a fresh process of its own: in one
/// process, whichever side ran second would reuse memory the first had freed (freed memory
/// stays in RSS) and look smaller. Agents are started one by one on both sides, as raw
/// ractor's are; a planner batch of 10,000 is measured too, as its spawns are all in flight at
/// once and their transient futures stay in RSS after they are freed.
fn memory_per_agent(flat: &[AgentSpec]) {
    if let Ok(side) = std::env::var(RSS_SIDE) {
        let rt = runtime();
        let (before, after) = rt.block_on(async {
            let before = rss_bytes();
            match side.as_str() {
                "raw ractor actors, one by one" => {
                    let mut actors = Vec::with_capacity(N);
                    for _ in 0..N {
                        actors.push(Actor::spawn(None, RawIdle, ()).await.unwrap().0);
                    }
                    (before, rss_bytes())
                }
                "apiary agents, one by one" => {
                    let swarm = start(flat, 1).await;
                    let after = rss_bytes();
                    drop(swarm);
                    (before, after)
                }
                _ => {
                    let swarm = start(flat, 0).await;
                    let after = rss_bytes();
                    drop(swarm);
                    (before, after)
                }
            }
        });
        eprintln!(
            "memory: {N} {side} grew RSS by {} KiB = {} bytes each",
            (after - before) / 1024,
            (after - before) / N as u64
        );
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    for side in [
        "raw ractor actors, one by one",
        "apiary agents, one by one",
        "apiary agents, one planner batch",
    ] {
        let out = std::process::Command::new(&exe)
            .arg("--bench")
            .env(RSS_SIDE, side)
            .output()
            .expect("the bench re-runs itself for one side's memory");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn spawn(c: &mut Criterion) {
    let rt = runtime();
    let flat = independent();
    let dag = layered();

    memory_per_agent(&flat);

    let mut group = c.benchmark_group("spawn_10k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(N as u64));
    let timed_start = |specs: Vec<AgentSpec>, batch_size: usize| {
        let rt = &rt;
        move |iters: u64| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let swarm = rt.block_on(start(&specs, batch_size));
                total += t.elapsed();
                rt.block_on(swarm.shutdown());
            }
            total
        }
    };
    group.bench_function("apiary_planned_batches", |b| {
        b.iter_custom(timed_start(flat.clone(), 0))
    });
    group.bench_function("apiary_one_by_one", |b| {
        b.iter_custom(timed_start(flat.clone(), 1))
    });
    group.bench_function("apiary_dag_100_levels", |b| {
        b.iter_custom(timed_start(dag.clone(), 0))
    });
    let raw = |concurrent: bool| {
        let rt = &rt;
        move |iters: u64| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let actors: Vec<ActorRef<()>> = rt.block_on(async {
                    if concurrent {
                        futures::future::join_all((0..N).map(|_| Actor::spawn(None, RawIdle, ())))
                            .await
                            .into_iter()
                            .map(|r| r.unwrap().0)
                            .collect()
                    } else {
                        let mut v = Vec::with_capacity(N);
                        for _ in 0..N {
                            v.push(Actor::spawn(None, RawIdle, ()).await.unwrap().0);
                        }
                        v
                    }
                });
                total += t.elapsed();
                rt.block_on(async {
                    for a in actors {
                        a.stop_and_wait(None, None).await.unwrap();
                    }
                });
            }
            total
        }
    };
    group.bench_function("raw_ractor_concurrent", |b| b.iter_custom(raw(true)));
    group.bench_function("raw_ractor_one_by_one", |b| b.iter_custom(raw(false)));
    // The floor of a supervised actor: raw ractor actors spawned one by one, each linked
    // under one supervisor actor, as every apiary agent is linked under its swarm's.
    group.bench_function("raw_ractor_linked_one_by_one", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (supervisor, _) = rt.block_on(Actor::spawn(None, RawIdle, ())).unwrap();
                let t = Instant::now();
                let actors: Vec<ActorRef<()>> = rt.block_on(async {
                    let mut v = Vec::with_capacity(N);
                    for _ in 0..N {
                        let (actor, _) =
                            Actor::spawn_linked(None, RawIdle, (), supervisor.get_cell())
                                .await
                                .unwrap();
                        v.push(actor);
                    }
                    v
                });
                total += t.elapsed();
                rt.block_on(async {
                    for a in actors {
                        a.unlink(supervisor.get_cell());
                        a.stop_and_wait(None, None).await.unwrap();
                    }
                    supervisor.stop_and_wait(None, None).await.unwrap();
                });
            }
            total
        })
    });
    group.finish();

    shutdown(c, &flat);

    // Pooled acquire (an idle agent is ready) vs the data structures any async pool touches,
    // and vs starting a fresh actor (what a pool saves). Acquisitions are timed in blocks of
    // `POOLED` (then all released, untimed): one clock read per block, not per acquire, whose
    // ~20 ns here would be a third of the figure.
    const POOLED: usize = 1000;
    let swarm: Swarm = rt.block_on(Swarm::builder().start()).unwrap();
    let pool = rt
        .block_on(
            Pool::builder(AgentSpec::new("pooled"), || Idle)
                .min_idle(POOLED)
                .max_size(POOLED)
                .start(&swarm),
        )
        .unwrap();
    let mut group = c.benchmark_group("acquire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pool_acquire_idle", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                let mut held = Vec::with_capacity(POOLED);
                while left > 0 {
                    let n = left.min(POOLED);
                    let t = Instant::now();
                    for _ in 0..n {
                        held.push(pool.acquire().await.unwrap());
                    }
                    total += t.elapsed();
                    for agent in held.drain(..) {
                        agent.release().await;
                    }
                    left -= n;
                }
                total
            })
        })
    });
    // The floor: what any async pool of idle things must do per checkout - take a permit
    // from a tokio semaphore and pop the warmest idle item from a locked deque.
    let permits = tokio::sync::Semaphore::new(POOLED);
    let idle: std::sync::Mutex<std::collections::VecDeque<Box<u64>>> =
        std::sync::Mutex::new((0..POOLED as u64).map(Box::new).collect());
    group.bench_function("floor_semaphore_and_locked_deque", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            let mut held = Vec::with_capacity(POOLED);
            while left > 0 {
                let n = left.min(POOLED);
                let t = Instant::now();
                for _ in 0..n {
                    let permit = permits.try_acquire().unwrap();
                    permit.forget();
                    held.push(idle.lock().unwrap().pop_back().unwrap());
                }
                total += t.elapsed();
                idle.lock().unwrap().extend(held.drain(..));
                permits.add_permits(n);
                left -= n;
            }
            total
        })
    });
    group.bench_function("fresh_ractor_spawn", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let (actor, _) = Actor::spawn(None, RawIdle, ()).await.unwrap();
                    total += t.elapsed();
                    actor.stop_and_wait(None, None).await.unwrap();
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(swarm.shutdown());
}

/// Stopping 10,000 started agents (`Swarm::shutdown`, which stops them one by one in reverse
/// start order) against stopping 10,000 raw actors one by one (`stop_and_wait`), on the
/// bench's two-worker runtime and on a single-threaded one, where no other thread can hide
/// work the swarm's supervisor does for each exit. Only the stopping is timed.
fn shutdown(c: &mut Criterion, flat: &[AgentSpec]) {
    let mut group = c.benchmark_group("shutdown_10k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(N as u64));
    let single = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    for (runtime_name, rt) in [("two_workers", runtime()), ("one_thread", single())] {
        let rt = &rt;
        group.bench_function(format!("apiary_{runtime_name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let swarm = rt.block_on(start(flat, 1));
                    let t = Instant::now();
                    rt.block_on(swarm.shutdown());
                    total += t.elapsed();
                }
                total
            })
        });
        group.bench_function(format!("raw_ractor_{runtime_name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    rt.block_on(async {
                        let mut actors = Vec::with_capacity(N);
                        for _ in 0..N {
                            actors.push(Actor::spawn(None, RawIdle, ()).await.unwrap().0);
                        }
                        let t = Instant::now();
                        for a in actors {
                            a.stop_and_wait(None, None).await.unwrap();
                        }
                        total += t.elapsed();
                    });
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
