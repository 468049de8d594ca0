//! The one place that names `core::sync::atomic`, `UnsafeCell` and `loom`.
//!
//! Everything else in the crate imports its atomics, cells, hints and the futex
//! word from here, so that `RUSTFLAGS="--cfg loom"` swaps the whole crate onto
//! loom's model-checked types (STYLE.md A.5; tokio's `src/loom/mod.rs`).
//! `clippy.toml` bans the raw types everywhere else.

#[cfg(not(loom))]
mod std_impl;
#[cfg(not(loom))]
pub use std_impl::*;

#[cfg(loom)]
mod loom_impl;
#[cfg(loom)]
pub use loom_impl::*;

/// Spin-then-yield backoff for the phase before a futex sleep.
///
/// Real builds use `crossbeam_utils::Backoff`. Under loom there is no spin phase
/// at all ([`Backoff::is_completed`] is immediately true): every poll would be a
/// loom branch point, and the sleep path is what the models must check.
#[derive(Debug, Default)]
pub struct Backoff {
    #[cfg(not(loom))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    /// A fresh backoff.
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Spins (or yields) a little longer each call.
    #[inline]
    pub fn snooze(&self) {
        #[cfg(not(loom))]
        self.inner.snooze();
    }

    /// True once spinning has gone on long enough that sleeping is better.
    #[inline]
    pub fn is_completed(&self) -> bool {
        #[cfg(not(loom))]
        return self.inner.is_completed();
        #[cfg(loom)]
        return true;
    }
}
