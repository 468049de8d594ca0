//! A value's or array's control block: its immutable parameters, the state
//! word, the two doorbells, and the daemon's recovery of a dead writer.

use super::{body_len, check_params, copies, state, stride, ElemType, SEQLOCK_MAGIC};
use crate::futex::Doorbell;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::util::Line;

/// Immutable parameters, written by the daemon at creation.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Meta {
    /// [`SEQLOCK_MAGIC`].
    pub magic: AtomicU32,
    /// The [`ElemType`] code.
    pub elem: AtomicU32,
    /// Number of elements (1 for a value).
    pub len: AtomicU64,
    /// Distance in bytes from the start of one copy to the next (a multiple
    /// of 128).
    pub stride: AtomicU64,
    /// Number of copies ([`copies`]).
    pub copies: AtomicU64,
}

/// A value's or array's control block; copy `i` follows at
/// `CTL_SIZE + i * stride` for `i` below [`copies`].
///
/// # Layout
/// | line | contents | written by |
/// |---|---|---|
/// | 0 | [`Meta`] | the daemon, at creation |
/// | 1 | `state` (see [`state`]) | writers, the daemon's recovery |
/// | 2 | `changed`: [`Doorbell`] that `wait_changed` sleeps on | waiters, writers |
/// | 3 | `unlocked`: [`Doorbell`] that writers wait for the lock on | writers |
#[derive(Debug, Default)]
#[repr(C)]
pub struct SeqlockCtl {
    /// Immutable parameters.
    pub meta: Line<Meta>,
    /// `gen | busy | owner`.
    pub state: Line<AtomicU64>,
    /// Rung after every publish.
    pub changed: Line<Doorbell>,
    /// Rung when the writer lock is released.
    pub unlocked: Line<Doorbell>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SeqlockCtl>() as u64 == super::CTL_SIZE);
    assert!(align_of::<SeqlockCtl>() == 128);
    assert!(size_of::<Meta>() == 32);
    assert!(offset_of!(SeqlockCtl, state) == 128);
    assert!(offset_of!(SeqlockCtl, changed) == 256);
    assert!(offset_of!(SeqlockCtl, unlocked) == 384);
};

impl SeqlockCtl {
    /// Initialises a zeroed control block (daemon only, before the directory
    /// entry is published). Generation 0, copy 0 all zero: the value is 0.
    pub fn init(&self, t: ElemType, len: u64) {
        // Relaxed: published by the Release store of the directory entry.
        self.meta.elem.store(t.code(), Ordering::Relaxed);
        self.meta.len.store(len, Ordering::Relaxed);
        self.meta.stride.store(stride(t, len), Ordering::Relaxed);
        self.meta.copies.store(copies(t, len), Ordering::Relaxed);
        self.meta.magic.store(SEQLOCK_MAGIC, Ordering::Relaxed);
    }

    /// Checks the immutable parameters against the directory's (`elem`,
    /// `len`) and the body's length.
    ///
    /// # Errors
    /// The first inconsistency.
    pub fn check(&self, elem: u64, len: u64, body: u64) -> Result<ElemType, &'static str> {
        // Relaxed: immutable since the Release publication of the entry.
        if self.meta.magic.load(Ordering::Relaxed) != SEQLOCK_MAGIC {
            return Err("bad magic in the value's control block");
        }
        let t = check_params(elem, len).map_err(|_| "bad element type or length in directory")?;
        if u64::from(self.meta.elem.load(Ordering::Relaxed)) != elem
            || self.meta.len.load(Ordering::Relaxed) != len
        {
            return Err("element type or length in the control block disagrees with the directory");
        }
        if self.meta.stride.load(Ordering::Relaxed) != stride(t, len) {
            return Err("copy stride in the control block is wrong");
        }
        if self.meta.copies.load(Ordering::Relaxed) != copies(t, len) {
            return Err("copy count in the control block is wrong");
        }
        if body < body_len(t, len) {
            return Err("copies extend past the channel's allocation");
        }
        Ok(t)
    }

    /// The current generation (Relaxed; for listings).
    pub fn generation(&self) -> u64 {
        // Relaxed: a snapshot.
        state::gen(self.state.load(Ordering::Relaxed))
    }

    /// The owner tag of the writer holding the lock, 0 if none (for listings).
    pub fn writer(&self) -> u16 {
        // Relaxed: a snapshot.
        let s = self.state.load(Ordering::Relaxed);
        if state::busy(s) {
            state::owner(s)
        } else {
            0
        }
    }

    /// Daemon recovery after the death of peer `owner` is confirmed: if it
    /// holds the writer lock, clears `busy` **without** bumping the
    /// generation (its half-written copy is never published). Then notifies
    /// both doorbells whatever it found: the peer may have died between its
    /// publish and its notifies, with a writer waiting for the lock or a
    /// `wait_changed` caller asleep (a notify costs no system call when
    /// nobody sleeps). Returns whether it cleared a lock.
    pub fn recover_owner(&self, owner: u16) -> bool {
        debug_assert!(owner != 0);
        // Relaxed: only a starting guess for the CAS.
        let mut s = self.state.load(Ordering::Relaxed);
        let cleared = loop {
            if !state::busy(s) || state::owner(s) != owner {
                break false;
            }
            // Release: not needed by readers (they never read the dead
            // writer's copy), but keeps the daemon's clearing after anything it
            // did before; the next writer's Acquire CAS pairs with it.
            match self.state.compare_exchange_weak(
                s,
                state::unlocked(s),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break true,
                Err(now) => s = now,
            }
        };
        self.changed.notify();
        self.unlocked.notify();
        cleared
    }

    /// Wakes every sleeper (daemon shutdown).
    pub fn wake_all(&self) {
        self.changed.ring();
        self.unlocked.ring();
    }
}
