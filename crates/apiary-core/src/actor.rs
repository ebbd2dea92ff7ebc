//! The ractor actor that runs one replica of an agent.

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::events::EventBus;
use crate::mailbox::{AgentMsg, Envelope, Home, Ticket};
use crate::task::{Reply, TaskShared};
use crate::telemetry;
use crate::{Agent, AgentContext, EventKind, Outcome, StopReason, TaskError, TaskState};

/// How a pooled agent's state is cleared between users.
pub(crate) type Reset<A> = Arc<dyn Fn(&mut A) + Send + Sync>;

pub(crate) struct AgentActor<A>(PhantomData<fn() -> A>);

impl<A> AgentActor<A> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct AgentArgs<A: Agent> {
    pub(crate) agent: A,
    pub(crate) ctx: AgentContext<A::Task, A::Output>,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) reset: Option<Reset<A>>,
    pub(crate) home: Arc<dyn Home<A::Task, A::Output>>,
}

pub(crate) struct AgentState<A: Agent> {
    agent: A,
    ctx: AgentContext<A::Task, A::Output>,
    bus: Arc<EventBus>,
    reset: Option<Reset<A>>,
    home: Arc<dyn Home<A::Task, A::Output>>,
    // Tasks that arrived while the queue was paused, in arrival order.
    held: VecDeque<Envelope<A::Task, A::Output>>,
}

impl<A: Agent> Actor for AgentActor<A> {
    type Msg = AgentMsg<A::Task, A::Output>;
    type State = AgentState<A>;
    type Arguments = AgentArgs<A>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let AgentArgs {
            mut agent,
            ctx,
            bus,
            reset,
            home,
        } = args;
        // The agent's own error, boxed: the swarm's start reports it as its source.
        agent.started(&ctx).await.map_err(Into::into)?;
        bus.publish(|| EventKind::AgentSpawned {
            agent: ctx.name().clone(),
            replica: ctx.replica(),
            kind: ctx.spec().kind.clone(),
        });
        Ok(AgentState {
            agent,
            ctx,
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
        // Boxed: inline, handling a message (a task's whole run) would size this future,
        // and ractor boxes the actor's message loop with it once per actor, for the actor's
        // life, holding it twice (`run_with_signal`): ~800 bytes in every agent, idle or
        // not, against one allocation per message.
        Box::pin(handle(msg, state)).await
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

/// What [`AgentActor`] does with a message.
async fn handle<A: Agent>(
    msg: AgentMsg<A::Task, A::Output>,
    state: &mut AgentState<A>,
) -> Result<(), ActorProcessingErr> {
    match msg {
        AgentMsg::Task(env) => {
            let paused = state.home.queue().is_paused();
            if (paused || !state.held.is_empty()) && !state.home.aborted().is_raised() {
                // Keep arrival order: nothing overtakes a held task.
                env.ticket().shared.set_waiting(paused);
                state.held.push_back(env);
                Ok(())
            } else {
                let ran = run(state, env).await;
                // This replica is free again (or crashed): the next waiting task goes
                // to a free replica.
                if state.home.has_waiting() {
                    state.home.clone().pump();
                }
                ran
            }
        }
        AgentMsg::Resume => {
            while !state.home.queue().is_paused() || state.home.aborted().is_raised() {
                let Some(env) = state.held.pop_front() else {
                    break;
                };
                env.ticket().shared.set_waiting(false);
                run(state, env).await?;
            }
            if state.home.has_waiting() {
                state.home.clone().pump();
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

/// Runs one task to its end. A panic in the agent ends the task as `Panicked` (or puts a
/// copy of it back in line, while its retry budget lasts) and is then returned as the
/// actor's error, so the actor stops and its supervisor sees the failure.
async fn run<A: Agent>(
    state: &mut AgentState<A>,
    env: Envelope<A::Task, A::Output>,
) -> Result<(), ActorProcessingErr> {
    let (task, ticket) = env.into_parts();
    let shared = ticket.shared.clone();
    let home = &state.home;
    if home.aborted().is_raised() {
        // A bounded shutdown's grace period is over: what still waits is cancelled.
        shared.finish(Outcome::Cancelled, Err(TaskError::Cancelled));
        return Ok(());
    }
    if shared.deadline_passed() {
        if shared.time_out() {
            home.report(&ticket, Outcome::TimedOut);
        }
        return Ok(());
    }
    if !shared.start() {
        // Cancelled or timed out while it waited; its result is already out.
        return Ok(());
    }
    // A copy for a retry, made only while the budget lasts and tasks can be copied.
    let retry_copy = home
        .cloner()
        .filter(|_| shared.attempts() < state.ctx.spec().max_retries)
        .map(|copy| copy(&task));
    // The actor's own context, pointed at this task for its duration (no new context per
    // task); the agent may clone it into tasks of its own.
    state.ctx.set_task(Some(shared.clone()));
    let result = {
        let work = AssertUnwindSafe(state.agent.handle(task, &state.ctx))
            .catch_unwind()
            .instrument(shared.span.clone());
        let mut work = std::pin::pin!(work);
        // An agent that answers on its first poll (most do) never meets the other signals.
        match futures::poll!(work.as_mut()) {
            Poll::Ready(r) => Some(r),
            // Handed on (or ended from outside) during that first poll: nothing to wait for.
            Poll::Pending if shared.stop_signal().is_raised() => {
                ended_outside(&shared, &*state.home, &ticket);
                None
            }
            // Boxed: the wait's state (timers, wake-ups) would otherwise make every task's
            // future several times larger, and the actor copies that future per message.
            Poll::Pending => Box::pin(wait(work, &shared, &*state.home, &ticket)).await,
        }
    };
    state.ctx.set_task(None);
    let Some(result) = result else {
        // Ended from outside; the breaker has heard.
        return Ok(());
    };
    let home = &state.home;
    let agent = || shared.agent().clone();
    match result {
        // The breaker hears the outcome before the submitter does, so a submitter that acts
        // on its result sees the breaker already updated.
        Ok(Ok(output)) => {
            home.report(&ticket, Outcome::Completed);
            answer_last(
                shared.finish_later(Outcome::Completed, Ok(output)),
                ticket,
                shared,
            );
            Ok(())
        }
        Ok(Err(e)) => {
            home.report(&ticket, Outcome::Failed);
            let err = TaskError::Agent {
                agent: agent(),
                source: e.into(),
            };
            answer_last(
                shared.finish_later(Outcome::Failed, Err(err)),
                ticket,
                shared,
            );
            Ok(())
        }
        Err(panic) => {
            let message = panic_message(panic);
            home.report(&ticket, Outcome::Panicked);
            retry_or_fail(home, retry_copy, ticket, &message);
            // A crashed actor never runs `post_stop`: its stop is recorded here.
            telemetry::stopped();
            state.bus.publish(|| EventKind::AgentStopped {
                agent: state.ctx.name().clone(),
                replica: state.ctx.replica(),
                reason: StopReason::Failed(format!("panicked: {message}")),
            });
            Err(format!("agent `{}` panicked: {message}", shared.agent()).into())
        }
    }
}

/// Sends a task's answer after letting go of the task: its room in the queue is free before
/// the submitter hears, and the submitter's handle holds the last reference, so the task is
/// freed on the submitter's thread rather than bounced back to it.
fn answer_last<T, O>(reply: Option<Reply>, ticket: Ticket<T, O>, shared: Arc<TaskShared<O>>) {
    drop(ticket);
    drop(shared);
    if let Some(reply) = reply {
        reply.send();
    }
}

/// A running task's stop signal was raised: it was cancelled, timed out by its awaiting
/// handle, or handed on by the agent itself. Tells the breaker what it should hear of it.
fn ended_outside<T, O>(shared: &TaskShared<O>, home: &dyn Home<T, O>, ticket: &Ticket<T, O>) {
    match shared.state() {
        TaskState::Delegated => home.report(ticket, Outcome::Delegated),
        TaskState::TimedOut => home.report(ticket, Outcome::TimedOut),
        _ => {}
    }
}

/// Waits for a task that did not answer at once: its end, or a signal that ends it from
/// outside (cancelled, timed out, handed on, a bounded shutdown's abort). `None` if it was
/// ended from outside; the breaker has then heard how.
async fn wait<F: Future, T, O>(
    work: Pin<&mut F>,
    shared: &TaskShared<O>,
    home: &dyn Home<T, O>,
    ticket: &Ticket<T, O>,
) -> Option<F::Output> {
    let deadline = async {
        match shared.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        r = work => Some(r),
        () = shared.stop_signal().raised() => {
            ended_outside(shared, home, ticket);
            None
        }
        () = deadline => {
            // Its awaiting handle may have timed it out at the same instant; either way it
            // timed out here, and the breaker hears of it once (this actor is the only
            // reporter).
            shared.time_out();
            if shared.state() == TaskState::TimedOut {
                home.report(ticket, Outcome::TimedOut);
            }
            None
        }
        () = home.aborted().raised() => {
            shared.finish(Outcome::Cancelled, Err(TaskError::Cancelled));
            None
        }
    }
}

/// After a panic: puts a copy of the task back in line for a restarted (or another) replica
/// while its retry budget lasts, or fails it with the panic.
fn retry_or_fail<T, O>(
    home: &Arc<dyn Home<T, O>>,
    copy: Option<T>,
    ticket: Ticket<T, O>,
    message: &str,
) {
    match copy {
        Some(copy) if ticket.shared.retry() => home.clone().park(copy, ticket),
        _ => {
            let agent = ticket.shared.agent().clone();
            ticket.shared.finish(
                Outcome::Panicked,
                Err(TaskError::Panicked {
                    agent,
                    message: message.to_owned(),
                }),
            );
        }
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
