//! `FUTEX_WAIT_BITSET` with an absolute `CLOCK_MONOTONIC` deadline, and
//! `FUTEX_WAKE`, both shared (no `FUTEX_PRIVATE_FLAG`).
#![allow(clippy::disallowed_types)]

use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use std::time::Instant;

use rustix::io::Errno;
use rustix::thread::futex;

/// Converts an `Instant` into an absolute `CLOCK_MONOTONIC` timespec.
///
/// `Instant` is `CLOCK_MONOTONIC` on Linux, but its representation is opaque,
/// so this measures the distance from now and adds it to the clock's reading.
///
/// NB: the clock is read through libc, not `rustix::time::clock_gettime`:
/// rustix finds the vDSO itself, which valgrind does not map, so every
/// program that waited with a deadline crashed under valgrind (rustix issue
/// 1559); glibc's `clock_gettime` uses the vDSO as fast where there is one.
fn monotonic_deadline(deadline: Instant) -> futex::Timespec {
    let mut now_ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now_ts` is a valid, writable `timespec`; CLOCK_MONOTONIC
    // always exists on Linux, so the call cannot fail (and on failure
    // `now_ts` stays zero, which only shortens the wait to a spurious one).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now_ts) };
    let left = deadline.saturating_duration_since(Instant::now());
    let mut secs = now_ts.tv_sec.saturating_add(left.as_secs() as i64);
    let mut nsecs = now_ts.tv_nsec + i64::from(left.subsec_nanos());
    if nsecs >= 1_000_000_000 {
        nsecs -= 1_000_000_000;
        secs = secs.saturating_add(1);
    }
    futex::Timespec {
        tv_sec: secs,
        tv_nsec: nsecs as _,
    }
}

/// Sleeps while `*word == expected`, until woken, `deadline`, a signal, or
/// spuriously. The caller re-checks its own condition afterwards.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let bitset = NonZeroU32::MAX; // FUTEX_BITSET_MATCH_ANY
    let result = match deadline {
        Some(d) => {
            let ts = monotonic_deadline(d);
            futex::wait_bitset(word, futex::Flags::empty(), expected, Some(&ts), bitset)
        }
        None => futex::wait_bitset(word, futex::Flags::empty(), expected, None, bitset),
    };
    match result {
        // Woken, or the word had already changed, or timed out, or a signal:
        // every one of these means "go and look again".
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::TIMEDOUT) | Err(Errno::INTR) => {}
        Err(e) => debug_assert!(false, "unexpected futex wait error: {e}"),
    }
}

/// Wakes up to `n` sleepers on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    let r = futex::wake(word, futex::Flags::empty(), n);
    debug_assert!(r.is_ok(), "unexpected futex wake error: {r:?}");
}

/// Whether this kernel has `futex_waitv`: 0 = not yet known, 1 = yes, 2 = no.
static WAITV: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// One `futex_waitv(2)` on `words` (shared futexes: `FUTEX2_SIZE_U32`
/// without `FUTEX2_PRIVATE`), until one is woken, `deadline` (absolute
/// `CLOCK_MONOTONIC`), a signal, or spuriously. False, without sleeping,
/// if the kernel lacks the call (`ENOSYS`, Linux < 5.16) or there are more
/// than [`super::WAITV_MAX`] words.
pub(crate) fn wait_any(
    words: &[(&crate::sync::FutexWord, u32)],
    deadline: Option<Instant>,
) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    if words.len() > super::WAITV_MAX || WAITV.load(Relaxed) == 2 {
        return false;
    }
    let mut waits = [futex::Wait::new(); super::WAITV_MAX];
    for (w, &(word, expected)) in waits.iter_mut().zip(words) {
        w.val = u64::from(expected);
        w.uaddr = futex::WaitPtr::new(word.raw().as_ptr().cast());
        w.flags = futex::WaitFlags::SIZE_U32;
    }
    let ts = deadline.map(monotonic_deadline);
    let result = futex::waitv(
        &waits[..words.len()],
        futex::WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    );
    match result {
        Ok(_) | Err(Errno::AGAIN) | Err(Errno::TIMEDOUT) | Err(Errno::INTR) => {
            // Relaxed: a pure function of the kernel.
            WAITV.store(1, Relaxed);
            true
        }
        Err(Errno::NOSYS) => {
            // Relaxed: as above.
            WAITV.store(2, Relaxed);
            false
        }
        Err(e) => {
            // Cannot happen with valid words; fall back rather than spin.
            debug_assert!(false, "unexpected futex_waitv error: {e}");
            false
        }
    }
}
