//! Starting agent actors: the factory a swarm keeps for each agent, to start its replicas at
//! swarm start and after every restart.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use ractor::{Actor, ActorCell, SpawnErr};

use crate::actor::{AgentActor, AgentArgs, Reset};
use crate::context::Base;
use crate::entry::{AgentEntry, SpawnFuture, Spawner};
use crate::mailbox::Home;
use crate::runtime::Runtime;
use crate::telemetry;
use crate::{Agent, AgentContext, AgentSpec, BoxError};

/// Makes fresh agent values of one type and starts each in its own actor.
///
/// A builder's agent is this very allocation from the moment it is added, so starting a
/// swarm allocates no factory per agent; the runtime is bound to it when the swarm starts.
pub(crate) struct Factory<A, F> {
    /// The agent's spec, shared with its entry once the swarm starts.
    pub(crate) spec: Arc<AgentSpec>,
    make: F,
    /// Weak, as the runtime holds the factory (through the agent's entry); dangling until
    /// the swarm starts.
    rt: Weak<Runtime>,
    _agent: PhantomData<fn() -> A>,
}

impl<A, F> Factory<A, F> {
    /// A factory not yet bound to a swarm.
    pub(crate) fn new(spec: AgentSpec, make: F) -> Self {
        Self {
            spec: Arc::new(spec),
            make,
            rt: Weak::new(),
            _agent: PhantomData,
        }
    }

    /// Binds the factory to the swarm it starts agents in. A builder's agent is its only
    /// handle to its factory until then, so the binding is a plain write; a factory bound
    /// nowhere says "the swarm is gone" when asked to start an agent.
    pub(crate) fn bind(self: &mut Arc<Self>, rt: &Arc<Runtime>) {
        if let Some(factory) = Arc::get_mut(self) {
            factory.rt = Arc::downgrade(rt);
        }
    }
}

impl<A, F> Spawner<A::Task, A::Output> for Factory<A, F>
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    fn spawn(
        self: Arc<Self>,
        home: Arc<AgentEntry<A::Task, A::Output>>,
        replica: usize,
    ) -> SpawnFuture {
        Box::pin(async move {
            let rt = self
                .rt
                .upgrade()
                .ok_or_else(|| BoxError::from("the swarm is gone"))?;
            spawn_agent(&rt, (self.make)(), &home, replica, None).await
        })
    }
}

/// Starts one actor for `agent`, linked under the swarm's supervisor; returns once the
/// agent's `started` hook has succeeded.
///
/// # Errors
///
/// The agent's own error from `started` (boxed, downcastable), or the actor runtime's.
pub(crate) async fn spawn_agent<A: Agent>(
    rt: &Arc<Runtime>,
    agent: A,
    home: &Arc<AgentEntry<A::Task, A::Output>>,
    replica: usize,
    reset: Option<Reset<A>>,
) -> Result<ActorCell, BoxError> {
    let ctx = AgentContext::new(Base {
        name: home.name.clone(),
        replica,
        spec: home.spec.clone(),
        rt: rt.clone(),
    });
    let home_dyn: Arc<dyn Home<A::Task, A::Output>> = home.clone();
    let args = AgentArgs {
        agent,
        ctx,
        bus: rt.bus.clone(),
        reset,
        home: home_dyn,
    };
    let started = std::time::Instant::now();
    // Unnamed: ractor's registry is process-global and two swarms may share agent names.
    let (actor, _) = Actor::spawn_linked(None, AgentActor::<A>::new(), args, rt.root.clone())
        .await
        .map_err(|e| match e {
            // The agent's own error, as `started` returned it.
            SpawnErr::StartupFailed(source) => source,
            other => Box::new(other) as BoxError,
        })?;
    telemetry::spawned(&home.name, started.elapsed());
    Ok(actor.get_cell())
}
