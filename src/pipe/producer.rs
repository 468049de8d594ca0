//! The producer end of a pipe.

use core::ptr::NonNull;
use std::time::Instant;

use super::error::{AttachError, SendError, TrySendError};
use super::{
    attach, end, max_frame, positions_ok, record_len, release, PipeCtl, Ring, BAD_POSITIONS,
    HEADER, KIND_DATA, KIND_PAD,
};
use crate::futex::WaitError;
use crate::sync::{crash, CrashPoint, Ordering, CRASHED};

/// The producer end of a pipe: the only writer of `tail`.
///
/// `Send` but not `Sync`: all methods take `&mut self`, so one thread at a time
/// uses it, and the endpoint word in the control block keeps any other process
/// from attaching a second producer. Dropping it detaches.
#[derive(Debug)]
pub struct Producer {
    ctl: NonNull<PipeCtl>,
    ring: Ring,
    me: u16,
    capacity: u64,
    max_frame: u64,
    /// Our copy of `ctl.tail`; we are its only writer.
    tail: u64,
    /// Last `head` we read; refreshed only when the ring looks full.
    cached_head: u64,
    /// Set once the shared state was found inconsistent.
    poisoned: Option<&'static str>,
}

// SAFETY: the pointers refer to shared memory that `new`'s caller keeps mapped
// for the producer's lifetime; nothing in `Producer` is tied to a thread.
unsafe impl Send for Producer {}

impl Producer {
    /// Attaches as the producer of the pipe `ctl`, with owner tag `me`
    /// (peer slot + 1).
    ///
    /// # Safety
    /// - `ctl` points to a [`PipeCtl`] that passed [`PipeCtl::check`] with the
    ///   ring's capacity, and `ring` is that pipe's ring;
    /// - both stay mapped for the producer's whole lifetime (until drop).
    ///
    /// # Errors
    /// [`AttachError::Busy`] if another peer is the producer;
    /// [`AttachError::Corrupt`] if the positions are inconsistent.
    pub unsafe fn attach(ctl: NonNull<PipeCtl>, ring: Ring, me: u16) -> Result<Self, AttachError> {
        // SAFETY: the caller guarantees `ctl` is valid while we use it.
        let c = unsafe { ctl.as_ref() };
        attach(&c.ends.producer, me)?;
        // Relaxed: the Acquire of the attach CAS made the previous producer's
        // last tail store visible, and only producers write `tail`.
        let tail = c.tail.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store of head.
        let head = c.head.load(Ordering::Acquire);
        let capacity = ring.capacity;
        if !positions_ok(tail, head, capacity) {
            release(&c.ends.producer, me);
            return Err(AttachError::Corrupt(BAD_POSITIONS));
        }
        Ok(Self {
            ctl,
            ring,
            me,
            capacity,
            max_frame: max_frame(capacity),
            tail,
            cached_head: head,
            poisoned: None,
        })
    }

    #[inline(always)]
    fn ctl(&self) -> &PipeCtl {
        // SAFETY: `attach`'s caller keeps the control block mapped while we live.
        unsafe { self.ctl.as_ref() }
    }

    /// The pipe's control block (to inspect the other end's word).
    #[inline]
    pub fn control(&self) -> &PipeCtl {
        self.ctl()
    }

    /// Largest frame this pipe takes (`capacity / 8`).
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.max_frame as usize
    }

    /// Ring capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Where a record for `len` payload bytes goes: `(offset, bytes consumed)`,
    /// where the bytes include a PAD record if it must wrap. Refreshes the
    /// cached head only when the cached view says there is no room.
    #[inline(always)]
    fn reserve(&mut self, len: usize) -> Result<(u64, u64), TrySendError> {
        self.reserve_at(self.tail, len)
    }

    /// As [`Producer::reserve`], for a record written at `tail` (at or past
    /// the published `self.tail`: a batch's records not yet published come
    /// before it).
    #[inline(always)]
    fn reserve_at(&mut self, tail: u64, len: usize) -> Result<(u64, u64), TrySendError> {
        if let Some(what) = self.poisoned {
            return Err(TrySendError::Corrupt(what));
        }
        let len64 = len as u64;
        if len64 > self.max_frame {
            return Err(TrySendError::TooLarge {
                len,
                max: self.max_frame as usize,
            });
        }
        let rec = record_len(len64);
        let off = tail & (self.capacity - 1);
        let to_end = self.capacity - off;
        let need = if rec > to_end { to_end + rec } else { rec };
        if tail + need - self.cached_head > self.capacity {
            self.refresh_head(tail + need)?;
        }
        if crash::hit(CrashPoint::PipeReserved) {
            return Err(TrySendError::Corrupt(CRASHED));
        }
        Ok((off, need))
    }

    /// True when a send of `len` payload bytes would not find the pipe full
    /// right now: there is room, or the send would fail at once (too large,
    /// consumer gone, corrupt). Reads the shared words and changes nothing:
    /// a select's readiness check.
    pub fn is_writable(&self, len: usize) -> bool {
        let len64 = len as u64;
        if self.poisoned.is_some() || len64 > self.max_frame {
            return true;
        }
        let rec = record_len(len64);
        let off = self.tail & (self.capacity - 1);
        let to_end = self.capacity - off;
        let need = if rec > to_end { to_end + rec } else { rec };
        // Acquire: as in `refresh_head`.
        let head = self.ctl().head.load(Ordering::Acquire);
        head > self.tail
            || self.tail - head > self.capacity
            || self.tail + need - head <= self.capacity
            // Acquire: as in `refresh_head`.
            || end::gone(self.ctl().ends.consumer.load(Ordering::Acquire))
    }

    /// Re-reads `head` because the cached one leaves no room up to `end`
    /// (the end of the record to write).
    #[cold]
    #[inline(never)]
    fn refresh_head(&mut self, end: u64) -> Result<(), TrySendError> {
        // Acquire: pairs with the Release store of head in `Consumer::release`,
        // so the consumer is done reading the bytes we are about to reuse.
        let head = self.ctl().head.load(Ordering::Acquire);
        if head > self.tail || self.tail - head > self.capacity || !head.is_multiple_of(8) {
            let what = "head is ahead of tail or a capacity behind it";
            self.poisoned = Some(what);
            return Err(TrySendError::Corrupt(what));
        }
        self.cached_head = head;
        if end - head <= self.capacity {
            return Ok(());
        }
        // Acquire: pairs with the Release detach in `release`.
        if end::gone(self.ctl().ends.consumer.load(Ordering::Acquire)) {
            // Re-read head: the consumer's last release happened before its
            // detach, so room it made just before leaving is seen now.
            let head = self.ctl().head.load(Ordering::Acquire);
            if head <= self.tail && self.tail - head <= self.capacity {
                self.cached_head = head;
                if end - head <= self.capacity {
                    return Ok(());
                }
            }
            return Err(TrySendError::Disconnected);
        }
        Err(TrySendError::Full)
    }

    /// Writes the PAD record (if wrapping) and the data header; returns the
    /// payload offset.
    #[inline(always)]
    fn lay_out(&self, off: u64, need: u64, len: usize) -> u64 {
        let rec = record_len(len as u64);
        let off = if need > rec {
            // Pad the rest of the ring; `need - rec` is the distance to the end.
            self.ring
                .write_header(off, (need - rec - HEADER) as u32, KIND_PAD);
            0
        } else {
            off
        };
        self.ring.write_header(off, len as u32, KIND_DATA);
        off + HEADER
    }

    /// Publishes `need` more bytes and wakes a sleeping consumer.
    #[inline(always)]
    fn publish(&mut self, need: u64) {
        if crash::hit(CrashPoint::PipeWritten) {
            return;
        }
        self.tail += need;
        // Release: publishes the record; pairs with the Acquire load of tail in
        // `Consumer::refresh_tail`.
        self.ctl().tail.store(self.tail, Ordering::Release);
        if crash::hit(CrashPoint::PipePublished) {
            return;
        }
        self.ctl().readable.notify();
    }

    /// Sends one frame if there is room now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] (try again later), `Disconnected` (full, and the
    /// receiver has gone), `TooLarge`, or `Corrupt`.
    //
    // NB: tried, not kept (2026-12-05): `#[inline(always)]` here. With a
    // 64-byte frame of fixed length the compiler keeps this function out of
    // the sending loop, with a runtime length it inlines it, and the runtime
    // form runs faster (27 against 18 M frames/s). Forcing the inlining
    // made both forms run at the slower rate. Alternating four times
    // (`shmbus-bench --filter shmbus/pipe-tput/64,
    // shmbus/pipe-tput-runtime-len/64,...`), rows whose probe stayed
    // close: fixed length 18.2 M against 18.1 M; runtime length 17.8 M
    // against 25.9 and 27.8 M (the vCPUs moved during the other pairs).
    // A faster loop does not give a faster pipe: the rate
    // depends on where the two sides settle (see the module docs).
    #[inline]
    pub fn try_send(&mut self, frame: &[u8]) -> Result<(), TrySendError> {
        let (off, need) = self.reserve(frame.len())?;
        let at = self.lay_out(off, need, frame.len());
        self.ring.write_bytes(at, frame);
        self.publish(need);
        Ok(())
    }

    /// Sends frames from the front of `frames` while they fit, and publishes
    /// them together: one store of `tail` and one check for a sleeping
    /// consumer for the whole batch, instead of one per frame (batch
    /// publishing, as the Disruptor's). Returns how many were sent; send the
    /// rest (`&frames[n..]`) later.
    ///
    /// # Errors
    /// As [`Producer::try_send`], when not even the first frame can be sent
    /// (`Full` for an empty ring only if `frames` is not empty). An error met
    /// after the first frame ends the batch, and the next call reports it.
    #[inline]
    pub fn try_send_batch<F: AsRef<[u8]>>(&mut self, frames: &[F]) -> Result<usize, TrySendError> {
        let mut tail = self.tail;
        let mut n = 0;
        for f in frames {
            let f = f.as_ref();
            match self.reserve_at(tail, f.len()) {
                Ok((off, need)) => {
                    let at = self.lay_out(off, need, f.len());
                    self.ring.write_bytes(at, f);
                    tail += need;
                    n += 1;
                }
                Err(TrySendError::Corrupt(CRASHED)) => return Err(TrySendError::Corrupt(CRASHED)),
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if n > 0 {
            self.publish(tail - self.tail);
        }
        Ok(n)
    }

    /// Claims room for a frame of `len` bytes, to be written in place and then
    /// published with [`Claim::commit`]. Dropping the claim publishes nothing.
    ///
    /// # Errors
    /// As [`Producer::try_send`].
    #[inline]
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_>, TrySendError> {
        let (off, need) = self.reserve(len)?;
        Ok(Claim {
            producer: self,
            off,
            need,
            len,
        })
    }

    /// Waits until a frame of `len` bytes fits, then claims it.
    ///
    /// # Errors
    /// `Timeout` after `deadline`, `Interrupted` when `interrupt` says so,
    /// `Disconnected`, `TooLarge`, `Corrupt`.
    pub fn claim_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<Claim<'_>, SendError> {
        let (off, need) = self.reserve_until(len, deadline, interrupt)?;
        Ok(Claim {
            producer: self,
            off,
            need,
            len,
        })
    }

    /// Sends one frame, waiting for room until `deadline` (forever if `None`).
    ///
    /// # Errors
    /// As [`Producer::claim_until`].
    pub fn send_until(
        &mut self,
        frame: &[u8],
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<(), SendError> {
        let (off, need) = self.reserve_until(frame.len(), deadline, interrupt)?;
        let at = self.lay_out(off, need, frame.len());
        self.ring.write_bytes(at, frame);
        self.publish(need);
        Ok(())
    }

    fn reserve_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<(u64, u64), SendError> {
        match self.reserve(len) {
            Ok(r) => return Ok(r),
            Err(TrySendError::Full) => {}
            Err(e) => return Err(blocking(e)),
        }
        let ctl = self.ctl;
        // SAFETY: as in `ctl()`; a copy of the pointer lets the closure borrow
        // `self` mutably while the doorbell is borrowed from the mapping.
        let writable = unsafe { &ctl.as_ref().writable };
        let r = writable.wait(deadline, interrupt, || match self.reserve(len) {
            Err(TrySendError::Full) => None,
            other => Some(other),
        });
        match r {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(blocking(e)),
            Err(WaitError::Timeout) => Err(SendError::Timeout),
            Err(WaitError::Interrupted) => Err(SendError::Interrupted),
        }
    }
}

/// The blocking error for a non-blocking one that waiting cannot cure.
/// `Full` never reaches here: the blocking calls wait it out.
fn blocking(e: TrySendError) -> SendError {
    match e {
        TrySendError::Disconnected => SendError::Disconnected,
        TrySendError::TooLarge { len, max } => SendError::TooLarge { len, max },
        TrySendError::Corrupt(w) => SendError::Corrupt(w),
        TrySendError::Full => SendError::Corrupt("full after waiting for room"),
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if release(&self.ctl().ends.producer, self.me) {
            // Wake a consumer sleeping on an empty ring: it now sees end of file.
            self.ctl().readable.notify();
        }
    }
}

/// Room for one frame, claimed by [`Producer::try_claim`]: write the payload in
/// place, then [`commit`](Claim::commit) it.
#[derive(Debug)]
pub struct Claim<'a> {
    producer: &'a mut Producer,
    off: u64,
    need: u64,
    len: usize,
}

impl Claim<'_> {
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

    /// The claimed payload bytes, to write in place (contents unspecified).
    #[cfg(not(loom))]
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let at = self.payload_offset();
        debug_assert!(at + self.len as u64 <= self.producer.capacity);
        // SAFETY:
        // - `at .. at + len` lies inside the ring: `reserve` placed the record
        //   before the end of the ring (wrapping with a PAD when needed);
        // - those bytes lie between tail and head + capacity, which the protocol
        //   reserves to the producer: no other process reads or writes them
        //   until `commit` publishes them;
        // - the slice borrows `self` mutably, so it cannot outlive the claim.
        unsafe { core::slice::from_raw_parts_mut(self.producer.ring.byte_ptr(at), self.len) }
    }

    /// Copies `src` into the claimed payload at `pos` (`pos` a multiple of 8).
    ///
    /// # Panics
    /// If `pos` is not a multiple of 8 or `pos + src.len()` exceeds the claim.
    #[inline]
    pub fn write_at(&mut self, pos: usize, src: &[u8]) {
        assert!(
            pos.is_multiple_of(8) && pos + src.len() <= self.len,
            "write outside the claim"
        );
        let at = self.payload_offset() + pos as u64;
        self.producer.ring.write_bytes(at, src);
    }

    fn payload_offset(&self) -> u64 {
        let rec = record_len(self.len as u64);
        if self.need > rec {
            HEADER
        } else {
            self.off + HEADER
        }
    }

    /// Publishes the frame.
    #[inline]
    pub fn commit(self) {
        let p = self.producer;
        p.lay_out(self.off, self.need, self.len);
        p.publish(self.need);
    }
}
