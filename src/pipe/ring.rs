//! The ring bytes of a pipe and the record accesses the two ends make.

use core::ptr::NonNull;

use super::{HEADER, MIN_CAPACITY};
use crate::sync::cell::UnsafeCell;
use crate::util::{copy_from_shared, copy_to_shared};

/// The ring bytes, as 8-byte words.
///
/// Under `--cfg loom` each word is a loom `UnsafeCell`, so loom checks that the
/// producer never writes a word the consumer may still read, and vice versa.
/// In real builds the words are plain shared memory; payloads are written
/// with [`crate::util::copy_to_shared`] (word stores) and read with `memcpy`.
#[derive(Debug, Clone, Copy)]
pub struct Ring {
    words: NonNull<UnsafeCell<u64>>,
    pub(super) capacity: u64,
}

impl Ring {
    /// A ring of `capacity` bytes at `words`.
    ///
    /// # Safety
    /// - `words` points to `capacity` bytes, 8-byte aligned, that stay mapped
    ///   and valid for as long as the ring (or anything built on it) is used;
    /// - those bytes are accessed only through the pipe protocol.
    pub unsafe fn new(words: NonNull<UnsafeCell<u64>>, capacity: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= MIN_CAPACITY);
        debug_assert!((words.as_ptr() as usize).is_multiple_of(8));
        Self { words, capacity }
    }

    /// Pointer to the byte at `off`.
    ///
    /// # Safety
    /// `off <= capacity`.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(super) unsafe fn byte_ptr(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.capacity);
        // SAFETY: the caller keeps `off` within the ring's `capacity` bytes, so
        // the result is within (or one past) the allocation named in `new`.
        unsafe { self.words.as_ptr().cast::<u8>().add(off as usize) }
    }

    /// Index of the ring word holding byte `off`, masked into the ring: an
    /// `and` in place of a checked bound (the headers' offsets come from
    /// positions masked the same way, so the mask changes nothing for them).
    #[inline(always)]
    fn word_index(&self, off: u64) -> usize {
        ((off / 8) & (self.capacity / 8 - 1)) as usize
    }

    /// Reads the record header at `off` (8-aligned, `off + 8 <= capacity`).
    #[inline(always)]
    pub(super) fn read_header(&self, off: u64) -> (u32, u32) {
        debug_assert!(off.is_multiple_of(8) && off + HEADER <= self.capacity);
        // SAFETY: the mask keeps the word index below `capacity / 8`, inside
        // the ring named in `new` (for the 8-aligned `off < capacity` the
        // protocol keeps, it is `off / 8` itself).
        let cell = unsafe { &*self.words.as_ptr().add(self.word_index(off)) };
        // SAFETY: the pipe protocol gives the consumer this word (between head
        // and tail) until it publishes a new head, so no write races the read.
        let w = cell.with(|p| unsafe { p.read() });
        let w = u64::from_le(w);
        (w as u32, (w >> 32) as u32)
    }

    /// Writes a record header at `off` (8-aligned, `off + 8 <= capacity`).
    #[inline(always)]
    pub(super) fn write_header(&self, off: u64, len: u32, kind: u32) {
        debug_assert!(off.is_multiple_of(8) && off + HEADER <= self.capacity);
        let w = (u64::from(len) | (u64::from(kind) << 32)).to_le();
        // SAFETY: in bounds by the mask, as in `read_header`.
        let cell = unsafe { &*self.words.as_ptr().add(self.word_index(off)) };
        // SAFETY: the protocol gives the producer this word (between tail and
        // head + capacity) until it publishes a new tail.
        cell.with_mut(|p| unsafe { p.write(w) });
    }

    /// Copies `src` into the ring at `off` (8-aligned, in bounds).
    #[inline(always)]
    pub(super) fn write_bytes(&self, off: u64, src: &[u8]) {
        assert!(off.is_multiple_of(8) && off + src.len() as u64 <= self.capacity);
        // SAFETY: the destination is the `src.len()` bytes at `off`, inside
        // the ring (checked above; `off` is 8-aligned, so they are whole
        // words from word `off / 8`), that the protocol reserves to the
        // producer; `src` is a Rust slice in private memory.
        unsafe { copy_to_shared(self.words.as_ptr().add((off / 8) as usize), src) };
    }

    /// Copies `dst.len()` bytes out of the ring at `off` (8-aligned, in bounds).
    #[inline(always)]
    pub(super) fn read_bytes(&self, off: u64, dst: &mut [u8]) {
        assert!(off.is_multiple_of(8) && off + dst.len() as u64 <= self.capacity);
        // SAFETY: the source is the `dst.len()` bytes at `off`, inside the
        // ring (checked above), from word `off / 8`, reserved to the consumer
        // by the protocol; `dst` is private memory.
        unsafe { copy_from_shared(self.words.as_ptr().add((off / 8) as usize), dst) };
    }
}
