//! Building and starting a swarm, batch by batch in dependency order.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use apiary_planner::{Node, Plan, PlanLimits};
use ractor::{Actor, ActorRef};

use crate::actor::{spawn_agent, AgentMsg, Members};
use crate::events::EventBus;
use crate::queue::AgentQueue;
use crate::root::{Root, RootState};
use crate::swarm::{AgentEntry, Replica, SwarmInner};
use crate::{Agent, AgentName, AgentSpec, Hook, Swarm, SwarmError, SwarmSettings};

/// A started replica: its agent's spec and queue, its number, its actor.
type Started<T, O> = (
    Arc<AgentSpec>,
    Arc<AgentQueue>,
    usize,
    ActorRef<AgentMsg<T, O>>,
);

type SpawnFuture<'a, T, O> =
    Pin<Box<dyn Future<Output = Result<ActorRef<AgentMsg<T, O>>, String>> + Send + 'a>>;

/// Starts one replica of an agent; erases the agent's type so one swarm holds many.
trait SpawnAgent<T, O>: Send + Sync {
    fn spawn<'a>(
        &'a self,
        swarm: &'a Arc<SwarmInner<T, O>>,
        spec: Arc<AgentSpec>,
        replica: usize,
        queue: Arc<AgentQueue>,
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
        spec: Arc<AgentSpec>,
        replica: usize,
        queue: Arc<AgentQueue>,
    ) -> SpawnFuture<'a, A::Task, A::Output> {
        Box::pin(spawn_agent(
            swarm,
            (self.make)(),
            spec,
            replica,
            queue,
            None,
        ))
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
pub struct SwarmBuilder<T, O> {
    settings: SwarmSettings,
    agents: Vec<(AgentSpec, Box<dyn SpawnAgent<T, O>>)>,
    hooks: Vec<Arc<dyn Hook>>,
}

impl<T, O> fmt::Debug for SwarmBuilder<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmBuilder")
            .field("settings", &self.settings)
            .field(
                "agents",
                &self.agents.iter().map(|(s, _)| &s.name).collect::<Vec<_>>(),
            )
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl<T: Send + 'static, O: Send + 'static> Default for SwarmBuilder<T, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static, O: Send + 'static> SwarmBuilder<T, O> {
    /// An empty builder with default settings.
    pub fn new() -> Self {
        Self {
            settings: SwarmSettings::default(),
            agents: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// Adds an agent. `make` builds a fresh agent value for each replica (and, with
    /// supervision, for each restart).
    pub fn agent<A, F>(mut self, spec: AgentSpec, make: F) -> Self
    where
        A: Agent<Task = T, Output = O>,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let factory = Factory {
            make,
            _agent: PhantomData,
        };
        self.agents.push((spec, Box::new(factory)));
        self
    }

    /// Replaces all settings (for instance with a manifest's `[swarm]` table).
    pub fn settings(mut self, settings: SwarmSettings) -> Self {
        self.settings = settings;
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
        let root_state = RootState {
            members: members.clone(),
            bus: bus.clone(),
        };
        let (root, _) = Actor::spawn(None, Root, root_state)
            .await
            .map_err(|e| SwarmError::Supervisor(e.to_string()))?;
        let inner = Arc::new(SwarmInner::new(bus, members, root, settings));
        let swarm = Swarm {
            inner: inner.clone(),
        };

        let by_name: std::collections::HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.name.as_str(), i))
            .collect();
        let chunk = match inner.settings.max_concurrency {
            0 => usize::MAX,
            n => n,
        };
        let entries: Vec<AgentEntry<T, O>> = agents
            .iter()
            .map(|(spec, _)| {
                let capacity = spec.queue_capacity.unwrap_or(inner.settings.queue_capacity);
                AgentEntry::new(Arc::new(spec.clone()), Arc::new(AgentQueue::new(capacity)))
            })
            .collect();
        let planned: Vec<(Arc<AgentSpec>, Arc<AgentQueue>)> = entries
            .iter()
            .map(|e| (e.spec.clone(), e.queue.clone()))
            .collect();
        inner.plan(entries);
        for batch in plan.batches() {
            // Every replica of every agent in the batch, spawned `chunk` at a time.
            let mut jobs = Vec::new();
            for name in batch.agents() {
                let i = by_name[name];
                let (spec, queue) = &planned[i];
                let factory = &agents[i].1;
                for replica in 0..spec.replicas as usize {
                    jobs.push((spec.clone(), factory, replica, queue.clone()));
                }
            }
            let mut started: Vec<Started<T, O>> = Vec::with_capacity(jobs.len());
            let mut failure = None;
            for group in jobs.chunks(chunk) {
                let results = futures::future::join_all(group.iter().map(
                    |(spec, factory, replica, queue)| {
                        factory.spawn(&inner, spec.clone(), *replica, queue.clone())
                    },
                ))
                .await;
                for ((spec, _, replica, queue), result) in group.iter().zip(results) {
                    match result {
                        Ok(actor) => started.push((spec.clone(), queue.clone(), *replica, actor)),
                        Err(reason) if failure.is_none() => {
                            failure = Some(SwarmError::AgentStart {
                                agent: AgentName::from(spec.name.as_str()),
                                replica: *replica,
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
                for (_, _, _, actor) in started.iter().rev() {
                    let _ = actor.stop_and_wait(None, None).await;
                }
                swarm.shutdown().await;
                return Err(err);
            }
            for (name, replicas) in group_replicas(started) {
                inner.mark_started(&name, replicas);
            }
        }
        Ok(swarm)
    }
}

/// Gathers started replicas by agent, keeping the batch's order.
fn group_replicas<T, O>(started: Vec<Started<T, O>>) -> Vec<(String, Vec<Replica<T, O>>)> {
    let mut groups: Vec<(String, Vec<Replica<T, O>>)> = Vec::new();
    for (spec, _queue, _replica, actor) in started {
        let replica = Replica {
            actor,
            load: Arc::new(AtomicUsize::new(0)),
        };
        match groups.last_mut() {
            Some((name, replicas)) if *name == spec.name => replicas.push(replica),
            _ => groups.push((spec.name.clone(), vec![replica])),
        }
    }
    groups
}
