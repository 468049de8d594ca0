//! Shared futex waits and wakes across processes.
//!
//! The word type is [`crate::sync::FutexWord`]; under `--cfg loom` it is a
//! mutex-and-condvar stand-in. The real implementation is in `linux`: it uses
//! `rustix::thread::futex` with **empty** flags, because `FUTEX_PRIVATE_FLAG`
//! keys the wait by process and a wake from another process would never arrive
//! (DESIGN.md §4, which is also why the `atomic-wait` crate cannot serve here).

pub mod driver;
#[cfg(not(loom))]
pub(crate) mod linux;
mod many;

pub use many::{wait_any, FALLBACK_SLICE, WAITV_MAX};

use std::time::{Duration, Instant};

use crate::sync::{
    crash, fence, heavy_barrier, light_barrier, AtomicU32, AtomicU64, Backoff, CrashPoint,
    FutexWord, Ordering,
};

/// Longest single futex sleep when the caller has an interrupt check and
/// nothing will wake the sleep when that check turns true: the default
/// [`Waiter::slice`], and the slice of every sleep that could not be
/// recorded (see [`wake_recorded`]).
pub const INTERRUPT_SLICE: Duration = Duration::from_millis(200);

/// Why [`Doorbell::wait`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The interrupt check returned true.
    Interrupted,
}

/// What a blocking wait consults on its slow path: an interrupt check and,
/// optionally, the process's [`WaitRecords`].
///
/// Every `Fn() -> bool` is a `Waiter` that records nothing, so callers with
/// only an interrupt check pass `Some(&|| …)` as before.
///
/// # Examples
/// ```
/// use shmbus::futex::{Doorbell, WaitError};
/// let bell = Doorbell::default();
/// let r: Result<(), _> = bell.wait(None, Some(&|| true), || None);
/// assert_eq!(r, Err(WaitError::Interrupted));
/// ```
pub trait Waiter {
    /// True when the wait should give up with [`WaitError::Interrupted`].
    /// Runs before every futex sleep and after every wake-up (see
    /// [`slice`](Self::slice)), never on the fast path.
    fn interrupted(&self) -> bool;

    /// Longest futex sleep between two runs of [`interrupted`](Self::interrupted)
    /// when the sleep is recorded in [`records`](Self::records); `None`: no
    /// limit. Asked before every sleep, after `interrupted`.
    ///
    /// A waiter may return `None` only if whatever turns its check true also
    /// wakes its recorded sleepers, as [`wake_recorded`] does; otherwise a
    /// sleep would outlast the event. A sleep that could not be recorded (no
    /// records, or all in use) is capped at [`INTERRUPT_SLICE`] whatever this
    /// says, since nothing could find it to wake it.
    fn slice(&self) -> Option<Duration> {
        Some(INTERRUPT_SLICE)
    }

    /// Where this process records the doorbells its threads sleep on, if it
    /// has a peer slot. Called once per wait, on the slow path only.
    fn records(&self) -> Option<WaitRecords<'_>> {
        None
    }
}

impl<F: Fn() -> bool> Waiter for F {
    #[inline]
    fn interrupted(&self) -> bool {
        self()
    }
}

/// An interrupt check plus the process's wait records: a [`Waiter`] that
/// records its sleeps (the client's own waiter does the same).
///
/// # Examples
/// ```
/// use shmbus::futex::{Doorbell, Recorded, WaitError, WaitRecords};
/// use shmbus::sync::{AtomicU64, Ordering};
/// let seg = [Doorbell::default(), Doorbell::default()];
/// let slots = [AtomicU64::new(0)];
/// let w = Recorded {
///     records: WaitRecords::new(&slots, seg.as_ptr().cast(), 16),
///     interrupt: || true,
/// };
/// let r: Result<(), _> = seg[1].wait(None, Some(&w), || None);
/// assert_eq!(r, Err(WaitError::Interrupted));
/// // The record was made and cleared again, and the count is back to 0.
/// assert_eq!(slots[0].load(Ordering::Relaxed), 0);
/// assert_eq!(seg[1].waiters.load(Ordering::Relaxed), 0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a, F> {
    /// The process's wait records.
    pub records: WaitRecords<'a>,
    /// The interrupt check.
    pub interrupt: F,
}

impl<F: Fn() -> bool> Waiter for Recorded<'_, F> {
    #[inline]
    fn interrupted(&self) -> bool {
        (self.interrupt)()
    }

    #[inline]
    fn records(&self) -> Option<WaitRecords<'_>> {
        Some(self.records)
    }
}

/// One process's wait records (its peer slot's
/// [`waits`](crate::layout::PeerSlot::waits)) and the segment they describe.
///
/// # Protocol
/// Per sleep in [`Doorbell::wait`], with `off` the doorbell's offset from the
/// segment base:
///
/// (The loom models in `tests/loom_waitflags.rs` kill a waiter after each
/// step in turn, at the `crash::die` points of `wait_slow`.)
///
/// | step | waiter (a thread of the holder) | if the process dies right after this step |
/// |---|---|---|
/// | 1 | `waiters += 1` | the count leaks: one spare `FUTEX_WAKE` per notify |
/// | 2 | claim a free record: CAS `0 → off` (none free: sleep unrecorded) | the daemon finds `off`, takes the count back |
/// | 3 | sleep; re-check; … | as step 2 |
/// | 4 | clear the record: CAS `off → 0` | the count leaks, as after step 1 |
/// | 5 | `waiters -= 1`, only if the CAS of step 4 succeeded | nothing left over |
///
/// | step | daemon, after the holder's death ([`recover_records`]) |
/// |---|---|
/// | 1 | `off = record.swap(0)`; skip 0 |
/// | 2 | look `off` up among the doorbells of the live channels it created; unknown: ignore |
/// | 3 | `waiters -= 1` unless it is 0 (CAS loop), then ring the bell |
///
/// The count goes up before the record is made and comes down after it is
/// cleared, so a record always stands for a count that is really there: a
/// crash at any point can leave one count too many (a performance cost,
/// never a correctness one) but never makes the daemon remove a count that a
/// live sleeper owns, which could let a notifier skip that sleeper's wake.
/// The daemon clears the record before it decrements, so a daemon that dies
/// in between leaks a count rather than decrementing twice. The waiter
/// clears its record with a CAS and skips its decrement if the record was
/// already gone: should the daemon ever recover a process that is still
/// alive (its control connection closed early), each count is still taken
/// exactly once, never twice (a wrapped count would make the next sleeper's
/// announcement read as 0 and lose its wake-up). One corner remains in that
/// case: another thread of the process re-claiming the same record for the
/// same doorbell between the daemon's swap and the first thread's CAS.
///
/// Orderings: the claim is a Release CAS and the daemon's swap an Acquire,
/// so the daemon sees the count a record stands for; clearing is Relaxed.
/// The daemon normally reads the records only after the kernel reported the
/// process's death (end of its control connection), when every store the
/// process made is visible anyway.
///
/// A process with more than [`WAIT_RECORDS`](crate::layout::WAIT_RECORDS)
/// threads asleep at once has the extra ones sleep unrecorded; should it
/// die then, their counts leak (one spare `FUTEX_WAKE` per notify on those
/// doorbells, for the life of the channel).
#[derive(Clone, Copy, Debug)]
pub struct WaitRecords<'a> {
    slots: &'a [AtomicU64],
    base: usize,
    len: u64,
}

impl<'a> WaitRecords<'a> {
    /// The records `slots` of a process whose segment mapping starts at
    /// `base` and is `len` bytes long. `base` is only compared with
    /// doorbell addresses, never dereferenced.
    ///
    /// # Examples
    /// ```
    /// use shmbus::futex::{Doorbell, WaitRecords};
    /// use shmbus::sync::AtomicU64;
    /// let seg = [Doorbell::default(), Doorbell::default()];
    /// let slots = [AtomicU64::new(0), AtomicU64::new(0)];
    /// let r = WaitRecords::new(&slots, seg.as_ptr().cast(), 16);
    /// assert_eq!(r.offset_of(&seg[1]), Some(8));
    /// assert_eq!(r.offset_of(&seg[0]), None, "offset 0 would read as a free record");
    /// ```
    pub fn new(slots: &'a [AtomicU64], base: *const u8, len: u64) -> Self {
        Self {
            slots,
            base: base as usize,
            len,
        }
    }

    /// The offset of `bell` from the segment base, if the whole doorbell
    /// lies inside the segment and not at offset 0 (which means "free").
    pub fn offset_of(&self, bell: &Doorbell) -> Option<u64> {
        let off = (bell as *const Doorbell as usize).checked_sub(self.base)? as u64;
        let end = off.checked_add(core::mem::size_of::<Doorbell>() as u64)?;
        (off != 0 && end <= self.len).then_some(off)
    }

    /// Claims a free record for a sleep on the doorbell at `off`.
    fn claim(&self, off: u64) -> Option<&'a AtomicU64> {
        self.slots.iter().find(|r| {
            // Release: publishes our increment of `waiters`; pairs with the
            // Acquire swap in `recover_records`, which then sees the count
            // even if it runs while we live (after our death the kernel
            // orders everything anyway). Relaxed on failure: nothing read.
            r.compare_exchange(0, off, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Clears a record claimed for the doorbell at `off`. False if the
    /// daemon took it first, and with it the sleeper count.
    fn release(record: &AtomicU64, off: u64) -> bool {
        // Relaxed: decided by this word's modification order alone (ours or
        // the daemon's swap comes first); nothing else is published.
        record
            .compare_exchange(off, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What [`recover_records`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordRecovery {
    /// Sleeper counts taken back from doorbells.
    pub released: u32,
    /// Non-zero records that named no known doorbell, or one whose count was
    /// already 0 (both only if the process scribbled on its records).
    pub ignored: u32,
}

/// Daemon side: takes back the sleeper counts that the dead holder of
/// `records` left in doorbells (see the protocol on [`WaitRecords`]), and
/// clears every record.
///
/// `find` maps a recorded offset to a doorbell the caller itself knows to be
/// at that offset (a doorbell of a live channel it created), or `None`. The
/// records are untrusted: a hostile process could write any offset there, so
/// the daemon must never turn a recorded offset into an address itself. A
/// count is never taken below 0.
///
/// Only call this once the holder is dead: a live holder's records stand for
/// sleepers that are really there.
///
/// # Examples
/// ```
/// use shmbus::futex::{recover_records, Doorbell, RecordRecovery};
/// use shmbus::sync::{AtomicU64, Ordering};
/// let bell = Doorbell::default();
/// bell.waiters.store(1, Ordering::Relaxed); // the dead process's count
/// let records = [AtomicU64::new(128), AtomicU64::new(0), AtomicU64::new(999)];
/// let r = recover_records(&records, |off| (off == 128).then_some(&bell));
/// assert_eq!(r, RecordRecovery { released: 1, ignored: 1 });
/// assert_eq!(bell.waiters.load(Ordering::Relaxed), 0);
/// assert!(records.iter().all(|r| r.load(Ordering::Relaxed) == 0));
/// ```
pub fn recover_records<'a>(
    records: &[AtomicU64],
    mut find: impl FnMut(u64) -> Option<&'a Doorbell>,
) -> RecordRecovery {
    let mut out = RecordRecovery::default();
    for r in records {
        // Acquire: pairs with the Release claim in `WaitRecords::claim`, so
        // the count the record stands for is visible below even if the
        // holder were still alive. Cleared before the decrement: a daemon
        // that dies in between leaks a count instead of taking it twice.
        let off = r.swap(0, Ordering::Acquire);
        if off == 0 {
            continue;
        }
        match find(off) {
            Some(bell) if bell.forget_waiter() => {
                out.released += 1;
                // Harmless: sleepers re-check their condition.
                bell.ring();
            }
            _ => out.ignored += 1,
        }
    }
    out
}

/// A process's own side of its wait records: wakes every thread of this
/// process that sleeps recorded in `records`, after the caller stored what
/// makes their [`Waiter::interrupted`] check true (the client's watcher of
/// the daemon's connection, once the daemon hung up). Returns how many
/// recorded doorbells it rang.
///
/// `find` maps a recorded offset to the doorbell there, or `None`; the
/// records lie in shared memory, so it must check the offset (in bounds,
/// aligned) and never turn it into an address otherwise. Records are only
/// read: each sleeper clears its own.
///
/// # Protocol
/// A store→load pair with [`Doorbell::wait`]'s slow path (the loom model is
/// `tests/loom_liveness.rs`):
///
/// | sleeper (`wait_slow`) | waker (this function's caller) |
/// |---|---|
/// | `seen = bell` | store the interrupt condition |
/// | `waiters += 1`; claim a record: `off` | `fence(SeqCst)` |
/// | heavy barrier | load each record; for `off`: `bell += 1`, `FUTEX_WAKE` |
/// | `interrupted()`; sleep while `bell == seen` | |
///
/// Either the sleeper's check sees the condition, or the waker's load sees
/// the record, whose claim came after the sleeper read `seen`, so the bump
/// makes `bell != seen` and the futex wait returns at once or is woken. A
/// sleeper that could not claim a record is not covered: it sleeps at most
/// [`INTERRUPT_SLICE`].
///
/// # Examples
/// ```
/// use shmbus::futex::{wake_recorded, Doorbell};
/// use shmbus::sync::{AtomicU64, Ordering};
/// let bell = Doorbell::default();
/// let records = [AtomicU64::new(0), AtomicU64::new(64), AtomicU64::new(999)];
/// assert_eq!(wake_recorded(&records, |off| (off == 64).then_some(&bell)), 1);
/// assert_eq!(bell.bell.load(Ordering::Relaxed), 1);
/// // Only read: the sleepers clear their own records.
/// assert_eq!(records[1].load(Ordering::Relaxed), 64);
/// ```
pub fn wake_recorded<'a>(
    records: &[AtomicU64],
    mut find: impl FnMut(u64) -> Option<&'a Doorbell>,
) -> u32 {
    // SeqCst fence: orders the caller's store of the interrupt condition
    // before the loads of the records; pairs with the heavy barrier in
    // `wait_slow` between the claim of a record and `interrupted()` (see the
    // table). Once per hang-up, so a full fence costs nothing that matters.
    fence(Ordering::SeqCst);
    let mut rung = 0;
    for r in records {
        // Acquire: pairs with the Release claim in `WaitRecords::claim`, so
        // the sleeper's read of `seen` happens before our bump below, which
        // therefore changes the word it sleeps on.
        let off = r.load(Ordering::Acquire);
        if off == 0 {
            continue;
        }
        if let Some(bell) = find(off) {
            bell.ring();
            rung += 1;
        }
    }
    rung
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
/// A sleeping thread may also leave a record of where it sleeps in its peer
/// slot, so that the daemon can take its count back if the process dies
/// asleep: see [`WaitRecords`] for that protocol.
///
/// # Layout
/// | word | meaning |
/// |---|---|
/// | `waiters` | number of threads between announcing and leaving a sleep (plus counts leaked by processes that died between steps, see [`WaitRecords`]) |
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

    /// Daemon side: removes one dead sleeper's count, never going below 0.
    /// Returns whether there was a count to remove.
    fn forget_waiter(&self) -> bool {
        // Relaxed: a count only; whoever reads it is ordered by the barrier
        // pair of `notify`/`wait_slow`, and this RMW keeps every other
        // thread's increment in the word.
        let mut cur = self.waiters.load(Ordering::Relaxed);
        while cur != 0 {
            match self
                .waiters
                .compare_exchange(cur, cur - 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Waiter side: spins briefly, then sleeps until `poll` returns `Some`.
    ///
    /// `poll` is called again after every wake-up, spurious or not. With a
    /// `waiter`, its interrupt check runs before every sleep, sleeps last at
    /// most its [`Waiter::slice`] (at most [`INTERRUPT_SLICE`] when not
    /// recorded), and each sleep is recorded in its [`WaitRecords`], if it
    /// has them (only on the slow path, which makes system calls anyway).
    ///
    /// # Errors
    /// [`WaitError::Timeout`] once `deadline` has passed with `poll` still
    /// `None`; [`WaitError::Interrupted`] when the waiter's check returns
    /// true.
    #[inline]
    pub fn wait<R>(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Waiter>,
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
        interrupt: Option<&dyn Waiter>,
        poll: &mut dyn FnMut() -> Option<R>,
    ) -> Result<R, WaitError> {
        let records = interrupt
            .and_then(Waiter::records)
            .and_then(|r| Some((r, r.offset_of(self)?)));
        loop {
            // Acquire: pairs with the Release bump in `ring`. Read before the
            // re-check, so a ring after the re-check changes the word we sleep on.
            let seen = self.bell.load(Ordering::Acquire);
            // Relaxed: ordered before the re-check by the barrier below.
            self.waiters.fetch_add(1, Ordering::Relaxed);
            crash::die(CrashPoint::WaitCounted);
            // After the increment, so a record always stands for a count
            // (see `WaitRecords`). `None`: no records, or all in use.
            let record = records.and_then(|(r, off)| r.claim(off));
            crash::die(CrashPoint::WaitRecorded);
            // Heavy barrier: pairs with the light barrier in `notify` (see the
            // table); a system call, but we are about to sleep anyway.
            heavy_barrier();
            let ready = poll();
            let outcome = if ready.is_some() {
                None
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(WaitError::Timeout)
            } else if interrupt.is_some_and(|w| w.interrupted()) {
                Some(WaitError::Interrupted)
            } else {
                // A recorded sleep can be woken by `wake_recorded`; an
                // unrecorded one must come back to look.
                let slice = match (interrupt, record) {
                    (None, _) => None,
                    (Some(w), Some(_)) => w.slice(),
                    (Some(w), None) => Some(
                        w.slice()
                            .map_or(INTERRUPT_SLICE, |s| s.min(INTERRUPT_SLICE)),
                    ),
                };
                let until = match (deadline, slice.and_then(|s| Instant::now().checked_add(s))) {
                    (Some(d), Some(s)) => Some(d.min(s)),
                    (d, s) => d.or(s),
                };
                self.bell.wait(seen, until);
                None
            };
            // Before the decrement, so a record always stands for a count. A
            // CAS, not a store: if the daemon already took the record (and
            // with it our count), we must not take the count again.
            let ours = match (record, records) {
                (Some(r), Some((_, off))) => WaitRecords::release(r, off),
                _ => true,
            };
            crash::die(CrashPoint::WaitUnrecorded);
            if ours {
                // Relaxed: a stale non-zero count only costs the notifier a
                // spare wake.
                self.waiters.fetch_sub(1, Ordering::Relaxed);
            }
            crash::die(CrashPoint::WaitUncounted);
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

// Not under loom: plain single-threaded checks of the record bookkeeping.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A stand-in segment: the doorbell is not at offset 0.
    #[repr(C)]
    #[derive(Default)]
    struct Seg {
        header: [AtomicU64; 2],
        bell: Doorbell,
    }

    fn records<'a>(seg: &Seg, slots: &'a [AtomicU64], len: u64) -> WaitRecords<'a> {
        WaitRecords::new(slots, (seg as *const Seg).cast(), len)
    }

    #[test]
    fn offsets_only_inside_the_segment() {
        let seg = Seg::default();
        let other = Doorbell::default();
        let size = core::mem::size_of::<Seg>() as u64;
        let r = records(&seg, &[], size);
        assert_eq!(r.offset_of(&seg.bell), Some(16));
        assert_eq!(r.offset_of(&other), None, "another object");
        // The doorbell must lie wholly inside.
        assert_eq!(records(&seg, &[], size - 1).offset_of(&seg.bell), None);
    }

    #[test]
    fn full_records_sleep_unrecorded() {
        let seg = Seg::default();
        let slots = [AtomicU64::new(7), AtomicU64::new(9)];
        let w = Recorded {
            records: records(&seg, &slots, 24),
            interrupt: || true,
        };
        let r: Result<(), _> = seg.bell.wait(None, Some(&w), || None);
        assert_eq!(r, Err(WaitError::Interrupted));
        assert_eq!(seg.bell.waiters.load(Ordering::Relaxed), 0);
        // Other threads' records are untouched.
        let v: Vec<u64> = slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        assert_eq!(v, [7, 9]);
    }

    #[test]
    fn recovery_never_goes_below_zero() {
        let seg = Seg::default();
        let slots = [AtomicU64::new(16), AtomicU64::new(16), AtomicU64::new(0)];
        seg.bell.waiters.store(1, Ordering::Relaxed);
        let r = recover_records(&slots, |off| (off == 16).then_some(&seg.bell));
        assert_eq!(
            r,
            RecordRecovery {
                released: 1,
                ignored: 1
            }
        );
        assert_eq!(seg.bell.waiters.load(Ordering::Relaxed), 0);
        assert!(slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }
}
