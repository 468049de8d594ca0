//! A process's handle on a queue: claiming cells for puts and gets, the
//! blocking forms, and `task_done`/`join`.

use core::ptr::NonNull;
use std::time::Instant;

use super::ctl::{help, try_help};
use super::state::{diff, owner, pack, seq, TOMB};
use super::{
    Cells, GetError, PutError, QueueCtl, QueueRecovery, TaskDoneError, TryGetError, TryPutError,
};
use crate::futex::WaitError;
use crate::sync::{crash, AtomicU64, CrashPoint, Ordering, CRASHED};

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

const BAD_CELL: &str = "a cell's state word cannot occur at its position";
const NO_PROGRESS: &str = "the queue's positions do not lead to a usable cell";
pub(super) const BAD_POSITION: &str = "a queue position disagrees with the state of its cell";

/// A process's handle on a queue: put and get from any number of processes.
///
/// `Send` and `Sync`: every operation is a protocol on atomics, and a claimed
/// cell is owned by the claim object that holds it. A clone is another handle
/// with the same owner tag, under the same contract as the original.
#[derive(Debug)]
pub struct Queue {
    ctl: NonNull<QueueCtl>,
    pub(super) cells: Cells,
    pub(super) me: u16,
    mask: u64,
    slots: u64,
    pub(super) slot_size: u64,
    /// One past the last position this handle claimed and tagged for a put
    /// (0 before the first): a put at the position after it need not check
    /// that its predecessor's cell is tagged (see `claim_put`). Boxed, so
    /// that the handle itself holds nothing mutable: a caller's loop of puts
    /// then keeps the handle's fields in registers (callgrind, 64 puts in one
    /// loop: 94.5 instructions a put with such a word in the handle).
    tagged: Box<AtomicU64>,
}

impl Clone for Queue {
    fn clone(&self) -> Self {
        Self {
            ctl: self.ctl,
            cells: self.cells,
            me: self.me,
            mask: self.mask,
            slots: self.slots,
            slot_size: self.slot_size,
            // The clone knows of no claim of its own yet.
            tagged: Box::new(AtomicU64::new(0)),
        }
    }
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
    /// If `me` is 0 or [`state::TOMB`](super::state::TOMB).
    pub unsafe fn attach(ctl: NonNull<QueueCtl>, cells: Cells, me: u16) -> Self {
        assert!(me != 0 && me != TOMB, "owner tag {me} is reserved");
        Self {
            ctl,
            cells,
            me,
            mask: cells.slots - 1,
            slots: cells.slots,
            slot_size: cells.slot_size,
            tagged: Box::new(AtomicU64::new(0)),
        }
    }

    #[inline(always)]
    pub(super) fn ctl(&self) -> &QueueCtl {
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

    /// True when a get (`getters`) or a put would find its cell ready right
    /// now: the cell at the dequeue position holds a published item, or the
    /// one at the enqueue position is free (or a tombstone, which the call
    /// skips). Claims nothing, so another process may take the cell first:
    /// a select's readiness check.
    pub fn is_ready(&self, getters: bool) -> bool {
        let ctl = self.ctl();
        // Acquire: as in `claim_get` / `claim_put`.
        let pos = if getters {
            ctl.dequeue_pos.load(Ordering::Acquire)
        } else {
            ctl.put_frontier()
        };
        // Acquire: as in `claim_put` / `claim_get`.
        let w = self.cells.state(pos & self.mask).load(Ordering::Acquire);
        let want = i64::from(getters);
        let o = owner(w);
        (diff(seq(w), pos) == want && o == 0) || o == TOMB
    }

    /// The doorbell getters (`getters`) or putters sleep on.
    pub fn doorbell(&self, getters: bool) -> &crate::futex::Doorbell {
        if getters {
            &self.ctl().not_empty
        } else {
            &self.ctl().not_full
        }
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
        // Acquire: as in `claim_get` / `claim_put`.
        let pos = if getters {
            ctl.dequeue_pos.load(Ordering::Acquire)
        } else {
            ctl.put_frontier()
        };
        // Acquire: as in `claim_put` / `claim_get`.
        let w = self.cells.state(pos & self.mask).load(Ordering::Acquire);
        let want = if getters { 0 } else { 1 - self.slots as i64 };
        let o = owner(w);
        if diff(seq(w), pos) != want || o == TOMB {
            return None;
        }
        if o != 0 {
            return Some(w);
        }
        if !getters {
            return None;
        }
        // An untagged write claim: `(pos, 0)` at the dequeue position that
        // `enqueue_pos` says its last claimer took, or that a later put noted
        // (see "Claiming a put" in the module docs). Acquire: as in
        // `claim_put`.
        let e = ctl.enqueue_pos.load(Ordering::Acquire);
        let named = if seq(e) == pos.wrapping_add(1) {
            owner(e)
        } else {
            // Acquire: pairs with the Release of the note.
            let n = self.cells.note(pos & self.mask).load(Ordering::Acquire);
            if seq(n) == pos & super::state::SEQ_MASK {
                owner(n)
            } else {
                0
            }
        };
        (named != 0 && named != TOMB).then(|| pack(pos, named))
    }

    /// Claims the cell for the next put. Returns the cell index and position.
    #[inline]
    pub(super) fn claim_put(&self, len: usize) -> Result<(u64, u64), TryPutError> {
        if len as u64 > self.slot_size {
            return Err(TryPutError::TooLarge {
                len,
                max: self.slot_size as usize,
            });
        }
        let ctl = self.ctl();
        // Acquire: pairs with the AcqRel CAS of the claim that set the
        // position, and through the chain of CASes before it with every
        // earlier claim, so the cell of `pos` is at least in the state the
        // producer of `pos - slots` saw before it claimed (see "Claiming a
        // put" in the module docs).
        let mut e = ctl.enqueue_pos.load(Ordering::Acquire);
        for _ in 0..MAX_STEPS {
            let pos = seq(e);
            let i = pos & self.mask;
            let cell = self.cells.state(i);
            // NB (issue #17, tried and not kept): a first look that guesses
            // the free word `(pos, 0)` and claims with one CAS (see the NB
            // in `claim_get`). Measured as in "Throughput" in the module
            // docs (16 rounds of 2 M items), puts guessing and gets not: 17.9, 13.3 and 13.0 M items/s
            // against 15.3, 11.4 and 16.3 M (vCPUs close), 5.1 and 5.0 M
            // against 5.0 and 5.6 M (far); with gets guessing too, 20.4,
            // 12.8 and 13.4 M against 20.1, 12.5 and 14.0 M for gets alone.
            // A producer's line comes from a consumer that released the cell
            // a lap ago, not from one polling it.
            // NB (issue #17): until 2026-12-05 a put claimed its cell with a
            // CAS on the cell, `(pos, 0) -> (pos, me)`, and let the position
            // lag as a hint, so that a producer dying between two steps
            // stalled no one. That CAS is on the line a caught-up consumer
            // polls, and it cost two thirds of the rate: a raw MPMC queue
            // between two processes (`floor/mpmc-ring-tput/64`, vCPUs close)
            // made 42.0 and 41.8 M items/s with Vyukov's claim by a CAS of
            // the position, 12.0 and 12.3 M with the claim by a CAS of the
            // cell, 42.2 and 42.0 M with the position CAS followed by a plain
            // store of the owner tag into the cell (what this code does),
            // and 40.2–40.9 M with the consumer claiming by a cell CAS, as
            // `claim_get` does.
            // Acquire: pairs with the Release that freed the cell (a
            // consumer's release or skip of a tombstone, or the initial
            // publication), so the last reader is done with the payload.
            let w = cell.load(Ordering::Acquire);
            let d = diff(seq(w), pos);
            if d == 0 && owner(w) == 0 {
                // Whoever claimed `pos - 1` is named by `e` only until we move
                // the position on: if its cell is not tagged yet, note the
                // claim beside the cell, so the daemon can find it should its
                // claimer have died before tagging it. Not needed when this
                // handle claimed `pos - 1` (it tagged the cell before it
                // stored `tagged`).
                let prev = owner(e);
                // Acquire: pairs with the Release store of `tagged` by another
                // thread with this handle, after its tag store.
                if prev != 0 && prev != TOMB && self.tagged.load(Ordering::Acquire) != pos {
                    self.note_claim(pos.wrapping_sub(1), prev);
                }
                // AcqRel: Release passes on to the next claimer what we saw of
                // the cell and the tag above; Acquire (also on failure) as
                // the first load of the position.
                match ctl.enqueue_pos.compare_exchange(
                    e,
                    pack(pos.wrapping_add(1), self.me),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if crash::hit(CrashPoint::QueueClaimed) {
                            return Err(TryPutError::Corrupt(CRASHED));
                        }
                        // Release: a producer whose view of the position is
                        // stale and that sees this tag (Acquire) then sees
                        // the position past it when it loads it again, so it
                        // does not take the tag for a corrupt cell (loom
                        // found that with Relaxed). Costs nothing on x86. A
                        // plain store, not a CAS: only we write the cell now,
                        // and a locked instruction on the line a waiting
                        // consumer polls is what the claim by position
                        // avoids (see the NB above).
                        cell.store(pack(pos, self.me), Ordering::Release);
                        // Release: see the load of `tagged` above.
                        self.tagged.store(pos.wrapping_add(1), Ordering::Release);
                        if crash::hit(CrashPoint::QueueReserved) {
                            return Err(TryPutError::Corrupt(CRASHED));
                        }
                        // NB (issue #17, tried and not kept): a
                        // `prefetchw` of the next cell's two lines here,
                        // so that the next claim finds them in this
                        // core's cache, cost 15 instructions a put
                        // (callgrind: 88.8 instead of 73.8) and bought
                        // nothing measurable: 1P/1C busy 10.2–11.1 M
                        // items/s with it against 9.7–11.8 M without
                        // (probe ≈ 200 ns), 3.45 M against 3.34 M with
                        // the vCPUs far apart (`shmbus-bench --filter
                        // queue-tput-1p1c-busy`, alternating builds,
                        // 2026-12-04; an earlier reading of "3.2 M
                        // against 10 M" compared far with near rows).
                        // Measured again in one process with the
                        // variants alternating (see "Throughput" in the
                        // module docs), prefetching 1, 2, 4, 8 or 16
                        // cells ahead: 13.0, 13.0, 12.7, 12.0, 12.0 M
                        // against 12.7 M without. The lines arrive in
                        // time; the consumer takes them back.
                        // NB (issue #17, tried and not kept): answering
                        // Full from `pos - dequeue_pos == slots` and Empty
                        // from `enqueue_pos == pos` before touching a
                        // cell, each side reading the other's position
                        // only when a process-local cached copy said the
                        // ring might be full or empty (as rtrb does), so
                        // that a polling side polls a position instead of
                        // the cell the other side works on. Loom
                        // (`queue_consumer_crash_points`) found a put
                        // waiting forever behind the position of a
                        // consumer that died between its two CAS, so the
                        // daemon's recovery had to help `dequeue_pos` on;
                        // with that, every model passed. Timed against
                        // this code, alternating (`shmbus-bench --filter
                        // queue-tput-1p1c,shmbus/pipe-tput/64`,
                        // 2026-12-04): vCPUs far (probe 700–770 ns) 1P/1C
                        // busy 2.8–3.1 M items/s against 3.4, blocking
                        // 2.5 M against 3.4 M; probe ≈ 200 ns busy 8.5–9.8 M
                        // against 9.7–11.8 M in the same hour; +17.6
                        // instructions a put (callgrind 91.4 vs 73.8). A
                        // get that finds the ring empty by the positions
                        // then misses on both the position and the cell.
                        return Ok((i, pos));
                    }
                    Err(now) => {
                        e = now;
                        continue;
                    }
                }
            }
            if d < 0 && (d == -(self.slots as i64) || d == 1 - self.slots as i64) {
                return Err(TryPutError::Full);
            }
            if (d == 0 && owner(w) == TOMB) || !self.residue_ok(w, i) {
                return Err(TryPutError::Corrupt(BAD_CELL));
            }
            // A cell older than the position allows (see "Claiming a put" in
            // the module docs), or one claimed at or past the position: our
            // view of the position is stale, or the position or the cell is
            // corrupt. Look once more; if nobody moved the position, the
            // state is impossible, and looking again would only burn steps.
            e = reload(&ctl.enqueue_pos, e).map_err(TryPutError::Corrupt)?;
        }
        Err(TryPutError::Corrupt(NO_PROGRESS))
    }

    /// Notes for the daemon that peer `k - 1` claimed position `pos` (by its
    /// CAS of `enqueue_pos`), if its cell is still untagged: the claimer's
    /// tag store may not have come yet, or the claimer died before it. The
    /// note is a word of its own, which only puts like this one write (by
    /// CAS, and only forward), never the claimer's own plain tag store: a
    /// CAS on the state word racing that store is sound, but loom models a
    /// plain store and a CAS of one word only partly and reported an order
    /// that cannot happen.
    #[inline(never)]
    fn note_claim(&self, pos: u64, k: u16) {
        let i = pos & self.mask;
        // Relaxed: we loaded the position past `pos` (Acquire) before, so
        // the cell is at least at its free state for `pos`; whether its tag
        // has come yet only decides whether a note is needed.
        if self.cells.state(i).load(Ordering::Relaxed) != pack(pos, 0) {
            return;
        }
        let note = self.cells.note(i);
        let want = pack(pos, k);
        // Relaxed: as above.
        let mut n = note.load(Ordering::Relaxed);
        // Forward only: a put that stalled here for a lap must not put back
        // the note of an older claim over that of a newer one. (A fresh note
        // is `(0, 0)`, which the claim of position 0 replaces.)
        while n != want && diff(seq(n), pos) <= 0 {
            // Release: the CAS of the position that follows passes the note
            // on (AcqRel) to whoever loads the position, the daemon's
            // recovery included.
            match note.compare_exchange_weak(n, want, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
    }

    /// `seq % slots` is the cell index or the one after.
    #[inline(always)]
    fn residue_ok(&self, w: u64, i: u64) -> bool {
        let r = seq(w) & self.mask;
        r == i || r == (i + 1) & self.mask
    }

    /// Helps `dequeue_pos` (`p`) on from `pos`, whose cell showed a
    /// sequence number `d > 0` ahead of what the caller expects there, and
    /// returns the position to try next; `Err` if the state cannot occur.
    ///
    /// Normally `d > 0` only means that our `pos` is stale, and the CAS fails
    /// (returning the current position). When it succeeds, the position was
    /// still `pos`, so every claim lies less than a lap above `pos`
    /// (`dequeue_pos` lags only behind a consumer that died between its two
    /// CAS), and the cell can be ahead only because the claim at `pos` has
    /// gone on since: taken and released, or skipped (`d = slots - 1`). A cell further ahead than
    /// `slots` means a corrupt position or cell: helping the position past it
    /// one step at a time could take up to 2^47 steps (a position scribbled
    /// far behind its cells).
    #[inline(always)]
    fn help_past(&self, p: &AtomicU64, pos: u64, d: i64) -> Result<u64, &'static str> {
        match try_help(p, pos) {
            Ok(_) if d > self.slots as i64 => Err(BAD_POSITION),
            Ok(next) | Err(next) => Ok(next),
        }
    }

    /// Publishes a written cell and wakes a sleeping consumer.
    #[inline(always)]
    pub(super) fn publish(&self, i: u64, pos: u64) {
        if crash::hit(CrashPoint::QueueWritten) {
            return;
        }
        // Release: publishes the length and payload; pairs with the Acquire
        // claim of a consumer. A store, not a CAS: only we write a cell we
        // hold, because the daemon repairs cells only after their holder's
        // death is confirmed (see `QueueCtl::recover_owner`).
        // NB: measured with the former `SHMBUS_QBENCH_ONLY=1 cargo bench
        // --bench queue` (now `shmbus-bench --filter queue-tput-1p1c-busy`)
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
    // Always inline: left to the compiler, it stays out of line in a caller's
    // loop (through the client's `try_put`) and copies through `memcpy`:
    // 124 instead of 74 instructions per 64-byte put (`shmbus-bench`'s
    // `icount` role, callgrind).
    #[inline(always)]
    pub fn try_put(&self, frame: &[u8]) -> Result<(), TryPutError> {
        let (i, pos) = self.claim_put(frame.len())?;
        self.cells.write_len(i, frame.len() as u64);
        self.cells.write_bytes(i, 0, frame);
        self.publish(i, pos);
        Ok(())
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

    pub(super) fn claim_put_until(
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
    pub(super) fn claim_get(&self) -> Result<(u64, u64), TryGetError> {
        let ctl = self.ctl();
        // Acquire: as in `claim_put`.
        let mut pos = ctl.dequeue_pos.load(Ordering::Acquire);
        for _ in 0..MAX_STEPS {
            let i = pos & self.mask;
            let cell = self.cells.state(i);
            let full = pos.wrapping_add(1);
            // NB (issue #17, tried and not kept): a first look that claims
            // with one CAS guessing the full word `(pos + 1, 0)`, so that the
            // line comes over once, for writing, instead of to read and then
            // to write. Measured as in "Throughput" in the module docs (16 to
            // 40 rounds of 2 M items, only rounds whose probe before and after
            // agree) it was never slower and 0–48 % faster (14 pairs of
            // medians: with the vCPUs close 12.8 against 12.0, 17.6 against
            // 14.3, 18.2 against 12.3 M items/s; far 5.8 against 4.9 M);
            // guessing only after a get that found an item gained as much.
            // Between processes it bought nothing: `shmbus-bench --filter
            // queue-tput-1p1c-busy/64`, the two builds alternating eight
            // times, medians 10.0 M against 10.3 M at probe 190–260 ns. It
            // cost 4 instructions a get (callgrind 100.7 against 96.7), and
            // consumers polling an empty queue would each take the line for
            // writing (test-and-set instead of test-and-test-and-set).
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
                            // AcqRel: publishes our claim with the position
                            // (see "Ordering of positions and cells" in the
                            // module docs). Fails if a helper advanced it.
                            // NB (issue #17, tried and not kept): the lagging
                            // position puts had until 2026-12-05 (see the
                            // module docs), for gets: a consumer claiming
                            // from its own cursor and storing `dequeue_pos`
                            // every 16 gets. In one
                            // process (one consumer, measured as in
                            // "Throughput" in the module docs, four runs of 20
                            // rounds, 2026-12-04) the busy consumer made 12.5,
                            // 24.9, 17.7, 36.6 M items/s against 13.9, 27.2,
                            // 18.4, 36.4 M with this CAS, and the backing-off
                            // one 26.1, 38.1, 31.8, 48.4 against 27.4, 36.0,
                            // 33.4, 42.5 M (vCPUs close): nothing. The CAS is
                            // on a line only consumers write, and a consumer
                            // waits on the producer either way.
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
                    // NB (issue #17, tried and not kept): waiting here, a
                    // few doubling spins at most, for a cell the producer
                    // has claimed (`(pos, k)`) but not yet published, as
                    // crossbeam's `ArrayQueue::pop` waits for a push in
                    // progress: 12.1 M (3 doublings) and 13.1 M (5) against
                    // 11.6 M, within the noise, measured as in "Throughput"
                    // in the module docs. The polls that cost are those of a
                    // cell nobody has claimed yet. Checking `enqueue_pos`
                    // before the cell (see the NB in `claim_put`) measured
                    // there again: 10.2 M against 13.2 M.
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
    pub(super) fn release(&self, i: u64, pos: u64) {
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

/// Loads position `p` again after its cell at `pos` showed a state older than
/// the position allows; `Err` if the position is still `pos`, because then
/// nothing changed and the state is impossible (see [Ordering of positions
/// and cells](crate::queue#ordering-of-positions-and-cells)).
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
