//! The memory sharded across nodes: each node exports its memory as a shard; searches
//! scatter to every shard and merge the top k, pattern writes go to one shard by key.

use std::sync::Arc;

use apiary_memory::{Hit, Memory, Pattern, Query};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::{
    members::{member_name, scope},
    node::Shared,
    wire::{decode, encode, open, seal, Wire},
    ClusterError, Node,
};

/// The group of memory shards.
const GROUP: &str = "memory";

#[derive(RactorClusterMessage)]
pub(crate) enum ShardMsg {
    #[rpc]
    Search(Wire, RpcReplyPort<Wire>),
    #[rpc]
    Add(Wire, RpcReplyPort<Wire>),
}

struct ShardActor;

struct ShardState {
    memory: Memory,
    shared: Arc<Shared>,
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardState;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        state: ShardState,
    ) -> Result<ShardState, ActorProcessingErr> {
        ractor::pg::join_scoped(
            scope(&state.shared.swarm),
            GROUP.to_owned(),
            vec![myself.get_cell()],
        );
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        let (memory, shared) = (state.memory.clone(), state.shared.clone());
        // The memory actor orders the work; this actor only decodes and forwards.
        tokio::spawn(async move {
            let (wire, reply, answer) = match msg {
                ShardMsg::Search(wire, reply) => {
                    let answer = match open::<Query>(&wire, &shared, "memory") {
                        Ok(query) => memory.search(query).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    (wire, reply, encode(&answer.map(ShardAnswer::Hits)))
                }
                ShardMsg::Add(wire, reply) => {
                    let answer = match open::<Pattern>(&wire, &shared, "memory") {
                        Ok(pattern) => memory.add_pattern(pattern).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    (wire, reply, encode(&answer.map(|()| ShardAnswer::Added)))
                }
            };
            drop(wire);
            let _ = reply.send(Wire(answer.unwrap_or_default()));
        });
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum ShardAnswer {
    Hits(Vec<Hit>),
    Added,
}

/// What a scattered search found, and which shards did not answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedHits {
    /// The best `k` hits over every shard that answered, best first.
    pub hits: Vec<Hit>,
    /// Shards that answered.
    pub answered: usize,
    /// Shards that did not, with the node and why.
    pub failed: Vec<(String, String)>,
}

/// The memories of every node that exports one ([`Node::export_memory`]), used as one.
///
/// ```no_run
/// # use apiary_cluster::Node;
/// # use apiary_memory::Query;
/// # async fn f(node: Node) {
/// let found = node.sharded_memory().search(Query::text("flaky test", 5)).await;
/// println!("{} hits from {} shards", found.hits.len(), found.answered);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShardedMemory {
    shared: Arc<Shared>,
}

impl Node {
    /// Makes `memory` a shard of the cluster's sharded memory.
    pub async fn export_memory(&self, memory: &Memory) -> Result<(), ClusterError> {
        let state = ShardState {
            memory: memory.clone(),
            shared: self.shared.clone(),
        };
        let name = member_name(&self.shared.swarm, GROUP, self.name());
        let (shard, _) = Actor::spawn(Some(name), ShardActor, state)
            .await
            .map_err(|e| ClusterError::Actor {
                node: self.name().to_owned(),
                reason: format!("cannot export the memory: {e}"),
            })?;
        self.shared.offered.add(GROUP, shard.get_cell());
        Ok(())
    }

    /// The cluster's memory shards as one memory.
    pub fn sharded_memory(&self) -> ShardedMemory {
        ShardedMemory {
            shared: self.shared.clone(),
        }
    }
}

impl ShardedMemory {
    fn shards(&self) -> Vec<(String, ActorRef<ShardMsg>)> {
        let mut shards: Vec<(String, ActorRef<ShardMsg>)> = self
            .shared
            .members(GROUP)
            .into_iter()
            .map(|m| (m.node, m.cell.into()))
            .collect();
        shards.sort_by(|a, b| a.0.cmp(&b.0));
        shards
    }

    /// Names of the nodes whose shards are reachable now.
    pub fn nodes(&self) -> Vec<String> {
        self.shards().into_iter().map(|(n, _)| n).collect()
    }

    fn request<T: Serialize>(&self, body: &T) -> Result<Wire, String> {
        seal(&self.shared.name, body)
    }

    async fn ask(
        shard: &ActorRef<ShardMsg>,
        msg: impl FnOnce(RpcReplyPort<Wire>) -> ShardMsg,
    ) -> Result<ShardAnswer, String> {
        match shard.call(msg, None).await {
            Ok(ractor::rpc::CallResult::Success(wire)) => {
                decode::<Result<ShardAnswer, String>>(&wire.0)?
            }
            Ok(other) => Err(format!("no answer ({other:?})")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Searches every shard at once and merges their hits into the best `k`.
    pub async fn search(&self, query: Query) -> ShardedHits {
        let k = query.k();
        let shards = self.shards();
        let wire = match self.request(&query) {
            Ok(w) => w,
            Err(e) => {
                return ShardedHits {
                    hits: Vec::new(),
                    answered: 0,
                    failed: shards.into_iter().map(|(n, _)| (n, e.clone())).collect(),
                }
            }
        };
        let answers = futures::future::join_all(shards.iter().map(|(node, shard)| {
            let wire = wire.clone();
            async move {
                (
                    node.clone(),
                    Self::ask(shard, |reply| ShardMsg::Search(wire, reply)).await,
                )
            }
        }))
        .await;
        let mut found = ShardedHits {
            hits: Vec::new(),
            answered: 0,
            failed: Vec::new(),
        };
        for (node, answer) in answers {
            match answer {
                Ok(ShardAnswer::Hits(hits)) => {
                    found.answered += 1;
                    found.hits.extend(hits);
                }
                Ok(ShardAnswer::Added) => found.failed.push((node, "unexpected answer".into())),
                Err(e) => found.failed.push((node, e)),
            }
        }
        found
            .hits
            .sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
        found.hits.truncate(k);
        found
    }

    /// Stores `pattern` on the shard its key maps to (rendezvous hashing over the shards'
    /// node names: a key moves only when its shard leaves or a better one joins). Returns
    /// that shard's node.
    pub async fn add_pattern(&self, pattern: Pattern) -> Result<String, String> {
        let shards = self.shards();
        let (node, shard) = shards
            .iter()
            .max_by_key(|(node, _)| {
                xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{node}", pattern.key()).as_bytes())
            })
            .ok_or_else(|| "no node exports a memory shard".to_owned())?;
        let wire = self.request(&pattern)?;
        match Self::ask(shard, |reply| ShardMsg::Add(wire, reply)).await {
            Ok(ShardAnswer::Added) => Ok(node.clone()),
            Ok(ShardAnswer::Hits(_)) => Err(format!("shard `{node}`: unexpected answer")),
            Err(e) => Err(format!("shard `{node}`: {e}")),
        }
    }
}
