//! Exporting an agent: a gateway actor per exported agent, which the node's peers in the
//! same swarm find (see `members`).

use std::{marker::PhantomData, sync::Arc};

use apiary_core::AgentRef;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    members::{member_name, scope},
    node::Shared,
    wire::{encode, open, GatewayMsg, Reply, Wire},
    ClusterError, Node,
};

/// The group of the gateways of `agent`.
pub(crate) fn group(agent: &str) -> String {
    format!("apiary.agent.{agent}")
}

struct Gateway<T, O>(PhantomData<fn() -> (T, O)>);

struct GatewayState<T, O> {
    agent: AgentRef<T, O>,
    shared: Arc<Shared>,
}

impl<T, O> Actor for Gateway<T, O>
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    type Msg = GatewayMsg;
    type State = GatewayState<T, O>;
    type Arguments = GatewayState<T, O>;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        state: GatewayState<T, O>,
    ) -> Result<GatewayState<T, O>, ActorProcessingErr> {
        ractor::pg::join_scoped(
            scope(&state.shared.swarm),
            group(state.agent.name().as_str()),
            vec![myself.get_cell()],
        );
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        state: &mut GatewayState<T, O>,
    ) -> Result<(), ActorProcessingErr> {
        let GatewayMsg::Call(wire, reply) = msg;
        let (agent, shared) = (state.agent.clone(), state.shared.clone());
        // One task per call: the gateway takes the next call while this one runs.
        tokio::spawn(async move {
            let answer = answer(&agent, &shared, &wire).await;
            let bytes = encode(&answer).unwrap_or_default();
            // The caller may be gone (its node dropped); nothing to do then.
            let _ = reply.send(Wire(bytes));
        });
        Ok(())
    }
}

async fn answer<T, O>(agent: &AgentRef<T, O>, shared: &Shared, wire: &Wire) -> Reply
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    let task: T = match open(wire, shared, agent.name().as_str()) {
        Ok(t) => t,
        Err(e) => return Reply::Undecodable(e),
    };
    match agent.submit(task).await {
        Err(refused) => Reply::Failed(refused.to_string()),
        Ok(handle) => match handle.await {
            Ok(output) => encode(&output).map_or_else(Reply::Failed, Reply::Output),
            Err(e) => Reply::Failed(e.to_string()),
        },
    }
}

impl Node {
    /// Makes an agent of a local swarm reachable from every node of the cluster, under its
    /// name: tasks arrive postcard-encoded, run on the local swarm (its queue, supervision and
    /// breakers), and their outputs go back the same way. Several nodes may export the same
    /// agent; [`RemoteAgent`](crate::RemoteAgent) spreads tasks over them.
    ///
    /// ```no_run
    /// # use apiary_cluster::Node;
    /// # async fn f(node: Node, swarm: apiary_core::Swarm) -> Result<(), Box<dyn std::error::Error>> {
    /// node.export(&swarm.agent::<u64, u64>("square")?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn export<T, O>(&self, agent: &AgentRef<T, O>) -> Result<(), ClusterError>
    where
        T: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
    {
        let state = GatewayState {
            agent: agent.clone(),
            shared: self.shared.clone(),
        };
        let agent = agent.name();
        let group = group(agent.as_str());
        let name = member_name(&self.shared.swarm, &group, self.name());
        let (gateway, _) = Actor::spawn(Some(name), Gateway(PhantomData), state)
            .await
            .map_err(|e| ClusterError::Actor {
                node: self.name().to_owned(),
                reason: format!("cannot export agent `{agent}`: {e}"),
            })?;
        self.shared.offered.add(&group, gateway.get_cell());
        Ok(())
    }
}
