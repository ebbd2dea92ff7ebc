//! Exporting an agent: a gateway actor per exported agent, which the node's peers in the
//! same swarm find (see `members`).

use std::{marker::PhantomData, sync::Arc};

use apiary_core::AgentRef;
use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    line::server::Serve,
    members::{member_name, scope},
    node::Shared,
    wire::{decode, encode, open, undecodable, GatewayMsg, LineTicket, Reply, Wire},
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
        match msg {
            GatewayMsg::Call(wire, reply) => {
                let (agent, shared) = (state.agent.clone(), state.shared.clone());
                // One task per call: the gateway takes the next call while this one runs.
                tokio::spawn(async move {
                    let answer = match open(&wire, &shared, agent.name().as_str()) {
                        Ok(task) => run(agent, task).await,
                        Err(e) => Reply::Undecodable(e),
                    };
                    let bytes = encode(&answer).unwrap_or_default();
                    // The caller may be gone (its node dropped); nothing to do then.
                    let _ = reply.send(Wire(bytes));
                });
            }
            GatewayMsg::Open(from, reply) => {
                let ticket = ticket(state, &from);
                let _ = reply.send(Wire(encode(&ticket).unwrap_or_default()));
            }
        }
        Ok(())
    }
}

/// A ticket for node `from` (postcard of its name) to open a task line to this agent.
fn ticket<T, O>(state: &GatewayState<T, O>, from: &Wire) -> Result<LineTicket, String>
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    let lines = &state.shared.lines;
    if lines.port == 0 {
        return Err(format!("node `{}` serves no task lines", state.shared.name));
    }
    let from: String = decode(&from.0)?;
    let served = Arc::new(Served(state.agent.clone()));
    let token = lines.tickets.issue(from, served)?;
    Ok(LineTicket {
        port: lines.port,
        token,
    })
}

/// An exported agent, as its task lines serve it.
struct Served<T, O>(AgentRef<T, O>);

impl<T, O> Serve for Served<T, O>
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    fn serve(&self, shared: &Shared, from: &str, task: &[u8]) -> BoxFuture<'static, Reply> {
        let agent = self.0.clone();
        match decode::<T>(task) {
            Ok(task) => Box::pin(run(agent, task)),
            Err(e) => {
                let why = undecodable(shared, from.to_owned(), agent.name().as_str(), e);
                Box::pin(std::future::ready(Reply::Undecodable(why)))
            }
        }
    }
}

/// Runs one task on the exported agent.
async fn run<T, O>(agent: AgentRef<T, O>, task: T) -> Reply
where
    T: Send + 'static,
    O: Serialize + Send + 'static,
{
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
