//! Group commit: one thread stores the memory's writes, all those queued while the previous
//! commit ran in one durable transaction, so writers that arrive together share one fsync.
//!
//! The actor sends each write with what to do once it is stored (`P`: the reply, the RAM
//! change). The thread commits, hands every write back with its result in order, and wakes
//! the actor, which applies them to RAM and only then replies: an acknowledgement never
//! precedes its fsync, and a read never sees a write that is not yet on disk.
//!
//! After a failed commit, every later write fails too: what the failed transaction left on
//! disk is not known, and writes computed against it must not land on top of it.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
};

use crate::{
    store::{Store, Write},
    MemoryError,
};

/// The most writes one transaction takes, so that a burst is acknowledged in slices rather
/// than all after one long commit.
const MAX_BATCH: usize = 4096;

/// A write once its transaction ended.
pub(crate) struct Committed<P> {
    /// What the actor sent with the write.
    pub(crate) then: P,
    /// The pattern generation after the write, or why it was not stored.
    pub(crate) result: Result<u64, MemoryError>,
}

/// Counts of the writer's work since start.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Writes stored.
    pub(crate) writes: AtomicU64,
    /// Transactions committed (one fsync each).
    pub(crate) commits: AtomicU64,
}

/// The writer thread and its two channels.
pub(crate) struct Writer<P> {
    queue: Option<mpsc::Sender<(Write, P)>>,
    done: mpsc::Receiver<Committed<P>>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
}

impl<P> std::fmt::Debug for Writer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("counts", &self.counts)
            .finish()
    }
}

impl<P: Send + 'static> Writer<P> {
    /// Starts the thread; `wake` is called after each transaction, with its writes ready in
    /// [`committed`](Self::committed).
    pub(crate) fn start(
        store: Arc<Store>,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Self, MemoryError> {
        let (queue, queued) = mpsc::channel::<(Write, P)>();
        let (finished, done) = mpsc::channel();
        let counts = Arc::new(Counts::default());
        let thread = std::thread::Builder::new()
            .name("apiary-memory-writer".into())
            .spawn({
                let counts = Arc::clone(&counts);
                move || run(&store, &queued, &finished, &counts, wake)
            })
            .map_err(|source| MemoryError::Io {
                path: "apiary-memory-writer thread".into(),
                source,
            })?;
        Ok(Self {
            queue: Some(queue),
            done,
            thread: Some(thread),
            counts,
        })
    }

    /// Queues `write`; gives it back if the thread is gone.
    pub(crate) fn send(&self, write: Write, then: P) -> Result<(), P> {
        match &self.queue {
            Some(queue) => queue.send((write, then)).map_err(|e| e.0 .1),
            None => Err(then),
        }
    }

    /// The writes whose transaction has ended, in the order they were sent.
    pub(crate) fn committed(&self) -> impl Iterator<Item = Committed<P>> + '_ {
        self.done.try_iter()
    }

    /// Writes stored and transactions committed so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.writes.load(Ordering::Relaxed),
            self.counts.commits.load(Ordering::Relaxed),
        )
    }

    /// Closes the queue and waits for the thread to store what it holds (blocking); returns
    /// the writes not yet taken through [`committed`](Self::committed).
    pub(crate) fn finish(mut self) -> Vec<Committed<P>> {
        self.close();
        self.done.try_iter().collect()
    }

    fn close(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // The thread catches the store's panics itself; a panic here would be its own bug.
            let _ = thread.join();
        }
    }
}

impl<P> Drop for Writer<P> {
    fn drop(&mut self) {
        // Dropping the queue ends the thread once it has stored what it holds.
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run<P>(
    store: &Store,
    queued: &mpsc::Receiver<(Write, P)>,
    finished: &mpsc::Sender<Committed<P>>,
    counts: &Counts,
    wake: impl Fn(),
) {
    let mut failed: Option<String> = None;
    while let Ok(first) = queued.recv() {
        let mut batch = vec![first];
        batch.extend(queued.try_iter().take(MAX_BATCH - 1));
        let results: Vec<Result<u64, MemoryError>> = match &failed {
            Some(reason) => batch
                .iter()
                .map(|_| {
                    Err(write_failed(
                        store,
                        format!("an earlier commit failed: {reason}"),
                    ))
                })
                .collect(),
            None => {
                // redb asserts on some damage instead of returning an error: caught, it fails
                // the batch like any other failed commit.
                let stored = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    store.apply_batch(batch.iter().map(|(write, _)| write))
                }))
                .unwrap_or_else(|panic| {
                    Err(MemoryError::Panicked {
                        what: "store commit",
                        reason: panic_message(&panic),
                    })
                });
                match stored {
                    Ok(after) => {
                        counts.commits.fetch_add(1, Ordering::Relaxed);
                        counts
                            .writes
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        after.into_iter().map(Ok).collect()
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        tracing::error!(error = %e, "memory: a commit failed; the memory takes no more writes until reopened");
                        failed = Some(reason.clone());
                        batch
                            .iter()
                            .map(|_| Err(write_failed(store, reason.clone())))
                            .collect()
                    }
                }
            }
        };
        for ((_, then), result) in batch.into_iter().zip(results) {
            // The actor drains this channel, at the latest when it stops.
            let _ = finished.send(Committed { then, result });
        }
        wake();
    }
}

fn write_failed(store: &Store, reason: String) -> MemoryError {
    MemoryError::WriteFailed {
        path: store.path().to_owned(),
        reason,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
