//! The ractor actor that runs one replica of an agent.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};

use futures::FutureExt;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::Instrument;

use crate::entry::AgentEntry;
use crate::envelope::{Envelope, Ticket};
use crate::events::EventBus;
use crate::queue::AgentQueue;
use crate::swarm::SwarmInner;
use crate::telemetry;
use crate::{Agent, AgentContext, AgentName, EventKind, Outcome, StopReason, TaskError, TaskState};

/// Messages an agent's actor takes.
pub(crate) enum AgentMsg<T, O> {
    /// A task to run (or hold, while the queue is paused).
    Task(Envelope<T, O>),
    /// The queue was resumed: run what was held.
    Resume,
    /// A pool took the agent back: clear its state for the next user, then answer.
    Reset(RpcReplyPort<()>),
}

// Local only: agents are reached across nodes through apiary-cluster's gateways, whose
// messages are the serializable ones.
impl<T: Send + 'static, O: Send + 'static> ractor::Message for AgentMsg<T, O> {}

/// How a pooled agent's state is cleared between users.
pub(crate) type Reset<A> = Arc<dyn Fn(&mut A) + Send + Sync>;

/// Who an actor is, for the supervisor that sees it stop.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) agent: AgentName,
    pub(crate) replica: usize,
}

/// Actors of a swarm by id; each agent actor registers itself before it can fail.
pub(crate) type Members = Mutex<HashMap<ActorId, Member>>;

pub(crate) struct AgentActor<A>(PhantomData<fn() -> A>);

impl<A> AgentActor<A> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct AgentArgs<A: Agent> {
    pub(crate) agent: A,
    pub(crate) ctx: AgentContext<A::Task, A::Output>,
    pub(crate) queue: Arc<AgentQueue>,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) members: Arc<Members>,
    pub(crate) reset: Option<Reset<A>>,
    pub(crate) home: Weak<AgentEntry<A::Task, A::Output>>,
}

pub(crate) struct AgentState<A: Agent> {
    agent: A,
    ctx: AgentContext<A::Task, A::Output>,
    queue: Arc<AgentQueue>,
    bus: Arc<EventBus>,
    reset: Option<Reset<A>>,
    home: Weak<AgentEntry<A::Task, A::Output>>,
    // Tasks that arrived while the queue was paused, in arrival order.
    held: VecDeque<Envelope<A::Task, A::Output>>,
}

impl<A: Agent> Actor for AgentActor<A> {
    type Msg = AgentMsg<A::Task, A::Output>;
    type State = AgentState<A>;
    type Arguments = AgentArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let AgentArgs {
            mut agent,
            ctx,
            queue,
            bus,
            members,
            reset,
            home,
        } = args;
        agent.started(&ctx).await.map_err(Into::into)?;
        let member = Member {
            agent: ctx.name().clone(),
            replica: ctx.replica(),
        };
        members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(myself.get_id(), member);
        bus.publish(|| EventKind::AgentSpawned {
            agent: ctx.name().clone(),
            replica: ctx.replica(),
            kind: ctx.spec().kind.clone(),
        });
        Ok(AgentState {
            agent,
            ctx,
            queue,
            bus,
            reset,
            home,
            held: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Task(env) => {
                let paused = state.queue.is_paused();
                if paused || !state.held.is_empty() {
                    // Keep arrival order: nothing overtakes a held task.
                    env.ticket().shared.set_waiting(paused);
                    state.held.push_back(env);
                    Ok(())
                } else {
                    run(state, env).await
                }
            }
            AgentMsg::Resume => {
                while !state.queue.is_paused() {
                    let Some(env) = state.held.pop_front() else {
                        break;
                    };
                    env.ticket().shared.set_waiting(false);
                    run(state, env).await?;
                }
                Ok(())
            }
            AgentMsg::Reset(reply) => {
                if let Some(reset) = &state.reset {
                    reset(&mut state.agent);
                }
                // The pool may have given up waiting; the reset is done either way.
                let _ = reply.send(());
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Held tasks end as `AgentStopped` when their tickets drop with the state.
        state.agent.stopping(&state.ctx).await;
        telemetry::stopped();
        state.bus.publish(|| EventKind::AgentStopped {
            agent: state.ctx.name().clone(),
            replica: state.ctx.replica(),
            reason: StopReason::Normal,
        });
        Ok(())
    }
}

/// Starts one actor for `agent`, linked under the swarm's root; returns once the agent's
/// `started` hook has succeeded.
pub(crate) async fn spawn_agent<A: Agent>(
    swarm: &Arc<SwarmInner<A::Task, A::Output>>,
    agent: A,
    home: &Arc<AgentEntry<A::Task, A::Output>>,
    replica: usize,
    reset: Option<Reset<A>>,
) -> Result<ActorRef<AgentMsg<A::Task, A::Output>>, String> {
    let spec = home.spec.clone();
    let queue = home.queue.clone();
    let name = AgentName::from(spec.name.as_str());
    let ctx = AgentContext::new(name, replica, spec, Arc::downgrade(swarm));
    let args = AgentArgs {
        agent,
        ctx,
        queue,
        bus: swarm.bus.clone(),
        members: swarm.members.clone(),
        reset,
        home: Arc::downgrade(home),
    };
    let started = std::time::Instant::now();
    // Unnamed: ractor's registry is process-global and two swarms may share agent names.
    let (actor, _) = Actor::spawn_linked(None, AgentActor::<A>::new(), args, swarm.root.get_cell())
        .await
        .map_err(|e| e.to_string())?;
    telemetry::spawned(&home.name, started.elapsed());
    Ok(actor)
}

/// Runs one task to its end. A panic in the agent ends the task as `Panicked` (or puts a
/// copy of it back in line, while its retry budget lasts) and is then returned as the
/// actor's error, so the actor stops and its supervisor sees the failure.
async fn run<A: Agent>(
    state: &mut AgentState<A>,
    env: Envelope<A::Task, A::Output>,
) -> Result<(), ActorProcessingErr> {
    let home = state.home.upgrade();
    let (task, ticket) = env.into_parts();
    let shared = ticket.shared.clone();
    if shared.deadline_passed() {
        if shared.time_out() {
            report(&home, &ticket, Outcome::TimedOut);
        }
        return Ok(());
    }
    if !shared.start() {
        // Cancelled or timed out while it waited; its result is already out.
        return Ok(());
    }
    // A copy for a retry, made only while the budget lasts and tasks can be copied.
    let retry_copy = home.as_ref().and_then(|entry| {
        let copy = entry.cloner?;
        (shared.attempts() < state.ctx.spec().max_retries).then(|| copy(&task))
    });
    let work = AssertUnwindSafe(state.agent.handle(task, &state.ctx))
        .catch_unwind()
        .instrument(shared.span.clone());
    let deadline = async {
        match shared.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = shared.cancel.cancelled() => {
            // Ended from outside: cancelled, or timed out by its awaiting handle.
            if shared.state() == TaskState::TimedOut {
                report(&home, &ticket, Outcome::TimedOut);
            }
            return Ok(());
        }
        () = deadline => {
            // Its awaiting handle may have timed it out at the same instant; either way it
            // timed out here, and the breaker hears of it once (this actor is the only
            // reporter).
            shared.time_out();
            if shared.state() == TaskState::TimedOut {
                report(&home, &ticket, Outcome::TimedOut);
            }
            return Ok(());
        }
    };
    let agent = || shared.agent.clone();
    match result {
        // The breaker hears the outcome before the submitter does, so a submitter that acts
        // on its result sees the breaker already updated.
        Ok(Ok(output)) => {
            report(&home, &ticket, Outcome::Completed);
            shared.finish(Outcome::Completed, Ok(output));
            Ok(())
        }
        Ok(Err(e)) => {
            report(&home, &ticket, Outcome::Failed);
            let err = TaskError::Agent {
                agent: agent(),
                source: e.into(),
            };
            shared.finish(Outcome::Failed, Err(err));
            Ok(())
        }
        Err(panic) => {
            let message = panic_message(panic);
            report(&home, &ticket, Outcome::Panicked);
            match (retry_copy, &home) {
                (Some(copy), Some(entry)) if shared.retry() => {
                    // Waits for this replica's restart (or another replica) to run again.
                    entry.park(copy, ticket);
                }
                _ => {
                    shared.finish(
                        Outcome::Panicked,
                        Err(TaskError::Panicked {
                            agent: agent(),
                            message: message.clone(),
                        }),
                    );
                }
            }
            Err(format!("agent `{}` panicked: {message}", shared.agent).into())
        }
    }
}

/// Tells the task's breaker how it ended.
fn report<T: Send + 'static, O: Send + 'static>(
    home: &Option<Arc<AgentEntry<T, O>>>,
    ticket: &Ticket<O>,
    outcome: Outcome,
) {
    if let Some(entry) = home {
        entry.report(ticket, outcome);
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
