//! loom models of the daemon's recovery of a dead peer, with the crash point
//! varied: for every step of every operation of the pipe, the queue and the
//! seqlock, a victim thread runs the **real** code up to that step and returns
//! (the core's crash hook, [`shmbus::sync::CrashPoint`], armed per loom
//! thread), a survivor runs concurrently or sleeps, and the daemon's recovery
//! function runs after the victim's `join()` (DESIGN.md §5, §7). Each model
//! then checks: no committed message lost or duplicated, no torn value, the
//! unfinished count exact, the channel usable by a newcomer, and every sleeper
//! woken (the futex stand-in turns a lost wake-up into a loom deadlock).
//!
//! One `loom::model` per crash point; each prints its number of executions
//! (`--nocapture`). Capacities are the smallest: a 64-byte pipe, a queue of
//! two one-word slots, a two-word seqlock array.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_recovery`
#![cfg(loom)]

mod loom_common;
use loom_common::{get, handle, model, put, read_pair, SLOT, SLOTS};

use loom::sync::Arc;
use loom::thread;
use shmbus::pipe::{Consumer, HeapPipe, Producer, MIN_CAPACITY};
use shmbus::pipe::{RecvError, SendError, TryRecvError, TrySendError};
use shmbus::queue::{HeapQueue, Queue, TryGetError, TryPutError};
use shmbus::seqlock::HeapSeqlock;
use shmbus::sync::{crash, CrashPoint, CRASHED};

// ---------------------------------------------------------------- pipe ----

const P_VICTIM: u16 = 1;
const P_SURVIVOR: u16 = 2;
const P_NEWCOMER: u16 = 3;

/// The payload of frame `seq` (8 bytes), so a lost, duplicated or torn frame
/// shows.
fn frame(seq: usize) -> Vec<u8> {
    (0..8).map(|i| (seq as u8) * 16 + i as u8 + 1).collect()
}

fn producer(pipe: &HeapPipe, me: u16) -> Producer {
    // SAFETY: every model joins the threads that use the endpoint, or forgets
    // the endpoint, before the `Arc` holding `pipe` goes.
    unsafe { pipe.producer(me) }.expect("attach producer")
}

fn consumer(pipe: &HeapPipe, me: u16) -> Consumer {
    // SAFETY: as in `producer`.
    unsafe { pipe.consumer(me) }.expect("attach consumer")
}

/// Pipe producer crash points; `None` is a crash while attached and idle.
const PIPE_PRODUCER_POINTS: [Option<CrashPoint>; 4] = [
    Some(CrashPoint::PipeReserved),
    Some(CrashPoint::PipeWritten),
    Some(CrashPoint::PipePublished),
    None,
];

/// The producer sends frame 0, then dies while sending frame 1 at `point`.
/// The consumer blocks for frames until `Disconnected` meanwhile; the daemon
/// releases the dead end after `join`, and only that can wake it (the daemon
/// waits for the consumer before anything else happens). The consumer gets
/// frame 0 and frame 1 exactly when its `tail` was published, then
/// `Disconnected`. A new producer then attaches where the dead one's last
/// published record ends, and its frame 2 follows.
#[test]
fn pipe_producer_crash_points() {
    for point in PIPE_PRODUCER_POINTS {
        model(&format!("pipe producer dies at {point:?}"), move || {
            let pipe = Arc::new(HeapPipe::new(MIN_CAPACITY));
            let tx = producer(&pipe, P_VICTIM);
            let rx = consumer(&pipe, P_SURVIVOR);
            let p = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut tx = tx;
                    tx.try_send(&frame(0)).unwrap();
                    crash::arm(point);
                    let r = tx.try_send(&frame(1));
                    match point {
                        Some(CrashPoint::PipeReserved) => {
                            assert_eq!(r, Err(TrySendError::Corrupt(CRASHED)));
                        }
                        _ => r.unwrap(),
                    }
                    assert_eq!(crash::fired(), point.is_some(), "crash hook reached");
                    std::mem::forget(tx);
                    drop(pipe);
                })
            };
            let c = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut rx = rx;
                    let mut got = Vec::new();
                    loop {
                        match rx.recv_with_until(None, None, <[u8]>::to_vec) {
                            Ok(v) => got.push(v),
                            Err(RecvError::Disconnected) => break,
                            Err(e) => panic!("recv: {e}"),
                        }
                    }
                    let _keep = pipe;
                    (rx, got)
                })
            };
            p.join().unwrap();
            // The daemon, once the death is confirmed.
            assert_eq!(pipe.ctl().release_owner(P_VICTIM), 1);
            assert_eq!(pipe.ctl().release_owner(P_VICTIM), 0, "idempotent");
            let (mut rx, mut got) = c.join().unwrap();
            let mut tx2 = producer(&pipe, P_NEWCOMER);
            tx2.try_send(&frame(2)).unwrap();
            drop(tx2);
            loop {
                match rx.try_recv_with(<[u8]>::to_vec) {
                    Ok(v) => got.push(v),
                    Err(TryRecvError::Disconnected) => break,
                    Err(e) => panic!("drain: {e}"),
                }
            }
            drop(rx);
            let committed = matches!(point, Some(CrashPoint::PipePublished) | None);
            let want: Vec<_> = if committed {
                vec![frame(0), frame(1), frame(2)]
            } else {
                vec![frame(0), frame(2)]
            };
            assert_eq!(got, want);
        });
    }
}

/// The consumer takes one frame and dies at `point` (after reading it, before
/// or after advancing `head`) while the producer keeps sending, blocked on the
/// full ring. The daemon's release wakes the producer with `Disconnected`; a
/// new consumer attaches at the dead one's `head`. A frame read but not
/// released is delivered again (the pipe is at-least-once for a dying
/// consumer); every other frame exactly once, in order. The producer left
/// before the new consumer attached, so after the last frame it waits for a
/// producer (`Empty`), not end of file.
#[test]
fn pipe_consumer_crash_points() {
    for point in [CrashPoint::PipeRead, CrashPoint::PipeReleased] {
        model(&format!("pipe consumer dies at {point:?}"), move || {
            let pipe = Arc::new(HeapPipe::new(MIN_CAPACITY));
            let tx = producer(&pipe, P_SURVIVOR);
            let rx = consumer(&pipe, P_VICTIM);
            let c = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut rx = rx;
                    crash::arm(Some(point));
                    let v = rx.recv_with_until(None, None, <[u8]>::to_vec).unwrap();
                    assert_eq!(v, frame(0));
                    assert!(crash::fired(), "crash hook reached");
                    std::mem::forget(rx);
                    drop(pipe);
                })
            };
            let p = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut tx = tx;
                    let mut sent = 0;
                    let err = loop {
                        match tx.send_until(&frame(sent), None, None) {
                            Ok(()) => sent += 1,
                            Err(e) => break e,
                        }
                    };
                    assert_eq!(err, SendError::Disconnected);
                    drop(tx);
                    drop(pipe);
                    sent
                })
            };
            c.join().unwrap();
            assert_eq!(pipe.ctl().release_owner(P_VICTIM), 1);
            let sent = p.join().unwrap();
            // Four 16-byte records fill the ring; a released frame makes room
            // for a fifth.
            let released = point == CrashPoint::PipeReleased;
            assert_eq!(sent, if released { 5 } else { 4 });
            let mut rx2 = consumer(&pipe, P_NEWCOMER);
            let first = usize::from(released);
            for seq in first..sent {
                assert_eq!(rx2.try_recv_with(<[u8]>::to_vec).unwrap(), frame(seq));
            }
            assert_eq!(rx2.try_recv_with(|_| ()), Err(TryRecvError::Empty));
        });
    }
}

// --------------------------------------------------------------- queue ----

const Q_VICTIM: u16 = 1;
const Q_SURVIVOR: u16 = 2;
const Q_NEWCOMER: u16 = 3;

/// Every item left, without blocking.
fn drain(q: &Queue) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        match q.try_get_claim() {
            Ok(c) => got.push(c.to_vec()[0]),
            Err(TryGetError::Empty) => return got,
            Err(e) => panic!("drain: {e}"),
        }
    }
}

/// Marks `n` items done, then `join` must return (a count left too high
/// deadlocks here) and one more `task_done` must fail (a count left too low
/// fails before that).
fn finish(q: &Queue, n: u64) {
    assert_eq!(q.unfinished(), n, "unfinished count");
    for _ in 0..n {
        q.task_done().expect("task_done");
    }
    q.join_until(None, None).unwrap();
    assert!(q.task_done().is_err(), "one task_done too many");
}

/// The queue goes on working for a newcomer: two laps of put and get.
fn still_works(q: &Queue) {
    for v in 100..104 {
        q.try_put(&[v]).unwrap();
        assert_eq!(q.try_get_claim().unwrap().to_vec(), [v]);
    }
}

const QUEUE_PRODUCER_POINTS: [CrashPoint; 4] = [
    CrashPoint::QueueClaimed,
    CrashPoint::QueueReserved,
    CrashPoint::QueueWritten,
    CrashPoint::QueuePublished,
];

/// The victim puts item 1 and dies at `point`. Whether item 1 is committed.
fn victim_put(q: &Queue, point: CrashPoint) -> bool {
    crash::arm(Some(point));
    let r = q.try_put(&[1]);
    assert!(crash::fired(), "crash hook reached");
    match point {
        CrashPoint::QueueClaimed | CrashPoint::QueueReserved => {
            assert_eq!(r, Err(TryPutError::Corrupt(CRASHED)));
            false
        }
        CrashPoint::QueueWritten => {
            r.unwrap();
            false
        }
        _ => {
            r.unwrap();
            true
        }
    }
}

/// The victim dies while putting item 1; a survivor puts item 2 and then
/// takes one item, blocking: a write claim at the head of the queue looks
/// empty to consumers, so while the victim's cell is unrepaired the survivor
/// sleeps behind it, and the recovery's tombstone and notify must wake it. The
/// daemon repairs the cells after `join`, then drains as a newcomer: every
/// committed item is taken exactly once (item 2, and item 1 exactly when it
/// was published), and the unfinished count equals the number of committed
/// items: it is neither decremented for a put that was never counted nor left
/// holding a dead one.
#[test]
fn queue_producer_crash_points() {
    for point in QUEUE_PRODUCER_POINTS {
        model(&format!("queue producer dies at {point:?}"), move || {
            producer_crash(point, SLOTS, &[]);
        });
    }
}

/// As [`queue_producer_crash_points`] on four slots, the victim having put
/// item 3 already: it dies in a put that follows its own claim (so it does
/// not check that claim's tag), and the survivor's put may come between its
/// two claims, after them, or before. The count of unfinished items stays
/// exact.
#[test]
fn queue_producer_crash_points_second_put() {
    for point in QUEUE_PRODUCER_POINTS {
        model(
            &format!("queue producer dies at {point:?}, second put"),
            move || producer_crash(point, 4, &[3]),
        );
    }
}

/// One model of [`queue_producer_crash_points`]: on a queue of `slots`, the
/// victim puts `before` and then dies at `point` while putting item 1.
fn producer_crash(point: CrashPoint, slots: u64, before: &[u8]) {
    let heap = Arc::new(HeapQueue::new(slots, SLOT));
    let victim = handle(&heap, Q_VICTIM);
    let survivor = handle(&heap, Q_SURVIVOR);
    for &v in before {
        victim.try_put(&[v]).unwrap();
    }
    let v = thread::spawn(move || victim_put(&victim, point));
    let s = thread::spawn(move || {
        put(&survivor, 2);
        get(&survivor)
    });
    let committed = v.join().unwrap();
    // The daemon, once the death is confirmed.
    let r = heap.recover_owner(Q_VICTIM);
    let held = !matches!(point, CrashPoint::QueuePublished);
    assert_eq!((r.tombstoned, r.released), (u32::from(held), 0));
    assert_eq!(heap.recover_owner(Q_VICTIM).tombstoned, 0, "idempotent");
    let mut got = vec![s.join().unwrap()];
    let c = handle(&heap, Q_NEWCOMER);
    got.extend(drain(&c));
    got.sort_unstable();
    let mut want = before.to_vec();
    want.push(2);
    if committed {
        want.push(1);
    }
    want.sort_unstable();
    assert_eq!(got, want);
    finish(&c, want.len() as u64);
    still_works(&c);
}

/// The victim dies while putting item 1 as a consumer sleeps waiting for
/// it. When the put was published (`QueuePublished`, dead before its notify)
/// the recovery must wake the consumer; otherwise nothing is waiting, and a
/// newcomer's put wakes it.
#[test]
fn queue_producer_crash_wakes_consumer() {
    for point in QUEUE_PRODUCER_POINTS {
        model(
            &format!("queue producer dies at {point:?}, consumer asleep"),
            move || {
                let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
                let victim = handle(&heap, Q_VICTIM);
                let survivor = handle(&heap, Q_SURVIVOR);
                let v = thread::spawn(move || victim_put(&victim, point));
                let s = thread::spawn(move || get(&survivor));
                let committed = v.join().unwrap();
                heap.recover_owner(Q_VICTIM);
                let c = handle(&heap, Q_NEWCOMER);
                if committed {
                    // Only the recovery can wake the survivor now.
                    assert_eq!(s.join().unwrap(), 1);
                    c.try_put(&[2]).unwrap();
                } else {
                    c.try_put(&[2]).unwrap();
                    assert_eq!(s.join().unwrap(), 2);
                }
                let left = drain(&c);
                assert_eq!(left, if committed { vec![2] } else { vec![] });
                finish(&c, if committed { 2 } else { 1 });
                still_works(&c);
            },
        );
    }
}

/// The queue is full (items 1 and 2); the victim takes item 1 and dies at
/// `point` while a survivor producer blocks putting item 3. At
/// `QueueGetClaimed` the victim dies before advancing `dequeue_pos`, so the
/// released cell is ahead of that position (by `slots - 1` or `slots` once
/// the survivor reuses it): the newcomer must help the position on, not
/// report the queue corrupt (`Queue::help_past`). The recovery
/// releases a read claim the victim held and must wake the producer (also when
/// the victim had released the cell but died before its notify). Item 1 is
/// gone with the victim (the queue is at-most-once for a dying consumer):
/// the newcomer gets 2 and 3, never 1 again, and item 1 stays unfinished, as
/// an item taken and never marked done does.
#[test]
fn queue_consumer_crash_points() {
    for point in [
        CrashPoint::QueueGetClaimed,
        CrashPoint::QueueTaken,
        CrashPoint::QueueCopied,
        CrashPoint::QueueFreed,
    ] {
        model(&format!("queue consumer dies at {point:?}"), move || {
            let heap = Arc::new(HeapQueue::new(SLOTS, SLOT));
            let victim = handle(&heap, Q_VICTIM);
            let survivor = handle(&heap, Q_SURVIVOR);
            survivor.try_put(&[1]).unwrap();
            survivor.try_put(&[2]).unwrap();
            let v = thread::spawn(move || {
                crash::arm(Some(point));
                let r = victim.try_get_claim().map(|c| c.to_vec());
                assert!(crash::fired(), "crash hook reached");
                match point {
                    CrashPoint::QueueGetClaimed | CrashPoint::QueueTaken => {
                        assert_eq!(r, Err(TryGetError::Corrupt(CRASHED)));
                    }
                    _ => assert_eq!(r, Ok(vec![1])),
                }
            });
            let s = thread::spawn(move || put(&survivor, 3));
            v.join().unwrap();
            let r = heap.recover_owner(Q_VICTIM);
            let held = point != CrashPoint::QueueFreed;
            assert_eq!((r.tombstoned, r.released), (0, u32::from(held)));
            s.join().unwrap();
            let c = handle(&heap, Q_NEWCOMER);
            assert_eq!(drain(&c), [2, 3]);
            // Items 1 (taken by the dead consumer, never done), 2 and 3.
            finish(&c, 3);
            still_works(&c);
        });
    }
}

// ------------------------------------------------------------- seqlock ----

const S_VICTIM: u16 = 1;
const S_SURVIVOR: u16 = 2;
const S_NEWCOMER: u16 = 3;

/// A writer holding `[1, 1]` at generation 1 dies writing `[2, 2]` at
/// `point`. A survivor writer waits for the lock meanwhile (or, in a second
/// run when the victim published, first waits for the change), then writes
/// `[3, 3]`; the
/// main thread reads concurrently, then serves as the daemon. No read is torn
/// or shows the victim's unpublished copy, the survivor is woken (by the
/// recovery when the victim died holding the lock or before its notify), and
/// a newcomer can lock afterwards.
#[test]
fn seqlock_writer_crash_points() {
    for (point, wait_change) in [
        (CrashPoint::SeqlockLocked, false),
        (CrashPoint::SeqlockHalfWritten, false),
        (CrashPoint::SeqlockWritten, false),
        (CrashPoint::SeqlockPublished, false),
        (CrashPoint::SeqlockPublished, true),
    ] {
        let name = format!(
            "seqlock writer dies at {point:?}, survivor waits for the change: {wait_change}"
        );
        model(&name, move || {
            let h = Arc::new(HeapSeqlock::new::<u64>(2));
            {
                // SAFETY: `h` outlives the handle.
                let s = unsafe { h.handle() };
                let mut w = s.try_lock(S_NEWCOMER).unwrap();
                w.write(&[1u64, 1]);
                assert_eq!(w.publish(), 1);
            }
            let published = point == CrashPoint::SeqlockPublished;
            let v = {
                let h = h.clone();
                thread::spawn(move || {
                    // SAFETY: `h` lives in this thread as long as `s`.
                    let s = unsafe { h.handle() };
                    crash::arm(Some(point));
                    let mut w = s.lock(S_VICTIM, None, None).unwrap();
                    // The survivor starts once the victim holds the lock, so
                    // that the victim's write is generation 2.
                    let survivor = {
                        let h = h.clone();
                        thread::spawn(move || {
                            // SAFETY: as above.
                            let s = unsafe { h.handle() };
                            if wait_change {
                                s.wait_changed(1, None, None).unwrap();
                            }
                            let mut w = s.lock(S_SURVIVOR, None, None).unwrap();
                            w.write(&[3u64, 3]);
                            w.publish()
                        })
                    };
                    w.write(&[2u64, 2]);
                    if crash::fired() {
                        std::mem::forget(w);
                    } else {
                        assert_eq!(w.publish(), 2);
                        assert!(crash::fired(), "crash hook reached");
                    }
                    survivor
                })
            };
            let (x, g) = read_pair(&h);
            let ok = match g {
                1 => x == 1,
                2 => x == if published { 2 } else { 3 },
                3 => published && x == 3,
                _ => false,
            };
            assert!(ok, "value {x} at generation {g}");
            let s = v.join().unwrap();
            // The daemon: clears a lock the victim died holding.
            assert_eq!(h.ctl().recover_owner(S_VICTIM), !published);
            let g3 = s.join().unwrap();
            assert_eq!(g3, if published { 3 } else { 2 });
            assert_eq!(read_pair(&h), (3, g3));
            // SAFETY: as above.
            let s = unsafe { h.handle() };
            let mut w = s.try_lock(S_NEWCOMER).expect("lock free after recovery");
            w.write(&[4u64, 4]);
            assert_eq!(w.publish(), g3 + 1);
        });
    }
}
