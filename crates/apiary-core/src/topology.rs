//! Topologies: who may send to whom, and where a task submitted to the swarm as a whole lands.

use std::fmt;

use thiserror::Error;

use crate::AgentName;

/// What a topology sees of one member of the swarm.
///
/// Load and liveness are read when asked for, so a topology that does not look at them
/// (a star) does not pay for them on every decision.
#[derive(Clone, Copy)]
pub struct MemberView<'a> {
    /// The agent's name.
    pub name: &'a AgentName,
    /// The agent's kind from its spec.
    pub kind: &'a str,
    /// The agent's capabilities from its spec.
    pub capabilities: &'a [String],
    state: State<'a>,
}

#[derive(Clone, Copy)]
enum State<'a> {
    Fixed { load: usize, alive: bool },
    Live(&'a dyn LiveMember),
}

/// Where a live view reads an agent's load and liveness from.
pub(crate) trait LiveMember {
    fn load(&self) -> usize;
    fn alive(&self) -> bool;
}

impl fmt::Debug for MemberView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberView")
            .field("name", self.name)
            .field("kind", &self.kind)
            .field("capabilities", &self.capabilities)
            .field("load", &self.load())
            .field("alive", &self.alive())
            .finish()
    }
}

impl<'a> MemberView<'a> {
    /// A view with fixed load and liveness (for testing a topology, or for topologies that
    /// build views of their own).
    pub fn new(
        name: &'a AgentName,
        kind: &'a str,
        capabilities: &'a [String],
        load: usize,
        alive: bool,
    ) -> Self {
        Self {
            name,
            kind,
            capabilities,
            state: State::Fixed { load, alive },
        }
    }

    pub(crate) fn live(
        name: &'a AgentName,
        kind: &'a str,
        capabilities: &'a [String],
        live: &'a dyn LiveMember,
    ) -> Self {
        Self {
            name,
            kind,
            capabilities,
            state: State::Live(live),
        }
    }

    /// Tasks queued or running for the agent now.
    pub fn load(&self) -> usize {
        match self.state {
            State::Fixed { load, .. } => load,
            State::Live(m) => m.load(),
        }
    }

    /// Whether a replica of the agent is up and taking tasks now (false while it restarts).
    pub fn alive(&self) -> bool {
        match self.state {
            State::Fixed { alive, .. } => alive,
            State::Live(m) => m.alive(),
        }
    }
}

impl MemberView<'_> {
    /// Whether the agent lists `capability` (always true for `None`).
    pub fn can(&self, capability: Option<&str>) -> bool {
        capability.is_none_or(|c| self.capabilities.iter().any(|have| have == c))
    }
}

/// A task submitted to the swarm as a whole, as the topology sees it when routing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequest<'a> {
    /// The capability the task needs, if any.
    pub capability: Option<&'a str>,
}

/// A topology that cannot work with the swarm's members.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("topology `{topology}`: {reason}")]
pub struct TopologyError {
    topology: String,
    reason: String,
}

impl TopologyError {
    /// An error for `topology` with a reason naming what is wrong.
    pub fn new(topology: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            topology: topology.into(),
            reason: reason.to_string(),
        }
    }

    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.topology
    }

    /// What is wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The shape of a swarm: which agents may send tasks to which, and where a task submitted
/// to the swarm as a whole ([`Swarm::route`](crate::Swarm::route)) lands.
///
/// A topology is a real constraint: a submission through a peer reference an agent got from
/// its context ([`AgentContext::agent`](crate::AgentContext::agent)) to a peer the topology
/// does not allow fails with
/// [`SubmitErrorKind::NotAllowed`](crate::SubmitErrorKind::NotAllowed), and swarm-level
/// submissions go where [`route`](Topology::route) says.
///
/// Members may run different task types. When routing a task of one type (a swarm-level
/// [`Swarm::route`](crate::Swarm::route), an agent's `forward`, `delegate`, `broadcast` or
/// `gossip`), the swarm shows the topology only the members taking that type (and the
/// sending agent, so the topology can place it); `allows` always sees every member. The swarm holds its topology behind an
/// atomic pointer swap, so [`Swarm::set_topology`](crate::Swarm::set_topology) changes it while
/// tasks are in flight; tasks already queued are not moved.
///
/// Implement it to write your own; `apiary-core` is all it needs.
///
/// # Examples
///
/// A pipeline where each agent may only hand work to the next one in name order:
///
/// ```
/// use apiary_core::{AgentName, MemberView, RouteRequest, Topology};
///
/// struct Chain(Vec<String>);
///
/// impl Topology for Chain {
///     fn name(&self) -> &str {
///         "chain"
///     }
///     fn allows(&self, from: &str, to: &str, _: &[MemberView<'_>]) -> bool {
///         self.0.windows(2).any(|w| w[0] == from && w[1] == to)
///     }
///     fn route(&self, _: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName> {
///         // Everything enters at the head of the chain.
///         let head = self.0.first()?;
///         members.iter().find(|m| m.name == head.as_str()).map(|m| m.name.clone())
///     }
/// }
///
/// let chain = Chain(vec!["parse".into(), "check".into(), "emit".into()]);
/// assert!(chain.allows("parse", "check", &[]));
/// assert!(!chain.allows("parse", "emit", &[]));
/// ```
pub trait Topology: Send + Sync + 'static {
    /// A short name (`mesh`, `star`, ...), used in errors, events and metrics.
    fn name(&self) -> &str;

    /// Checks that the topology can work with these members (a star's hub exists, ...).
    /// Called when the swarm starts with the topology and when it switches to it.
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] saying what is missing; the start or switch is refused.
    fn validate(&self, members: &[MemberView<'_>]) -> Result<(), TopologyError> {
        let _ = members;
        Ok(())
    }

    /// Whether agent `from` may send a task directly to agent `to`, given the members as they
    /// are now.
    fn allows(&self, from: &str, to: &str, members: &[MemberView<'_>]) -> bool;

    /// The agent `from` hands its work on to ([`AgentContext::successor`]), if the topology
    /// has such a notion (a ring's successor); `None` by default.
    ///
    /// [`AgentContext::successor`]: crate::AgentContext::successor
    fn successor(&self, from: &str, members: &[MemberView<'_>]) -> Option<AgentName> {
        let _ = (from, members);
        None
    }

    /// The coordinator that supervises `agent`, if the topology nests supervision (a
    /// hierarchy); `None` (the default) means the swarm's own supervisor. Restart strategy
    /// and intensity then apply among one coordinator's children, and a coordinator that
    /// exceeds its intensity has its whole subtree restarted by its own supervisor.
    fn supervisor(&self, agent: &str) -> Option<&str> {
        let _ = agent;
        None
    }

    /// The agent `from` hands a task needing `request.capability` down to
    /// ([`AgentContext::delegate_target`]), if the topology has such a notion (a
    /// coordinator's least-loaded capable worker); `None` by default.
    ///
    /// [`AgentContext::delegate_target`]: crate::AgentContext::delegate_target
    fn delegate(
        &self,
        from: &str,
        request: &RouteRequest<'_>,
        members: &[MemberView<'_>],
    ) -> Option<AgentName> {
        let _ = (from, request, members);
        None
    }

    /// The agent a task submitted to the swarm as a whole lands on, or `None` if no member
    /// can take it.
    fn route(&self, request: &RouteRequest<'_>, members: &[MemberView<'_>]) -> Option<AgentName>;
}
