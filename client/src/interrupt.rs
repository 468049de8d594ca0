//! A process-wide interrupt check for the waiting calls: the way a language
//! runtime that handles signals itself (Python) makes a blocked call return
//! when a signal arrives, without waking the call periodically.
//!
//! Once [`set_interrupt_check`] installed a check, every waiting call runs it
//! before each futex sleep and after each wake-up (never on the fast path),
//! and returns [`Error::Interrupted`](crate::Error::Interrupted) when it is
//! true. Nothing here wakes a sleep: the check's owner must, typically with a
//! signal handler installed without `SA_RESTART` on the sleeping thread,
//! which ends its futex sleep with `EINTR` (the waits then run the check).

use std::cell::Cell;
use std::sync::OnceLock;

static CHECK: OnceLock<fn() -> bool> = OnceLock::new();

thread_local! {
    /// Set when the check stopped this thread's current wait, taken by the
    /// error conversion that follows (see [`take_stopped`]).
    static STOPPED: Cell<bool> = const { Cell::new(false) };
}

/// Installs `check` as this process's interrupt check (see the module docs);
/// false if one was installed already (the first stays).
///
/// `check` runs on the waiting thread, on the slow path only; it must be
/// cheap and must not block (a load of a flag that a signal handler sets).
/// Whatever turns it true must also end the sleep (a signal delivered to the
/// sleeping thread does): the waits add no periodic wake-up for it.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// shmbus_client::set_interrupt_check(|| SIGNALLED.load(Ordering::Relaxed));
/// ```
pub fn set_interrupt_check(check: fn() -> bool) -> bool {
    CHECK.set(check).is_ok()
}

/// Runs the installed check (false without one), and remembers for this
/// thread that it stopped the wait.
pub(crate) fn requested() -> bool {
    let hit = CHECK.get().is_some_and(|c| c());
    if hit {
        STOPPED.with(|s| s.set(true));
    }
    hit
}

/// True (once) if the installed check stopped this thread's last wait: the
/// core's `Interrupted` then means [`Error::Interrupted`](crate::Error::Interrupted),
/// not a closed bus.
pub(crate) fn take_stopped() -> bool {
    STOPPED.with(Cell::take)
}
