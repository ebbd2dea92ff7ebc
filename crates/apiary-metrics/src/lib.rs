//! apiary's metrics: one catalogue of every series the runtime records.
//!
//! Every part of apiary records through the [`metrics`] facade using the definitions here, so
//! names, labels and help texts live in one place and follow Prometheus naming rules
//! (`apiary_` prefix, base units, `_total` on counters, `_seconds` on durations).
//! With the `exporter` feature, `Exporter` serves them on `/metrics` for Prometheus to
//! scrape; without it the crate is the catalogue alone and pulls in no HTTP server.
//!
//! ```
//! use apiary_metrics::{catalogue, TASKS_TOTAL};
//!
//! assert_eq!(TASKS_TOTAL.name, "apiary_tasks_total");
//! assert!(catalogue().iter().all(|m| m.name.starts_with("apiary_")));
//! ```
#![deny(missing_docs)]

mod catalogue;
#[cfg(feature = "exporter")]
mod exporter;

pub use catalogue::*;
#[cfg(feature = "exporter")]
pub use exporter::{Exporter, ExporterError};
