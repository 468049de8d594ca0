//! The physical floors, over a plain `/dev/shm` file with no shmbus code:
//! a cache-line ping-pong (round trip), the ping-pong of a raw ring of
//! pipe-sized records (the round trip a ring protocol allows), a ring of
//! 64-byte slots (one-way throughput), and a shared-futex ping-pong (the
//! blocking floor).

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

/// How a raw ring round trip's message is committed (see [`ring_round_trip`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// By a position word on a line of its own, as the pipe's `tail`.
    Position,
    /// By the record's header word, written last (Aeron's frame length).
    Header,
}

impl Commit {
    fn arg(self) -> &'static str {
        match self {
            Commit::Position => "position",
            Commit::Header => "header",
        }
    }

    fn parse(a: &str) -> Self {
        match a {
            "position" => Commit::Position,
            "header" => Commit::Header,
            other => panic!("unknown commit {other}"),
        }
    }
}

/// One direction of a raw ring round trip: reader position, writer
/// position (each on a 128-byte line), then [`RT_RECORDS`] records.
const RT_RING: usize = SLOTS + RT_RECORDS * RT_STRIDE;
/// Records per direction (a ping-pong has one in flight at a time).
const RT_RECORDS: usize = 512;
/// A pipe record of a 64-byte frame: an 8-byte header, then the payload.
const RT_STRIDE: usize = 72;

/// Writes message `i` (payload words `v`) into ring `r` and commits it.
fn rt_send(file: &ShmFile, r: usize, i: u64, v: u64, commit: Commit) {
    let at = r + SLOTS + (i as usize % RT_RECORDS) * RT_STRIDE;
    for w in 1..RT_STRIDE / 8 {
        // Relaxed: committed by the Release store below.
        file.word(at + 8 * w).store(v, Ordering::Relaxed);
    }
    match commit {
        // Release: publishes the payload; pairs with the reader's Acquire.
        Commit::Header => file.word(at).store(i, Ordering::Release),
        Commit::Position => {
            // Relaxed: published with the payload by the position store.
            file.word(at).store(64, Ordering::Relaxed);
            // Release: as above.
            file.word(r + TAIL).store(i, Ordering::Release);
        }
    }
}

/// Waits for message `i` in ring `r`, reads it and releases it.
fn rt_recv(file: &ShmFile, r: usize, i: u64, commit: Commit) -> u64 {
    let at = r + SLOTS + (i as usize % RT_RECORDS) * RT_STRIDE;
    let word = match commit {
        Commit::Header => file.word(at),
        Commit::Position => file.word(r + TAIL),
    };
    // Acquire: pairs with the writer's Release commit.
    while word.load(Ordering::Acquire) != i {
        core::hint::spin_loop();
    }
    let mut sum = 0u64;
    for w in 0..RT_STRIDE / 8 {
        // Relaxed: ordered by the Acquire above.
        sum = sum.wrapping_add(file.word(at + 8 * w).load(Ordering::Relaxed));
    }
    // Release: hands the record back, as the pipe's `head` store does (a
    // ping-pong never fills the ring, so the writer never reads it).
    file.word(r + HEAD).store(i, Ordering::Release);
    sum
}

/// Raw ring round trip: the memory traffic of a pipe round trip with no
/// shmbus code. Each direction is a ring of 72-byte records (the record of
/// a 64-byte frame); the parent writes message `i`, commits it, and waits
/// for the child to read it and answer in the other ring. With
/// [`Commit::Position`] the reader polls a position word and then reads
/// the record (two lines in turn, as the pipe's consumer does); with
/// [`Commit::Header`] it polls the record's own first word.
pub(crate) fn ring_round_trip(ctx: &Ctx, n: u64, commit: Commit) -> Histogram<u64> {
    let file = ShmFile::create(2 * RT_RING);
    let kid = spawn(
        "ring-echo",
        &[file.arg(), n.to_string(), commit.arg().to_owned()],
        ctx.placement.child,
    );
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 1..=n {
        let t = Instant::now();
        rt_send(&file, 0, i, i, commit);
        std::hint::black_box(rt_recv(&file, RT_RING, i, commit));
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    kid.wait();
    h
}

/// The `ring-echo` role.
pub(crate) fn ring_echo(path: &str, n: u64, commit: &str) {
    let file = ShmFile::open(path);
    let commit = Commit::parse(commit);
    for i in 1..=n {
        let v = rt_recv(&file, 0, i, commit);
        rt_send(&file, RT_RING, i, v, commit);
    }
}

/// Ring layout: consumer position, producer position, then the slots.
const HEAD: usize = 0;
const TAIL: usize = 128;
const SLOTS: usize = 256;
/// A 64-byte message.
const SLOT: usize = 64;
/// A pipe's record of a 64-byte frame: an 8-byte header, then the frame.
pub(crate) const RECORD: usize = 72;
/// 16,384 slots: of 64 bytes, the 1 MiB the pipe throughput runs use too.
const NSLOTS: u64 = 1 << 14;

/// The words of the slot of `pos` in a ring of `S`-byte slots.
fn slot_words<const S: usize>(file: &ShmFile, pos: u64) -> impl Iterator<Item = &AtomicU64> {
    let base = SLOTS + (pos % NSLOTS) as usize * S;
    (0..S / 8).map(move |w| file.word(base + w * 8))
}

/// Raw SPSC ring of `S`-byte slots, one-way messages per second of each
/// run. Each message is written and read as `S / 8` 8-byte words and
/// published on its own (no batching), as a pipe frame is; each side caches
/// the other's position and re-reads it only when the ring looks full or
/// empty. With `S` = [`RECORD`] the slots are laid out as the pipe lays out
/// the records of 64-byte frames, one after the other, so that every other
/// line holds the end of one and the start of the next.
pub(crate) fn ring_throughput<const S: usize>(ctx: &Ctx) -> Measured {
    let n = ctx.counts.shm_messages;
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let file = ShmFile::create(SLOTS + NSLOTS as usize * S);
        let kid = spawn(
            "ring-producer",
            &[file.arg(), n.to_string(), S.to_string()],
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
            for w in slot_words::<S>(&file, pos) {
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

/// The `ring-producer` role, for slots of `slot` bytes (64 or [`RECORD`]).
pub(crate) fn ring_producer(path: &str, n: u64, slot: usize) {
    match slot {
        SLOT => ring_produce::<SLOT>(path, n),
        RECORD => ring_produce::<RECORD>(path, n),
        other => panic!("no ring of {other}-byte slots"),
    }
}

fn ring_produce<const S: usize>(path: &str, n: u64) {
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
        for w in slot_words::<S>(&file, pos) {
            w.store(pos, Ordering::Relaxed);
        }
        // Release: publishes the slot; pairs with the consumer's Acquire.
        tail.store(pos + 1, Ordering::Release);
    }
}

/// MPMC cell-ring layout: the two positions on lines of their own, then the
/// cells, each a sequence word and a 64-byte payload on a 128-byte boundary,
/// as the queue lays out a cell of 64-byte items (its length word aside).
const MPMC_ENQ: usize = 0;
const MPMC_DEQ: usize = 128;
const MPMC_CELLS: usize = 256;
const MPMC_STRIDE: usize = 128;
/// As many cells as the queue rows use.
const MPMC_SLOTS: u64 = 4096;

/// The sequence word and the eight payload words of the cell of `pos`.
fn mpmc_cell(file: &ShmFile, pos: u64) -> (&AtomicU64, impl Iterator<Item = &AtomicU64>) {
    let base = MPMC_CELLS + (pos % MPMC_SLOTS) as usize * MPMC_STRIDE;
    (
        file.word(base),
        (1..=SLOT / 8).map(move |w| file.word(base + w * 8)),
    )
}

/// Claims the next position of one side of the MPMC floor, whose shared
/// position word is `at` and which may take the cell of `pos` when its
/// sequence word reads `pos + turn` (0 for the producer, 1 for the
/// consumer). Spins while the cell is not ready; returns the position
/// claimed, with `pos` left at it.
fn mpmc_claim(file: &ShmFile, at: &AtomicU64, pos: &mut u64, turn: u64) -> u64 {
    loop {
        let seq = mpmc_cell(file, *pos).0;
        // Acquire: pairs with the other side's Release store of the
        // sequence word, so its writes (producer) or reads (consumer) of the
        // cell are done before ours.
        let d = seq.load(Ordering::Acquire).wrapping_sub(*pos + turn) as i64;
        if d < 0 {
            core::hint::spin_loop();
        } else if d > 0 {
            // Relaxed: the cells carry the order.
            *pos = at.load(Ordering::Relaxed);
        } else {
            // Relaxed: the cell's Acquire above ordered the payload; the
            // position only picks the claimer.
            match at.compare_exchange_weak(*pos, *pos + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return *pos,
                Err(now) => *pos = now,
            }
        }
    }
}

/// Raw MPMC queue of 64-byte items in `/dev/shm`: Dmitry Vyukov's bounded
/// queue (each cell's sequence word says whose turn it is; a side claims a
/// position with one CAS on its shared position word), one producer process
/// and this one consuming, both busy-polling. No owner tags, no lengths, no
/// checks of what the other side wrote, no crash recovery: what the class of
/// MPMC cell queues the shmbus queue belongs to costs with one producer and
/// one consumer, beside which the queue's rows can be read. Items per second
/// of each run.
pub(crate) fn mpmc_throughput(ctx: &Ctx) -> Measured {
    let n = ctx.counts.queue_messages;
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let file = ShmFile::create(MPMC_CELLS + MPMC_SLOTS as usize * MPMC_STRIDE);
        for i in 0..MPMC_SLOTS {
            // Relaxed: the child maps the file after this (spawn orders it).
            mpmc_cell(&file, i).0.store(i, Ordering::Relaxed);
        }
        let kid = spawn(
            "mpmc-producer",
            &[file.arg(), n.to_string()],
            ctx.placement.child,
        );
        let deq = file.word(MPMC_DEQ);
        let mut sum = 0u64;
        let mut start = None;
        let mut got = 0;
        // Relaxed: only this process consumes; the cells carry the order.
        let mut pos = deq.load(Ordering::Relaxed);
        while got < n {
            let claimed = mpmc_claim(&file, deq, &mut pos, 1);
            let (seq, words) = mpmc_cell(&file, claimed);
            if start.is_none() {
                start = Some(Instant::now());
            }
            // Relaxed: ordered by the Acquire of the sequence word.
            for w in words {
                sum = sum.wrapping_add(w.load(Ordering::Relaxed));
            }
            // Release: our reads are done before the next lap's producer
            // writes; pairs with its Acquire load of the sequence word.
            seq.store(claimed + MPMC_SLOTS, Ordering::Release);
            pos += 1;
            got += 1;
        }
        let secs = start.expect("started").elapsed().as_secs_f64();
        std::hint::black_box(sum);
        kid.wait();
        rates.push((n - 1) as f64 / secs);
    }
    Measured::rates(rates)
}

/// The `mpmc-producer` role.
pub(crate) fn mpmc_producer(path: &str, n: u64) {
    let file = ShmFile::open(path);
    let enq = file.word(MPMC_ENQ);
    // Relaxed: as the consumer's first load of its position.
    let mut pos = enq.load(Ordering::Relaxed);
    let mut put = 0;
    while put < n {
        let claimed = mpmc_claim(&file, enq, &mut pos, 0);
        let (seq, words) = mpmc_cell(&file, claimed);
        // Relaxed: published by the Release store of the sequence word.
        for w in words {
            w.store(claimed, Ordering::Relaxed);
        }
        // Release: publishes the payload; pairs with the consumer's Acquire.
        seq.store(claimed + 1, Ordering::Release);
        pos += 1;
        put += 1;
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
