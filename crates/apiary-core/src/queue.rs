use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The bound on one agent's work: at most `capacity` tasks queued or running across its
/// replicas. ractor's mailboxes are unbounded; this is the backpressure in front of them.
#[derive(Debug)]
pub(crate) struct AgentQueue {
    permits: Arc<Semaphore>,
    capacity: usize,
    paused: AtomicBool,
}

impl AgentQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            paused: AtomicBool::new(false),
        }
    }

    /// Waits for room for one task.
    pub(crate) async fn reserve(&self) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.permits.clone().acquire_owned().await
    }

    /// Room for one task, if there is some now.
    pub(crate) fn try_reserve(&self) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.permits.clone().try_acquire_owned()
    }

    /// Waits until, at some instant, no task is queued or running.
    pub(crate) async fn wait_idle(&self) {
        let n = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        // Dropping the permits right away gives the room back.
        let _ = self.permits.acquire_many(n).await;
    }

    /// Waits until no task is queued or running, then refuses all further tasks.
    pub(crate) async fn drain_and_close(&self) {
        let n = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        if let Ok(all) = self.permits.acquire_many(n).await {
            all.forget();
        }
        self.permits.close();
    }

    /// Refuses all further tasks at once.
    pub(crate) fn close(&self) {
        self.permits.close();
    }

    /// Tasks queued or running now.
    pub(crate) fn depth(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
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
