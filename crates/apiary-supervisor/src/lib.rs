//! The apiary-supervisor crate holds the policies of self-healing: when a child is restarted,
//! how often, after what delay, and when a failing agent stops being fed.
//!
//! [`Strategy`] and [`RestartType`] are Erlang/OTP's supervision vocabulary,
//! [`RestartIntensity`] bounds restarts per period, [`Backoff`] spaces them out with jitter, and
//! [`CircuitBreaker`] is a lock-free closed / open / half-open state machine (model-checked
//! with loom under `--cfg apiary_loom`). Nothing here runs actors: the runtime applies these
//! policies. Settings are serde types, so they load straight from a swarm manifest.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use apiary_supervisor::{BreakerConfig, RestartType};
//!
//! let breaker = BreakerConfig::default()
//!     .failure_threshold(3)
//!     .reset_timeout(Duration::from_secs(5));
//! breaker.validate()?;
//! assert!(RestartType::Transient.restarts_after(false));
//! assert!(!RestartType::Transient.restarts_after(true));
//! # Ok::<(), apiary_supervisor::ConfigError>(())
//! ```

mod backoff;
mod breaker;
mod error;
mod intensity;
mod restart;
mod strategy;
mod sync;

pub use backoff::{Backoff, BackoffState};
pub use breaker::{
    BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, Permit, Transition,
    MAX_FAILURE_THRESHOLD, MAX_RESET_TIMEOUT,
};
pub use error::ConfigError;
pub use intensity::{RestartIntensity, RestartWindow, WindowClock};
pub use restart::RestartType;
pub use strategy::Strategy;
