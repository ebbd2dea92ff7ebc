use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The longest open period a breaker accepts (`max_reset_timeout`): a day. The breaker's
/// packed clock measures open periods on a wrapping 29-bit millisecond counter.
pub const MAX_RESET_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings of an agent's circuit breaker.
///
/// The breaker opens after `failure_threshold` consecutive failures — or, with
/// `failure_rate` set, when at least that fraction of a window of `window` calls failed
/// (a tumbling window of calls) — stays open for
/// `reset_timeout` (doubling after each failed trial, up to `max_reset_timeout`), then lets one
/// trial task through. In a manifest, durations are written as `"30s"`, `"250ms"`, ...
///
/// # Examples
///
/// ```
/// use apiary_supervisor::BreakerConfig;
///
/// let cfg: BreakerConfig = toml::from_str(r#"
///     failure_threshold = 3
///     reset_timeout = "2s"
/// "#)?;
/// assert_eq!(cfg.failure_threshold_value(), 3);
/// assert_eq!(cfg.reset_timeout_value().as_secs(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    failure_threshold: u32,
    #[serde(with = "humantime_serde")]
    reset_timeout: Duration,
    #[serde(with = "humantime_serde")]
    max_reset_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_rate: Option<f64>,
    window: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(1),
            max_reset_timeout: Duration::from_secs(60),
            failure_rate: None,
            window: 20,
        }
    }
}

impl BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n;
        self
    }

    /// How long the breaker first stays open before a trial.
    pub fn reset_timeout(mut self, d: Duration) -> Self {
        self.reset_timeout = d;
        self
    }

    /// The longest the open period grows to after repeated failed trials.
    pub fn max_reset_timeout(mut self, d: Duration) -> Self {
        self.max_reset_timeout = d;
        self
    }

    /// Opens on the failure rate instead of a count: when at least `rate` (0 < rate <= 1)
    /// of the last window of calls failed.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// The number of calls in a failure-rate window (default 20).
    pub fn window(mut self, calls: u32) -> Self {
        self.window = calls;
        self
    }

    /// The failure rate that opens the breaker, if it opens on a rate.
    pub fn failure_rate_value(&self) -> Option<f64> {
        self.failure_rate
    }

    /// Calls per failure-rate window.
    pub fn window_value(&self) -> u32 {
        self.window
    }

    /// Consecutive failures that open the breaker.
    pub fn failure_threshold_value(&self) -> u32 {
        self.failure_threshold
    }

    /// The first open period.
    pub fn reset_timeout_value(&self) -> Duration {
        self.reset_timeout
    }

    /// The longest open period.
    pub fn max_reset_timeout_value(&self) -> Duration {
        self.max_reset_timeout
    }

    /// Checks that the settings can work.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: a zero threshold, a zero reset timeout, a
    /// maximum below the first timeout, or one above [`MAX_RESET_TIMEOUT`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::new("failure_threshold", "must be at least 1"));
        }
        if let Some(rate) = self.failure_rate
            && !(rate > 0.0 && rate <= 1.0)
        {
            return Err(ConfigError::new(
                "failure_rate",
                "must be a fraction above 0 and at most 1",
            ));
        }
        if self.window == 0 || self.window > super::MAX_FAILURE_THRESHOLD {
            return Err(ConfigError::new(
                "window",
                format!("must be between 1 and {}", super::MAX_FAILURE_THRESHOLD),
            ));
        }
        if self.reset_timeout.is_zero() {
            return Err(ConfigError::new(
                "reset_timeout",
                "must be longer than zero",
            ));
        }
        if self.max_reset_timeout > MAX_RESET_TIMEOUT {
            return Err(ConfigError::new(
                "max_reset_timeout",
                format!(
                    "must be at most {}",
                    humantime::format_duration(MAX_RESET_TIMEOUT)
                ),
            ));
        }
        if self.max_reset_timeout < self.reset_timeout {
            return Err(ConfigError::new(
                "max_reset_timeout",
                format!(
                    "{} is shorter than reset_timeout ({})",
                    humantime::format_duration(self.max_reset_timeout),
                    humantime::format_duration(self.reset_timeout)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_period_longer_than_a_day_is_refused() {
        let e = BreakerConfig::default()
            .max_reset_timeout(Duration::from_secs(2 * 24 * 60 * 60))
            .validate()
            .unwrap_err();
        assert_eq!(e.to_string(), "`max_reset_timeout`: must be at most 1day");
        assert!(BreakerConfig::default()
            .max_reset_timeout(MAX_RESET_TIMEOUT)
            .validate()
            .is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let e = BreakerConfig::default()
            .failure_threshold(0)
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), "failure_threshold");
        let e = BreakerConfig::default()
            .reset_timeout(Duration::from_secs(10))
            .max_reset_timeout(Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`max_reset_timeout`: 1s is shorter than reset_timeout (10s)"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<BreakerConfig>("failure_treshold = 3").unwrap_err();
        assert!(
            e.to_string().contains("unknown field `failure_treshold`"),
            "{e}"
        );
    }
}
