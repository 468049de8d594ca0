//! Where a topic's subscriber entries and slots are, and the copies in and
//! out of the slots.

use core::ptr::NonNull;

use super::{check_params, slot_stride, split_mode, SubEntry, ENTRY_SIZE};
use crate::queue::state::pack;
use crate::sync::{AtomicU64, Ordering};
use crate::util::Line;

/// Where a topic's subscriber entries and slots are: the entries, the slots'
/// state words and the slots' word areas (length word, then payload words),
/// as three strided arrays.
///
/// In a segment the state and word arrays interleave (a slot is state word,
/// length word, payload); on the heap ([`HeapTopic`](super::HeapTopic)) they
/// are separate, as for the queue's [`Cells`](crate::queue::Cells).
#[derive(Debug, Clone, Copy)]
pub struct Ring {
    entries: NonNull<u8>,
    entry_stride: usize,
    states: NonNull<u8>,
    words: NonNull<u8>,
    state_stride: usize,
    word_stride: usize,
    pub(super) slots: u64,
    pub(super) slot_size: u64,
    pub(super) max_subs: u64,
    pub(super) lossy: bool,
}

// SAFETY: the pointers refer to shared memory whose users keep it mapped (the
// constructors' contracts); every word is an atomic.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// The ring of a topic in a segment: `body` is the start of its control
    /// block.
    ///
    /// # Safety
    /// - `body` is 128-byte aligned and points to `body_len(slots, slot_size,
    ///   mode)` bytes that stay mapped while the ring (or anything built on
    ///   it) is used, and that are only ever accessed atomically;
    /// - `check_params(slots, slot_size, mode)` holds.
    pub unsafe fn in_segment(body: NonNull<u8>, slots: u64, slot_size: u64, mode: u64) -> Self {
        debug_assert!(check_params(slots, slot_size, mode).is_ok());
        let (lossy, max_subs) = split_mode(mode);
        let stride = slot_stride(slot_size) as usize;
        // SAFETY: both offsets lie inside the body (`body_len`).
        let (entries, states) = unsafe {
            (
                body.add(super::CTL_SIZE as usize),
                body.add(super::slots_off(max_subs) as usize),
            )
        };
        Self {
            entries,
            entry_stride: ENTRY_SIZE as usize,
            states,
            // SAFETY: the length word follows the state word in the first slot.
            words: unsafe { states.add(8) },
            state_stride: stride,
            word_stride: stride,
            slots,
            slot_size,
            max_subs,
            lossy,
        }
    }

    /// The ring of a [`HeapTopic`](super::HeapTopic).
    pub(super) fn on_heap(
        entries: &[Line<SubEntry>],
        states: &[AtomicU64],
        words: &[AtomicU64],
        per_slot: usize,
        slots: u64,
        slot_size: u64,
        mode: u64,
    ) -> Self {
        let (lossy, max_subs) = split_mode(mode);
        Self {
            entries: NonNull::from(entries).cast(),
            entry_stride: core::mem::size_of::<Line<SubEntry>>(),
            states: NonNull::from(states).cast(),
            words: NonNull::from(words).cast(),
            state_stride: core::mem::size_of::<AtomicU64>(),
            word_stride: per_slot * core::mem::size_of::<AtomicU64>(),
            slots,
            slot_size,
            max_subs,
            lossy,
        }
    }

    /// Initialises fresh slots and entries (daemon only, before the entry is
    /// published): slot `i` is `(i + 1 - slots, 0)`, every entry free.
    pub fn init(&self) {
        for i in 0..self.slots {
            // Relaxed: published by the directory entry's Release store.
            self.state(i).store(
                pack(i.wrapping_add(1).wrapping_sub(self.slots), 0),
                Ordering::Relaxed,
            );
        }
        for k in 0..self.max_subs {
            // Relaxed: as above.
            self.entry(k).owner.store(0, Ordering::Relaxed);
            self.entry(k).cursor.store(0, Ordering::Relaxed);
        }
    }

    /// Number of slots.
    #[inline]
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Payload bytes per slot.
    #[inline]
    pub fn slot_size(&self) -> u64 {
        self.slot_size
    }

    /// Entries in the subscriber table.
    #[inline]
    pub fn max_subscribers(&self) -> u64 {
        self.max_subs
    }

    /// Whether the topic is lossy.
    #[inline]
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// Subscriber entry `k`.
    #[inline(always)]
    pub fn entry(&self, k: u64) -> &SubEntry {
        // The check stays in release builds: the pointer arithmetic relies on
        // it and callers pass loop indices or a stored index.
        assert!(k < self.max_subs);
        // SAFETY: `k < max_subs`, so the entry lies in the table named by the
        // constructor, aligned; only atomics are in it.
        unsafe {
            &*self
                .entries
                .as_ptr()
                .add(k as usize * self.entry_stride)
                .cast()
        }
    }

    /// The state word of slot `i`.
    #[inline(always)]
    pub fn state(&self, i: u64) -> &AtomicU64 {
        assert!(i < self.slots);
        // SAFETY: `i < slots`: inside the slots named by the constructor,
        // 8-byte aligned (strides are multiples of 8), only accessed atomically.
        unsafe {
            &*self
                .states
                .as_ptr()
                .add(i as usize * self.state_stride)
                .cast()
        }
    }

    /// Word `j` of slot `i`'s word area (0 = length, 1.. = payload).
    #[inline(always)]
    fn word(&self, i: u64, j: usize) -> &AtomicU64 {
        debug_assert!(i < self.slots && (j as u64) <= self.slot_size.div_ceil(8));
        let at = i as usize * self.word_stride + j * core::mem::size_of::<AtomicU64>();
        // SAFETY: callers pass `i < slots` (asserted by `state` on every path
        // that computes `i`) and `j <= ceil(slot_size / 8)`, so the word is
        // inside slot `i`'s word area; aligned; only accessed atomically.
        unsafe { &*self.words.as_ptr().add(at).cast() }
    }

    /// Pointer to the first payload byte of slot `i`.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(super) fn payload_ptr(&self, i: u64) -> *const u8 {
        core::ptr::from_ref(self.word(i, 1)).cast()
    }

    /// Writes the length word of slot `i`.
    #[inline(always)]
    pub(super) fn write_len(&self, i: u64, len: u64) {
        // Relaxed: published by the Release store of the slot's state.
        self.word(i, 0).store(len, Ordering::Relaxed);
    }

    /// Reads the length word of slot `i` (may race a writer: check after).
    #[inline(always)]
    pub(super) fn read_len(&self, i: u64) -> u64 {
        // Relaxed: ordered by the caller's Acquire load of the state (and,
        // for racing reads, the fence before its second look).
        self.word(i, 0).load(Ordering::Relaxed)
    }

    /// Copies `src` into the payload of slot `i` at byte `at` (a multiple of
    /// 8) with Relaxed word stores; a partial last word is zero-padded.
    #[inline(always)]
    pub(super) fn write_bytes(&self, i: u64, at: usize, src: &[u8]) {
        assert!(
            i < self.slots && at.is_multiple_of(8) && (at + src.len()) as u64 <= self.slot_size
        );
        let first = 1 + at / 8;
        let mut chunks = src.chunks_exact(8);
        for (k, c) in chunks.by_ref().enumerate() {
            let w = u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
            // Relaxed: published by the Release store of the slot's state;
            // racing readers check the state again after their copy.
            self.word(i, first + k).store(w, Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // Relaxed: as above.
            self.word(i, first + src.len() / 8)
                .store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }

    /// Copies the first `dst.len()` payload bytes of slot `i` with Relaxed
    /// word loads (safe against a racing writer: the caller validates).
    #[inline(always)]
    pub(super) fn read_bytes(&self, i: u64, dst: &mut [u8]) {
        assert!(i < self.slots && dst.len() as u64 <= self.slot_size);
        let last = 1 + dst.len() / 8;
        let mut chunks = dst.chunks_exact_mut(8);
        for (k, c) in chunks.by_ref().enumerate() {
            // Relaxed: see `read_len`.
            c.copy_from_slice(&self.word(i, 1 + k).load(Ordering::Relaxed).to_ne_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            // Relaxed: see `read_len`.
            let w = self.word(i, last).load(Ordering::Relaxed);
            rest.copy_from_slice(&w.to_ne_bytes()[..n]);
        }
    }
}
