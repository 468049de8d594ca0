//! Bounded multi-producer multi-consumer queue of byte frames.
//!
//! Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC queue", 1024cores.net;
//! also crossbeam-queue's `ArrayQueue`), changed so that a process that dies
//! in the middle of an operation can be repaired by the daemon: every cell's
//! state word carries, beside the sequence number, the owner tag of the process
//! that holds the cell (see [`state`]). Claiming a cell is a CAS on the cell,
//! not on the shared position; the positions `enqueue_pos` and `dequeue_pos`
//! are only hints that anybody may advance once the cell at that position has
//! been claimed, so a process that dies between the two steps stalls no one.
//!
//! ```text
//! put at pos:  cell[pos % slots]: CAS (pos, 0) -> (pos, me); enqueue_pos: CAS pos -> pos+1
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
//! [`Doorbell`]s, `not_empty` and `not_full`, which make no system call when
//! nobody sleeps. [`Queue::task_done`] and [`Queue::join_until`] count
//! unfinished items as Python's `JoinableQueue` does, but the count is not one
//! word that producers increment: it is `enqueue_pos - finished` (see
//! [`QueueCtl::finished`]), so that claiming a cell and counting its item are
//! one atomic step, and a producer that dies between two steps of a put
//! leaves nothing for the daemon to guess.

mod error;

pub use error::{GetError, PutError, TaskDoneError, TryGetError, TryPutError};

use core::ptr::NonNull;
use std::time::Instant;

use crate::futex::{Doorbell, WaitError};
use crate::sync::cell::UnsafeCell;
use crate::sync::{crash, AtomicU32, AtomicU64, CrashPoint, Ordering, CRASHED};
use crate::util::{round8, Line};

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
/// Bytes of a cell before its payload: the state word and the length word.
pub const CELL_HEADER: u64 = 16;
/// Cells start on boundaries of this many bytes, so that neighbouring cells,
/// which a producer and a consumer use at the same time, share no cache line.
pub const CELL_ALIGN: u64 = 64;

/// Upper bound on the steps of one non-blocking operation. Each step that does
/// not finish means that another process changed the cell or the position
/// meanwhile (a legitimate run never comes near the bound), or that we helped
/// the position past a claim whose claimer had not yet advanced it (at most
/// one per cell on a cell that does not change). A state that nobody
/// changes and that cannot occur is reported as `Corrupt` at the step that
/// meets it, not after running out of steps: at about 50 ns a step in a debug
/// build, `2^20` steps are 50 ms of CPU, which became over 10 s on a loaded
/// machine (issue #10: `try_put` with `enqueue_pos` scribbled ahead of the
/// cells). The bound remains for a peer that keeps rewriting the words.
const MAX_STEPS: u32 = 1 << 20;

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
/// [`diff`], so the 48 bits wrap without harm (at 10^8 operations a second
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
/// | `pos+1` | [`TOMB`] | a write that never finished: skip | a consumer releases `(pos+slots, 0)` |
/// | `pos+slots` | 0 | free for the producer of the next lap | |
///
/// A producer at `pos` that finds `seq` one lap behind (`pos-slots` or
/// `pos-slots+1`) reports the queue full; a consumer at `pos` that finds `pos`
/// or `pos+1-slots` reports it empty (both may be momentary, as in Vyukov's
/// queue). An older `seq` than that cannot occur (see "Ordering of positions and cells" in
/// the source) unless a position or cell is corrupt: it loads the position
/// once more and reports `Corrupt` if nobody moved it. Any `seq` ahead of
/// what it expects means its view of the position is stale (the cell was
/// claimed at that position), so it helps advance the position and retries;
/// if its help succeeds although the cell is more than `slots` ahead, the
/// position is corrupt (see `Queue::help_past`) and it reports `Corrupt`
/// instead of walking the position up to the cells one step at a time. `seq % slots` is always `i`
/// (free or write-claimed) or `i + 1` (full, read-claimed or tombstone), which
/// is how recovery tells a write claim from a read claim.
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

use state::{diff, owner, pack, seq, TOMB};

/// Immutable parameters, written by the daemon at creation.
#[derive(Debug, Default)]
#[repr(C)]
pub struct QueueMeta {
    /// [`QUEUE_MAGIC`].
    pub magic: AtomicU32,
    /// Reserved, zero.
    pub flags: AtomicU32,
    /// Number of cells (a power of two, [`MIN_SLOTS`] to [`MAX_SLOTS`]).
    pub slots: AtomicU64,
    /// Largest frame, in bytes (1 to [`MAX_SLOT_SIZE`]).
    pub slot_size: AtomicU64,
}

/// A queue's control block; the cells follow at [`CTL_SIZE`], each
/// [`cell_stride`] bytes: state word, length word, payload.
///
/// # Layout
/// | line | contents | written by |
/// |---|---|---|
/// | 0 | [`QueueMeta`] | the daemon, at creation |
/// | 1 | `enqueue_pos` | producers (and helpers) |
/// | 2 | `dequeue_pos` | consumers (and helpers) |
/// | 3 | `not_empty`: [`Doorbell`] consumers sleep on | consumers (waiters), producers (bell) |
/// | 4 | `not_full`: [`Doorbell`] producers sleep on | producers (waiters), consumers (bell) |
/// | 5 | `finished`: positions done with (items marked done, tombstones) | `task_done`, tombstone makers (+1) |
/// | 6 | `all_done`: [`Doorbell`] `join` sleeps on | joiners (waiters), `task_done` (bell) |
#[derive(Debug, Default)]
#[repr(C)]
pub struct QueueCtl {
    /// Immutable parameters.
    pub meta: Line<QueueMeta>,
    /// Next position to put at (a hint; the cells are the truth).
    pub enqueue_pos: Line<AtomicU64>,
    /// Next position to get from (a hint).
    pub dequeue_pos: Line<AtomicU64>,
    /// Rung when a frame is published (or a tombstone left).
    pub not_empty: Line<Doorbell>,
    /// Rung when a cell is released.
    pub not_full: Line<Doorbell>,
    /// Positions done with: items marked done by [`Queue::task_done`] plus
    /// write claims turned into tombstones (by the daemon's recovery or an
    /// abandoned [`PutClaim`]). Wraps like the positions.
    ///
    /// The unfinished count (`JoinableQueue`) is `enqueue_pos - finished`
    /// ([`QueueCtl::unfinished`]): every position is claimed for writing
    /// exactly once, and `enqueue_pos` passes it exactly once (by the claimer
    /// or a helper), so a put is counted by its claim itself. The state table
    /// of a put, for a producer that dies after each step:
    ///
    /// | step done | cell | counted in `enqueue_pos` | recovery | count after |
    /// |---|---|---|---|---|
    /// | none | `(pos, 0)` | no | nothing | exact |
    /// | cell CAS | `(pos, k)` | after a helper's or the daemon's advance | tombstone, advance `enqueue_pos`, `finished += 1` | exact |
    /// | position CAS, write | `(pos, k)` | yes | tombstone, `finished += 1` | exact |
    /// | publish | `(pos+1, 0)` | yes | nothing (the item is live) | exact |
    ///
    /// (With a separate `unfinished += 1` after the claim, as before, a death
    /// between claim and increment made the recovery's `-1` take away another
    /// item's count: `join` returned early and a later `task_done` failed.)
    /// One window is left, in [`PutClaim`]'s drop: a process that dies between
    /// its tombstone CAS and `finished += 1` leaves one position unfinished
    /// (a `join` without deadline then waits; never an early return).
    pub finished: Line<AtomicU64>,
    /// Rung when the unfinished count drops to zero.
    pub all_done: Line<Doorbell>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<QueueCtl>() as u64 == CTL_SIZE);
    assert!(align_of::<QueueCtl>() == 128);
    assert!(size_of::<QueueMeta>() == 24);
    assert!(offset_of!(QueueCtl, enqueue_pos) == 128);
    assert!(offset_of!(QueueCtl, dequeue_pos) == 256);
    assert!(offset_of!(QueueCtl, not_empty) == 384);
    assert!(offset_of!(QueueCtl, not_full) == 512);
    assert!(offset_of!(QueueCtl, finished) == 640);
    assert!(offset_of!(QueueCtl, all_done) == 768);
};

/// Bytes of one cell: state word, length word, payload rounded up to 8.
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

/// Snapshot of a queue for listings (approximate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// Number of slots.
    pub slots: u64,
    /// Slot payload size in bytes.
    pub slot_size: u64,
    /// Items waiting (put, not yet taken), clamped to `0..=slots`.
    pub depth: u64,
    /// Items put and not yet marked done.
    pub unfinished: u64,
    /// `enqueue_pos`: positions ever claimed for a put (tombstones
    /// included); monitors derive put rates from it.
    pub enqueue_pos: u64,
    /// `dequeue_pos`: positions ever claimed for a get.
    pub dequeue_pos: u64,
}

/// What [`QueueCtl::recover_owner`] repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueRecovery {
    /// Write claims turned into tombstones.
    pub tombstoned: u32,
    /// Read claims released.
    pub released: u32,
}

impl QueueCtl {
    /// Initialises a zeroed control block (daemon only, before the directory
    /// entry is published). The cells' state words are set by
    /// [`Cells::init`].
    pub fn init(&self, slots: u64, slot_size: u64) {
        debug_assert!(check_params(slots, slot_size).is_ok());
        // Relaxed: published to clients by the Release store of the directory
        // entry's state.
        self.meta.slots.store(slots, Ordering::Relaxed);
        self.meta.slot_size.store(slot_size, Ordering::Relaxed);
        self.meta.magic.store(QUEUE_MAGIC, Ordering::Relaxed);
    }

    /// Reads and checks the immutable parameters against what the directory
    /// says and the space the body has (`body`).
    ///
    /// # Errors
    /// `Err` naming the first inconsistency.
    pub fn check(&self, slots: u64, slot_size: u64, body: u64) -> Result<(), &'static str> {
        // Relaxed: immutable after creation, published by the entry's Release.
        if self.meta.magic.load(Ordering::Relaxed) != QUEUE_MAGIC {
            return Err("bad magic in the queue's control block");
        }
        let s = self.meta.slots.load(Ordering::Relaxed);
        let z = self.meta.slot_size.load(Ordering::Relaxed);
        if s != slots || z != slot_size || check_params(s, z).is_err() {
            return Err("slots or slot size in the control block disagree with the directory");
        }
        if body < body_len(s, z) {
            return Err("cells extend past the channel's allocation");
        }
        Ok(())
    }

    /// Approximate number of items waiting: `enqueue_pos - dequeue_pos`,
    /// clamped to `0..=slots`.
    #[inline]
    pub fn depth(&self) -> u64 {
        // Relaxed: an approximation, as Python's `qsize()`. Load dequeue first
        // so that a racing get makes the result smaller, not negative.
        let d = self.dequeue_pos.load(Ordering::Relaxed);
        let e = self.enqueue_pos.load(Ordering::Relaxed);
        let n = e.wrapping_sub(d);
        if (n as i64) < 0 {
            0
        } else {
            n.min(self.meta.slots.load(Ordering::Relaxed))
        }
    }

    /// A snapshot for listings.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            // Relaxed: a snapshot.
            slots: self.meta.slots.load(Ordering::Relaxed),
            slot_size: self.meta.slot_size.load(Ordering::Relaxed),
            depth: self.depth(),
            unfinished: self.unfinished(),
            // Relaxed: a snapshot; rates computed from two of them need no
            // order with anything else.
            enqueue_pos: self.enqueue_pos.load(Ordering::Relaxed),
            dequeue_pos: self.dequeue_pos.load(Ordering::Relaxed),
        }
    }

    /// Wakes every sleeper (daemon shutdown, recovery).
    pub fn wake_all(&self) {
        self.not_empty.ring();
        self.not_full.ring();
        self.all_done.ring();
    }

    /// Items put (write claims made, tombstones included) and not yet marked
    /// done: `enqueue_pos - finished`, or 0 if that is negative (corrupt
    /// positions). Includes puts in progress.
    pub fn unfinished(&self) -> u64 {
        // Acquire, `finished` first: every `+1` we see came after its
        // position's claim was counted in `enqueue_pos` (the claim happens
        // before the item can be taken, and the daemon advances the position
        // before it counts a tombstone), so the second load sees those claims
        // too and the difference is not negative. Pairs with the AcqRel
        // increments in `finish_one` and the position CASes.
        let f = self.finished.load(Ordering::Acquire);
        let e = self.enqueue_pos.load(Ordering::Acquire);
        let n = e.wrapping_sub(f);
        if (n as i64) < 0 {
            0
        } else {
            n
        }
    }

    /// Counts one more position done. With `checked`, refuses (`Err`) when
    /// nothing is unfinished (a `task_done` too many); tombstones are always
    /// counted, since their position was. Returns whether the unfinished
    /// count reached zero.
    fn finish_one(&self, checked: bool) -> Result<bool, TaskDoneError> {
        // Acquire (here and on CAS failure), as in `unfinished`: the load of
        // `enqueue_pos` below then sees every claim counted in `f`, so a
        // stale `e` cannot refuse a legitimate `task_done`.
        let mut f = self.finished.load(Ordering::Acquire);
        loop {
            // Acquire: as in `unfinished`.
            let e = self.enqueue_pos.load(Ordering::Acquire);
            if checked && (e.wrapping_sub(f) as i64) <= 0 {
                return Err(TaskDoneError);
            }
            // AcqRel: Release publishes the caller's work on the item to
            // `join` (pairs with the Acquire load in `unfinished`); Acquire
            // chains earlier increments.
            match self.finished.compare_exchange_weak(
                f,
                f.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // If `enqueue_pos` moved on since we loaded it, the count is
                // not zero and a wake is merely spurious; if it did not, `e`
                // is exact.
                Ok(_) => return Ok(f.wrapping_add(1) == e),
                Err(now) => f = now,
            }
        }
    }

    /// Marks one item done; at zero, wakes `join`ers.
    fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.finish_one(true)? {
            self.all_done.notify();
        }
        Ok(())
    }

    /// Counts a tombstone made at `pos` as done, after making sure that
    /// `enqueue_pos` has passed `pos` (its claimer may have died before
    /// advancing it), and wakes `join`ers at zero.
    fn finish_tombstone(&self, pos: u64) {
        // Acquire: as in `help`.
        let e = self.enqueue_pos.load(Ordering::Acquire);
        if diff(e, pos) == 0 {
            help(&self.enqueue_pos, e);
        }
        if let Ok(true) = self.finish_one(false) {
            self.all_done.notify();
        }
    }

    /// Repairs every cell held by `owner` (daemon recovery, only after the
    /// death of that peer is confirmed: a live holder would later overwrite
    /// the repaired cell with its plain publish or release store, which could
    /// hand a frame out twice or lose one, though never cause undefined
    /// behaviour):
    /// - a write claim `(pos, owner)` becomes the tombstone `(pos+1, TOMB)`,
    ///   which consumers skip, and its position counts as finished (after
    ///   `enqueue_pos` is advanced past it, if its claimer died first);
    /// - a read claim `(pos+1, owner)` is released to `(pos+slots, 0)`; the
    ///   frame it held is lost with the process that took it.
    ///
    /// Then notifies all three doorbells, whatever it repaired: the peer may
    /// have died after a publish or a release but before ringing (a
    /// notify costs no system call when nobody sleeps). Cells whose sequence number fits
    /// neither claim are left alone (the queue is corrupt; its users see it).
    pub fn recover_owner(&self, cells: &Cells, owner_tag: u16) -> QueueRecovery {
        let mut r = QueueRecovery::default();
        if owner_tag == 0 || owner_tag == TOMB {
            return r;
        }
        let slots = cells.slots;
        let mask = slots - 1;
        for i in 0..slots {
            let cell = cells.state(i);
            // Acquire: the dead peer's last store to the cell; a CAS below
            // fails harmlessly if anything changed since.
            let w = cell.load(Ordering::Acquire);
            if owner(w) != owner_tag {
                continue;
            }
            let s = seq(w);
            let new = if s & mask == i {
                pack(s + 1, TOMB)
            } else if (s.wrapping_sub(1)) & mask == i {
                pack(s.wrapping_sub(1).wrapping_add(slots), 0)
            } else {
                continue;
            };
            // AcqRel: Release publishes the repaired cell to the producer or
            // consumer that claims it next (pairs with their Acquire claim).
            if cell
                .compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if owner(new) == TOMB {
                    r.tombstoned += 1;
                    self.finish_tombstone(s);
                } else {
                    r.released += 1;
                }
            }
        }
        self.not_empty.notify();
        self.not_full.notify();
        self.all_done.notify();
        r
    }
}

/// Where a queue's cells are: the state words and the word areas (length word
/// then payload) of every cell, as two strided arrays.
///
/// In a segment both arrays interleave (a cell is state word, length word,
/// payload); on the heap ([`HeapQueue`]) they are separate, because under
/// loom the state atomics and the payload cells are loom objects, not plain
/// words. Under `--cfg loom` every payload word is a loom `UnsafeCell`, so a
/// write that races a read of the same cell fails the model.
#[derive(Debug, Clone, Copy)]
pub struct Cells {
    states: NonNull<u8>,
    words: NonNull<u8>,
    state_stride: usize,
    word_stride: usize,
    slots: u64,
    slot_size: u64,
}

impl Cells {
    /// The cells of a queue in a segment, starting at `first` (the byte after
    /// the control block).
    ///
    /// # Safety
    /// - `first` is 8-byte aligned and points to `slots * cell_stride(slot_size)`
    ///   bytes that stay mapped while the cells (or anything built on them) are
    ///   used;
    /// - the state words there are accessed only atomically, and the rest only
    ///   through the queue protocol;
    /// - `check_params(slots, slot_size)` holds.
    pub unsafe fn in_segment(first: NonNull<u8>, slots: u64, slot_size: u64) -> Self {
        debug_assert!(check_params(slots, slot_size).is_ok());
        debug_assert!((first.as_ptr() as usize).is_multiple_of(8));
        let stride = cell_stride(slot_size) as usize;
        // SAFETY: the length word follows the state word inside the first
        // cell, within the range the caller vouches for.
        let words = unsafe { first.add(8) };
        Self {
            states: first,
            words,
            state_stride: stride,
            word_stride: stride,
            slots,
            slot_size,
        }
    }

    /// Initialises the state words of fresh cells: cell `i` is `(i, 0)`
    /// (daemon only, before the entry is published).
    pub fn init(&self) {
        for i in 0..self.slots {
            // Relaxed: published by the directory entry's Release store.
            self.state(i).store(pack(i, 0), Ordering::Relaxed);
        }
    }

    /// Number of cells.
    #[inline]
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Payload bytes per cell.
    #[inline]
    pub fn slot_size(&self) -> u64 {
        self.slot_size
    }

    /// The state word of cell `i`.
    #[inline(always)]
    fn state(&self, i: u64) -> &AtomicU64 {
        // Every caller passes `pos & (slots - 1)` or a loop index below
        // `slots`; the check stays in release builds because the pointer
        // arithmetic below relies on it and it costs one predictable branch.
        assert!(i < self.slots);
        // SAFETY: `i < slots`, so the word is inside the cells named in
        // `in_segment` (or the heap array of `HeapQueue`), aligned (the
        // stride is a multiple of 8 / of the element size), and only ever
        // accessed atomically; `self` does not outlive the mapping (the
        // constructor's contract).
        unsafe {
            &*self
                .states
                .as_ptr()
                .add(i as usize * self.state_stride)
                .cast()
        }
    }

    /// Word `j` of cell `i`'s word area (0 = length, 1.. = payload).
    #[inline(always)]
    fn word(&self, i: u64, j: usize) -> *mut UnsafeCell<u64> {
        debug_assert!(i < self.slots);
        debug_assert!((j as u64) <= self.slot_size.div_ceil(8));
        let at = i as usize * self.word_stride + j * core::mem::size_of::<UnsafeCell<u64>>();
        // SAFETY: callers pass `i < slots` and `j <= ceil(slot_size / 8)`, so
        // `at` is inside the word area of cell `i`.
        unsafe { self.words.as_ptr().add(at).cast() }
    }

    /// Pointer to the first payload byte of cell `i`.
    #[cfg(not(loom))]
    #[inline(always)]
    fn payload_ptr(&self, i: u64) -> *mut u8 {
        self.word(i, 1).cast()
    }

    /// Writes the length word of cell `i` (which the caller holds).
    #[inline(always)]
    fn write_len(&self, i: u64, len: u64) {
        // SAFETY: in bounds (`word`); the cell is claimed by the caller, so no
        // other process touches its words until it publishes.
        unsafe { &*self.word(i, 0) }.with_mut(|p| unsafe { p.write(len) });
    }

    /// Reads the length word of cell `i` (which the caller holds).
    #[inline(always)]
    fn read_len(&self, i: u64) -> u64 {
        // SAFETY: as in `write_len`, for a read claim.
        unsafe { &*self.word(i, 0) }.with(|p| unsafe { p.read() })
    }

    /// Copies `src` into the payload of cell `i` at byte `at` (a multiple of
    /// 8), which the caller holds.
    #[inline(always)]
    fn write_bytes(&self, i: u64, at: usize, src: &[u8]) {
        assert!(
            i < self.slots && at.is_multiple_of(8) && (at + src.len()) as u64 <= self.slot_size
        );
        #[cfg(not(loom))]
        // SAFETY: the destination is inside cell `i`'s payload (checked above),
        // which the caller's write claim reserves to it; `src` is private
        // memory, so they cannot overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.payload_ptr(i).add(at), src.len())
        };
        #[cfg(loom)]
        for (k, chunk) in src.chunks(8).enumerate() {
            // SAFETY: word index within the checked range; claimed cell.
            let cell = unsafe { &*self.word(i, 1 + at / 8 + k) };
            cell.with_mut(|p| {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: this word is reserved to the claimer.
                unsafe { p.write(u64::from_ne_bytes(b)) }
            });
        }
    }

    /// Copies `dst.len()` payload bytes of cell `i` (held by the caller).
    #[inline(always)]
    fn read_bytes(&self, i: u64, dst: &mut [u8]) {
        assert!(i < self.slots && dst.len() as u64 <= self.slot_size);
        #[cfg(not(loom))]
        // SAFETY: the source is inside cell `i`'s payload (checked above) and
        // reserved to the caller's read claim; `dst` is private memory.
        unsafe {
            core::ptr::copy_nonoverlapping(self.payload_ptr(i), dst.as_mut_ptr(), dst.len())
        };
        #[cfg(loom)]
        for (k, chunk) in dst.chunks_mut(8).enumerate() {
            // SAFETY: word index within the checked range; claimed cell.
            let cell = unsafe { &*self.word(i, 1 + k) };
            // SAFETY: this word is reserved to the claimer.
            let w = cell.with(|p| unsafe { p.read() });
            chunk.copy_from_slice(&w.to_ne_bytes()[..chunk.len()]);
        }
    }
}

/// A process's handle on a queue: put and get from any number of processes.
///
/// `Send` and `Sync`: every operation is a protocol on atomics, and a claimed
/// cell is owned by the claim object that holds it. A clone is another handle
/// with the same owner tag, under the same contract as the original.
#[derive(Debug, Clone)]
pub struct Queue {
    ctl: NonNull<QueueCtl>,
    cells: Cells,
    me: u16,
    mask: u64,
    slots: u64,
    slot_size: u64,
}

// SAFETY: the pointers refer to shared memory that `attach`'s caller keeps
// mapped for the handle's lifetime; every access is atomic or to a cell the
// accessing claim owns.
unsafe impl Send for Queue {}
// SAFETY: as above; `&self` methods only run the lock-free protocol.
unsafe impl Sync for Queue {}

impl Queue {
    /// A handle on the queue `ctl` with cells `cells`, for owner tag `me`
    /// (peer slot + 1).
    ///
    /// # Safety
    /// - `ctl` passed [`QueueCtl::check`] with the cells' parameters, and
    ///   `cells` are that queue's cells;
    /// - both stay mapped for the handle's whole lifetime.
    ///
    /// # Panics
    /// If `me` is 0 or [`state::TOMB`].
    pub unsafe fn attach(ctl: NonNull<QueueCtl>, cells: Cells, me: u16) -> Self {
        assert!(me != 0 && me != TOMB, "owner tag {me} is reserved");
        Self {
            ctl,
            cells,
            me,
            mask: cells.slots - 1,
            slots: cells.slots,
            slot_size: cells.slot_size,
        }
    }

    #[inline(always)]
    fn ctl(&self) -> &QueueCtl {
        // SAFETY: `attach`'s caller keeps the control block mapped.
        unsafe { self.ctl.as_ref() }
    }

    /// The control block.
    pub fn control(&self) -> &QueueCtl {
        self.ctl()
    }

    /// Number of slots.
    #[inline]
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Largest frame (the slot payload size).
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size as usize
    }

    /// Approximate number of items waiting (Python's `qsize()`).
    #[inline]
    pub fn len(&self) -> usize {
        self.ctl().depth() as usize
    }

    /// Approximately true if nothing is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximately true if every slot holds an item.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() as u64 >= self.slots
    }

    /// The state word of a claim that holds up one side right now, if any:
    /// for getters (`getters` true), a write claim `(pos, k)` at the dequeue
    /// position, behind which every get reports `Empty` until its holder
    /// publishes; for putters, a read claim `(pos + 1 - slots, k)` at the
    /// enqueue position, behind which every put reports `Full`. Lets a
    /// blocking caller check whether holder `k` exists at all (a scribbled
    /// cell can name one that does not, and nobody would ever repair it).
    pub fn stalling_claim(&self, getters: bool) -> Option<u64> {
        let ctl = self.ctl();
        // Acquire: as in `claim_put` / `claim_get`.
        let pos = if getters {
            ctl.dequeue_pos.load(Ordering::Acquire)
        } else {
            ctl.enqueue_pos.load(Ordering::Acquire)
        };
        // Acquire: as in `claim_put` / `claim_get`.
        let w = self.cells.state(pos & self.mask).load(Ordering::Acquire);
        let want = if getters { 0 } else { 1 - self.slots as i64 };
        let o = owner(w);
        (diff(seq(w), pos) == want && o != 0 && o != TOMB).then_some(w)
    }

    /// Claims the cell for the next put. Returns the cell index and position.
    #[inline]
    fn claim_put(&self, len: usize) -> Result<(u64, u64), TryPutError> {
        if len as u64 > self.slot_size {
            return Err(TryPutError::TooLarge {
                len,
                max: self.slot_size as usize,
            });
        }
        let ctl = self.ctl();
        // Acquire: pairs with the Release CAS that set the position, so the
        // claims of all earlier positions are visible (see "Ordering of positions and cells" below).
        let mut pos = ctl.enqueue_pos.load(Ordering::Acquire);
        for _ in 0..MAX_STEPS {
            let i = pos & self.mask;
            let cell = self.cells.state(i);
            // Acquire: a claim seen here is passed on by our Release CAS of
            // the position in `help`.
            let w = cell.load(Ordering::Acquire);
            let d = diff(seq(w), pos);
            if d == 0 {
                match owner(w) {
                    0 => {
                        // Acquire: pairs with the Release that freed the cell
                        // (a consumer's release, or the initial publication),
                        // so the last reader is done with the payload.
                        if cell
                            .compare_exchange(
                                w,
                                pack(pos, self.me),
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                        {
                            if crash::hit(CrashPoint::QueueClaimed) {
                                return Err(TryPutError::Corrupt(CRASHED));
                            }
                            // AcqRel: publishes our claim with the position
                            // (see "Ordering of positions and cells" below). Fails if a helper advanced it.
                            let _ = ctl.enqueue_pos.compare_exchange(
                                pos,
                                pos.wrapping_add(1),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            );
                            // No count to increment: the claim is counted by
                            // the position (see `QueueCtl::finished`).
                            if crash::hit(CrashPoint::QueueReserved) {
                                return Err(TryPutError::Corrupt(CRASHED));
                            }
                            return Ok((i, pos));
                        }
                        // Lost the race: look again at the same position.
                        continue;
                    }
                    TOMB => return Err(TryPutError::Corrupt(BAD_CELL)),
                    _ => pos = help(&ctl.enqueue_pos, pos),
                }
            } else if d < 0 {
                if d == -(self.slots as i64) || d == 1 - self.slots as i64 {
                    return Err(TryPutError::Full);
                }
                if !self.residue_ok(w, i) {
                    return Err(TryPutError::Corrupt(BAD_CELL));
                }
                // Older than the position allows (see "Ordering of positions
                // and cells" below): only a corrupt position or cell can do
                // this. Look once more; if nobody moved the position, the
                // state is impossible, and looking again would only burn
                // steps.
                pos = reload(&ctl.enqueue_pos, pos).map_err(TryPutError::Corrupt)?;
            } else {
                if !self.residue_ok(w, i) {
                    return Err(TryPutError::Corrupt(BAD_CELL));
                }
                pos = self
                    .help_past(&ctl.enqueue_pos, pos, d)
                    .map_err(TryPutError::Corrupt)?;
            }
        }
        Err(TryPutError::Corrupt(NO_PROGRESS))
    }

    /// `seq % slots` is the cell index or the one after.
    #[inline(always)]
    fn residue_ok(&self, w: u64, i: u64) -> bool {
        let r = seq(w) & self.mask;
        r == i || r == (i + 1) & self.mask
    }

    /// Helps the position `p` on from `pos`, whose cell showed a sequence
    /// number `d > 0` ahead of what the caller expects there, and returns the
    /// position to try next; `Err` if the state cannot occur.
    ///
    /// Normally `d > 0` only means that our `pos` is stale, and the CAS fails
    /// (returning the current position). When it succeeds, the position was
    /// still `pos`, so no claim of a position above `pos` exists yet, and the
    /// cell can be ahead only because the claim at `pos` was repaired before
    /// anybody advanced the position past it (the daemon's tombstone of a
    /// producer that died between its two CAS, `d = 1`, and a consumer's skip
    /// of it, `d = slots`; or the release of a consumer's read claim in the
    /// same window, `d = slots - 1` or `slots` once the next lap's producer
    /// used it). A cell further ahead than `slots` means a corrupt position
    /// or cell: helping the position past it one step at a time could take up
    /// to 2^47 steps (a position scribbled far behind its cells).
    #[inline(always)]
    fn help_past(&self, p: &AtomicU64, pos: u64, d: i64) -> Result<u64, &'static str> {
        match try_help(p, pos) {
            Ok(_) if d > self.slots as i64 => Err(BAD_POSITION),
            Ok(next) | Err(next) => Ok(next),
        }
    }

    /// Publishes a written cell and wakes a sleeping consumer.
    #[inline(always)]
    fn publish(&self, i: u64, pos: u64) {
        if crash::hit(CrashPoint::QueueWritten) {
            return;
        }
        // Release: publishes the length and payload; pairs with the Acquire
        // claim of a consumer. A store, not a CAS: only we write a cell we
        // hold, because the daemon repairs cells only after their holder's
        // death is confirmed (see `QueueCtl::recover_owner`).
        // NB: measured with `SHMBUS_QBENCH_ONLY=1 cargo bench --bench queue`
        // on the 2-core machine, 1P/1C busy-poll: 16 M items/s with CAS here
        // and in `release`, 21 M with stores.
        self.cells
            .state(i)
            .store(pack(pos.wrapping_add(1), 0), Ordering::Release);
        if crash::hit(CrashPoint::QueuePublished) {
            return;
        }
        self.ctl().not_empty.notify();
    }

    /// Puts one frame if a slot is free now.
    ///
    /// # Errors
    /// [`TryPutError::Full`] (try again later), `TooLarge`, or `Corrupt`.
    #[inline]
    pub fn try_put(&self, frame: &[u8]) -> Result<(), TryPutError> {
        let (i, pos) = self.claim_put(frame.len())?;
        self.cells.write_len(i, frame.len() as u64);
        self.cells.write_bytes(i, 0, frame);
        self.publish(i, pos);
        Ok(())
    }

    /// Claims a slot for a frame of `len` bytes, to be written in place and
    /// then published with [`PutClaim::commit`]. Dropping the claim leaves a
    /// tombstone that consumers skip.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    #[inline]
    pub fn try_claim(&self, len: usize) -> Result<PutClaim<'_>, TryPutError> {
        let (i, pos) = self.claim_put(len)?;
        Ok(PutClaim {
            q: self,
            i,
            pos,
            len,
            done: false,
        })
    }

    /// Puts one frame, waiting for a free slot until `deadline` (forever if
    /// `None`).
    ///
    /// # Errors
    /// `Timeout`, `Interrupted` (when `interrupt` says so), `TooLarge`,
    /// `Corrupt`.
    pub fn put_until(
        &self,
        frame: &[u8],
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<(), PutError> {
        let (i, pos) = self.claim_put_until(frame.len(), deadline, interrupt)?;
        self.cells.write_len(i, frame.len() as u64);
        self.cells.write_bytes(i, 0, frame);
        self.publish(i, pos);
        Ok(())
    }

    /// Waits for a free slot, then claims it as [`Queue::try_claim`] does.
    ///
    /// # Errors
    /// As [`Queue::put_until`].
    pub fn claim_until(
        &self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<PutClaim<'_>, PutError> {
        let (i, pos) = self.claim_put_until(len, deadline, interrupt)?;
        Ok(PutClaim {
            q: self,
            i,
            pos,
            len,
            done: false,
        })
    }

    fn claim_put_until(
        &self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<(u64, u64), PutError> {
        let r = self
            .ctl()
            .not_full
            .wait(deadline, interrupt, || match self.claim_put(len) {
                Err(TryPutError::Full) => None,
                other => Some(other),
            });
        match r {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(TryPutError::TooLarge { len, max })) => Err(PutError::TooLarge { len, max }),
            Ok(Err(TryPutError::Corrupt(w))) => Err(PutError::Corrupt(w)),
            Ok(Err(TryPutError::Full)) => Err(PutError::Corrupt("full after waiting")),
            Err(WaitError::Timeout) => Err(PutError::Timeout),
            Err(WaitError::Interrupted) => Err(PutError::Interrupted),
        }
    }

    /// Claims the next frame for reading, skipping tombstones.
    #[inline]
    fn claim_get(&self) -> Result<(u64, u64), TryGetError> {
        let ctl = self.ctl();
        // Acquire: as in `claim_put`.
        let mut pos = ctl.dequeue_pos.load(Ordering::Acquire);
        for _ in 0..MAX_STEPS {
            let i = pos & self.mask;
            let cell = self.cells.state(i);
            let full = pos.wrapping_add(1);
            // Acquire: a claim seen here is passed on by our Release CAS of
            // the position in `help`.
            let w = cell.load(Ordering::Acquire);
            let d = diff(seq(w), full);
            if d == 0 {
                match owner(w) {
                    0 => {
                        // Acquire: pairs with the producer's Release publish,
                        // so its length and payload are visible.
                        if cell
                            .compare_exchange(
                                w,
                                pack(full, self.me),
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                        {
                            if crash::hit(CrashPoint::QueueGetClaimed) {
                                return Err(TryGetError::Corrupt(CRASHED));
                            }
                            // AcqRel: as in `claim_put`.
                            let _ = ctl.dequeue_pos.compare_exchange(
                                pos,
                                full,
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            );
                            return Ok((i, pos));
                        }
                        continue;
                    }
                    TOMB => {
                        // AcqRel: Acquire pairs with the recovery's (or the
                        // abandoning producer's) Release; Release hands the
                        // cell to the next lap's producer.
                        if cell
                            .compare_exchange(
                                w,
                                pack(pos.wrapping_add(self.slots), 0),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                        {
                            ctl.not_full.notify();
                            pos = help(&ctl.dequeue_pos, pos);
                        }
                    }
                    _ => pos = help(&ctl.dequeue_pos, pos),
                }
            } else if d < 0 {
                if d == -1 || d == -(self.slots as i64) {
                    return Err(TryGetError::Empty);
                }
                if !self.residue_ok(w, i) {
                    return Err(TryGetError::Corrupt(BAD_CELL));
                }
                // As in `claim_put`.
                pos = reload(&ctl.dequeue_pos, pos).map_err(TryGetError::Corrupt)?;
            } else {
                if !self.residue_ok(w, i) {
                    return Err(TryGetError::Corrupt(BAD_CELL));
                }
                pos = self
                    .help_past(&ctl.dequeue_pos, pos, d)
                    .map_err(TryGetError::Corrupt)?;
            }
        }
        Err(TryGetError::Corrupt(NO_PROGRESS))
    }

    /// Releases a read cell and wakes a sleeping producer.
    #[inline(always)]
    fn release(&self, i: u64, pos: u64) {
        if crash::hit(CrashPoint::QueueCopied) {
            return;
        }
        // Release: our reads of the payload happen before the next producer's
        // writes; pairs with its Acquire claim. A store, as in `publish`.
        self.cells
            .state(i)
            .store(pack(pos.wrapping_add(self.slots), 0), Ordering::Release);
        if crash::hit(CrashPoint::QueueFreed) {
            return;
        }
        self.ctl().not_full.notify();
    }

    /// Builds a read claim, validating the length word.
    #[inline(always)]
    fn get_claim(&self, i: u64, pos: u64) -> Result<GetClaim<'_>, &'static str> {
        if crash::hit(CrashPoint::QueueTaken) {
            return Err(CRASHED);
        }
        let len = self.cells.read_len(i);
        if len > self.slot_size {
            self.release(i, pos);
            return Err("frame length is over the slot size");
        }
        Ok(GetClaim {
            q: self,
            i,
            pos,
            len: len as usize,
        })
    }

    /// Takes the next frame if there is one, leaving it in place until the
    /// returned claim is dropped.
    ///
    /// # Errors
    /// [`TryGetError::Empty`] or `Corrupt`.
    #[inline]
    pub fn try_get_claim(&self) -> Result<GetClaim<'_>, TryGetError> {
        let (i, pos) = self.claim_get()?;
        self.get_claim(i, pos).map_err(TryGetError::Corrupt)
    }

    /// Takes the next frame into `buf` (resized to fit); returns its length.
    ///
    /// # Errors
    /// As [`Queue::try_get_claim`].
    #[inline]
    pub fn try_get_into(&self, buf: &mut Vec<u8>) -> Result<usize, TryGetError> {
        let c = self.try_get_claim()?;
        let n = c.len();
        buf.resize(n, 0);
        c.read_into(buf);
        Ok(n)
    }

    /// Waits for a frame until `deadline` (forever if `None`) and claims it.
    ///
    /// # Errors
    /// `Timeout`, `Interrupted`, `Corrupt`.
    pub fn get_claim_until(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<GetClaim<'_>, GetError> {
        let r = self
            .ctl()
            .not_empty
            .wait(deadline, interrupt, || match self.claim_get() {
                Err(TryGetError::Empty) => None,
                other => Some(other),
            });
        let (i, pos) = match r {
            Ok(Ok(c)) => c,
            Ok(Err(TryGetError::Corrupt(w))) => return Err(GetError::Corrupt(w)),
            Ok(Err(TryGetError::Empty)) => return Err(GetError::Corrupt("empty after waiting")),
            Err(WaitError::Timeout) => return Err(GetError::Timeout),
            Err(WaitError::Interrupted) => return Err(GetError::Interrupted),
        };
        self.get_claim(i, pos).map_err(GetError::Corrupt)
    }

    /// Marks one item taken from the queue as processed (`JoinableQueue`).
    ///
    /// # Errors
    /// [`TaskDoneError`] if called more times than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.ctl().task_done()
    }

    /// Number of items put and not yet marked done.
    pub fn unfinished(&self) -> u64 {
        self.ctl().unfinished()
    }

    /// Waits until every item put has been marked done, or until `deadline`.
    ///
    /// # Errors
    /// `Timeout` or `Interrupted` ([`GetError`] never says `Corrupt` here).
    pub fn join_until(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<(), GetError> {
        self.ctl()
            .all_done
            .wait(deadline, interrupt, || {
                (self.unfinished() == 0).then_some(())
            })
            .map_err(|e| match e {
                WaitError::Timeout => GetError::Timeout,
                WaitError::Interrupted => GetError::Interrupted,
            })
    }

    /// Runs the daemon's recovery for `owner` on this queue (tests and tools;
    /// the daemon calls [`QueueCtl::recover_owner`] directly).
    pub fn recover_owner(&self, owner: u16) -> QueueRecovery {
        self.ctl().recover_owner(&self.cells, owner)
    }
}

/// Advances a position from `pos` (whose cell is known to be claimed) and
/// returns the position to try next.
#[inline(always)]
fn help(p: &AtomicU64, pos: u64) -> u64 {
    match try_help(p, pos) {
        Ok(next) | Err(next) => next,
    }
}

/// As [`help`], telling who advanced the position: `Ok(pos + 1)` if we did,
/// `Err(current)` if somebody else had.
#[inline(always)]
fn try_help(p: &AtomicU64, pos: u64) -> Result<u64, u64> {
    // AcqRel: passes on the claim we saw at `pos` (see "Ordering of positions and cells" below); Acquire
    // on failure, because the position we return is used the same way.
    match p.compare_exchange(
        pos,
        pos.wrapping_add(1),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(pos.wrapping_add(1)),
        Err(now) => Err(now),
    }
}

/// Loads position `p` again after its cell at `pos` showed a state older than
/// the position allows; `Err` if the position is still `pos`, because then
/// nothing changed and the state is impossible (see "Ordering of positions and
/// cells" below).
#[inline(always)]
fn reload(p: &AtomicU64, pos: u64) -> Result<u64, &'static str> {
    // Acquire: as the first load of the position in `claim_put` / `claim_get`.
    let now = p.load(Ordering::Acquire);
    if now == pos {
        Err(BAD_POSITION)
    } else {
        Ok(now)
    }
}

// # Ordering of positions and cells
// Every store to a position is a Release CAS made after its maker saw (with
// an Acquire load or CAS) the claim of the cell at the old position, and
// every load of a position is Acquire. So a process that reads position `p`
// sees the claims of every position below `p`, and in particular the cell of
// `p` is at least at its claim of `p - slots`: a producer finds `seq >= p -
// slots`, a consumer `seq >= p + 1 - slots`. On x86 these orderings cost
// nothing (loads are Acquire and CAS is a full barrier anyway); loom found
// that with Relaxed ones a cell can look older than its position.

const BAD_CELL: &str = "a cell's state word cannot occur at its position";
const NO_PROGRESS: &str = "the queue's positions do not lead to a usable cell";
const BAD_POSITION: &str = "a queue position disagrees with the state of its cell";

/// A slot claimed by [`Queue::try_claim`]: write the payload in place, then
/// [`commit`](PutClaim::commit). Dropped uncommitted, it becomes a tombstone.
#[derive(Debug)]
pub struct PutClaim<'a> {
    q: &'a Queue,
    i: u64,
    pos: u64,
    len: usize,
    done: bool,
}

impl PutClaim<'_> {
    /// Length of the claimed payload.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length claim.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The claimed payload bytes (contents unspecified until written).
    #[cfg(not(loom))]
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; the shared borrow of `self` excludes
        // `as_mut_slice` for the slice's life. Bytes not yet written hold
        // whatever the cell held; any bits are a valid `u8`.
        unsafe { core::slice::from_raw_parts(self.q.cells.payload_ptr(self.i), self.len) }
    }

    /// The claimed payload bytes, to write in place (contents unspecified).
    #[cfg(not(loom))]
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY:
        // - `len <= slot_size` (checked by `claim_put`), so the bytes lie in
        //   cell `i`'s payload;
        // - the write claim reserves them to us until we publish or abandon;
        // - the slice borrows `self` mutably, so it cannot outlive the claim.
        unsafe { core::slice::from_raw_parts_mut(self.q.cells.payload_ptr(self.i), self.len) }
    }

    /// Copies `src` into the payload at `pos` (a multiple of 8).
    ///
    /// # Panics
    /// If `pos` is not a multiple of 8 or the write leaves the claim.
    #[inline]
    pub fn write_at(&mut self, pos: usize, src: &[u8]) {
        assert!(
            pos.is_multiple_of(8) && pos + src.len() <= self.len,
            "write outside the claim"
        );
        self.q.cells.write_bytes(self.i, pos, src);
    }

    /// Publishes the frame.
    #[inline]
    pub fn commit(mut self) {
        self.done = true;
        self.q.cells.write_len(self.i, self.len as u64);
        self.q.publish(self.i, self.pos);
    }
}

impl Drop for PutClaim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Release: hands the cell to the consumer that skips it (pairs with its
        // AcqRel CAS).
        let r = self.q.cells.state(self.i).compare_exchange(
            pack(self.pos, self.q.me),
            pack(self.pos.wrapping_add(1), TOMB),
            Ordering::Release,
            Ordering::Relaxed,
        );
        if r.is_ok() {
            // `claim_put` advanced `enqueue_pos` past our position already.
            if let Ok(true) = self.q.ctl().finish_one(false) {
                self.q.ctl().all_done.notify();
            }
        }
        self.q.ctl().not_empty.notify();
    }
}

/// A frame taken by [`Queue::try_get_claim`], still in its slot; the slot is
/// released when the claim is dropped.
#[derive(Debug)]
pub struct GetClaim<'a> {
    q: &'a Queue,
    i: u64,
    pos: u64,
    len: usize,
}

impl GetClaim<'_> {
    /// Length of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame, in place.
    #[cfg(not(loom))]
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY:
        // - `len <= slot_size` (checked in `get_claim`), so the bytes lie in
        //   cell `i`'s payload;
        // - the read claim keeps every producer off the cell until we release
        //   it in `drop`, and the slice borrows `self`;
        // - any bit pattern is a valid `u8`.
        unsafe { core::slice::from_raw_parts(self.q.cells.payload_ptr(self.i), self.len) }
    }

    /// Copies the frame into `dst[..len]`.
    ///
    /// # Panics
    /// If `dst` is shorter than the frame.
    #[inline]
    pub fn read_into(&self, dst: &mut [u8]) {
        self.q.cells.read_bytes(self.i, &mut dst[..self.len]);
    }

    /// The frame, copied.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.read_into(&mut v);
        v
    }
}

impl Drop for GetClaim<'_> {
    fn drop(&mut self) {
        self.q.release(self.i, self.pos);
    }
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
        let per_cell = 1 + slot_size.div_ceil(8);
        let words = (0..slots * per_cell).map(|_| UnsafeCell::new(0)).collect();
        Self {
            ctl,
            states,
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
    use super::*;

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
            let p = if enq {
                &q.ctl().enqueue_pos
            } else {
                &q.ctl().dequeue_pos
            };
            let start = p.load(Ordering::Relaxed).wrapping_add_signed(far);
            p.store(start, Ordering::Relaxed);
            let what = if enq {
                h.try_put(b"y").unwrap_err().to_string()
            } else {
                h.try_get_claim().unwrap_err().to_string()
            };
            assert!(what.contains(BAD_POSITION), "enq {enq} far {far}: {what}");
            let moved = p.load(Ordering::Relaxed).wrapping_sub(start);
            assert!(moved <= 4, "enq {enq} far {far}: position walked {moved}");
        }
    }

    /// A position a little behind its cells (as after a claimer died between
    /// its two CAS) is helped on, not reported.
    #[test]
    fn position_slightly_behind_is_helped_on() {
        let q = HeapQueue::new(4, 8);
        // SAFETY: `q` outlives the handle.
        let h = unsafe { q.handle(1) };
        for k in 0..3u8 {
            h.try_put(&[k]).unwrap();
        }
        let e = &q.ctl().enqueue_pos;
        e.store(e.load(Ordering::Relaxed) - 2, Ordering::Relaxed);
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
