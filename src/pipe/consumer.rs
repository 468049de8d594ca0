//! The consumer end of a pipe.

use core::ptr::NonNull;
use std::time::Instant;

use super::error::{AttachError, RecvError, TryRecvError};
use super::{
    attach, end, max_frame, positions_ok, record_len, release, PipeCtl, Ring, BAD_POSITIONS,
    HEADER, KIND_DATA, KIND_PAD,
};
use crate::futex::WaitError;
use crate::sync::{crash, CrashPoint, Ordering};

/// The consumer end of a pipe: the only writer of `head`.
///
/// `Send` but not `Sync`, like [`super::Producer`]. Dropping it detaches.
///
/// End of file ([`TryRecvError::Disconnected`]) follows a Unix FIFO: it
/// comes once everything in the ring is read, no producer is attached, and
/// one was attached at some point since this consumer attached (see
/// [`super::end`]). Attached while no producer is, it reads what an earlier
/// producer left and then waits for the next one.
#[derive(Debug)]
pub struct Consumer {
    ctl: NonNull<PipeCtl>,
    ring: Ring,
    me: u16,
    capacity: u64,
    max_frame: u64,
    /// Our copy of `ctl.head`; we are its only writer.
    head: u64,
    /// Last `tail` we read; refreshed only when the ring looks empty.
    cached_tail: u64,
    /// The producer word's attach count before the first producer we read
    /// from ([`end::epoch_at_attach`]); end of file needs a later one gone.
    epoch: u64,
    /// Set once the shared state was found inconsistent.
    poisoned: Option<&'static str>,
}

// SAFETY: as for `Producer`: the mapping outlives us by `attach`'s contract and
// nothing here is tied to a thread.
unsafe impl Send for Consumer {}

/// Where the next frame is: payload offset and length, and the record's size.
#[derive(Clone, Copy)]
struct Next {
    at: u64,
    len: usize,
    /// Bytes to release after reading (PAD records before it included).
    advance: u64,
}

impl Consumer {
    /// Attaches as the consumer of the pipe `ctl`, with owner tag `me`.
    ///
    /// Whether a producer is attached at this moment decides when this
    /// consumer sees end of file (see [`super::end`]).
    ///
    /// # Safety
    /// As [`super::Producer::attach`].
    ///
    /// # Errors
    /// [`AttachError::Busy`] if another peer is the consumer;
    /// [`AttachError::Corrupt`] if the positions are inconsistent.
    pub unsafe fn attach(ctl: NonNull<PipeCtl>, ring: Ring, me: u16) -> Result<Self, AttachError> {
        // SAFETY: as the caller guarantees.
        unsafe { Self::attach_since(ctl, ring, me, None) }
    }

    /// As [`attach`](Self::attach), but with `mark` (from
    /// [`PipeCtl::producers_mark`], read earlier) every producer that attached
    /// since the mark is one this consumer reads from: its departure is end of
    /// file (once the ring is drained) even if it left before this attach.
    /// This is what a pair of ends made together wants (`multiprocessing`'s
    /// `Pipe()`): the writer may come and go before the reader is first used.
    ///
    /// A `mark` from later than now (it is only compared, never trusted for
    /// memory) makes end of file come as soon as no producer is attached.
    ///
    /// # Safety
    /// As [`attach`](Self::attach).
    ///
    /// # Errors
    /// As [`attach`](Self::attach).
    pub unsafe fn attach_since(
        ctl: NonNull<PipeCtl>,
        ring: Ring,
        me: u16,
        mark: Option<u64>,
    ) -> Result<Self, AttachError> {
        // SAFETY: the caller guarantees `ctl` is valid while we use it.
        let c = unsafe { ctl.as_ref() };
        attach(&c.ends.consumer, me)?;
        // Acquire: pairs with the Release detach of a producer that left
        // before us, so its departure is counted in the epoch (it is not one
        // we read from). A producer attaching concurrently gives the same
        // epoch whether this load sees it or not; one detaching concurrently
        // is either seen attached (its departure is our end of file) or seen
        // gone (we wait for the next): either order is a real one. A `mark`
        // was such a load, made earlier.
        let epoch = match mark {
            Some(m) => m,
            None => end::epoch_at_attach(c.ends.producer.load(Ordering::Acquire)),
        };
        // Relaxed: the attach CAS's Acquire made the previous consumer's last
        // head store visible, and only consumers write `head`.
        let head = c.head.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store of tail.
        let tail = c.tail.load(Ordering::Acquire);
        let capacity = ring.capacity;
        if !positions_ok(tail, head, capacity) {
            release(&c.ends.consumer, me);
            return Err(AttachError::Corrupt(BAD_POSITIONS));
        }
        Ok(Self {
            ctl,
            ring,
            me,
            capacity,
            max_frame: max_frame(capacity),
            head,
            cached_tail: tail,
            epoch,
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

    /// Largest frame this pipe carries.
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.max_frame as usize
    }

    fn corrupt(&mut self, what: &'static str) -> TryRecvError {
        self.poisoned = Some(what);
        TryRecvError::Corrupt(what)
    }

    /// Finds the next frame without consuming it.
    #[inline]
    fn peek(&mut self) -> Result<Next, TryRecvError> {
        if let Some(what) = self.poisoned {
            return Err(TryRecvError::Corrupt(what));
        }
        match self.peek_at(self.head, true) {
            Ok(Some(next)) => Ok(next),
            Ok(None) => Err(TryRecvError::Empty),
            Err(e) => Err(e),
        }
    }

    /// Finds the frame whose record (or the PAD before it) starts at
    /// `start`, at or past `head` (a batch's frames read but not yet
    /// released come before it). `advance` counts from `head`. With
    /// `refresh` false, `tail` is not re-read: `None` once the cached one
    /// is reached.
    #[inline(always)]
    fn peek_at(&mut self, start: u64, refresh: bool) -> Result<Option<Next>, TryRecvError> {
        let mut pos = start;
        loop {
            if pos == self.cached_tail {
                if !refresh {
                    return Ok(None);
                }
                self.refresh_tail(pos)?;
            }
            let off = pos & (self.capacity - 1);
            let (len, kind) = self.ring.read_header(off);
            let avail = self.cached_tail - pos;
            match kind {
                KIND_DATA => {
                    let rec = record_len(u64::from(len));
                    if u64::from(len) > self.max_frame || rec > avail || off + rec > self.capacity {
                        return Err(
                            self.corrupt("frame length runs past the published data or the ring")
                        );
                    }
                    return Ok(Some(Next {
                        at: off + HEADER,
                        len: len as usize,
                        advance: pos + rec - self.head,
                    }));
                }
                KIND_PAD => {
                    let rec = HEADER + u64::from(len);
                    if off + rec != self.capacity || rec >= avail || pos != start {
                        return Err(self.corrupt("padding record does not end at the ring's end"));
                    }
                    pos += rec;
                }
                _ => return Err(self.corrupt("unknown record kind")),
            }
        }
    }

    /// Re-reads `tail` when everything up to `pos` has been seen. Returns
    /// `Empty` or `Disconnected` if there is still nothing: `Disconnected`
    /// when no producer is attached and one attached after our epoch (the
    /// rule in [`super::end`]); `Empty` while one is attached, or none has
    /// come since we attached.
    #[cold]
    #[inline(never)]
    fn refresh_tail(&mut self, pos: u64) -> Result<(), TryRecvError> {
        // Acquire: pairs with the Release store of tail in `Producer::publish`,
        // making the records up to it visible.
        let tail = self.ctl().tail.load(Ordering::Acquire);
        self.check_tail(tail)?;
        self.cached_tail = tail;
        if tail != pos {
            return Ok(());
        }
        // Acquire: pairs with the producer's Release detach, which comes after
        // its last tail store.
        let w = self.ctl().ends.producer.load(Ordering::Acquire);
        if !end::left_since(w, self.epoch) {
            return Err(TryRecvError::Empty);
        }
        // A producer we read from left, and none is attached. Re-read tail:
        // frames published just before leaving must be read before we report
        // end of file. (If a new producer attached meanwhile and published,
        // we read its frames; if the tail is unchanged, end of file is true
        // as of the load of `w`.)
        // Acquire: as above.
        let tail = self.ctl().tail.load(Ordering::Acquire);
        self.check_tail(tail)?;
        self.cached_tail = tail;
        if tail != pos {
            return Ok(());
        }
        Err(TryRecvError::Disconnected)
    }

    /// True when a receive would not find the pipe empty right now: a frame
    /// is published, or end of file, or the pipe is corrupt. Reads the
    /// shared words and changes nothing: a select's readiness check.
    pub fn is_readable(&self) -> bool {
        if self.poisoned.is_some() {
            return true;
        }
        // Acquire: pairs with the Release store of tail in `Producer::publish`.
        let tail = self.ctl().tail.load(Ordering::Acquire);
        tail != self.head
            // Acquire: pairs with the producer's Release detach.
            || end::left_since(self.ctl().ends.producer.load(Ordering::Acquire), self.epoch)
    }

    fn check_tail(&mut self, tail: u64) -> Result<(), TryRecvError> {
        if tail < self.head || tail - self.head > self.capacity || !tail.is_multiple_of(8) {
            return Err(self.corrupt("tail is behind head or a capacity ahead of it"));
        }
        Ok(())
    }

    /// Releases the frame's bytes to the producer and wakes it if it sleeps.
    #[inline(always)]
    fn release(&mut self, advance: u64) {
        if crash::hit(CrashPoint::PipeRead) {
            return;
        }
        self.head += advance;
        // Release: hands the bytes back only after we finished reading them;
        // pairs with the Acquire load of head in `Producer::refresh_head`.
        self.ctl().head.store(self.head, Ordering::Release);
        if crash::hit(CrashPoint::PipeReleased) {
            return;
        }
        self.ctl().writable.notify();
    }

    /// Runs `f` on the next frame, in place, then releases it.
    ///
    /// Under `--cfg loom` the frame is copied out first (loom tracks the ring
    /// word by word and cannot lend a slice of it).
    ///
    /// # Errors
    /// `Empty` (try again later; also while no producer has attached since
    /// this consumer did), `Disconnected` (end of file: a producer attached
    /// since this consumer did has gone, none is attached, and all was read;
    /// see [`super::end`]), `Corrupt`.
    #[inline]
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let next = self.peek()?;
        let r = self.call_with(next, f);
        self.release(next.advance);
        Ok(r)
    }

    /// Runs `f` on every frame readable now, up to `max` of them, in place
    /// and in order, then releases them together: at most one load of
    /// `tail` (when the cached one is used up), one store of `head`
    /// and one check for a sleeping producer for the whole batch, instead of
    /// one of each per frame. Returns how many frames `f` saw (at least 1;
    /// 0 only for `max == 0`).
    ///
    /// # Errors
    /// As [`Consumer::try_recv_with`], when there is no first frame. A
    /// corrupt record met after the first frame ends the batch (the frames
    /// before it are released), and the next call reports it.
    #[inline]
    pub fn try_recv_batch_with(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let seen = self.cached_tail;
        let first = self.peek()?;
        self.call_with(first, &mut f);
        let (mut advance, mut n) = (first.advance, 1);
        // One load of `tail` per batch: by `peek` above if it found nothing
        // cached, else at most once below.
        let mut refreshed = self.cached_tail != seen;
        while n < max {
            let seen = self.cached_tail;
            match self.peek_at(self.head + advance, !refreshed) {
                Ok(Some(next)) => {
                    self.call_with(next, &mut f);
                    advance = next.advance;
                    n += 1;
                    refreshed |= self.cached_tail != seen;
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.release(advance);
        Ok(n)
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn call_with<R>(&self, next: Next, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY:
        // - `peek` checked `at + len <= capacity`, so the bytes are in the ring;
        // - they lie between head and the tail we loaded with Acquire, so the
        //   producer finished writing them and will not touch them until we
        //   publish a head past them, which happens after `f` returns;
        // - the slice does not escape `f`.
        let bytes = unsafe { core::slice::from_raw_parts(self.ring.byte_ptr(next.at), next.len) };
        f(bytes)
    }

    #[cfg(loom)]
    fn call_with<R>(&self, next: Next, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = vec![0u8; next.len];
        self.ring.read_bytes(next.at, &mut buf);
        f(&buf)
    }

    /// Copies the next frame into `buf` (cleared first).
    ///
    /// # Errors
    /// As [`Consumer::try_recv_with`].
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        let next = self.peek()?;
        buf.clear();
        buf.resize(next.len, 0);
        self.ring.read_bytes(next.at, buf);
        self.release(next.advance);
        Ok(next.len)
    }

    /// Waits until a frame is readable (or end of file), until `deadline`.
    fn wait_readable(
        &mut self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<Next, RecvError> {
        match self.peek() {
            Ok(n) => return Ok(n),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(blocking(e)),
        }
        let ctl = self.ctl;
        // SAFETY: as in `ctl()`; a copy of the pointer lets the closure borrow
        // `self` mutably while the doorbell is borrowed from the mapping.
        let readable = unsafe { &ctl.as_ref().readable };
        let r = readable.wait(deadline, interrupt, || match self.peek() {
            Err(TryRecvError::Empty) => None,
            other => Some(other),
        });
        match r {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(blocking(e)),
            Err(WaitError::Timeout) => Err(RecvError::Timeout),
            Err(WaitError::Interrupted) => Err(RecvError::Interrupted),
        }
    }

    /// Waits for the next frame until `deadline` (forever if `None`), runs `f`
    /// on it in place, and releases it.
    ///
    /// Waits, like a FIFO reader, also while no producer has attached since
    /// this consumer did; a producer's attach alone does not wake it (its
    /// first publish or its departure does).
    ///
    /// # Errors
    /// `Timeout`, `Interrupted`, `Disconnected` (end of file, as in
    /// [`Consumer::try_recv_with`]), `Corrupt`.
    pub fn recv_with_until<R>(
        &mut self,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        let next = self.wait_readable(deadline, interrupt)?;
        let r = self.call_with(next, f);
        self.release(next.advance);
        Ok(r)
    }
}

/// The blocking error for a non-blocking one that waiting cannot cure.
/// `Empty` never reaches here: the blocking calls wait it out.
fn blocking(e: TryRecvError) -> RecvError {
    match e {
        TryRecvError::Disconnected => RecvError::Disconnected,
        TryRecvError::Corrupt(w) => RecvError::Corrupt(w),
        TryRecvError::Empty => RecvError::Corrupt("empty after waiting for a frame"),
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if release(&self.ctl().ends.consumer, self.me) {
            // Wake a producer sleeping on a full ring: it now sees Disconnected.
            self.ctl().writable.notify();
        }
    }
}
