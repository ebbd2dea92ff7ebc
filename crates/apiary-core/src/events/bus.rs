use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{EventKind, EventStream, Hook, SwarmEvent};

/// Publishes events to hooks and subscribers: the bus every swarm publishes its events on.
///
/// Nothing here takes a lock of apiary's: the number comes from an atomic counter, hooks run
/// inline on the publisher's thread, and the copy for subscribers goes through tokio's
/// broadcast channel (the same channel `benches/events.rs` measures bare, beside this bus).
/// It is public so it can be measured and reused; a swarm makes its own.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use apiary_core::events::EventBus;
/// use apiary_core::{EventKind, SwarmEvent};
///
/// let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
/// let hook = {
///     let seen = seen.clone();
///     move |e: &SwarmEvent| seen.store(e.seq(), std::sync::atomic::Ordering::Relaxed)
/// };
/// let bus = EventBus::new(16, vec![Arc::new(hook)]);
/// let mut events = bus.subscribe();
/// bus.publish(|| EventKind::SwarmStopped);
/// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
/// assert_eq!(events.try_recv().unwrap().unwrap().kind(), &EventKind::SwarmStopped);
/// ```
pub struct EventBus {
    tx: broadcast::Sender<SwarmEvent>,
    hooks: Box<[Arc<dyn Hook>]>,
    seq: AtomicU64,
    // Live `EventStream`s: `broadcast::Sender::receiver_count` takes the channel's lock, and
    // this is read on every publish.
    subscribers: Arc<AtomicUsize>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("hooks", &self.hooks.len())
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .finish()
    }
}

impl EventBus {
    /// A bus whose subscribers may fall `capacity` events behind, with these hooks.
    pub fn new(capacity: usize, hooks: Vec<Arc<dyn Hook>>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            hooks: hooks.into_boxed_slice(),
            seq: AtomicU64::new(0),
            subscribers: Arc::default(),
        }
    }

    /// Subscribes to the events published from now on.
    pub fn subscribe(&self) -> EventStream {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        EventStream::new(self.tx.subscribe(), self.subscribers.clone())
    }

    /// Whether anyone would see an event now; lets hot paths skip building one.
    pub fn is_observed(&self) -> bool {
        !self.hooks.is_empty() || self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Numbers an event, runs every hook on it, then sends it to the subscribers. `kind` is
    /// called only if someone listens.
    pub fn publish(&self, kind: impl FnOnce() -> EventKind) {
        if !self.is_observed() {
            return;
        }
        // Relaxed is enough: uniqueness comes from the read-modify-write, and an event caused
        // by another was built after it, so it draws a larger number.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let event = SwarmEvent { seq, kind: kind() };
        for hook in self.hooks.iter() {
            hook.on_event(&event);
        }
        if self.subscribers.load(Ordering::Relaxed) > 0 {
            // Every receiver may have dropped meanwhile: not an error.
            let _ = self.tx.send(event);
        }
    }
}
