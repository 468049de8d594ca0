//! loom models of the MPMC queue: several producers or consumers on a queue of
//! two slots (so positions lap the ring), blocking puts and gets with the
//! doorbell handshake, a producer and a consumer that die holding a cell and
//! the daemon's repair, and `join` with `task_done`; and on four slots, where
//! a producer's puts do not lap the ring, two producers (each put tagging or
//! not the cell its predecessor claimed), `join`, and one handle shared by
//! two threads.
//!
//! One loom thread models one process; a crash is a claim that is forgotten
//! (its owner tag stays in the cell), and the daemon's recovery runs after the
//! crashed thread's `join()` (DESIGN.md §7). Payload words are loom
//! `UnsafeCell`s, so a write that races a read of the same cell fails the
//! model; the futex is a mutex + condvar stand-in, so a lost wake-up fails it
//! as a deadlock.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_queue`
#![cfg(loom)]

mod loom_common;
use loom_common::{get, handle, model, put, SLOT, SLOTS};

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmbus::queue::{HeapQueue, TryGetError, TryPutError};

/// Two producers (items 1, 2 and 11) and one consumer on two slots: every item
/// arrives exactly once, each producer's items in order.
#[test]
fn two_producers_one_consumer() {
    model("two_producers_one_consumer", || {
        let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
        let a = handle(&heap, 1);
        let b = handle(&heap, 2);
        let c = handle(&heap, 3);
        let ta = thread::spawn(move || {
            put(&a, 1);
            put(&a, 2);
        });
        let tb = thread::spawn(move || put(&b, 11));
        let mut got = vec![get(&c), get(&c), get(&c)];
        ta.join().unwrap();
        tb.join().unwrap();
        let a_order: Vec<u8> = got.iter().copied().filter(|v| *v < 10).collect();
        assert_eq!(a_order, [1, 2], "per-producer order");
        got.sort_unstable();
        assert_eq!(got, [1, 2, 11]);
        assert_eq!(c.try_get_claim().unwrap_err(), TryGetError::Empty);
    });
}

/// One producer (items 1, 2, 3) and two consumers on two slots: each item is
/// taken by exactly one consumer, and each consumer sees them in order.
#[test]
fn one_producer_two_consumers() {
    model("one_producer_two_consumers", || {
        let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
        let p = handle(&heap, 1);
        let c1 = handle(&heap, 2);
        let c2 = handle(&heap, 3);
        let t1 = thread::spawn(move || vec![get(&c1), get(&c1)]);
        let t2 = thread::spawn(move || get(&c2));
        put(&p, 1);
        put(&p, 2);
        put(&p, 3);
        let first = t1.join().unwrap();
        let second = t2.join().unwrap();
        assert!(first[0] < first[1], "consumer order {first:?}");
        let mut all = first.clone();
        all.push(second);
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
    });
}

/// Blocking on both sides: one producer puts four items into two slots while
/// one consumer takes them; each side must sleep and be woken at least once in
/// some interleavings (a lost wake-up deadlocks the model).
#[test]
fn blocking_put_and_get() {
    model("blocking_put_and_get", || {
        let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
        let p = handle(&heap, 1);
        let c = handle(&heap, 2);
        let t = thread::spawn(move || {
            for v in 1..=4 {
                put(&p, v);
            }
        });
        let got: Vec<u8> = (0..4).map(|_| get(&c)).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
    });
}

/// A producer dies after claiming a cell: a consumer blocked behind that cell
/// is woken by the repair, skips the tombstone and gets the live producer's
/// item; the unfinished count does not keep the dead item.
#[test]
fn dead_producer_is_repaired() {
    model("dead_producer_is_repaired", || {
        let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
        let dead = handle(&heap, 1);
        let live = handle(&heap, 2);
        let c = handle(&heap, 3);
        let td = thread::spawn(move || {
            // Crash holding a write claim (or, if the queue were full, nothing).
            match dead.try_claim(1) {
                Ok(claim) => std::mem::forget(claim),
                Err(e) => panic!("claim: {e}"),
            }
        });
        let tl = thread::spawn(move || put(&live, 7));
        let tc = thread::spawn(move || get(&c));
        td.join().unwrap();
        // The daemon's recovery, after the death is confirmed.
        let r = heap.recover_owner(1);
        assert_eq!(r.tombstoned, 1);
        tl.join().unwrap();
        assert_eq!(tc.join().unwrap(), 7);
        assert_eq!(heap.ctl().unfinished(), 1);
        // The ring still works across the lap.
        let h = handle(&heap, 4);
        for v in 0..3 {
            h.try_put(&[v]).unwrap();
            assert_eq!(h.try_get_claim().unwrap().to_vec(), [v]);
        }
    });
}

/// A consumer dies holding a read claim on a full queue: the producer blocked
/// on it is woken by the repair and its item goes through.
#[test]
fn dead_consumer_is_repaired() {
    model("dead_consumer_is_repaired", || {
        let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
        let p = handle(&heap, 1);
        let dead = handle(&heap, 2);
        p.try_put(&[1]).unwrap();
        p.try_put(&[2]).unwrap();
        let td = thread::spawn(move || {
            let claim = dead.try_get_claim().expect("claim");
            std::mem::forget(claim);
        });
        let tp = thread::spawn(move || {
            put(&p, 3);
        });
        td.join().unwrap();
        let r = heap.recover_owner(2);
        assert_eq!((r.tombstoned, r.released), (0, 1));
        tp.join().unwrap();
        let c = handle(&heap, 3);
        assert_eq!(get(&c), 2);
        assert_eq!(get(&c), 3);
        assert_eq!(
            c.try_get_claim().unwrap_err(),
            TryGetError::Empty,
            "item 1 died with its consumer"
        );
        assert_eq!(
            c.try_put(&[0; 9]).unwrap_err(),
            TryPutError::TooLarge { len: 9, max: 8 }
        );
    });
}

/// `join` returns only after every item put has been marked done, and sees
/// the work done on them.
#[test]
fn join_waits_for_task_done() {
    model("join_waits_for_task_done", || {
        join_after_task_done(SLOTS, 2)
    });
}

/// A producer puts `items` items on a queue of `slots` and joins while a
/// consumer takes each and marks it done: `join` returns only after the last
/// `task_done` and sees the work done on every item, no `task_done` is
/// refused, and one too many is.
fn join_after_task_done(slots: u64, items: u8) {
    let heap = Arc::new(HeapQueue::new(slots, SLOT));
    let p = handle(&heap, 1);
    let c = handle(&heap, 2);
    let work = Arc::new(AtomicU32::new(0));
    let w = work.clone();
    let tc = thread::spawn(move || {
        for _ in 0..items {
            get(&c);
            // Relaxed: published to `join` by task_done's Release.
            w.fetch_add(1, Ordering::Relaxed);
            c.task_done().unwrap();
        }
        assert!(c.task_done().is_err(), "one task_done too many");
    });
    for v in 1..=items {
        put(&p, v);
    }
    p.join_until(None, None).unwrap();
    assert_eq!(
        work.load(Ordering::Relaxed),
        u32::from(items),
        "join returned early"
    );
    tc.join().unwrap();
}

/// Slots of the models in which no producer laps the ring.
const WIDE_SLOTS: u64 = 4;

/// Two producers on four slots (items 1, 2, 3 from one, 11 from the other)
/// and one consumer: every item arrives exactly once, each producer's in
/// order, whether a put follows its own handle's claim (and skips the tag
/// check) or another producer's (and checks, perhaps tags, its cell); then
/// the count of unfinished items is exact.
#[test]
fn wide_two_producers() {
    model("wide_two_producers", || {
        let heap = Arc::new(HeapQueue::new(WIDE_SLOTS, SLOT));
        let a = handle(&heap, 1);
        let b = handle(&heap, 2);
        let c = handle(&heap, 3);
        let ta = thread::spawn(move || {
            for v in 1..=3 {
                a.try_put(&[v]).unwrap();
            }
        });
        let tb = thread::spawn(move || b.try_put(&[11]).unwrap());
        let mut got: Vec<u8> = (0..4).map(|_| get(&c)).collect();
        ta.join().unwrap();
        tb.join().unwrap();
        let a_order: Vec<u8> = got.iter().copied().filter(|v| *v < 10).collect();
        assert_eq!(a_order, [1, 2, 3], "per-producer order");
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 11]);
        assert_eq!(c.unfinished(), 4);
        assert_eq!(c.try_get_claim().unwrap_err(), TryGetError::Empty);
    });
}

/// On four slots, a producer puts three items and joins while a consumer
/// takes each and marks it done: `task_done` is never refused for an item
/// taken, `join` never returns before the last one, and one `task_done` too
/// many is refused.
#[test]
fn wide_join() {
    model("wide_join", || join_after_task_done(WIDE_SLOTS, 3));
}

/// Two threads put through one handle (one owner tag, one record of the
/// handle's last tagged claim) on four slots, two items each, while a
/// consumer takes them: every item arrives exactly once and each thread's
/// in order, whichever thread's claim the record names when the other
/// puts.
#[test]
fn wide_shared_handle() {
    model("wide_shared_handle", || {
        let heap = Arc::new(HeapQueue::new(WIDE_SLOTS, SLOT));
        let p = Arc::new(handle(&heap, 1));
        let c = handle(&heap, 2);
        let p2 = p.clone();
        let t = thread::spawn(move || {
            p2.try_put(&[11]).unwrap();
            p2.try_put(&[12]).unwrap();
        });
        p.try_put(&[1]).unwrap();
        p.try_put(&[2]).unwrap();
        let mut got: Vec<u8> = (0..4).map(|_| get(&c)).collect();
        t.join().unwrap();
        for own in [[1, 2], [11, 12]] {
            let order: Vec<u8> = got.iter().copied().filter(|v| own.contains(v)).collect();
            assert_eq!(order, own, "per-thread order");
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2, 11, 12]);
        assert_eq!(c.unfinished(), 4);
    });
}
