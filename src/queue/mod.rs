//! Bounded multi-producer multi-consumer queue of byte frames.
//!
//! Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC queue", 1024cores.net;
//! also crossbeam-queue's `ArrayQueue`), changed so that a process that dies
//! in the middle of an operation can be repaired by the daemon: every cell's
//! state word carries, beside the sequence number, the owner tag of the process
//! that holds the cell (see [`state`]). A put claims its position as Vyukov's
//! does, by a CAS of `enqueue_pos`, which also names the claimer, and then
//! tags the cell with a plain store (see [Claiming a put](#claiming-a-put)).
//! A get claims by a CAS on the cell; `dequeue_pos` is only a hint that
//! anybody may advance once the cell at that position has been claimed, so a
//! consumer that dies between its two steps stalls no one.
//!
//! ```text
//! put at pos:  enqueue_pos: CAS (pos, prev) -> (pos+1, me); cell[pos % slots]: store (pos, me)
//!              write len + payload; store (pos+1, 0)  [Release] ; ring not_empty
//! get at pos:  cell[pos % slots]: CAS (pos+1, 0) -> (pos+1, me); dequeue_pos: CAS pos -> pos+1
//!              read len + payload; store (pos+slots, 0)  [Release] ; ring not_full
//! ```
//!
//! A tombstone `(pos+1, TOMB)`, left by the daemon for a producer that died
//! holding a cell (or by a zero-copy claim dropped without commit), is skipped
//! by consumers: the one that meets it CASes it to `(pos+slots, 0)`.
//!
//! A frame is at most `slot_size` bytes and is stored contiguously in its cell,
//! so zero-copy puts ([`Queue::try_claim`]) and in-place gets
//! ([`Queue::try_get_claim`]) need no wrap handling.
//!
//! Everything read from shared memory is untrusted: state words whose sequence
//! number cannot occur at that cell or position, lengths over the slot size,
//! and positions that never let an operation finish are reported as `Corrupt`,
//! never undefined behaviour, a panic or an endless loop.
//!
//! Blocking ([`Queue::put_until`], [`Queue::get_claim_until`]) sleeps on two
//! [`Doorbell`](crate::futex::Doorbell)s, `not_empty` and `not_full`, which make no system call when
//! nobody sleeps. [`Queue::task_done`] and [`Queue::join_until`] count
//! unfinished items as Python's `JoinableQueue` does, but the count is not one
//! word that producers increment: it is the put frontier less `finished` (see
//! [`QueueCtl::finished`]), so that claiming a cell and counting its item are
//! one atomic step, and a producer that dies between two steps of a put
//! leaves nothing for the daemon to guess.
//!
//! # Claiming a put
//! A put makes one locked instruction, the CAS of `enqueue_pos` from
//! `(pos, prev)` to `(pos + 1, me)` after it found the cell of `pos` free,
//! `(pos, 0)`; the position word is packed as a cell state word and names
//! the last claimer. Then it stores its tag into the cell, `(pos, me)`, with
//! a plain store (only it writes the cell now), writes, and publishes. A
//! producer that dies between the CAS and the tag leaves a cell that looks
//! free below the frontier, where no put will ever look again, and consumers
//! stop at it; so the claim is found through the position while it names
//! the claimer, and through the cell after that: the next put, before it
//! moves the position past `(pos + 1, k)`, notes the claim `(pos, k)` in the
//! cell's claim note (a word beside the state word that only such puts
//! write, by a forward-only CAS) if the cell is still `(pos, 0)`, unless
//! its own handle made that claim. The daemon's recovery of peer `k`
//! tombstones every untagged cell below the frontier that `enqueue_pos` or
//! the cell's note says `k` claimed, and every cell tagged `k`
//! ([`QueueCtl::recover_owner`]). (A first version had the next put tag the
//! state word itself, by CAS; loom cannot order a CAS and a plain store of
//! one word fully, and reported an execution that cannot occur.) Until 2026-12-05 a put claimed by CAS on
//! the cell and let the position lag as a hint; that CAS is on the line a
//! caught-up consumer polls, and cost two thirds of the 1P/1C rate (see the
//! NB in `claim_put`).
//!
//! The put frontier is the position itself ([`QueueCtl::put_frontier`]):
//! the unfinished count and `task_done`'s check, the length, the listing,
//! the put readiness of a select. Loom models cover two producers, a handle
//! shared by two threads, `join` with `task_done`, and a producer that dies
//! at each crash point of a put, with or without a put by another producer
//! before the daemon's recovery.
//!
//! # Ordering of positions and cells
//! Every store to a position is a Release CAS made after its maker saw (with
//! an Acquire load or CAS) the cell at the old position: for `dequeue_pos`,
//! the claim of that cell; for `enqueue_pos`, the cell free for the claim.
//! Every load of a position is Acquire. So a process that reads position `p`
//! sees every cell below `p` at least in that state, and in particular the
//! cell of `p` at least in the state its producer or consumer of the last
//! lap saw: a producer finds `seq >= p - slots`, a consumer `seq >= p + 1 -
//! slots`. On x86 these orderings cost
//! nothing (loads are Acquire and CAS is a full barrier anyway); loom found
//! that with Relaxed ones a cell can look older than its position.
//!
//! # Throughput: the lockstep at the head
//! With one producer and a consumer busy-polling an empty queue, both work on
//! one cell's line: the consumer reads the cell at `dequeue_pos` again and
//! again while the producer fills it. Until 2026-12-05 the producer also
//! claimed that cell by CAS, which must take the line back from the reader
//! and first wait for the producer's own earlier stores, whose lines the
//! reader took meanwhile: a profile (`perf record -e cpu-clock`, 1P/1C
//! busy) put 56 % of the producer's samples on that CAS. The put now claims
//! by CAS of `enqueue_pos`, a line only producers write, and stores into
//! the cell without a locked instruction, as the pipe's producer does (see
//! [Claiming a put](#claiming-a-put)). The figures below are of the
//! protocols before that.
//!
//! Measured in one process, the producer and consumer threads pinned to the
//! two cpus and the variants alternating in slices of 4 M items, eight
//! rounds, medians (items/s, 2026-12-04; in runs 1 and 2 the cache-line
//! probe read 220–330 ns in all rounds but one or two, in run 3 about
//! 770 ns):
//!
//! | variant | run 1 | run 2 | run 3 |
//! |---|---:|---:|---:|
//! | the code then (each put also advanced `enqueue_pos`), the consumer spinning once between tries | 11.7 M | 11.8 M | 5.9 M |
//! | the consumer spinning 64 times (1.8 µs) after an empty try | 22.7 M | 22.7 M | 6.9 M |
//! | the first, the producer never touching `enqueue_pos` (one producer only; not a correct change) | 16.4 M | | |
//!
//! The rate swings between runs and rounds, because the two sides settle
//! either in lockstep at the head or with items piled up between them.
//! `shmbus-bench`'s `shmbus/queue-tput-1p1c-busy-backoff/64` row shows the
//! second line between processes: a consumer that lets items pile up and
//! takes them in a run gets about twice the rate. The third is what a
//! producer with one locked instruction per put instead of two gains, which
//! is what a lagging put position (a put claiming by CAS on its cell, and
//! advancing `enqueue_pos` once every 16 puts) gave from 2026-12-04 to
//! 2026-12-05. Measured as above, the two protocols in one build switched at run
//! time between slices (five runs of 12 to 20 rounds, 2026-12-04, medians in
//! M items/s, the lagging position of that time first):
//!
//! | consumer | vCPUs close | far |
//! |---|---|---|
//! | busy | 15.8 / 12.9, 16.0 / 12.8, 17.0 / 12.2, 14.8 / 13.4, 14.0 / 12.3 | 6.0 / 5.0, 6.4 / 6.1, 5.5 / 5.4 |
//! | 64 spins after an empty try | 30.8 / 23.6, 29.1 / 23.1, 27.0 / 22.1, 30.7 / 26.8, 26.0 / 21.4 | 7.1 / 6.5, 7.8 / 7.2, 6.7 / 6.3 |
//!
//! Instructions per put (callgrind, `bench/icount ... queue64`): 81.1
//! against 73.8 with the position advanced by every put; the locked
//! instruction saved costs far more than the seven. Which locked
//! instruction a put keeps mattered more still: see
//! [Claiming a put](#claiming-a-put). What else was tried and not kept is
//! in NBs in `handle.rs`.
//!
//! # Files
//! | file | what |
//! |---|---|
//! | `mod.rs` | parameters, the cell [`state`] words, [`HeapQueue`] |
//! | `ctl.rs` | the control block [`QueueCtl`]: positions, the unfinished count, the daemon's recovery |
//! | `cells.rs` | where the cells are ([`Cells`]), and copies in and out of them |
//! | `handle.rs` | [`Queue`], a process's handle: claiming cells, put, get, `join` |
//! | `claim.rs` | zero-copy puts and in-place gets: [`PutClaim`], [`GetClaim`] |
//! | `error.rs` | one error type per operation |

mod cells;
mod claim;
mod ctl;
mod error;
mod handle;

pub use cells::Cells;
pub use claim::{GetClaim, PutClaim};
pub use ctl::{QueueCtl, QueueMeta, QueueRecovery, QueueStats};
pub use error::{GetError, PutError, TaskDoneError, TryGetError, TryPutError};
pub use handle::Queue;

use core::ptr::NonNull;

use crate::sync::cell::UnsafeCell;
use crate::sync::AtomicU64;
use crate::util::round8;

/// `b"QUEU"` as a little-endian `u32`.
pub const QUEUE_MAGIC: u32 = u32::from_le_bytes(*b"QUEU");
/// Size of the control block that precedes the cells.
pub const CTL_SIZE: u64 = 7 * 128;
/// Fewest slots (a single slot would make a write claim and a read claim look
/// alike to the daemon's recovery, see [`QueueCtl::recover_owner`]).
pub const MIN_SLOTS: u64 = 2;
/// Most slots.
pub const MAX_SLOTS: u64 = 1 << 24;
/// Largest slot payload in bytes (1 MiB).
pub const MAX_SLOT_SIZE: u64 = 1 << 20;
/// Default number of slots.
pub const DEFAULT_SLOTS: u64 = 1024;
/// Default slot payload size in bytes.
pub const DEFAULT_SLOT_SIZE: u64 = 256;
/// Bytes of a cell before its payload: the state word, the claim note and the
/// length word.
pub const CELL_HEADER: u64 = 24;
/// Cells start on boundaries of this many bytes, so that neighbouring cells,
/// which a producer and a consumer use at the same time, share no cache line.
pub const CELL_ALIGN: u64 = 64;

/// The cell state words.
///
/// # Bit layout
/// ```text
/// 63                        16 15          0
/// +---------------------------+------------+
/// | seq (48 bits)             | owner (16) |
/// +---------------------------+------------+
/// ```
/// `seq` is a position modulo 2^48; positions are compared with
/// [`diff`](state::diff), so the 48 bits wrap without harm (at 10^8 operations a second
/// they wrap after a month). Cell `i` starts as `(i, 0)`. For the cell of
/// position `pos` (`i = pos % slots`):
///
/// # State table
/// | seq | owner | meaning | next |
/// |---|---|---|---|
/// | `pos` | 0 | free for the producer of `pos` | a producer claims it |
/// | `pos` | `k` | peer `k - 1` writes the frame of `pos` | it publishes `(pos+1, 0)`; recovery: `(pos+1, TOMB)` |
/// | `pos+1` | 0 | holds the frame of `pos` | a consumer claims it |
/// | `pos+1` | `k` | peer `k - 1` reads the frame of `pos` | it releases `(pos+slots, 0)`; recovery likewise |
/// | `pos+1` | [`TOMB`](state::TOMB) | a write that never finished: skip | a consumer releases `(pos+slots, 0)` |
/// | `pos+slots` | 0 | free for the producer of the next lap | |
///
/// A producer at `pos` that finds `seq` one lap behind (`pos-slots` or
/// `pos-slots+1`) reports the queue full; a consumer at `pos` that finds `pos`
/// or `pos+1-slots` reports it empty (both may be momentary, as in Vyukov's
/// queue). An older `seq` than that cannot occur (see [Ordering of
/// positions and cells](crate::queue#ordering-of-positions-and-cells))
/// unless a position or cell is corrupt: it loads the position once more and
/// reports `Corrupt` if nobody moved it. Any `seq` ahead of what it expects
/// means its view of the position is stale (the cell was claimed at that
/// position), so it helps advance the position and retries; if its help
/// succeeds although the cell is more than `slots` ahead, the position is
/// corrupt (see `Queue::help_past`) and it reports `Corrupt` instead of
/// walking the position up to the cells one step at a time. `seq % slots` is
/// always `i` (free or write-claimed) or `i + 1` (full, read-claimed or
/// tombstone), which is how recovery tells a write claim from a read claim.
pub mod state {
    /// Mask of the owner tag.
    pub const OWNER_MASK: u64 = 0xFFFF;
    /// Mask of the 48-bit sequence number (after shifting).
    pub const SEQ_MASK: u64 = (1 << 48) - 1;
    /// Owner tag of a tombstone: a cell whose write never finished.
    pub const TOMB: u16 = 0xFFFF;

    /// The word for `seq` (taken modulo 2^48) and `owner`.
    #[inline(always)]
    pub const fn pack(seq: u64, owner: u16) -> u64 {
        ((seq & SEQ_MASK) << 16) | owner as u64
    }

    /// The sequence number.
    #[inline(always)]
    pub const fn seq(w: u64) -> u64 {
        w >> 16
    }

    /// The owner tag (peer slot + 1, 0 for none, [`TOMB`]).
    #[inline(always)]
    pub const fn owner(w: u64) -> u16 {
        (w & OWNER_MASK) as u16
    }

    /// `seq - pos` modulo 2^48, as a signed number.
    #[inline(always)]
    pub const fn diff(seq: u64, pos: u64) -> i64 {
        ((seq.wrapping_sub(pos) << 16) as i64) >> 16
    }
}

use state::pack;

/// Bytes of one cell: state word, claim note, length word, payload rounded
/// up to 8, rounded up to [`CELL_ALIGN`].
pub const fn cell_stride(slot_size: u64) -> u64 {
    (CELL_HEADER + round8(slot_size) + CELL_ALIGN - 1) & !(CELL_ALIGN - 1)
}

/// Bytes a queue takes in the arena (control block + cells). Call it only
/// with parameters [`check_params`] accepted.
pub const fn body_len(slots: u64, slot_size: u64) -> u64 {
    CTL_SIZE + slots * cell_stride(slot_size)
}

/// Checks the parameters requested for a new queue.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_params(slots: u64, slot_size: u64) -> Result<(), String> {
    if !slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
        return Err(format!(
            "queue slots {slots} must be a power of two from {MIN_SLOTS} to {MAX_SLOTS}"
        ));
    }
    if !(1..=MAX_SLOT_SIZE).contains(&slot_size) {
        return Err(format!(
            "queue slot size {slot_size} must be from 1 to {MAX_SLOT_SIZE} bytes"
        ));
    }
    Ok(())
}

/// A queue whose control block and cells live on the heap: for tests,
/// benchmarks and loom models. Works under `--cfg loom` (construct it inside
/// `loom::model`).
///
/// # Examples
/// ```
/// use shmbus::queue::HeapQueue;
///
/// let q = HeapQueue::new(4, 16);
/// // SAFETY: `q` outlives both handles.
/// let (a, b) = unsafe { (q.handle(1), q.handle(2)) };
/// a.try_put(b"hi").unwrap();
/// assert_eq!(b.try_get_claim().unwrap().to_vec(), b"hi");
/// ```
#[derive(Debug)]
pub struct HeapQueue {
    ctl: Box<QueueCtl>,
    states: Box<[AtomicU64]>,
    notes: Box<[AtomicU64]>,
    words: Box<[UnsafeCell<u64>]>,
    slots: u64,
    slot_size: u64,
}

// SAFETY: the control block and states are atomics; the words are reached only
// through the queue protocol (via `Queue`, whose construction is `unsafe`).
unsafe impl Sync for HeapQueue {}
// SAFETY: as above; nothing is tied to a thread.
unsafe impl Send for HeapQueue {}

impl HeapQueue {
    /// A fresh queue of `slots` cells of `slot_size` bytes.
    ///
    /// # Panics
    /// If [`check_params`] refuses the parameters.
    pub fn new(slots: u64, slot_size: u64) -> Self {
        if let Err(e) = check_params(slots, slot_size) {
            panic!("{e}");
        }
        let ctl = Box::<QueueCtl>::default();
        ctl.init(slots, slot_size);
        let states = (0..slots).map(|i| AtomicU64::new(pack(i, 0))).collect();
        let notes = (0..slots).map(|_| AtomicU64::new(0)).collect();
        let per_cell = 1 + slot_size.div_ceil(8);
        let words = (0..slots * per_cell).map(|_| UnsafeCell::new(0)).collect();
        Self {
            ctl,
            states,
            notes,
            words,
            slots,
            slot_size,
        }
    }

    /// The control block.
    pub fn ctl(&self) -> &QueueCtl {
        &self.ctl
    }

    /// The cells, as [`Queue::attach`] takes them. Valid while `self` lives.
    pub fn cells(&self) -> Cells {
        let per_cell = 1 + self.slot_size.div_ceil(8) as usize;
        Cells {
            states: NonNull::from(&*self.states).cast(),
            notes: NonNull::from(&*self.notes).cast(),
            words: NonNull::from(&*self.words).cast(),
            state_stride: core::mem::size_of::<AtomicU64>(),
            word_stride: per_cell * core::mem::size_of::<UnsafeCell<u64>>(),
            slots: self.slots,
            slot_size: self.slot_size,
        }
    }

    /// The state word of cell `i`, for tests that inspect or scribble.
    pub fn state_word(&self, i: u64) -> &AtomicU64 {
        &self.states[i as usize]
    }

    /// A handle with owner tag `me`.
    ///
    /// # Safety
    /// `self` must outlive the handle (moving `self` is fine: all is boxed).
    pub unsafe fn handle(&self, me: u16) -> Queue {
        // SAFETY: the control block passed `init` with these cells' parameters
        // and the caller keeps both alive as long as the handle.
        unsafe { Queue::attach(NonNull::from(&*self.ctl), self.cells(), me) }
    }

    /// Runs the daemon's recovery for `owner`.
    pub fn recover_owner(&self, owner: u16) -> QueueRecovery {
        self.ctl.recover_owner(&self.cells(), owner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::handle::BAD_POSITION;
    use super::state::{diff, seq};
    use super::*;
    use crate::sync::Ordering;
    use std::time::Instant;

    #[test]
    fn diff_wraps_at_48_bits() {
        assert_eq!(diff(5, 3), 2);
        assert_eq!(diff(3, 5), -2);
        assert_eq!(diff(0, state::SEQ_MASK), 1);
        assert_eq!(diff(state::SEQ_MASK, 0), -1);
        assert_eq!(diff(seq(pack(1 << 48, 0)), 1 << 48), 0);
    }

    #[test]
    fn put_get_wrap_and_full() {
        let q = HeapQueue::new(2, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        for round in 0..5u8 {
            h.try_put(&[round]).unwrap();
            h.try_put(&[round, 1]).unwrap();
            assert_eq!(h.try_put(b"x"), Err(TryPutError::Full));
            assert!(h.is_full());
            assert_eq!(h.try_get_claim().unwrap().to_vec(), [round]);
            assert_eq!(h.try_get_claim().unwrap().as_slice(), [round, 1]);
            assert_eq!(h.try_get_claim().unwrap_err(), TryGetError::Empty);
            assert!(h.is_empty());
        }
        assert_eq!(
            h.try_put(&[0; 9]),
            Err(TryPutError::TooLarge { len: 9, max: 8 })
        );
    }

    /// `enqueue_pos` is the put frontier and names its last claimer; a put
    /// by another producer notes the claim the position names while its
    /// cell is untagged (its claimer died between its position CAS and its
    /// tag, simulated here), and the daemon's recovery finds the claim
    /// through the note, or through the position if no put came since.
    #[test]
    fn untagged_claims_are_found() {
        let q = HeapQueue::new(8, 8);
        // SAFETY: `q` outlives the handles.
        let (h, other) = unsafe { (q.handle(1), q.handle(2)) };
        let e = &q.ctl().enqueue_pos;
        h.try_put(b"a").unwrap();
        assert_eq!(e.load(Ordering::Relaxed), pack(1, 1));
        assert_eq!((h.len(), h.unfinished()), (1, 1));
        // Peer 7 claims position 1 and dies before it tags the cell.
        e.store(pack(2, 7), Ordering::Relaxed);
        assert_eq!(h.try_get_claim().unwrap().to_vec(), b"a");
        assert_eq!(h.try_get_claim().unwrap_err(), TryGetError::Empty);
        assert_eq!(h.stalling_claim(true), Some(pack(1, 7)));
        other.try_put(b"b").unwrap();
        assert_eq!(q.state_word(1).load(Ordering::Relaxed), pack(1, 0));
        assert_eq!(q.cells().note(1).load(Ordering::Relaxed), pack(1, 7));
        assert_eq!(e.load(Ordering::Relaxed), pack(3, 2));
        assert_eq!(h.stalling_claim(true), Some(pack(1, 7)));
        assert_eq!((h.len(), h.unfinished()), (2, 3));
        assert_eq!(q.recover_owner(7).tombstoned, 1);
        assert_eq!(h.try_get_claim().unwrap().to_vec(), b"b");
        assert_eq!(h.unfinished(), 2);
        // Again, with no put before the recovery: the position names it.
        e.store(pack(4, 7), Ordering::Relaxed);
        assert_eq!(h.stalling_claim(true), Some(pack(3, 7)));
        assert_eq!(q.recover_owner(7).tombstoned, 1);
        assert_eq!(q.recover_owner(7).tombstoned, 0, "idempotent");
        assert_eq!(h.try_get_claim().unwrap_err(), TryGetError::Empty);
        h.try_put(b"c").unwrap();
        assert_eq!(h.try_get_claim().unwrap().to_vec(), b"c");
        assert_eq!(h.unfinished(), 3);
        // A handle that made the last claim itself does not look back; the
        // queue goes on across laps.
        for k in 0..20u8 {
            h.try_put(&[k]).unwrap();
            assert_eq!(other.try_get_claim().unwrap().to_vec(), [k]);
        }
        assert_eq!(q.ctl().stats().enqueue_pos, 25);
    }

    #[test]
    fn abandoned_claim_is_skipped() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        drop(h.try_claim(3).unwrap());
        h.try_put(b"b").unwrap();
        assert_eq!(h.try_get_claim().unwrap().to_vec(), b"b");
        assert_eq!(h.unfinished(), 1);
    }

    #[test]
    fn recovery_of_both_claims() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handles.
        let (dead, live) = unsafe { (q.handle(7), q.handle(1)) };
        live.try_put(b"a").unwrap();
        core::mem::forget(dead.try_get_claim().unwrap());
        core::mem::forget(dead.try_claim(1).unwrap());
        live.try_put(b"c").unwrap();
        assert_eq!(live.try_get_claim().unwrap_err(), TryGetError::Empty);
        let r = q.recover_owner(7);
        assert_eq!(
            r,
            QueueRecovery {
                tombstoned: 1,
                released: 1
            }
        );
        assert_eq!(live.try_get_claim().unwrap().to_vec(), b"c");
        // Items: "a" (taken by the dead peer, never done) and "c".
        assert_eq!(live.unfinished(), 2);
        for k in 0..8u8 {
            live.try_put(&[k]).unwrap();
            assert_eq!(live.try_get_claim().unwrap().to_vec(), [k]);
        }
    }

    #[test]
    fn corrupt_states_are_reported() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        q.state_word(0).store(pack(2, 0), Ordering::Relaxed);
        assert!(matches!(h.try_put(b"x"), Err(TryPutError::Corrupt(_))));
        assert!(matches!(h.try_get_claim(), Err(TryGetError::Corrupt(_))));
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        h.try_put(b"x").unwrap();
        q.cells().write_len(0, 99);
        assert!(matches!(h.try_get_claim(), Err(TryGetError::Corrupt(_))));
        // The bad cell was released; the queue goes on.
        h.try_put(b"y").unwrap();
        assert_eq!(h.try_get_claim().unwrap().to_vec(), b"y");
    }

    /// A position scribbled far ahead of or behind its cells is reported at
    /// once: not after `MAX_STEPS` steps (50 ms of CPU in a debug build, over
    /// 10 s on a loaded machine: issue #10), and without walking the shared
    /// position up to the cells one step at a time.
    #[test]
    fn scribbled_positions_are_reported_at_once() {
        for (enq, far) in [
            (true, 19),
            (true, -(1 << 40)),
            (false, 19),
            (false, -(1 << 40)),
        ] {
            let q = HeapQueue::new(4, 8);
            // SAFETY: `q` outlives the handle.
            let h = unsafe { q.handle(1) };
            for k in 0..6u8 {
                h.try_put(&[k]).unwrap();
                drop(h.try_get_claim().unwrap());
            }
            h.try_put(b"x").unwrap();
            // `enqueue_pos` is packed as a state word, `dequeue_pos` is not.
            let (p, at) = if enq {
                (&q.ctl().enqueue_pos, seq as fn(u64) -> u64)
            } else {
                (&q.ctl().dequeue_pos, (|w| w) as fn(u64) -> u64)
            };
            let w = p.load(Ordering::Relaxed);
            let start = at(w).wrapping_add_signed(far);
            p.store(if enq { pack(start, 1) } else { start }, Ordering::Relaxed);
            let what = if enq {
                h.try_put(b"y").unwrap_err().to_string()
            } else {
                h.try_get_claim().unwrap_err().to_string()
            };
            assert!(what.contains(BAD_POSITION), "enq {enq} far {far}: {what}");
            let moved = at(p.load(Ordering::Relaxed)).wrapping_sub(start) & state::SEQ_MASK;
            assert!(moved <= 4, "enq {enq} far {far}: position walked {moved}");
        }
    }

    /// `dequeue_pos` a little behind its cells (as after a consumer died
    /// between its two CAS) is helped on, not reported; `enqueue_pos` behind
    /// its cells cannot occur (a put moves it before it touches a cell) and
    /// is reported.
    #[test]
    fn position_slightly_behind_is_helped_on() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        for k in 0..3u8 {
            h.try_put(&[k]).unwrap();
        }
        let e = &q.ctl().enqueue_pos;
        let was = e.load(Ordering::Relaxed);
        e.store(pack(seq(was) - 2, 1), Ordering::Relaxed);
        let what = h.try_put(b"y").unwrap_err().to_string();
        assert!(what.contains(BAD_POSITION), "{what}");
        e.store(was, Ordering::Relaxed);
        h.try_put(b"y").unwrap();
        let d = &q.ctl().dequeue_pos;
        assert_eq!(h.try_get_claim().unwrap().to_vec(), [0]);
        d.store(d.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        assert_eq!(h.try_get_claim().unwrap().to_vec(), [1]);
    }

    #[test]
    fn task_done_and_join() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        assert_eq!(h.task_done(), Err(TaskDoneError));
        h.try_put(b"x").unwrap();
        assert_eq!(
            h.join_until(Some(Instant::now()), None),
            Err(GetError::Timeout)
        );
        drop(h.try_get_claim().unwrap());
        h.task_done().unwrap();
        h.join_until(None, None).unwrap();
    }
}
