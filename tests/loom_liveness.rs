//! loom model of how a blocked client learns of the daemon's death without
//! periodic wake-ups ([`wake_recorded`]): the client's watcher thread, woken
//! by the kernel when the daemon's end of the control connection closes,
//! sets the process's "daemon gone" flag and rings every doorbell its own
//! threads recorded a sleep on; a sleeper runs the real `Doorbell::wait`
//! with the flag as its interrupt check and no slice.
//!
//! The futex stand-in ignores deadlines, so a lost wake-up (the sleeper's
//! check missed the flag and the watcher missed its record) is a loom
//! deadlock; `a_watcher_without_its_fence_loses_the_wake_up` shows that the
//! model finds one when the watcher's `fence(SeqCst)` is left out.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_liveness`
#![cfg(loom)]

use std::sync::Mutex;
use std::time::Duration;

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmbus::futex::{wake_recorded, Doorbell, WaitError, WaitRecords, Waiter};

/// A segment: a doorbell (not at offset 0) and one process's wait records.
#[repr(C)]
#[derive(Default)]
struct Seg {
    header: AtomicU64,
    bell: Doorbell,
    records: [AtomicU64; 2],
}

impl Seg {
    fn bell_off(&self) -> u64 {
        (&self.bell as *const Doorbell as usize - self as *const Self as usize) as u64
    }
}

/// The process: its segment and its process-local "daemon gone" flag.
#[derive(Default)]
struct Process {
    seg: Seg,
    gone: AtomicU32,
}

/// The client's waiter, reduced to what the model needs: the flag as its
/// interrupt check, its records, and no slice (it relies on the watcher).
struct Client<'a>(&'a Process);

impl Waiter for Client<'_> {
    fn interrupted(&self) -> bool {
        // Relaxed: as the client's `Liveness::daemon_gone`; the ordering is
        // the fence pair of `wake_recorded`.
        self.0.gone.load(Ordering::Relaxed) != 0
    }

    fn slice(&self) -> Option<Duration> {
        None
    }

    fn records(&self) -> Option<WaitRecords<'_>> {
        let s = &self.0.seg;
        let base = (s as *const Seg).cast::<u8>();
        Some(WaitRecords::new(
            &s.records,
            base,
            core::mem::size_of::<Seg>() as u64,
        ))
    }
}

impl Process {
    /// A thread blocked on the doorbell for a condition that never comes.
    fn sleep(&self) {
        let r: Result<(), _> = self.seg.bell.wait(None, Some(&Client(self)), || None);
        assert_eq!(r, Err(WaitError::Interrupted));
    }

    /// The watcher thread after the hang-up: the flag, then the wake-ups of
    /// the recorded sleepers (checking offsets, as the client does through
    /// its mapping). Returns how many doorbells it rang.
    fn hang_up(&self) -> u32 {
        // Relaxed, as the client's watcher: `wake_recorded` fences.
        self.gone.store(1, Ordering::Relaxed);
        let off = self.seg.bell_off();
        wake_recorded(&self.seg.records, |o| (o == off).then_some(&self.seg.bell))
    }

    /// [`hang_up`](Self::hang_up) minus the `fence(SeqCst)` of
    /// `wake_recorded`: the bug the model must catch.
    fn hang_up_without_fence(&self) {
        // Relaxed, as in `hang_up`, and no fence after it.
        self.gone.store(1, Ordering::Relaxed);
        for r in &self.seg.records {
            // Acquire: as in `wake_recorded`.
            if r.load(Ordering::Acquire) == self.seg.bell_off() {
                self.seg.bell.ring();
            }
        }
    }

    /// After every thread was joined: each sleeper cleared its record and
    /// took its count back.
    fn check_end(&self) {
        // Relaxed: every thread was joined.
        assert!(self
            .seg
            .records
            .iter()
            .all(|r| r.load(Ordering::Relaxed) == 0));
        assert_eq!(self.seg.bell.waiters.load(Ordering::Relaxed), 0);
    }
}

/// Whether some execution rang a recorded sleeper: proof that the model
/// reaches the case where only the watcher's ring can wake the sleeper.
static RANG: Mutex<bool> = Mutex::new(false);

/// One sleeper, one watcher: the sleeper always returns `Interrupted`.
#[test]
fn the_watcher_wakes_a_recorded_sleeper() {
    loom::model(|| {
        let p = Arc::new(Process::default());
        let s = {
            let p = p.clone();
            thread::spawn(move || p.sleep())
        };
        if p.hang_up() > 0 {
            *RANG.lock().unwrap() = true;
        }
        s.join().unwrap();
        p.check_end();
    });
    assert!(
        *RANG.lock().unwrap(),
        "no execution rang a recorded sleeper"
    );
}

/// Two sleepers of the same process on the same doorbell, so that a ring
/// for one sends the other round its loop (it clears its record and claims
/// one again) while the watcher reads the records: both always wake.
#[test]
fn the_watcher_wakes_every_sleeper_even_between_sleeps() {
    loom::model(|| {
        let p = Arc::new(Process::default());
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let p = p.clone();
                thread::spawn(move || p.sleep())
            })
            .collect();
        p.hang_up();
        for s in sleepers {
            s.join().unwrap();
        }
        p.check_end();
    });
}

/// The watcher without its fence: the sleeper's check can miss the flag
/// while the watcher misses the record. loom must report that schedule as a
/// deadlock, which shows the model turns a lost wake-up into a failure.
#[test]
#[should_panic(expected = "deadlock")]
fn a_watcher_without_its_fence_loses_the_wake_up() {
    loom::model(|| {
        let p = Arc::new(Process::default());
        // The sleeper on the model's own thread (so that the deadlock leaves
        // no spawned thread blocked holding a loom object while unwinding).
        let w = {
            let p = p.clone();
            thread::spawn(move || p.hang_up_without_fence())
        };
        p.sleep();
        w.join().unwrap();
    });
}
