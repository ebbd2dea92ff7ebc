use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How many restarts a supervisor allows within a period before it gives up (OTP's
/// `intensity` and `period`).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use apiary_supervisor::RestartIntensity;
///
/// let mut window = RestartIntensity::new(2, Duration::from_secs(10)).window();
/// let t0 = Instant::now();
/// assert!(window.admit(t0));
/// assert!(window.admit(t0 + Duration::from_secs(1)));
/// assert!(!window.admit(t0 + Duration::from_secs(2)), "a third restart within 10 s");
/// assert!(window.admit(t0 + Duration::from_secs(12)), "the first two have aged out");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartIntensity {
    max_restarts: u32,
    #[serde(with = "humantime_serde")]
    within: Duration,
}

impl Default for RestartIntensity {
    /// OTP's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Self {
            max_restarts: 3,
            within: Duration::from_secs(5),
        }
    }
}

impl RestartIntensity {
    /// At most `max_restarts` within `within`.
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        Self {
            max_restarts,
            within,
        }
    }

    /// The restarts allowed per period.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The period.
    pub fn within(&self) -> Duration {
        self.within
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A zero period.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.within.is_zero() {
            return Err(ConfigError::new("within", "must be longer than zero"));
        }
        Ok(())
    }

    /// A fresh sliding window that enforces this intensity.
    pub fn window<I: WindowClock>(self) -> RestartWindow<I> {
        RestartWindow {
            limit: self,
            recent: VecDeque::new(),
        }
    }
}

/// A clock reading the window can age restarts by (`std` or tokio `Instant`).
pub trait WindowClock: Copy + Ord {
    /// `self - earlier`, or zero if `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
}

impl WindowClock for std::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// The restarts of the last period, counted against a [`RestartIntensity`].
#[derive(Debug, Clone)]
pub struct RestartWindow<I> {
    limit: RestartIntensity,
    recent: VecDeque<I>,
}

impl<I: WindowClock> RestartWindow<I> {
    /// Records a restart at `now` if the intensity allows it; false means the supervisor must
    /// give up (the restart is not recorded).
    pub fn admit(&mut self, now: I) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.since(t) >= self.limit.within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit.max_restarts as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// How long ago the oldest restart still counted happened: with a full window, the time
    /// in which the supervisor saw its `max_restarts` restarts.
    pub fn span(&self, now: I) -> Duration {
        self.recent
            .front()
            .map_or(Duration::ZERO, |&t| now.since(t))
    }

    /// The intensity this window enforces.
    pub fn limit(&self) -> RestartIntensity {
        self.limit
    }

    /// Restarts counted in the current period.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether no restart is counted.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }
}

/// Time as an offset from some start (for clocks that cannot name a foreign `Instant`).
impl WindowClock for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
}
