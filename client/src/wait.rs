//! How blocking calls wait on a bus: the [`Waiter`] they hand the core
//! ([`BusWaiter`]), the watch for holders no process can be ([`PhantomWatch`])
//! and the wake-up of this process's own sleepers when the daemon hangs up
//! ([`wake_own_sleepers`]).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmbus::futex::{WaitRecords, Waiter, INTERRUPT_SLICE};

use crate::error::{Error, Result};
use crate::segment::Mapping;

/// The liveness watcher's hang-up action: wakes every thread of this process
/// asleep on a doorbell it recorded in peer slot `slot` (ours), so that it
/// runs its interrupt check and sees the flag the watcher set just before.
///
/// The records lie in shared memory: each offset is looked up through
/// [`Mapping::doorbell_at`] (inside the arena, aligned), never used as an
/// address. A scribbled record could at worst make us bump a word of a
/// segment whose daemon is gone (a new daemon makes a new file).
pub(crate) fn wake_own_sleepers(map: &Mapping, slot: u16) {
    if let Some(p) = map.peer(slot) {
        shmbus::futex::wake_recorded(&p.waits, |off| map.doorbell_at(off));
    }
}

/// What a [`BusWaiter`] checks of the connection it waits on (implemented
/// by the bus's shared state, `bus::Inner`).
pub(crate) trait Connection {
    /// True once the bus is gone for us (`Inner::is_closed`).
    fn is_closed(&self) -> bool;
    /// True while the liveness watcher watches the daemon's connection
    /// ([`Liveness::watching`](crate::liveness::Liveness::watching)).
    fn watching(&self) -> bool;
    /// This process's wait records in its peer slot.
    fn wait_records(&self) -> Option<WaitRecords<'_>>;
}

/// See `Inner::waiter`.
pub(crate) struct BusWaiter<'a, B: ?Sized> {
    bus: &'a B,
    /// An extra interrupt check (a [`PhantomWatch`] look) and its watch.
    extra: Option<(&'a dyn Fn() -> bool, &'a PhantomWatch)>,
}

impl<'a, B: Connection + ?Sized> BusWaiter<'a, B> {
    /// Waits on `bus`, with `extra` as described on [`BusWaiter`].
    #[inline]
    pub(crate) fn new(bus: &'a B, extra: Option<(&'a dyn Fn() -> bool, &'a PhantomWatch)>) -> Self {
        Self { bus, extra }
    }
}

impl<B: ?Sized> std::fmt::Debug for BusWaiter<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusWaiter")
            .field("extra", &self.extra.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Connection + ?Sized> Waiter for BusWaiter<'_, B> {
    fn interrupted(&self) -> bool {
        self.bus.is_closed()
            || self.extra.is_some_and(|(f, _)| f())
            || crate::interrupt::requested()
    }

    /// No slice for the bus itself: the daemon's death wakes recorded
    /// sleepers (see [`Liveness`](crate::liveness::Liveness)), and its
    /// shutdown rings every doorbell after marking the segment `CLOSING`.
    /// [`INTERRUPT_SLICE`] while the watcher does not watch (it failed). A
    /// [`PhantomWatch`] adds its own slice: nothing rings when a word is
    /// scribbled.
    fn slice(&self) -> Option<Duration> {
        if !self.bus.watching() {
            return Some(INTERRUPT_SLICE);
        }
        self.extra.map(|(_, w)| w.slice())
    }

    fn records(&self) -> Option<WaitRecords<'_>> {
        self.bus.wait_records()
    }
}

/// How long a blocked call sleeps between two [`PhantomWatch`] looks while
/// the last one saw nothing wrong. Only a word scribbled *while* the call
/// sleeps waits this long to be noticed (one scribbled before is seen by the
/// look that precedes the first sleep); an idle blocked call wakes this
/// often and no more.
pub(crate) const PHANTOM_RECHECK: Duration = Duration::from_secs(30);

/// Watches, while a blocking call waits, for a holder that no process can be:
/// a writer lock, pipe end or queue cell claimed under an owner tag that no
/// connected peer has, which only a scribbled segment shows (each caller says
/// why). Without it the call would wait forever for a release that never
/// comes. It runs in the interrupt check of the blocking call, and reports a
/// phantom only when the same word was seen phantom on two consecutive checks
/// (at most [`INTERRUPT_SLICE`] apart), which rides out the moment between a
/// legitimate change of the word and the bookkeeping around it (the daemon
/// freeing a slot, a thread counting its lock).
///
/// Nothing rings a doorbell when a word is scribbled, so the looks need
/// periodic wake-ups ([`slice`](Self::slice)): every [`INTERRUPT_SLICE`]
/// while a suspicious word awaits its second look, and only every
/// [`PHANTOM_RECHECK`] while the last look saw nothing wrong, so that a
/// client blocked on an idle bus stays nearly silent.
#[derive(Debug, Default)]
pub(crate) struct PhantomWatch {
    /// The word last seen phantom, and when it was first seen.
    last: std::cell::Cell<Option<(u64, Instant)>>,
    /// Set when a phantom was confirmed.
    hit: std::cell::Cell<bool>,
}

impl PhantomWatch {
    /// Records one look: `phantom` is the word just read if it names a holder
    /// that cannot be, `None` otherwise. True (stop waiting) on the second
    /// look in a row at the same phantom word.
    pub(crate) fn check(&self, phantom: Option<u64>) -> bool {
        self.check_for(phantom, Duration::ZERO)
    }

    /// As [`check`](Self::check), but the same phantom word must also have
    /// been seen for at least `patience` (for holders that are phantom only
    /// unless something slow but legitimate explains them).
    pub(crate) fn check_for(&self, phantom: Option<u64>, patience: Duration) -> bool {
        match (phantom, self.last.get()) {
            (Some(w), Some((l, since))) if l == w => {
                let hit = since.elapsed() >= patience;
                self.hit.set(hit);
                hit
            }
            (w, _) => {
                self.last.set(w.map(|w| (w, Instant::now())));
                false
            }
        }
    }

    /// How long the wait may sleep before the next look: short while a
    /// suspicious word awaits confirmation, long otherwise.
    pub(crate) fn slice(&self) -> Duration {
        if self.last.get().is_some() {
            INTERRUPT_SLICE
        } else {
            PHANTOM_RECHECK
        }
    }

    /// `r`, with the `BusClosed` that a phantom caused (through the interrupt
    /// check) turned into `Corrupt(what)`.
    pub(crate) fn result<T>(&self, r: Result<T>, what: &'static str) -> Result<T> {
        match r {
            Err(Error::BusClosed) if self.hit.get() => Err(Error::Corrupt(what)),
            r => r,
        }
    }
}

/// What else the liveness watcher runs after it woke this process's recorded
/// sleepers: set once, by the select driver when it starts (its armed fds are
/// not in the wait records). Here, not in the driver's file, so that the bus
/// need not import the select module that imports the bus.
static HANG_UP_HOOK: OnceLock<fn()> = OnceLock::new();

/// Registers `f` to run on every hang-up the liveness watcher sees.
pub(crate) fn on_hang_up(f: fn()) {
    let _ = HANG_UP_HOOK.set(f);
}

/// Runs the registered hang-up action, if any.
pub(crate) fn run_hang_up_hook() {
    if let Some(f) = HANG_UP_HOOK.get() {
        f();
    }
}
