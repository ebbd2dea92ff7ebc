//! A pool's bookkeeping: which agents are idle, how many are held elsewhere, and who waits.
//!
//! One lock guards both the idle list and the count of agents that are not idle (checked
//! out, being started, reset or stopped), so taking an idle agent is one lock and one
//! unlock. (A tokio `Semaphore` bounded the pool before, beside the locked list: every
//! checkout took a permit with a compare-and-swap of its own and then the lock anyway.)
//!
//! Whoever takes something gives it back exactly once: an agent with [`Slots::put_back`], a
//! hold with [`Slots::vacate`]. Each gives one parked taker a wake-up.

use std::collections::VecDeque;

use crate::sync::{Mutex, MutexGuard, Notify};

#[derive(Debug)]
pub(crate) struct Slots<M> {
    state: Mutex<State<M>>,
    max: usize,
    /// Wakes one taker parked on a full pool; all of them on close.
    freed: Notify,
}

#[derive(Debug)]
struct State<M> {
    /// The warmest (last returned) at the back, the coldest at the front.
    idle: VecDeque<M>,
    /// Agents alive or being started that are not in `idle`.
    held: usize,
    closed: bool,
}

/// What a taker got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take<M> {
    /// An idle agent, now held.
    Idle(M),
    /// No idle agent but room for one more: a hold to start it in, given back with
    /// [`Slots::vacate`] if it fails to start.
    Room,
}

/// A hold got as [`Take::Room`], to start an agent in. Dropped unfilled (the start failed,
/// or the future starting it was dropped) it is vacated.
#[derive(Debug)]
pub(crate) struct Vacancy<'a, M>(pub(crate) &'a Slots<M>);

impl<M> Vacancy<'_, M> {
    /// Fills the hold with what `start` makes, or vacates it if `start` fails.
    pub(crate) async fn fill<E>(
        self,
        start: impl std::future::Future<Output = Result<M, E>>,
    ) -> Result<M, E> {
        let member = start.await?;
        // Filled: the hold now travels with `member`.
        std::mem::forget(self);
        Ok(member)
    }
}

impl<M> Drop for Vacancy<'_, M> {
    fn drop(&mut self) {
        self.0.vacate();
    }
}

/// The pool was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl<M> Slots<M> {
    /// Room for `max` agents (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                idle: VecDeque::new(),
                held: 0,
                closed: false,
            }),
            max: max.max(1),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Nothing panics while the lock is held; a poisoned lock's state is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warmest idle agent, else room to start one, else `None` if the pool is full.
    pub(crate) fn try_take(&self) -> Result<Option<Take<M>>, Closed> {
        let mut state = self.lock();
        if state.closed {
            return Err(Closed);
        }
        if let Some(member) = state.idle.pop_back() {
            state.held += 1;
            return Ok(Some(Take::Idle(member)));
        }
        if state.held < self.max {
            state.held += 1;
            return Ok(Some(Take::Room));
        }
        Ok(None)
    }

    /// [`try_take`](Self::try_take), waiting while the pool is full.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while waiting, it holds nothing and passes on any wake-up it got.
    pub(crate) async fn take(&self) -> Result<Take<M>, Closed> {
        if let Some(took) = self.try_take()? {
            return Ok(took);
        }
        loop {
            // Registered before looking again: a give-back either comes after the
            // registration and wakes this taker, or came before the look and left something
            // to find.
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(took) = self.try_take()? {
                return Ok(took);
            }
            freed.await;
        }
    }

    /// Returns a held agent to the idle list, or hands it back if the pool has closed (the
    /// caller stops it, then [`vacate`](Self::vacate)s its hold).
    pub(crate) fn put_back(&self, member: M) -> Result<(), M> {
        let mut state = self.lock();
        if state.closed {
            return Err(member);
        }
        state.held -= 1;
        state.idle.push_back(member);
        drop(state);
        self.freed.notify_one();
        Ok(())
    }

    /// Gives back a hold whose agent is gone (stopped, or never started).
    pub(crate) fn vacate(&self) {
        self.lock().held -= 1;
        self.freed.notify_one();
    }

    /// Takes idle agents from the cold end while more than `keep` are idle and `expired`
    /// says so; each is now held, to be stopped and [`vacate`](Self::vacate)d.
    pub(crate) fn take_expired(&self, keep: usize, expired: impl Fn(&M) -> bool) -> Vec<M> {
        let mut state = self.lock();
        let mut taken = Vec::new();
        while state.idle.len() > keep && state.idle.front().is_some_and(&expired) {
            taken.extend(state.idle.pop_front());
        }
        state.held += taken.len();
        taken
    }

    /// Closes: takers get [`Closed`] from now on (parked ones are woken), and every idle
    /// agent is returned held, to be stopped and vacated.
    pub(crate) fn close(&self) -> Vec<M> {
        let mut state = self.lock();
        state.closed = true;
        let idle: Vec<M> = state.idle.drain(..).collect();
        state.held += idle.len();
        drop(state);
        self.freed.notify_waiters();
        idle
    }

    /// Whether [`close`](Self::close) has run.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Idle agents now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().idle.len()
    }
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_warmest_goes_first_and_the_pool_is_bounded() {
        let slots = Slots::new(2);
        assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
        assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
        assert_eq!(slots.try_take(), Ok(None));
        slots.put_back("cold").unwrap();
        slots.put_back("warm").unwrap();
        assert_eq!(slots.idle(), 2);
        assert_eq!(slots.try_take(), Ok(Some(Take::Idle("warm"))));
        // One idle, one held: the idle one is taken, not room for a third.
        assert_eq!(slots.try_take(), Ok(Some(Take::Idle("cold"))));
        assert_eq!(slots.try_take(), Ok(None));
        slots.vacate();
        assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
    }

    #[test]
    fn expired_agents_leave_from_the_cold_end_down_to_keep() {
        let slots = Slots::new(4);
        for _ in 0..4 {
            slots.try_take().unwrap();
        }
        for age in [9, 8, 1, 7] {
            slots.put_back(age).unwrap();
        }
        // 9 and 8 are old and at the cold end; 1 is young and stops the sweep.
        assert_eq!(slots.take_expired(1, |age| *age > 5), vec![9, 8]);
        assert_eq!(slots.idle(), 2);
        // Taken agents are held: the pool is still full until they are vacated.
        slots.try_take().unwrap();
        slots.try_take().unwrap();
        assert_eq!(slots.try_take(), Ok(None));
        slots.vacate();
        assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
    }

    #[test]
    fn close_hands_back_the_idle_and_refuses_put_backs() {
        let slots = Slots::new(3);
        for _ in 0..3 {
            slots.try_take().unwrap();
        }
        slots.put_back(1).unwrap();
        slots.put_back(2).unwrap();
        assert_eq!(slots.close(), vec![1, 2]);
        assert_eq!(slots.try_take(), Err(Closed));
        assert_eq!(slots.put_back(3), Err(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_taker_is_woken_by_a_put_back_and_by_close() {
        let slots = Arc::new(Slots::new(1));
        assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
        let taker = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        tokio::task::yield_now().await;
        slots.put_back("a").unwrap();
        // Paused clock: had the wake-up been lost, the runtime would jump to the timeout.
        let took = tokio::time::timeout(std::time::Duration::from_secs(60), taker).await;
        assert_eq!(took.unwrap().unwrap(), Ok(Take::Idle("a")));

        let parked = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        tokio::task::yield_now().await;
        assert!(slots.close().is_empty());
        let took = tokio::time::timeout(std::time::Duration::from_secs(60), parked).await;
        assert_eq!(took.unwrap().unwrap(), Err(Closed));
    }
}

/// Loom models of the hold count and its wake-ups, run with
/// `RUSTFLAGS="--cfg apiary_loom" cargo test --release -p apiary-core --lib -- loom_`.
#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_a_taker_parked_on_a_full_pool_gets_the_agent_put_back() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
            let giver = loom::thread::spawn({
                let slots = slots.clone();
                move || slots.put_back(7u8).unwrap()
            });
            assert_eq!(loom::future::block_on(slots.take()), Ok(Take::Idle(7)));
            giver.join().unwrap();
        });
    }

    #[test]
    fn loom_a_failed_start_lets_a_parked_taker_start_one() {
        loom::model(|| {
            let slots = Arc::new(Slots::<u8>::new(1));
            assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
            let failed = loom::thread::spawn({
                let slots = slots.clone();
                move || slots.vacate()
            });
            assert_eq!(loom::future::block_on(slots.take()), Ok(Take::Room));
            failed.join().unwrap();
        });
    }

    #[test]
    fn loom_two_takers_share_one_agent_in_turn() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
            slots.put_back(1u8).unwrap();
            let other = loom::thread::spawn({
                let slots = slots.clone();
                move || {
                    let took = loom::future::block_on(slots.take()).unwrap();
                    assert_eq!(took, Take::Idle(1));
                    slots.put_back(1).unwrap();
                }
            });
            let took = loom::future::block_on(slots.take()).unwrap();
            assert_eq!(took, Take::Idle(1));
            slots.put_back(1).unwrap();
            other.join().unwrap();
            assert_eq!(slots.idle(), 1);
        });
    }

    #[test]
    fn loom_close_wakes_a_parked_taker() {
        loom::model(|| {
            let slots = Arc::new(Slots::<u8>::new(1));
            assert_eq!(slots.try_take(), Ok(Some(Take::Room)));
            let closer = loom::thread::spawn({
                let slots = slots.clone();
                move || assert!(slots.close().is_empty())
            });
            assert_eq!(loom::future::block_on(slots.take()), Err(Closed));
            closer.join().unwrap();
        });
    }
}
