//! The apiary-supervisor crate holds the vocabulary of self-healing: when a child is
//! restarted and when a failing agent stops being fed.
//!
//! [`RestartType`] says which exits of an agent its supervisor answers with a restart
//! (Erlang/OTP's permanent / transient / temporary), and [`BreakerConfig`] holds the settings of
//! the circuit breaker that keeps routing away from an agent that keeps failing. Both are
//! serde types, so they load straight from a swarm manifest.
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

mod breaker_config;
mod error;
mod restart;

pub use breaker_config::BreakerConfig;
pub use error::ConfigError;
pub use restart::RestartType;
