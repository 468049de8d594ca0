//! Zero-copy puts ([`PutClaim`]) and in-place gets ([`GetClaim`]).

use std::time::Instant;

use super::state::{pack, TOMB};
use super::{GetError, PutError, Queue, TryGetError, TryPutError};
use crate::futex::WaitError;
use crate::sync::{crash, CrashPoint, Ordering, CRASHED};

impl Queue {
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
    // Always inline, as `Queue::try_put`: 137 instead of 97 instructions per
    // 64-byte get through the client's `try_get_with` (callgrind).
    #[inline(always)]
    pub fn try_get_claim(&self) -> Result<GetClaim<'_>, TryGetError> {
        let (i, pos) = self.claim_get()?;
        self.get_claim(i, pos).map_err(TryGetError::Corrupt)
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
}

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
            // Counted as a claim already; now as done.
            self.q.ctl().finish_tombstone();
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
