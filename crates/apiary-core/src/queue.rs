//! The bound on one agent's work: at most `capacity` tasks queued or running across its
//! replicas. ractor's mailboxes are unbounded; this is the backpressure in front of them.
//!
//! A submitter takes a [`Slot`] with one compare-and-swap on a counter; the task's ticket
//! gives it back with one subtraction and a `Notify::notify_one`, which wakes a submitter
//! parked on a full queue (or, with none parked, keeps the wake-up for the next). (A tokio `Semaphore` did this job
//! before; it locks a mutex on every release, and its permits hold an `Arc` whose count
//! bounced between the submitter's and the agent's threads on every task.)

use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, AtomicUsize, Notify};

/// The counter's top bit: the queue refuses new tasks.
const CLOSED: usize = 1 << (usize::BITS - 1);

#[derive(Debug)]
pub(crate) struct AgentQueue {
    /// Tasks queued or running, and the `CLOSED` bit.
    state: AtomicUsize,
    capacity: usize,
    paused: AtomicBool,
    /// Wakes a submitter parked for room.
    room: Notify,
    /// Wakes callers of `wait_idle` when the last task leaves.
    idle: Notify,
}

/// Room for one task in an agent's queue, held by the task until it ends. Not `Clone`, and
/// only the queue can make one: each is given back exactly once, with [`AgentQueue::release`].
#[derive(Debug)]
#[must_use = "a slot must be given back with `AgentQueue::release`"]
pub(crate) struct Slot(());

/// The queue was closed: the agent takes no more tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Why `try_reserve` found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    Full,
    Closed,
}

impl AgentQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: AtomicUsize::new(0),
            capacity,
            paused: AtomicBool::new(false),
            room: Notify::new(),
            idle: Notify::new(),
        }
    }

    /// Room for one task, if there is some now.
    pub(crate) fn try_reserve(&self) -> Result<Slot, NoRoom> {
        let mut now = self.state.load(Ordering::SeqCst);
        loop {
            if now & CLOSED != 0 {
                return Err(NoRoom::Closed);
            }
            if now >= self.capacity {
                return Err(NoRoom::Full);
            }
            match self
                .state
                .compare_exchange_weak(now, now + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(Slot(())),
                Err(seen) => now = seen,
            }
        }
    }

    /// Waits for room for one task.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while waiting, it holds no room and passes on any wake-up it got.
    pub(crate) async fn reserve(&self) -> Result<Slot, Closed> {
        match self.try_reserve() {
            Ok(slot) => return Ok(slot),
            Err(NoRoom::Closed) => return Err(Closed),
            Err(NoRoom::Full) => {}
        }
        loop {
            // Registered before looking again: a release either comes after the registration
            // and wakes this waiter, or came before the look and left room to find.
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            match self.try_reserve() {
                Ok(slot) => return Ok(slot),
                Err(NoRoom::Closed) => return Err(Closed),
                Err(NoRoom::Full) => room.await,
            }
        }
    }

    /// Gives a task's room back.
    pub(crate) fn release(&self, slot: Slot) {
        let Slot(()) = slot;
        let before = self.state.fetch_sub(1, Ordering::SeqCst);
        // Unconditional: with nobody parked, `Notify` only keeps one wake-up for the next
        // waiter (a compare-and-swap on a line only releases write), and a count of waiters
        // checked here would need a store-load order between two atomics to be safe.
        self.room.notify_one();
        if before & !CLOSED == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until, at some instant, no task is queued or running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.depth() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Refuses all further tasks, then waits until no task is queued or running.
    pub(crate) async fn drain_and_close(&self) {
        self.close();
        self.wait_idle().await;
    }

    /// Refuses all further tasks at once; parked submitters get `Closed`.
    pub(crate) fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Tasks queued or running now.
    pub(crate) fn depth(&self) -> usize {
        self.state.load(Ordering::SeqCst) & !CLOSED
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A submitter waiting for room in `q`, on a task of its own.
    fn waiter(q: &Arc<AgentQueue>) -> tokio::task::JoinHandle<Result<Slot, Closed>> {
        let q = q.clone();
        tokio::spawn(async move { q.reserve().await })
    }

    #[test]
    fn room_is_counted_and_given_back() {
        let q = AgentQueue::new(2);
        let a = q.try_reserve().unwrap();
        let b = q.try_reserve().unwrap();
        assert_eq!(q.try_reserve().unwrap_err(), NoRoom::Full);
        assert_eq!(q.depth(), 2);
        q.release(a);
        assert_eq!(q.depth(), 1);
        let c = q.try_reserve().unwrap();
        q.close();
        assert_eq!(q.try_reserve().unwrap_err(), NoRoom::Closed);
        q.release(b);
        q.release(c);
        assert_eq!(q.depth(), 0);
    }

    // Paused clock: a wait that was never woken would let the runtime jump to the timeout.
    #[tokio::test(start_paused = true)]
    async fn a_parked_submitter_gets_the_room_given_back() {
        let q = Arc::new(AgentQueue::new(1));
        let held = q.try_reserve().unwrap();
        let waiter = waiter(&q);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!waiter.is_finished(), "no room: it waits");
        q.release(held);
        let slot = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the release woke it")
            .unwrap()
            .unwrap();
        assert_eq!(q.depth(), 1);
        q.release(slot);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_wakes_parked_submitters_with_closed_and_idle_waits_for_the_last() {
        let q = Arc::new(AgentQueue::new(1));
        let held = q.try_reserve().unwrap();
        let waiter = waiter(&q);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let drained = tokio::spawn({
            let q = q.clone();
            async move { q.drain_and_close().await }
        });
        let refused = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the close woke it")
            .unwrap();
        assert_eq!(refused.unwrap_err(), Closed);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!drained.is_finished(), "one task is still running");
        q.release(held);
        tokio::time::timeout(Duration::from_secs(1), drained)
            .await
            .expect("the last release ended the drain")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_passes_its_wake_up_on() {
        let q = Arc::new(AgentQueue::new(1));
        let held = q.try_reserve().unwrap();
        let first = waiter(&q);
        let second = waiter(&q);
        tokio::time::sleep(Duration::from_millis(1)).await;
        first.abort();
        let _ = first.await;
        q.release(held);
        let slot = tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .expect("the wake-up reached the remaining waiter")
            .unwrap()
            .unwrap();
        q.release(slot);
        assert_eq!(q.depth(), 0);
    }
}

/// Loom models of the room count and its wake-ups, run with
/// `RUSTFLAGS="--cfg apiary_loom" cargo test --release -p apiary-core --lib -- loom_`.
#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_a_waiting_submitter_is_never_left_parked() {
        loom::model(|| {
            let q = Arc::new(AgentQueue::new(1));
            let held = q.try_reserve().unwrap();
            let releaser = loom::thread::spawn({
                let q = q.clone();
                move || q.release(held)
            });
            // Parks if the release has not happened yet; must be woken if it has to.
            let slot = loom::future::block_on(q.reserve()).unwrap();
            releaser.join().unwrap();
            assert_eq!(q.depth(), 1);
            q.release(slot);
            assert_eq!(q.depth(), 0);
        });
    }

    #[test]
    fn loom_two_submitters_share_one_room_in_turn() {
        loom::model(|| {
            let q = Arc::new(AgentQueue::new(1));
            let other = loom::thread::spawn({
                let q = q.clone();
                move || {
                    let slot = loom::future::block_on(q.reserve()).unwrap();
                    q.release(slot);
                }
            });
            let slot = loom::future::block_on(q.reserve()).unwrap();
            q.release(slot);
            other.join().unwrap();
            assert_eq!(q.depth(), 0);
        });
    }

    #[test]
    fn loom_the_room_never_exceeds_capacity() {
        loom::model(|| {
            let q = Arc::new(AgentQueue::new(1));
            let other = loom::thread::spawn({
                let q = q.clone();
                move || q.try_reserve().ok()
            });
            let mine = q.try_reserve().ok();
            let theirs = other.join().unwrap();
            assert!(
                mine.is_some() ^ theirs.is_some(),
                "exactly one gets the room"
            );
            for slot in mine.into_iter().chain(theirs) {
                q.release(slot);
            }
        });
    }
}
