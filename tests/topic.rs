//! Threaded stress tests of topics on the heap: several publishers and
//! subscribers on tiny and larger rings, lossless (every subscriber gets every
//! message, all in the same order) and lossy (whole messages or exact missed
//! counts), blocking and non-blocking calls, abandoned claims, and
//! subscribers that join and leave while publishers run.
#![cfg(not(loom))]

use shmbus::sync::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;

use shmbus::topic::{mode_word, HeapTopic, Publisher, RecvError, Subscriber, TryPublishError};

const PER_PUBLISHER: u64 = if cfg!(miri) { 200 } else { 30_000 };
const LEN: usize = 24;

/// A handle whose topic outlives it (the `Arc` is declared after it).
struct Held<T> {
    h: T,
    _heap: Arc<HeapTopic>,
}

fn publisher(heap: &Arc<HeapTopic>, me: u16) -> Held<Publisher> {
    // SAFETY: the handle is stored before a clone of the `Arc` that owns the
    // topic, so it is dropped first.
    let h = unsafe { heap.publisher(me) };
    Held {
        h,
        _heap: heap.clone(),
    }
}

fn subscriber(heap: &Arc<HeapTopic>, me: u16) -> Held<Subscriber> {
    // SAFETY: as in `publisher`.
    let h = unsafe { heap.subscriber(me, 0).unwrap() };
    Held {
        h,
        _heap: heap.clone(),
    }
}

/// Message `seq` of publisher `p`: both numbers, then a byte pattern derived
/// from them, so a torn or mixed message is caught.
fn message(p: u64, seq: u64) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(&p.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let x = (p * 1_000_003 + seq).to_le_bytes();
    b[16..].copy_from_slice(&x);
    b
}

fn check(b: &[u8]) -> (u64, u64) {
    assert_eq!(b.len(), LEN, "length");
    let p = u64::from_le_bytes(b[..8].try_into().unwrap());
    let s = u64::from_le_bytes(b[8..16].try_into().unwrap());
    assert_eq!(b, message(p, s), "torn message");
    (p, s)
}

fn publish_all(h: &Publisher, p: u64, blocking: bool) {
    for s in 0..PER_PUBLISHER {
        let m = message(p, s);
        if blocking {
            h.publish_until(&m, None, None).unwrap();
            continue;
        }
        let mut abandon = s % 21 == 0;
        loop {
            let r = if s % 7 == 0 {
                // Zero-copy, with an abandoned claim now and then (a
                // tombstone that subscribers skip).
                match h.try_claim(LEN) {
                    Ok(c) if abandon => {
                        drop(c);
                        abandon = false;
                        continue;
                    }
                    Ok(mut c) => {
                        c.write_at(0, &m);
                        c.commit();
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                h.try_publish(&m)
            };
            match r {
                Ok(()) => break,
                Err(TryPublishError::Full) => thread::yield_now(),
                Err(e) => panic!("publish: {e}"),
            }
        }
    }
}

/// `np` publishers, `ns` subscribers: each subscriber gets every message
/// once, each publisher's in order, and all subscribers in the same order.
fn lossless(slots: u64, np: u64, ns: u64, blocking: bool) {
    let heap = Arc::new(HeapTopic::new(slots, LEN as u64, mode_word(false, ns)));
    let subs: Vec<_> = (0..ns)
        .map(|k| {
            let s = subscriber(&heap, 100 + k as u16);
            thread::spawn(move || {
                let mut order = Vec::with_capacity((np * PER_PUBLISHER) as usize);
                let mut next = vec![0u64; np as usize];
                for _ in 0..np * PER_PUBLISHER {
                    let (p, q) = s.h.recv_with_until(None, None, check).unwrap();
                    assert_eq!(q, next[p as usize], "publisher {p}'s order");
                    next[p as usize] += 1;
                    order.push((p, q));
                }
                order
            })
        })
        .collect();
    let pubs: Vec<_> = (0..np)
        .map(|p| {
            let h = publisher(&heap, 1 + p as u16);
            thread::spawn(move || publish_all(&h.h, p, blocking))
        })
        .collect();
    for t in pubs {
        t.join().unwrap();
    }
    let orders: Vec<_> = subs.into_iter().map(|t| t.join().unwrap()).collect();
    for o in &orders[1..] {
        assert!(o == &orders[0], "subscribers saw different orders");
    }
}

#[test]
fn lossless_tiny_ring() {
    lossless(2, 2, 2, false);
}

#[test]
fn lossless_blocking() {
    lossless(8, 2, 3, true);
}

#[test]
fn lossless_larger_ring() {
    lossless(256, 3, 2, false);
}

/// Lossy: every message a subscriber gets is whole and newer than the one
/// before from that publisher; what it got plus what it was told it missed
/// is every position published (no tombstones here).
#[test]
fn lossy_counts_are_exact() {
    let np = 2;
    let heap = Arc::new(HeapTopic::new(8, LEN as u64, mode_word(true, 4)));
    let stop = Arc::new(AtomicU32::new(0));
    let subs: Vec<_> = (0..3)
        .map(|k| {
            let s = subscriber(&heap, 100 + k as u16);
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut got, mut missed) = (0u64, 0u64);
                let mut last = vec![None::<u64>; np];
                loop {
                    match s.h.try_recv_with(check) {
                        Ok((p, q)) => {
                            got += 1;
                            if let Some(l) = last[p as usize] {
                                assert!(q > l, "publisher {p}: {q} after {l}");
                            }
                            last[p as usize] = Some(q);
                            if k == 0 && got % 64 == 0 {
                                // A slow one: made to lag.
                                thread::sleep(std::time::Duration::from_micros(50));
                            }
                        }
                        Err(shmbus::topic::TryRecvError::Lagged(n)) => missed += n,
                        Err(shmbus::topic::TryRecvError::Empty) => {
                            if stop.load(Ordering::Acquire) == 1 {
                                // Drain once more, then stop.
                                if s.h.pending() == 0 {
                                    break;
                                }
                            }
                            thread::yield_now();
                        }
                        Err(e) => panic!("recv: {e}"),
                    }
                }
                (got, missed)
            })
        })
        .collect();
    let pubs: Vec<_> = (0..np)
        .map(|p| {
            let h = publisher(&heap, 1 + p as u16);
            thread::spawn(move || {
                for s in 0..PER_PUBLISHER {
                    h.h.try_publish(&message(p as u64, s)).unwrap_or_else(|e| {
                        // Only a slot whose previous lap is still being
                        // written refuses; wait for it.
                        assert_eq!(e, TryPublishError::Full);
                        h.h.publish_until(&message(p as u64, s), None, None)
                            .unwrap();
                    });
                }
            })
        })
        .collect();
    for t in pubs {
        t.join().unwrap();
    }
    stop.store(1, Ordering::Release);
    let total = np as u64 * PER_PUBLISHER;
    for t in subs {
        let (got, missed) = t.join().unwrap();
        assert_eq!(got + missed, total, "got {got} missed {missed}");
    }
}

/// Subscribers join and leave while two publishers run: a joiner gets a
/// gapless run from where it joined (never an overwritten message), and
/// lossless publishers are never held back by one that left.
#[test]
fn joining_and_leaving() {
    let heap = Arc::new(HeapTopic::new(4, LEN as u64, mode_word(false, 3)));
    let pubs: Vec<_> = (0..2)
        .map(|p| {
            let h = publisher(&heap, 1 + p as u16);
            thread::spawn(move || publish_all(&h.h, p, true))
        })
        .collect();
    let joiners: Vec<_> = (0..2)
        .map(|k| {
            let heap = heap.clone();
            thread::spawn(move || {
                let mut rounds = 0;
                while rounds < 200 {
                    let s = subscriber(&heap, 50 + k);
                    let mut next = [None::<u64>; 2];
                    for _ in 0..50 {
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_millis(20);
                        match s.h.recv_with_until(Some(deadline), None, check) {
                            Ok((p, q)) => {
                                if let Some(n) = next[p as usize] {
                                    assert_eq!(q, n, "gap in publisher {p}'s run");
                                }
                                next[p as usize] = Some(q + 1);
                            }
                            Err(RecvError::Timeout) => break,
                            Err(e) => panic!("recv: {e}"),
                        }
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    for t in joiners {
        t.join().unwrap();
    }
    for t in pubs {
        t.join().unwrap();
    }
}
