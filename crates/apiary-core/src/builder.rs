//! Building and starting a swarm, batch by batch in dependency order.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use apiary_planner::{Node, Plan, PlanLimits};
use apiary_supervisor::CircuitBreaker;
use ractor::{Actor, ActorCell};
use smallvec::{smallvec, SmallVec};

use crate::entry::{AgentEntry, Cloner, EntryParts, Replica};
use crate::events::EventBus;
use crate::factory::Factory;
use crate::registry::Slot;
use crate::resources::Resources;
use crate::root::{Root, Supervised, SwarmSlot};
use crate::runtime::Runtime;
use crate::{Agent, AgentName, AgentSpec, Hook, Swarm, SwarmError, SwarmSettings, Topology};

/// An agent added to a builder (its factory), its type erased until the swarm starts.
trait PendingAgent: Send + Sync {
    fn spec(&self) -> &AgentSpec;
    /// The agent's entry in `rt`'s swarm, named `name` (its spec's); the entry keeps this
    /// factory to start the agent's replicas.
    fn entry(self: Arc<Self>, name: AgentName, rt: &Arc<Runtime>, cloners: &Cloners) -> Slot;
}

impl<A, F> PendingAgent for Factory<A, F>
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    fn spec(&self) -> &AgentSpec {
        &self.spec
    }

    fn entry(mut self: Arc<Self>, name: AgentName, rt: &Arc<Runtime>, cloners: &Cloners) -> Slot {
        self.bind(rt);
        let capacity = self
            .spec
            .queue_capacity
            .unwrap_or(rt.settings.queue_capacity);
        Slot::new(AgentEntry::new(EntryParts {
            name,
            // Shared from the start: the entry keeps this very allocation, so starting does
            // not move each spec (~360 bytes) into a new one.
            spec: self.spec.clone(),
            capacity,
            spawner: Some(self),
            cloner: cloners.get::<A::Task>(),
            bus: rt.bus.clone(),
            epoch: rt.epoch,
        }))
    }
}

/// How to copy tasks, by task type: [`SwarmBuilder::retry_crashed_tasks`].
#[derive(Default)]
struct Cloners(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl Cloners {
    fn insert<T: Clone + 'static>(&mut self) {
        let copy: Cloner<T> = T::clone;
        self.0.insert(TypeId::of::<T>(), Box::new(copy));
    }

    fn get<T: 'static>(&self) -> Option<Cloner<T>> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|c| c.downcast_ref::<Cloner<T>>())
            .copied()
    }
}

/// Builds a [`Swarm`]: its agents (of any types), settings, hooks, topology and resources.
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Swarm, SwarmEvent};
///
/// struct Noop;
/// impl Agent for Noop {
///     type Task = ();
///     type Output = ();
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, _: (), _: &AgentContext<(), ()>) -> Result<(), Self::Error> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apiary_core::SwarmError> {
/// let swarm = Swarm::builder()
///     .queue_capacity(16)
///     .hook(|e: &SwarmEvent| println!("{:?}", e.kind()))
///     .agent(AgentSpec::new("fetch"), || Noop)
///     .agent(AgentSpec::new("build").depends_on(["fetch"]), || Noop)
///     .start()
///     .await?;
/// assert_eq!(swarm.agents(), ["fetch", "build"]);
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct SwarmBuilder {
    settings: SwarmSettings,
    agents: Vec<Arc<dyn PendingAgent>>,
    hooks: Vec<Arc<dyn Hook>>,
    cloners: Cloners,
    topology: Option<Box<dyn Topology>>,
    resources: Resources,
}

impl fmt::Debug for SwarmBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmBuilder")
            .field("settings", &self.settings)
            .field(
                "agents",
                &self
                    .agents
                    .iter()
                    .map(|a| &a.spec().name)
                    .collect::<Vec<_>>(),
            )
            .field("hooks", &self.hooks.len())
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl Swarm {
    /// A builder for a swarm.
    pub fn builder() -> SwarmBuilder {
        SwarmBuilder::new()
    }
}

impl SwarmBuilder {
    /// An empty builder with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent of any type. `make` builds a fresh agent value for each replica and for
    /// each restart.
    pub fn agent<A, F>(mut self, spec: AgentSpec, make: F) -> Self
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.agents.push(Arc::new(Factory::<A, F>::new(spec, make)));
        self
    }

    /// Lets tasks of type `T` whose agent crashed (panicked) on them run again, up to each
    /// agent's `max_retries`: the swarm keeps a copy of such a task while it runs. Without
    /// this, a crash fails its task with the panic.
    pub fn retry_crashed_tasks<T: Clone + Send + 'static>(mut self) -> Self {
        self.cloners.insert::<T>();
        self
    }

    /// Gives the swarm a resource every agent reaches by type
    /// ([`AgentContext::resource`](crate::AgentContext::resource)): its memory, an HTTP
    /// client, a database pool. One value per type (a second replaces the first); wrap
    /// values in types of your own to keep several of one type apart. The swarm drops its
    /// resources when its last handle and agent are gone; it does not close them.
    pub fn resource<R: Send + Sync + 'static>(mut self, value: R) -> Self {
        self.resources.insert(value);
        self
    }

    /// Replaces all settings (for instance with a manifest's `[swarm]` table).
    pub fn settings(mut self, settings: SwarmSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Changes some settings in place.
    pub fn configure(mut self, change: impl FnOnce(&mut SwarmSettings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Sets the default queue bound per agent.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.settings.queue_capacity = n;
        self
    }

    /// Sets the limits on spawn batches (0: no limit).
    pub fn spawn_limits(mut self, max_concurrency: usize, batch_size: usize) -> Self {
        self.settings.max_concurrency = max_concurrency;
        self.settings.batch_size = batch_size;
        self
    }

    /// Sets the swarm's topology (checked against the agents once they have started).
    pub fn topology(mut self, topology: impl Topology) -> Self {
        self.topology = Some(Box::new(topology));
        self
    }

    /// Registers a hook that sees every event, from the first agent spawned on.
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Validates everything, then starts the agents batch by batch: each batch is spawned
    /// concurrently and the next starts only when every agent of this one has run its
    /// `started` hook.
    ///
    /// # Errors
    ///
    /// A [`SwarmError`] before anything starts for an invalid spec or setting, a duplicate
    /// name, an unknown dependency or a cycle; [`SwarmError::AgentStart`] if an agent fails to
    /// start (its own error is the source), after every actor already started has been
    /// stopped again in reverse order.
    pub async fn start(self) -> Result<Swarm, SwarmError> {
        let Self {
            settings,
            agents,
            hooks,
            cloners,
            topology,
            resources,
        } = self;
        settings.validate()?;
        for agent in &agents {
            agent.spec().validate()?;
        }
        // Each name is made once and shared by the plan, the entry and its metrics.
        let names: Vec<AgentName> = agents
            .iter()
            .map(|a| AgentName::from(a.spec().name.as_str()))
            .collect();
        let nodes: Vec<Node> = agents
            .iter()
            .zip(&names)
            .map(|(a, name)| {
                let s = a.spec();
                Node::new(name.shared())
                    .depends_on(s.depends_on.iter().map(String::as_str))
                    .weight(s.replicas as usize)
            })
            .collect();
        let limits = PlanLimits::default()
            .max_concurrency(settings.max_concurrency)
            .batch_size(settings.batch_size);
        let plan = Plan::from_nodes(nodes, limits)?;

        let bus = Arc::new(EventBus::new(settings.event_capacity, hooks));
        let slot: SwarmSlot = Arc::new(OnceLock::new());
        let (root, _) = Actor::spawn(None, Root, slot.clone())
            .await
            .map_err(|e| SwarmError::Supervisor(e.to_string()))?;
        let rt = Arc::new(Runtime::new(bus, settings, resources, root.get_cell()));
        let supervised: Arc<dyn Supervised> = rt.clone();
        let _ = slot.set(Arc::downgrade(&supervised) as Weak<dyn Supervised>);
        let swarm = Swarm::from_parts(rt.clone(), root);

        // Every agent gets its entry up front; starting one only fills in its replicas.
        let slots: Vec<Slot> = agents
            .into_iter()
            .zip(names)
            .map(|(a, name)| a.entry(name, &rt, &cloners))
            .collect();
        rt.registry.plan(&slots);
        let chunk = match rt.settings.max_concurrency {
            0 => usize::MAX,
            n => n,
        };
        // Reused from batch to batch: started one by one, a swarm has a batch per agent.
        let mut jobs: Vec<(&Slot, usize)> = Vec::new();
        let mut started: Vec<(&Slot, ActorCell)> = Vec::new();
        for batch in plan.batches() {
            // Every replica of every agent in the batch, spawned `chunk` at a time.
            jobs.clear();
            // The plan's nodes were made from `agents`, in order, as were `slots`.
            jobs.extend(batch.indices().flat_map(|i| {
                let slot = &slots[i];
                (0..slot.entry.spec().replicas as usize).map(move |r| (slot, r))
            }));
            started.clear();
            let mut failure = None;
            for group in jobs.chunks(chunk) {
                let results: SmallVec<[_; 1]> = match group {
                    // One actor to start (agents started one by one): no join to set up.
                    [(slot, r)] => smallvec![slot.entry.clone().respawn(*r).await],
                    _ => futures::future::join_all(
                        group.iter().map(|(slot, r)| slot.entry.clone().respawn(*r)),
                    )
                    .await
                    .into(),
                };
                for (&(slot, replica), result) in group.iter().zip(results) {
                    match result {
                        Ok(actor) => started.push((slot, actor)),
                        Err(source) if failure.is_none() => {
                            failure = Some(SwarmError::AgentStart {
                                agent: slot.entry.name().clone(),
                                replica,
                                source,
                            });
                        }
                        Err(_) => {}
                    }
                }
                if failure.is_some() {
                    break;
                }
            }
            if let Some(err) = failure {
                rt.close();
                for (_, actor) in started.iter().rev() {
                    let _ = actor.stop_and_wait(None, None).await;
                }
                swarm.shutdown().await;
                return Err(err);
            }
            // Replicas of one agent were spawned together, in order: each run of one agent's
            // actors becomes its replicas.
            let mut actors = started.drain(..).peekable();
            while let Some((slot, actor)) = actors.next() {
                let n = slot.entry.spec().replicas as usize;
                let replica = |actor| {
                    let breaker = slot.entry.spec().breaker.clone().map(CircuitBreaker::new);
                    Replica::new(actor, breaker, n > 1)
                };
                let mut replicas = Vec::with_capacity(n);
                replicas.push(replica(actor));
                while let Some((_, actor)) =
                    actors.next_if(|(next, _)| next.entry.name() == slot.entry.name())
                {
                    replicas.push(replica(actor));
                }
                if slot.entry.set_replicas(replicas) {
                    rt.registry.mark_started(slot);
                }
            }
        }
        rt.registry.seal();
        if let Some(topology) = topology
            && let Err(e) = rt.registry.set_topology(topology)
        {
            swarm.shutdown().await;
            return Err(e.into());
        }
        Ok(swarm)
    }
}
