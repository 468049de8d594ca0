//! Where a queue's cells are, and the copies in and out of them.

use core::ptr::NonNull;

use super::state::pack;
use super::{cell_stride, check_params};
use crate::sync::cell::UnsafeCell;
use crate::sync::{AtomicU64, Ordering};
use crate::util::{copy_from_shared, copy_to_shared};

/// Where a queue's cells are: the state words, the claim notes and the word
/// areas (length word then payload) of every cell, as three strided arrays.
///
/// In a segment the arrays interleave (a cell is state word, claim note,
/// length word, payload); on the heap ([`HeapQueue`](super::HeapQueue)) they are separate, because under
/// loom the state atomics and the payload cells are loom objects, not plain
/// words. Under `--cfg loom` every payload word is a loom `UnsafeCell`, so a
/// write that races a read of the same cell fails the model.
#[derive(Debug, Clone, Copy)]
pub struct Cells {
    pub(super) states: NonNull<u8>,
    /// Claim notes: where a put records, for the daemon, the claim of the
    /// position before its own when the claimer had not tagged the cell
    /// yet (see "Claiming a put" in the module docs). Same stride as
    /// `states`.
    pub(super) notes: NonNull<u8>,
    pub(super) words: NonNull<u8>,
    pub(super) state_stride: usize,
    pub(super) word_stride: usize,
    pub(super) slots: u64,
    pub(super) slot_size: u64,
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
        // SAFETY: the claim note and then the length word follow the state
        // word inside the first cell (`CELL_HEADER` is 24), within the range
        // the caller vouches for.
        let (notes, words) = unsafe { (first.add(8), first.add(16)) };
        Self {
            states: first,
            notes,
            words,
            state_stride: stride,
            word_stride: stride,
            slots,
            slot_size,
        }
    }

    /// Initialises the state words of fresh cells: cell `i` is `(i, 0)`,
    /// its claim note `(0, 0)` (daemon only, before the entry is published).
    pub fn init(&self) {
        for i in 0..self.slots {
            // Relaxed: published by the directory entry's Release store.
            self.state(i).store(pack(i, 0), Ordering::Relaxed);
            self.note(i).store(0, Ordering::Relaxed);
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
    pub(super) fn state(&self, i: u64) -> &AtomicU64 {
        self.atomic(self.states, i)
    }

    /// The claim note of cell `i`: `(pos, k)` once a put saw that peer `k -
    /// 1` had claimed position `pos` of this cell and not yet tagged it
    /// (see "Claiming a put" in the module docs).
    #[inline(always)]
    pub(super) fn note(&self, i: u64) -> &AtomicU64 {
        self.atomic(self.notes, i)
    }

    /// Entry `i` of the strided array of atomic words at `base` (`states`
    /// or `notes`, which share `state_stride`).
    #[inline(always)]
    fn atomic(&self, base: NonNull<u8>, i: u64) -> &AtomicU64 {
        // Every caller passes `pos & (slots - 1)` or a loop index below
        // `slots`; the check stays in release builds because the pointer
        // arithmetic below relies on it and it costs one predictable branch.
        assert!(i < self.slots);
        // SAFETY: `base` is `states` or `notes`, each `slots` entries
        // `state_stride` apart, and `i < slots`, so the word is inside the
        // cells named in `in_segment` (or a heap array of `HeapQueue`),
        // aligned (the stride is a multiple of 8 / of the element size),
        // and only ever accessed atomically; `self` does not outlive the
        // mapping (the constructor's contract).
        unsafe { &*base.as_ptr().add(i as usize * self.state_stride).cast() }
    }

    /// Word `j` of cell `i`'s word area (0 = length, 1.. = payload).
    #[inline(always)]
    pub(super) fn word(&self, i: u64, j: usize) -> *mut UnsafeCell<u64> {
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
    pub(super) fn payload_ptr(&self, i: u64) -> *mut u8 {
        self.word(i, 1).cast()
    }

    /// Writes the length word of cell `i` (which the caller holds).
    #[inline(always)]
    pub(super) fn write_len(&self, i: u64, len: u64) {
        // SAFETY: in bounds (`word`); the cell is claimed by the caller, so no
        // other process touches its words until it publishes.
        unsafe { &*self.word(i, 0) }.with_mut(|p| unsafe { p.write(len) });
    }

    /// Reads the length word of cell `i` (which the caller holds).
    #[inline(always)]
    pub(super) fn read_len(&self, i: u64) -> u64 {
        // SAFETY: as in `write_len`, for a read claim.
        unsafe { &*self.word(i, 0) }.with(|p| unsafe { p.read() })
    }

    /// Copies `src` into the payload of cell `i` at byte `at` (a multiple of
    /// 8), which the caller holds.
    #[inline(always)]
    pub(super) fn write_bytes(&self, i: u64, at: usize, src: &[u8]) {
        assert!(
            i < self.slots && at.is_multiple_of(8) && (at + src.len()) as u64 <= self.slot_size
        );
        // SAFETY: the destination is `src.len()` bytes of cell `i`'s payload
        // from byte `at` (checked above; `at` is a multiple of 8, so they are
        // whole words from word `1 + at / 8`), which the caller's write claim
        // reserves to it; `src` is private memory.
        unsafe { copy_to_shared(self.word(i, 1 + at / 8), src) };
    }

    /// Copies `dst.len()` payload bytes of cell `i` (held by the caller).
    #[inline(always)]
    pub(super) fn read_bytes(&self, i: u64, dst: &mut [u8]) {
        assert!(i < self.slots && dst.len() as u64 <= self.slot_size);
        // SAFETY: the source is the first `dst.len()` bytes of cell `i`'s
        // payload (checked above), from word 1, reserved to the caller's read
        // claim; `dst` is private memory.
        unsafe { copy_from_shared(self.word(i, 1), dst) };
    }
}
