//! loom models of topics: two publishers and two subscribers on a ring of two
//! one-word slots in each mode, lossless backpressure, lag detection racing an
//! overwrite, a subscriber joining (with history) while a publisher laps the
//! ring, and the daemon's recovery after each crash point of a publisher and
//! of a subscriber.
//!
//! One loom thread models one process. Payload words are atomics (lossy and
//! history readers race writers by design), so the models check every
//! message's value instead: each message is a value derived from its number,
//! and a torn, overwritten or mixed-up read shows as a wrong value or a wrong
//! order. The futex is a mutex + condvar stand-in, so a lost wake-up fails
//! the model as a deadlock.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_topic`
#![cfg(loom)]

mod loom_common;
use loom_common::model;

use loom::sync::Arc;
use loom::thread;
use shmbus::sync::{crash, CrashPoint};
use shmbus::topic::{mode_word, HeapTopic, Publisher, RecvError, Subscriber, TryRecvError};

const SLOTS: u64 = 2;
const SLOT: u64 = 8;

/// Handles keep their topic alive (fields drop in declaration order).
struct Held<T> {
    h: T,
    _heap: Arc<HeapTopic>,
}

impl<T> std::ops::Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.h
    }
}

fn topic(lossy: bool, subs: u64) -> Arc<HeapTopic> {
    Arc::new(HeapTopic::new(SLOTS, SLOT, mode_word(lossy, subs)))
}

fn publisher(heap: &Arc<HeapTopic>, me: u16) -> Held<Publisher> {
    // SAFETY: stored before a clone of the `Arc`, so dropped first.
    let h = unsafe { heap.publisher(me) };
    Held {
        h,
        _heap: heap.clone(),
    }
}

fn subscriber(heap: &Arc<HeapTopic>, me: u16, history: u64) -> Held<Subscriber> {
    // SAFETY: as in `publisher`.
    let h = unsafe { heap.subscriber(me, history) }.expect("subscribe");
    Held {
        h,
        _heap: heap.clone(),
    }
}

/// Message `v` (a whole word, so a mixed read shows).
fn msg(v: u8) -> [u8; 8] {
    [v; 8]
}

fn value(b: &[u8]) -> u8 {
    assert_eq!(b.len(), 8, "length");
    assert!(b.iter().all(|x| *x == b[0]), "torn message {b:?}");
    b[0]
}

fn publish(p: &Publisher, v: u8) {
    p.publish_until(&msg(v), None, None).expect("publish");
}

/// Blocking receive; in lossy mode `Err(n)` is a lag of `n`.
fn recv(s: &Subscriber) -> Result<u8, u64> {
    match s.recv_with_until(None, None, value) {
        Ok(v) => Ok(v),
        Err(RecvError::Lagged(n)) => Err(n),
        Err(e) => panic!("recv: {e}"),
    }
}

/// The two-by-two models: publishers A (message 1) and B (message 11), each
/// on its own model thread, on two slots, and two subscribers
/// that one model thread drains in turn (a subscriber's cursor is its own,
/// so draining them from one thread checks the same protocol with one thread
/// fewer: with a thread per subscriber the model ran for over ten minutes).
/// Each subscriber gets both messages whole, and both in the same order.
fn two_by_two(lossy: bool) {
    let heap = topic(lossy, 2);
    let s1 = subscriber(&heap, 3, 0);
    let s2 = subscriber(&heap, 4, 0);
    let a = publisher(&heap, 1);
    let b = publisher(&heap, 2);
    let ta = thread::spawn(move || publish(&a, 1));
    let tb = thread::spawn(move || publish(&b, 11));
    let got1 = [recv(&s1), recv(&s1)];
    let got2 = [recv(&s2), recv(&s2)];
    ta.join().unwrap();
    tb.join().unwrap();
    assert_eq!(got1, got2, "same order");
    let mut got: Vec<u8> = got1.iter().map(|r| r.unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 11]);
}

/// Lossless, 2 publishers × 2 subscribers (see [`two_by_two`]).
#[test]
fn lossless_two_by_two() {
    model("lossless_two_by_two", || two_by_two(false));
}

/// Lossy, 2 publishers × 2 subscribers (see [`two_by_two`]): subscribers copy
/// and validate.
#[test]
fn lossy_two_by_two() {
    model("lossy_two_by_two", || two_by_two(true));
}

/// Backpressure: one publisher puts four messages through two slots to one
/// sleeping subscriber; both sides must sleep and be woken (a lost wake-up
/// deadlocks).
#[test]
fn lossless_backpressure() {
    model("lossless_backpressure", || {
        let heap = topic(false, 1);
        let s = subscriber(&heap, 2, 0);
        let p = publisher(&heap, 1);
        let t = thread::spawn(move || {
            for v in 1..=4 {
                publish(&p, v);
            }
        });
        let got: Vec<u8> = (0..4).map(|_| recv(&s).unwrap()).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
    });
}

/// Lossy lag racing an overwrite: a publisher laps two slots (three
/// messages) while the subscriber reads with try_recv; every read is whole,
/// in order, and reads plus the missed count are exact.
#[test]
fn lossy_lag_races_overwrite() {
    model("lossy_lag_races_overwrite", || {
        let heap = topic(true, 1);
        let s = subscriber(&heap, 2, 0);
        let p = publisher(&heap, 1);
        let t = thread::spawn(move || {
            for v in 1..=3 {
                p.try_publish(&msg(v)).expect("lossy publish never waits");
            }
        });
        let (mut got, mut missed) = (Vec::new(), 0);
        while got.len() as u64 + missed < 3 {
            match s.try_recv_with(value) {
                Ok(v) => got.push(v),
                Err(TryRecvError::Lagged(n)) => missed += n,
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        t.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert_eq!(s.try_recv_with(value), Err(TryRecvError::Empty));
    });
}

/// A subscriber joins (asking for two messages of history) while a lossless
/// publisher publishes three through two slots: it never meets an
/// overwritten message, what it gets is in order, and it gets everything
/// from where it joined up to the last message.
#[test]
fn join_with_history_while_publishing() {
    model("join_with_history_while_publishing", || {
        let heap = topic(false, 1);
        let p = publisher(&heap, 1);
        let t = thread::spawn(move || {
            for v in 1..=3 {
                publish(&p, v);
            }
        });
        let s = subscriber(&heap, 2, 2);
        let mut got = Vec::new();
        while got.last() != Some(&3) {
            got.push(recv(&s).unwrap());
        }
        t.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        // Gapless from the first live message on (history may skip).
        let live = got.len() - got.iter().rev().take_while(|v| **v > 0).count();
        assert!(got[live..].windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    });
}

const PUBLISHER_POINTS: [CrashPoint; 4] = [
    CrashPoint::TopicClaimed,
    CrashPoint::TopicReserved,
    CrashPoint::TopicWritten,
    CrashPoint::TopicCommitted,
];

/// A publisher dies publishing message 1 at each crash point while a live
/// publisher publishes 2 and a subscriber waits for messages: after the
/// daemon's recovery the subscriber gets 2 (and 1 exactly when it was
/// committed), nothing else, and the topic works on.
#[test]
fn publisher_crash_points() {
    for point in PUBLISHER_POINTS {
        model(&format!("topic publisher dies at {point:?}"), move || {
            let heap = topic(false, 1);
            let s = subscriber(&heap, 3, 0);
            let victim = publisher(&heap, 1);
            let live = publisher(&heap, 2);
            let v = thread::spawn(move || {
                crash::arm(Some(point));
                let _ = victim.try_publish(&msg(1));
                assert!(crash::fired());
            });
            let l = thread::spawn(move || publish(&live, 2));
            let want_committed = point == CrashPoint::TopicCommitted;
            let sub = thread::spawn(move || {
                let mut got = vec![recv(&s).unwrap()];
                if want_committed {
                    got.push(recv(&s).unwrap());
                }
                got.sort_unstable();
                (got, s)
            });
            v.join().unwrap();
            // The daemon, once the death is confirmed.
            let r = heap.recover_owner(1);
            assert_eq!(r.tombstoned, u32::from(!want_committed));
            l.join().unwrap();
            let (got, s) = sub.join().unwrap();
            let want: &[u8] = if want_committed { &[1, 2] } else { &[2] };
            assert_eq!(got, want);
            assert_eq!(s.try_recv_with(value), Err(TryRecvError::Empty));
            let p = publisher(&heap, 4);
            for v in 5..=7 {
                p.try_publish(&msg(v)).unwrap();
                assert_eq!(s.try_recv_with(value), Ok(v));
            }
        });
    }
}

/// A lossless subscriber dies after reading message 1 (before its cursor
/// moves on) while a publisher pushes three messages through two slots: the
/// publisher is held back until the daemon frees the dead subscriber's
/// place, then finishes; the other subscriber gets everything.
#[test]
fn subscriber_crash_point() {
    model("topic subscriber dies at TopicRead", || {
        let heap = topic(false, 2);
        let victim = subscriber(&heap, 1, 0);
        let other = subscriber(&heap, 2, 0);
        let p = publisher(&heap, 3);
        let tp = thread::spawn(move || {
            for v in 1..=3 {
                publish(&p, v);
            }
        });
        let tv = thread::spawn(move || {
            crash::arm(Some(CrashPoint::TopicRead));
            let r = victim.recv_with_until(None, None, value);
            assert!(crash::fired() && r.is_err());
            // Dies: its entry stays taken.
            let Held { h, _heap } = victim;
            std::mem::forget(h);
        });
        tv.join().unwrap();
        let r = heap.recover_owner(1);
        assert_eq!(r.unsubscribed, 1);
        let got: Vec<u8> = (0..3).map(|_| recv(&other).unwrap()).collect();
        tp.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}
