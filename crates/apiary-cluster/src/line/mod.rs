//! Task lines: a TCP connection of apiary's own from a calling node to a peer, per exported
//! agent, that carries that agent's tasks and answers.
//!
//! ractor_cluster stays in charge of who is in the cluster: sessions, cookie authentication,
//! heartbeats, discovery of the gateways. But one remote call through it crosses about a
//! dozen actor mailboxes and four spawned tasks on the two sides, and every message is one
//! socket write of its own; a task took 168 us over loopback and one session carried 45k
//! tasks/s. A task line is opened once, through the agent's gateway:
//!
//! 1. The caller asks the gateway, over the authenticated (and, with [`Tls`], encrypted)
//!    session, for a ticket: the port of the peer's task-line listener and a random
//!    single-use token bound to the caller's node name, valid for 30 s.
//! 2. It connects to that port (at the session's address, through TLS if the node uses it)
//!    and sends the token in its hello; the peer accepts a token once, from the node it was
//!    issued to.
//! 3. From then on every task is one frame (an id and the task, encoded once) and every
//!    answer one frame back. A call alone on the line writes its own frame; calls in flight
//!    together queue theirs, and all frames queued while a write is under way go out in the
//!    next write, so 64 tasks in flight share a few syscalls. Answers come back as tasks
//!    finish, in any order.
//!
//! Every call ends exactly once: with its answer; with a timeout; or, when the line closes
//! (the peer closed it, a frame did not decode, the session with the peer dropped, the node
//! shut down), with the cause, after which [`RemoteAgent`](crate::RemoteAgent) fails the
//! task over to another node. A peer whose task line cannot be opened is called through
//! the session, as before lines existed.
//!
//! [`Tls`]: crate::Tls

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ractor::ActorId;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::Tls;
use client::Line;
use server::Tickets;

/// A line to one gateway, once tried: `None` if it could not be opened.
pub(crate) type Slot = Arc<OnceCell<Option<Arc<Line>>>>;

/// A node's task lines, both ways.
#[derive(Debug)]
pub(crate) struct Lines {
    /// The port of this node's task-line listener (0: none).
    pub(crate) port: u16,
    pub(crate) tls: Option<Tls>,
    pub(crate) tickets: Tickets,
    /// Lines to peers' gateways, by node name and gateway id.
    open: Mutex<HashMap<(String, ActorId), Slot>>,
    /// Cancelled at shutdown: stops the listener and every served connection.
    pub(crate) stopping: CancellationToken,
}

impl Lines {
    /// Lines of a node listening for them on `port` (0: none).
    pub(crate) fn new(port: u16, tls: Option<Tls>) -> Self {
        Self {
            port,
            tls,
            tickets: Tickets::default(),
            open: Mutex::default(),
            stopping: CancellationToken::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, ActorId), Slot>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot of the line to `gateway` on `node`, empty if never tried.
    pub(crate) fn slot(&self, node: &str, gateway: ActorId) -> Slot {
        self.lock()
            .entry((node.to_owned(), gateway))
            .or_default()
            .clone()
    }

    /// Forgets `slot` (its line closed), so the next call opens a new one.
    pub(crate) fn forget(&self, node: &str, gateway: ActorId, slot: &Slot) {
        let mut open = self.lock();
        let key = (node.to_owned(), gateway);
        if open.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            open.remove(&key);
        }
    }

    /// Closes every line to `node` with `cause`.
    pub(crate) fn close_node(&self, node: &str, cause: &str) {
        let closed: Vec<Slot> = {
            let mut open = self.lock();
            let keys: Vec<_> = open.keys().filter(|(n, _)| n == node).cloned().collect();
            keys.iter().filter_map(|k| open.remove(k)).collect()
        };
        for line in closed.iter().filter_map(|s| s.get().cloned().flatten()) {
            line.close(cause);
        }
    }

    /// Lines to `node` that are open now.
    #[cfg(test)]
    pub(crate) fn open_to(&self, node: &str) -> usize {
        self.lock()
            .iter()
            .filter(|((n, _), slot)| {
                n == node
                    && slot
                        .get()
                        .cloned()
                        .flatten()
                        .is_some_and(|l| !l.is_closed())
            })
            .count()
    }

    /// Stops serving lines and closes every line this node opened.
    pub(crate) fn stop(&self, node: &str) {
        self.stopping.cancel();
        let all: Vec<Slot> = self.lock().drain().map(|(_, s)| s).collect();
        for line in all.iter().filter_map(|s| s.get().cloned().flatten()) {
            line.close(&format!("node `{node}` shut down"));
        }
    }
}

#[cfg(test)]
mod tests;
