//! Single-producer single-consumer pipe of byte frames.
//!
//! A byte ring of power-of-two capacity with free-running `u64` positions:
//! `tail` (written only by the producer) and `head` (only by the consumer), each
//! on its own 128-byte line. Each side caches the other's position and re-reads
//! it (Acquire) only when its cached view says full or empty, as rtrb's
//! `cached_head`/`cached_tail` do. A frame is one record:
//!
//! ```text
//! record = header (8 B) + payload, padded to a multiple of 8
//! header = len: u32 (little-endian) | kind: u32
//!          kind 1 = DATA: payload of `len` bytes follows
//!          kind 2 = PAD:  skip `len` more bytes, to the end of the ring
//! ```
//!
//! NB: tried and reverted (commits e328002, 9b31bb3): the consumer polling the
//! next record's header word in the ring instead of `tail` (producer storing
//! the header last, zeroing the word past each record). Measured with the
//! former `cargo bench --bench pipe` (now `shmbus-bench --preset pipe`), runs
//! alternating with this design on the 2-core development machine: round
//! trip p50 1.40–1.48× the floor against 1.62–1.68× with the vCPUs far apart,
//! no gain with them close, and one-way 64-byte throughput down from 7.3 to
//! 5.3 M frames/s (far) and from about 34 to 17 M (close): a caught-up
//! consumer polling the ring keeps stealing the line the producer is writing
//! the next record into.
//!
//! NB: also tried, not kept: the producer issuing `PREFETCHW` for the next
//! record's two lines after each publish (so its next stores, and the tail
//! store queued behind them, would not wait for the consumer's copies to be
//! invalidated). Same bench, three alternating pairs, vCPUs close: round trip
//! p50 210-211 ns either way; one-way throughput 30.7-33.7 M/s against
//! 36.8-39.5 M/s without it.
//!
//! Payloads go into the ring as aligned 8-byte stores
//! ([`crate::util::copy_to_shared`]), not through `memcpy`: a payload
//! starts 8 bytes into its record, so `memcpy`'s 16- and 32-byte stores
//! straddle lines the receiver is reading, and that is what set the
//! per-frame rate. With word stores (2026-12-05, vCPUs close) one-way
//! 64-byte frames went from 18.3 to 25.9–31.3 M/s and the batch forms from
//! 56 to 106–111 M/s; far apart 4.3–4.5 to 5.9–7.1 M/s (figures at
//! `copy_to_shared`). The busy round trip made 170–181 against 190–201 ns
//! in those alternating runs, but 170–211 ns (median 200) in the six-round
//! run that followed: not a gain we can claim. An earlier NB measured only instruction counts for a
//! copy without `memcpy` (two overlapping unaligned words, 57.5 → 59.5 a
//! fixed-length send) and so missed this; the word stores cost 4 more
//! instructions a 64-byte send (58.5 → 62.5, callgrind).
//!
//! NB: also tried, not kept (2026-12-03, `/tmp/floor-ab.sh`-style alternating
//! runs of `shmbus-bench` binaries, two rounds, load < 2): (a) every record
//! rounded up to 64 bytes, so a 64-byte frame's record owns its two lines
//! (an ABI change; same instruction count): with the vCPUs close, one-way
//! 64 B 18.2 M/s against 43.3 M/s for 8-byte-aligned records in the same
//! round (0.26× against 0.72× the ring floor) — twice the lines to move
//! costs more than the sharing saves. The cost of straddling is visible in
//! `shmbus/pipe-tput-oneline/56` (a 56-byte frame fills one line exactly):
//! 64.6 M/s against 50.7 M/s for 64 bytes in one close-placement run.
//! (b) the consumer pausing (8 × `spin_loop`) after finding the ring empty
//! before re-reading `tail`: one-way 64 B 62.1 M/s (0.81× the ring floor)
//! against 43–51 M/s, but the busy round trip went from 1.38–1.42× to 4.4×
//! the cache-line floor (531 ns against 121 ns) — it buys throughput with
//! the latency the round-trip goal is about. The batch forms below get the
//! throughput without it. Pausing only at the first empty poll after a
//! frame (2026-12-05, three alternations, vCPUs close): 2, 8, 16 pauses
//! gave 18.7–24.4, 23.7–24.2, 25.5–28.3 M/s and round trips of 181–220,
//! 250, 441 ns, against 18.1–18.8 M/s and 170–210 ns: the same trade.
//!
//! What set the per-frame rate before the word stores (counted in a
//! scratch bench, 2026-12-05, vCPUs close): the receiver of fixed 64-byte
//! frames finds the ring empty 0.93 times a frame, so every `tail` store costs the sender a transfer
//! (18 M/s); with a runtime length 0.27–0.33 times (27 M/s), with one-line
//! records 0.03 (26 M/s); the ring floor's consumer 0.05–0.10 (70 M/s).
//! No sender found the ring full. A faster receiver only catches up
//! sooner: prefetching the published lines (up to 1 KiB) after each load
//! of `tail` gave 17.9 against 18.6 M/s (fixed), 17.8 against 26.9 (runtime).
//!
//! NB: also tried, not kept (2026-12-05): the consumer prefetching (for
//! reading) the line where the next record will start each time it finds
//! the ring empty, so that while it polls `tail` a fresh copy of the record
//! would be on its way and the frame would cost one line transfer after
//! `tail` instead of two. `shmbus-bench --filter
//! floor/cacheline-rt,shmbus/pipe-rt-busy/64,shmbus/pipe-tput/64`, the two
//! builds alternating eight times: busy round trip p50 with the vCPUs close
//! 200 ns against 191–200 ns (1.65× against 1.67–1.74× the probe), far
//! 721–801 ns against 771–872 ns (medians 761 against 781 ns, within the
//! spread); one-way 64 B 18.2–18.3 M/s close and 4.0–4.2 M/s far either
//! way. Presumably the copy it fetches is invalidated again by the
//! producer's write, which lands before the `tail` store the consumer
//! waits for, so the frame still costs a transfer after `tail`.
//! Prefetching it in the same poll as the load of `tail` (before the
//! branch, so the two transfers could overlap, as the seqlock's readers
//! overlap the state word and the next copy) did no better: eight
//! alternations, vCPUs close, round trip 190–200 ns against 170–200 ns,
//! one-way unchanged; a plain load there, 180–200 against 200 ns.
//!
//! NB: also tried, not kept (2026-12-05, a scratch build): the consumer
//! releasing `head` lazily, once it had read 2 KiB since the last release
//! or when it found the ring empty. Alternating with this design four
//! times (`shmbus-bench --filter shmbus/pipe-tput/64,floor/ring-tput/64,...`),
//! vCPUs close: one-way 64 B 18.0–18.7 M/s against 17.9–18.3 M/s, round
//! trip unchanged. A consumer that keeps up finds the ring empty after
//! almost every frame, so it still released per frame. What the per-frame
//! rate lacks is on the sending side: a batching sender with a per-frame
//! receiver made 58–60 M/s, a per-frame sender with a batching receiver
//! 41 M/s, both per frame 18 M/s (same session, scratch bench build): the
//! `tail` store of every frame goes to a line the caught-up consumer is
//! polling.
//!
//! NB: also tried, not kept (2026-12-05, before the word stores, scratch
//! builds alternating with this design, vCPUs close unless said):
//! (c) a receiver that has found a frame at nearly every poll for 8 frames
//! (a stream) pausing before it re-reads `tail` the first time it finds
//! the ring empty, so that it falls behind and takes several frames a
//! load of `tail`, where a receiver waiting for an answer never pauses.
//! Pauses of 4, 16, 64, 256 `spin_loop`s (25 ns each on this machine):
//! one-way 64 B 23.5, 24.1–24.4, 26.9–27.2, 44.0 M/s against 17.9–18.4 M/s,
//! the round trip unchanged; far apart 256 gave 6.7 against 4.4 M/s. Only
//! pauses of microseconds pay, and a frame that ends a stream waits that
//! long. (d) each small frame also copied into the spare bytes of `tail`'s
//! 128-byte line (a position word, the length, then up to 104 bytes,
//! checked seqlock-style), the receiver reading it from there when it is
//! the only new frame and loading both lines of `tail`'s pair in each
//! poll: busy round trip far apart 681 against 771 ns, close 200–210
//! against 201–210 ns; one-way 64 B halved (10.5 against 18.1 M/s close).
//! `floor/ring-rt/64` and `floor/ring-rt-header/64` (shmbus-bench) measure
//! what any ring carrying a 64-byte frame can reach: a position-published
//! ring of pipe records made 180 ns against the floor's 120 ns, committed
//! by the header word also 180 ns, the pipe 191 ns before the word stores.
//!
//! Batches ([`Producer::try_send_batch`], [`Consumer::try_recv_batch_with`])
//! publish `tail` and release `head` once per batch, with one check for a
//! sleeper each: 119 instead of 129 instructions per 64-byte frame (send +
//! receive, callgrind), and far fewer stores to the two lines the other side
//! polls.
//!
//! A record that does not fit before the end of the ring is preceded by a PAD
//! record that fills the rest, so every payload is contiguous (zero-copy reads
//! and writes). The largest frame is `capacity / 8` bytes.
//!
//! Everything read from the ring or the other side's position is untrusted:
//! `tail - head <= capacity`, record alignment and lengths are checked, and a
//! violation is reported as `Corrupt`, never undefined behaviour.
//!
//! Endpoints are claimed by CAS on an endpoint word in the control block (see
//! [`end`]), so two processes can never both be the producer.

mod consumer;
mod error;
mod producer;
mod ring;

pub use consumer::Consumer;
pub use error::{AttachError, RecvError, SendError, TryRecvError, TrySendError};
pub use producer::{Claim, Producer};
pub use ring::Ring;

use core::ptr::NonNull;

use crate::futex::Doorbell;
use crate::sync::cell::UnsafeCell;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::util::Line;

/// `b"PIPE"` as a little-endian `u32`.
pub const PIPE_MAGIC: u32 = u32::from_le_bytes(*b"PIPE");
/// Smallest ring capacity in bytes.
pub const MIN_CAPACITY: u64 = 64;
/// Largest ring capacity in bytes (1 GiB).
pub const MAX_CAPACITY: u64 = 1 << 30;
/// Ring capacity of a pipe created without one, in bytes (64 KiB).
pub const DEFAULT_CAPACITY: u64 = 1 << 16;
/// Size of the control block that precedes the ring.
pub const CTL_SIZE: u64 = 6 * 128;
/// Record header size.
pub const HEADER: u64 = 8;
/// Record kind: a data frame.
pub const KIND_DATA: u32 = 1;
/// Record kind: padding to the end of the ring.
pub const KIND_PAD: u32 = 2;

/// The endpoint words [`Ends::producer`] and [`Ends::consumer`].
///
/// # Bit layout
/// ```text
/// 63                    16 15          0
/// +-----------------------+------------+
/// | attaches (48 bits)    | owner (16) |
/// +-----------------------+------------+
/// ```
/// | owner | attaches | meaning |
/// |---|---|---|
/// | 0 | 0 | this end was never attached |
/// | 0 | > 0 | attached before, now free |
/// | k > 0 | > 0 | held by peer slot `k - 1` |
///
/// An attach is `CAS (n, 0) → (n + 1, me)`; a detach is `CAS (n, me) → (n, 0)`.
/// The attach count never goes down, so it tells a consumer whether a
/// producer came (and went) after some earlier moment.
///
/// # When each side sees `Disconnected`
/// - The producer: when the ring is full and the consumer word is
///   [`gone`](end::gone) (attached before, free now). Room left behind by a
///   consumer that went can still be filled.
/// - The consumer (end of file), as a reader of a Unix FIFO: when the ring
///   is drained and a producer that was attached at some point since this
///   consumer attached is gone, with no producer attached now. At attach the
///   consumer keeps [`epoch_at_attach`](end::epoch_at_attach) of the producer
///   word; end of file is then [`left_since`](end::left_since) that epoch
///   with nothing left to read. So a consumer that attaches while no
///   producer is attached first reads the frames an earlier producer left in
///   the ring, then waits for a producer (whatever number of earlier
///   producers came and went); one that attaches while a producer is
///   attached sees end of file after that producer goes.
///   Once seen, end of file lasts while no producer is attached; a new
///   producer's frames are read after it, and its departure is end of file
///   again. The daemon's release of a dead producer is a departure.
pub mod end {
    /// Mask of the owner tag.
    pub const OWNER_MASK: u64 = 0xFFFF;
    /// One attach.
    pub const ATTACH_ONE: u64 = 1 << 16;

    /// The owner tag (peer slot + 1, or 0).
    #[inline]
    pub const fn owner(w: u64) -> u16 {
        (w & OWNER_MASK) as u16
    }

    /// True if this end was attached before and is free now.
    #[inline]
    pub const fn gone(w: u64) -> bool {
        owner(w) == 0 && w >= ATTACH_ONE
    }

    /// The attach count of the producer word `w` (owner tag cleared).
    #[inline]
    pub const fn attaches(w: u64) -> u64 {
        w & !OWNER_MASK
    }

    /// What a consumer attaching now keeps of the producer word `w`: the
    /// attach count *before* the producer it is going to read from. With no
    /// producer attached that is the current count (the next producer to
    /// attach is the one); with one attached, the count before its attach
    /// (it is the one).
    #[inline]
    pub const fn epoch_at_attach(w: u64) -> u64 {
        if owner(w) == 0 {
            attaches(w)
        } else {
            attaches(w).wrapping_sub(ATTACH_ONE)
        }
    }

    /// True if the producer word `w` says that no producer is attached now
    /// and at least one attached after `epoch` (from [`epoch_at_attach`]):
    /// with the ring drained, that is the consumer's end of file.
    #[inline]
    pub const fn left_since(w: u64, epoch: u64) -> bool {
        owner(w) == 0 && attaches(w) != epoch
    }
}

/// Immutable parameters, written by the daemon at creation.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Meta {
    /// [`PIPE_MAGIC`].
    pub magic: AtomicU32,
    /// Reserved, zero.
    pub flags: AtomicU32,
    /// Ring capacity in bytes (a power of two).
    pub capacity: AtomicU64,
}

/// Endpoint claims (see [`end`]).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Ends {
    /// The producer's endpoint word.
    pub producer: AtomicU64,
    /// The consumer's endpoint word.
    pub consumer: AtomicU64,
}

/// A pipe's control block; the ring's `capacity` bytes follow at [`CTL_SIZE`].
///
/// # Layout
/// | line | contents | written by |
/// |---|---|---|
/// | 0 | [`Meta`] | the daemon, at creation |
/// | 1 | `tail` | the producer |
/// | 2 | `head` | the consumer |
/// | 3 | [`Ends`] | attaching/detaching endpoints, the daemon's recovery |
/// | 4 | `readable`: [`Doorbell`] the consumer sleeps on | consumer (waiters), producer (bell) |
/// | 5 | `writable`: [`Doorbell`] the producer sleeps on | producer (waiters), consumer (bell) |
///
/// `tail` and `head` count bytes since creation; `0 <= tail - head <= capacity`.
#[derive(Debug, Default)]
#[repr(C)]
pub struct PipeCtl {
    /// Immutable parameters.
    pub meta: Line<Meta>,
    /// Bytes ever published by producers.
    pub tail: Line<AtomicU64>,
    /// Bytes ever released by consumers.
    pub head: Line<AtomicU64>,
    /// Endpoint words.
    pub ends: Line<Ends>,
    /// Rung when data is published or the producer detaches.
    pub readable: Line<Doorbell>,
    /// Rung when space is released or the consumer detaches.
    pub writable: Line<Doorbell>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PipeCtl>() as u64 == CTL_SIZE);
    assert!(align_of::<PipeCtl>() == 128);
    assert!(offset_of!(PipeCtl, tail) == 128);
    assert!(offset_of!(PipeCtl, head) == 256);
    assert!(offset_of!(PipeCtl, ends) == 384);
    assert!(offset_of!(PipeCtl, readable) == 512);
    assert!(offset_of!(PipeCtl, writable) == 640);
};

/// Snapshot of a pipe for `ls`-style listings (all values approximate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeStats {
    /// Ring capacity in bytes.
    pub capacity: u64,
    /// Bytes waiting to be read (headers and padding included).
    pub used: u64,
    /// Owner tag of the producer, 0 if none.
    pub producer: u16,
    /// Owner tag of the consumer, 0 if none.
    pub consumer: u16,
    /// The producer's position `tail`: bytes ever committed to the ring,
    /// headers and padding included (monitors derive rates from it).
    pub tail: u64,
    /// The consumer's position `head`: bytes ever released by the consumer.
    pub head: u64,
}

/// Checks a capacity requested for a new pipe.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_capacity(capacity: u64) -> Result<(), String> {
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(format!(
            "pipe capacity {capacity} must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} bytes"
        ));
    }
    Ok(())
}

/// Bytes the record of a `len`-byte frame takes in the ring: the header and
/// the payload, padded to a multiple of 8.
#[inline(always)]
pub const fn record_len(len: u64) -> u64 {
    HEADER + crate::util::round8(len)
}

/// Bytes a pipe of `capacity` takes in the arena (control block + ring).
pub const fn body_len(capacity: u64) -> u64 {
    CTL_SIZE + capacity
}

/// Largest frame a pipe of `capacity` takes.
pub const fn max_frame(capacity: u64) -> u64 {
    capacity / 8
}

impl PipeCtl {
    /// Initialises a zeroed control block (daemon only, before the directory
    /// entry is published).
    pub fn init(&self, capacity: u64) {
        debug_assert!(check_capacity(capacity).is_ok());
        // Relaxed: published to clients by the Release store of the directory
        // entry's state (or the segment's READY state).
        self.meta.capacity.store(capacity, Ordering::Relaxed);
        self.meta.magic.store(PIPE_MAGIC, Ordering::Relaxed);
    }

    /// Reads and checks the immutable parameters against what the directory
    /// says (`capacity`) and the space the body has (`body_len`).
    ///
    /// # Errors
    /// `Err` naming the first inconsistency.
    pub fn check(&self, capacity: u64, body: u64) -> Result<u64, &'static str> {
        if self.meta.magic.load(Ordering::Relaxed) != PIPE_MAGIC {
            return Err("bad magic in the pipe's control block");
        }
        let cap = self.meta.capacity.load(Ordering::Relaxed);
        if cap != capacity || check_capacity(cap).is_err() {
            return Err("capacity in the control block disagrees with the directory");
        }
        if body < body_len(cap) {
            return Err("ring extends past the channel's allocation");
        }
        Ok(cap)
    }

    /// The producers' mark now: a consumer attached later with
    /// [`Consumer::attach_since`] and this mark reads from every producer
    /// that attaches from now on (and from the one attached now, if any).
    pub fn producers_mark(&self) -> u64 {
        // Acquire: as the load in `Consumer::attach_since`.
        end::epoch_at_attach(self.ends.producer.load(Ordering::Acquire))
    }

    /// A snapshot for listings.
    pub fn stats(&self) -> PipeStats {
        // Relaxed everywhere: a listing is a snapshot, not a synchronisation.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        PipeStats {
            capacity: self.meta.capacity.load(Ordering::Relaxed),
            used: tail.wrapping_sub(head),
            producer: end::owner(self.ends.producer.load(Ordering::Relaxed)),
            consumer: end::owner(self.ends.consumer.load(Ordering::Relaxed)),
            tail,
            head,
        }
    }

    /// Wakes both sides' sleepers (daemon shutdown).
    pub fn wake_all(&self) {
        self.readable.ring();
        self.writable.ring();
    }

    /// Releases every end held by `owner` (daemon recovery after the death of
    /// that peer is confirmed) and wakes the other side, which then sees
    /// `Disconnected` once it cannot go on. Returns how many ends it released.
    ///
    /// A process can die asleep, leaving its announcement in the doorbell it
    /// slept on; every later publish would then make a `FUTEX_WAKE` system
    /// call. Each doorbell has exactly one possible sleeper (the producer
    /// sleeps on `writable`, the consumer on `readable`), so before freeing a
    /// dead end its doorbell's count is reset: nobody else can attach to that
    /// end, and so announce on that doorbell, until the release below.
    pub fn release_owner(&self, owner: u16) -> u32 {
        let mut n = 0;
        // Relaxed: the release CAS (Release) below publishes the resets to the
        // next holder, whose attach CAS is Acquire.
        if end::owner(self.ends.producer.load(Ordering::Relaxed)) == owner {
            self.writable.waiters.store(0, Ordering::Relaxed);
        }
        if end::owner(self.ends.consumer.load(Ordering::Relaxed)) == owner {
            self.readable.waiters.store(0, Ordering::Relaxed);
        }
        if release(&self.ends.producer, owner) {
            self.readable.notify();
            n += 1;
        }
        if release(&self.ends.consumer, owner) {
            self.writable.notify();
            n += 1;
        }
        n
    }
}

/// Positions at or above this are refused at attach: no pipe carries 2^63
/// bytes, and the bound keeps the producer's `tail + need` from overflowing.
const MAX_POSITION: u64 = 1 << 63;

/// Whether `tail` and `head`, read from a control block at attach, are
/// consistent: in order (compared as plain numbers, not wrapping), at most
/// `capacity` apart, 8-byte aligned, and far from overflowing. The per-call
/// checks of each side rely on this starting point.
fn positions_ok(tail: u64, head: u64, capacity: u64) -> bool {
    head <= tail
        && tail - head <= capacity
        && tail.is_multiple_of(8)
        && head.is_multiple_of(8)
        && tail < MAX_POSITION
}

/// Message for an attach refused by [`positions_ok`].
const BAD_POSITIONS: &str =
    "tail and head are out of order, misaligned or more than a capacity apart";

/// Claims an endpoint word for `me`.
fn attach(word: &AtomicU64, me: u16) -> Result<(), AttachError> {
    debug_assert!(me != 0);
    // Relaxed: only a starting guess for the CAS.
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let owner = end::owner(cur);
        if owner != 0 {
            return Err(AttachError::Busy { owner });
        }
        let attaches = (cur & !end::OWNER_MASK).wrapping_add(end::ATTACH_ONE);
        // AcqRel: Acquire pairs with the previous holder's Release detach, so we
        // see its last position; Release publishes the attach to the other side.
        match word.compare_exchange_weak(
            cur,
            attaches | u64::from(me),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// Frees an endpoint word if `me` holds it. Returns whether it did.
fn release(word: &AtomicU64, me: u16) -> bool {
    // Relaxed: only a starting guess for the CAS.
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        if end::owner(cur) != me {
            return false;
        }
        // Release: orders our last position store before the detach; pairs with
        // the Acquire in `attach` and in the other side's `gone` checks.
        match word.compare_exchange_weak(
            cur,
            cur & !end::OWNER_MASK,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
}

/// A pipe whose control block and ring live on the heap instead of in a
/// segment: for tests, benchmarks and loom models, which check the protocol
/// without mapping shared memory. Works under `--cfg loom` too (construct it
/// inside `loom::model`, since loom's atomics only exist there).
///
/// # Examples
/// ```
/// use shmbus::pipe::HeapPipe;
///
/// let pipe = HeapPipe::new(64);
/// // SAFETY: `pipe` outlives both endpoints (they are dropped first).
/// let (mut tx, mut rx) = unsafe { (pipe.producer(1).unwrap(), pipe.consumer(2).unwrap()) };
/// tx.try_send(b"hi").unwrap();
/// assert_eq!(rx.try_recv_with(|b| b.to_vec()).unwrap(), b"hi");
/// ```
#[derive(Debug)]
pub struct HeapPipe {
    ctl: Box<PipeCtl>,
    ring: Box<[UnsafeCell<u64>]>,
}

// SAFETY: the control block is made of atomics, and the ring words are only
// reached through `Producer`/`Consumer` (whose `attach` is `unsafe` and whose
// protocol hands each word to one side at a time) or through `words`, whose
// cells need `unsafe` to touch.
unsafe impl Sync for HeapPipe {}

impl HeapPipe {
    /// A fresh, initialised pipe of `capacity` bytes with no endpoint attached.
    ///
    /// # Panics
    /// If [`check_capacity`] refuses `capacity`.
    pub fn new(capacity: u64) -> Self {
        if let Err(e) = check_capacity(capacity) {
            panic!("{e}");
        }
        let ctl = Box::<PipeCtl>::default();
        ctl.init(capacity);
        let ring = (0..capacity / 8).map(|_| UnsafeCell::new(0)).collect();
        Self { ctl, ring }
    }

    /// The control block (to inspect, or to scribble on in corruption tests).
    pub fn ctl(&self) -> &PipeCtl {
        &self.ctl
    }

    /// Pointer to the control block, as [`Producer::attach`] takes it.
    pub fn ctl_ptr(&self) -> NonNull<PipeCtl> {
        NonNull::from(&*self.ctl)
    }

    /// The ring, as [`Producer::attach`] takes it. Valid while `self` lives.
    pub fn ring(&self) -> Ring {
        // From the whole slice, so the pointer may reach every word.
        let words = NonNull::from(&*self.ring).cast::<UnsafeCell<u64>>();
        // SAFETY: `words` points to `capacity` bytes of `u64` cells (8-aligned)
        // owned by `self`; the ring only reaches them through endpoints whose
        // `attach` contract makes the caller keep `self` alive.
        unsafe { Ring::new(words, self.ring.len() as u64 * 8) }
    }

    /// The ring's words, for tests that scribble on records.
    pub fn words(&self) -> &[UnsafeCell<u64>] {
        &self.ring
    }

    /// Attaches a producer with owner tag `me`.
    ///
    /// # Safety
    /// `self` must outlive the returned producer. (Moving `self` is fine: the
    /// control block and the ring are boxed.)
    ///
    /// # Errors
    /// As [`Producer::attach`].
    pub unsafe fn producer(&self, me: u16) -> Result<Producer, AttachError> {
        // SAFETY: the control block passed `init`, the ring is its ring, and
        // the caller keeps both alive as long as the producer.
        unsafe { Producer::attach(self.ctl_ptr(), self.ring(), me) }
    }

    /// Attaches a consumer with owner tag `me`.
    ///
    /// # Safety
    /// As [`HeapPipe::producer`].
    ///
    /// # Errors
    /// As [`Consumer::attach`].
    pub unsafe fn consumer(&self, me: u16) -> Result<Consumer, AttachError> {
        // SAFETY: as in `producer`.
        unsafe { Consumer::attach(self.ctl_ptr(), self.ring(), me) }
    }

    /// Attaches a consumer with owner tag `me` and producers' `mark`
    /// ([`Consumer::attach_since`]).
    ///
    /// # Safety
    /// As [`HeapPipe::producer`].
    ///
    /// # Errors
    /// As [`Consumer::attach`].
    pub unsafe fn consumer_since(&self, me: u16, mark: u64) -> Result<Consumer, AttachError> {
        // SAFETY: as in `producer`.
        unsafe { Consumer::attach_since(self.ctl_ptr(), self.ring(), me, Some(mark)) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn positions_ok_accepts_consistent_positions() {
        for (tail, head) in [(0, 0), (64, 0), (128, 64), (1 << 40, (1 << 40) - 64)] {
            assert!(positions_ok(tail, head, 64), "tail {tail} head {head}");
        }
    }

    #[test]
    fn positions_ok_refuses_inconsistent_positions() {
        let cases = [
            (72, 0),                      // more than a capacity apart
            (0, 8),                       // head ahead of tail
            (0, u64::MAX - 7),            // head ahead, though `wrapping_sub` is small
            (4, 0),                       // tail misaligned
            (8, 4),                       // head misaligned
            (MAX_POSITION, MAX_POSITION), // `tail + need` could overflow
            (u64::MAX - 7, u64::MAX - 7), // likewise
        ];
        for (tail, head) in cases {
            assert!(!positions_ok(tail, head, 64), "tail {tail} head {head}");
        }
    }

    #[test]
    fn endpoint_words() {
        assert!(!end::gone(0), "never attached");
        assert!(end::gone(end::ATTACH_ONE), "attached once, left");
        assert!(!end::gone(end::ATTACH_ONE | 5), "held by tag 5");
        assert_eq!(end::owner((3 * end::ATTACH_ONE) | 7), 7);
    }

    #[test]
    fn consumer_epoch() {
        // Attached to a never-used pipe: only the first producer's departure.
        let e = end::epoch_at_attach(0);
        assert!(!end::left_since(0, e), "nobody came");
        assert!(!end::left_since(end::ATTACH_ONE | 5, e), "one is there");
        assert!(end::left_since(end::ATTACH_ONE, e), "it came and went");
        // Attached after two producers left: not their departure.
        let e = end::epoch_at_attach(2 * end::ATTACH_ONE);
        assert!(!end::left_since(2 * end::ATTACH_ONE, e));
        assert!(!end::left_since((3 * end::ATTACH_ONE) | 1, e));
        assert!(end::left_since(3 * end::ATTACH_ONE, e));
        assert!(end::left_since(5 * end::ATTACH_ONE, e));
        // Attached while the third is there: its departure.
        let e = end::epoch_at_attach((3 * end::ATTACH_ONE) | 1);
        assert!(!end::left_since((3 * end::ATTACH_ONE) | 1, e));
        assert!(end::left_since(3 * end::ATTACH_ONE, e));
    }

    #[test]
    fn attach_and_release_count_attaches() {
        let w = AtomicU64::new(0);
        attach(&w, 3).unwrap();
        assert_eq!(attach(&w, 4), Err(AttachError::Busy { owner: 3 }));
        assert!(!release(&w, 4), "not the holder");
        assert!(release(&w, 3));
        assert!(!release(&w, 3), "already free");
        attach(&w, 4).unwrap();
        assert_eq!(w.load(Ordering::Relaxed), (2 * end::ATTACH_ONE) | 4);
    }
}
