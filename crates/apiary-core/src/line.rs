//! The waiting line of an agent with several replicas: tasks that no replica can take now,
//! in arrival order, handed out as replicas come free.
//!
//! Replicas are claimed one task at a time (a load counter swapped from 0 to 1), so two
//! parties must never miss each other: a submitter that finds every replica busy and parks
//! its task, and a replica that comes free at the same moment and finds the line empty.
//! Each writes first and reads second - the submitter puts its task in line and then looks
//! for a free replica; the replica gives its claim back and then looks at the line - with a
//! sequentially consistent fence between the write and the read, so at least one of them
//! sees the other and hands the task out. (A fence, not just `SeqCst` accesses: that is the
//! form the C++ memory model, and loom, guarantee for a store followed by a load of another
//! location.)
//!
//! Order: whoever hands out the head of the line claims a free replica *before* taking the
//! head out. Were it the other way round, a submitter could find the line empty while the
//! head is out being offered, claim the one free replica, and start ahead of it. And a new
//! task skips the line only while nothing waits in it.
//!
//! The loom models below check exactly this code.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::sync::{fence, AtomicUsize, Mutex, MutexGuard};

/// Tasks (of type `E`, with whatever rides along) waiting for a free replica.
#[derive(Debug)]
pub(crate) struct WaitLine<E> {
    items: Mutex<VecDeque<E>>,
    /// How many items wait, readable without the lock; written under it.
    waiting: AtomicUsize,
}

/// What a search for a free replica found.
pub(crate) enum Claim<C, R> {
    /// A replica, claimed for one item.
    Got(C),
    /// None is free now; one that is busy or coming back reads the line once it is.
    Later,
    /// None will ever take an item, for this reason.
    Never(R),
}

/// What became of an item handed to a claimed replica.
pub(crate) enum Handed<C, E> {
    /// The replica has it.
    Taken,
    /// The item needed no taker (it ended while it waited); the claim is still held.
    Unused(C),
    /// The replica could not take it after all (its actor had just died) and its claim is
    /// given back: the item goes back to the head of the line.
    Back(E),
}

/// The replicas a line hands its items to.
pub(crate) trait Takers<E> {
    /// A claimed replica.
    type Claim;
    /// Why no replica will ever take an item.
    type Refusal;
    /// Claims a free replica, if there is one.
    fn claim(&self) -> Claim<Self::Claim, Self::Refusal>;
    /// Hands `item` to the claimed replica.
    fn hand(&self, claim: Self::Claim, item: E) -> Handed<Self::Claim, E>;
    /// Gives a claim back unused (with [`release`], so the line is read after it).
    fn unclaim(&self, claim: Self::Claim);
}

/// What became of a new item.
pub(crate) enum Submitted<E, R> {
    /// A replica took it, or it waits in line (and `refused`, if some, is why every item
    /// waiting in line must end: no replica will take them).
    Accepted {
        /// Set when no replica will ever take what waits in the line.
        refused: Option<R>,
    },
    /// No replica will ever take it: it goes back to the caller, with the reason.
    Refused(E, R),
}

impl<E> WaitLine<E> {
    pub(crate) fn new() -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<E>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anything waits (what a replica that has just come free reads).
    pub(crate) fn has_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Puts an item at the end of the line.
    pub(crate) fn push_back(&self, item: E) {
        {
            let mut items = self.lock();
            items.push_back(item);
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        // Before the caller looks for a free replica.
        fence(Ordering::SeqCst);
    }

    /// Puts an item back at the head of the line (it was first, and found no taker).
    fn push_front(&self, item: E) {
        {
            let mut items = self.lock();
            items.push_front(item);
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    fn pop_front(&self) -> Option<E> {
        let mut items = self.lock();
        let item = items.pop_front();
        if item.is_some() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        item
    }

    /// Takes every waiting item out, in order.
    pub(crate) fn drain(&self) -> Vec<E> {
        let mut items = self.lock();
        self.waiting.fetch_sub(items.len(), Ordering::SeqCst);
        items.drain(..).collect()
    }

    /// A new item: straight to a free replica if nothing waits ahead of it, else into the
    /// line - after `park`, which readies it for waiting or ends it (`None`) - and then
    /// hands out what it can.
    pub(crate) fn submit<K: Takers<E>>(
        &self,
        item: E,
        takers: &K,
        park: impl FnOnce(E) -> Option<E>,
    ) -> Submitted<E, K::Refusal> {
        let item = if self.has_waiting() {
            item
        } else {
            match takers.claim() {
                Claim::Got(claim) => match takers.hand(claim, item) {
                    Handed::Taken => return Submitted::Accepted { refused: None },
                    Handed::Unused(claim) => {
                        takers.unclaim(claim);
                        return Submitted::Accepted {
                            refused: self.pump(takers),
                        };
                    }
                    Handed::Back(item) => item,
                },
                Claim::Later => item,
                Claim::Never(refusal) => return Submitted::Refused(item, refusal),
            }
        };
        if let Some(item) = park(item) {
            self.push_back(item);
        }
        Submitted::Accepted {
            refused: self.pump(takers),
        }
    }

    /// Hands waiting items, oldest first, to replicas as long as one is free. Called by
    /// whoever may have made room: a replica that came free, a submitter that has just
    /// parked, a replica back from a restart.
    ///
    /// Each round claims a replica first and takes the head second (see the module docs);
    /// a claim left unused is given back and the line read again after it, so an item
    /// parked meanwhile by a submitter that saw the claim is not stranded.
    ///
    /// Returns why no replica will take any item, if the search found that: the items are
    /// still in line, for the caller to end.
    pub(crate) fn pump<K: Takers<E>>(&self, takers: &K) -> Option<K::Refusal> {
        let mut held = None;
        loop {
            if !self.has_waiting() {
                let claim = held.take()?;
                takers.unclaim(claim);
                continue;
            }
            let claim = match held.take() {
                Some(claim) => claim,
                None => match takers.claim() {
                    Claim::Got(claim) => claim,
                    Claim::Later => return None,
                    Claim::Never(refusal) => return Some(refusal),
                },
            };
            match self.pop_front() {
                None => held = Some(claim),
                Some(item) => match takers.hand(claim, item) {
                    Handed::Taken => {}
                    Handed::Unused(claim) => held = Some(claim),
                    Handed::Back(item) => self.push_front(item),
                },
            }
        }
    }
}

/// Claims a replica whose load counter is 0 (it takes one task at a time).
pub(crate) fn try_claim(load: &AtomicUsize) -> bool {
    load.compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
}

/// Gives a claim back (the replica is free); read the line after this.
pub(crate) fn release(load: &AtomicUsize) {
    load.fetch_sub(1, Ordering::SeqCst);
    // Before the caller looks at the line.
    fence(Ordering::SeqCst);
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// Replicas as load counters; `refuse` makes every search answer "never".
    struct Pool {
        loads: Vec<AtomicUsize>,
        taken: RefCell<Vec<u32>>,
        refuse: Cell<bool>,
    }

    impl Pool {
        fn new(busy: &[bool]) -> Self {
            Self {
                loads: busy.iter().map(|&b| AtomicUsize::new(b.into())).collect(),
                taken: RefCell::default(),
                refuse: Cell::new(false),
            }
        }
    }

    impl Takers<u32> for Pool {
        type Claim = usize;
        type Refusal = &'static str;

        fn claim(&self) -> Claim<usize, &'static str> {
            if self.refuse.get() {
                return Claim::Never("gone");
            }
            match self.loads.iter().position(try_claim) {
                Some(i) => Claim::Got(i),
                None => Claim::Later,
            }
        }

        fn hand(&self, claim: usize, item: u32) -> Handed<usize, u32> {
            if item == 0 {
                // Ended while it waited.
                return Handed::Unused(claim);
            }
            // Busy with it until the test frees the replica.
            self.taken.borrow_mut().push(item);
            Handed::Taken
        }

        fn unclaim(&self, claim: usize) {
            release(&self.loads[claim]);
        }
    }

    #[test]
    fn items_wait_while_every_replica_is_busy_and_leave_in_order() {
        let line = WaitLine::new();
        let pool = Pool::new(&[true, true]);
        for n in 1..=4 {
            assert!(matches!(
                line.submit(n, &pool, Some),
                Submitted::Accepted { refused: None }
            ));
        }
        assert!(pool.taken.borrow().is_empty());
        release(&pool.loads[1]);
        assert!(line.pump(&pool).is_none());
        assert_eq!(*pool.taken.borrow(), [1]);
        release(&pool.loads[0]);
        release(&pool.loads[1]);
        assert!(line.pump(&pool).is_none());
        assert_eq!(*pool.taken.borrow(), [1, 2, 3]);
        assert_eq!(line.drain(), [4]);
    }

    #[test]
    fn a_new_item_goes_straight_to_a_free_replica_only_when_none_waits() {
        let line = WaitLine::new();
        let pool = Pool::new(&[false]);
        assert!(matches!(
            line.submit(1, &pool, Some),
            Submitted::Accepted { refused: None }
        ));
        assert_eq!(*pool.taken.borrow(), [1]);
        // Busy now: 2 waits, and 3 waits behind it.
        line.submit(2, &pool, Some);
        line.submit(3, &pool, Some);
        release(&pool.loads[0]);
        line.pump(&pool);
        assert_eq!(*pool.taken.borrow(), [1, 2]);
    }

    #[test]
    fn an_ended_item_gives_its_claim_to_the_next() {
        let line = WaitLine::new();
        let pool = Pool::new(&[true]);
        line.submit(0, &pool, Some);
        line.submit(5, &pool, Some);
        release(&pool.loads[0]);
        line.pump(&pool);
        assert_eq!(*pool.taken.borrow(), [5]);
        assert!(!line.has_waiting());
    }

    #[test]
    fn a_refusal_leaves_the_items_for_the_caller() {
        let line = WaitLine::new();
        let pool = Pool::new(&[true]);
        line.submit(1, &pool, Some);
        pool.refuse.set(true);
        assert!(matches!(
            line.submit(2, &pool, Some),
            Submitted::Accepted {
                refused: Some("gone")
            }
        ));
        assert_eq!(line.drain(), [1, 2]);
        assert!(matches!(
            line.submit(3, &pool, Some),
            Submitted::Refused(3, "gone")
        ));
        // `park` may end an item instead of parking it.
        pool.refuse.set(false);
        assert!(matches!(
            line.submit(4, &pool, |_| None),
            Submitted::Accepted { refused: None }
        ));
        assert!(!line.has_waiting());
    }
}

/// Loom models of the hand-over between submitters and a replica coming free, run with
/// `RUSTFLAGS="--cfg apiary_loom" cargo test --release -p apiary-core --lib -- loom_`.
#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Mutex};

    /// One replica that runs a task at once and then, like an agent's actor, comes free
    /// and reads the line; or, with `stays_busy`, keeps the first task it gets.
    struct Replica {
        line: Arc<WaitLine<u32>>,
        load: AtomicUsize,
        taken: Mutex<Vec<u32>>,
        stays_busy: bool,
    }

    impl Replica {
        /// A replica busy with a task of its own, and its (empty) line.
        fn busy(stays_busy: bool) -> Arc<Self> {
            Arc::new(Self {
                line: Arc::new(WaitLine::new()),
                load: AtomicUsize::new(1),
                taken: Mutex::new(Vec::new()),
                stays_busy,
            })
        }

        /// Its task ends: it comes free, then reads the line.
        fn come_free(&self) {
            release(&self.load);
            if self.line.has_waiting() {
                self.line.pump(self);
            }
        }

        fn taken(&self) -> Vec<u32> {
            self.taken.lock().unwrap().clone()
        }
    }

    impl Takers<u32> for Replica {
        type Claim = ();
        type Refusal = ();

        fn claim(&self) -> Claim<(), ()> {
            if try_claim(&self.load) {
                Claim::Got(())
            } else {
                Claim::Later
            }
        }

        fn hand(&self, (): (), item: u32) -> Handed<(), u32> {
            self.taken.lock().unwrap().push(item);
            if !self.stays_busy {
                self.come_free();
            }
            Handed::Taken
        }

        fn unclaim(&self, (): ()) {
            release(&self.load);
        }
    }

    #[test]
    fn loom_a_parked_task_is_never_stranded_beside_a_free_replica() {
        loom::model(|| {
            let replica = Replica::busy(false);
            let freed = loom::thread::spawn({
                let replica = replica.clone();
                move || replica.come_free()
            });
            replica.line.submit(7, &*replica, Some);
            freed.join().unwrap();
            assert_eq!(replica.taken(), [7], "the task was run once");
            assert!(!replica.line.has_waiting(), "nothing left in line");
        });
    }

    #[test]
    fn loom_two_submitters_and_a_replica_hand_out_every_task_once() {
        // Three threads: bounded to three preemptions (as loom advises for larger models),
        // which covers every interleaving of the two hand-overs this protects.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let replica = Replica::busy(false);
            let other = loom::thread::spawn({
                let replica = replica.clone();
                move || {
                    replica.line.submit(2, &*replica, Some);
                }
            });
            let freed = loom::thread::spawn({
                let replica = replica.clone();
                move || replica.come_free()
            });
            replica.line.submit(1, &*replica, Some);
            other.join().unwrap();
            freed.join().unwrap();
            let mut taken = replica.taken();
            taken.sort_unstable();
            assert_eq!(taken, [1, 2]);
            assert!(!replica.line.has_waiting());
        });
    }

    #[test]
    fn loom_a_new_task_never_starts_ahead_of_the_head_of_the_line() {
        loom::model(|| {
            // Task 1 waits for the busy replica, which keeps the next task it gets.
            let replica = Replica::busy(true);
            replica.line.submit(1, &*replica, Some);
            let freed = loom::thread::spawn({
                let replica = replica.clone();
                move || replica.come_free()
            });
            replica.line.submit(2, &*replica, Some);
            freed.join().unwrap();
            assert_eq!(replica.taken(), [1], "task 2 overtook task 1");
            assert_eq!(replica.line.drain(), [2]);
        });
    }
}
