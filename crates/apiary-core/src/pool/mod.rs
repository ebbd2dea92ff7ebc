//! Pools of pre-warmed agents of one kind, handed out one user at a time.

mod slots;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use std::time::Duration;

use ractor::rpc::CallResult;
use thiserror::Error;
use tokio::time::Instant;

use crate::actor::Reset;
use crate::entry::{AgentEntry, EntryParts, ErasedEntry, Replica};
use crate::factory::spawn_agent;
use crate::mailbox::AgentMsg;
use crate::runtime::Runtime;
use crate::{
    Agent, AgentName, AgentSpec, BoxError, SubmitError, SubmitErrorKind, SubmitOptions, Swarm,
    TaskError, TaskHandle,
};
use slots::{Closed, Slots, Take, Vacancy};

/// Why a pool could not hand out an agent.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool was closed.
    #[error("pool `{0}` is closed")]
    Closed(AgentName),
    /// The swarm the pool belongs to is gone.
    #[error("the swarm of pool `{0}` is gone")]
    SwarmGone(AgentName),
    /// A new agent failed to start.
    #[error("pool `{agent}` could not start an agent: {source}")]
    Spawn {
        /// The pool's agent name.
        agent: AgentName,
        /// Why: the agent's own error from its `started` hook (downcast it), the actor
        /// runtime's, or an invalid spec.
        #[source]
        source: BoxError,
    },
}

/// A pool of pre-warmed agents of one kind.
///
/// Each pooled agent is a running actor whose `started` hook has already run. [`acquire`]
/// hands one out for exclusive use (waiting if `max_size` are out); dropping the
/// [`Pooled`] guard (or [`Pooled::release`]) resets the agent's state before anyone else gets
/// it, so state never leaks between users. The pool starts `min_idle` agents, grows up to
/// `max_size` on demand, and stops agents idle for longer than `idle_timeout` down to
/// `min_idle`. Pooled agents are actors of the swarm: they reach peers through their context
/// and stop when the swarm shuts down.
///
/// By default a released agent is replaced by a fresh value from the factory (in the same,
/// still warm, actor; `started` does not run again). Give [`PoolBuilder::reset`] to clear
/// state in place instead.
///
/// [`acquire`]: Pool::acquire
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, AgentSpec, Pool, Swarm};
///
/// /// Remembers what its current user told it.
/// #[derive(Default)]
/// struct Scratch(Vec<String>);
///
/// impl Agent for Scratch {
///     type Task = String;
///     type Output = usize;
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, s: String, _: &AgentContext<String, usize>) -> Result<usize, Self::Error> {
///         self.0.push(s);
///         Ok(self.0.len())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder().start().await?;
/// let pool = Pool::builder(AgentSpec::new("scratch"), Scratch::default)
///     .min_idle(2)
///     .max_size(4)
///     .reset(|s: &mut Scratch| s.0.clear())
///     .start(&swarm)
///     .await?;
///
/// let agent = pool.acquire().await?;
/// assert_eq!(agent.run("a".into()).await?, 1);
/// assert_eq!(agent.run("b".into()).await?, 2);
/// agent.release().await;
///
/// let agent = pool.acquire().await?; // the same warm actor, its state cleared
/// assert_eq!(agent.run("c".into()).await?, 1);
/// # drop(agent);
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Pool<A: Agent> {
    inner: Arc<PoolInner<A>>,
}

impl<A: Agent> Clone for Pool<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Agent> fmt::Debug for Pool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("agent", &self.inner.name)
            .field("size", &self.size())
            .field("idle", &self.idle())
            .finish()
    }
}

/// Builds a [`Pool`].
pub struct PoolBuilder<A: Agent> {
    spec: AgentSpec,
    make: Arc<dyn Fn() -> A + Send + Sync>,
    reset: Option<Reset<A>>,
    min_idle: usize,
    max_size: usize,
    idle_timeout: Duration,
}

impl<A: Agent> fmt::Debug for PoolBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("agent", &self.spec.name)
            .field("min_idle", &self.min_idle)
            .field("max_size", &self.max_size)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<A: Agent> PoolBuilder<A> {
    /// Agents kept warm even when idle (default 1).
    pub fn min_idle(mut self, n: usize) -> Self {
        self.min_idle = n;
        self
    }

    /// Most agents alive at once (default 16; at least 1).
    pub fn max_size(mut self, n: usize) -> Self {
        self.max_size = n.max(1);
        self
    }

    /// How long an agent above `min_idle` may sit idle before it is stopped (default 30 s).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Clears an agent's state in place when it is released, instead of replacing it with a
    /// fresh value from the factory.
    pub fn reset(mut self, reset: impl Fn(&mut A) + Send + Sync + 'static) -> Self {
        self.reset = Some(Arc::new(reset));
        self
    }

    /// Starts `min_idle` agents in `swarm` and returns the pool once they are ready.
    ///
    /// # Errors
    ///
    /// [`PoolError::Spawn`] if a warm agent fails to start (those already started are
    /// stopped), [`PoolError::SwarmGone`] if the swarm has shut down.
    pub async fn start(self, swarm: &Swarm) -> Result<Pool<A>, PoolError> {
        let name = AgentName::from(self.spec.name.as_str());
        self.spec.validate().map_err(|e| PoolError::Spawn {
            agent: name.clone(),
            source: Box::new(e),
        })?;
        let make = self.make.clone();
        let reset = self
            .reset
            .unwrap_or_else(|| Arc::new(move |a: &mut A| *a = make()));
        let min_idle = self.min_idle.min(self.max_size);
        let inner = Arc::new(PoolInner {
            rt: swarm.runtime().clone(),
            name,
            spec: Arc::new(self.spec),
            make: self.make,
            reset,
            slots: Slots::new(self.max_size),
            size: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
            min_idle,
            idle_timeout: self.idle_timeout,
        });
        let warm = futures::future::join_all((0..min_idle).map(|_| async {
            // The pool is new and `min_idle <= max_size`: there is room for each.
            match inner.slots.try_take() {
                Ok(Some(Take::Room)) => Vacancy(&inner.slots).fill(inner.start_member()).await,
                Ok(Some(Take::Idle(member))) => Ok(member),
                Ok(None) | Err(Closed) => Err(PoolError::Closed(inner.name.clone())),
            }
        }))
        .await;
        let mut failure = None;
        for member in warm {
            match member {
                Ok(m) => {
                    if let Err(m) = inner.slots.put_back(m) {
                        inner.retire(m).await;
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        let pool = Pool { inner };
        if let Some(e) = failure {
            pool.close().await;
            return Err(e);
        }
        tokio::spawn(reap_idle(
            Arc::downgrade(&pool.inner),
            pool.inner.idle_timeout,
        ));
        Ok(pool)
    }
}

struct PoolInner<A: Agent> {
    rt: Arc<Runtime>,
    name: AgentName,
    spec: Arc<AgentSpec>,
    make: Arc<dyn Fn() -> A + Send + Sync>,
    reset: Reset<A>,
    // Idle agents (the warmest reused first, the coldest reaped) and the bound on the rest.
    slots: Slots<Member<A::Task, A::Output>>,
    size: AtomicUsize,
    next_id: AtomicUsize,
    min_idle: usize,
    idle_timeout: Duration,
}

/// A pooled agent: an entry of its own with one replica, never restarted (a failed pooled
/// agent is retired and its tasks end as `AgentStopped`).
struct Member<T: Send + 'static, O: Send + 'static> {
    id: usize,
    entry: Arc<AgentEntry<T, O>>,
    idle_since: Instant,
}

impl<T: Send + 'static, O: Send + 'static> Member<T, O> {
    fn actor(&self) -> Arc<ractor::ActorCell> {
        crate::entry::ErasedEntry::replicas(&*self.entry)[0].actor()
    }
}

impl<A: Agent> Pool<A> {
    /// A builder for a pool of agents made by `make`, each running under `spec`.
    pub fn builder(
        spec: AgentSpec,
        make: impl Fn() -> A + Send + Sync + 'static,
    ) -> PoolBuilder<A> {
        PoolBuilder {
            spec,
            make: Arc::new(make),
            reset: None,
            min_idle: 1,
            max_size: 16,
            idle_timeout: Duration::from_secs(30),
        }
    }

    /// Hands out a ready agent for exclusive use: an idle one if there is one, else a new one
    /// while the pool is below `max_size`, else waits for a release.
    ///
    /// # Errors
    ///
    /// [`PoolError::Closed`], [`PoolError::SwarmGone`], or [`PoolError::Spawn`] if a new agent
    /// failed to start.
    pub async fn acquire(&self) -> Result<Pooled<A>, PoolError> {
        let closed = |Closed| PoolError::Closed(self.inner.name.clone());
        // Most acquisitions find an idle agent: take it without building a wait.
        let took = match self.inner.slots.try_take().map_err(closed)? {
            Some(took) => took,
            None => self.inner.slots.take().await.map_err(closed)?,
        };
        let member = match took {
            Take::Idle(member) => member,
            // Boxed: starting an agent is a large future, and inline it would make every
            // acquire's future (and its first poll) as large.
            Take::Room => {
                Box::pin(Vacancy(&self.inner.slots).fill(self.inner.start_member())).await?
            }
        };
        Ok(Pooled {
            member: Some(member),
            pool: self.inner.clone(),
        })
    }

    /// Agents alive now, idle or checked out.
    pub fn size(&self) -> usize {
        self.inner.size.load(Ordering::Acquire)
    }

    /// Agents idle now.
    pub fn idle(&self) -> usize {
        self.inner.slots.idle()
    }

    /// Closes the pool: no more acquisitions; idle agents stop now, checked-out ones when
    /// released.
    pub async fn close(&self) {
        for member in self.inner.slots.close() {
            self.inner.retire(member).await;
        }
    }
}

impl<A: Agent> PoolInner<A> {
    async fn start_member(&self) -> Result<Member<A::Task, A::Output>, PoolError> {
        if self.rt.is_closed() {
            return Err(PoolError::SwarmGone(self.name.clone()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let capacity = self
            .spec
            .queue_capacity
            .unwrap_or(self.rt.settings.queue_capacity);
        let entry = AgentEntry::new(EntryParts {
            name: AgentName::from(self.spec.name.as_str()),
            spec: self.spec.clone(),
            capacity,
            spawner: None,
            cloner: None,
            bus: self.rt.bus.clone(),
            epoch: self.rt.epoch,
        });
        let actor = spawn_agent(
            &self.rt,
            (self.make)(),
            &entry,
            id,
            Some(self.reset.clone()),
        )
        .await
        .map_err(|source| PoolError::Spawn {
            agent: self.name.clone(),
            source,
        })?;
        entry.set_replicas(vec![Replica::new(actor, None, false)]);
        self.size.fetch_add(1, Ordering::AcqRel);
        Ok(Member {
            id,
            entry,
            idle_since: Instant::now(),
        })
    }

    /// Stops a held agent and gives its hold back.
    async fn retire(&self, member: Member<A::Task, A::Output>) {
        member.entry.queue().close();
        let _ = member.actor().stop_and_wait(None, None).await;
        self.size.fetch_sub(1, Ordering::AcqRel);
        self.slots.vacate();
    }

    /// Resets a returned agent (after the tasks it still has) and puts it back, or retires
    /// it if the pool closed or the agent died.
    async fn take_back(&self, mut member: Member<A::Task, A::Output>) {
        let actor: ractor::ActorRef<AgentMsg<A::Task, A::Output>> =
            ractor::ActorCell::clone(&member.actor()).into();
        let reset = actor.call(AgentMsg::Reset, None).await;
        if matches!(reset, Ok(CallResult::Success(()))) {
            member.idle_since = Instant::now();
            match self.slots.put_back(member) {
                Ok(()) => {}
                // Closed meanwhile.
                Err(member) => self.retire(member).await,
            }
        } else {
            self.retire(member).await;
        }
    }

    /// Stops agents idle past the timeout, oldest first, keeping `min_idle`.
    async fn reap(&self) {
        let expired = self.slots.take_expired(self.min_idle, |m| {
            m.idle_since.elapsed() >= self.idle_timeout
        });
        for member in expired {
            self.retire(member).await;
        }
    }
}

async fn reap_idle<A: Agent>(pool: Weak<PoolInner<A>>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.slots.is_closed() {
            return;
        }
        pool.reap().await;
    }
}

/// An agent checked out of a [`Pool`], for its holder alone.
///
/// Dropping it (or calling [`release`](Self::release)) sends the agent back: its remaining
/// tasks finish, its state is reset, and it goes back to the idle list.
pub struct Pooled<A: Agent> {
    member: Option<Member<A::Task, A::Output>>,
    pool: Arc<PoolInner<A>>,
}

impl<A: Agent> fmt::Debug for Pooled<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("agent", &self.pool.name)
            .field("id", &self.member.as_ref().map(|m| m.id))
            .finish()
    }
}

impl<A: Agent> Pooled<A> {
    fn member(&self) -> &Member<A::Task, A::Output> {
        // Only `release` and `drop` take the member, and both consume the guard.
        self.member
            .as_ref()
            .expect("pooled member present until release")
    }

    /// Which pooled agent this is (stable for the agent's life; the `replica` of its events).
    pub fn id(&self) -> usize {
        self.member().id
    }

    /// Submits a task to this agent, waiting for room in its queue.
    ///
    /// # Errors
    ///
    /// `AgentStopped` if the agent's actor has stopped; the task comes back in the error.
    pub async fn submit(
        &self,
        task: A::Task,
    ) -> Result<TaskHandle<A::Output>, SubmitError<A::Task>> {
        self.submit_with(task, SubmitOptions::default()).await
    }

    /// [`submit`](Self::submit) with a deadline or without waiting.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and `Busy` if `options` asked not to wait and the queue is
    /// full.
    pub async fn submit_with(
        &self,
        task: A::Task,
        options: SubmitOptions,
    ) -> Result<TaskHandle<A::Output>, SubmitError<A::Task>> {
        let member = self.member();
        if self.pool.rt.is_closed() {
            return Err(SubmitError::new(SubmitErrorKind::SwarmStopped, task));
        }
        match member.entry.reserve(options.wait).await {
            Ok(slot) => member
                .entry
                .dispatch(self.pool.rt.next_task_id(), task, options, slot),
            Err(kind) => Err(SubmitError::new(kind, task)),
        }
    }

    /// Runs one task on this agent and waits for its result.
    ///
    /// # Errors
    ///
    /// The task's [`TaskError`]; `AgentStopped` if the agent could not take it.
    pub async fn run(&self, task: A::Task) -> Result<A::Output, TaskError> {
        match self.submit(task).await {
            Ok(handle) => handle.await,
            Err(_) => Err(TaskError::AgentStopped {
                agent: self.pool.name.clone(),
            }),
        }
    }

    /// Gives the agent back and waits until it is reset and idle again.
    pub async fn release(mut self) {
        if let Some(member) = self.member.take() {
            self.pool.take_back(member).await;
        }
    }
}

impl<A: Agent> Drop for Pooled<A> {
    fn drop(&mut self) {
        let Some(member) = self.member.take() else {
            return;
        };
        let pool = self.pool.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { pool.take_back(member).await });
            }
            // No runtime to reset it on: stop the agent rather than hand out dirty state.
            Err(_) => {
                member.entry.queue().close();
                member.actor().stop(None);
                pool.size.fetch_sub(1, Ordering::AcqRel);
                pool.slots.vacate();
            }
        }
    }
}
