//! Calling an agent that lives on another node.

use std::{
    collections::HashSet,
    marker::PhantomData,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use apiary_metrics as m;
use ractor::{rpc::CallResult, ActorId, ActorRef};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    gateway::group,
    line::client::{Ended, Line},
    line::frame::{self, Hello},
    node::Shared,
    wire::{decode, encode, seal, GatewayMsg, LineTicket, Reply, Wire},
    Node, RemoteError,
};

/// How long opening a task line may take (ticket, connection, TLS, hello).
const LINE_OPEN: Duration = Duration::from_secs(10);

/// An agent exported by one or more nodes ([`Node::export`]), called from this node.
///
/// Each task goes to one of the nodes exporting the agent (round robin). If that node drops
/// out before answering, the task is sent to the next one; only when none is left does
/// `submit` fail, with [`RemoteError::NodeDown`] naming the last node. A task is never
/// silently lost: it ends with its output or an error saying why. (A task whose node dropped
/// mid-run may therefore run twice: delivery is at least once.)
pub struct RemoteAgent<T, O> {
    shared: Arc<Shared>,
    agent: String,
    next: AtomicUsize,
    timeout: Option<Duration>,
    _types: PhantomData<fn(T) -> O>,
}

impl<T, O> std::fmt::Debug for RemoteAgent<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAgent")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The agent `agent` wherever the cluster exports it.
    pub fn remote<T, O>(&self, agent: &str) -> RemoteAgent<T, O> {
        RemoteAgent {
            shared: self.shared.clone(),
            agent: agent.to_owned(),
            next: AtomicUsize::new(0),
            timeout: None,
            _types: PhantomData,
        }
    }
}

impl<T: Serialize, O: DeserializeOwned> RemoteAgent<T, O> {
    /// Fails a task that gets no answer within `timeout` (default: wait as long as the
    /// remote task runs, or until its node drops out).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Names of the nodes exporting the agent to this node's swarm now (this node's own
    /// name if it does too).
    pub fn nodes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .members(&group(&self.agent))
            .into_iter()
            .map(|m| m.node)
            .collect();
        names.sort();
        names
    }

    /// Runs `task` on a node exporting the agent and returns its output.
    pub async fn submit(&self, task: &T) -> Result<O, RemoteError> {
        let started = std::time::Instant::now();
        let result = self.send(task).await;
        let outcome = match &result {
            Ok(_) => "completed",
            Err(RemoteError::Task { .. }) => "failed",
            Err(RemoteError::NodeDown { .. }) => "node_down",
            Err(RemoteError::NoNode { .. }) => "no_node",
            Err(RemoteError::Decode { .. }) => "undecodable",
            Err(RemoteError::Timeout { .. }) => "timed_out",
        };
        let agent = self.agent.clone();
        let node = self.shared.name.clone();
        metrics::counter!(m::REMOTE_TASKS_TOTAL.name, "node" => node.clone(), "agent" => agent.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!(m::REMOTE_TASK_DURATION_SECONDS.name, "node" => node, "agent" => agent)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn send(&self, task: &T) -> Result<O, RemoteError> {
        let agent = self.agent.clone();
        let undecodable = |message| RemoteError::Decode {
            agent: agent.clone(),
            node: self.shared.name.clone(),
            message,
        };
        // Encoded once, for a task line; sealed for a session only if one is needed.
        let call = frame::call(task).map_err(undecodable)?;
        let mut sealed = None;
        // Ids are unique per node only: a gateway is known by its node and id.
        let mut tried: HashSet<(String, ActorId)> = HashSet::new();
        let mut last_down = None;
        loop {
            let members: Vec<_> = self
                .shared
                .members(&group(&agent))
                .into_iter()
                .filter(|m| !tried.contains(&(m.node.clone(), m.cell.get_id())))
                .collect();
            if members.is_empty() {
                return Err(last_down.unwrap_or(RemoteError::NoNode { agent }));
            }
            let member = members[self.next.fetch_add(1, Ordering::Relaxed) % members.len()].clone();
            let id = member.cell.get_id();
            let node = member.node;
            let gateway: ActorRef<GatewayMsg> = member.cell.into();
            // This node's own gateway is called in process; a peer's through its task line.
            let line = if node == self.shared.name {
                None
            } else {
                self.line(&node, &gateway).await
            };
            // A member whose line or session is gone (closed mid-call or unreachable) is
            // failed over from: the next member of the group gets the task.
            let cause = match line {
                Some(line) => match line.call(call.clone(), self.timeout).await {
                    Ok(reply) => return self.finish(reply, node),
                    Err(Ended::Timeout) => return Err(self.timed_out(node)),
                    Err(Ended::Down(cause)) => cause,
                },
                None => {
                    let payload = match &sealed {
                        Some(sealed) => Wire::clone(sealed),
                        None => sealed
                            .insert(seal(&self.shared.name, task).map_err(undecodable)?)
                            .clone(),
                    };
                    match gateway
                        .call(|reply| GatewayMsg::Call(payload, reply), self.timeout)
                        .await
                    {
                        Ok(CallResult::Success(wire)) => {
                            let reply = decode::<Reply>(&wire.0).unwrap_or_else(Reply::Undecodable);
                            return self.finish(reply, node);
                        }
                        Ok(CallResult::Timeout) => return Err(self.timed_out(node)),
                        Ok(CallResult::SenderError) => {
                            "the session closed before the answer came".into()
                        }
                        Err(e) => e.to_string(),
                    }
                }
            };
            metrics::counter!(m::REMOTE_FAILOVERS_TOTAL.name, "node" => self.shared.name.clone(), "agent" => agent.clone())
                .increment(1);
            tried.insert((node.clone(), id));
            last_down = Some(RemoteError::NodeDown {
                agent: agent.clone(),
                node,
                cause,
            });
        }
    }

    /// The open task line to `gateway` on `node`, opening one if there is none; `None` if
    /// none can be opened (the task then goes through the session).
    async fn line(&self, node: &str, gateway: &ActorRef<GatewayMsg>) -> Option<Arc<Line>> {
        let lines = &self.shared.lines;
        // Twice at most: a line found closed is forgotten and one new one tried.
        for _ in 0..2 {
            let slot = lines.slot(node, gateway.get_id());
            let line = slot
                .get_or_init(|| async {
                    let opened = open_line(&self.shared, node, gateway).await;
                    let outcome = if opened.is_ok() { "opened" } else { "failed" };
                    metrics::counter!(m::CLUSTER_TASK_LINES_TOTAL.name, "node" => self.shared.name.clone(), "peer" => node.to_owned(), "outcome" => outcome)
                        .increment(1);
                    match opened {
                        Ok(line) => Some(Arc::new(line)),
                        Err(e) => {
                            tracing::warn!(%node, agent = %self.agent, error = %e, "cluster: no task line; tasks go through the session");
                            None
                        }
                    }
                })
                .await
                .clone();
            match line {
                Some(line) if line.is_closed() => lines.forget(node, gateway.get_id(), &slot),
                line => return line,
            }
        }
        None
    }

    /// What a reply from `node` means for the caller.
    fn finish(&self, reply: Reply, node: String) -> Result<O, RemoteError> {
        let agent = self.agent.clone();
        match reply {
            Reply::Output(out) => decode(&out).map_err(|message| RemoteError::Decode {
                agent,
                node,
                message,
            }),
            Reply::Failed(message) => Err(RemoteError::Task {
                agent,
                node,
                message,
            }),
            Reply::Undecodable(message) => Err(RemoteError::Decode {
                agent,
                node,
                message,
            }),
        }
    }

    fn timed_out(&self, node: String) -> RemoteError {
        RemoteError::Timeout {
            agent: self.agent.clone(),
            node,
            seconds: self.timeout.map_or(0, |t| t.as_secs()),
        }
    }
}

/// Asks `gateway` on `node` for a ticket and opens a task line with it.
async fn open_line(
    shared: &Shared,
    node: &str,
    gateway: &ActorRef<GatewayMsg>,
) -> Result<Line, String> {
    let from = Wire(encode(&shared.name)?);
    let ticket = match gateway
        .call(|reply| GatewayMsg::Open(from, reply), Some(LINE_OPEN))
        .await
    {
        Ok(CallResult::Success(wire)) => decode::<Result<LineTicket, String>>(&wire.0)??,
        Ok(CallResult::Timeout) => return Err("no ticket in time".into()),
        Ok(CallResult::SenderError) => {
            return Err("the session closed before the ticket came".into())
        }
        Err(e) => return Err(e.to_string()),
    };
    let ip = shared
        .peer_ip(node)
        .ok_or_else(|| format!("no session address for `{node}`"))?;
    let hello = Hello {
        from: shared.name.clone(),
        token: ticket.token,
    };
    Line::open(
        node,
        SocketAddr::new(ip, ticket.port),
        &hello,
        shared.lines.tls.as_ref(),
        LINE_OPEN,
    )
    .await
}

/// A remote agent is itself an agent: add it to a local swarm under the remote agent's name
/// and the swarm's topology routes, allows and supervises it like any local member, while
/// its tasks run on the nodes that export it. Each replica has one task in flight; give the
/// spec more replicas for more.
///
/// ```no_run
/// # use apiary_cluster::{Node, NodeConfig};
/// # use apiary_core::{AgentSpec, Swarm};
/// # async fn f(node: Node) -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder()
///     .agent(AgentSpec::new("square").replicas(4), {
///         let node = node.clone();
///         move || node.remote::<u64, u64>("square")
///     })
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
impl<T, O> apiary_core::Agent for RemoteAgent<T, O>
where
    T: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
{
    type Task = T;
    type Output = O;
    type Error = RemoteError;

    async fn handle(
        &mut self,
        task: T,
        _ctx: &apiary_core::AgentContext<T, O>,
    ) -> Result<O, RemoteError> {
        self.submit(&task).await
    }
}
