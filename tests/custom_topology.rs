//! A topology written against `apiary-core` alone: the trait is enough to write one.

use std::sync::atomic::{AtomicUsize, Ordering};

use apiary_core::{
    Agent, AgentName, AgentSpec, BoxError, Ctx, MemberView, RouteRequest, SubmitError,
    SubmitErrorKind, Swarm, Topology,
};

/// Agents form pairs (`x-1` with `x-2`); only partners may talk; swarm-level tasks go round
/// robin over the first agent of each pair.
struct Pairs {
    next: AtomicUsize,
}

fn partner(name: &str) -> Option<String> {
    let (stem, n) = name.rsplit_once('-')?;
    Some(format!("{stem}-{}", if n == "1" { "2" } else { "1" }))
}

impl Topology for Pairs {
    fn name(&self) -> &str {
        "pairs"
    }

    fn allows(&self, from: &str, to: &str, _: &[MemberView<'_>]) -> bool {
        partner(from).as_deref() == Some(to)
    }

    fn route(&self, _: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
        let leaders: Vec<_> = members
            .iter()
            .filter(|m| m.name.as_str().ends_with("-1"))
            .collect();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % leaders.len().max(1);
        leaders.get(i).map(|m| m.name.clone())
    }
}

/// What a [`Doubler`] is asked: whether to pass it on, the number, and whom to pass it to
/// (its partner if empty).
type Ask = (bool, u64, String);

/// Asks its partner to double the number (or doubles it, when asked by its partner).
struct Doubler;

impl Agent for Doubler {
    type Task = Ask;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, (forward, n, to): Ask, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        if forward {
            let target = if to.is_empty() {
                partner(ctx.name().as_str()).unwrap()
            } else {
                to
            };
            let peer = ctx.agent::<Ask, String>(&target)?;
            Ok(peer.submit((false, n, String::new())).await?.await?)
        } else {
            Ok(format!("{}:{}", ctx.name(), n * 2))
        }
    }
}

#[tokio::test]
async fn a_user_topology_routes_and_constrains() {
    let mut b = Swarm::builder().topology(Pairs {
        next: AtomicUsize::new(0),
    });
    for name in ["p-1", "p-2", "q-1", "q-2"] {
        b = b.agent(AgentSpec::new(name), || Doubler);
    }
    let swarm = b.start().await.unwrap();
    // Round robin over pair leaders, each asking its partner.
    assert_eq!(
        swarm
            .route::<Ask, String>((true, 1, String::new()))
            .await
            .unwrap()
            .await
            .unwrap(),
        "p-2:2"
    );
    assert_eq!(
        swarm
            .route::<Ask, String>((true, 2, String::new()))
            .await
            .unwrap()
            .await
            .unwrap(),
        "q-2:4"
    );
    // Outside one's pair: refused by the topology.
    let err = swarm
        .agent::<Ask, String>("p-1")
        .unwrap()
        .submit((true, 3, "q-2".into()))
        .await
        .unwrap()
        .await
        .unwrap_err();
    let refusal = err
        .agent_error::<SubmitError<Ask>>()
        .expect("the agent failed with the refused submission");
    assert!(
        matches!(refusal.kind(), SubmitErrorKind::NotAllowed { .. }),
        "{refusal:?}"
    );
    let refused = err.to_string();
    assert!(
        refused.contains("topology `pairs` does not let `p-1` send to `q-2`"),
        "{refused}"
    );
    swarm.shutdown().await;
}
