//! What watching costs: task throughput of a swarm with its web console serving 10 page
//! clients that read every event, against the same swarm with the console and no client
//! (and, for the console's own cost, against no console), in the same run; and the latency
//! of an event from its publication to a client's socket.
//!
//! Clients are bare sockets reading `/events` on a runtime of their own (as a browser would
//! be a process of its own), on the same 2 cores as the swarm.
//!
//! Run: `cargo bench --features web --bench web`

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use apiary::prelude::*;
use apiary::web::{serve, Console, Served, DEFAULT_PACE};
use criterion::{criterion_group, criterion_main, Criterion};

mod baseline;
use baseline::{runtime, Adder};

/// Tasks per measured batch, all in flight at once.
const BATCH: u64 = 2_000;
/// Tasks per interleaved round: long enough (about 20 ms) to hold many client wake-ups.
const ROUND: u64 = 20_000;
/// Page clients in the watched configuration.
const CLIENTS: usize = 10;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Emits the moment it runs: the latency probe.
struct Probe;

impl Agent for Probe {
    type Task = ();
    type Output = ();
    type Error = std::convert::Infallible;
    async fn handle(&mut self, _: (), ctx: &Ctx<Self>) -> Result<(), Self::Error> {
        let t = epoch().elapsed().as_nanos() as u64;
        ctx.emit("probe", || serde_json::json!({ "t": t }));
        Ok(())
    }
}

async fn swarm() -> Swarm {
    Swarm::builder()
        .agent(
            AgentSpec::new("adder")
                .replicas(2)
                .queue_capacity(BATCH as usize),
            || Adder,
        )
        .agent(AgentSpec::new("probe"), || Probe)
        .start()
        .await
        .unwrap()
}

async fn batch(adder: &AgentRef<u64, u64>) {
    tasks(adder, BATCH).await;
}

async fn tasks(adder: &AgentRef<u64, u64>, n: u64) {
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        handles.push(adder.submit(i).await.unwrap());
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Page clients on a thread of their own: each reads `/events` to the end and records probe
/// latencies (client 0 only).
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl Clients {
    fn connect(addr: SocketAddr, n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let threads =
            (0..n)
                .map(|i| {
                    let stop = stop.clone();
                    let latencies = latencies.clone();
                    let mut socket = TcpStream::connect(addr).unwrap();
                    socket
                        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        .unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 1 << 16];
                        let mut pending = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let n = match socket.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => n,
                                Err(_) => continue,
                            };
                            if i != 0 {
                                continue;
                            }
                            let now = epoch().elapsed().as_nanos() as u64;
                            pending.extend_from_slice(&buf[..n]);
                            let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
                                continue;
                            };
                            let text = String::from_utf8_lossy(&pending[..=end]).into_owned();
                            pending.drain(..=end);
                            for line in text.lines().filter(|l| l.contains("\"name\":\"probe\"")) {
                                if let Some(t) = line.split("\"t\":").nth(1).and_then(|r| {
                                    r.trim_end_matches(['}', ' ']).parse::<u64>().ok()
                                }) {
                                    latencies
                                        .lock()
                                        .unwrap()
                                        .push((now.saturating_sub(t)) as f64 / 1e3);
                                }
                            }
                        }
                    })
                })
                .collect();
        Self {
            stop,
            threads,
            latencies,
        }
    }

    fn close(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        Arc::try_unwrap(self.latencies)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

/// One configuration under test.
struct Setup {
    swarm: Swarm,
    adder: AgentRef<u64, u64>,
    served: Option<(Console, Served)>,
    clients: Option<Clients>,
}

async fn setup(console: bool, clients: usize, pace: Duration) -> Setup {
    let swarm = swarm().await;
    let adder = swarm.agent::<u64, u64>("adder").unwrap();
    let served = if console {
        let c = Console::builder(&swarm).pace(pace).start();
        let s = serve(&c, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Some((c, s))
    } else {
        None
    };
    let clients = served
        .as_ref()
        .filter(|_| clients > 0)
        .map(|(_, s)| Clients::connect(s.addr(), clients));
    Setup {
        swarm,
        adder,
        served,
        clients,
    }
}

impl Setup {
    async fn close(self) -> Vec<f64> {
        let latencies = self.clients.map(Clients::close).unwrap_or_default();
        if let Some((_, served)) = self.served {
            served.shutdown().await;
        }
        self.swarm.shutdown().await;
        latencies
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let none = rt.block_on(setup(false, 0, DEFAULT_PACE));
    let quiet = rt.block_on(setup(true, 0, DEFAULT_PACE));
    let watched = rt.block_on(setup(true, CLIENTS, DEFAULT_PACE));

    let mut group = c.benchmark_group("web");
    group.throughput(criterion::Throughput::Elements(BATCH));
    group.sample_size(30);
    group.bench_function("tasks, no console", |b| {
        b.to_async(&rt).iter(|| batch(&none.adder))
    });
    group.bench_function("tasks, console, no client", |b| {
        b.to_async(&rt).iter(|| batch(&quiet.adder))
    });
    group.bench_function("tasks, console, 10 clients", |b| {
        b.to_async(&rt).iter(|| batch(&watched.adder))
    });
    group.finish();

    // Criterion's groups run minutes apart, and this machine drifts by several percent over
    // that: the ratios are also read from interleaved rounds of 20,000 tasks, each
    // configuration once per round.
    let rounds = 150;
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        for (i, s) in [&none, &quiet, &watched].into_iter().enumerate() {
            let started = Instant::now();
            rt.block_on(tasks(&s.adder, ROUND));
            times[i].push(started.elapsed().as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Each round's ratio pairs measurements taken moments apart, which drift cannot split.
    let ratio = |x: usize, y: usize| {
        median(
            times[x]
                .iter()
                .zip(&times[y])
                .map(|(tx, ty)| ty / tx)
                .collect(),
        )
    };
    let (watched_vs_quiet, watched_vs_none) = (ratio(2, 1), ratio(2, 0));
    let [a, b, w] = times.clone().map(|v| ROUND as f64 / median(v));
    println!(
        "web: interleaved, {rounds} rounds of {ROUND} tasks (medians): no console {a:.0} tasks/s; \
         console, no client {b:.0} tasks/s; console, {CLIENTS} clients {w:.0} tasks/s; \
         per-round ratios: {CLIENTS} clients = {:.1}% of no client, {:.1}% of no console",
        100.0 * watched_vs_quiet,
        100.0 * watched_vs_none
    );

    rt.block_on(none.close());
    rt.block_on(quiet.close());
    let mut report = Vec::new();
    report.extend(latencies(&rt, watched, "paced 10 ms (default)"));
    // The floor of the same path: a console that writes to its clients at once.
    let unpaced = rt.block_on(setup(true, CLIENTS, Duration::ZERO));
    report.extend(latencies(&rt, unpaced, "unpaced"));
    for line in report {
        println!("{line}");
    }
}

/// Event latency: probes 1 ms apart, first on an idle swarm, then while the swarm runs about
/// 20,000 other tasks a second (40,000 events a second: every client keeps up; a swarm
/// flooding the cores outruns them, and they are told they lag instead).
fn latencies(rt: &tokio::runtime::Runtime, setup: Setup, console: &str) -> Vec<String> {
    let probe = setup.swarm.agent::<(), ()>("probe").unwrap();
    let recorded = setup.clients.as_ref().unwrap().latencies.clone();
    let probes = |n: usize| {
        rt.block_on(async {
            for _ in 0..n {
                probe.submit(()).await.unwrap().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        // Let the last probes reach the client.
        std::thread::sleep(Duration::from_millis(300));
        std::mem::take(&mut *recorded.lock().unwrap())
    };
    // Clients that lagged through the throughput rounds look again only after a back-off.
    std::thread::sleep(Duration::from_millis(500));
    let idle = probes(1_000);
    let busy = Arc::new(AtomicBool::new(true));
    let load = {
        let adder = setup.adder.clone();
        let busy = busy.clone();
        rt.spawn(async move {
            while busy.load(Ordering::Relaxed) {
                tasks(&adder, 100).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let loaded = probes(1_000);
    busy.store(false, Ordering::Relaxed);
    rt.block_on(load).unwrap();
    rt.block_on(setup.close());
    [("idle swarm", idle), ("swarm running 20k tasks/s", loaded)]
        .into_iter()
        .map(|(what, mut latencies)| {
            latencies.sort_by(f64::total_cmp);
            let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
            format!(
                "web: event latency to a client's socket, console {console}, {what}, {} probes: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
                latencies.len(),
                pct(0.5),
                pct(0.99),
                pct(1.0)
            )
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
