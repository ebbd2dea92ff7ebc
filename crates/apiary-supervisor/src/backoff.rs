use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Delay before a restart: exponential with full jitter, between `min` and `max`, reset after
/// a quiet period.
///
/// The n-th consecutive restart waits a random time in `[base/2, base]` where
/// `base = min(max, min * factor^n)`; jitter keeps a crowd of failing agents from
/// restarting in lockstep. A restart more than `reset_after` after the previous one starts
/// again from `min`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apiary_supervisor::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1), 2.0);
/// let mut state = backoff.state(42);
/// let first = state.next_delay(Duration::ZERO);
/// assert!(first >= Duration::from_millis(5) && first <= Duration::from_millis(10));
/// let second = state.next_delay(Duration::from_millis(20));
/// assert!(second >= Duration::from_millis(10) && second <= Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    #[serde(with = "humantime_serde")]
    min: Duration,
    #[serde(with = "humantime_serde")]
    max: Duration,
    factor: f64,
    #[serde(with = "humantime_serde")]
    reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(10),
            max: Duration::from_secs(5),
            factor: 2.0,
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Exponential backoff from `min` to `max` by `factor`, reset after 30 s of quiet.
    pub fn new(min: Duration, max: Duration, factor: f64) -> Self {
        Self {
            min,
            max,
            factor,
            ..Self::default()
        }
    }

    /// No delay at all (restart at once).
    pub fn none() -> Self {
        Self {
            min: Duration::ZERO,
            max: Duration::ZERO,
            factor: 1.0,
            reset_after: Duration::ZERO,
        }
    }

    /// Sets the quiet period after which the delay starts again from `min`.
    pub fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// `max` below `min`, or a factor below 1 or not finite.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max < self.min {
            return Err(ConfigError::new("max", "is shorter than min"));
        }
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(ConfigError::new(
                "factor",
                "must be a finite number of at least 1",
            ));
        }
        Ok(())
    }

    /// Per-child backoff state, with its own jitter seed.
    pub fn state(self, seed: u64) -> BackoffState {
        BackoffState {
            policy: self,
            attempt: 0,
            last: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

/// One child's position in its backoff sequence.
#[derive(Debug, Clone)]
pub struct BackoffState {
    policy: Backoff,
    attempt: u32,
    last: Option<Duration>,
    rng: fastrand::Rng,
}

impl BackoffState {
    /// The delay before a restart that happens at `now` (any monotonic time base).
    pub fn next_delay(&mut self, now: Duration) -> Duration {
        if self
            .last
            .is_some_and(|l| now.saturating_sub(l) > self.policy.reset_after)
        {
            self.attempt = 0;
        }
        self.last = Some(now);
        let p = &self.policy;
        let base = p
            .min
            .mul_f64(p.factor.powi(self.attempt.min(64) as i32))
            .min(p.max);
        self.attempt = self.attempt.saturating_add(1);
        if base.is_zero() {
            return base;
        }
        // Full jitter on the upper half: [base/2, base].
        let half = base / 2;
        half + half.mul_f64(self.rng.f64()) + (base - half * 2)
    }

    /// Starts over from the shortest delay: the restarted child did useful work, so its
    /// next crash is not part of a crash loop (a restart that keeps failing still backs off).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apiary_supervisor::Backoff;
    ///
    /// let policy = Backoff::new(Duration::from_millis(10), Duration::from_secs(5), 2.0);
    /// let mut state = policy.state(1);
    /// for _ in 0..8 {
    ///     state.next_delay(Duration::ZERO);
    /// }
    /// state.reset();
    /// assert!(state.next_delay(Duration::ZERO) <= Duration::from_millis(10));
    /// ```
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Consecutive restarts counted (since the last reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_maximum_and_reset_after_quiet() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 2.0)
            .reset_after(Duration::from_secs(10));
        let mut state = policy.state(7);
        let mut now = Duration::ZERO;
        let mut bases = Vec::new();
        for _ in 0..6 {
            let d = state.next_delay(now);
            // Each delay lies in [base/2, base] for base = min(max, 100ms * 2^n).
            let base = bases.len() as u32;
            let expected =
                Duration::from_millis(100 * 2u64.pow(base)).min(Duration::from_millis(1000));
            assert!(d >= expected / 2 && d <= expected, "{d:?} vs {expected:?}");
            bases.push(expected);
            now += Duration::from_secs(1);
        }
        let quiet = now + Duration::from_secs(11);
        let d = state.next_delay(quiet);
        assert!(
            d <= Duration::from_millis(100),
            "reset to min after quiet: {d:?}"
        );
        assert_eq!(state.attempt(), 1);
    }

    #[test]
    fn jitter_spreads_children_apart() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2.0);
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|seed| policy.state(seed).next_delay(Duration::ZERO))
            .collect();
        assert!(
            delays.len() > 10,
            "jittered delays should differ: {delays:?}"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1), 2.0);
        assert_eq!(b.validate().unwrap_err().field(), "max");
        let b = Backoff::new(Duration::ZERO, Duration::from_secs(1), 0.5);
        assert_eq!(b.validate().unwrap_err().field(), "factor");
    }
}
