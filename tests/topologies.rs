//! Topologies as real constraints: mesh broadcast reaches every peer, a star refuses
//! spoke-to-spoke sends, swarm-level tasks land where the topology says, and a switch while
//! tasks are in flight loses and duplicates nothing.

mod agents;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agents::{settle, worker, workers, Job};
use apiary::prelude::*;
use apiary::topology::{Hierarchy, Mesh, Ring, Star};
use apiary::{BoxError, RouteRequest, SubmitErrorKind, SwarmError};

/// Broadcasts `Words` to all peers on `Relay`; counts what it receives.
struct Node {
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl Agent for Node {
    type Task = Job;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, job: Job, ctx: &Ctx<Self>) -> Result<u64, BoxError> {
        match job {
            Job::Relay { job, .. } => {
                let mut reached = 0;
                for (_peer, sent) in ctx.broadcast::<Job, u64>(*job).await {
                    sent?.await?;
                    reached += 1;
                }
                Ok(reached)
            }
            _ => {
                *self
                    .seen
                    .lock()
                    .unwrap()
                    .entry(ctx.name().to_string())
                    .or_default() += 1;
                Ok(1)
            }
        }
    }
}

#[tokio::test]
async fn a_mesh_broadcast_reaches_all_peers() {
    const N: usize = 16;
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut b = Swarm::builder().topology(Mesh);
    for i in 0..N {
        let seen = seen.clone();
        b = b.agent(AgentSpec::new(format!("n{i}")), move || Node {
            seen: seen.clone(),
        });
    }
    let swarm = b.start().await.unwrap();
    let relay = Job::Relay {
        to: String::new(),
        job: Box::new(Job::Words("hello".into())),
    };
    assert_eq!(
        worker(&swarm, "n0")
            .submit(relay)
            .await
            .unwrap()
            .await
            .unwrap(),
        N as u64 - 1
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), N - 1, "every peer but the sender");
    assert!(seen.values().all(|&n| n == 1));
    assert!(!seen.contains_key("n0"));
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_star_refuses_spoke_to_spoke_and_routes_everything_to_the_hub() {
    let (make, _) = workers();
    let make = Arc::new(make);
    let mut b = Swarm::builder().topology(Star::new("hub"));
    for name in ["hub", "a", "b"] {
        let m = make.clone();
        b = b.agent(AgentSpec::new(name), move || m());
    }
    let swarm = b.start().await.unwrap();
    // Spoke to spoke: the agent's send is refused, and the error says who and why.
    let err = worker(&swarm, "a")
        .submit(Job::Relay {
            to: "b".into(),
            job: Box::new(Job::Sum(vec![1])),
        })
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent `a` failed the task: topology `star` does not let `a` send to `b`"
    );
    // Spoke to hub and hub to spoke are fine.
    for (from, to) in [("a", "hub"), ("hub", "b")] {
        let relay = Job::Relay {
            to: to.into(),
            job: Box::new(Job::Sum(vec![2])),
        };
        assert_eq!(
            worker(&swarm, from)
                .submit(relay)
                .await
                .unwrap()
                .await
                .unwrap(),
            3,
            "{from} -> {to}"
        );
    }
    for _ in 0..10 {
        let h = swarm.route::<Job, u64>(Job::Sum(vec![1])).await.unwrap();
        assert_eq!(h.agent(), "hub");
        h.await.unwrap();
    }
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_topology_that_cannot_work_is_refused_at_start_and_at_switch() {
    let (make, _) = workers();
    let err = Swarm::builder()
        .topology(Star::new("nobody"))
        .agent(AgentSpec::new("a"), make)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SwarmError::Topology(_)));
    assert_eq!(
        err.to_string(),
        "topology `star`: the hub `nobody` is not an agent of the swarm"
    );

    let (make, _) = workers();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("a"), make)
        .start()
        .await
        .unwrap();
    let err = swarm.route::<Job, u64>(Job::Sum(vec![])).await.unwrap_err();
    assert!(
        matches!(err.kind(), SubmitErrorKind::NoRoute(_)),
        "no topology, no route"
    );
    assert!(swarm.set_topology(Star::new("ghost")).is_err());
    assert_eq!(
        swarm.topology(),
        None,
        "a refused switch keeps the old topology"
    );
    swarm.set_topology(Mesh).unwrap();
    let err = swarm
        .route_with::<Job, u64>(
            Job::Sum(vec![]),
            RouteRequest {
                capability: Some("gpu"),
            },
            SubmitOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no agent can take the task: topology `mesh` found no agent taking `{}` with capability `gpu`",
            std::any::type_name::<Job>()
        )
    );
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_mesh_star_ring_with_ten_thousand_tasks_in_flight_loses_nothing() {
    let finished: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let f = finished.clone();
    let (make, _) = workers();
    let make = Arc::new(make);
    let mut b = Swarm::builder()
        .topology(Mesh)
        .queue_capacity(8192)
        .hook(move |e: &SwarmEvent| {
            if let EventKind::TaskFinished { task, .. } = e.kind() {
                *f.lock().unwrap().entry(task.get()).or_default() += 1;
            }
        });
    for name in ["hub", "a", "b", "c"] {
        let m = make.clone();
        b = b.agent(AgentSpec::new(name), move || m());
    }
    let swarm = b.start().await.unwrap();
    let mut handles = Vec::new();
    for i in 0..10_000u64 {
        match i {
            3_000 => swarm.set_topology(Star::new("hub")).unwrap(),
            6_000 => swarm
                .set_topology(Ring::with_order(["a", "b", "c", "hub"]))
                .unwrap(),
            _ => {}
        }
        let h = swarm.route::<Job, u64>(Job::Sum(vec![i])).await.unwrap();
        if (3_000..6_000).contains(&i) {
            assert_eq!(h.agent(), "hub", "under the star, task {i} goes to the hub");
        }
        if i >= 6_000 {
            assert_eq!(
                h.agent(),
                "a",
                "under the ring, task {i} enters at its head"
            );
        }
        handles.push((i, h));
    }
    for (i, h) in handles {
        assert_eq!(h.await.unwrap(), i);
    }
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 10_000);
    assert!(
        finished.values().all(|&n| n == 1),
        "every task completed exactly once"
    );
    swarm.shutdown().await;
}

/// A pipeline stage: tags the token, hands it on without waiting, and the last stage
/// records the order tokens arrive in.
struct Stage {
    arrivals: Arc<Mutex<Vec<u64>>>,
}

impl Agent for Stage {
    type Task = (u64, u32);
    type Output = ();
    type Error = BoxError;

    async fn handle(&mut self, (token, hops): (u64, u32), ctx: &Ctx<Self>) -> Result<(), BoxError> {
        if hops == 0 {
            self.arrivals.lock().unwrap().push(token);
            return Ok(());
        }
        // Fire and forget: the stage takes its next token while this one travels on.
        drop(ctx.forward::<(u64, u32), ()>((token, hops - 1)).await?);
        Ok(())
    }
}

async fn ring_of(names: &[&str], arrivals: &Arc<Mutex<Vec<u64>>>) -> Swarm {
    let mut b = Swarm::builder().topology(Ring::new());
    for name in names {
        let a = arrivals.clone();
        b = b.agent(AgentSpec::new(*name), move || Stage {
            arrivals: a.clone(),
        });
    }
    b.start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_pipeline_preserves_the_order_tasks_entered_in() {
    let arrivals: Arc<Mutex<Vec<u64>>> = Arc::default();
    let swarm = ring_of(&["r0", "r1", "r2", "r3"], &arrivals).await;
    for token in 0..1_000u64 {
        let h = swarm.route::<(u64, u32), ()>((token, 3)).await.unwrap();
        assert_eq!(h.agent(), "r0", "tasks enter at the head");
    }
    swarm.shutdown().await; // drains every stage in reverse start order
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(
        arrivals,
        (0..1_000).collect::<Vec<_>>(),
        "order preserved around the ring"
    );
}

/// Stops when asked (for the routing-around test); otherwise a `Stage`.
struct Mortal(Stage);

impl Agent for Mortal {
    type Task = (u64, u32);
    type Output = ();
    type Error = BoxError;

    async fn handle(&mut self, task: (u64, u32), ctx: &Ctx<Self>) -> Result<(), BoxError> {
        if task.0 == u64::MAX {
            panic!("stopping {}", ctx.name());
        }
        self.0.handle(task, ctx).await
    }
}

// The clock is paused so that `settle` lets the supervisor see r2 stop before tasks are
// routed: nothing is published when it decides not to restart a temporary agent.
#[tokio::test(start_paused = true)]
async fn a_ring_routes_around_a_stopped_member() {
    let arrivals: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut b = Swarm::builder().topology(Ring::new());
    for name in ["r0", "r1", "r2", "r3"] {
        let a = arrivals.clone();
        let spec = AgentSpec::new(name).restart(apiary::RestartType::Temporary);
        b = b.agent(spec, move || {
            Mortal(Stage {
                arrivals: a.clone(),
            })
        });
    }
    let swarm = b.start().await.unwrap();
    let stop = swarm
        .agent::<(u64, u32), ()>("r2")
        .unwrap()
        .submit((u64::MAX, 0))
        .await
        .unwrap();
    assert!(matches!(stop.await, Err(TaskError::Panicked { .. })));
    settle().await;
    // r2 is gone for good (temporary); r1's successor is now r3. Two hops from r0 land on r3.
    for token in 0..10u64 {
        drop(swarm.route::<(u64, u32), ()>((token, 2)).await.unwrap());
    }
    swarm.shutdown().await;
    assert_eq!(
        arrivals.lock().unwrap().clone(),
        (0..10).collect::<Vec<_>>()
    );
}

/// Delegates every task down the tree by the capability it names; a worker's failure comes
/// back through the handle and is passed up with the coordinator's name on it.
struct Coordinator {
    escalated: Arc<Mutex<Vec<String>>>,
}

impl Agent for Coordinator {
    type Task = (String, Job);
    type Output = String;
    type Error = BoxError;

    async fn handle(
        &mut self,
        (skill, job): (String, Job),
        ctx: &Ctx<Self>,
    ) -> Result<String, BoxError> {
        let handle = ctx
            .delegate::<(String, Job), String>((skill.clone(), job), Some(skill.as_str()))
            .await?;
        match handle.await {
            Ok(out) => Ok(out),
            Err(e) => {
                self.escalated
                    .lock()
                    .unwrap()
                    .push(format!("{} saw: {e}", ctx.name()));
                Err(format!("{} escalates: {e}", ctx.name()).into())
            }
        }
    }
}

struct Skilled;

impl Agent for Skilled {
    type Task = (String, Job);
    type Output = String;
    type Error = BoxError;

    async fn handle(
        &mut self,
        (_, job): (String, Job),
        ctx: &Ctx<Self>,
    ) -> Result<String, BoxError> {
        match job {
            Job::Fail(why) => Err(why.into()),
            _ => Ok(ctx.name().to_string()),
        }
    }
}

#[tokio::test]
async fn a_hierarchy_routes_by_capability_and_escalates_failures_to_coordinators() {
    let escalated: Arc<Mutex<Vec<String>>> = Arc::default();
    let tree = Hierarchy::new()
        .lead("root", ["backend", "frontend"])
        .lead("backend", ["db1", "db2"])
        .lead("frontend", ["css"]);
    let mut b = Swarm::builder().topology(tree);
    for (name, cap) in [("db1", "sql"), ("db2", "sql"), ("css", "style")] {
        b = b.agent(AgentSpec::new(name).capabilities([cap]), || Skilled);
    }
    for (name, deps) in [
        ("backend", vec!["db1", "db2"]),
        ("frontend", vec!["css"]),
        ("root", vec!["backend", "frontend"]),
    ] {
        let e = escalated.clone();
        b = b.agent(AgentSpec::new(name).depends_on(deps), move || Coordinator {
            escalated: e.clone(),
        });
    }
    let swarm = b.start().await.unwrap();

    let style = swarm
        .route::<(String, Job), String>(("style".into(), Job::Sum(vec![])))
        .await
        .unwrap();
    assert_eq!(style.agent(), "root", "swarm-level tasks enter at the root");
    assert_eq!(style.await.unwrap(), "css");
    // Both sql tasks reach a sql worker (the least loaded one when they are picked).
    let (a, b2) = futures::join!(
        async {
            swarm
                .route::<(String, Job), String>((
                    "sql".into(),
                    Job::Sleep(std::time::Duration::from_millis(50)),
                ))
                .await
                .unwrap()
                .await
                .unwrap()
        },
        async {
            swarm
                .route::<(String, Job), String>((
                    "sql".into(),
                    Job::Sleep(std::time::Duration::from_millis(50)),
                ))
                .await
                .unwrap()
                .await
                .unwrap()
        },
    );
    assert!(a.starts_with("db") && b2.starts_with("db"));
    // A worker's failure escalates: the backend coordinator sees it, then the root.
    let err = swarm
        .route::<(String, Job), String>(("sql".into(), Job::Fail("disk full".into())))
        .await
        .unwrap()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("root escalates")
            && msg.contains("backend escalates")
            && msg.contains("disk full"),
        "{msg}"
    );
    let seen = escalated.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("backend saw") && seen[1].starts_with("root saw"));
    swarm.shutdown().await;
}

/// Passes a rumour on to three random peers the first time it hears it.
struct Gossiper {
    heard: Arc<Mutex<HashMap<String, u64>>>,
    // Checked by the test: an assertion inside an agent would only crash the agent.
    bad_rounds: Arc<Mutex<Vec<String>>>,
}

impl Agent for Gossiper {
    type Task = u64;
    type Output = ();
    type Error = BoxError;

    async fn handle(&mut self, rumour: u64, ctx: &Ctx<Self>) -> Result<(), BoxError> {
        let first = {
            let mut heard = self.heard.lock().unwrap();
            let n = heard.entry(ctx.name().to_string()).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            let targets = ctx.gossip::<u64, ()>(rumour, 3).await;
            let names: std::collections::HashSet<_> =
                targets.iter().map(|(p, _)| p.clone()).collect();
            if names.len() != 3 || names.contains(ctx.name()) {
                self.bad_rounds
                    .lock()
                    .unwrap()
                    .push(format!("{}: {names:?}", ctx.name()));
            }
            for (_, sent) in targets {
                // Fire and forget: the peer spreads it further on its own.
                drop(sent?);
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn gossip_spreads_a_rumour_far_beyond_its_fanout_with_bounded_traffic() {
    const N: usize = 32;
    let heard: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let bad_rounds: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut b = Swarm::builder().topology(Mesh);
    for i in 0..N {
        let (h, bad) = (heard.clone(), bad_rounds.clone());
        b = b.agent(AgentSpec::new(format!("g{i}")), move || Gossiper {
            heard: h.clone(),
            bad_rounds: bad.clone(),
        });
    }
    let swarm = b.start().await.unwrap();
    swarm
        .agent::<u64, ()>("g0")
        .unwrap()
        .submit(42)
        .await
        .unwrap()
        .await
        .unwrap();
    swarm.shutdown().await; // quiesces: every rumour in flight is delivered first
    let heard = heard.lock().unwrap().clone();
    // Push gossip that passes a rumour on once, to 3 peers, reaches about 95% of a mesh
    // (1 - e^-3); fewer than half would mean it did not spread past a few hops (the chance of
    // that is far below 1e-9).
    assert!(
        heard.len() >= N / 2,
        "reached only {} of {N}: {heard:?}",
        heard.len()
    );
    let bad = bad_rounds.lock().unwrap().clone();
    assert!(
        bad.is_empty(),
        "each round goes to 3 distinct peers, never the sender: {bad:?}"
    );
    let messages: u64 = heard.values().sum();
    assert!(messages <= 1 + 3 * N as u64, "{messages} messages");
}
