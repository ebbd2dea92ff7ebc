//! Self-healing costs: a circuit breaker's check in the closed state against no breaker, and
//! the time from an agent's crash until its replacement has taken and finished a task,
//! against the same task on a healthy agent.
//!
//! Run: `cargo bench --bench supervision`

use std::hint::black_box;
use std::time::{Duration, Instant};

use apiary::prelude::*;
use apiary::supervisor::{Backoff, BreakerConfig, CircuitBreaker};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod baseline;
use baseline::{runtime, Echo, Job};

fn breaker_check(c: &mut Criterion) {
    let breaker = CircuitBreaker::new(BreakerConfig::default());
    let mut group = c.benchmark_group("breaker_check");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_breaker", |b| {
        b.iter(|| black_box(Some(black_box(1u64))))
    });
    group.bench_function("closed_breaker_acquire_and_report", |b| {
        b.iter(|| {
            let permit = breaker.try_acquire(black_box(1)).unwrap();
            black_box(breaker.on_success(permit))
        })
    });
    group.finish();

    // The same check seen end to end: 1,000 tasks in flight with and without a breaker.
    let rt = runtime();
    let plain = rt.block_on(swarm(None));
    let guarded = rt.block_on(swarm(Some(BreakerConfig::default())));
    let mut group = c.benchmark_group("breaker_round_trip_1000");
    group.throughput(Throughput::Elements(1000));
    for (name, s) in [("no_breaker", &plain), ("closed_breaker", &guarded)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut handles = Vec::with_capacity(1000);
                for i in 0..1000 {
                    handles.push(
                        s.agent::<Job, u64>("echo")
                            .unwrap()
                            .submit(Job::Echo(i))
                            .await
                            .unwrap(),
                    );
                }
                futures::future::join_all(handles).await
            })
        });
    }
    group.finish();
    rt.block_on(plain.shutdown());
    rt.block_on(guarded.shutdown());
}

async fn swarm(breaker: Option<BreakerConfig>) -> Swarm {
    let mut spec = AgentSpec::new("echo")
        .queue_capacity(4096)
        .backoff(Backoff::none());
    if let Some(b) = breaker {
        spec = spec.breaker(b);
    }
    Swarm::builder()
        .configure(|s| {
            s.max_restarts = u32::MAX;
            s.restart_window = Duration::from_secs(1);
        })
        .agent(spec, || Echo)
        .start()
        .await
        .unwrap()
}

fn crash_to_replacement(c: &mut Criterion) {
    // Crashes are expected here; keep their reports out of the bench output.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime();
    let s = rt.block_on(swarm(None));
    let mut group = c.benchmark_group("recovery");
    group.bench_function("healthy_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..iters {
                    s.agent::<Job, u64>("echo")
                        .unwrap()
                        .submit(Job::Echo(i))
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
                t.elapsed()
            })
        })
    });
    group.bench_function("crash_then_task_on_replacement", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let crash = s
                        .agent::<Job, u64>("echo")
                        .unwrap()
                        .submit(Job::Crash)
                        .await
                        .unwrap();
                    let t = Instant::now();
                    // Queued behind the crash: runs on the replacement actor.
                    let next = s
                        .agent::<Job, u64>("echo")
                        .unwrap()
                        .submit(Job::Echo(i))
                        .await
                        .unwrap();
                    let _ = crash.await;
                    next.await.unwrap();
                    total += t.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(s.shutdown());
    let _ = std::panic::take_hook();
}

criterion_group!(benches, breaker_check, crash_to_replacement);
criterion_main!(benches);
