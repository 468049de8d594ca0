//! Threaded tests of the SPSC pipe on a heap-allocated control block and ring:
//! a million-frame stress through every send and receive call, sleeping and
//! waking, timeouts, disconnection, recovery, size limits, exclusive attach,
//! and scribbled shared state (which must give `Corrupt`, never a panic).
//!
//! Blocking calls always pass a deadline ([`WATCHDOG`]) and a timeout fails the
//! test, so a lost wake-up shows as a failure instead of a hung run.
#![cfg(not(loom))]

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shmbus::pipe::{max_frame, Consumer, HeapPipe, Producer, HEADER, KIND_DATA, KIND_PAD};
use shmbus::pipe::{AttachError, RecvError, SendError, TryRecvError, TrySendError};

/// Frames in the stress test: one count for the whole file, shrunk under Miri
/// (as crossbeam's and rtrb's stress tests do) so a slow checker can finish.
const FRAMES: u64 = if cfg!(miri) { 2_000 } else { 1_000_000 };
/// Frames through the smallest ring with blocking calls only.
const BLOCKING_FRAMES: u64 = FRAMES / 10;
/// Ring capacity of the stress test: frames up to 512 bytes, wrapping constantly.
const CAP: u64 = 4096;
/// The smallest ring: four 16-byte records fill it.
const SMALL: u64 = 64;
/// Deadline of every blocking call: far beyond any legitimate wait.
const WATCHDOG: Duration = Duration::from_secs(30);
/// How long a test lets a peer sleep before waking it.
const NAP: Duration = Duration::from_millis(50);

const PRODUCER: u16 = 1;
const CONSUMER: u16 = 2;
const OTHER: u16 = 3;

/// An endpoint that keeps its pipe alive; fields drop in declaration order,
/// so the endpoint detaches before its reference to the pipe goes.
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
    /// Simulates the process dying: the endpoint is never detached.
    fn crash(self) {
        let Held { end, pipe } = self;
        std::mem::forget(end);
        drop(pipe);
    }
}

fn try_producer(pipe: &Arc<HeapPipe>, me: u16) -> Result<Held<Producer>, AttachError> {
    // SAFETY: the producer is stored beside a clone of the `Arc` owning the
    // pipe, and `Held` drops (or forgets) the producer before that clone.
    let end = unsafe { pipe.producer(me) }?;
    Ok(Held {
        end,
        pipe: pipe.clone(),
    })
}

fn try_consumer(pipe: &Arc<HeapPipe>, me: u16) -> Result<Held<Consumer>, AttachError> {
    // SAFETY: as in `try_producer`.
    let end = unsafe { pipe.consumer(me) }?;
    Ok(Held {
        end,
        pipe: pipe.clone(),
    })
}

fn producer(pipe: &Arc<HeapPipe>) -> Held<Producer> {
    try_producer(pipe, PRODUCER).expect("attach producer")
}

fn consumer(pipe: &Arc<HeapPipe>) -> Held<Consumer> {
    try_consumer(pipe, CONSUMER).expect("attach consumer")
}

fn new_pipe(cap: u64) -> Arc<HeapPipe> {
    Arc::new(HeapPipe::new(cap))
}

fn deadline() -> Option<Instant> {
    Some(Instant::now() + WATCHDOG)
}

/// SplitMix64: a tiny deterministic generator, so both sides can derive a
/// frame's length and bytes from its sequence number alone.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes frame `seq` for a pipe whose largest frame is `max` into `buf`: a
/// length from 0 to `max`, the sequence number in the first (up to) 8 bytes,
/// then bytes derived from it. The receiver regenerates and compares, which
/// catches loss, duplication, reordering and tearing.
fn make_frame(seq: u64, max: usize, buf: &mut Vec<u8>) {
    let r = mix(seq);
    let len = (r % (max as u64 + 1)) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    let mut s = r | 1;
    while buf.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf.extend_from_slice(&s.to_le_bytes());
    }
    buf.truncate(len);
}

/// Which call a side uses for frame `seq` (independent of the frame itself).
fn pick(seq: u64, n: u64) -> u64 {
    mix(seq ^ 0x5555_5555) % n
}

fn check_frame(seq: u64, got: &[u8], expect: &mut Vec<u8>, max: usize) {
    make_frame(seq, max, expect);
    if got != expect.as_slice() {
        let mut head = [0u8; 8];
        let n = got.len().min(8);
        head[..n].copy_from_slice(&got[..n]);
        panic!(
            "frame {seq}: got {} bytes starting with seq {}, expected {} bytes",
            got.len(),
            u64::from_le_bytes(head),
            expect.len()
        );
    }
}

/// Sends frames `0..frames` with a mix of every send call.
fn produce(tx: &mut Producer, frames: u64) {
    let max = tx.max_frame();
    let mut f = Vec::with_capacity(max);
    for seq in 0..frames {
        make_frame(seq, max, &mut f);
        match pick(seq, 4) {
            0 => loop {
                match tx.try_send(&f) {
                    Ok(()) => break,
                    Err(TrySendError::Full) => thread::yield_now(),
                    Err(e) => panic!("try_send {seq}: {e}"),
                }
            },
            1 => tx.send_until(&f, deadline(), None).expect("send_until"),
            2 => loop {
                match tx.try_claim(f.len()) {
                    Ok(mut c) => {
                        c.as_mut_slice().copy_from_slice(&f);
                        c.commit();
                        break;
                    }
                    Err(TrySendError::Full) => thread::yield_now(),
                    Err(e) => panic!("try_claim {seq}: {e}"),
                }
            },
            _ => {
                let mut c = tx
                    .claim_until(f.len(), deadline(), None)
                    .expect("claim_until");
                assert_eq!(c.len(), f.len());
                // In 8-byte-aligned pieces, back to front.
                let mut pos = f.len() / 8 * 8;
                loop {
                    let end = (pos + 8).min(f.len());
                    c.write_at(pos, &f[pos..end]);
                    if pos == 0 {
                        break;
                    }
                    pos -= 8;
                }
                c.commit();
            }
        }
    }
}

/// Receives and checks frames `0..frames` with a mix of every receive call,
/// then expects end of file.
fn consume(rx: &mut Consumer, frames: u64) {
    let max = rx.max_frame();
    let mut expect = Vec::with_capacity(max);
    let mut buf = Vec::new();
    for seq in 0..frames {
        match pick(seq, 3) {
            0 => loop {
                match rx.try_recv_with(|b| check_frame(seq, b, &mut expect, max)) {
                    Ok(()) => break,
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("try_recv_with {seq}: {e}"),
                }
            },
            1 => rx
                .recv_with_until(deadline(), None, |b| check_frame(seq, b, &mut expect, max))
                .expect("recv_with_until"),
            _ => loop {
                match rx.try_recv_into(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, buf.len());
                        check_frame(seq, &buf, &mut expect, max);
                        break;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("try_recv_into {seq}: {e}"),
                }
            },
        }
    }
    assert_eq!(
        rx.recv_with_until(deadline(), None, <[u8]>::len),
        Err(RecvError::Disconnected),
        "nothing after the last frame"
    );
}

/// Producer and consumer threads; the producer drops (detaches) when done.
fn run_pair(cap: u64, frames: u64, send: fn(&mut Producer, u64), recv: fn(&mut Consumer, u64)) {
    let pipe = new_pipe(cap);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    let p = thread::spawn(move || send(&mut tx, frames));
    let c = thread::spawn(move || recv(&mut rx, frames));
    p.join().expect("producer thread");
    c.join().expect("consumer thread");
    let s = pipe.ctl().stats();
    assert_eq!(s.used, 0);
    assert_eq!((s.producer, s.consumer), (0, 0));
}

#[test]
fn stress_all_calls() {
    run_pair(CAP, FRAMES, produce, consume);
}

fn produce_blocking(tx: &mut Producer, frames: u64) {
    let max = tx.max_frame();
    let mut f = Vec::new();
    for seq in 0..frames {
        make_frame(seq, max, &mut f);
        tx.send_until(&f, deadline(), None).expect("send_until");
    }
}

fn consume_blocking(rx: &mut Consumer, frames: u64) {
    let max = rx.max_frame();
    let mut expect = Vec::new();
    for seq in 0..frames {
        rx.recv_with_until(deadline(), None, |b| check_frame(seq, b, &mut expect, max))
            .expect("recv_with_until");
    }
    assert_eq!(
        rx.recv_with_until(deadline(), None, <[u8]>::len),
        Err(RecvError::Disconnected)
    );
}

/// The smallest ring (four records) with blocking calls only: both sides keep
/// falling asleep, so this hammers the doorbell handshake with real futexes.
#[test]
fn stress_blocking_small_ring() {
    run_pair(SMALL, BLOCKING_FRAMES, produce_blocking, consume_blocking);
}

/// Whether the doorbell was rung, which `notify` does only for an announced
/// sleeper.
fn rung(bell: &shmbus::futex::Doorbell) -> bool {
    bell.bell.load(shmbus::sync::Ordering::Relaxed) != 0
}

#[test]
fn consumer_sleeps_and_is_woken() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    let p = thread::spawn(move || {
        thread::sleep(NAP);
        tx.try_send(b"wake").unwrap();
        tx
    });
    let got = rx.recv_with_until(deadline(), None, <[u8]>::to_vec);
    assert_eq!(got.as_deref(), Ok(&b"wake"[..]));
    drop(p.join().unwrap());
    assert!(rung(&pipe.ctl().readable), "the consumer did not sleep");
}

#[test]
fn producer_sleeps_on_full_and_is_woken() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    for i in 0..4u8 {
        tx.try_send(&[i; 8]).unwrap();
    }
    assert_eq!(tx.try_send(&[4; 8]), Err(TrySendError::Full));
    let c = thread::spawn(move || {
        thread::sleep(NAP);
        assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(vec![0; 8]));
        rx
    });
    tx.send_until(&[4; 8], deadline(), None)
        .expect("woken by the read");
    let mut rx = c.join().unwrap();
    assert!(rung(&pipe.ctl().writable), "the producer did not sleep");
    drop(tx);
    for i in 1..=4u8 {
        assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(vec![i; 8]));
    }
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
}

#[test]
fn timeouts_and_interrupts() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);

    let start = Instant::now();
    let r = rx.recv_with_until(Some(start + NAP), None, |_| ());
    assert_eq!(r, Err(RecvError::Timeout));
    assert!(start.elapsed() >= NAP);
    let stop = || true;
    let r = rx.recv_with_until(deadline(), Some(&stop), |_| ());
    assert_eq!(r, Err(RecvError::Interrupted));

    for _ in 0..4 {
        tx.try_send(&[7; 8]).unwrap();
    }
    let start = Instant::now();
    assert_eq!(
        tx.send_until(&[7; 8], Some(start + NAP), None),
        Err(SendError::Timeout)
    );
    assert!(start.elapsed() >= NAP);
    assert_eq!(
        tx.claim_until(8, Some(Instant::now() + NAP), None).err(),
        Some(SendError::Timeout)
    );
    assert_eq!(
        tx.send_until(&[7; 8], deadline(), Some(&stop)),
        Err(SendError::Interrupted)
    );
    // A deadline already in the past still takes a frame that is there.
    assert_eq!(
        rx.recv_with_until(Some(Instant::now()), None, <[u8]>::len),
        Ok(8)
    );
}

/// An interrupt check that turns true while the consumer sleeps is noticed
/// within a slice, not only at the deadline.
#[test]
fn interrupt_noticed_while_asleep() {
    let pipe = new_pipe(SMALL);
    let _tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    let start = Instant::now();
    let stop = move || start.elapsed() >= NAP;
    let r = rx.recv_with_until(deadline(), Some(&stop), |_| ());
    assert_eq!(r, Err(RecvError::Interrupted));
    assert!(start.elapsed() < WATCHDOG);
}

#[test]
fn consumer_disconnect_semantics() {
    let pipe = new_pipe(SMALL);
    let mut rx = consumer(&pipe);
    // Never attached: empty, not end of file.
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    let mut tx = producer(&pipe);
    tx.try_send(b"a").unwrap();
    tx.try_send(b"").unwrap();
    tx.try_send(b"bc").unwrap();
    drop(tx);
    // Frames sent before the producer left come first.
    for want in [&b"a"[..], b"", b"bc"] {
        assert_eq!(rx.try_recv_with(<[u8]>::to_vec).as_deref(), Ok(want));
    }
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.try_recv_into(&mut Vec::new()),
        Err(TryRecvError::Disconnected)
    );
    assert_eq!(
        rx.recv_with_until(deadline(), None, |_| ()),
        Err(RecvError::Disconnected)
    );
    // A new producer: empty again, then its frames, then end of file again.
    let mut tx = try_producer(&pipe, OTHER).unwrap();
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    tx.try_send(b"d").unwrap();
    assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(b"d".to_vec()));
    drop(tx);
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
}

/// A consumer that attaches after the producer left is a FIFO reader that
/// opened with no writer: it reads what was left in the ring, then waits
/// (not end of file) until a producer comes; it sees end of file only when
/// that one has gone and everything is read. Consumers that attach while a
/// producer is attached see end of file when it goes, even if it is killed
/// (the daemon's release).
#[test]
fn consumer_attached_after_the_producer_left_waits_for_the_next() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    tx.try_send(b"left").unwrap();
    drop(tx);
    let mut rx = consumer(&pipe);
    assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(b"left".to_vec()));
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_with_until(Some(Instant::now() + NAP), None, |_| ()),
        Err(RecvError::Timeout),
        "waits for a producer instead of end of file"
    );
    // A producer attaches while the consumer sleeps, sends and leaves.
    let p = {
        let pipe = pipe.clone();
        thread::spawn(move || {
            thread::sleep(NAP);
            let mut tx = try_producer(&pipe, OTHER).unwrap();
            thread::sleep(NAP);
            tx.try_send(b"new").unwrap();
        })
    };
    assert_eq!(
        rx.recv_with_until(deadline(), None, <[u8]>::to_vec),
        Ok(b"new".to_vec())
    );
    assert_eq!(
        rx.recv_with_until(deadline(), None, |_| ()),
        Err(RecvError::Disconnected)
    );
    p.join().unwrap();
    assert!(rung(&pipe.ctl().readable), "the consumer did not sleep");
    // End of file lasts while no producer is attached.
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
    drop(rx);

    // Attached while a producer is attached: its death (the daemon's release)
    // is end of file.
    let tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    tx.crash();
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    assert_eq!(pipe.ctl().release_owner(PRODUCER), 1);
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
    drop(rx);

    // A producer that came and went before the consumer, however many: still
    // waiting. One that attaches and leaves without sending: end of file.
    for _ in 0..3 {
        drop(producer(&pipe));
    }
    let mut rx = consumer(&pipe);
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Empty));
    drop(producer(&pipe));
    assert_eq!(rx.try_recv_with(|_| ()), Err(TryRecvError::Disconnected));
}

#[test]
fn consumer_blocked_is_woken_by_producer_drop() {
    let pipe = new_pipe(SMALL);
    let tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    let p = thread::spawn(move || {
        thread::sleep(NAP);
        drop(tx);
    });
    assert_eq!(
        rx.recv_with_until(deadline(), None, |_| ()),
        Err(RecvError::Disconnected)
    );
    p.join().unwrap();
    assert!(rung(&pipe.ctl().readable), "the consumer did not sleep");
}

#[test]
fn producer_disconnect_semantics() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    // Consumer never attached: full, not disconnected.
    for _ in 0..4 {
        tx.try_send(&[1; 8]).unwrap();
    }
    assert_eq!(tx.try_send(&[1; 8]), Err(TrySendError::Full));
    let mut rx = consumer(&pipe);
    rx.try_recv_with(|_| ()).unwrap();
    drop(rx);
    // Gone, but there is room: sending still works (like writing to a pipe
    // buffer); only a full ring reports the disconnection.
    tx.try_send(&[2; 8]).unwrap();
    assert_eq!(tx.try_send(&[3; 8]), Err(TrySendError::Disconnected));
    assert_eq!(tx.try_claim(1).err(), Some(TrySendError::Disconnected));
    assert_eq!(
        tx.send_until(&[3; 8], deadline(), None),
        Err(SendError::Disconnected)
    );
    assert_eq!(
        tx.claim_until(0, deadline(), None).err(),
        Some(SendError::Disconnected)
    );
    // A new consumer attaches where the old one left and reads what is left.
    let mut rx = try_consumer(&pipe, OTHER).unwrap();
    assert_eq!(tx.try_send(&[3; 8]), Err(TrySendError::Full));
    let mut n = 0;
    while rx.try_recv_with(|_| ()).is_ok() {
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn producer_blocked_is_woken_by_consumer_drop() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let rx = consumer(&pipe);
    for _ in 0..4 {
        tx.try_send(&[1; 8]).unwrap();
    }
    let c = thread::spawn(move || {
        thread::sleep(NAP);
        drop(rx);
    });
    assert_eq!(
        tx.send_until(&[1; 8], deadline(), None),
        Err(SendError::Disconnected)
    );
    c.join().unwrap();
    assert!(rung(&pipe.ctl().writable), "the producer did not sleep");
}

/// The daemon's recovery after a crash: the crashed peer's ends are released
/// (and only its own), sleepers wake, and new peers can attach.
#[test]
fn release_owner_after_crash() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    tx.try_send(b"one").unwrap();
    {
        // Claimed and written, never committed: the crash comes first.
        let mut c = tx.try_claim(8).unwrap();
        c.as_mut_slice().fill(0xEE);
    }
    tx.crash();
    assert_eq!(pipe.ctl().stats().producer, PRODUCER);
    let waiter = thread::spawn(move || {
        let first = rx.recv_with_until(deadline(), None, <[u8]>::to_vec);
        let second = rx.recv_with_until(deadline(), None, <[u8]>::to_vec);
        (first, second, rx)
    });
    thread::sleep(NAP);
    assert_eq!(pipe.ctl().release_owner(OTHER), 0, "not its ends");
    assert_eq!(pipe.ctl().release_owner(PRODUCER), 1);
    let (first, second, rx) = waiter.join().unwrap();
    assert_eq!(first, Ok(b"one".to_vec()));
    assert_eq!(second, Err(RecvError::Disconnected));
    let mut tx = try_producer(&pipe, OTHER).unwrap();
    tx.try_send(b"two").unwrap();
    drop(tx);
    let mut rx = rx;
    assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(b"two".to_vec()));
    // One peer holding both ends: both are released.
    drop(rx);
    let tx = try_producer(&pipe, OTHER).unwrap();
    let rx = try_consumer(&pipe, OTHER).unwrap();
    tx.crash();
    rx.crash();
    assert_eq!(pipe.ctl().release_owner(OTHER), 2);
    let s = pipe.ctl().stats();
    assert_eq!((s.producer, s.consumer), (0, 0));
}

/// A peer that died asleep leaves its announcement in the doorbell; the
/// daemon's recovery clears it with the end (so publishes stop paying for a
/// `FUTEX_WAKE`), and only for the dead peer's own end.
#[test]
fn release_owner_clears_a_dead_sleepers_announcement() {
    use shmbus::sync::Ordering::Relaxed;
    let pipe = new_pipe(SMALL);
    let tx = producer(&pipe);
    let rx = consumer(&pipe);
    // As if each had died inside a wait: announced, never left.
    pipe.ctl().writable.waiters.fetch_add(1, Relaxed);
    pipe.ctl().readable.waiters.fetch_add(1, Relaxed);
    tx.crash();
    assert_eq!(pipe.ctl().release_owner(PRODUCER), 1);
    assert_eq!(pipe.ctl().writable.waiters.load(Relaxed), 0);
    assert_eq!(
        pipe.ctl().readable.waiters.load(Relaxed),
        1,
        "the live consumer's end is not touched"
    );
    rx.crash();
    assert_eq!(pipe.ctl().release_owner(CONSUMER), 1);
    assert_eq!(pipe.ctl().readable.waiters.load(Relaxed), 0);
}

#[test]
fn too_large_never_hangs() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let _rx = consumer(&pipe);
    let max = max_frame(SMALL) as usize;
    assert_eq!(tx.max_frame(), max);
    let big = vec![0u8; max + 1];
    let too_large = TrySendError::TooLarge { len: max + 1, max };
    let too_large_b = SendError::TooLarge { len: max + 1, max };
    for full in [false, true] {
        if full {
            while tx.try_send(&[0; 8]).is_ok() {}
        }
        assert_eq!(tx.try_send(&big), Err(too_large));
        assert_eq!(tx.try_claim(max + 1).err(), Some(too_large));
        assert_eq!(tx.send_until(&big, None, None), Err(too_large_b));
        assert_eq!(tx.claim_until(max + 1, None, None).err(), Some(too_large_b));
        assert!(matches!(
            tx.try_claim(usize::MAX).err(),
            Some(TrySendError::TooLarge { .. })
        ));
    }
    // The largest frame fits, in the largest ring too.
    let pipe = new_pipe(CAP);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    let max = max_frame(CAP) as usize;
    tx.try_send(&vec![9; max]).unwrap();
    assert_eq!(rx.try_recv_with(<[u8]>::len), Ok(max));
}

#[test]
fn second_attach_is_busy() {
    let pipe = new_pipe(SMALL);
    let tx = producer(&pipe);
    let rx = consumer(&pipe);
    assert_eq!(
        try_producer(&pipe, OTHER).err(),
        Some(AttachError::Busy { owner: PRODUCER })
    );
    assert_eq!(
        try_consumer(&pipe, OTHER).err(),
        Some(AttachError::Busy { owner: CONSUMER })
    );
    let s = pipe.ctl().stats();
    assert_eq!((s.producer, s.consumer), (PRODUCER, CONSUMER));
    drop(tx);
    drop(rx);
    let _tx = try_producer(&pipe, OTHER).unwrap();
    let _rx = try_consumer(&pipe, OTHER).unwrap();
}

// ---- Corruption: scribbled shared state gives `Corrupt`, never a panic. ----

/// Writes a record header into ring word `index`, as a scribbling process
/// would.
fn poke_header(pipe: &HeapPipe, index: usize, len: u32, kind: u32) {
    let w = (u64::from(len) | (u64::from(kind) << 32)).to_le();
    pipe.words()[index].with_mut(|p| {
        // SAFETY: `p` points to a live ring word; the test is single-threaded
        // here and no endpoint call is running, so nothing else accesses it.
        unsafe { p.write(w) }
    });
}

fn store(word: &shmbus::sync::AtomicU64, v: u64) {
    word.store(v, shmbus::sync::Ordering::Release);
}

fn load(word: &shmbus::sync::AtomicU64) -> u64 {
    word.load(shmbus::sync::Ordering::Acquire)
}

/// Asserts that the consumer reports corruption, and keeps doing so.
fn assert_rx_corrupt(rx: &mut Consumer) {
    assert!(matches!(
        rx.try_recv_with(|_| ()),
        Err(TryRecvError::Corrupt(_))
    ));
    assert!(matches!(
        rx.try_recv_into(&mut Vec::new()),
        Err(TryRecvError::Corrupt(_))
    ));
    assert!(matches!(
        rx.recv_with_until(deadline(), None, |_| ()),
        Err(RecvError::Corrupt(_))
    ));
}

fn assert_tx_corrupt(tx: &mut Producer) {
    assert!(matches!(
        tx.try_send(&[0; 8]),
        Err(TrySendError::Corrupt(_))
    ));
    assert!(matches!(
        tx.try_claim(0).err(),
        Some(TrySendError::Corrupt(_))
    ));
    assert!(matches!(
        tx.send_until(&[0; 8], deadline(), None),
        Err(SendError::Corrupt(_))
    ));
}

#[test]
fn corrupt_tail() {
    let h = SMALL; // a head that is not zero
    for bad_tail in [h + SMALL + 8, h + 3, h - 8, 0, u64::MAX - 7] {
        let pipe = new_pipe(SMALL);
        let mut tx = producer(&pipe);
        let mut rx = consumer(&pipe);
        for _ in 0..4 {
            tx.try_send(&[1; 8]).unwrap();
            rx.try_recv_with(|_| ()).unwrap();
        }
        assert_eq!(load(&pipe.ctl().head), h);
        store(&pipe.ctl().tail, bad_tail);
        assert_rx_corrupt(&mut rx);
    }
}

#[test]
fn corrupt_head() {
    for bad_head in [SMALL + 8, 3, u64::MAX - 7] {
        let pipe = new_pipe(SMALL);
        let mut tx = producer(&pipe);
        // Fill the ring so the next send must re-read head.
        for _ in 0..4 {
            tx.try_send(&[1; 8]).unwrap();
        }
        store(&pipe.ctl().head, bad_head);
        assert_tx_corrupt(&mut tx);
    }
    // Head more than a capacity behind tail (tail has gone round once).
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    for _ in 0..4 {
        tx.try_send(&[1; 8]).unwrap();
        rx.try_recv_with(|_| ()).unwrap();
    }
    for _ in 0..4 {
        tx.try_send(&[1; 8]).unwrap();
    }
    store(&pipe.ctl().head, 0);
    assert_tx_corrupt(&mut tx);
}

#[test]
fn corrupt_record_headers() {
    let max = max_frame(SMALL) as u32;
    // (what, header word index, len, kind) written over the first record.
    let cases = [
        ("len over max frame", 0, max + 8, KIND_DATA),
        ("len past published data", 0, max, KIND_DATA),
        ("unknown kind", 0, 1, 7),
        ("zero kind", 0, 0, 0),
        ("pad not to the end", 0, 8, KIND_PAD),
        (
            "pad as the whole ring",
            0,
            (SMALL - HEADER) as u32,
            KIND_PAD,
        ),
        ("huge len", 0, u32::MAX, KIND_DATA),
        ("huge pad", 0, u32::MAX, KIND_PAD),
    ];
    for (what, index, len, kind) in cases {
        let pipe = new_pipe(SMALL);
        let mut tx = producer(&pipe);
        let mut rx = consumer(&pipe);
        tx.try_send(&[]).unwrap(); // one 8-byte record is published
        poke_header(&pipe, index, len, kind);
        let r = rx.try_recv_with(<[u8]>::to_vec);
        assert!(matches!(r, Err(TryRecvError::Corrupt(_))), "{what}: {r:?}");
        assert_rx_corrupt(&mut rx);
    }
}

/// A DATA record near the end of the ring whose payload would run off it.
#[test]
fn corrupt_record_past_ring_end() {
    let pipe = new_pipe(SMALL);
    let at = SMALL - HEADER; // the last word
    store(&pipe.ctl().tail, at);
    store(&pipe.ctl().head, at);
    let mut rx = consumer(&pipe);
    poke_header(&pipe, (at / 8) as usize, 8, KIND_DATA);
    store(&pipe.ctl().tail, at + 16);
    assert_rx_corrupt(&mut rx);
}

/// A PAD that the producer did not write (one record, not at the end).
#[test]
fn corrupt_pad_after_data() {
    let pipe = new_pipe(SMALL);
    let mut tx = producer(&pipe);
    let mut rx = consumer(&pipe);
    tx.try_send(&[1; 8]).unwrap();
    tx.try_send(&[2; 8]).unwrap();
    // The second record becomes a PAD to the end (legal only as the first
    // record the consumer looks at).
    poke_header(&pipe, 2, (SMALL - 16 - HEADER) as u32, KIND_PAD);
    assert_eq!(rx.try_recv_with(<[u8]>::to_vec), Ok(vec![1; 8]));
    // Now the PAD is first but nothing follows it in the published data.
    assert_rx_corrupt(&mut rx);
}

#[test]
fn corrupt_positions_refuse_attach() {
    // (tail, head)
    let cases = [
        (SMALL + 8, 0),
        (0, 8),
        (4, 0),
        (8, 4),
        (0, u64::MAX - 7),
        (u64::MAX - 7, u64::MAX - 7),
    ];
    for (tail, head) in cases {
        let pipe = new_pipe(SMALL);
        store(&pipe.ctl().tail, tail);
        store(&pipe.ctl().head, head);
        assert!(
            matches!(try_producer(&pipe, PRODUCER), Err(AttachError::Corrupt(_))),
            "producer, tail {tail} head {head}"
        );
        assert!(
            matches!(try_consumer(&pipe, CONSUMER), Err(AttachError::Corrupt(_))),
            "consumer, tail {tail} head {head}"
        );
        // A refused attach leaves the end free.
        let s = pipe.ctl().stats();
        assert_eq!((s.producer, s.consumer), (0, 0));
    }
}
