use super::SwarmEvent;

/// A callback that sees every event of a swarm, synchronously, on the thread that published it.
///
/// Hooks run outside any lock, so a hook may cancel a task, submit one with
/// [`AgentRef::try_submit`](crate::AgentRef::try_submit), or subscribe; the events those
/// cause reach the hooks in turn (beware of a hook that answers every event with another).
/// Keep hooks fast: they run on the publishing agent's own thread, inside its task. Any
/// `Fn(&SwarmEvent)` is a hook.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use apiary_core::{EventKind, Hook, SwarmEvent};
///
/// let finished = Arc::new(AtomicUsize::new(0));
/// let counter = finished.clone();
/// let hook = move |e: &SwarmEvent| {
///     if matches!(e.kind(), EventKind::TaskFinished { .. }) {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// fn assert_hook(_: &impl Hook) {}
/// assert_hook(&hook);
/// ```
pub trait Hook: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &SwarmEvent);
}

impl<F> Hook for F
where
    F: Fn(&SwarmEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &SwarmEvent) {
        self(event)
    }
}
