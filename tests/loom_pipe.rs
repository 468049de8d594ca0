//! loom models of the SPSC pipe: non-blocking and blocking transfer with
//! wrap-around (one frame at a time and in batches), zero-copy claims, disconnection and the FIFO end-of-file rule
//! (a consumer attached after a producer left waits for the next one; one attached with an earlier mark ends after it), and
//! the daemon's recovery of a crashed endpoint.
//!
//! One loom thread models one process; a crash is a thread that returns with its
//! endpoint forgotten, and the daemon's recovery runs after `join()`
//! (DESIGN.md §7). Each ring word is a loom `UnsafeCell`, so a producer write
//! that races a consumer read of the same word fails the model; the futex is a
//! mutex + condvar stand-in, so a lost wake-up fails it as a deadlock.
//!
//! All models use the smallest ring (64 bytes, so frames of at most 8 bytes
//! and records of 8 or 16 bytes) to wrap after four or five frames.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_pipe`
#![cfg(loom)]

mod loom_common;
use loom_common::model;

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use shmbus::pipe::{Consumer, HeapPipe, Producer, MIN_CAPACITY};
use shmbus::pipe::{RecvError, SendError, TryRecvError, TrySendError};

/// Ring capacity of every model: 8 words.
const CAP: u64 = MIN_CAPACITY;

/// Frame lengths that go twice round a 64-byte ring, each time with a PAD
/// record: records at 0..8, 8..24, 24..40, 40..56; the fifth (16 bytes) does
/// not fit in the last 8 bytes, so it is PAD 56..64 then 0..16; then 16..32,
/// 32..48, 48..56, and again PAD 56..64 then 0..16.
const WRAP_LENS: [usize; 9] = [0, 8, 5, 3, 7, 8, 1, 0, 2];

/// Owner tags (peer slot + 1) of the actors.
const PRODUCER: u16 = 1;
const CONSUMER: u16 = 2;
const NEW_PRODUCER: u16 = 3;
const NEW_CONSUMER: u16 = 4;

/// The payload of frame `seq`: bytes derived from the sequence number, so a
/// lost, duplicated, reordered or torn frame shows.
fn frame(seq: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(37).wrapping_add(i as u8 * 11 + 1))
        .collect()
}

/// An endpoint that keeps its pipe alive: fields drop in declaration order,
/// so the endpoint detaches before the last reference to the pipe can go.
struct Held<E> {
    end: E,
    pipe: Arc<HeapPipe>,
}

impl<E> Deref for Held<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.end
    }
}

impl<E> DerefMut for Held<E> {
    fn deref_mut(&mut self) -> &mut E {
        &mut self.end
    }
}

impl<E> Held<E> {
    /// Simulates the process dying: the endpoint is neither dropped nor
    /// detached (its owner tag stays in the endpoint word).
    fn crash(self) {
        let Held { end, pipe } = self;
        std::mem::forget(end);
        drop(pipe);
    }
}

fn producer(pipe: &Arc<HeapPipe>, me: u16) -> Held<Producer> {
    // SAFETY: the producer is stored next to a clone of the `Arc` that owns the
    // pipe, and `Held` drops (or forgets) the producer first.
    let end = unsafe { pipe.producer(me) }.expect("attach producer");
    Held {
        end,
        pipe: pipe.clone(),
    }
}

fn consumer(pipe: &Arc<HeapPipe>, me: u16) -> Held<Consumer> {
    // SAFETY: as in `producer`.
    let end = unsafe { pipe.consumer(me) }.expect("attach consumer");
    Held {
        end,
        pipe: pipe.clone(),
    }
}

/// Non-blocking send, yielding to the other model threads while full.
fn spin_send(tx: &mut Producer, f: &[u8]) {
    loop {
        match tx.try_send(f) {
            Ok(()) => return,
            Err(TrySendError::Full) => thread::yield_now(),
            Err(e) => panic!("try_send: {e}"),
        }
    }
}

/// Non-blocking receive, yielding while empty.
fn spin_recv(rx: &mut Consumer) -> Vec<u8> {
    loop {
        match rx.try_recv_with(<[u8]>::to_vec) {
            Ok(v) => return v,
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("try_recv_with: {e}"),
        }
    }
}

/// Blocking receive with no deadline: only a wake-up can end a sleep.
fn recv(rx: &mut Consumer) -> Result<Vec<u8>, RecvError> {
    rx.recv_with_until(None, None, <[u8]>::to_vec)
}

/// Blocking send with no deadline.
fn send(tx: &mut Producer, f: &[u8]) -> Result<(), SendError> {
    tx.send_until(f, None, None)
}

/// Whether some execution of a model reached the futex sleep path, judged by
/// the bell having been rung (it is only rung when a waiter had announced
/// itself). Models assert this once all executions have run, so that a model
/// which never sleeps cannot pass for one that checks sleeping.
struct SleepSeen(Mutex<[bool; 2]>);

impl SleepSeen {
    const fn new() -> Self {
        Self(Mutex::new([false; 2]))
    }

    fn record(&self, pipe: &HeapPipe) {
        let c = pipe.ctl();
        // Relaxed: read after every model thread was joined.
        let r = c.readable.bell.load(Ordering::Relaxed) != 0;
        let w = c.writable.bell.load(Ordering::Relaxed) != 0;
        let mut seen = self.0.lock().unwrap();
        seen[0] |= r;
        seen[1] |= w;
    }

    fn assert_readable(&self) {
        let seen = *self.0.lock().unwrap();
        assert!(seen[0], "no execution had the consumer sleep on `readable`");
    }

    fn assert_both(&self) {
        let seen = *self.0.lock().unwrap();
        assert!(seen[0], "no execution had the consumer sleep on `readable`");
        assert!(seen[1], "no execution had the producer sleep on `writable`");
    }
}

/// Model 1: `try_send`/`try_recv_with` with wrap-around (a PAD record), then
/// end of file once the producer has dropped.
#[test]
fn try_send_try_recv_wrap() {
    model("try_send_try_recv_wrap", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut tx = producer(&pipe, PRODUCER);
        let mut rx = consumer(&pipe, CONSUMER);
        let t = thread::spawn(move || {
            for (seq, &len) in WRAP_LENS.iter().enumerate() {
                spin_send(&mut tx, &frame(seq, len));
            }
        });
        for (seq, &len) in WRAP_LENS.iter().enumerate() {
            assert_eq!(spin_recv(&mut rx), frame(seq, len), "frame {seq}");
        }
        t.join().unwrap();
        assert_eq!(
            rx.try_recv_with(|_| ()),
            Err(TryRecvError::Disconnected),
            "producer dropped and ring drained"
        );
    });
}

/// Model 1b: the batch forms. The producer sends the frames with
/// `try_send_batch` (as many as fit, one publication), the consumer takes
/// them with `try_recv_batch_with` (at most three, one release), both across
/// the PAD records of the wrap; then end of file.
#[test]
fn batch_send_recv_wrap() {
    model("batch_send_recv_wrap", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut tx = producer(&pipe, PRODUCER);
        let mut rx = consumer(&pipe, CONSUMER);
        let t = thread::spawn(move || {
            let frames: Vec<Vec<u8>> = WRAP_LENS
                .iter()
                .enumerate()
                .map(|(seq, &len)| frame(seq, len))
                .collect();
            let mut rest = &frames[..];
            while !rest.is_empty() {
                match tx.try_send_batch(rest) {
                    Ok(n) => {
                        assert!(n >= 1, "a batch that succeeds sends a frame");
                        rest = &rest[n..];
                    }
                    Err(TrySendError::Full) => thread::yield_now(),
                    Err(e) => panic!("try_send_batch: {e}"),
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < WRAP_LENS.len() {
            match rx.try_recv_batch_with(3, |b| got.push(b.to_vec())) {
                Ok(n) => assert!((1..=3).contains(&n), "batch of {n}"),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("try_recv_batch_with: {e}"),
            }
        }
        for (seq, &len) in WRAP_LENS.iter().enumerate() {
            assert_eq!(got[seq], frame(seq, len), "frame {seq}");
        }
        t.join().unwrap();
        assert_eq!(
            rx.try_recv_batch_with(3, |_| ()),
            Err(TryRecvError::Disconnected),
            "producer dropped and ring drained"
        );
    });
}

/// Model 2: zero-copy. The producer claims, writes in place with `write_at`,
/// and commits; once per run it abandons a claim (dropping it publishes
/// nothing, and the bytes it wrote are overwritten). The consumer alternates
/// `try_recv_with` (borrowed in place) and `try_recv_into`.
#[test]
fn claim_commit_wrap() {
    model("claim_commit_wrap", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut tx = producer(&pipe, PRODUCER);
        let mut rx = consumer(&pipe, CONSUMER);
        let t = thread::spawn(move || {
            let mut abandoned = false;
            for (seq, &len) in WRAP_LENS.iter().enumerate() {
                let f = frame(seq, len);
                loop {
                    match tx.try_claim(len) {
                        Ok(mut c) => {
                            assert_eq!(c.len(), len);
                            if seq == 2 && !abandoned {
                                abandoned = true;
                                // Abandoned claim: scribble, let it go
                                // uncommitted, claim again.
                                c.write_at(0, &[0xEE; 8][..len]);
                                continue;
                            }
                            c.write_at(0, &f);
                            c.commit();
                            break;
                        }
                        Err(TrySendError::Full) => thread::yield_now(),
                        Err(e) => panic!("try_claim: {e}"),
                    }
                }
            }
        });
        let mut buf = Vec::new();
        for (seq, &len) in WRAP_LENS.iter().enumerate() {
            let got = if seq % 2 == 0 {
                spin_recv(&mut rx)
            } else {
                loop {
                    match rx.try_recv_into(&mut buf) {
                        Ok(n) => {
                            assert_eq!(n, buf.len());
                            break buf.clone();
                        }
                        Err(TryRecvError::Empty) => thread::yield_now(),
                        Err(e) => panic!("try_recv_into: {e}"),
                    }
                }
            };
            assert_eq!(got, frame(seq, len), "frame {seq}");
        }
        t.join().unwrap();
    });
}

static BLOCKING_SLEPT: SleepSeen = SleepSeen::new();

/// Model 3: blocking `send_until`/`recv_with_until` with no deadline. The
/// consumer starts on an empty ring and the producer sends more than fits
/// (56 bytes of records, then one that needs a PAD and 16 more), so each side
/// sleeps on its doorbell in some schedules; a lost wake-up is a deadlock.
#[test]
fn blocking_send_recv() {
    const LENS: [usize; 5] = [8, 8, 8, 0, 8];
    model("blocking_send_recv", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut tx = producer(&pipe, PRODUCER);
        let mut rx = consumer(&pipe, CONSUMER);
        let t = thread::spawn(move || {
            for (seq, &len) in LENS.iter().enumerate() {
                send(&mut tx, &frame(seq, len)).unwrap();
            }
        });
        for (seq, &len) in LENS.iter().enumerate() {
            assert_eq!(recv(&mut rx).unwrap(), frame(seq, len), "frame {seq}");
        }
        t.join().unwrap();
        assert_eq!(recv(&mut rx), Err(RecvError::Disconnected));
        BLOCKING_SLEPT.record(&pipe);
    });
    BLOCKING_SLEPT.assert_both();
}

/// Model 4a: the consumer blocks before the producer has ever attached (so it
/// must not see `Disconnected` then); the producer attaches, sends three
/// frames and drops. The consumer gets exactly those frames, then
/// `Disconnected`, and never hangs.
#[test]
fn consumer_sees_eof_after_frames() {
    const LENS: [usize; 3] = [8, 0, 5];
    model("consumer_sees_eof_after_frames", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut rx = consumer(&pipe, CONSUMER);
        let t = {
            let pipe = pipe.clone();
            thread::spawn(move || {
                let mut tx = producer(&pipe, PRODUCER);
                for (seq, &len) in LENS.iter().enumerate() {
                    send(&mut tx, &frame(seq, len)).unwrap();
                }
            })
        };
        for (seq, &len) in LENS.iter().enumerate() {
            assert_eq!(recv(&mut rx).unwrap(), frame(seq, len), "frame {seq}");
        }
        assert_eq!(recv(&mut rx), Err(RecvError::Disconnected));
        t.join().unwrap();
    });
}

static LATE_SLEPT: SleepSeen = SleepSeen::new();

/// Model 4c: the FIFO rule for a consumer that attaches after a producer
/// left. A producer sends frame 0 and drops before the consumer attaches; a
/// new producer (its own thread) then attaches, sends frame 1 and leaves, or
/// dies and has its end released by the daemon after `join`. The consumer,
/// blocking: frame 0 (left in the ring), then frame 1 (never end of file
/// before it, whether the new producer has attached yet or not), then
/// `Disconnected` once the new producer is gone; no lost wake-up, whether
/// the last wake comes from the producer's drop or the daemon's release.
#[test]
fn late_consumer_waits_for_the_next_producer() {
    for crash in [false, true] {
        let name = format!("late_consumer_waits_for_the_next_producer (crash: {crash})");
        model(&name, move || {
            let pipe = Arc::new(HeapPipe::new(CAP));
            {
                let mut tx = producer(&pipe, PRODUCER);
                tx.try_send(&frame(0, 8)).unwrap();
            }
            let rx = consumer(&pipe, CONSUMER);
            let p = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut tx = producer(&pipe, NEW_PRODUCER);
                    send(&mut tx, &frame(1, 3)).unwrap();
                    if crash {
                        tx.crash();
                    }
                })
            };
            let c = thread::spawn(move || {
                let mut rx = rx;
                assert_eq!(recv(&mut rx).unwrap(), frame(0, 8), "left in the ring");
                assert_eq!(recv(&mut rx).unwrap(), frame(1, 3), "the new producer's");
                assert_eq!(recv(&mut rx), Err(RecvError::Disconnected));
            });
            p.join().unwrap();
            if crash {
                // The daemon, once the death is confirmed.
                assert_eq!(pipe.ctl().release_owner(NEW_PRODUCER), 1);
            }
            c.join().unwrap();
            LATE_SLEPT.record(&pipe);
        });
    }
    LATE_SLEPT.assert_readable();
}

static PAIRED_SLEPT: SleepSeen = SleepSeen::new();

/// Model 3c (a pair made together, as `multiprocessing.Pipe()`): the
/// producers' mark is taken before either end attaches; the producer then
/// sends one frame and leaves (or crashes, released by the daemon) while the
/// consumer attaches with the mark, before, during or after that. Always:
/// the frame, then `Disconnected` — never a wait for a producer that will not
/// come (without the mark, a consumer attaching after the producer left
/// would wait for the next one: model 3b).
#[test]
fn paired_consumer_sees_eof_of_an_early_producer() {
    for crash in [false, true] {
        let name = format!("paired_consumer_sees_eof_of_an_early_producer (crash: {crash})");
        model(&name, move || {
            let pipe = Arc::new(HeapPipe::new(CAP));
            let mark = pipe.ctl().producers_mark();
            let p = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    let mut tx = producer(&pipe, PRODUCER);
                    send(&mut tx, &frame(0, 5)).unwrap();
                    if crash {
                        tx.crash();
                    }
                })
            };
            let c = {
                let pipe = pipe.clone();
                thread::spawn(move || {
                    // SAFETY: as in `consumer`.
                    let end = unsafe { pipe.consumer_since(CONSUMER, mark) }.expect("attach");
                    let mut rx = Held {
                        end,
                        pipe: pipe.clone(),
                    };
                    assert_eq!(recv(&mut rx).unwrap(), frame(0, 5));
                    assert_eq!(recv(&mut rx), Err(RecvError::Disconnected));
                })
            };
            p.join().unwrap();
            if crash {
                assert_eq!(pipe.ctl().release_owner(PRODUCER), 1);
            }
            c.join().unwrap();
            PAIRED_SLEPT.record(&pipe);
        });
    }
    PAIRED_SLEPT.assert_readable();
}

/// Model 4b: the consumer reads one frame and drops while the producer keeps
/// sending into a full ring. The ring holds four 16-byte records, so exactly
/// five sends succeed and the sixth returns `Disconnected` instead of hanging.
#[test]
fn producer_sees_disconnect_when_full() {
    model("producer_sees_disconnect_when_full", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let mut tx = producer(&pipe, PRODUCER);
        let mut rx = consumer(&pipe, CONSUMER);
        let t = thread::spawn(move || {
            assert_eq!(recv(&mut rx).unwrap(), frame(0, 8));
            drop(rx);
        });
        let mut sent = 0;
        let err = loop {
            match send(&mut tx, &frame(sent, 8)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, SendError::Disconnected);
        assert_eq!(sent, 5, "four fit, plus the one the consumer read");
        t.join().unwrap();
    });
}

/// Model 5a: the producer crashes after two frames and an uncommitted claim;
/// the daemon releases its end after `join` (confirmed death); the consumer,
/// blocked meanwhile, gets the committed frames and then `Disconnected` (woken
/// by the recovery), never the abandoned claim. A new producer can then attach
/// where the old one stopped and send.
#[test]
fn crashed_producer_recovered() {
    model("crashed_producer_recovered", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let tx = producer(&pipe, PRODUCER);
        let rx = consumer(&pipe, CONSUMER);
        let p = thread::spawn(move || {
            let mut tx = tx;
            spin_send(&mut tx, &frame(0, 8));
            spin_send(&mut tx, &frame(1, 3));
            {
                // Claimed and written, never committed: the crash comes first.
                let mut c = tx.try_claim(8).unwrap();
                c.write_at(0, &[0xEE; 8]);
            }
            tx.crash();
        });
        let c = thread::spawn(move || {
            let mut rx = rx;
            let mut got = Vec::new();
            loop {
                match recv(&mut rx) {
                    Ok(v) => got.push(v),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            (rx, got)
        });
        // The daemon: after the death is confirmed, release what it held.
        p.join().unwrap();
        assert_eq!(pipe.ctl().release_owner(PRODUCER), 1);
        assert_eq!(pipe.ctl().release_owner(PRODUCER), 0, "idempotent");
        // A new producer process takes over.
        let mut tx2 = producer(&pipe, NEW_PRODUCER);
        tx2.try_send(&frame(2, 8)).unwrap();
        drop(tx2);
        let (mut rx, mut got) = c.join().unwrap();
        // The consumer may have hit end of file before the new producer came.
        if got.len() == 2 {
            got.push(rx.try_recv_with(<[u8]>::to_vec).unwrap());
        }
        assert_eq!(got, vec![frame(0, 8), frame(1, 3), frame(2, 8)]);
        assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
    });
}

/// Model 5b: the consumer crashes after one frame while the producer blocks on
/// a full ring; the daemon's recovery wakes the producer with `Disconnected`
/// (after exactly five sends), and a new consumer attaches at the crashed
/// one's head and reads the remaining four frames. The producer has gone
/// before the new consumer attached, so that is not end of file (the new
/// consumer waits for a producer); a next producer's departure is.
#[test]
fn crashed_consumer_recovered() {
    model("crashed_consumer_recovered", || {
        let pipe = Arc::new(HeapPipe::new(CAP));
        let tx = producer(&pipe, PRODUCER);
        let rx = consumer(&pipe, CONSUMER);
        let c = thread::spawn(move || {
            let mut rx = rx;
            assert_eq!(recv(&mut rx).unwrap(), frame(0, 8));
            rx.crash();
        });
        let p = thread::spawn(move || {
            let mut tx = tx;
            let mut sent = 0;
            let err = loop {
                match send(&mut tx, &frame(sent, 8)) {
                    Ok(()) => sent += 1,
                    Err(e) => break e,
                }
            };
            assert_eq!(err, SendError::Disconnected);
            sent
        });
        c.join().unwrap();
        assert_eq!(pipe.ctl().release_owner(CONSUMER), 1);
        let sent = p.join().unwrap();
        assert_eq!(sent, 5);
        let mut rx2 = consumer(&pipe, NEW_CONSUMER);
        for seq in 1..sent {
            assert_eq!(spin_recv(&mut rx2), frame(seq, 8), "frame {seq}");
        }
        assert_eq!(rx2.try_recv_with(|_| ()), Err(TryRecvError::Empty));
        drop(producer(&pipe, NEW_PRODUCER));
        assert_eq!(rx2.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
    });
}
