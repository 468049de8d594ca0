//! Single-threaded checks of the topic protocol (the threaded stress test is
//! `tests/topic.rs`, the loom models `tests/loom_topic.rs`).

use super::*;
use crate::queue::state::{pack, TOMB};
use crate::sync::Ordering;

fn recv(s: &Subscriber) -> Result<Vec<u8>, TryRecvError> {
    s.try_recv_with(<[u8]>::to_vec)
}

#[test]
fn params() {
    assert!(check_params(8, 64, mode_word(false, 4)).is_ok());
    assert!(check_params(6, 64, mode_word(false, 4)).is_err());
    assert!(check_params(8, 0, mode_word(false, 4)).is_err());
    assert!(check_params(8, 64, mode_word(false, 0)).is_err());
    assert!(check_params(8, 64, 1 << 40).is_err());
    assert_eq!(split_mode(mode_word(true, 64)), (true, 64));
}

#[test]
fn every_subscriber_gets_every_message() {
    let t = HeapTopic::new(4, 16, mode_word(false, 4));
    // SAFETY: `t` outlives the handles.
    let (p, a, b) = unsafe {
        (
            t.publisher(1),
            t.subscriber(2, 0).unwrap(),
            t.subscriber(3, 0).unwrap(),
        )
    };
    for round in 0..10u8 {
        for k in 0..4u8 {
            p.try_publish(&[round, k]).unwrap();
        }
        // Lossless: the ring is full for the slower subscribers.
        assert_eq!(p.try_publish(b"x"), Err(TryPublishError::Full));
        for k in 0..4u8 {
            assert_eq!(recv(&a).unwrap(), [round, k]);
        }
        assert_eq!(
            p.try_publish(b"x"),
            Err(TryPublishError::Full),
            "b still holds"
        );
        for k in 0..4u8 {
            assert_eq!(recv(&b).unwrap(), [round, k]);
        }
        assert_eq!(recv(&a), Err(TryRecvError::Empty));
        assert_eq!(recv(&b), Err(TryRecvError::Empty));
    }
    assert_eq!(
        p.try_publish(&[0; 17]),
        Err(TryPublishError::TooLarge { len: 17, max: 16 })
    );
    // A subscriber that leaves no longer holds publishers back.
    drop(b);
    for k in 0..4u8 {
        p.try_publish(&[k]).unwrap();
    }
    assert_eq!(p.try_publish(b"x"), Err(TryPublishError::Full));
    assert_eq!(t.ctl().stats(&t.ring()).subscribers, 1);
}

#[test]
fn no_subscriber_never_blocks_and_late_joiners_start_at_the_next() {
    let t = HeapTopic::new(4, 8, mode_word(false, 2));
    // SAFETY: `t` outlives the handles.
    let p = unsafe { t.publisher(1) };
    for k in 0..10u8 {
        p.try_publish(&[k]).unwrap();
    }
    // SAFETY: as above.
    let s = unsafe { t.subscriber(2, 0).unwrap() };
    assert_eq!(recv(&s), Err(TryRecvError::Empty));
    p.try_publish(b"n").unwrap();
    assert_eq!(recv(&s).unwrap(), b"n");
    // History: the last 3 of the ring (9 + "n" are the newest).
    // SAFETY: as above.
    let h = unsafe { t.subscriber(3, 3).unwrap() };
    assert_eq!(recv(&h).unwrap(), [8]);
    assert_eq!(recv(&h).unwrap(), [9]);
    assert_eq!(recv(&h).unwrap(), b"n");
    assert_eq!(recv(&h), Err(TryRecvError::Empty));
    // More history than the ring holds is capped at a ring.
    // SAFETY: as above.
    let full = unsafe { t.subscriber(4, 100) };
    assert_eq!(
        full.unwrap_err(),
        SubscribeError::TooManySubscribers { max: 2 }
    );
}

#[test]
fn lossy_subscriber_is_told_what_it_missed() {
    let t = HeapTopic::new(4, 8, mode_word(true, 2));
    // SAFETY: `t` outlives the handles.
    let (p, s) = unsafe { (t.publisher(1), t.subscriber(2, 0).unwrap()) };
    for k in 0..10u8 {
        p.try_publish(&[k]).unwrap();
    }
    // tail 10: positions 7..=9 are surely in the ring (6 may be under a claim).
    assert_eq!(recv(&s), Err(TryRecvError::Lagged(7)));
    assert_eq!(recv(&s).unwrap(), [7]);
    assert_eq!(recv(&s).unwrap(), [8]);
    assert_eq!(recv(&s).unwrap(), [9]);
    assert_eq!(recv(&s), Err(TryRecvError::Empty));
    p.try_publish(b"a").unwrap();
    assert_eq!(recv(&s).unwrap(), b"a");
}

#[test]
fn tombstones_are_skipped_and_claims_commit() {
    let t = HeapTopic::new(4, 16, mode_word(false, 2));
    // SAFETY: `t` outlives the handles.
    let (p, s) = unsafe { (t.publisher(1), t.subscriber(2, 0).unwrap()) };
    drop(p.try_claim(3).unwrap());
    let mut c = p.try_claim(11).unwrap();
    c.write_at(0, b"hello, ");
    c.write_at(8, b"you");
    c.commit();
    assert_eq!(recv(&s).unwrap(), b"hello, \0you");
    assert_eq!(recv(&s), Err(TryRecvError::Empty));
}

#[test]
fn recovery_of_publisher_and_subscriber() {
    let t = HeapTopic::new(2, 8, mode_word(false, 2));
    // SAFETY: `t` outlives the handles.
    let (dead, live) = unsafe { (t.publisher(7), t.publisher(1)) };
    // SAFETY: as above.
    let (ds, s) = unsafe { (t.subscriber(7, 0).unwrap(), t.subscriber(2, 0).unwrap()) };
    core::mem::forget(ds);
    core::mem::forget(dead.try_claim(1).unwrap());
    live.try_publish(b"b").unwrap();
    assert_eq!(recv(&s), Err(TryRecvError::Empty), "behind the claim");
    let r = t.recover_owner(7);
    assert_eq!(
        r,
        TopicRecovery {
            tombstoned: 1,
            unsubscribed: 1
        }
    );
    assert_eq!(recv(&s).unwrap(), b"b");
    for k in 0..8u8 {
        live.try_publish(&[k]).unwrap();
        assert_eq!(recv(&s).unwrap(), [k]);
    }
}

#[test]
fn corrupt_states_are_reported() {
    let t = HeapTopic::new(4, 8, mode_word(false, 2));
    // SAFETY: `t` outlives the handles.
    let (p, s) = unsafe { (t.publisher(1), t.subscriber(2, 0).unwrap()) };
    t.ring().state(0).store(pack(2, 0), Ordering::Relaxed);
    assert!(matches!(
        p.try_publish(b"x"),
        Err(TryPublishError::Corrupt(_))
    ));
    assert!(matches!(recv(&s), Err(TryRecvError::Corrupt(_))));
    let t = HeapTopic::new(4, 8, mode_word(false, 2));
    // SAFETY: as above.
    let (p, s) = unsafe { (t.publisher(1), t.subscriber(2, 0).unwrap()) };
    p.try_publish(b"x").unwrap();
    t.ring().write_len(0, 99);
    assert!(matches!(recv(&s), Err(TryRecvError::Corrupt(_))));
    p.try_publish(b"y").unwrap();
    assert_eq!(recv(&s).unwrap(), b"y");
    // `tail` far ahead of its slots.
    t.ctl().tail.store(1 << 40, Ordering::Relaxed);
    assert!(matches!(
        p.try_publish(b"z"),
        Err(TryPublishError::Corrupt(_))
    ));
    // A scribbled tombstone at a publisher's slot.
    let t = HeapTopic::new(4, 8, mode_word(true, 2));
    // SAFETY: as above.
    let p = unsafe { t.publisher(1) };
    t.ring().state(0).store(pack(0, TOMB), Ordering::Relaxed);
    assert!(matches!(
        p.try_publish(b"x"),
        Err(TryPublishError::Corrupt(_))
    ));
}

/// A subscriber that joins while a slow publisher still writes the previous
/// lap of its first slot waits for it (found by the threaded stress test:
/// the state `(c - slots, k)` was reported as corrupt).
#[test]
fn previous_lap_still_being_written_is_not_yet() {
    let t = HeapTopic::new(2, 8, mode_word(false, 2));
    // SAFETY: `t` outlives the handles.
    let (slow, fast) = unsafe { (t.publisher(1), t.publisher(2)) };
    let mut c = slow.try_claim(1).unwrap();
    fast.try_publish(b"b").unwrap();
    // SAFETY: as above.
    let s = unsafe { t.subscriber(3, 0).unwrap() };
    assert_eq!(s.position(), 2);
    assert_eq!(recv(&s), Err(TryRecvError::Empty));
    assert!(s.stalling_claim().is_some(), "the slow claim holds it up");
    c.write_at(0, b"a");
    c.commit();
    assert_eq!(recv(&s), Err(TryRecvError::Empty));
    fast.try_publish(b"c").unwrap();
    assert_eq!(recv(&s).unwrap(), b"c");
}
