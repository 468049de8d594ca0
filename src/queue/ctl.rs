//! The control block: parameters, positions, doorbells, the unfinished count,
//! and the daemon's recovery of a dead peer's cells.

use super::state::{diff, owner, pack, seq, TOMB};
use super::{body_len, check_params, Cells, TaskDoneError, QUEUE_MAGIC};
use crate::futex::Doorbell;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::util::Line;

/// Immutable parameters, written by the daemon at creation.
#[derive(Debug, Default)]
#[repr(C)]
pub struct QueueMeta {
    /// [`QUEUE_MAGIC`].
    pub magic: AtomicU32,
    /// Reserved, zero.
    pub flags: AtomicU32,
    /// Number of cells (a power of two, [`MIN_SLOTS`](super::MIN_SLOTS) to [`MAX_SLOTS`](super::MAX_SLOTS)).
    pub slots: AtomicU64,
    /// Largest frame, in bytes (1 to [`MAX_SLOT_SIZE`](super::MAX_SLOT_SIZE)).
    pub slot_size: AtomicU64,
}

/// A queue's control block; the cells follow at [`CTL_SIZE`](super::CTL_SIZE), each
/// [`cell_stride`](super::cell_stride) bytes: state word, claim note, length word, payload.
///
/// # Layout
/// | line | contents | written by |
/// |---|---|---|
/// | 0 | [`QueueMeta`] | the daemon, at creation |
/// | 1 | `enqueue_pos` | producers |
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
    /// The put frontier and its last claimer, packed as a cell state word
    /// ([`state::pack`](super::state::pack)`(pos, k)`): every position below
    /// `pos` is claimed for a put, and peer `k - 1` claimed `pos - 1` (0
    /// before the first put). A put claims its position by CAS of this word
    /// (see "Claiming a put" in the module docs).
    pub enqueue_pos: Line<AtomicU64>,
    /// Next position to get from (a hint).
    pub dequeue_pos: Line<AtomicU64>,
    /// Rung when a frame is published (or a tombstone left).
    pub not_empty: Line<Doorbell>,
    /// Rung when a cell is released.
    pub not_full: Line<Doorbell>,
    /// Positions done with: items marked done by [`Queue::task_done`](super::Queue::task_done) plus
    /// write claims turned into tombstones (by the daemon's recovery or an
    /// abandoned [`PutClaim`](super::PutClaim)). Wraps like the positions.
    ///
    /// The unfinished count (`JoinableQueue`) is the put frontier less
    /// `finished` ([`QueueCtl::unfinished`]): every position is claimed for
    /// writing exactly once, in order, by the CAS that moves the frontier
    /// ([`QueueCtl::put_frontier`]), so a put is counted by its claim
    /// itself. The state table of a put, for a producer that dies after each
    /// step:
    ///
    /// | step done | cell | counted in the frontier | recovery | count after |
    /// |---|---|---|---|---|
    /// | none | `(pos, 0)` | no | nothing | exact |
    /// | position CAS | `(pos, 0)`, `enqueue_pos` names it (or the next put tagged the cell) | yes | tombstone, `finished += 1` | exact |
    /// | tag | `(pos, k)` | yes | tombstone, `finished += 1` | exact |
    /// | write | `(pos, k)` | yes | tombstone, `finished += 1` | exact |
    /// | publish | `(pos+1, 0)` | yes | nothing (the item is live) | exact |
    ///
    /// (With a separate `unfinished += 1` after the claim, as before, a death
    /// between claim and increment made the recovery's `-1` take away another
    /// item's count: `join` returned early and a later `task_done` failed.)
    /// One window is left, in [`PutClaim`](super::PutClaim)'s drop: a process that dies between
    /// its tombstone CAS and `finished += 1` leaves one position unfinished
    /// (a `join` without deadline then waits; never an early return).
    pub finished: Line<AtomicU64>,
    /// Rung when the unfinished count drops to zero.
    pub all_done: Line<Doorbell>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<QueueCtl>() as u64 == super::CTL_SIZE);
    assert!(align_of::<QueueCtl>() == 128);
    assert!(size_of::<QueueMeta>() == 24);
    assert!(offset_of!(QueueCtl, enqueue_pos) == 128);
    assert!(offset_of!(QueueCtl, dequeue_pos) == 256);
    assert!(offset_of!(QueueCtl, not_empty) == 384);
    assert!(offset_of!(QueueCtl, not_full) == 512);
    assert!(offset_of!(QueueCtl, finished) == 640);
    assert!(offset_of!(QueueCtl, all_done) == 768);
};

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
    /// Positions ever claimed for a put (tombstones included): the put
    /// frontier ([`QueueCtl::put_frontier`]); monitors derive put rates from
    /// it.
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

    /// Approximate number of items waiting: the put frontier
    /// ([`QueueCtl::put_frontier`]) less `dequeue_pos`, clamped to
    /// `0..=slots`.
    #[inline]
    pub fn depth(&self) -> u64 {
        // Relaxed: an approximation, as Python's `qsize()`. Load dequeue first
        // so that a racing get makes the result smaller, not negative.
        let d = self.dequeue_pos.load(Ordering::Relaxed);
        let e = self.put_frontier();
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
            enqueue_pos: self.put_frontier(),
            // Relaxed: a snapshot; rates computed from two of them need no
            // order with anything else.
            dequeue_pos: self.dequeue_pos.load(Ordering::Relaxed),
        }
    }

    /// One past the last position claimed for a put: the position of
    /// `enqueue_pos`.
    ///
    /// Acquire: pairs with the AcqRel CAS of the claim that set it, so a
    /// caller that then reads the cells below sees each at least at the
    /// state its claimer saw before claiming.
    #[inline]
    pub fn put_frontier(&self) -> u64 {
        seq(self.enqueue_pos.load(Ordering::Acquire))
    }

    /// Wakes every sleeper (daemon shutdown, recovery).
    pub fn wake_all(&self) {
        self.not_empty.ring();
        self.not_full.ring();
        self.all_done.ring();
    }

    /// Items put (write claims made, tombstones included) and not yet marked
    /// done: the put frontier ([`QueueCtl::put_frontier`]) less `finished`,
    /// or 0 if that is negative (corrupt positions). Includes puts in
    /// progress.
    pub fn unfinished(&self) -> u64 {
        // Acquire, `finished` first: every `+1` we see came after its
        // position's claim (the claim happens before the item can be taken,
        // and a tombstone is made before it is counted), so the frontier
        // loaded next is past those claims and the difference is not
        // negative. Pairs with the AcqRel increments in `finish_one`.
        let f = self.finished.load(Ordering::Acquire);
        let e = self.put_frontier();
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
    pub(super) fn finish_one(&self, checked: bool) -> Result<bool, TaskDoneError> {
        // Acquire (here and on CAS failure), as in `unfinished`: the put
        // frontier loaded below is then past every claim counted in `f`, so
        // a stale `e` cannot refuse a legitimate `task_done`.
        let mut f = self.finished.load(Ordering::Acquire);
        loop {
            let e = self.put_frontier();
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
                // If the frontier moved on since we walked to it, the count is
                // not zero and a wake is merely spurious; if it did not, `e`
                // is exact.
                Ok(_) => return Ok(f.wrapping_add(1) == e),
                Err(now) => f = now,
            }
        }
    }

    /// Marks one item done; at zero, wakes `join`ers.
    pub(super) fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.finish_one(true)? {
            self.all_done.notify();
        }
        Ok(())
    }

    /// Counts a tombstone as done (its claim was counted by the claim
    /// itself), and wakes `join`ers at zero.
    pub(super) fn finish_tombstone(&self) {
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
    ///   which consumers skip, and its position counts as finished; so does
    ///   a claim of `pos` whose cell is still `(pos, 0)` below the put
    ///   frontier (the peer died between its position CAS and its tag) when
    ///   `enqueue_pos = (pos+1, owner)` names it or the cell's claim note,
    ///   left by a later put, says `(pos, owner)`;
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
        // Acquire, before the cells: a put that moved the position past the
        // dead peer's claim first saw its tag or noted the claim (see
        // `note_claim` in `handle.rs`), so if the position no longer names
        // the peer, the scan below sees the tag or the note.
        let e = self.enqueue_pos.load(Ordering::Acquire);
        let frontier = seq(e);
        if owner(e) == owner_tag {
            // Fails if the claim was tagged (the scan then finds it) or if
            // the cell moved on.
            let pos = frontier.wrapping_sub(1);
            self.tombstone_untagged(cells.state(pos & mask), pos, &mut r);
        }
        for i in 0..slots {
            let cell = cells.state(i);
            // Acquire: the dead peer's last store to the cell; a CAS below
            // fails harmlessly if anything changed since.
            let w = cell.load(Ordering::Acquire);
            let s = seq(w);
            if owner(w) == 0 && s & mask == i && diff(frontier, s) > 0 {
                // Free-looking below the frontier: claimed, untagged.
                // Acquire: pairs with the Release CAS of the note.
                if cells.note(i).load(Ordering::Acquire) == pack(s, owner_tag) {
                    self.tombstone_untagged(cell, s, &mut r);
                }
                continue;
            }
            if owner(w) != owner_tag {
                continue;
            }
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
                    self.finish_tombstone();
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

    /// Turns the untagged claim of `pos`, `(pos, 0)` in `cell`, into the
    /// tombstone `(pos+1, TOMB)` and counts it (recovery of a claimer that
    /// died between its position CAS and its tag). Does nothing if the cell
    /// is in any other state.
    fn tombstone_untagged(&self, cell: &AtomicU64, pos: u64, r: &mut QueueRecovery) {
        // AcqRel: as the repairs in `recover_owner`.
        if cell
            .compare_exchange(
                pack(pos, 0),
                pack(pos.wrapping_add(1), TOMB),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            r.tombstoned += 1;
            self.finish_tombstone();
        }
    }
}

/// Advances a position from `pos` (whose cell is known to be claimed) and
/// returns the position to try next.
#[inline(always)]
pub(super) fn help(p: &AtomicU64, pos: u64) -> u64 {
    match try_help(p, pos) {
        Ok(next) | Err(next) => next,
    }
}

/// As [`help`], telling who advanced the position: `Ok(pos + 1)` if we did,
/// `Err(current)` if somebody else had.
#[inline(always)]
pub(super) fn try_help(p: &AtomicU64, pos: u64) -> Result<u64, u64> {
    // AcqRel: passes on the claim we saw at `pos` (see "Ordering of positions
    // and cells" in the module docs); Acquire on failure, because the
    // position we return is used the same way.
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
