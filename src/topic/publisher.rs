//! A process's publishing handle: claiming positions, the gate of lossless
//! topics, publishing, and zero-copy claims.

use core::cell::Cell;
use core::ptr::NonNull;
use std::time::Instant;

use super::{PublishError, Ring, TopicCtl, TryPublishError};
use crate::futex::{WaitError, Waiter};
use crate::queue::state::{diff, owner, pack, seq, TOMB};
use crate::sync::{crash, fence, CrashPoint, Ordering, CRASHED};

/// Upper bound on the steps of one non-blocking claim (see the queue's
/// `MAX_STEPS`: a legitimate run never comes near it; impossible states that
/// nobody changes are reported at once).
const MAX_STEPS: u32 = 1 << 20;

const BAD_SLOT: &str = "a slot's state word cannot occur at its position";
const NO_PROGRESS: &str = "the topic's tail does not lead to a usable slot";
pub(super) const BAD_TAIL: &str = "the topic's tail disagrees with the state of its slot";

/// A process's handle for publishing on a topic, from any number of
/// processes and handles at once.
///
/// `Send`, not `Sync` (it caches the gate of a lossless topic): give each
/// thread its own clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    ctl: NonNull<TopicCtl>,
    pub(super) ring: Ring,
    pub(super) me: u16,
    mask: u64,
    slots: u64,
    slot_size: u64,
    lossy: bool,
    /// Lossless: a position at or below every subscriber's cursor when it
    /// was computed (cursors only grow, so it stays one for those
    /// subscribers; see "Joining" in the module docs for new ones).
    gate: Cell<u64>,
}

// SAFETY: the pointers refer to shared memory that `attach`'s caller keeps
// mapped for the handle's lifetime; every access is atomic.
unsafe impl Send for Publisher {}

impl Publisher {
    /// A publishing handle on the topic `ctl` with ring `ring`, for owner tag
    /// `me` (peer slot + 1).
    ///
    /// # Safety
    /// - `ctl` passed [`TopicCtl::check`] with the ring's parameters, and
    ///   `ring` is that topic's ring;
    /// - both stay mapped for the handle's whole lifetime.
    ///
    /// # Panics
    /// If `me` is 0 or [`TOMB`].
    pub unsafe fn attach(ctl: NonNull<TopicCtl>, ring: Ring, me: u16) -> Self {
        assert!(me != 0 && me != TOMB, "owner tag {me} is reserved");
        Self {
            ctl,
            ring,
            me,
            mask: ring.slots - 1,
            slots: ring.slots,
            slot_size: ring.slot_size,
            lossy: ring.lossy,
            gate: Cell::new(0),
        }
    }

    #[inline(always)]
    pub(super) fn ctl(&self) -> &TopicCtl {
        // SAFETY: `attach`'s caller keeps the control block mapped.
        unsafe { self.ctl.as_ref() }
    }

    /// The control block.
    pub fn control(&self) -> &TopicCtl {
        self.ctl()
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Largest message (the slot payload size).
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size as usize
    }

    /// Whether the topic is lossy.
    #[inline]
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// The lowest cursor of the registered subscribers and `tail`, read with
    /// the RMW of "Joining" (module docs).
    #[cold]
    #[inline(never)]
    fn scan(&self) -> u64 {
        let ctl = self.ctl();
        // AcqRel RMW: orders this scan against every subscriber's join (see
        // "Joining" in the module docs).
        let mut m = ctl.tail.fetch_add(0, Ordering::AcqRel);
        // Acquire: pairs with the joiners' `fetch_max`; clamped against a
        // scribbled value.
        let hwm = ctl
            .not_empty
            .subs_hwm
            .load(Ordering::Acquire)
            .min(self.ring.max_subs);
        for k in 0..hwm {
            let e = self.ring.entry(k);
            // Acquire: a subscriber's Release store of its cursor comes
            // after its reads of the slots below it, which our writes must
            // follow.
            if e.owner.load(Ordering::Acquire) != 0 {
                // Acquire: as above.
                let c = e.cursor.load(Ordering::Acquire);
                if (c.wrapping_sub(m) as i64) < 0 {
                    m = c;
                }
            }
        }
        self.gate.set(m);
        m
    }

    /// Lossless: whether every subscriber is past `pos - slots`.
    #[inline(always)]
    fn gate_open(&self, pos: u64) -> bool {
        (pos.wrapping_sub(self.gate.get()) as i64) < self.slots as i64
            || (pos.wrapping_sub(self.scan()) as i64) < self.slots as i64
    }

    /// Claims the slot of the next position. Returns the slot and position.
    #[inline]
    pub(super) fn claim(&self, len: usize) -> Result<(u64, u64), TryPublishError> {
        if len as u64 > self.slot_size {
            return Err(TryPublishError::TooLarge {
                len,
                max: self.slot_size as usize,
            });
        }
        let ctl = self.ctl();
        let lap = self.slots as i64;
        // Acquire: pairs with the Release of every RMW of `tail`, so the
        // claims of all earlier positions are visible (as the queue's
        // positions).
        let mut pos = ctl.tail.load(Ordering::Acquire);
        for _ in 0..MAX_STEPS {
            let i = pos & self.mask;
            let st = self.ring.state(i);
            // Acquire: pairs with the Release commit (or tombstone) of the
            // previous lap, so its writer is done with the words.
            let w = st.load(Ordering::Acquire);
            let d = diff(seq(w), pos);
            let o = owner(w);
            let claimed = o != 0 && o != TOMB;
            if d == 1 - lap && !claimed {
                if !self.lossy && !self.gate_open(pos) {
                    return Err(TryPublishError::Full);
                }
                // Acquire: as the load above.
                if st
                    .compare_exchange(w, pack(pos, self.me), Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                // Release fence: lossy readers of the previous lap that see
                // any of our payload stores see the claim (the seqlock
                // writer's fence, see `crate::seqlock`).
                fence(Ordering::Release);
                if crash::hit(CrashPoint::TopicClaimed) {
                    return Err(TryPublishError::Corrupt(CRASHED));
                }
                // AcqRel: publishes our claim with the position; fails if a
                // helper advanced it.
                let _ = ctl.tail.compare_exchange(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                if crash::hit(CrashPoint::TopicReserved) {
                    return Err(TryPublishError::Corrupt(CRASHED));
                }
                return Ok((i, pos));
            }
            // A claim sits at its own position's slot, a message or a
            // tombstone at the slot of `seq - 1`.
            let home = if claimed {
                seq(w)
            } else {
                seq(w).wrapping_sub(1)
            };
            if home & self.mask != i {
                // Acquire: as above.
                if ctl.tail.load(Ordering::Acquire) == pos {
                    return Err(TryPublishError::Corrupt(BAD_SLOT));
                }
                pos = ctl.tail.load(Ordering::Acquire);
                continue;
            }
            if d == -lap && claimed {
                // The previous lap's publisher is still writing.
                return Err(TryPublishError::Full);
            }
            if (d == 0 && claimed) || (d == 1 && !claimed) {
                // Somebody claimed `pos`: help `tail` on.
                pos = help(&ctl.tail, pos);
                continue;
            }
            if d > 1 {
                // `tail` is stale by more than one position: help, but a
                // slot more than a lap ahead means `tail` is corrupt.
                match try_help(&ctl.tail, pos) {
                    Ok(_) if d > lap => return Err(TryPublishError::Corrupt(BAD_TAIL)),
                    Ok(next) | Err(next) => pos = next,
                }
                continue;
            }
            // Older than a lap behind, or impossible: unless `tail` moved,
            // it is corrupt (or the slot is).
            // Acquire: as above.
            let now = ctl.tail.load(Ordering::Acquire);
            if now == pos {
                return Err(TryPublishError::Corrupt(if d < -lap {
                    BAD_TAIL
                } else {
                    BAD_SLOT
                }));
            }
            pos = now;
        }
        Err(TryPublishError::Corrupt(NO_PROGRESS))
    }

    /// Commits the message written in slot `i` at `pos`.
    #[inline(always)]
    pub(super) fn commit(&self, i: u64, pos: u64) {
        if crash::hit(CrashPoint::TopicWritten) {
            return;
        }
        // Release: publishes the length and payload with the position (pairs
        // with the subscribers' Acquire loads).
        self.ring
            .state(i)
            .store(pack(pos.wrapping_add(1), 0), Ordering::Release);
        if crash::hit(CrashPoint::TopicCommitted) {
            return;
        }
        self.ctl().notify_committed();
    }

    /// Publishes one message without waiting.
    ///
    /// # Errors
    /// [`TryPublishError::Full`] (lossless: the slowest subscriber is a ring
    /// behind; try again later), `TooLarge`, or `Corrupt`.
    #[inline]
    pub fn try_publish(&self, msg: &[u8]) -> Result<(), TryPublishError> {
        let (i, pos) = self.claim(msg.len())?;
        self.ring.write_len(i, msg.len() as u64);
        self.ring.write_bytes(i, 0, msg);
        self.commit(i, pos);
        Ok(())
    }

    /// Publishes one message, waiting for room until `deadline` (forever if
    /// `None`).
    ///
    /// # Errors
    /// `Timeout`, `Interrupted` (when `interrupt` says so), `TooLarge`,
    /// `Corrupt`.
    pub fn publish_until(
        &self,
        msg: &[u8],
        deadline: Option<Instant>,
        interrupt: Option<&dyn Waiter>,
    ) -> Result<(), PublishError> {
        let (i, pos) = self.claim_until(msg.len(), deadline, interrupt)?;
        self.ring.write_len(i, msg.len() as u64);
        self.ring.write_bytes(i, 0, msg);
        self.commit(i, pos);
        Ok(())
    }

    fn claim_until(
        &self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Waiter>,
    ) -> Result<(u64, u64), PublishError> {
        let r = self
            .ctl()
            .not_full
            .wait(deadline, interrupt, || match self.claim(len) {
                Err(TryPublishError::Full) => None,
                other => Some(other),
            });
        match r {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(TryPublishError::TooLarge { len, max })) => {
                Err(PublishError::TooLarge { len, max })
            }
            Ok(Err(TryPublishError::Corrupt(w))) => Err(PublishError::Corrupt(w)),
            Ok(Err(TryPublishError::Full)) => Err(PublishError::Corrupt("full after waiting")),
            Err(WaitError::Timeout) => Err(PublishError::Timeout),
            Err(WaitError::Interrupted) => Err(PublishError::Interrupted),
        }
    }

    /// Claims a slot for a message of `len` bytes, to write in place and
    /// [`commit`](TopicClaim::commit).
    ///
    /// # Errors
    /// As [`try_publish`](Self::try_publish).
    #[inline]
    pub fn try_claim(&self, len: usize) -> Result<TopicClaim<'_>, TryPublishError> {
        let (i, pos) = self.claim(len)?;
        Ok(TopicClaim {
            p: self,
            i,
            pos,
            len,
            done: false,
        })
    }

    /// As [`try_claim`](Self::try_claim), waiting for room until `deadline`.
    ///
    /// # Errors
    /// As [`publish_until`](Self::publish_until).
    pub fn claim_until_deadline(
        &self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Waiter>,
    ) -> Result<TopicClaim<'_>, PublishError> {
        let (i, pos) = self.claim_until(len, deadline, interrupt)?;
        Ok(TopicClaim {
            p: self,
            i,
            pos,
            len,
            done: false,
        })
    }

    /// The state word of a publish claim that holds subscribers up right
    /// now, if any: a claim `(pos, k)` at position `pos`, or `(pos - slots,
    /// k)` of the previous lap, with `tail` past `pos`. Lets a blocking
    /// subscriber check whether holder `k` exists at all.
    pub fn stalling_claim(ctl: &TopicCtl, ring: &Ring, pos: u64) -> Option<u64> {
        // Acquire: as in `claim`.
        let w = ring.state(pos & (ring.slots - 1)).load(Ordering::Acquire);
        let o = owner(w);
        let d = diff(seq(w), pos);
        ((d == 0 || d == -(ring.slots as i64)) && o != 0 && o != TOMB && {
            // Relaxed: a hint.
            let t = ctl.tail.load(Ordering::Relaxed);
            (t.wrapping_sub(pos.wrapping_add_signed(d)) as i64) > 0
        })
        .then_some(w)
    }
}

/// A slot claimed by [`Publisher::try_claim`]: write the message in place
/// ([`write_at`](Self::write_at)), then [`commit`](Self::commit). Dropped
/// uncommitted, it becomes a tombstone that subscribers skip.
///
/// Writes are word stores into the slot (no intermediate buffer); there is no
/// `&mut [u8]` view, because lossy and history readers may still be reading
/// the slot's previous message (they notice and discard what they read).
#[derive(Debug)]
pub struct TopicClaim<'a> {
    p: &'a Publisher,
    i: u64,
    pos: u64,
    len: usize,
    done: bool,
}

impl TopicClaim<'_> {
    /// Length of the claimed message.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length claim.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position of the claimed message (0 for the topic's first).
    #[inline]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Copies `src` into the message at byte `at` (a multiple of 8).
    ///
    /// # Panics
    /// If `at` is not a multiple of 8 or the write leaves the claim.
    #[inline]
    pub fn write_at(&mut self, at: usize, src: &[u8]) {
        assert!(
            at.is_multiple_of(8) && at + src.len() <= self.len,
            "write outside the claim"
        );
        self.p.ring.write_bytes(self.i, at, src);
    }

    /// Publishes the message.
    #[inline]
    pub fn commit(mut self) {
        self.done = true;
        self.p.ring.write_len(self.i, self.len as u64);
        self.p.commit(self.i, self.pos);
    }
}

impl Drop for TopicClaim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Release: hands the slot to the subscribers that skip it and the
        // next lap's publisher (pairs with their Acquire loads).
        let _ = self.p.ring.state(self.i).compare_exchange(
            pack(self.pos, self.p.me),
            pack(self.pos.wrapping_add(1), TOMB),
            Ordering::Release,
            Ordering::Relaxed,
        );
        self.p.ctl().notify_committed();
    }
}

/// Advances `tail` from `pos` (whose slot is known to be claimed) and returns
/// the position to try next.
#[inline(always)]
pub(super) fn help(p: &crate::sync::AtomicU64, pos: u64) -> u64 {
    match try_help(p, pos) {
        Ok(next) | Err(next) => next,
    }
}

/// As [`help`], telling who advanced it: `Ok(pos + 1)` if we did,
/// `Err(current)` if somebody else had.
#[inline(always)]
pub(super) fn try_help(p: &crate::sync::AtomicU64, pos: u64) -> Result<u64, u64> {
    // AcqRel: passes on the claim we saw at `pos`; Acquire on failure,
    // because the position we return is used the same way.
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
