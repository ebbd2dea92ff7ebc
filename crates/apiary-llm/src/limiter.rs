//! A limiter shared by every agent that calls one endpoint with one key: concurrent requests,
//! requests per minute, tokens per minute, and a pause when the provider says to wait.
//!
//! When one call is told `429 Retry-After: 20`, every caller of the endpoint waits those 20
//! seconds, instead of each finding out on its own with another request: no retry storm.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// What an endpoint allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Requests started per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens (worst case of each call) per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

/// A token bucket refilled continuously at `per_minute`.
#[derive(Debug)]
struct Bucket {
    per_minute: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: f64, now: Instant) -> Self {
        Self {
            per_minute,
            level: per_minute,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        self.level = (self.level + minutes * self.per_minute).min(self.per_minute);
        self.at = now;
    }

    /// How long until `want` (capped at the bucket's size) is available.
    fn wait_for(&self, want: f64) -> Duration {
        let want = want.min(self.per_minute);
        if self.level >= want {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((want - self.level) / self.per_minute * 60.0)
        }
    }

    fn take(&mut self, want: f64) {
        self.level -= want.min(self.per_minute);
    }
}

#[derive(Debug)]
struct Windows {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// No request starts before this (the provider said to wait).
    paused_until: Option<Instant>,
}

/// The limiter of one endpoint and key. Cheap to clone; clones share the limits.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    slots: Option<Arc<Semaphore>>,
    windows: Mutex<Windows>,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub(crate) struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                slots: limits
                    .concurrency
                    .map(|n| Arc::new(Semaphore::new(n.max(1)))),
                windows: Mutex::new(Windows {
                    requests: limits
                        .requests_per_minute
                        .map(|n| Bucket::new(f64::from(n.max(1)), now)),
                    tokens: limits
                        .tokens_per_minute
                        .map(|n| Bucket::new(n.max(1) as f64, now)),
                    paused_until: None,
                }),
            }),
        }
    }

    /// Waits for a slot and for room in the per-minute windows for a call of `tokens` (at
    /// worst). Returns `Err(wait)` instead of waiting past `deadline`.
    pub(crate) async fn admit(
        &self,
        tokens: u64,
        deadline: Option<Instant>,
    ) -> Result<Slot, Duration> {
        let slot = match &self.inner.slots {
            Some(slots) => {
                let acquire = Arc::clone(slots).acquire_owned();
                let permit = match deadline {
                    Some(d) => tokio::time::timeout_at(d, acquire)
                        .await
                        .map_err(|_| Duration::ZERO)?,
                    None => acquire.await,
                };
                Some(permit.expect("the semaphore is never closed"))
            }
            None => None,
        };
        loop {
            let wait = {
                let mut w = self
                    .inner
                    .windows
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let mut wait = w
                    .paused_until
                    .map_or(Duration::ZERO, |p| p.saturating_duration_since(now));
                if let Some(b) = &mut w.requests {
                    b.refill(now);
                    wait = wait.max(b.wait_for(1.0));
                }
                if let Some(b) = &mut w.tokens {
                    b.refill(now);
                    wait = wait.max(b.wait_for(tokens as f64));
                }
                if wait.is_zero() {
                    if let Some(b) = &mut w.requests {
                        b.take(1.0);
                    }
                    if let Some(b) = &mut w.tokens {
                        b.take(tokens as f64);
                    }
                }
                wait
            };
            if wait.is_zero() {
                return Ok(Slot(slot));
            }
            if deadline.is_some_and(|d| Instant::now() + wait > d) {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// No request of anyone starts before `until`.
    pub(crate) fn pause_until(&self, until: Instant) {
        let mut w = self
            .inner
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        w.paused_until = Some(w.paused_until.map_or(until, |p| p.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_spread_calls_out() {
        let limiter = Limiter::new(RateLimits {
            requests_per_minute: Some(60),
            ..RateLimits::default()
        });
        let start = Instant::now();
        // The bucket starts full: 60 at once, then one per second.
        for _ in 0..62 {
            drop(limiter.admit(1, None).await.unwrap());
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1_990), "{took:?}");
        assert!(took < Duration::from_millis(2_100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone_and_a_deadline_is_not_overrun() {
        let limiter = Limiter::new(RateLimits::default());
        let start = Instant::now();
        limiter.pause_until(start + Duration::from_secs(20));
        let soon = start + Duration::from_secs(5);
        assert_eq!(
            limiter.admit(1, Some(soon)).await.unwrap_err(),
            Duration::from_secs(20)
        );
        drop(limiter.admit(1, None).await.unwrap());
        assert!(start.elapsed() >= Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let limiter = Limiter::new(RateLimits {
            concurrency: Some(1),
            ..RateLimits::default()
        });
        let held = limiter.admit(1, None).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(limiter.admit(1, Some(soon)).await.is_err());
        drop(held);
        assert!(limiter.admit(1, Some(soon)).await.is_ok());
    }
}
