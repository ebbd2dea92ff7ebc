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
//! location.) The loom models below check exactly this code.

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

/// What became of one waiting item offered to the replicas.
pub(crate) enum Step<E, R = E> {
    /// A replica took it, or it needed no taker any more (it ended while it waited).
    Taken,
    /// No replica is free now; one is busy or coming back, and the item may wait for it.
    NoneFree(E),
    /// No replica will ever take it (or any other item): it goes back to the caller, with
    /// the reason.
    Refused(R),
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

    /// Offers waiting items, oldest first, while `offer` finds takers. Called by whoever may
    /// have made room: a replica that came free, a submitter that has just parked, a replica
    /// back from a restart.
    ///
    /// When an item finds no taker it goes back to the head, and the line is left to the
    /// next replica that comes free - unless `any_free` (read after the item is back) sees
    /// one already, which then gets another offer. (So `any_free` must not count a replica
    /// that would refuse: each retry is then either progress or another party's claim, and
    /// that party reads the line again when it gives its claim back.)
    ///
    /// Returns the refused item, if `offer` refused one: the rest is still in line.
    pub(crate) fn pump<R>(
        &self,
        mut offer: impl FnMut(E) -> Step<E, R>,
        any_free: impl Fn() -> bool,
    ) -> Option<R> {
        while self.has_waiting() {
            let item = self.pop_front()?;
            match offer(item) {
                Step::Taken => {}
                Step::NoneFree(item) => {
                    self.push_front(item);
                    if !any_free() {
                        return None;
                    }
                }
                Step::Refused(refused) => return Some(refused),
            }
        }
        None
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

/// Whether a replica is unclaimed now.
pub(crate) fn is_unclaimed(load: &AtomicUsize) -> bool {
    load.load(Ordering::SeqCst) == 0
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;

    #[test]
    fn items_leave_in_order_and_a_refusal_comes_back() {
        let line = WaitLine::new();
        for n in 1..=4 {
            line.push_back(n);
        }
        let mut taken = Vec::new();
        let refused = line.pump(
            |n| {
                if n == 3 {
                    Step::Refused(n)
                } else {
                    taken.push(n);
                    Step::Taken
                }
            },
            || true,
        );
        assert_eq!((taken, refused), (vec![1, 2], Some(3)));
        assert_eq!(line.drain(), vec![4]);
        assert!(!line.has_waiting());
    }

    #[test]
    fn an_item_without_a_taker_stays_at_the_head() {
        let line = WaitLine::new();
        line.push_back(1);
        line.push_back(2);
        let offers = std::cell::Cell::new(0);
        let refused: Option<u32> = line.pump(
            |n| {
                offers.set(offers.get() + 1);
                Step::NoneFree(n)
            },
            || offers.get() < 3,
        );
        assert!(refused.is_none());
        assert_eq!(offers.get(), 3, "offered again while a replica looked free");
        assert_eq!(line.drain(), vec![1, 2]);
    }
}

/// Loom models of the hand-over between a submitter and a replica coming free, run with
/// `RUSTFLAGS="--cfg apiary_loom" cargo test --release -p apiary-core --lib -- loom_`.
#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// One replica: offering claims it, and counts what it took.
    fn offer_to<'a>(
        load: &'a AtomicUsize,
        taken: &'a AtomicUsize,
    ) -> impl FnMut(u32) -> Step<u32> + 'a {
        move |n| {
            if try_claim(load) {
                taken.fetch_add(1, Ordering::SeqCst);
                // Runs at once and comes free again.
                release(load);
                Step::Taken
            } else {
                Step::NoneFree(n)
            }
        }
    }

    #[test]
    fn loom_a_parked_task_is_never_stranded_beside_a_free_replica() {
        loom::model(|| {
            let line = Arc::new(WaitLine::new());
            // The replica is busy with a task of its own.
            let load = Arc::new(AtomicUsize::new(1));
            let taken = Arc::new(AtomicUsize::new(0));
            let replica = loom::thread::spawn({
                let (line, load, taken) = (line.clone(), load.clone(), taken.clone());
                move || {
                    // Its task ends: it comes free, then looks at the line.
                    release(&load);
                    if line.has_waiting() {
                        line.pump(offer_to(&load, &taken), || is_unclaimed(&load));
                    }
                }
            });
            // The submitter: no replica free, so it parks its task and looks again.
            if try_claim(&load) {
                taken.fetch_add(1, Ordering::SeqCst);
                release(&load);
            } else {
                line.push_back(7);
                line.pump(offer_to(&load, &taken), || is_unclaimed(&load));
            }
            replica.join().unwrap();
            assert_eq!(taken.load(Ordering::SeqCst), 1, "the task was run once");
            assert!(!line.has_waiting(), "nothing left in line");
        });
    }

    #[test]
    fn loom_two_submitters_and_a_replica_hand_out_every_task_once() {
        // Three threads: bounded to three preemptions (as loom advises for larger models),
        // which covers every interleaving of the two hand-overs this protects.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let line = Arc::new(WaitLine::new());
            let load = Arc::new(AtomicUsize::new(1));
            let taken = Arc::new(AtomicUsize::new(0));
            let submit =
                |line: Arc<WaitLine<u32>>, load: Arc<AtomicUsize>, taken: Arc<AtomicUsize>| {
                    move || {
                        line.push_back(1);
                        line.pump(offer_to(&load, &taken), || is_unclaimed(&load));
                    }
                };
            let other = loom::thread::spawn(submit(line.clone(), load.clone(), taken.clone()));
            let replica = loom::thread::spawn({
                let (line, load, taken) = (line.clone(), load.clone(), taken.clone());
                move || {
                    release(&load);
                    if line.has_waiting() {
                        line.pump(offer_to(&load, &taken), || is_unclaimed(&load));
                    }
                }
            });
            submit(line.clone(), load.clone(), taken.clone())();
            other.join().unwrap();
            replica.join().unwrap();
            assert_eq!(taken.load(Ordering::SeqCst), 2);
            assert!(!line.has_waiting());
        });
    }
}
