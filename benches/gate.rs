//! The regression gate: instruction counts of the runtime's hot paths under Callgrind
//! (through gungraun), next to the raw ractor floor they are read against.
//!
//! Wall-clock benches move by +-10% between runs on a shared 2-vCPU machine; instruction
//! counts do not. Each benchmark below does a fixed amount of work on a single-threaded tokio
//! runtime built in its setup (which is not counted), so the count is the work itself.
//! `scripts/gate.sh` runs this file, compares every count with the committed baseline in
//! `benches/gate/baseline.json` and fails above +10%; `scripts/gate.sh --bless` records new
//! baselines after an intended change.
//!
//! Run: `bash scripts/gate.sh` (needs valgrind and gungraun-runner; `scripts/setup.sh test`
//! installs both).

// gungraun's macros generate a module per benchmark, which cannot carry docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use apiary::events::EventBus;
use apiary::memory::{Memory, MemoryConfig, Pattern, Query};
use apiary::prelude::*;
use apiary::supervisor::{BreakerConfig, CircuitBreaker};
use apiary::topology::{Hierarchy, Mesh, Ring, Star};
use apiary::{
    AgentName, BreakerTransition, EventKind, EventStream, Manifest, SwarmEvent, Topology,
};
use gungraun::{library_benchmark, library_benchmark_group, main, LibraryBenchmarkConfig};
use ractor::{Actor, ActorRef};
use tokio::runtime::Runtime;

mod baseline;
use baseline::{raw_call, Adder, Echo, Job, RawAdder, RawIdle, RawMsg};

/// Operations per benchmark: enough that a few instructions per operation show, few enough
/// that Callgrind (about 50x slower than native) finishes in seconds.
const OPS: u64 = 200;

/// Every benchmark runs on one thread, so Callgrind counts the whole path (the agent's side
/// of a round trip included) and the counts repeat from run to run.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

fn adder_swarm() -> (Runtime, Swarm, AgentRef<u64, u64>) {
    let rt = runtime();
    let swarm = rt
        .block_on(
            Swarm::builder()
                .agent(AgentSpec::new("adder"), || Adder)
                .start(),
        )
        .expect("the adder swarm starts");
    let adder = swarm.agent::<u64, u64>("adder").expect("agent `adder`");
    // One round trip first: lazily built state is not what the gate watches.
    rt.block_on(async { adder.submit(0).await.unwrap().await.unwrap() });
    (rt, swarm, adder)
}

fn raw_adder() -> (Runtime, ActorRef<RawMsg>) {
    let rt = runtime();
    let (actor, _) = rt
        .block_on(Actor::spawn(None, RawAdder, ()))
        .expect("the raw adder starts");
    rt.block_on(raw_call(&actor, 0));
    (rt, actor)
}

// Submit a task and await its output, `OPS` times in a row.
#[library_benchmark]
#[bench::apiary(setup = adder_swarm)]
fn task_round_trip(
    (rt, swarm, adder): (Runtime, Swarm, AgentRef<u64, u64>),
) -> (Runtime, Swarm, AgentRef<u64, u64>) {
    rt.block_on(round_trips(&adder));
    (rt, swarm, adder)
}

// The work of each benchmark lives outside the benchmark function: gungraun has Callgrind
// toggle collection on entering and leaving functions named like it, and an async block or
// closure inside it (`task_round_trip::{{closure}}`) would toggle collection off again.
async fn round_trips(adder: &AgentRef<u64, u64>) {
    for i in 0..OPS {
        black_box(adder.submit(i).await.unwrap().await.unwrap());
    }
}

// The floor: a ractor `call` to an actor that adds one, `OPS` times in a row.
#[library_benchmark]
#[bench::raw_ractor(setup = raw_adder)]
fn task_round_trip_floor((rt, actor): (Runtime, ActorRef<RawMsg>)) -> (Runtime, ActorRef<RawMsg>) {
    rt.block_on(raw_round_trips(&actor));
    (rt, actor)
}

async fn raw_round_trips(actor: &ActorRef<RawMsg>) {
    for i in 0..OPS {
        black_box(raw_call(actor, i).await);
    }
}

const AGENTS: usize = 50;

fn specs() -> (Runtime, Vec<AgentSpec>) {
    let specs = (0..AGENTS)
        .map(|i| AgentSpec::new(format!("a{i}")))
        .collect();
    (runtime(), specs)
}

// Start a swarm of `AGENTS` agents one by one (spawn batches of one).
#[library_benchmark]
#[bench::apiary(setup = specs)]
fn spawn_agents((rt, specs): (Runtime, Vec<AgentSpec>)) -> (Runtime, Swarm) {
    let swarm = rt.block_on(start_one_by_one(specs));
    (rt, swarm)
}

async fn start_one_by_one(specs: Vec<AgentSpec>) -> Swarm {
    let mut b = Swarm::builder().spawn_limits(0, 1);
    for spec in specs {
        b = b.agent(spec, || Adder);
    }
    b.start().await.unwrap()
}

// The floor: `AGENTS` raw ractor actors spawned one by one.
#[library_benchmark]
#[bench::raw_ractor(setup = runtime)]
fn spawn_agents_floor(rt: Runtime) -> (Runtime, Vec<ActorRef<()>>) {
    let actors = rt.block_on(raw_spawns());
    (rt, actors)
}

async fn raw_spawns() -> Vec<ActorRef<()>> {
    let mut v = Vec::with_capacity(AGENTS);
    for _ in 0..AGENTS {
        v.push(Actor::spawn(None, RawIdle, ()).await.unwrap().0);
    }
    v
}

fn closed_breaker() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig::default())
}

// A closed breaker's check: acquire a permit and report success, `OPS` times.
#[library_benchmark]
#[bench::closed(setup = closed_breaker)]
fn breaker_check(breaker: CircuitBreaker) -> CircuitBreaker {
    for i in 0..OPS {
        let permit = breaker.try_acquire(black_box(i)).unwrap();
        black_box(breaker.on_success(permit));
    }
    breaker
}

const CRASHES: u64 = 20;

fn crashy_swarm() -> (Runtime, Swarm, AgentRef<Job, u64>) {
    // The crashes are the point: keep their reports out of the output.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime();
    let swarm = rt
        .block_on(
            Swarm::builder()
                .configure(|s| s.max_restarts = u32::MAX)
                .agent(
                    AgentSpec::new("crashy").backoff(apiary::supervisor::Backoff::none()),
                    || Echo,
                )
                .start(),
        )
        .expect("the crashy swarm starts");
    let agent = swarm.agent::<Job, u64>("crashy").expect("agent `crashy`");
    rt.block_on(crash_and_recover(&agent, 1));
    (rt, swarm, agent)
}

// A crash, then a task queued behind it that runs on the replacement actor, `CRASHES` times:
// the panic, the supervisor's decision, the new actor and the redelivered task.
#[library_benchmark]
#[bench::one_for_one(setup = crashy_swarm)]
fn restart(
    (rt, swarm, agent): (Runtime, Swarm, AgentRef<Job, u64>),
) -> (Runtime, Swarm, AgentRef<Job, u64>) {
    rt.block_on(crash_and_recover(&agent, CRASHES));
    (rt, swarm, agent)
}

async fn crash_and_recover(agent: &AgentRef<Job, u64>, times: u64) {
    for i in 0..times {
        let crash = agent.submit(Job::Crash).await.unwrap();
        let next = agent.submit(Job::Echo(i)).await.unwrap();
        let _ = crash.await;
        black_box(next.await.unwrap());
    }
}

/// What each topology routes: plain numbers, answered by whichever agent receives them.
#[derive(Clone)]
struct Add(u64);

struct Node;

impl Agent for Node {
    type Task = Add;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        Add(n): Add,
        _: &AgentContext<Add, u64>,
    ) -> Result<u64, Self::Error> {
        Ok(n + 1)
    }
}

fn swarm_of(names: &[&str], topology: impl Topology) -> (Runtime, Swarm) {
    let rt = runtime();
    let swarm = rt.block_on(async {
        let mut b = Swarm::builder().topology(topology);
        for name in names {
            b = b.agent(AgentSpec::new(*name), || Node);
        }
        b.start().await.unwrap()
    });
    rt.block_on(async {
        swarm
            .route::<Add, u64>(Add(0))
            .await
            .unwrap()
            .await
            .unwrap()
    });
    (rt, swarm)
}

const FOUR: [&str; 4] = ["n0", "n1", "n2", "n3"];

fn mesh() -> (Runtime, Swarm) {
    swarm_of(&FOUR, Mesh)
}

fn star() -> (Runtime, Swarm) {
    swarm_of(&FOUR, Star::new("n0"))
}

fn ring() -> (Runtime, Swarm) {
    swarm_of(&FOUR, Ring::new())
}

fn hierarchy() -> (Runtime, Swarm) {
    swarm_of(
        &FOUR,
        Hierarchy::new().lead("n0", ["n1", "n2"]).lead("n1", ["n3"]),
    )
}

// `Swarm::route` and await the output, `OPS` times, through each topology of four agents.
#[library_benchmark]
#[bench::mesh(setup = mesh)]
#[bench::star(setup = star)]
#[bench::ring(setup = ring)]
#[bench::hierarchy(setup = hierarchy)]
fn route((rt, swarm): (Runtime, Swarm)) -> (Runtime, Swarm) {
    rt.block_on(routes(&swarm));
    (rt, swarm)
}

async fn routes(swarm: &Swarm) {
    for i in 0..OPS {
        black_box(
            swarm
                .route::<Add, u64>(Add(i))
                .await
                .unwrap()
                .await
                .unwrap(),
        );
    }
}

fn bus() -> (EventBus, EventStream, AgentName) {
    let hook = |e: &SwarmEvent| {
        black_box(e.seq());
    };
    let bus = EventBus::new(1024, vec![Arc::new(hook)]);
    let events = bus.subscribe();
    (bus, events, AgentName::from("coder"))
}

// Publish `OPS` events to a bus with one hook and one subscriber.
#[library_benchmark]
#[bench::one_hook_one_subscriber(setup = bus)]
fn publish_event(
    (bus, events, agent): (EventBus, EventStream, AgentName),
) -> (EventBus, EventStream, AgentName) {
    publish_all(&bus, &agent);
    (bus, events, agent)
}

fn publish_all(bus: &EventBus, agent: &AgentName) {
    for _ in 0..OPS {
        bus.publish(|| EventKind::BreakerChanged {
            agent: agent.clone(),
            replica: 0,
            transition: BreakerTransition::Opened,
        });
    }
}

const DIM: usize = 64;
const PATTERNS: usize = 2_000;
const QUERIES: usize = 50;

/// Deterministic unit vectors (a fixed linear congruential sequence): the same index every run.
fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..DIM)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn memory() -> (Runtime, Memory, Vec<Vec<f32>>) {
    let rt = runtime();
    let memory = rt.block_on(async {
        let memory = Memory::open(MemoryConfig::new(DIM)).await.unwrap();
        let patterns = vectors(PATTERNS, 1)
            .into_iter()
            .enumerate()
            .map(|(i, v)| Pattern::vector(format!("gate/p{i}"), v))
            .collect();
        memory.add_patterns(patterns).await.unwrap();
        memory.settle().await.unwrap();
        memory
    });
    (rt, memory, vectors(QUERIES, 2))
}

// `QUERIES` top-10 searches through the memory actor, on an exact index of 2,000 64-d
// vectors (below the training threshold, so FAISS `Flat`).
#[library_benchmark]
#[bench::flat_2000(setup = memory)]
fn memory_search((rt, memory, queries): (Runtime, Memory, Vec<Vec<f32>>)) -> (Runtime, Memory) {
    rt.block_on(searches(&memory, queries));
    (rt, memory)
}

async fn searches(memory: &Memory, queries: Vec<Vec<f32>>) {
    for q in queries {
        black_box(memory.search(Query::vector(q, 10)).await.unwrap());
    }
}

// Parse and validate the demo's manifest (`examples/quality-fleet.toml`).
#[library_benchmark]
#[bench::quality_fleet(include_str!("../examples/quality-fleet.toml"))]
fn parse_manifest(src: &str) -> Manifest {
    Manifest::from_toml_str(black_box(src)).unwrap()
}

library_benchmark_group!(
    name = tasks;
    benchmarks = task_round_trip, task_round_trip_floor, spawn_agents, spawn_agents_floor, restart
);
library_benchmark_group!(
    name = checks;
    benchmarks = breaker_check, route, publish_event
);
library_benchmark_group!(
    name = memory_and_manifest;
    benchmarks = memory_search, parse_manifest
);

main!(
    // Cache simulation off: the gate reads instructions, and without it Callgrind runs faster.
    // FAISS's OpenMP pool is held to one thread, so a search runs where it is counted.
    config = LibraryBenchmarkConfig::default()
        .tool(gungraun::Callgrind::with_args(["--cache-sim=no"]))
        .env("OMP_NUM_THREADS", "1");
    library_benchmark_groups = tasks, checks, memory_and_manifest
);
