//! The state one task shares between its submitter, its agent and whoever ends it.
//!
//! # Who ends a task
//!
//! Each hop of a task (the task as first submitted, and each task it was handed on to) has
//! a state, and the compare-and-swap that moves a hop out of `Queued`/`Paused`/`Running` is
//! the one gate for ending that hop: its `TaskFinished` event, its metrics and its answer
//! come from whoever won it. Only the hop that holds the task answers the submitter: a hop
//! handed on ends as `Delegated` and answers nothing. Cancelling (or timing out) the task
//! ends whichever hop holds it now. The submitter's answer slot sits behind one small mutex
//! on the first hop as a second guard: it is set once, so the submitter gets exactly one
//! answer however hops race.
//!
//! The first hop is also its submitter's one-shot channel: the answer is put in place under
//! that mutex and the submitter's waker (an `AtomicWaker`) is woken, so a submission
//! allocates one object, not a task and a channel.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::task::AtomicWaker;
use tokio::time::Instant;

use super::TaskState;
use crate::events::EventBus;
use crate::queue::AgentQueue;
use crate::signal::Signal;
use crate::submit::Attachment;
use crate::sync::{AtomicU8, Mutex, MutexGuard};
use crate::telemetry::AgentMetrics;
use crate::{AgentName, EventKind, Outcome, TaskError, TaskId};

/// What a submitter receives.
pub(crate) type Answer<O> = Result<O, TaskError>;

/// The wake-up of a submitter whose answer is already in place, held back until the agent
/// has let go of the task.
#[must_use = "a submitter's wake-up must be sent"]
pub(crate) struct Reply(Option<std::task::Waker>);

impl Reply {
    pub(crate) fn send(self) {
        if let Some(waker) = self.0 {
            waker.wake();
        }
    }
}

/// What every task of one agent shares: the agent's name, the swarm's events, the agent's
/// metrics, its queue, and the way back to the agent for a task whose actor died before
/// running it.
///
/// A task holds it from its submission to its end, and both ends of that happen on the
/// submitter's thread: so a task reaches its queue and agent without moving a reference count
/// between the submitter's and the agent's threads.
pub(crate) struct TaskEnv {
    pub(crate) agent: AgentName,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) metrics: AgentMetrics,
    pub(crate) queue: AgentQueue,
    /// The agent, weakly and with its types erased (`mailbox::Redelivery`).
    pub(crate) home: Box<dyn std::any::Any + Send + Sync>,
}

pub(crate) struct TaskShared<O> {
    pub(crate) id: TaskId,
    pub(crate) env: Arc<TaskEnv>,
    replica: AtomicUsize,
    attempts: AtomicU32,
    pub(crate) deadline: Option<Instant>,
    /// What the submitter attached (shared by every hop).
    pub(crate) attachment: Option<Attachment>,
    stop: Signal,
    pub(crate) span: tracing::Span,
    state: AtomicU8,
    reply: Link<O>,
    /// The submitter's waker (first hops only): the task is its own one-shot channel, so a
    /// submission allocates one object, not two.
    waker: AtomicWaker,
    /// When the task was accepted, on `quanta`'s clock (for queue and run times only; deadlines
    /// are on tokio's clock, which tests can pause).
    submitted_at: quanta::Instant,
    /// Nanoseconds from `submitted_at` to the first start, plus one; 0 until it starts. (An
    /// atomic, not a `OnceLock<Instant>`: this is on every task's path.)
    started_after: AtomicU64,
}

enum Link<O> {
    /// The first hop: its submitter awaits the receiver of this chain's sender.
    First(Mutex<Chain<O>>),
    /// A later hop: its answer goes to the first hop's submitter.
    Hop(Arc<TaskShared<O>>),
}

struct Chain<O> {
    /// Whether the task has been answered: set once, by whoever ends it.
    answered: bool,
    /// The answer, until the submitter takes it.
    answer: Option<Answer<O>>,
    /// The hop that holds the task after it was handed on; `None`: the first hop itself.
    holder: Option<Arc<TaskShared<O>>>,
    /// The state the task ended in, once answered (what a handed-on first hop shows).
    ended: Option<TaskState>,
}

impl<O> TaskShared<O> {
    /// A task as submitted; its handle awaits the answer in it.
    pub(crate) fn new(
        id: TaskId,
        env: Arc<TaskEnv>,
        deadline: Option<Instant>,
        attachment: Option<Attachment>,
    ) -> Arc<Self> {
        let chain = Chain {
            answered: false,
            answer: None,
            holder: None,
            ended: None,
        };
        Self::build(
            id,
            env,
            deadline,
            attachment,
            Link::First(Mutex::new(chain)),
        )
    }

    /// A task that `first` was handed on to.
    pub(crate) fn hop(
        id: TaskId,
        env: Arc<TaskEnv>,
        deadline: Option<Instant>,
        first: Arc<Self>,
    ) -> Arc<Self> {
        let attachment = first.attachment.clone();
        Self::build(id, env, deadline, attachment, Link::Hop(first))
    }

    fn build(
        id: TaskId,
        env: Arc<TaskEnv>,
        deadline: Option<Instant>,
        attachment: Option<Attachment>,
        reply: Link<O>,
    ) -> Arc<Self> {
        env.metrics.accepted();
        let span = tracing::info_span!("apiary.task", task = id.0, agent = %env.agent);
        Arc::new(Self {
            id,
            env,
            replica: AtomicUsize::new(0),
            attempts: AtomicU32::new(0),
            deadline,
            attachment,
            stop: Signal::default(),
            span,
            state: AtomicU8::new(TaskState::Queued as u8),
            reply,
            waker: AtomicWaker::new(),
            submitted_at: quanta::Instant::now(),
            started_after: AtomicU64::new(0),
        })
    }

    /// The task as first submitted (this one, unless it is a hop).
    pub(crate) fn first_hop(self: &Arc<Self>) -> Arc<Self> {
        match &self.reply {
            Link::First(_) => self.clone(),
            Link::Hop(first) => first.clone(),
        }
    }

    pub(crate) fn agent(&self) -> &AgentName {
        &self.env.agent
    }

    /// This hop's state.
    pub(crate) fn state(&self) -> TaskState {
        TaskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The task's state as its submitter sees it: after a hand-off, the state of the hop
    /// holding it.
    pub(crate) fn chain_state(&self) -> TaskState {
        let own = self.state();
        if own != TaskState::Delegated {
            return own;
        }
        let Link::First(chain) = &self.reply else {
            return own;
        };
        let holder = {
            let chain = lock(chain);
            if let Some(ended) = chain.ended {
                return ended;
            }
            chain.holder.clone()
        };
        holder.map_or(own, |h| h.state())
    }

    /// The replica the task was last handed to.
    pub(crate) fn replica(&self) -> usize {
        self.replica.load(Ordering::Relaxed)
    }

    pub(crate) fn set_replica(&self, replica: usize) {
        self.replica.store(replica, Ordering::Relaxed);
    }

    /// How many times the task was run again after its agent crashed on it.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The signal raised when this hop must stop: cancelled, timed out, or handed on.
    pub(crate) fn stop_signal(&self) -> &Signal {
        &self.stop
    }

    /// Puts a waiting or crashed task back in line; false if it has ended meanwhile.
    pub(crate) fn requeue(&self) -> bool {
        [TaskState::Running, TaskState::Paused]
            .into_iter()
            .any(|from| self.transition(from, TaskState::Queued))
            || self.state() == TaskState::Queued
    }

    /// Counts a retry of a task whose agent crashed on it and puts it back in line.
    pub(crate) fn retry(&self) -> bool {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.requeue()
    }

    /// Moves a waiting task between queued and paused; false if it is no longer waiting.
    pub(crate) fn set_waiting(&self, paused: bool) -> bool {
        let (from, to) = if paused {
            (TaskState::Queued, TaskState::Paused)
        } else {
            (TaskState::Paused, TaskState::Queued)
        };
        self.transition(from, to) || self.state() == to
    }

    /// Marks the task running; false if it already ended (cancelled or timed out).
    pub(crate) fn start(&self) -> bool {
        let started = self.transition(TaskState::Queued, TaskState::Running)
            || self.transition(TaskState::Paused, TaskState::Running);
        if started {
            // A retried task keeps its first start time: `ran` spans every attempt.
            let after = u64::try_from((quanta::Instant::now() - self.submitted_at).as_nanos())
                .unwrap_or(u64::MAX - 1);
            let _ = self.started_after.compare_exchange(
                0,
                after + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            self.env.bus.publish(|| EventKind::TaskStarted {
                task: self.id,
                agent: self.env.agent.clone(),
                replica: self.replica(),
            });
        }
        started
    }

    /// Ends this hop with `outcome` and answers the submitter with `answer`, unless the hop
    /// had already ended (or been handed on). Returns whether this call ended it.
    pub(crate) fn finish(&self, outcome: Outcome, answer: Answer<O>) -> bool {
        debug_assert_ne!(outcome, Outcome::Delegated);
        if !self.close(outcome) {
            return false;
        }
        self.answer(answer, TaskState::of(outcome));
        true
    }

    /// [`finish`](Self::finish), except that the submitter's answer is handed back to be sent
    /// later, once the caller has let go of the task (its ticket, its room in the queue): the
    /// submitter then holds the last reference, and the task is freed on its thread.
    pub(crate) fn finish_later(&self, outcome: Outcome, answer: Answer<O>) -> Option<Reply> {
        debug_assert_ne!(outcome, Outcome::Delegated);
        if !self.close(outcome) {
            return None;
        }
        self.take_answer(answer, TaskState::of(outcome))
    }

    /// Ends the hop as timed out.
    pub(crate) fn time_out(&self) -> bool {
        self.finish(
            Outcome::TimedOut,
            Err(TaskError::TimedOut {
                agent: self.env.agent.clone(),
            }),
        )
    }

    /// Ends the hop because nothing will run it any more (its ticket was dropped).
    pub(crate) fn abandon(&self) -> bool {
        self.finish(
            Outcome::AgentStopped,
            Err(TaskError::AgentStopped {
                agent: self.env.agent.clone(),
            }),
        )
    }

    /// Ends the hop silently because it was never accepted (the submission failed and the
    /// task went back to the caller). False if something ended it first.
    pub(crate) fn withdraw(&self) -> bool {
        if !self.transition(TaskState::Queued, TaskState::Failed) {
            return false;
        }
        self.env.metrics.withdrawn();
        if let Link::First(chain) = &self.reply {
            lock(chain).answered = true;
        }
        true
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Moves the hop out of its live states; the one gate for ending it.
    fn close(&self, outcome: Outcome) -> bool {
        let to = TaskState::of(outcome) as u8;
        let mut now = self.state.load(Ordering::Acquire);
        loop {
            if TaskState::from_u8(now).hop_ended() {
                return false;
            }
            match self
                .state
                .compare_exchange(now, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        let ended = quanta::Instant::now() - self.submitted_at;
        let (queued, ran) = match self.started_after.load(Ordering::Relaxed) {
            0 => (ended, None),
            after => {
                let queued = std::time::Duration::from_nanos(after - 1);
                (queued, Some(ended.saturating_sub(queued)))
            }
        };
        self.env.metrics.finished(outcome, ran);
        self.env.bus.publish(|| EventKind::TaskFinished {
            task: self.id,
            agent: self.env.agent.clone(),
            replica: self.replica(),
            outcome,
            queued,
            ran: ran.unwrap_or_default(),
        });
        // Stop the agent working on a hop whose result nobody will read.
        if matches!(
            outcome,
            Outcome::Cancelled | Outcome::TimedOut | Outcome::Delegated
        ) {
            self.stop.raise();
        }
        true
    }

    /// Answers the submitter, if nobody has yet.
    fn answer(&self, answer: Answer<O>, state: TaskState) {
        if let Some(reply) = self.take_answer(answer, state) {
            reply.send();
        }
    }

    /// Puts the answer in place, if nobody has answered yet, and hands back the submitter's
    /// wake-up.
    fn take_answer(&self, answer: Answer<O>, state: TaskState) -> Option<Reply> {
        let (first, chain) = self.first();
        let holder = {
            let mut chain = lock(chain);
            if chain.answered {
                return None;
            }
            chain.answered = true;
            chain.answer = Some(answer);
            chain.ended = Some(state);
            chain.holder.take()
        };
        // The holder points back at the first hop: dropping it here breaks the cycle.
        drop(holder);
        Some(Reply(first.waker.take()))
    }

    /// The answer, if it is there (taken once).
    #[cfg(all(test, apiary_loom))]
    fn take_ready(&self) -> Option<Answer<O>> {
        let (_, chain) = self.first();
        lock(chain).answer.take()
    }

    /// The answer if it is there, for the submitter's handle.
    ///
    /// # Panics
    ///
    /// If the answer was already taken: the handle was polled after it completed.
    pub(crate) fn poll_answer(&self) -> std::task::Poll<Answer<O>> {
        let (_, chain) = self.first();
        let mut chain = lock(chain);
        match chain.answer.take() {
            Some(answer) => std::task::Poll::Ready(answer),
            None if chain.answered => panic!("a TaskHandle was polled after it completed"),
            None => std::task::Poll::Pending,
        }
    }

    /// Registers the submitter's waker, woken when the answer is in place.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.first().0.waker.register(waker);
    }

    fn first(&self) -> (&Self, &Mutex<Chain<O>>) {
        match &self.reply {
            Link::First(chain) => (self, chain),
            Link::Hop(first) => match &first.reply {
                Link::First(chain) => (first, chain),
                // Hops always point at a first hop.
                Link::Hop(_) => unreachable!("a hop points at another hop"),
            },
        }
    }

    fn transition(&self, from: TaskState, to: TaskState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl<O> TaskShared<O> {
    /// Ends the task (whichever hop holds it now) from outside: its handle was cancelled, or
    /// its deadline passed while the submitter waited. False if it had already ended.
    pub(crate) fn end_chain(&self, outcome: Outcome) -> bool {
        debug_assert!(matches!(outcome, Outcome::Cancelled | Outcome::TimedOut));
        loop {
            let hop = {
                let (_, chain) = self.first();
                let chain = lock(chain);
                if chain.answered {
                    return false;
                }
                chain.holder.clone()
            };
            let hop = hop.as_deref().unwrap_or(self);
            let error = match outcome {
                Outcome::TimedOut => TaskError::TimedOut {
                    agent: hop.env.agent.clone(),
                },
                _ => TaskError::Cancelled,
            };
            if hop.finish(outcome, Err(error)) {
                return true;
            }
            // That hop was over. If it was handed on, its successor became the holder before
            // it was marked: look again. Otherwise it ended and answered.
            if hop.state() != TaskState::Delegated {
                return false;
            }
        }
    }

    /// First step of handing this hop on to `next`: `next` becomes the task's holder. False
    /// if the task has already been answered.
    pub(crate) fn pass_to(&self, next: &Arc<Self>) -> bool {
        let (_, chain) = self.first();
        let mut chain = lock(chain);
        if chain.answered {
            return false;
        }
        chain.holder = Some(next.clone());
        true
    }

    /// Last step of a hand-off: this hop ends as `Delegated`. False if it had ended first (it
    /// was cancelled or timed out meanwhile); the caller then stops `next`.
    pub(crate) fn handed_to(&self, next: &Self) -> bool {
        if self.state() != TaskState::Running {
            return false;
        }
        self.env.bus.publish(|| EventKind::TaskDelegated {
            task: self.id,
            agent: self.env.agent.clone(),
            replica: self.replica(),
            to_task: next.id,
            to_agent: next.env.agent.clone(),
        });
        self.close(Outcome::Delegated)
    }

    /// Undoes [`pass_to`](Self::pass_to) when `next` could not be delivered: this hop holds
    /// the task again.
    pub(crate) fn take_back(self: &Arc<Self>, next: &Arc<Self>) {
        let (first, chain) = self.first();
        let mut chain = lock(chain);
        if chain.holder.as_ref().is_some_and(|h| Arc::ptr_eq(h, next)) {
            chain.holder = (!std::ptr::eq(first, &**self)).then(|| self.clone());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded sections cannot panic; a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loom models of the gate that makes a task end exactly once, run with
/// `RUSTFLAGS="--cfg apiary_loom" cargo test --release -p apiary-core --lib -- loom_`.
#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use crate::events::EventBus;
    use crate::queue::AgentQueue;
    use crate::submit::Attachment;

    fn env(agent: &str) -> Arc<TaskEnv> {
        let agent = AgentName::from(agent);
        Arc::new(TaskEnv {
            metrics: AgentMetrics::new(&agent),
            agent,
            bus: Arc::new(EventBus::new(16, Vec::new())),
            queue: AgentQueue::new(4),
            home: Box::new(()),
        })
    }

    fn answer(task: &TaskShared<u32>) -> Answer<u32> {
        let answer = task.take_ready().expect("an answer is in place");
        assert!(task.take_ready().is_none(), "taken once");
        answer
    }

    #[test]
    fn loom_finish_and_cancel_race_to_one_answer() {
        loom::model(|| {
            let task = TaskShared::<u32>::new(TaskId(1), env("a"), None, None);
            assert!(task.start());
            let done = loom::thread::spawn({
                let task = task.clone();
                move || task.finish(Outcome::Completed, Ok(7))
            });
            let cancelled = task.end_chain(Outcome::Cancelled);
            let completed = done.join().unwrap();
            assert!(completed ^ cancelled, "exactly one of them ends the task");
            match answer(&task) {
                Ok(7) => assert!(completed && task.state() == TaskState::Completed),
                Err(TaskError::Cancelled) => {
                    assert!(cancelled && task.state() == TaskState::Cancelled)
                }
                other => panic!("unexpected answer {other:?}"),
            }
        });
    }

    /// What `AgentEntry::hand_over` does once the new hop is delivered.
    fn hand_over(from: &Arc<TaskShared<u32>>, hop: &Arc<TaskShared<u32>>) -> bool {
        if !from.pass_to(hop) {
            hop.withdraw();
            return false;
        }
        if !from.handed_to(hop) {
            hop.finish(Outcome::Cancelled, Err(TaskError::Cancelled));
        }
        true
    }

    #[test]
    fn loom_a_cancel_racing_a_hand_off_ends_the_task_once_and_stops_every_hop() {
        loom::model(|| {
            let first = TaskShared::<u32>::new(TaskId(1), env("a"), None, None);
            assert!(first.start());
            let hop = TaskShared::hop(TaskId(2), env("b"), None, first.first_hop());
            let handing = loom::thread::spawn({
                let (first, hop) = (first.clone(), hop.clone());
                move || hand_over(&first, &hop)
            });
            assert!(first.end_chain(Outcome::Cancelled), "nothing else ends it");
            handing.join().unwrap();
            assert!(matches!(answer(&first), Err(TaskError::Cancelled)));
            // Neither hop is left running for nobody.
            assert!(first.state().hop_ended() && hop.state().hop_ended());
            assert_eq!(first.chain_state(), TaskState::Cancelled);
        });
    }

    #[test]
    fn loom_a_handed_on_task_answers_with_the_hop_or_the_cancel_never_both() {
        loom::model(|| {
            let first = TaskShared::<u32>::new(TaskId(1), env("a"), None, None);
            assert!(first.start());
            let hop = TaskShared::hop(TaskId(2), env("b"), None, first.first_hop());
            assert!(hand_over(&first, &hop));
            assert_eq!(first.state(), TaskState::Delegated);
            let working = loom::thread::spawn({
                let hop = hop.clone();
                move || hop.start() && hop.finish(Outcome::Completed, Ok(9))
            });
            let cancelled = first.end_chain(Outcome::Cancelled);
            let completed = working.join().unwrap();
            assert!(completed ^ cancelled);
            match answer(&first) {
                Ok(9) => assert!(completed),
                Err(TaskError::Cancelled) => assert!(cancelled),
                other => panic!("unexpected answer {other:?}"),
            }
            assert!(hop.state().is_terminal());
            assert!(first.chain_state().is_terminal());
        });
    }
}
