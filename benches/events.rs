//! Publishing events from two threads with one hook and one subscriber attached, against a
//! bare tokio broadcast channel with one subscriber in the same run.
//!
//! Run: `cargo bench --bench events`

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use apiary::events::EventBus;
use apiary::{AgentName, BreakerTransition, EventKind, SwarmEvent};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::broadcast;

const PUBLISHERS: usize = 2;
const CAPACITY: usize = 4096;

/// A typical event: an agent's name (an `Arc<str>` clone) and a few numbers.
fn event(agent: &AgentName) -> EventKind {
    EventKind::BreakerChanged {
        agent: agent.clone(),
        replica: 0,
        transition: BreakerTransition::Opened,
    }
}

/// Runs `publish` on two threads, `total / 2` times each, while a subscriber drains on a
/// third; returns the publishers' wall time.
fn two_threads(total: u64, publish: impl Fn() + Send + Sync + 'static) -> Duration {
    let publish = Arc::new(publish);
    let start = Arc::new(Barrier::new(PUBLISHERS + 1));
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (publish, start) = (publish.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..total / PUBLISHERS as u64 {
                    publish();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    began.elapsed()
}

/// A subscriber on a thread of its own that reads until the channel closes (lagging when it
/// cannot keep up, as a slow web client would).
fn drain<F>(next: F) -> thread::JoinHandle<()>
where
    F: FnMut() -> bool + Send + 'static,
{
    let mut next = next;
    thread::spawn(move || while next() {})
}

fn publish(c: &mut Criterion) {
    let agent = AgentName::from("coder");
    let mut group = c.benchmark_group("events/two_threads_one_subscriber");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("bare_tokio_broadcast", |b| {
        b.iter_custom(|iters| {
            let (tx, mut rx) = broadcast::channel::<EventKind>(CAPACITY);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let reader = drain(move || {
                !matches!(
                    rt.block_on(rx.recv()),
                    Err(broadcast::error::RecvError::Closed)
                )
            });
            let agent = agent.clone();
            let took = two_threads(iters, move || {
                let _ = tx.send(event(&agent));
            });
            reader.join().unwrap();
            took
        })
    });

    group.bench_function("apiary_event_bus_one_hook", |b| {
        b.iter_custom(|iters| {
            let hook = |e: &SwarmEvent| {
                std::hint::black_box(e.seq());
            };
            let bus = Arc::new(EventBus::new(CAPACITY, vec![Arc::new(hook)]));
            let mut events = bus.subscribe();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let reader = drain(move || {
                !matches!(rt.block_on(events.recv()), Err(apiary::RecvError::Closed))
            });
            let agent = agent.clone();
            let took = two_threads(iters, move || bus.publish(|| event(&agent)));
            reader.join().unwrap();
            took
        })
    });
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
