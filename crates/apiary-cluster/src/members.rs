//! Who serves what: the actors a node offers the cluster (agent gateways, memory shards) and
//! the lookup that finds them, scoped to one node and one swarm.
//!
//! ractor's process groups are global to the OS process, and a ractor_cluster session
//! announces *every* process-local member to its peer, in every scope; the ids of remote
//! actors carry a node number that each `NodeServer` counts on its own. So two nodes in one
//! process (tests, a host running two swarms) would see, through the groups, each other's
//! gateways and reflections of their own, under ids that may collide. A node therefore does
//! not read the groups. It keeps the actors it offers itself, and takes from each of its own
//! sessions only the remote actors (children of that session) whose name says they belong
//! to that session's peer, to the node's swarm, and to the group asked for:
//! `apiary␟<swarm>␟<group>␟<node>␟<n>` (␟ the unit separator, which no name may contain).
//! The actors still join a ractor process group (scoped by swarm): that is what makes a
//! session announce them to its peer when it starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ractor::{ActorCell, ActorStatus};

/// Separates the parts of a member's name.
const SEP: char = '\u{1f}';

/// Makes registered names unique in the process, which ractor requires.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// The registered name of an actor that `node` offers to `group` of `swarm`.
pub(crate) fn member_name(swarm: &str, group: &str, node: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("apiary{SEP}{swarm}{SEP}{group}{SEP}{node}{SEP}{n}")
}

/// Whether `name` is a member of `group` of `swarm` offered by `node`.
fn is_member(name: &str, swarm: &str, group: &str, node: &str) -> bool {
    let mut parts = name.split(SEP);
    parts.next() == Some("apiary")
        && parts.next() == Some(swarm)
        && parts.next() == Some(group)
        && parts.next() == Some(node)
}

/// Why a node or swarm name cannot be used, if it cannot.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.contains(SEP) || name.contains('@') {
        Err("it contains `@` or the unit separator (U+001F)")
    } else {
        Ok(())
    }
}

/// The ractor process group scope of a swarm's members.
pub(crate) fn scope(swarm: &str) -> String {
    format!("apiary.{swarm}")
}

/// An actor serving a group, and the node it lives on.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) cell: ActorCell,
    pub(crate) node: String,
}

/// A peer's session, as the node knows it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) peer: String,
    pub(crate) cell: ActorCell,
}

/// The actors this node offers, by group.
#[derive(Debug, Default)]
pub(crate) struct Offered(Mutex<HashMap<String, Vec<ActorCell>>>);

fn is_live(cell: &ActorCell) -> bool {
    matches!(
        cell.get_status(),
        ActorStatus::Unstarted | ActorStatus::Starting | ActorStatus::Running
    )
}

impl Offered {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ActorCell>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an actor this node offers to `group`.
    pub(crate) fn add(&self, group: &str, cell: ActorCell) {
        let mut offered = self.lock();
        let cells = offered.entry(group.to_owned()).or_default();
        cells.retain(is_live);
        cells.push(cell);
    }

    /// Every actor this node offers, for shutdown.
    pub(crate) fn take_all(&self) -> Vec<ActorCell> {
        self.lock().drain().flat_map(|(_, cells)| cells).collect()
    }

    /// The members of `group` of `swarm` that `node` can reach: its own, then those of its
    /// peers, each through its own session.
    pub(crate) fn members(
        &self,
        node: &str,
        swarm: &str,
        group: &str,
        sessions: &[Session],
    ) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .lock()
            .get(group)
            .into_iter()
            .flatten()
            .filter(|cell| is_live(cell))
            .map(|cell| Member {
                cell: cell.clone(),
                node: node.to_owned(),
            })
            .collect();
        for session in sessions {
            members.extend(stubs(session, swarm, group).map(|cell| Member {
                cell,
                node: session.peer.clone(),
            }));
        }
        members
    }
}

/// The live remote actors of `session` that its peer offers to `group` of `swarm`.
fn stubs<'a>(
    session: &'a Session,
    swarm: &'a str,
    group: &'a str,
) -> impl Iterator<Item = ActorCell> + 'a {
    session.cell.get_children().into_iter().filter(move |stub| {
        is_live(stub)
            && stub
                .get_name()
                .is_some_and(|name| is_member(&name, swarm, group, &session.peer))
    })
}

/// One live remote actor of `session` that its peer offers to `group` of `swarm`.
pub(crate) fn find(session: &Session, swarm: &str, group: &str) -> Option<ActorCell> {
    stubs(session, swarm, group).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_swarm_group_and_node() {
        let name = member_name("build", "agent.sieve", "b");
        assert!(is_member(&name, "build", "agent.sieve", "b"));
        assert!(!is_member(&name, "test", "agent.sieve", "b"));
        assert!(!is_member(&name, "build", "agent.sie", "b"));
        assert!(!is_member(&name, "build", "agent.sieve", "c"));
        assert_ne!(name, member_name("build", "agent.sieve", "b"), "unique");
    }

    #[test]
    fn names_with_separators_are_refused() {
        assert!(check_name("swarm-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a@b").is_err());
        assert!(check_name("a\u{1f}b").is_err());
    }
}
