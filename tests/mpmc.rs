//! Threaded stress tests of the MPMC queue on the heap: many producers and
//! consumers, tiny and larger rings, blocking and non-blocking calls,
//! abandoned claims, and `join`. Counts shrink under Miri.
#![cfg(not(loom))]

use shmbus::sync::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use shmbus::queue::{HeapQueue, Queue, TryGetError, TryPutError};

const PER_PRODUCER: u64 = if cfg!(miri) { 200 } else { 50_000 };

/// A handle whose queue outlives it (the `Arc` is declared after it).
struct Held {
    q: Queue,
    _heap: Arc<HeapQueue>,
}

fn handle(heap: &Arc<HeapQueue>, me: u16) -> Held {
    // SAFETY: the handle is stored before a clone of the `Arc` that owns the
    // queue, so it is dropped first.
    let q = unsafe { heap.handle(me) };
    Held {
        q,
        _heap: heap.clone(),
    }
}

fn item(p: u64, seq: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&p.to_le_bytes());
    b[8..].copy_from_slice(&seq.to_le_bytes());
    b
}

/// `np` producers and `nc` consumers on `slots` slots; every item arrives
/// exactly once and in order per producer and consumer.
fn run(slots: u64, np: u64, nc: u64, blocking: bool) {
    let heap = Arc::new(HeapQueue::new(slots, 16));
    let done = Arc::new(AtomicU32::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let total = np * PER_PRODUCER;
    let producers: Vec<_> = (0..np)
        .map(|p| {
            let h = handle(&heap, 1 + p as u16);
            thread::spawn(move || {
                for s in 0..PER_PRODUCER {
                    let it = item(p, s);
                    if blocking {
                        h.q.put_until(&it, None, None).unwrap();
                    } else if s % 5 == 0 {
                        // Zero-copy, and now and then an abandoned claim
                        // first (a tombstone that consumers skip).
                        let mut abandon = s % 15 == 0;
                        loop {
                            match h.q.try_claim(16) {
                                Ok(c) if abandon => {
                                    drop(c);
                                    abandon = false;
                                }
                                Ok(mut c) => {
                                    c.as_mut_slice().copy_from_slice(&it);
                                    c.commit();
                                    break;
                                }
                                Err(TryPutError::Full) => thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    } else {
                        loop {
                            match h.q.try_put(&it) {
                                Ok(()) => break,
                                Err(TryPutError::Full) => thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..nc)
        .map(|c| {
            let h = handle(&heap, 100 + c as u16);
            let done = done.clone();
            let taken = taken.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut last = vec![None::<u64>; np as usize];
                loop {
                    let claim = if blocking {
                        match h.q.get_claim_until(
                            Some(std::time::Instant::now() + std::time::Duration::from_millis(20)),
                            None,
                        ) {
                            Ok(c) => c,
                            Err(_) if done.load(Ordering::Acquire) != 0 => break,
                            Err(_) => continue,
                        }
                    } else {
                        match h.q.try_get_claim() {
                            Ok(c) => c,
                            Err(TryGetError::Empty) if done.load(Ordering::Acquire) != 0 => break,
                            Err(TryGetError::Empty) => {
                                thread::yield_now();
                                continue;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    };
                    let v = claim.as_slice();
                    let p = u64::from_le_bytes(v[..8].try_into().unwrap());
                    let s = u64::from_le_bytes(v[8..].try_into().unwrap());
                    drop(claim);
                    h.q.task_done().unwrap();
                    if let Some(prev) = last[p as usize] {
                        assert!(s > prev, "producer {p}: {s} after {prev}");
                    }
                    last[p as usize] = Some(s);
                    got.push((p, s));
                    if taken.fetch_add(1, Ordering::AcqRel) + 1 == total {
                        done.store(1, Ordering::Release);
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<(u64, u64)> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all.len() as u64, total, "lost or duplicated items");
    for (i, (p, s)) in all.iter().enumerate() {
        assert_eq!((*p, *s), (i as u64 / PER_PRODUCER, i as u64 % PER_PRODUCER));
    }
    let h = handle(&heap, 999);
    assert!(h.q.is_empty());
    h.q.join_until(Some(std::time::Instant::now()), None)
        .expect("every item marked done");
}

#[test]
fn four_by_four_tiny_ring_nonblocking() {
    run(2, 4, 4, false);
}

#[test]
fn four_by_four_blocking() {
    run(64, 4, 4, true);
}

#[test]
fn one_by_three_and_three_by_one() {
    run(8, 1, 3, true);
    run(8, 3, 1, false);
}
