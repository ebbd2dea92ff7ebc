//! Atomics that loom can model under `--cfg apiary_loom`.

#[cfg(apiary_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(apiary_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
