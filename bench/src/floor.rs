//! The physical floors, over a plain `/dev/shm` file with no shmbus code:
//! a cache-line ping-pong (round trip), a ring of 64-byte slots (one-way
//! throughput), and a shared-futex ping-pong (the blocking floor).

use std::time::Instant;

use hdrhistogram::Histogram;
use shmbus::sync::{AtomicU64, Ordering};

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, ShmFile};

/// Idle time before each blocking round trip: far longer than the spin
/// phase of shmbus's blocking calls (crossbeam `Backoff`, a few µs), so the
/// peer is asleep in the futex when the message arrives.
pub(crate) const GAP: std::time::Duration = std::time::Duration::from_micros(200);

/// Busy-waits [`GAP`] (busy, so that this side's own wake-up is not timed).
pub(crate) fn idle_gap() {
    let t = Instant::now();
    while t.elapsed() < GAP {
        core::hint::spin_loop();
    }
}

/// Byte offsets of the two words of a ping-pong: one 128-byte line each, so
/// that neither side's line also holds the other's word (adjacent-line
/// prefetch pairs 64-byte lines on x86).
const PING: usize = 0;
const PONG: usize = 128;

/// Raw cache-line round trip: the parent stores `i` in one line and spins
/// until the child has stored `i` in the other.
pub(crate) fn cacheline_round_trip(ctx: &Ctx, n: u64) -> Histogram<u64> {
    let file = ShmFile::create(4096);
    let kid = spawn(
        "floor-echo",
        &[file.arg(), n.to_string()],
        ctx.placement.child,
    );
    let (ping, pong) = (file.word(PING), file.word(PONG));
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 1..=n {
        let t = Instant::now();
        // Release/Acquire: the orderings a message hand-over needs; pair with
        // the child's Acquire of `ping` and Release of `pong`.
        ping.store(i, Ordering::Release);
        while pong.load(Ordering::Acquire) != i {
            core::hint::spin_loop();
        }
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    kid.wait();
    h
}

/// The `floor-echo` role.
pub(crate) fn floor_echo(path: &str, n: u64) {
    let file = ShmFile::open(path);
    let (ping, pong) = (file.word(PING), file.word(PONG));
    for i in 1..=n {
        // Acquire: pairs with the parent's Release store of `ping`.
        while ping.load(Ordering::Acquire) != i {
            core::hint::spin_loop();
        }
        // Release: pairs with the parent's Acquire load of `pong`.
        pong.store(i, Ordering::Release);
    }
}

/// Ring layout: consumer position, producer position, then the slots.
const HEAD: usize = 0;
const TAIL: usize = 128;
const SLOTS: usize = 256;
const SLOT: usize = 64;
/// 16,384 slots of 64 bytes: the 1 MiB the pipe throughput runs use too.
const NSLOTS: u64 = 1 << 14;

fn slot_words(file: &ShmFile, pos: u64) -> impl Iterator<Item = &AtomicU64> {
    let base = SLOTS + (pos % NSLOTS) as usize * SLOT;
    (0..SLOT / 8).map(move |w| file.word(base + w * 8))
}

/// Raw SPSC ring of 64-byte slots, one-way messages per second of each run.
/// Each message is written and read as eight 8-byte words and published on
/// its own (no batching), as a pipe frame is; each side caches the other's
/// position and re-reads it only when the ring looks full or empty.
pub(crate) fn ring_throughput(ctx: &Ctx) -> Measured {
    let n = ctx.counts.shm_messages;
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let file = ShmFile::create(SLOTS + NSLOTS as usize * SLOT);
        let kid = spawn(
            "ring-producer",
            &[file.arg(), n.to_string()],
            ctx.placement.child,
        );
        let (head, tail) = (file.word(HEAD), file.word(TAIL));
        let (mut pos, mut seen, mut sum) = (0u64, 0u64, 0u64);
        let mut start = None;
        while pos < n {
            if pos == seen {
                // Acquire: pairs with the producer's Release store of `tail`,
                // so the slot words below are the ones it wrote.
                seen = tail.load(Ordering::Acquire);
                if pos == seen {
                    core::hint::spin_loop();
                    continue;
                }
            }
            if start.is_none() {
                start = Some(Instant::now());
            }
            // Relaxed: ordered by the Acquire of `tail` above.
            for w in slot_words(&file, pos) {
                sum = sum.wrapping_add(w.load(Ordering::Relaxed));
            }
            pos += 1;
            // Release: hands the slot back; pairs with the producer's Acquire
            // load of `head`.
            head.store(pos, Ordering::Release);
        }
        let secs = start.expect("started").elapsed().as_secs_f64();
        std::hint::black_box(sum);
        kid.wait();
        rates.push((n - 1) as f64 / secs);
    }
    Measured::rates(rates)
}

/// The `ring-producer` role.
pub(crate) fn ring_producer(path: &str, n: u64) {
    let file = ShmFile::open(path);
    let (head, tail) = (file.word(HEAD), file.word(TAIL));
    let mut free_until = NSLOTS;
    for pos in 0..n {
        while pos == free_until {
            // Acquire: pairs with the consumer's Release store of `head`: it
            // has finished reading the slots we are about to overwrite.
            free_until = head.load(Ordering::Acquire) + NSLOTS;
            if pos == free_until {
                core::hint::spin_loop();
            }
        }
        // Relaxed: published by the Release store of `tail` below.
        for w in slot_words(&file, pos) {
            w.store(pos, Ordering::Relaxed);
        }
        // Release: publishes the slot; pairs with the consumer's Acquire.
        tail.store(pos + 1, Ordering::Release);
    }
}

/// Shared-futex ping-pong: each side publishes a counter, wakes the other
/// with `FUTEX_WAKE`, and sleeps in `FUTEX_WAIT` until the other answers. No
/// spinning at all: the cost of two cross-core wake-ups. Like the blocking
/// pipe round trip, each round trip starts after an idle [`GAP`] (not timed),
/// so that the two are compared in the same conditions.
pub(crate) fn futex_round_trip(ctx: &Ctx, n: u64) -> Histogram<u64> {
    let file = ShmFile::create(4096);
    let kid = spawn(
        "futex-echo",
        &[file.arg(), n.to_string()],
        ctx.placement.child,
    );
    let (ping, pong) = (file.futex(PING), file.futex(PONG));
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 1..=n as u32 {
        idle_gap();
        let t = Instant::now();
        // Release/Acquire as in the cache-line ping-pong.
        ping.store(i, Ordering::Release);
        ping.wake_all();
        loop {
            let v = pong.load(Ordering::Acquire);
            if v == i {
                break;
            }
            pong.wait(v, None);
        }
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    kid.wait();
    h
}

/// The `futex-echo` role.
pub(crate) fn futex_echo(path: &str, n: u64) {
    let file = ShmFile::open(path);
    let (ping, pong) = (file.futex(PING), file.futex(PONG));
    for i in 1..=n as u32 {
        loop {
            // Acquire: pairs with the parent's Release store of `ping`.
            let v = ping.load(Ordering::Acquire);
            if v == i {
                break;
            }
            ping.wait(v, None);
        }
        // Release: pairs with the parent's Acquire load of `pong`.
        pong.store(i, Ordering::Release);
        pong.wake_all();
    }
}
