//! Waiting on several doorbells at once: the sleep of a select over many
//! channels ([`wait_any`]).
//!
//! # Protocol
//! The single-doorbell handshake of [`Doorbell`], done on every doorbell
//! before one re-check of every condition, then one sleep on all of them:
//!
//! | waiter | notifier of channel `i` |
//! |---|---|
//! | for each `i`: `seen[i] = bell[i]`; `waiters[i] += 1`; maybe claim a record | publish the condition (a Release store) |
//! | heavy barrier | light barrier |
//! | re-check every condition | if `waiters[i] != 0`: `bell[i] += 1`, `FUTEX_WAKE` |
//! | sleep while `bell[j] == seen[j]` for every `j` (`futex_waitv`) | |
//! | for each `i`: clear its record; `waiters[i] -= 1` | |
//!
//! For each channel this is the store-buffering pair of [`Doorbell`]: either
//! the re-check sees channel `i`'s publish, or its notifier sees the count and
//! bumps `bell[i]`, after which `futex_waitv` returns at once (the word is no
//! longer `seen[i]`) or is woken, since it sleeps on every word. One heavy
//! barrier serves every doorbell: it follows all the announcements and
//! precedes all the re-checks. The loom model is `tests/loom_select.rs` (two
//! channels, notifiers racing the announcements, and the liveness wake-up of a
//! select through the one doorbell it recorded).
//!
//! # Wait records
//! A select records its sleep (see [`WaitRecords`]) on at most half of the
//! process's records (at least one), leaving the rest to other threads'
//! single-channel waits. One record is enough for [`wake_recorded`]: ringing
//! any one of the doorbells wakes the whole `futex_waitv`. Doorbells left
//! unrecorded cost only this: should the process die inside the select, their
//! counts leak (one spare `FUTEX_WAKE` per notify on them; a pipe's counts are
//! reset anyway when its dead end is released).
//!
//! # Fallback
//! `futex_waitv` needs Linux 5.16 and takes at most [`WAITV_MAX`] words. With
//! one doorbell the sleep is an ordinary futex wait. Otherwise, when the
//! kernel lacks the call or more doorbells are given, the waiter sleeps on
//! the first doorbell only, for at most [`FALLBACK_SLICE`] at a time, and
//! re-checks every condition after each slice: correct, but it wakes
//! periodically while idle and notices the other channels up to a slice late.

use std::time::{Duration, Instant};

use super::{Doorbell, WaitError, WaitRecords, Waiter, INTERRUPT_SLICE};
use crate::sync::{heavy_barrier, AtomicU64, Backoff, FutexWord, Ordering};

/// Most doorbells one `futex_waitv(2)` sleeps on (the kernel's limit).
pub const WAITV_MAX: usize = 128;

/// Longest sleep of the fallback (see the module docs): how late a select
/// over more than [`WAITV_MAX`] doorbells, or on a kernel without
/// `futex_waitv`, may notice a channel other than its first.
pub const FALLBACK_SLICE: Duration = Duration::from_millis(10);

/// Spins briefly, then sleeps on all of `bells` at once until `poll`
/// returns `Some` (see the module docs for the protocol).
///
/// `poll` must check the conditions of every doorbell in `bells`, and is
/// called again after every wake-up. `waiter` works as for
/// [`Doorbell::wait`]: its interrupt check runs before every sleep, and its
/// records record the sleep (on some of the doorbells, see "Wait records").
///
/// # Errors
/// [`WaitError::Timeout`] once `deadline` has passed with `poll` still
/// `None`; [`WaitError::Interrupted`] when the waiter's check returns true.
///
/// # Examples
/// ```
/// use shmbus::futex::{wait_any, Doorbell, WaitError};
/// let (a, b) = (Doorbell::default(), Doorbell::default());
/// let r: Result<(), _> = wait_any(&[&a, &b], None, Some(&|| true), &mut || None);
/// assert_eq!(r, Err(WaitError::Interrupted));
/// assert_eq!(wait_any(&[&a, &b], None, None, &mut || Some(7)), Ok(7));
/// ```
#[inline]
pub fn wait_any<R>(
    bells: &[&Doorbell],
    deadline: Option<Instant>,
    waiter: Option<&dyn Waiter>,
    poll: &mut dyn FnMut() -> Option<R>,
) -> Result<R, WaitError> {
    let backoff = Backoff::new();
    loop {
        if let Some(r) = poll() {
            return Ok(r);
        }
        if backoff.is_completed() {
            return wait_any_slow(bells, deadline, waiter, poll);
        }
        backoff.snooze();
    }
}

#[cold]
#[inline(never)]
fn wait_any_slow<R>(
    bells: &[&Doorbell],
    deadline: Option<Instant>,
    waiter: Option<&dyn Waiter>,
    poll: &mut dyn FnMut() -> Option<R>,
) -> Result<R, WaitError> {
    let records = waiter.and_then(Waiter::records);
    let max_records = records.map_or(0, |r| (r.slots.len() / 2).max(1));
    let mut seen: Vec<(&FutexWord, u32)> = Vec::with_capacity(bells.len());
    // (index into `bells`, the record, the doorbell's offset)
    let mut claimed: Vec<(usize, &AtomicU64, u64)> = Vec::with_capacity(max_records);
    loop {
        seen.clear();
        claimed.clear();
        for (i, bell) in bells.iter().enumerate() {
            // Acquire: pairs with the Release bump in `Doorbell::ring`; read
            // before the re-check, as in `Doorbell::wait_slow`.
            seen.push((&bell.bell, bell.bell.load(Ordering::Acquire)));
            // Relaxed: ordered before the re-check by the heavy barrier.
            bell.waiters.fetch_add(1, Ordering::Relaxed);
            // After the increment, so a record always stands for a count.
            if claimed.len() < max_records {
                if let Some((r, off)) = records.and_then(|r| Some((r, r.offset_of(bell)?))) {
                    if let Some(rec) = r.claim(off) {
                        claimed.push((i, rec, off));
                    }
                }
            }
        }
        // Heavy barrier: pairs with the light barrier in every doorbell's
        // `notify` (see the module docs); one serves all the announcements.
        heavy_barrier();
        let ready = poll();
        let outcome = if ready.is_some() {
            None
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(WaitError::Timeout)
        } else if waiter.is_some_and(|w| w.interrupted()) {
            Some(WaitError::Interrupted)
        } else {
            let slice = match waiter {
                None => None,
                Some(w) if !claimed.is_empty() => w.slice(),
                Some(w) => Some(
                    w.slice()
                        .map_or(INTERRUPT_SLICE, |s| s.min(INTERRUPT_SLICE)),
                ),
            };
            sleep_any(&seen, min_deadline(deadline, slice));
            None
        };
        for (i, bell) in bells.iter().enumerate() {
            // Before the decrement; a CAS, as in `Doorbell::wait_slow`.
            let ours = match claimed.iter().find(|c| c.0 == i) {
                Some(&(_, rec, off)) => WaitRecords::release(rec, off),
                None => true,
            };
            if ours {
                // Relaxed: a stale non-zero count only costs a spare wake.
                bell.waiters.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Some(r) = ready {
            return Ok(r);
        }
        if let Some(e) = outcome {
            return Err(e);
        }
    }
}

/// The earlier of `deadline` and `slice` from now.
fn min_deadline(deadline: Option<Instant>, slice: Option<Duration>) -> Option<Instant> {
    match (deadline, slice.and_then(|s| Instant::now().checked_add(s))) {
        (Some(d), Some(s)) => Some(d.min(s)),
        (d, s) => d.or(s),
    }
}

/// One sleep on all the words (see "Fallback" in the module docs).
fn sleep_any(seen: &[(&FutexWord, u32)], until: Option<Instant>) {
    match seen {
        [] => {}
        [(w, v)] => w.wait(*v, until),
        _ => {
            if !crate::sync::wait_any(seen, until) {
                let (w, v) = seen[0];
                w.wait(v, min_deadline(until, Some(FALLBACK_SLICE)));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn times_out_over_many_and_over_more_than_waitv_takes() {
        for n in [2, WAITV_MAX + 1] {
            let bells: Vec<Doorbell> = (0..n).map(|_| Doorbell::default()).collect();
            let refs: Vec<&Doorbell> = bells.iter().collect();
            let d = Instant::now() + Duration::from_millis(30);
            let r: Result<(), _> = wait_any(&refs, Some(d), None, &mut || None);
            assert_eq!(r, Err(WaitError::Timeout));
            assert!(Instant::now() >= d);
            assert!(bells.iter().all(|b| b.waiters.load(Ordering::Relaxed) == 0));
        }
    }

    #[test]
    fn a_ring_on_the_last_doorbell_wakes_the_sleep() {
        use crate::sync::AtomicU32;
        let bells: Vec<Doorbell> = (0..5).map(|_| Doorbell::default()).collect();
        let flag = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Wait until the sleeper announced itself on the last bell.
                while bells[4].waiters.load(Ordering::Relaxed) == 0 {
                    std::thread::yield_now();
                }
                flag.store(1, Ordering::Release);
                bells[4].notify();
            });
            let refs: Vec<&Doorbell> = bells.iter().collect();
            let r = wait_any(&refs, None, None, &mut || {
                (flag.load(Ordering::Acquire) == 1).then_some(())
            });
            assert_eq!(r, Ok(()));
        });
    }
}
