//! A one-way "stop" signal: a flag, and a way to wait for it.

use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, Notify};

/// A one-way "stop" signal (a task's, an agent's): a flag, and a way to wait for it.
///
/// Lighter than a `CancellationToken` (no allocation, no tree of children): whoever waits
/// needs only to be told once.
#[derive(Debug)]
pub(crate) struct Signal {
    raised: AtomicBool,
    notify: Notify,
}

impl Default for Signal {
    fn default() -> Self {
        Self {
            raised: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }
}

impl Signal {
    pub(crate) fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Completes once the signal is raised (at once if it already is).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the flag is read: a raise in between still wakes us.
            notified.as_mut().enable();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;

    use std::time::Duration;

    // Paused time: if the raise did not wake the waiter, the idle runtime would jump to the
    // timeout and the test would fail instead of hanging.
    #[tokio::test(start_paused = true)]
    async fn raised_wakes_a_waiter_registered_before_the_raise() {
        let signal = std::sync::Arc::new(Signal::default());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.raised().await }
        });
        tokio::task::yield_now().await;
        signal.raise();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the raise woke the waiter")
            .unwrap();
        // And at once for one that comes after.
        tokio::time::timeout(Duration::from_secs(1), signal.raised())
            .await
            .expect("an already raised signal completes at once");
    }
}
