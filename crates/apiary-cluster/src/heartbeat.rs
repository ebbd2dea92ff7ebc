//! Heartbeats: a peer that stops answering is dropped, and a peer this node dialled is
//! dialled again until it answers.
//!
//! ractor_cluster pings its sessions but never closes one whose pongs stop coming, so a
//! peer cut off by the network (a link down, every packet dropped) stays "up" until TCP
//! gives up - minutes, or never if nothing is sent. So every node runs a heartbeat actor
//! that its peers call through their session every [`Heartbeat::interval`]. A peer whose
//! heartbeat goes unanswered [`Heartbeat::misses`] times in a row has its session stopped:
//! calls in flight to it fail over to other nodes, and `Down` is published. A peer this
//! node [`connect`](crate::Node::connect)ed to is then dialled again every interval (each
//! attempt bounded by the interval), so a healed link brings it back without anyone's help.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use ractor::{rpc::CallResult, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::members::{member_name, scope, Session};
use crate::wire::Wire;
use crate::Node;

/// How often peers are checked, and how many unanswered checks drop one.
///
/// The default, a check every second and three misses, drops a cut-off peer within about
/// four seconds; a loaded peer answers in microseconds (the call is answered on arrival, not
/// queued behind tasks), so a miss means the link, not the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between checks of each peer; also how long each check and each redial waits.
    pub interval: Duration,
    /// Unanswered checks in a row after which the peer's session is stopped.
    pub misses: u32,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            misses: 3,
        }
    }
}

/// The group and (empty, so no swarm's) scope part of every node's heartbeat actor.
pub(crate) const GROUP: &str = "heartbeat";

#[derive(RactorClusterMessage)]
pub(crate) enum BeatMsg {
    #[rpc]
    Beat(Wire, RpcReplyPort<Wire>),
}

struct Beats;

impl Actor for Beats {
    type Msg = BeatMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<BeatMsg>, (): ()) -> Result<(), ActorProcessingErr> {
        // Joining a group is what makes sessions announce the actor to their peers.
        ractor::pg::join_scoped(scope(""), GROUP.to_owned(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<BeatMsg>,
        BeatMsg::Beat(wire, reply): BeatMsg,
        (): &mut (),
    ) -> Result<(), ActorProcessingErr> {
        // The caller may have given up already.
        let _ = reply.send(wire);
        Ok(())
    }
}

/// Starts `node`'s heartbeat actor and the task that checks its peers and redials.
pub(crate) async fn start(node: &Node) -> Result<tokio::task::JoinHandle<()>, String> {
    let name = member_name("", GROUP, node.name());
    let (beats, _) = Actor::spawn(Some(name), Beats, ())
        .await
        .map_err(|e| format!("cannot start the heartbeat: {e}"))?;
    node.shared.offered.add(GROUP, beats.get_cell());
    let node = node.clone();
    Ok(tokio::spawn(async move { watch(node).await }))
}

/// Checks every peer each interval; drops the silent, redials the lost.
async fn watch(node: Node) {
    let beat = node.heartbeat;
    let mut missed: HashMap<String, u32> = HashMap::new();
    let mut redialling: HashSet<SocketAddr> = HashSet::new();
    let (redialled_tx, mut redialled) = tokio::sync::mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(beat.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while let Ok(addr) = redialled.try_recv() {
            redialling.remove(&addr);
        }
        let sessions = node.shared.sessions();
        let checks = sessions.iter().map(|s| check(s, beat.interval));
        let answers = futures::future::join_all(checks).await;
        let live: HashSet<&str> = sessions.iter().map(|s| s.peer.as_str()).collect();
        missed.retain(|peer, _| live.contains(peer.as_str()));
        for (session, answered) in sessions.iter().zip(answers) {
            let misses = missed.entry(session.peer.clone()).or_default();
            *misses = if answered { 0 } else { *misses + 1 };
            if *misses >= beat.misses {
                tracing::warn!(peer = %session.peer, misses = *misses, "no heartbeat: dropping the session");
                session.cell.stop(Some(format!(
                    "no heartbeat from `{}` in {} checks",
                    session.peer, misses
                )));
                missed.remove(&session.peer);
            }
        }
        for addr in node.shared.lost_dials() {
            if redialling.insert(addr) {
                let (node, done) = (node.clone(), redialled_tx.clone());
                tokio::spawn(async move {
                    let redial = node.dial(addr, beat.interval);
                    if let Err(e) = redial.await {
                        tracing::debug!(%addr, error = %e, "redial failed");
                    }
                    let _ = done.send(addr);
                });
            }
        }
    }
}

/// Whether the peer's heartbeat answered within `wait`. A peer whose heartbeat actor has not
/// been announced yet counts as answering.
async fn check(session: &Session, wait: Duration) -> bool {
    let Some(stub) = crate::members::find(session, "", GROUP) else {
        return true;
    };
    let stub: ActorRef<BeatMsg> = stub.into();
    matches!(
        stub.call(|reply| BeatMsg::Beat(Wire(Vec::new()), reply), Some(wait))
            .await,
        Ok(CallResult::Success(_))
    )
}
