//! The one place that names `core::sync::atomic`, `UnsafeCell` and `loom`.
//!
//! Everything else in the crate imports its atomics, cells, hints and the futex
//! word from here, so that `RUSTFLAGS="--cfg loom"` swaps the whole crate onto
//! loom's model-checked types, in the manner of tokio's `src/loom/mod.rs`.
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

/// Where a loom model can stop an operation, as if its process died there.
///
/// The algorithms call `crash::hit(point)` between their steps; in normal
/// builds it is a constant `false` that compiles away. Under `--cfg loom` a
/// model thread arms one point with `crash::arm` (a loom thread-local, so it
/// is per model thread, i.e. per process); when the real code reaches that
/// point, `hit` returns true once and the operation returns at once without
/// doing its remaining steps (with an error, or `Ok` for steps that come
/// after the operation's effect). The model then forgets its handle, checks
/// `crash::fired`, and runs the daemon's recovery after `join` (DESIGN.md
/// §7; the models are in `tests/loom_recovery.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Pipe producer: room reserved, nothing written yet.
    PipeReserved,
    /// Pipe producer: record written, `tail` not yet published.
    PipeWritten,
    /// Pipe producer: `tail` published, consumer not yet notified.
    PipePublished,
    /// Pipe consumer: record read, `head` not yet advanced.
    PipeRead,
    /// Pipe consumer: `head` advanced, producer not yet notified.
    PipeReleased,
    /// Queue producer: position CAS won, the cell not yet tagged.
    QueueClaimed,
    /// Queue producer: cell tagged, not written.
    QueueReserved,
    /// Queue producer: cell written, not yet published.
    QueueWritten,
    /// Queue producer: cell published, consumers not yet notified.
    QueuePublished,
    /// Queue consumer: cell CAS won, position not yet advanced.
    QueueGetClaimed,
    /// Queue consumer: cell claimed for reading, nothing copied yet.
    QueueTaken,
    /// Queue consumer: frame copied, cell not yet released.
    QueueCopied,
    /// Queue consumer: cell released, producers not yet notified.
    QueueFreed,
    /// Topic publisher: slot CAS won, `tail` not yet advanced.
    TopicClaimed,
    /// Topic publisher: claim complete (`tail` advanced), nothing written.
    TopicReserved,
    /// Topic publisher: message written, not yet committed.
    TopicWritten,
    /// Topic publisher: committed, subscribers not yet notified.
    TopicCommitted,
    /// Topic subscriber: message read, cursor not yet advanced.
    TopicRead,
    /// Seqlock writer: `busy` taken, nothing written.
    SeqlockLocked,
    /// Seqlock writer: half the words of the next copy written.
    SeqlockHalfWritten,
    /// Seqlock writer: next copy written, not yet published.
    SeqlockWritten,
    /// Seqlock writer: published (generation bumped, `busy` cleared in one
    /// store), waiters not yet notified.
    SeqlockPublished,
    /// Doorbell waiter: counted in `waiters`, no wait record yet.
    WaitCounted,
    /// Doorbell waiter: counted and recorded (as while asleep).
    WaitRecorded,
    /// Doorbell waiter: record cleared, still counted.
    WaitUnrecorded,
    /// Doorbell waiter: counted out, about to return.
    WaitUncounted,
}

/// The `Corrupt` message of an operation stopped by a crash hook (loom only;
/// normal builds never produce it).
pub const CRASHED: &str = "stopped at a loom crash point";
