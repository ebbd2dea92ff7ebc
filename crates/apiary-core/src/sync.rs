//! The atomics and locks of the task state machine and the stop signal: loom's under
//! `--cfg apiary_loom`, so the loom models check the very code that ships; std's otherwise.

#[cfg(apiary_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU8},
    Mutex, MutexGuard,
};
#[cfg(not(apiary_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU8},
    Mutex, MutexGuard,
};
