//! A node: one `ractor_cluster::NodeServer`, its peers, and what happens to them.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr, TcpListener},
    sync::{Arc, Mutex},
    time::Duration,
};

use ractor::{Actor, ActorRef};
use ractor_cluster::{
    node::NodeServerSessionInformation, NodeEventSubscription, NodeServer, NodeServerMessage,
};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::heartbeat::{self, Heartbeat};
use crate::line::{self, Lines};
use crate::members::{check_name, Member, Offered, Session};
use crate::ClusterError;

/// How long `connect` waits for the handshake (authentication included).
const HANDSHAKE: Duration = Duration::from_secs(10);

/// TLS for node sessions, through ractor_cluster's rustls support: this node's acceptor for
/// incoming sessions, and the connector (with the name peers' certificates must carry) for
/// outgoing ones. Every node of a TLS cluster needs it.
#[derive(Clone)]
pub struct Tls {
    /// Accepts incoming sessions (this node's certificate and key).
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Opens outgoing sessions (the roots peers' certificates are checked against).
    pub connector: tokio_rustls::TlsConnector,
    /// The name peers' certificates are checked for.
    pub server_name: tokio_rustls::rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A node's settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// Where it listens; `127.0.0.1` unless told otherwise (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The shared secret: peers with another cookie are refused.
    pub cookie: String,
    /// The swarm this node serves (`default` unless told otherwise): it exports agents and
    /// its memory to that swarm, and reaches only that swarm's agents, so two swarms in one
    /// cluster may export agents of the same name.
    pub swarm: String,
    /// TLS for every session, if set (plain TCP otherwise).
    pub tls: Option<Tls>,
    /// How peers are checked and when a silent one is dropped.
    pub heartbeat: Heartbeat,
}

impl NodeConfig {
    /// A node listening on a free port of 127.0.0.1.
    pub fn new(name: impl Into<String>, cookie: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cookie: cookie.into(),
            swarm: "default".into(),
            tls: None,
            heartbeat: Heartbeat::default(),
        }
    }

    /// Checks peers as `heartbeat` says.
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Serves the swarm `swarm` (see [`NodeConfig::swarm`](NodeConfig#structfield.swarm)).
    pub fn swarm(mut self, swarm: impl Into<String>) -> Self {
        self.swarm = swarm.into();
        self
    }

    /// Encrypts every session with TLS.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Listens on `addr` instead.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
}

/// A change in the cluster, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MembershipEvent {
    /// A peer authenticated and is ready.
    Up {
        /// Its name.
        node: String,
        /// Its address, as seen from here.
        addr: String,
    },
    /// A peer's session ended (it stopped, crashed, or the network dropped it).
    Down {
        /// Its name (`?` if it never finished the handshake).
        node: String,
        /// Its address, as seen from here.
        addr: String,
    },
    /// A message from a peer did not decode; the call was answered with an error.
    DecodeFailed {
        /// The peer that sent it (`?` if the envelope itself was unreadable).
        node: String,
        /// The agent it was for.
        agent: String,
        /// postcard's complaint.
        error: String,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Session address -> name, for sessions that got ready.
    by_addr: HashMap<String, String>,
    /// Node id -> the session with that peer, for sessions that got ready.
    sessions: HashMap<u64, Session>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) swarm: String,
    /// The actors this node offers the cluster.
    pub(crate) offered: Offered,
    /// Peers this node connected to, dialled again when their session drops.
    dialled: Mutex<HashSet<SocketAddr>>,
    /// The heartbeat task, stopped at shutdown.
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
    pub(crate) events: broadcast::Sender<MembershipEvent>,
    pub(crate) peers: Mutex<Peers>,
    /// Task lines, served and opened.
    pub(crate) lines: Lines,
}

impl Shared {
    /// A node's shared state before it has peers or offers anything; membership events go
    /// to `events`.
    pub(crate) fn new(
        name: String,
        swarm: String,
        events: broadcast::Sender<MembershipEvent>,
        lines: Lines,
    ) -> Self {
        Self {
            name,
            swarm,
            offered: Offered::default(),
            dialled: Mutex::default(),
            watcher: Mutex::default(),
            events,
            peers: Mutex::default(),
            lines,
        }
    }

    /// The address of `node`'s session with this node, where its task lines are dialled.
    pub(crate) fn peer_ip(&self, node: &str) -> Option<IpAddr> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .by_addr
            .iter()
            .find(|(_, name)| *name == node)
            .and_then(|(addr, _)| addr.parse::<SocketAddr>().ok())
            .map(|addr| addr.ip())
    }

    /// The members of `group` in this node's swarm that it can reach, its own first.
    pub(crate) fn members(&self, group: &str) -> Vec<Member> {
        self.offered
            .members(&self.name, &self.swarm, group, &self.sessions())
    }

    /// The sessions with peers that are ready.
    pub(crate) fn sessions(&self) -> Vec<Session> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.sessions.values().cloned().collect()
    }

    /// Peers this node connected to whose session is not up.
    pub(crate) fn lost_dials(&self) -> Vec<SocketAddr> {
        let dialled = self.dialled.lock().unwrap_or_else(|p| p.into_inner());
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        dialled
            .iter()
            .filter(|addr| !peers.by_addr.contains_key(&addr.to_string()))
            .copied()
            .collect()
    }

    fn set_peers_gauge(&self, peers: &Peers) {
        metrics::gauge!(apiary_metrics::CLUSTER_PEERS.name, "node" => self.name.clone())
            .set(peers.by_addr.len() as f64);
    }

    pub(crate) fn publish(&self, event: MembershipEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

/// Forwards ractor_cluster's session events into the node's membership stream.
struct Subscription(Arc<Shared>);

/// The peer's node name as configured (ractor_cluster reports `name@host`).
fn name_of(ses: &NodeServerSessionInformation) -> Option<String> {
    ses.peer_name.as_ref().map(|n| {
        n.name
            .split_once('@')
            .map_or(n.name.as_str(), |(name, _)| name)
            .to_owned()
    })
}

impl NodeEventSubscription for Subscription {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let node = name_of(&ses).unwrap_or_else(|| "?".into());
        {
            let mut peers = self.0.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.by_addr.insert(ses.peer_addr.clone(), node.clone());
            peers.sessions.insert(
                ses.node_id,
                Session {
                    peer: node.clone(),
                    cell: ses.actor.get_cell(),
                },
            );
            self.0.set_peers_gauge(&peers);
        }
        self.0.publish(MembershipEvent::Up {
            node,
            addr: ses.peer_addr,
        });
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let node = {
            let mut peers = self.0.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.sessions.remove(&ses.node_id);
            let name = peers.by_addr.remove(&ses.peer_addr);
            self.0.set_peers_gauge(&peers);
            name
        };
        let node = node.or_else(|| name_of(&ses)).unwrap_or_else(|| "?".into());
        // A frozen or cut-off peer may keep its task lines open: end their calls now, so
        // they fail over, as calls through the session do.
        self.0
            .lines
            .close_node(&node, &format!("the session with `{node}` closed"));
        self.0.publish(MembershipEvent::Down {
            node,
            addr: ses.peer_addr,
        });
    }
}

/// One node of a cluster: a ractor_cluster `NodeServer` listening for peers (cookie
/// authentication, TCP with `TCP_NODELAY`), the membership events it sees, and the agents it
/// exports ([`Node::export`]) or calls ([`Node::remote`]).
///
/// ```no_run
/// use apiary_cluster::{Node, NodeConfig};
///
/// # #[tokio::main] async fn main() -> Result<(), apiary_cluster::ClusterError> {
/// let node = Node::start(NodeConfig::new("a", "secret")).await?;
/// let mut events = node.subscribe();
/// node.connect("127.0.0.1:7001".parse().unwrap()).await?;
/// println!("{:?}", events.recv().await);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    server: ActorRef<NodeServerMessage>,
    addr: SocketAddr,
    tls: Option<Tls>,
    pub(crate) heartbeat: Heartbeat,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the node's server on `config.listen`.
    pub async fn start(config: NodeConfig) -> Result<Self, ClusterError> {
        for (what, name) in [("node", &config.name), ("swarm", &config.swarm)] {
            check_name(name).map_err(|reason| ClusterError::Name {
                what,
                name: name.clone(),
                reason,
            })?;
        }
        let listen_error = |reason: String| ClusterError::Listen {
            node: config.name.clone(),
            addr: config.listen,
            reason,
        };
        // ractor_cluster reports the port it bound only to itself: resolve port 0 here, and
        // fail early (with the address) if the port is taken.
        let addr = TcpListener::bind(config.listen)
            .and_then(|l| l.local_addr())
            .map_err(|e| listen_error(e.to_string()))?;
        // Task lines listen beside the session port, on the same address.
        let lines = TcpListener::bind((addr.ip(), 0))
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .map_err(|e| listen_error(format!("task-line listener: {e}")))?;
        let lines_port = lines
            .local_addr()
            .map_err(|e| listen_error(e.to_string()))?
            .port();
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared::new(
            config.name.clone(),
            config.swarm.clone(),
            events,
            Lines::new(lines_port, config.tls.clone()),
        ));
        tokio::spawn(line::server::listen(
            lines,
            Arc::downgrade(&shared),
            shared.lines.stopping.clone(),
        ));
        let server = NodeServer::new(
            addr.port(),
            config.cookie.clone(),
            config.name.clone(),
            addr.ip().to_string(),
            config
                .tls
                .as_ref()
                .map(|t| ractor_cluster::IncomingEncryptionMode::Tls(t.acceptor.clone())),
            None,
        )
        .with_listen_addr(addr.ip());
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| listen_error(e.to_string()))?;
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "apiary-membership".into(),
                subscription: Box::new(Subscription(shared.clone())),
            })
            .map_err(|e| ClusterError::Actor {
                node: config.name.clone(),
                reason: e.to_string(),
            })?;
        let node = Self {
            shared,
            server,
            addr,
            tls: config.tls,
            heartbeat: config.heartbeat,
        };
        let watcher = heartbeat::start(&node).await.map_err(|reason| {
            node.server.stop(None);
            ClusterError::Actor {
                node: config.name.clone(),
                reason,
            }
        })?;
        *node
            .shared
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(watcher.abort_handle());
        Ok(node)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address peers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Membership changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.shared.events.subscribe()
    }

    /// Names of the peers whose sessions are ready.
    pub fn peers(&self) -> Vec<String> {
        let peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = peers.by_addr.values().cloned().collect();
        names.sort();
        names
    }

    /// Connects to a peer and waits until the session is authenticated and ready; returns
    /// the peer's name. A peer with another cookie closes the session: [`ClusterError::Refused`].
    ///
    /// The peer is remembered: if its session drops (it stops answering heartbeats, or it
    /// restarts), this node dials it again every [`Heartbeat::interval`] until it is back.
    pub async fn connect(&self, peer: SocketAddr) -> Result<String, ClusterError> {
        let name = self.dial(peer, HANDSHAKE).await?;
        self.shared
            .dialled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer);
        Ok(name)
    }

    /// Opens a session with `peer` and waits up to `wait` for it to be ready.
    pub(crate) async fn dial(
        &self,
        peer: SocketAddr,
        wait: Duration,
    ) -> Result<String, ClusterError> {
        let mut events = self.subscribe();
        let wanted = peer.to_string();
        let ready = async {
            let connected = match &self.tls {
                Some(tls) => {
                    ractor_cluster::client_connect_enc(
                        &self.server,
                        peer,
                        tls.connector.clone(),
                        tls.server_name.clone(),
                    )
                    .await
                }
                None => ractor_cluster::client_connect(&self.server, peer).await,
            };
            connected.map_err(|e| ClusterError::Connect {
                peer,
                reason: e.to_string(),
            })?;
            loop {
                match events.recv().await {
                    Ok(MembershipEvent::Up { node, addr }) if addr == wanted => return Ok(node),
                    Ok(MembershipEvent::Down { addr, .. }) if addr == wanted => {
                        return Err(ClusterError::Refused { peer })
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ClusterError::Refused { peer })
                    }
                }
            }
        };
        tokio::time::timeout(wait, ready)
            .await
            .unwrap_or(Err(ClusterError::HandshakeTimeout {
                peer,
                seconds: wait.as_secs(),
            }))
    }

    /// The swarm the node serves.
    pub fn swarm(&self) -> &str {
        &self.shared.swarm
    }

    /// Stops the node's server and what it exports; peers see it go down.
    pub async fn shutdown(&self) {
        let watcher = self
            .shared
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        self.shared.lines.stop(&self.shared.name);
        let _ = self.server.stop_and_wait(None, None).await;
        for cell in self.shared.offered.take_all() {
            let _ = cell.stop_and_wait(None, None).await;
        }
    }
}
