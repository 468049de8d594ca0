//! A process's subscription: joining (with history), receiving in place or
//! by validated copy, tombstones and lag.

use core::cell::Cell;
use core::ptr::NonNull;
use std::time::Instant;

use super::{RecvError, Ring, SubscribeError, TopicCtl, TryRecvError};
use crate::futex::{WaitError, Waiter};
use crate::queue::state::{diff, owner, seq, TOMB};
use crate::sync::{crash, fence, CrashPoint, Ordering, CRASHED};

/// Upper bound on the slots one receive skips (tombstones, overwritten
/// history) before it gives up with `Corrupt`: far more than a legitimate run
/// meets, since each skip needs a publisher to have left a tombstone.
const MAX_STEPS: u32 = 1 << 20;

const BAD_SLOT: &str = "a slot's state word cannot occur at the subscriber's position";
const BAD_LEN: &str = "a message's length is over the topic's slot size";
const OVERRUN: &str = "a lossless topic's slot was overwritten before every subscriber read it";

/// Where the next message is.
enum Next {
    /// In slot `i`, `len` bytes, readable in place (lossless, from the start
    /// position on).
    #[cfg_attr(loom, allow(dead_code))]
    InPlace { i: u64, len: usize },
    /// Copied into the subscriber's buffer, `len` bytes, validated.
    Copied { len: usize },
}

/// A process's subscription to a topic: receives every message published
/// after it joined (and up to the history it asked for), in the order every
/// other subscriber sees.
///
/// `Send`, not `Sync` (its cursor is its own). Dropping it leaves the topic.
pub struct Subscriber {
    ctl: NonNull<TopicCtl>,
    ring: Ring,
    me: u16,
    entry: u64,
    mask: u64,
    slot_size: u64,
    lossy: bool,
    /// Next position to read.
    cursor: Cell<u64>,
    /// The position `tail` had when the subscriber joined: from here on
    /// every message is delivered (or, lossy, counted as missed); below it,
    /// history, delivered when still in the ring.
    live: u64,
    /// Copies of messages (lossy mode, history, loom).
    buf: Cell<Vec<u8>>,
}

impl core::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Subscriber")
            .field("entry", &self.entry)
            .field("cursor", &self.cursor.get())
            .field("live", &self.live)
            .field("lossy", &self.lossy)
            .finish_non_exhaustive()
    }
}

// SAFETY: the pointers refer to shared memory that `attach`'s caller keeps
// mapped for the handle's lifetime; every access is atomic, or a read of a
// slot that the lossless protocol keeps unchanged.
unsafe impl Send for Subscriber {}

impl Subscriber {
    /// Joins the topic `ctl` with ring `ring` as a subscriber of owner tag
    /// `me`, asking for up to `history` messages published before (at most
    /// one ring's worth).
    ///
    /// # Safety
    /// As [`Publisher::attach`](super::Publisher::attach).
    ///
    /// # Errors
    /// [`SubscribeError::TooManySubscribers`] when the table is full.
    ///
    /// # Panics
    /// If `me` is 0 or [`TOMB`].
    pub unsafe fn attach(
        ctl: NonNull<TopicCtl>,
        ring: Ring,
        me: u16,
        history: u64,
    ) -> Result<Self, SubscribeError> {
        assert!(me != 0 && me != TOMB, "owner tag {me} is reserved");
        // SAFETY: the caller keeps the control block mapped.
        let c = unsafe { ctl.as_ref() };
        let entry = (0..ring.max_subs)
            .find(|&k| {
                let e = ring.entry(k);
                // Relaxed: a first look; the CAS decides. AcqRel: Acquire
                // pairs with the previous holder's release of the entry.
                e.owner.load(Ordering::Relaxed) == 0
                    && e.owner
                        .compare_exchange(0, u64::from(me), Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
            .ok_or(SubscribeError::TooManySubscribers { max: ring.max_subs })?;
        // AcqRel: publishes the claim of the entry to scans that read the
        // mark (Acquire).
        let hwm = &c.not_empty.subs_hwm;
        // Relaxed: the CAS below decides.
        let mut now = hwm.load(Ordering::Relaxed);
        while now < entry + 1 {
            match hwm.compare_exchange_weak(now, entry + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(v) => now = v,
            }
        }
        // AcqRel RMW: see "Joining" in the module docs.
        let t = c.tail.fetch_add(0, Ordering::AcqRel);
        // Release: as every cursor store.
        ring.entry(entry).cursor.store(t, Ordering::Release);
        // A publisher may have seen the entry's stale cursor and gone to
        // sleep: wake it.
        c.not_full.notify();
        let back = history.min(ring.slots).min(t);
        Ok(Self {
            ctl,
            ring,
            me,
            entry,
            mask: ring.slots - 1,
            slot_size: ring.slot_size,
            lossy: ring.lossy,
            cursor: Cell::new(t - back),
            live: t,
            buf: Cell::new(Vec::new()),
        })
    }

    #[inline(always)]
    fn ctl(&self) -> &TopicCtl {
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

    /// The position of the next message this subscriber reads.
    pub fn position(&self) -> u64 {
        self.cursor.get()
    }

    /// The subscriber's entry in the table.
    pub fn entry(&self) -> u64 {
        self.entry
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

    /// Approximately how many messages are published and not yet read by
    /// this subscriber.
    pub fn pending(&self) -> u64 {
        // Relaxed: an approximation.
        let t = self.ctl().tail.load(Ordering::Relaxed);
        let n = t.wrapping_sub(self.cursor.get());
        if (n as i64) < 0 {
            0
        } else {
            n
        }
    }

    /// Moves the cursor to `to` and, from the start position on, publishes
    /// it (lossless publishers wait for it).
    #[inline(always)]
    fn advance(&self, to: u64) {
        self.cursor.set(to);
        if (to.wrapping_sub(self.live) as i64) >= 0 {
            // Release: our reads of the slots below `to` happen before the
            // publisher's writes that follow its Acquire load of the cursor.
            self.ring
                .entry(self.entry)
                .cursor
                .store(to, Ordering::Release);
            if !self.lossy {
                self.ctl().not_full.notify();
            }
        }
    }

    /// Where the next message is; skips tombstones and overwritten history.
    fn next(&self) -> Result<Next, TryRecvError> {
        let lap = self.ring.slots as i64;
        for _ in 0..MAX_STEPS {
            let c = self.cursor.get();
            let i = c & self.mask;
            let st = self.ring.state(i);
            // Acquire: pairs with the publisher's Release commit, so the
            // length and payload are visible.
            let w = st.load(Ordering::Acquire);
            let d = diff(seq(w), c.wrapping_add(1));
            let o = owner(w);
            let claimed = o != 0 && o != TOMB;
            let history = (c.wrapping_sub(self.live) as i64) < 0;
            if d == 0 && o == TOMB {
                self.advance(c.wrapping_add(1));
                continue;
            }
            if d == 0 && o == 0 {
                let len = self.ring.read_len(i);
                #[cfg(not(loom))]
                if !self.lossy && !history {
                    if len > self.slot_size {
                        self.advance(c.wrapping_add(1));
                        return Err(TryRecvError::Corrupt(BAD_LEN));
                    }
                    return Ok(Next::InPlace {
                        i,
                        len: len as usize,
                    });
                }
                let n = len.min(self.slot_size) as usize;
                let mut buf = self.buf.take();
                buf.resize(n, 0);
                self.ring.read_bytes(i, &mut buf);
                self.buf.set(buf);
                // Acquire fence, then a second look: if any load above saw a
                // later lap's store, the state has changed (see
                // `crate::seqlock`).
                fence(Ordering::Acquire);
                // Relaxed: ordered by the fence.
                if st.load(Ordering::Relaxed) == w {
                    if len > self.slot_size {
                        self.advance(c.wrapping_add(1));
                        return Err(TryRecvError::Corrupt(BAD_LEN));
                    }
                    return Ok(Next::Copied { len: n });
                }
                if !self.lossy && !history {
                    return Err(TryRecvError::Corrupt(OVERRUN));
                }
                if let Some(n) = self.lagged(c) {
                    return Err(TryRecvError::Lagged(n));
                }
                continue;
            }
            // Not yet: the message of `c` is being written, or the slot
            // still holds the previous lap, committed or (a slow publisher
            // of `c - slots`, claimed before this subscriber joined) still
            // being written.
            let not_yet = if claimed {
                d == -1 || d == -lap - 1
            } else {
                d == -lap
            };
            if not_yet {
                return Err(TryRecvError::Empty);
            }
            if d >= lap - 1 && ((claimed && (d + 1) % lap == 0) || (!claimed && d % lap == 0)) {
                if !self.lossy && !history {
                    return Err(TryRecvError::Corrupt(OVERRUN));
                }
                if let Some(n) = self.lagged(c) {
                    return Err(TryRecvError::Lagged(n));
                }
                continue;
            }
            return Err(TryRecvError::Corrupt(BAD_SLOT));
        }
        Err(TryRecvError::Corrupt(BAD_SLOT))
    }

    /// The message at `c` was overwritten: moves on to the oldest position
    /// that can still be in the ring. Returns the count of live messages
    /// missed, `None` if only history was skipped.
    #[cold]
    fn lagged(&self, c: u64) -> Option<u64> {
        // Acquire: as in `Publisher::claim`.
        let t = self.ctl().tail.load(Ordering::Acquire);
        let oldest = t.wrapping_sub(self.ring.slots).wrapping_add(1);
        let mut to = c.wrapping_add(1);
        if (oldest.wrapping_sub(to) as i64) > 0 {
            to = oldest;
        }
        let from = if (c.wrapping_sub(self.live) as i64) < 0 {
            if !self.lossy && (to.wrapping_sub(self.live) as i64) > 0 {
                // Lossless: the start position is protected; never skip it.
                to = self.live;
            }
            self.live
        } else {
            c
        };
        self.advance(to);
        let missed = to.wrapping_sub(from) as i64;
        (missed > 0).then_some(missed as u64)
    }

    /// Receives the next message without waiting and hands it to `f`, in
    /// place where the protocol allows (lossless mode), else as a validated
    /// copy.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; `Lagged(n)` in lossy mode (the next call
    /// continues); `Corrupt`.
    #[inline]
    pub fn try_recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let n = self.next()?;
        self.deliver(n, f)
    }

    /// Hands the message `n` to `f` and moves on.
    #[inline(always)]
    fn deliver<R>(&self, n: Next, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let c = self.cursor.get();
        let r = match n {
            #[cfg(not(loom))]
            Next::InPlace { i, len } => {
                // SAFETY: `len <= slot_size` (checked in `next`), so the
                // bytes lie in slot `i`'s payload; the slot holds position
                // `c`, committed (Acquire-loaded), and no publisher writes it
                // until our cursor passes `c` (the lossless gate), which
                // happens after `f` returns; the slice does not outlive `f`.
                f(unsafe { core::slice::from_raw_parts(self.ring.payload_ptr(i), len) })
            }
            #[cfg(loom)]
            Next::InPlace { .. } => unreachable!(),
            Next::Copied { len } => {
                let buf = self.buf.take();
                let r = f(&buf[..len]);
                self.buf.set(buf);
                r
            }
        };
        if crash::hit(CrashPoint::TopicRead) {
            return Err(TryRecvError::Corrupt(CRASHED));
        }
        self.advance(c.wrapping_add(1));
        Ok(r)
    }

    /// Receives the next message into `buf` (replacing its contents) and
    /// returns its length.
    ///
    /// # Errors
    /// As [`try_recv_with`](Self::try_recv_with).
    pub fn try_recv_into(&self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        self.try_recv_with(|b| {
            buf.clear();
            buf.extend_from_slice(b);
            b.len()
        })
    }

    /// Receives the next message, waiting until `deadline` (forever if
    /// `None`).
    ///
    /// # Errors
    /// `Lagged(n)` (lossy), `Timeout`, `Interrupted`, `Corrupt`.
    pub fn recv_with_until<R>(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn Waiter>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        let r = self
            .ctl()
            .not_empty
            .wait(deadline, interrupt, || match self.next() {
                Err(TryRecvError::Empty) => None,
                other => Some(other),
            });
        let n = match r {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(recv_error(e)),
            Err(WaitError::Timeout) => return Err(RecvError::Timeout),
            Err(WaitError::Interrupted) => return Err(RecvError::Interrupted),
        };
        self.deliver(n, f).map_err(recv_error)
    }

    /// True when a receive would not answer `Empty` right now: the slot at
    /// the cursor holds a committed message or a tombstone (skipped; an
    /// `Empty` may follow, and the next look is at the slot after it), or a
    /// later lap (lossy: `Lagged`). One load, nothing claimed or moved: the
    /// readiness check of a select, re-checked after its announcement as
    /// the poll of [`recv_with_until`](Self::recv_with_until) is.
    pub fn is_readable(&self) -> bool {
        let c = self.cursor.get();
        // Acquire: as in `next`, pairs with the publisher's Release commit.
        let w = self.ring.state(c & self.mask).load(Ordering::Acquire);
        let d = diff(seq(w), c.wrapping_add(1));
        let o = owner(w);
        (d == 0 && (o == 0 || o == TOMB)) || d > 0
    }

    /// The state word of a publish claim that holds this subscriber up right
    /// now, if any (see [`Publisher::stalling_claim`](super::Publisher::stalling_claim)).
    pub fn stalling_claim(&self) -> Option<u64> {
        super::Publisher::stalling_claim(self.ctl(), &self.ring, self.cursor.get())
    }

    /// Leaves the topic now (what dropping does).
    fn leave(&self) {
        // Release: our reads are done before a publisher reuses the slots.
        let _ = self.ring.entry(self.entry).owner.compare_exchange(
            u64::from(self.me),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
        self.ctl().not_full.notify();
    }
}

fn recv_error(e: TryRecvError) -> RecvError {
    match e {
        TryRecvError::Lagged(n) => RecvError::Lagged(n),
        TryRecvError::Corrupt(w) => RecvError::Corrupt(w),
        TryRecvError::Empty => RecvError::Corrupt("empty after waiting"),
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.leave();
    }
}
