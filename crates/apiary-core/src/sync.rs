//! The atomics, locks and wake-ups of the task state machine, the queue and the stop signal:
//! loom's under `--cfg apiary_loom`, so the loom models check the very code that ships;
//! std's and tokio's otherwise.

#[cfg(apiary_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicU8, AtomicUsize},
    Mutex, MutexGuard,
};
#[cfg(not(apiary_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicU8, AtomicUsize},
    Mutex, MutexGuard,
};

#[cfg(apiary_loom)]
pub(crate) use loom_notify::Notify;
#[cfg(not(apiary_loom))]
pub(crate) use tokio::sync::Notify;

/// tokio's `Notify` is invisible to loom (a waiter woken through it looks parked forever), so
/// the models use this one, with the same contract on the parts apiary relies on: a
/// `Notified` registers when enabled; `notify_one` wakes one registered waiter or, with none,
/// keeps one wake-up for the next; `notify_waiters` wakes every registered waiter and keeps
/// nothing; a `Notified` dropped after a `notify_one` reached it passes the wake-up on.
#[cfg(apiary_loom)]
mod loom_notify {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use loom::sync::{Arc, Mutex};

    #[derive(Debug, Default)]
    pub(crate) struct Notify {
        inner: Mutex<Inner>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        kept: bool,
        waiters: Vec<Arc<Mutex<Waiter>>>,
    }

    #[derive(Debug, Default)]
    struct Waiter {
        /// Woken; `Some(true)` by `notify_one` (passed on if dropped unconsumed).
        woken: Option<bool>,
        waker: Option<Waker>,
    }

    #[derive(Debug)]
    pub(crate) struct Notified<'a> {
        notify: &'a Notify,
        waiter: Option<Arc<Mutex<Waiter>>>,
        done: bool,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn notified(&self) -> Notified<'_> {
            Notified {
                notify: self,
                waiter: None,
                done: false,
            }
        }

        pub(crate) fn notify_one(&self) {
            let mut inner = self.inner.lock().unwrap();
            if inner.waiters.is_empty() {
                inner.kept = true;
                return;
            }
            let waiter = inner.waiters.remove(0);
            drop(inner);
            let mut w = waiter.lock().unwrap();
            w.woken = Some(true);
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        }

        pub(crate) fn notify_waiters(&self) {
            let waiters = std::mem::take(&mut self.inner.lock().unwrap().waiters);
            for waiter in waiters {
                let mut w = waiter.lock().unwrap();
                w.woken = Some(false);
                if let Some(waker) = w.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    impl Notified<'_> {
        pub(crate) fn enable(self: Pin<&mut Self>) {
            let this = self.get_mut();
            if this.waiter.is_some() {
                return;
            }
            let waiter = Arc::new(Mutex::new(Waiter::default()));
            let mut inner = this.notify.inner.lock().unwrap();
            if inner.kept {
                inner.kept = false;
                waiter.lock().unwrap().woken = Some(true);
            } else {
                inner.waiters.push(waiter.clone());
            }
            this.waiter = Some(waiter);
        }
    }

    impl Future for Notified<'_> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.as_mut().enable();
            let this = self.get_mut();
            let waiter = this.waiter.as_ref().expect("enabled");
            let mut w = waiter.lock().unwrap();
            if w.woken.is_some() {
                this.done = true;
                Poll::Ready(())
            } else {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    impl Drop for Notified<'_> {
        fn drop(&mut self) {
            let Some(waiter) = self.waiter.take() else {
                return;
            };
            if self.done {
                return;
            }
            self.notify
                .inner
                .lock()
                .unwrap()
                .waiters
                .retain(|w| !Arc::ptr_eq(w, &waiter));
            if waiter.lock().unwrap().woken == Some(true) {
                self.notify.notify_one();
            }
        }
    }
}
