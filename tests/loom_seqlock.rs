//! loom models of the multi-buffered seqlock behind values and arrays: torn
//! reads, competing writers, a writer that dies inside its write and the
//! daemon's clearing of its lock, `wait_changed` wake-ups, and reads that
//! outlive publishes when there are four copies.
//!
//! One loom thread models one process; a crash is a thread that returns with
//! its write guard forgotten (busy stays set with its owner tag), and the
//! daemon's recovery runs after `join()` (DESIGN.md §7). The data words are
//! loom atomics, so every interleaving of the relaxed copy loads with a
//! writer's stores is explored; the futex is a mutex + condvar stand-in, so a
//! lost wake-up fails the model as a deadlock.
//!
//! Arrays have two `u64` words; every write stores two equal words, so a torn
//! read shows as two different words. Models 1–4 use two copies (the fewest
//! [`seqlock::copies`](shmbus::seqlock::copies) gives, for copies over
//! 2 KiB), so that a copy is rewritten within two writes; model 6 uses four.
//!
//! NB, checked by mutation (2026-11-25): skipping the reader's generation
//! re-check fails models 1 and 3 (torn reads), and dropping the `changed`
//! notify after a publish fails model 5 (deadlock). Dropping the writer's
//! `fence(Release)` after its lock CAS is **not** caught, even with
//! `LOOM_MAX_PREEMPTIONS=3`: loom does not produce the stale re-load of the
//! state word that the fence forbids, so that fence rests on the proof in
//! `src/seqlock/mod.rs` (and on crossbeam's `seq_lock_wide.rs`, which does the
//! same), not on these models.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_seqlock`
#![cfg(loom)]

mod loom_common;
use loom_common::{model, read_pair};

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use shmbus::seqlock::{HeapSeqlock, Seqlock};

const WRITER: u16 = 1;
const WRITER2: u16 = 2;
const READER: u16 = 3;

/// As `WRITER`, publishes `[v, v]` for each `v` of `vs`, in order; generation
/// `v` must be what each publish makes (the models start from generation 0).
fn publish_pairs(s: &Seqlock, vs: core::ops::RangeInclusive<u64>) {
    for v in vs {
        let mut w = s.lock(WRITER, None, None).unwrap();
        w.write(&[v, v]);
        assert_eq!(w.publish(), v);
    }
}

/// Model 1: one writer stores [1, 1], [2, 2], [3, 3] (so each copy is
/// rewritten while the reader may be reading it); a reader reads twice. Each
/// read is untorn, matches its generation, and generations never go back.
#[test]
fn one_writer_one_reader_never_torn() {
    model("one_writer_one_reader_never_torn", || {
        let h = Arc::new(HeapSeqlock::with_copies::<u64>(2, 2));
        let hw = h.clone();
        let t = thread::spawn(move || {
            // SAFETY: `hw` keeps the array alive while this thread uses `s`.
            let s = unsafe { hw.handle() };
            publish_pairs(&s, 1..=3);
        });
        let (v1, g1) = read_pair(&h);
        let (v2, g2) = read_pair(&h);
        // Writer `v` publishes generation `v`, so value == generation.
        assert_eq!(v1, g1);
        assert_eq!(v2, g2);
        assert!(g2 >= g1, "generation went back: {g1} then {g2}");
        t.join().unwrap();
        assert_eq!(read_pair(&h), (3, 3));
    });
}

/// Model 2: two writers, each doing two read-modify-writes under the lock
/// (what `update` and `fetch_add` do), and a reader. Writers serialize, in
/// some executions through the futex sleep (asserted); the reader never sees
/// a torn pair, and the final value counts all four writes.
#[test]
fn two_writers_and_a_reader() {
    model("two_writers_and_a_reader", || {
        let h = Arc::new(HeapSeqlock::with_copies::<u64>(2, 2));
        let spawn = |me: u16| {
            let hw = h.clone();
            thread::spawn(move || {
                // SAFETY: `hw` keeps the array alive while this thread uses `s`.
                let s = unsafe { hw.handle() };
                for _ in 0..2 {
                    let mut w = s.lock(me, None, None).unwrap();
                    let mut cur = [0u64; 2];
                    w.read_into(&mut cur);
                    assert_eq!(cur[0], cur[1], "writer saw a torn current copy");
                    w.write(&[cur[0] + 10, cur[1] + 10]);
                    w.publish();
                }
            })
        };
        let a = spawn(WRITER);
        let b = spawn(WRITER2);
        let (v, g) = read_pair(&h);
        assert_eq!(v, 10 * g, "value {v} does not match generation {g}");
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(read_pair(&h), (40, 4), "a write was lost");
        // Relaxed: read after every model thread was joined.
        if h.ctl().unlocked.bell.load(Ordering::Relaxed) != 0 {
            SLEPT.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(
        SLEPT.load(std::sync::atomic::Ordering::Relaxed),
        "no execution had a writer sleep on `unlocked`"
    );
}

/// Set once some execution of model 2 rang the `unlocked` doorbell, which
/// happens only when a writer had announced itself as a sleeper.
#[allow(clippy::disallowed_types)]
static SLEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Model 3: a writer publishes [1, 1], then dies inside its second write
/// (after one of the two words). A reader running meanwhile sees [0, 0] or
/// [1, 1], never the half-written copy. The daemon's recovery clears busy
/// without publishing; readers still see [1, 1]; a new writer can write.
#[test]
fn dead_writer_is_recovered_without_publishing() {
    model("dead_writer_is_recovered_without_publishing", || {
        let h = Arc::new(HeapSeqlock::with_copies::<u64>(2, 2));
        let hw = h.clone();
        let t = thread::spawn(move || {
            // SAFETY: `hw` keeps the array alive while this thread uses `s`.
            let s = unsafe { hw.handle() };
            let mut w = s.lock(WRITER, None, None).unwrap();
            w.write(&[1u64, 1]);
            w.publish();
            let mut w = s.lock(WRITER, None, None).unwrap();
            w.write_word(0, 99);
            // Crash: the guard is neither published nor dropped.
            std::mem::forget(w);
        });
        let (v, _) = read_pair(&h);
        assert!(v <= 1, "read the dead writer's half-written copy: {v}");
        t.join().unwrap();
        // Daemon: the client's connection closed; clear its lock.
        assert!(h.ctl().recover_owner(WRITER));
        assert!(!h.ctl().recover_owner(WRITER), "idempotent");
        assert_eq!(read_pair(&h), (1, 1));
        // SAFETY: `h` outlives `s` (both live to the end of the model).
        let s = unsafe { h.handle() };
        let mut w = s.try_lock(READER).expect("lock free after recovery");
        w.write(&[2u64, 2]);
        assert_eq!(w.publish(), 2);
        assert_eq!(read_pair(&h), (2, 2));
    });
}

/// Model 4: a writer sleeps waiting for a lock held by a process that then
/// dies; the daemon's recovery must wake it (else loom reports a deadlock).
#[test]
fn recovery_wakes_a_blocked_writer() {
    model("recovery_wakes_a_blocked_writer", || {
        let h = Arc::new(HeapSeqlock::with_copies::<u64>(2, 2));
        // SAFETY: `h` outlives `s` (both live to the end of the model).
        let s = unsafe { h.handle() };
        let dead = s.try_lock(WRITER).unwrap();
        std::mem::forget(dead);
        let hw = h.clone();
        let t = thread::spawn(move || {
            // SAFETY: `hw` keeps the array alive while this thread uses `s`.
            let s = unsafe { hw.handle() };
            let mut w = s.lock(WRITER2, None, None).unwrap();
            w.write(&[5u64, 5]);
            w.publish();
        });
        // The daemon notices the death (concurrently with the waiter).
        assert!(h.ctl().recover_owner(WRITER));
        t.join().unwrap();
        assert_eq!(read_pair(&h), (5, 1));
    });
}

/// Model 5: `wait_changed` never misses a change: a waiter blocks with no
/// deadline until the writer publishes (a lost wake-up is a loom deadlock).
#[test]
fn wait_changed_never_misses_a_change() {
    model("wait_changed_never_misses_a_change", || {
        let h = Arc::new(HeapSeqlock::new::<u64>(1));
        let hw = h.clone();
        let t = thread::spawn(move || {
            // SAFETY: `hw` keeps the array alive while this thread uses `s`.
            let s = unsafe { hw.handle() };
            let mut w = s.lock(WRITER, None, None).unwrap();
            w.write(&[7u64]);
            w.publish();
        });
        // SAFETY: `h` outlives `s` (both live to the end of the model).
        let s = unsafe { h.handle() };
        let g = s.wait_changed(0, None, None).unwrap();
        assert_eq!(g, 1);
        assert_eq!(s.load::<u64>(), (7, 1));
        t.join().unwrap();
    });
}

/// Model 6: four copies. A writer publishes [1, 1], [2, 2], [3, 3] (copies
/// 1, 2, 3), then locks at generation 3, scribbles on copy 0 (the copy of
/// generation 0) and gives up (a dropped guard: the generation stays 3), then
/// writes [4, 4] into copy 0 and publishes 4. A reader reading meanwhile may
/// keep a read of generation 0 through the publishes of 1 and 2 (what the
/// extra copies are for), but must retry once a writer locked at 3 = 0 + 4 - 1,
/// published or not. NB, checked by mutation (2026-12-04): accepting a read
/// up to `gen(s2) - g <= N - 1` (one more) fails this model (torn [0, 4])
/// and models 1 and 3; accepting `N - 1` only when `s2` is not busy fails it
/// through the aborted writer (torn [99, 0]).
#[test]
fn four_copies_read_survives_two_publishes_not_three() {
    model("four_copies_read_survives_two_publishes_not_three", || {
        let h = Arc::new(HeapSeqlock::with_copies::<u64>(2, 4));
        let hw = h.clone();
        let t = thread::spawn(move || {
            // SAFETY: `hw` keeps the array alive while this thread uses `s`.
            let s = unsafe { hw.handle() };
            publish_pairs(&s, 1..=3);
            let mut w = s.lock(WRITER, None, None).unwrap();
            w.write_word(0, 99);
            drop(w);
            publish_pairs(&s, 4..=4);
        });
        let (v, g) = read_pair(&h);
        assert_eq!(v, g, "value {v} does not match generation {g}");
        t.join().unwrap();
        assert_eq!(read_pair(&h), (4, 4));
    });
}
