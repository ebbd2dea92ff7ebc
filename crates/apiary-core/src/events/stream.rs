use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{FutureExt, Stream};
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

use super::SwarmEvent;

/// A subscription to a swarm's events, from the moment of subscribing.
///
/// Backed by a bounded broadcast channel: a subscriber that falls more than the swarm's event
/// capacity behind loses the oldest events and is told how many. As a [`Stream`] it yields
/// `Ok(event)` or `Err(RecvError::Lagged(n))`, and ends once the swarm is gone and every
/// event has been received.
///
/// # Examples
///
/// See [the module docs](crate::events).
pub struct EventStream {
    next: ReusableBoxFuture<'static, Received>,
    // Counts live subscribers, so the bus skips building events nobody reads.
    _live: Subscribed,
}

type Received = (
    Result<SwarmEvent, broadcast::error::RecvError>,
    broadcast::Receiver<SwarmEvent>,
);

async fn receive(mut rx: broadcast::Receiver<SwarmEvent>) -> Received {
    (rx.recv().await, rx)
}

/// One live subscriber, counted while it exists.
struct Subscribed(Arc<AtomicUsize>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// What an [`EventStream`] gives instead of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many events were dropped for it.
    #[error("event subscriber lagged; {0} events were dropped")]
    Lagged(u64),
    /// The swarm is gone and every event has been received.
    #[error("the swarm is gone")]
    Closed,
}

impl EventStream {
    pub(super) fn new(rx: broadcast::Receiver<SwarmEvent>, live: Arc<AtomicUsize>) -> Self {
        Self {
            next: ReusableBoxFuture::new(receive(rx)),
            _live: Subscribed(live),
        }
    }

    /// The next event.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] once after events were dropped for this subscriber (the next call
    /// goes on with the oldest event kept), [`RecvError::Closed`] when the swarm is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost by dropping the future.
    pub async fn recv(&mut self) -> Result<SwarmEvent, RecvError> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event if one is waiting now.
    pub fn try_recv(&mut self) -> Option<Result<SwarmEvent, RecvError>> {
        self.recv().now_or_never()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<SwarmEvent, RecvError>> {
        let (result, rx) = std::task::ready!(self.next.poll(cx));
        self.next.set(receive(rx));
        Poll::Ready(result.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        }))
    }
}

impl Stream for EventStream {
    type Item = Result<SwarmEvent, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx).map(|r| match r {
            Err(RecvError::Closed) => None,
            other => Some(other),
        })
    }
}
