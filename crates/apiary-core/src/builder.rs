//! Building and starting a swarm, batch by batch in dependency order.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use apiary_planner::{Node, Plan, PlanLimits};
use apiary_supervisor::CircuitBreaker;
use ractor::{Actor, ActorRef};

use apiary_memory::Memory;

use crate::actor::{spawn_agent, AgentMsg, Members};
use crate::entry::{AgentEntry, Cloner, Replica};
use crate::events::EventBus;
use crate::queue::AgentQueue;
use crate::root::{Root, RootArgs};
use crate::swarm::SwarmInner;
use crate::{Agent, AgentName, AgentSpec, Hook, Swarm, SwarmError, SwarmSettings, Topology};

/// A replica started in the current batch, with its agent's entry.
type Started<'a, T, O> = (&'a Arc<AgentEntry<T, O>>, ActorRef<AgentMsg<T, O>>);

pub(crate) type SpawnFuture<'a, T, O> =
    Pin<Box<dyn Future<Output = Result<ActorRef<AgentMsg<T, O>>, String>> + Send + 'a>>;

/// Starts one replica of an agent (at swarm start and at every restart); erases the agent's
/// type so one swarm holds many.
pub(crate) trait SpawnAgent<T: Send + 'static, O: Send + 'static>: Send + Sync {
    fn spawn<'a>(
        &'a self,
        swarm: &'a Arc<SwarmInner<T, O>>,
        home: &'a Arc<AgentEntry<T, O>>,
        replica: usize,
    ) -> SpawnFuture<'a, T, O>;
}

struct Factory<A, F> {
    make: F,
    _agent: PhantomData<fn() -> A>,
}

impl<A, F> SpawnAgent<A::Task, A::Output> for Factory<A, F>
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    fn spawn<'a>(
        &'a self,
        swarm: &'a Arc<SwarmInner<A::Task, A::Output>>,
        home: &'a Arc<AgentEntry<A::Task, A::Output>>,
        replica: usize,
    ) -> SpawnFuture<'a, A::Task, A::Output> {
        Box::pin(spawn_agent(swarm, (self.make)(), home, replica, None))
    }
}

/// Builds a [`Swarm`]: its agents, settings and hooks.
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
pub struct SwarmBuilder<T: Send + 'static, O: Send + 'static> {
    settings: SwarmSettings,
    agents: Vec<(AgentSpec, Arc<dyn SpawnAgent<T, O>>)>,
    hooks: Vec<Arc<dyn Hook>>,
    cloner: Option<Cloner<T>>,
    topology: Option<Box<dyn Topology>>,
    memory: Option<Memory>,
}

impl<T: Send + 'static, O: Send + 'static> fmt::Debug for SwarmBuilder<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmBuilder")
            .field("settings", &self.settings)
            .field(
                "agents",
                &self.agents.iter().map(|(s, _)| &s.name).collect::<Vec<_>>(),
            )
            .field("hooks", &self.hooks.len())
            .field("retries", &self.cloner.is_some())
            .finish()
    }
}

impl<T: Send + 'static, O: Send + 'static> Default for SwarmBuilder<T, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + 'static, O: Send + 'static> SwarmBuilder<T, O> {
    /// Lets tasks whose agent crashed (panicked) on them run again, up to each agent's
    /// `max_retries`: the swarm keeps a copy of a task while it runs. Without this, a crash
    /// fails its task with the panic.
    pub fn retry_crashed_tasks(mut self) -> Self {
        self.cloner = Some(T::clone);
        self
    }
}

impl<T: Send + 'static, O: Send + 'static> SwarmBuilder<T, O> {
    /// An empty builder with default settings.
    pub fn new() -> Self {
        Self {
            settings: SwarmSettings::default(),
            agents: Vec::new(),
            hooks: Vec::new(),
            cloner: None,
            topology: None,
            memory: None,
        }
    }

    /// Adds an agent. `make` builds a fresh agent value for each replica and for each
    /// restart.
    pub fn agent<A, F>(mut self, spec: AgentSpec, make: F) -> Self
    where
        A: Agent<Task = T, Output = O>,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let factory = Factory {
            make,
            _agent: PhantomData,
        };
        self.agents.push((spec, Arc::new(factory)));
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

    /// Gives every agent (through [`AgentContext::memory`](crate::AgentContext::memory)) and
    /// the swarm a shared memory. The swarm does not close it: a memory may outlive the swarm
    /// or be shared by several.
    pub fn memory(mut self, memory: Memory) -> Self {
        self.memory = Some(memory);
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
    /// start, after every actor already started has been stopped again in reverse order.
    pub async fn start(self) -> Result<Swarm<T, O>, SwarmError> {
        let Self {
            settings,
            agents,
            hooks,
            cloner,
            topology,
            memory,
        } = self;
        settings.validate()?;
        for (spec, _) in &agents {
            spec.validate()?;
        }
        let nodes: Vec<Node> = agents
            .iter()
            .map(|(s, _)| {
                Node::new(s.name.as_str())
                    .depends_on(s.depends_on.iter().map(String::as_str))
                    .weight(s.replicas as usize)
            })
            .collect();
        let limits = PlanLimits::default()
            .max_concurrency(settings.max_concurrency)
            .batch_size(settings.batch_size);
        let plan = Plan::new(&nodes, limits)?;

        let bus = Arc::new(EventBus::new(settings.event_capacity, hooks));
        let members = Arc::new(Members::default());
        let swarm_slot = Arc::new(OnceLock::new());
        let root_args = RootArgs {
            members: members.clone(),
            bus: bus.clone(),
            swarm: swarm_slot.clone(),
            settings: settings.clone(),
        };
        let (root, _) = Actor::spawn(None, Root::<T, O>::new(), root_args)
            .await
            .map_err(|e| SwarmError::Supervisor(e.to_string()))?;
        let inner = Arc::new(SwarmInner::new(
            bus.clone(),
            members,
            root,
            settings,
            memory,
        ));
        let _ = swarm_slot.set(Arc::downgrade(&inner));
        let swarm = Swarm {
            inner: inner.clone(),
        };

        // Every agent gets its entry up front; starting one only fills in its replicas.
        let entries: Vec<Arc<AgentEntry<T, O>>> = agents
            .iter()
            .map(|(spec, spawner)| {
                let capacity = spec.queue_capacity.unwrap_or(inner.settings.queue_capacity);
                Arc::new(AgentEntry::new(
                    Arc::new(spec.clone()),
                    Arc::new(AgentQueue::new(capacity)),
                    Some(spawner.clone()),
                    cloner,
                    bus.clone(),
                    inner.epoch,
                ))
            })
            .collect();
        inner.plan(entries.clone());
        let by_name: HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.name.as_str(), i))
            .collect();
        let chunk = match inner.settings.max_concurrency {
            0 => usize::MAX,
            n => n,
        };
        for batch in plan.batches() {
            // Every replica of every agent in the batch, spawned `chunk` at a time.
            let jobs: Vec<(&Arc<AgentEntry<T, O>>, usize)> = batch
                .agents()
                .flat_map(|name| {
                    let entry = &entries[by_name[name]];
                    (0..entry.spec.replicas as usize).map(move |r| (entry, r))
                })
                .collect();
            let mut started: Vec<Started<'_, T, O>> = Vec::with_capacity(jobs.len());
            let mut failure = None;
            for group in jobs.chunks(chunk) {
                let results = futures::future::join_all(group.iter().map(|(entry, replica)| {
                    let spawner = entry.spawner.as_ref().expect("swarm agents have spawners");
                    spawner.spawn(&inner, entry, *replica)
                }))
                .await;
                for (&(entry, replica), result) in group.iter().zip(results) {
                    match result {
                        Ok(actor) => started.push((entry, actor)),
                        Err(reason) if failure.is_none() => {
                            failure = Some(SwarmError::AgentStart {
                                agent: entry.name.clone(),
                                replica,
                                reason,
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
                inner.close();
                for (_, actor) in started.iter().rev() {
                    let _ = actor.stop_and_wait(None, None).await;
                }
                swarm.shutdown().await;
                return Err(err);
            }
            let mut by_agent: Vec<(AgentName, Vec<Replica<T, O>>)> = Vec::new();
            for (entry, actor) in started {
                let breaker = entry.spec.breaker.clone().map(CircuitBreaker::new);
                let replica = Replica::new(actor, breaker);
                match by_agent.last_mut() {
                    Some((name, replicas)) if *name == entry.name => replicas.push(replica),
                    _ => by_agent.push((entry.name.clone(), vec![replica])),
                }
            }
            for (name, replicas) in by_agent {
                inner.mark_started(name.as_str(), replicas);
            }
        }
        if let Some(topology) = topology {
            if let Err(e) = inner.set_topology(topology) {
                swarm.shutdown().await;
                return Err(e.into());
            }
        }
        Ok(swarm)
    }
}
