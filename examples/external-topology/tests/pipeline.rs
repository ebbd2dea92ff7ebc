//! The pipeline topology in a running swarm: work flows down the stages, a stage cannot send
//! backwards, and a pipeline naming a missing agent is refused at start.

use apiary_core::{Agent, AgentSpec, BoxError, Ctx, SubmitErrorKind, Swarm, SwarmError};
use apiary_pipeline::Pipeline;

/// Adds one and hands the number on; the last stage answers. Asked for 0, it tries to send
/// to the first stage instead, which the pipeline forbids.
struct Add;

impl Agent for Add {
    type Task = u64;
    type Output = u64;
    type Error = BoxError;

    async fn handle(&mut self, n: u64, ctx: &Ctx<Self>) -> Result<u64, BoxError> {
        if n == 0 && ctx.name() != "a" {
            let back = ctx.agent::<u64, u64>("a")?;
            let refused = back.submit(1).await.unwrap_err();
            assert!(matches!(refused.kind(), SubmitErrorKind::NotAllowed { .. }));
            return Ok(u64::MAX);
        }
        match ctx.successor::<u64, u64>() {
            Ok(next) => Err(ctx.hand_off(&next, n + 1).await.into()),
            Err(_) => Ok(n + 1),
        }
    }
}

async fn pipeline() -> Result<Swarm, SwarmError> {
    Swarm::builder()
        .topology(Pipeline::new(["a", "b", "c"]))
        .agent(AgentSpec::new("a"), || Add)
        .agent(AgentSpec::new("b"), || Add)
        .agent(AgentSpec::new("c"), || Add)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_flows_down_the_stages_and_the_last_answers() {
    let swarm = pipeline().await.unwrap();
    let mut handles = Vec::new();
    for n in 1..=100u64 {
        handles.push(swarm.route::<u64, u64>(n).await.unwrap());
    }
    for (n, h) in (1..=100u64).zip(handles) {
        assert_eq!(h.await.unwrap(), n + 3);
    }
    // Submitted to `b` directly, a task still flows on to `c` only.
    let b = swarm.agent::<u64, u64>("b").unwrap();
    assert_eq!(b.submit(10).await.unwrap().await.unwrap(), 12);
    // `b` may not send back to `a`.
    assert_eq!(b.submit(0).await.unwrap().await.unwrap(), u64::MAX);
    swarm.shutdown().await;
}

#[tokio::test]
async fn a_stage_that_is_not_an_agent_is_refused_at_start() {
    let err = Swarm::builder()
        .topology(Pipeline::new(["a", "ghost"]))
        .agent(AgentSpec::new("a"), || Add)
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "topology `pipeline`: stage `ghost` is not an agent of the swarm"
    );
}
