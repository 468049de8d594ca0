//! Shared futex waits and wakes across processes.
//!
//! The word type is [`crate::sync::FutexWord`]; under `--cfg loom` it is a
//! mutex-and-condvar stand-in. The real implementation is in `linux`: it uses
//! `rustix::thread::futex` with **empty** flags, because `FUTEX_PRIVATE_FLAG`
//! keys the wait by process and a wake from another process would never arrive
//! (DESIGN.md §4, which is also why the `atomic-wait` crate cannot serve here).

#[cfg(not(loom))]
pub(crate) mod linux;

use std::time::{Duration, Instant};

use crate::sync::{heavy_barrier, light_barrier, AtomicU32, Backoff, FutexWord, Ordering};

/// Longest single futex sleep when the caller has an interrupt check, so that
/// the check runs at least this often (for example to notice a dead daemon).
pub const INTERRUPT_SLICE: Duration = Duration::from_millis(200);

/// Why [`Doorbell::wait`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The interrupt check returned true.
    Interrupted,
}

/// A sleep/wake handshake on a shared futex: the waiter side of every blocking
/// operation, and a notifier that makes no system call when nobody sleeps.
///
/// # Protocol
/// | waiter | notifier |
/// |---|---|
/// | `seen = bell` | publish the condition (a Release store) |
/// | `waiters += 1` | light barrier |
/// | heavy barrier | if `waiters != 0`: `bell += 1`, `FUTEX_WAKE` |
/// | re-check the condition; sleep while `bell == seen` | |
///
/// The two barriers make this a store-buffering pair: either the waiter's
/// re-check sees the publish, or the notifier sees the waiter and bumps the bell,
/// after which the futex wait returns at once (the word is no longer `seen`) or
/// is woken. Without both a wake-up can be lost (DESIGN.md §4). The pair is
/// asymmetric ([`crate::sync::light_barrier`]): a compiler fence on the
/// notifier's fast path and `membarrier(2)` on the waiter's slow path, in
/// processes that called [`crate::sync::enable_asymmetric_barriers`]; two
/// `fence(SeqCst)` otherwise, and always under loom.
///
/// # Layout
/// | word | meaning |
/// |---|---|
/// | `waiters` | number of processes between announcing and leaving a sleep |
/// | `bell` | futex word; bumped (wrapping) on every ring |
#[derive(Debug, Default)]
#[repr(C)]
pub struct Doorbell {
    /// Number of announced sleepers.
    pub waiters: AtomicU32,
    /// The futex word.
    pub bell: FutexWord,
}

impl Doorbell {
    /// Notifier side: call right after the Release store that published the
    /// condition. Costs one fence and one load when nobody sleeps.
    #[inline]
    pub fn notify(&self) {
        // Light barrier: orders our publish before the load of `waiters`; pairs
        // with the heavy barrier in `wait_slow` (store-buffering, see the table).
        light_barrier();
        // Relaxed: ordered by the barrier pair.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.ring();
        }
    }

    /// Wakes every sleeper unconditionally (shutdown, recovery).
    #[cold]
    #[inline(never)]
    pub fn ring(&self) {
        // Release: a woken waiter re-polls the condition anyway; Release keeps
        // the bump after whatever the ringer published.
        self.bell.fetch_add(1, Ordering::Release);
        self.bell.wake_all();
    }

    /// Waiter side: spins briefly, then sleeps until `poll` returns `Some`.
    ///
    /// `poll` is called again after every wake-up, spurious or not. With an
    /// `interrupt` check, sleeps last at most [`INTERRUPT_SLICE`] and the check
    /// runs between them.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] once `deadline` has passed with `poll` still
    /// `None`; [`WaitError::Interrupted`] when `interrupt` returns true.
    #[inline]
    pub fn wait<R>(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Fn() -> bool>,
        mut poll: impl FnMut() -> Option<R>,
    ) -> Result<R, WaitError> {
        let backoff = Backoff::new();
        loop {
            if let Some(r) = poll() {
                return Ok(r);
            }
            if backoff.is_completed() {
                return self.wait_slow(deadline, interrupt, &mut poll);
            }
            backoff.snooze();
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_slow<R>(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Fn() -> bool>,
        poll: &mut dyn FnMut() -> Option<R>,
    ) -> Result<R, WaitError> {
        loop {
            // Acquire: pairs with the Release bump in `ring`. Read before the
            // re-check, so a ring after the re-check changes the word we sleep on.
            let seen = self.bell.load(Ordering::Acquire);
            // Relaxed: ordered before the re-check by the barrier below.
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // Heavy barrier: pairs with the light barrier in `notify` (see the
            // table); a system call, but we are about to sleep anyway.
            heavy_barrier();
            let ready = poll();
            let outcome = if ready.is_some() {
                None
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(WaitError::Timeout)
            } else if interrupt.is_some_and(|f| f()) {
                Some(WaitError::Interrupted)
            } else {
                let until = match (deadline, interrupt) {
                    (d, None) => d,
                    (None, Some(_)) => Some(Instant::now() + INTERRUPT_SLICE),
                    (Some(d), Some(_)) => Some(d.min(Instant::now() + INTERRUPT_SLICE)),
                };
                self.bell.wait(seen, until);
                None
            };
            // Relaxed: a stale non-zero count only costs the notifier a spare wake.
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if let Some(r) = ready {
                return Ok(r);
            }
            if let Some(e) = outcome {
                return Err(e);
            }
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Doorbell>() == 8);
