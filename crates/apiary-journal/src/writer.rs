//! Group commit: one thread writes the journal; every record that arrives while it commits
//! goes into its next transaction, so concurrent submissions share one fsync.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::record::now_ms;
use crate::store::{Store, Write};
use crate::JournalError;

/// The most records one transaction takes (a bound on the latency of the first of them).
const MAX_BATCH: usize = 4096;

/// Records acknowledged together once durable, or a request to compact now.
struct Batch {
    writes: Vec<Write>,
    /// Remove finished tasks beyond the retention after this batch.
    compact: bool,
    ack: oneshot::Sender<Result<(), String>>,
}

/// What the writer has done since the journal opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Durable transactions committed (one fsync each).
    pub transactions: u64,
    /// Records they held.
    pub records: u64,
}

/// When finished tasks are removed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Retention {
    /// Keep at most this many finished tasks.
    pub(crate) keep: Option<usize>,
    /// Remove finished tasks older than this.
    pub(crate) age: Option<Duration>,
}

/// The handle to the writer thread. Dropping it lets the thread finish what it has and
/// waits for it, so the file is closed when the journal is.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<thread::JoinHandle<()>>,
    store: Arc<Store>,
    stats: Arc<std::sync::Mutex<WriterStats>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // At most one transaction is still being written.
            let _ = thread.join();
        }
    }
}

impl Writer {
    pub(crate) fn start(store: Arc<Store>, retention: Retention) -> Result<Self, JournalError> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let thread_store = store.clone();
        let stats = Arc::new(std::sync::Mutex::new(WriterStats::default()));
        let thread_stats = stats.clone();
        let thread = thread::Builder::new()
            .name("apiary-journal".into())
            .spawn(move || run(&thread_store, &rx, retention, &thread_stats))
            .map_err(|source| JournalError::Io {
                path: store.path.clone(),
                source,
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            store,
            stats,
        })
    }

    /// Writes the records durably; returns once they are on disk.
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<(), JournalError> {
        self.send(writes, false).await
    }

    /// Removes finished tasks beyond the retention now, after what is already queued.
    pub(crate) async fn compact(&self) -> Result<(), JournalError> {
        self.send(Vec::new(), true).await
    }

    pub(crate) fn stats(&self) -> WriterStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, writes: Vec<Write>, compact: bool) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        let closed = || JournalError::Closed {
            path: self.store.path.clone(),
        };
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        tx.send(Batch {
            writes,
            compact,
            ack,
        })
        .map_err(|_| closed())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(JournalError::Storage {
                path: self.store.path.clone(),
                source: message.into(),
            }),
            Err(_) => Err(closed()),
        }
    }
}

fn run(
    store: &Arc<Store>,
    rx: &mpsc::Receiver<Batch>,
    retention: Retention,
    stats: &std::sync::Mutex<WriterStats>,
) {
    let mut last_compaction = Instant::now();
    // Blocks for the first batch, then takes whatever else has arrived meanwhile.
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        let mut records = batches[0].writes.len();
        while records < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    records += more.writes.len();
                    batches.push(more);
                }
                Err(_) => break,
            }
        }
        let writes: Vec<Write> = batches
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.writes))
            .collect();
        let compact_now = batches.iter().any(|b| b.compact);
        let mut result = Ok(());
        if !writes.is_empty() {
            result = store.commit(&writes).map_err(|e| e.to_string());
            if let Err(e) = &result {
                tracing::error!(journal = %store.path.display(), error = %e, "journal write failed");
            }
            let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.transactions += 1;
            stats.records += writes.len() as u64;
        }
        let due = last_compaction.elapsed() >= Duration::from_millis(200);
        if (retention.keep.is_some() || retention.age.is_some()) && (due || compact_now) {
            last_compaction = Instant::now();
            let before = retention
                .age
                .map(|age| now_ms().saturating_sub(u64::try_from(age.as_millis()).unwrap_or(0)));
            if let Err(e) = store.compact(retention.keep, before) {
                tracing::warn!(journal = %store.path.display(), error = %e, "journal compaction failed");
            }
        }
        for batch in batches {
            // A submitter that gave up waiting needs no answer.
            let _ = batch.ack.send(result.clone());
        }
    }
}
