//! The atomics the lock-free state machines use: loom's under `--cfg apiary_loom`, so the
//! loom models check the very code that ships; std's otherwise.

#[cfg(apiary_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(apiary_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
