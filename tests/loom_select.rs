//! loom model of a select's sleep on several doorbells ([`wait_any`]): the
//! announce → re-check → sleep handshake of every doorbell, one re-check of
//! every condition and one sleep on all the words, with the notifiers of two
//! channels racing the announcements.
//!
//! The futex stand-in ignores deadlines and wakes every word's sleepers from
//! one bucket, so a lost wake-up is a loom deadlock.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_select`
#![cfg(loom)]

use std::time::Duration;

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmbus::futex::{wait_any, wake_recorded, Doorbell, WaitError, WaitRecords, Waiter};

/// One channel reduced to its condition (a flag) and its doorbell.
#[derive(Default)]
struct Chan {
    ready: AtomicU32,
    bell: Doorbell,
}

impl Chan {
    /// The notifier: publish, then notify (as every producer does).
    fn publish(&self) {
        // Release: pairs with the Acquire load in `take`.
        self.ready.store(1, Ordering::Release);
        self.bell.notify();
    }

    /// The select's readiness check, consuming (the select is the only
    /// consumer, so a load and a store will do, as a pipe's head). NB: not a
    /// `swap`: loom 0.7 does not order an RMW after a `fence(SeqCst)` against
    /// another thread's fence as C++ does ([atomics.fences]), and reports a
    /// deadlock that the memory model forbids.
    fn take(&self) -> bool {
        // Acquire: pairs with the Release store in `publish`.
        let r = self.ready.load(Ordering::Acquire) == 1;
        if r {
            // Relaxed: nobody else clears it.
            self.ready.store(0, Ordering::Relaxed);
        }
        r
    }
}

/// Which of `chans` were ready, once at least one was.
fn select(chans: &[&Chan]) -> Vec<usize> {
    let bells: Vec<&Doorbell> = chans.iter().map(|c| &c.bell).collect();
    wait_any(&bells, None, None, &mut || {
        let got: Vec<usize> = (0..chans.len()).filter(|&i| chans[i].take()).collect();
        (!got.is_empty()).then_some(got)
    })
    .unwrap()
}

fn check_counts(chans: &[&Chan]) {
    for c in chans {
        // Relaxed: every thread was joined.
        assert_eq!(c.bell.waiters.load(Ordering::Relaxed), 0);
    }
}

/// One notifier, on the first or the second registered channel, racing the
/// select's announcements; the other channel stays idle.
#[test]
fn a_wake_on_either_channel_reaches_the_select() {
    for which in 0..2 {
        loom::model(move || {
            let chans = Arc::new([Chan::default(), Chan::default()]);
            let c = chans.clone();
            let t = thread::spawn(move || c[which].publish());
            let got = select(&[&chans[0], &chans[1]]);
            assert_eq!(got, vec![which]);
            t.join().unwrap();
            check_counts(&[&chans[0], &chans[1]]);
        });
    }
}

/// Two notifiers, one per channel, racing each other and the select, which
/// selects again until it saw both (re-registering after its first wake-up).
#[test]
fn two_wakes_racing_registration_are_both_seen() {
    loom::model(|| {
        let chans = Arc::new([Chan::default(), Chan::default()]);
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let c = chans.clone();
                thread::spawn(move || c[i].publish())
            })
            .collect();
        let mut seen = [false; 2];
        while !(seen[0] && seen[1]) {
            for i in select(&[&chans[0], &chans[1]]) {
                assert!(!seen[i], "a publish was seen twice");
                seen[i] = true;
            }
        }
        for t in ts {
            t.join().unwrap();
        }
        check_counts(&[&chans[0], &chans[1]]);
    });
}

/// A segment: two doorbells (not at offset 0) and one process's records
/// (two of them: a select claims at most half, so one).
#[repr(C)]
#[derive(Default)]
struct Seg {
    header: AtomicU64,
    bells: [Doorbell; 2],
    records: [AtomicU64; 2],
}

/// A select on both doorbells of `Seg` for conditions that never come,
/// interrupted by the liveness watcher's flag.
struct Client<'a> {
    seg: &'a Seg,
    gone: &'a AtomicU32,
}

impl Waiter for Client<'_> {
    fn interrupted(&self) -> bool {
        // Relaxed: as the client's `Liveness::daemon_gone`; ordered by the
        // fence pair of `wake_recorded`.
        self.gone.load(Ordering::Relaxed) != 0
    }

    fn slice(&self) -> Option<Duration> {
        None
    }

    fn records(&self) -> Option<WaitRecords<'_>> {
        let base = (self.seg as *const Seg).cast::<u8>();
        Some(WaitRecords::new(
            &self.seg.records,
            base,
            core::mem::size_of::<Seg>() as u64,
        ))
    }
}

/// The daemon's death while a select sleeps: the watcher sets the flag and
/// rings the recorded doorbells; the select recorded only one of its two,
/// which is enough, since a ring of any word ends the whole sleep.
#[test]
fn the_liveness_wake_up_reaches_a_select_through_one_record() {
    loom::model(|| {
        let p = Arc::new((Seg::default(), AtomicU32::new(0)));
        let q = p.clone();
        let watcher = thread::spawn(move || {
            let (seg, gone) = (&q.0, &q.1);
            // Relaxed, as the client's watcher: `wake_recorded` fences.
            gone.store(1, Ordering::Relaxed);
            let base = seg as *const Seg as usize;
            wake_recorded(&seg.records, |off| {
                seg.bells
                    .iter()
                    .find(|b| (*b as *const Doorbell as usize - base) as u64 == off)
            });
        });
        let (seg, gone) = (&p.0, &p.1);
        let w = Client { seg, gone };
        let r: Result<(), _> =
            wait_any(&[&seg.bells[0], &seg.bells[1]], None, Some(&w), &mut || {
                None
            });
        assert_eq!(r, Err(WaitError::Interrupted));
        watcher.join().unwrap();
        // Relaxed: joined. Records cleared and counts taken back.
        assert!(seg.records.iter().all(|r| r.load(Ordering::Relaxed) == 0));
        assert!(seg
            .bells
            .iter()
            .all(|b| b.waiters.load(Ordering::Relaxed) == 0));
    });
}
