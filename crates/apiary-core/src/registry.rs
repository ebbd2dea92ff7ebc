//! The swarm's agents by name, the members that have started, and the topology that routes
//! among them.
//!
//! A lookup, a routing decision or a permission check never waits: the planned agents and the
//! topology sit behind `arc-swap` (a snapshot is loaded, a change swaps in a new one). The
//! started members are appended, while the swarm starts, to an append-only vector (`boxcar`)
//! that readers walk in start order as it grows - so starting n agents one by one is O(n) -
//! and once the swarm has started they are published once as one contiguous snapshot, which
//! is what every route reads from then on.
//!
//! The supervisor learns of an exit by actor id; a map from each member actor's id to its
//! agent and replica (kept under a lock only the start, restarts and exits take) finds the
//! child in O(1), so stopping n agents is O(n).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};
use foldhash::fast::RandomState;
use smallvec::SmallVec;

use crate::entry::{AgentEntry, ErasedEntry, Types};
use crate::{
    AgentName, LookupError, MemberView, RouteRequest, SubmitErrorKind, Topology, TopologyError,
    UnknownAgent,
};

/// One agent in the registry: its entry seen without types, and the same entry ready to be
/// downcast to its types.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) entry: Arc<dyn ErasedEntry>,
    typed: Arc<dyn std::any::Any + Send + Sync>,
    pub(crate) types: Types,
}

impl Slot {
    pub(crate) fn new<T: Send + 'static, O: Send + 'static>(entry: Arc<AgentEntry<T, O>>) -> Self {
        Self {
            typed: entry.clone(),
            types: Types::of::<T, O>(),
            entry,
        }
    }

    /// The entry with its types, if they are `T` and `O`.
    pub(crate) fn typed<T: Send + 'static, O: Send + 'static>(
        &self,
    ) -> Result<Arc<AgentEntry<T, O>>, LookupError> {
        self.typed
            .clone()
            .downcast::<AgentEntry<T, O>>()
            .map_err(|_| LookupError::WrongType {
                agent: self.entry.name().clone(),
                asked: (std::any::type_name::<T>(), std::any::type_name::<O>()),
                runs: (self.types.task_name, self.types.output_name),
            })
    }

    fn view(&self) -> MemberView<'_> {
        let spec = self.entry.spec();
        MemberView::live(
            self.entry.name(),
            &spec.kind,
            &spec.capabilities,
            self.entry.as_live(),
        )
    }
}

/// The swarm's agents: every planned one by name, and those started, in start order.
#[derive(Default)]
pub(crate) struct Registry {
    planned: ArcSwap<HashMap<AgentName, Slot, RandomState>>,
    started: boxcar::Vec<Slot>,
    /// The same members, contiguous, once the swarm has started (`seal`).
    sealed: ArcSwapOption<Vec<Slot>>,
    topology: ArcSwapOption<Box<dyn Topology>>,
    /// The member and replica each live actor of a member is, so the supervisor finds the
    /// child behind an exit without a scan (which made stopping n agents O(n²)).
    actors: Mutex<HashMap<ractor::ActorId, Child, RandomState>>,
}

/// A member's replica: its entry and the replica's index.
pub(crate) type Child = (Arc<dyn ErasedEntry>, usize);

/// The members `with_views` hands on: all of them, or those of `types` plus the agent `keep`.
fn choose<'a>(
    members: impl Iterator<Item = &'a Slot>,
    only: Option<(Types, &str)>,
) -> SmallVec<[&'a Slot; 16]> {
    match only {
        None => members.collect(),
        Some((types, keep)) => members
            .filter(|s| s.types == types || s.entry.name() == keep)
            .collect(),
    }
}

/// Small swarms build their member views without touching the heap.
type Views<'a> = SmallVec<[MemberView<'a>; 16]>;

impl Registry {
    /// Adds planned agents; they take tasks once marked started.
    pub(crate) fn plan(&self, slots: &[Slot]) {
        self.planned.rcu(|old| {
            let mut planned = HashMap::clone(old);
            planned.reserve(slots.len());
            for slot in slots {
                planned.insert(slot.entry.name().clone(), slot.clone());
            }
            planned
        });
        let replicas = slots.iter().map(|s| s.entry.spec().replicas as usize).sum();
        self.actors().reserve(replicas);
    }

    /// Marks a planned agent started: it is a member from now on. Called once per agent (when
    /// its replicas are first set), so there is no duplicate to look for.
    pub(crate) fn mark_started(&self, slot: &Slot) {
        {
            let mut actors = self.actors();
            for (r, replica) in slot.entry.replicas().iter().enumerate() {
                actors.insert(replica.actor_id(), (slot.entry.clone(), r));
            }
        }
        self.started.push(slot.clone());
    }

    /// A member's replica runs in a new actor (a restart).
    pub(crate) fn replaced(&self, child: Child, actor: ractor::ActorId) {
        self.actors().insert(actor, child);
    }

    /// The member and replica whose current actor `actor` was, forgotten as the actor has
    /// stopped; `None` for an actor that was never a member's (a pooled agent's), or one a
    /// replica no longer runs in (a supervisor restarted it before its exit came in).
    pub(crate) fn exited(&self, actor: ractor::ActorId) -> Option<Child> {
        let (entry, r) = self.actors().remove(&actor)?;
        let current = entry.replicas().get(r)?.actor_id() == actor;
        current.then_some((entry, r))
    }

    fn actors(&self) -> std::sync::MutexGuard<'_, HashMap<ractor::ActorId, Child, RandomState>> {
        // The map is left whole by every holder (an insert or a remove), so a panic
        // elsewhere while it was held leaves nothing to repair.
        self.actors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A planned agent by name.
    pub(crate) fn slot(&self, agent: &str) -> Result<Slot, UnknownAgent> {
        self.planned
            .load()
            .get(agent)
            .cloned()
            .ok_or_else(|| UnknownAgent(agent.to_owned()))
    }

    /// A planned agent by name, with its types.
    pub(crate) fn typed<T: Send + 'static, O: Send + 'static>(
        &self,
        agent: &str,
    ) -> Result<Arc<AgentEntry<T, O>>, LookupError> {
        self.slot(agent)
            .map_err(|e| LookupError::UnknownAgent(e.0))?
            .typed()
    }

    /// The started agents, in start order.
    pub(crate) fn members(&self) -> Vec<Slot> {
        self.started.iter().map(|(_, s)| s.clone()).collect()
    }

    /// The started agents' entries, in start order.
    pub(crate) fn entries(&self) -> Vec<Arc<dyn ErasedEntry>> {
        self.started.iter().map(|(_, s)| s.entry.clone()).collect()
    }

    /// Every agent has started: publishes the members as one snapshot for the routes.
    pub(crate) fn seal(&self) {
        let members = self.members();
        self.sealed.store(Some(Arc::new(members)));
    }

    /// Runs `f` on the views of the started members (all of them, or those of `types` plus
    /// the agent `keep`, so a topology can place it).
    fn with_views<R>(
        &self,
        only: Option<(Types, &str)>,
        f: impl FnOnce(&[&Slot], &[MemberView<'_>]) -> R,
    ) -> R {
        // Borrowed, not cloned: no reference count is touched for the slots.
        let sealed = self.sealed.load();
        let chosen: SmallVec<[&Slot; 16]> = match sealed.as_deref() {
            Some(members) => choose(members.iter(), only),
            // Still starting: the members so far.
            None => choose(self.started.iter().map(|(_, s)| s), only),
        };
        let views: Views<'_> = chosen.iter().map(|s| s.view()).collect();
        f(&chosen, &views)
    }

    /// Validates and installs a topology.
    pub(crate) fn set_topology(&self, topology: Box<dyn Topology>) -> Result<(), TopologyError> {
        self.with_views(None, |_, members| topology.validate(members))?;
        self.topology.store(Some(Arc::new(topology)));
        Ok(())
    }

    pub(crate) fn topology_name(&self) -> Option<String> {
        self.topology.load().as_ref().map(|t| t.name().to_owned())
    }

    /// Where the topology sends a task of these types submitted to the swarm as a whole.
    pub(crate) fn route<T: Send + 'static, O: Send + 'static>(
        &self,
        request: &RouteRequest<'_>,
    ) -> Result<Arc<AgentEntry<T, O>>, SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Err(SubmitErrorKind::NoRoute("the swarm has no topology".into()));
        };
        let types = Types::of::<T, O>();
        let chosen = self.with_views(Some((types, "")), |slots, members| {
            let name = topology.route(request, members)?;
            slots
                .iter()
                .find(|s| *s.entry.name() == name)
                .map(|s| s.typed::<T, O>())
        });
        match chosen {
            Some(typed) => typed.map_err(SubmitErrorKind::from),
            None => Err(SubmitErrorKind::NoRoute(format!(
                "topology `{}` found no agent taking `{}`{}",
                topology.name(),
                types.task_name,
                with_capability(request)
            ))),
        }
    }

    /// Whether the topology lets `from` send to `to`.
    pub(crate) fn check_send(&self, from: &AgentName, to: &str) -> Result<(), SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Ok(());
        };
        if self.with_views(None, |_, members| {
            topology.allows(from.as_str(), to, members)
        }) {
            Ok(())
        } else {
            Err(SubmitErrorKind::NotAllowed {
                from: from.clone(),
                to: to.to_owned(),
                topology: topology.name().to_owned(),
            })
        }
    }

    /// The member the topology picks for `from` (its successor, or whom it delegates to)
    /// among the members of these types.
    pub(crate) fn pick<T: Send + 'static, O: Send + 'static>(
        &self,
        from: &AgentName,
        what: Pick<'_>,
    ) -> Result<Arc<AgentEntry<T, O>>, SubmitErrorKind> {
        let guard = self.topology.load();
        let Some(topology) = guard.as_ref() else {
            return Err(SubmitErrorKind::NoRoute("the swarm has no topology".into()));
        };
        let types = Types::of::<T, O>();
        let chosen = self.with_views(Some((types, from.as_str())), |slots, members| {
            let name = match what {
                Pick::Successor => topology.successor(from.as_str(), members),
                Pick::Delegate(request) => topology.delegate(from.as_str(), &request, members),
            }?;
            slots
                .iter()
                .find(|s| *s.entry.name() == name && s.types == types)
                .map(|s| s.typed::<T, O>())
        });
        match chosen {
            Some(typed) => typed.map_err(SubmitErrorKind::from),
            None => Err(SubmitErrorKind::NoRoute(match what {
                Pick::Successor => format!(
                    "topology `{}` gives `{from}` no successor taking `{}`",
                    topology.name(),
                    types.task_name
                ),
                Pick::Delegate(request) => format!(
                    "topology `{}` gives `{from}` no one taking `{}` to delegate to{}",
                    topology.name(),
                    types.task_name,
                    with_capability(&request)
                ),
            })),
        }
    }

    /// The members of these types the topology lets `from` reach now (itself excluded), in
    /// start order.
    pub(crate) fn reachable<T: Send + 'static, O: Send + 'static>(
        &self,
        from: &AgentName,
    ) -> Vec<Arc<AgentEntry<T, O>>> {
        let guard = self.topology.load();
        let types = Types::of::<T, O>();
        self.with_views(None, |slots, members| {
            slots
                .iter()
                .zip(members)
                .filter(|(s, m)| s.types == types && *m.name != *from)
                .filter(|(_, m)| {
                    guard
                        .as_ref()
                        .is_none_or(|t| t.allows(from.as_str(), m.name.as_str(), members))
                })
                .filter_map(|(s, _)| s.typed().ok())
                .collect()
        })
    }

    /// The coordinator that supervises `agent`, if the topology nests supervision.
    pub(crate) fn supervisor_of(&self, agent: &AgentName) -> Option<AgentName> {
        let guard = self.topology.load();
        guard
            .as_ref()?
            .supervisor(agent.as_str())
            .map(AgentName::from)
    }

    /// The started agents' names, in start order.
    pub(crate) fn names(&self) -> Vec<AgentName> {
        self.started
            .iter()
            .map(|(_, s)| s.entry.name().clone())
            .collect()
    }

    /// Every planned agent (for stopping them all when the swarm is dropped).
    pub(crate) fn planned(&self) -> Vec<Arc<dyn ErasedEntry>> {
        self.planned
            .load()
            .values()
            .map(|s| s.entry.clone())
            .collect()
    }
}

/// " with capability `c`" for a request that names one, for error messages.
fn with_capability(request: &RouteRequest<'_>) -> String {
    request
        .capability
        .map(|c| format!(" with capability `{c}`"))
        .unwrap_or_default()
}

/// What [`Registry::pick`] asks the topology for.
#[derive(Clone, Copy)]
pub(crate) enum Pick<'a> {
    /// `from`'s successor ([`Topology::successor`]).
    Successor,
    /// Whom `from` delegates such a task to ([`Topology::delegate`]).
    Delegate(RouteRequest<'a>),
}
