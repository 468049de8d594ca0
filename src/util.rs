//! Small layout and spinning helpers, and the copies into and out of
//! shared memory.

use crate::sync::cell::UnsafeCell;

/// Aligns `T` to its own 128-byte line, identically on every target.
///
/// # Layout
/// `#[repr(C, align(128))]`: the size is `size_of::<T>()` rounded up to 128.
/// Unlike `crossbeam_utils::CachePadded`, whose alignment varies with the target
/// architecture, this is part of the segment ABI and never changes.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct Line<T>(pub T);

impl<T> core::ops::Deref for Line<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Rounds `v` up to a multiple of 8.
#[inline(always)]
pub const fn round8(v: u64) -> u64 {
    (v + 7) & !7
}

/// Largest copy into shared memory that [`copy_to_shared`] makes with 8-byte
/// stores; longer ones go through `memcpy`, whose wide stores move bulk data
/// faster (one-way 16 KiB frames 0.75 M/s against 0.64–0.67 M/s with word
/// stores; 4 KiB the same either way).
pub const WORD_COPY_MAX: usize = 1024;

/// Copies `src` into the words that start at `words`: a channel's payload
/// in shared memory that the other side will read. Up to [`WORD_COPY_MAX`]
/// bytes go as aligned 8-byte stores, the last partial word byte by byte.
/// Under `--cfg loom` each word is written through its loom cell, so loom
/// checks that the protocol reserves it to the writer.
///
/// Why not `memcpy`: a payload starts 8 bytes into its record or cell
/// (after the length word), so the 16- and 32-byte stores of `memcpy`
/// straddle cache lines, and a store that straddles a line must hold both
/// lines at once. With the other process reading those lines (or the next
/// record's), that is what set the pipe's per-frame rate. Measured on the
/// 2-vCPU development machine (AMD EPYC), the two builds alternating
/// (`shmbus-bench --filter shmbus/pipe-tput/64,shmbus/pipe-rt-busy/64,...`),
/// vCPUs close: one-way 64-byte frames 25.9–31.3 M/s against 18.3–18.8 M/s,
/// through the batch forms 106–111 M/s against 56–57 M/s; far apart 5.9–7.1
/// M/s against 4.3–4.5 M/s. (The busy round trip made 170–181 against
/// 190–201 ns in the same runs, 170–211 ns in a six-round run afterwards.)
/// 56-byte frames, whose payload fills the rest of one line, gain less
/// (6.7 → 7.3 M/s far apart). The pipe's ring and the queue's cells both
/// copy through here.
///
/// The stores are volatile so that the compiler does not merge them back
/// into wide ones (a plain word loop compiles to the same vector code as
/// `memcpy`).
///
/// # Safety
/// - `words` points to at least `src.len().div_ceil(8)` consecutive cells,
///   valid for writes;
/// - no other thread or process reads or writes the bytes written (the
///   first `src.len()`) during the copy: the channel's protocol reserves
///   them to the caller;
/// - `src` does not overlap them (it is the caller's private memory).
#[inline(always)]
pub unsafe fn copy_to_shared(words: *const UnsafeCell<u64>, src: &[u8]) {
    #[cfg(not(loom))]
    {
        // `UnsafeCell<u64>` is `repr(transparent)` over the `u64`, and
        // writing through a shared pointer to it is what it is for.
        let dst = words.cast_mut().cast::<u8>();
        if src.len() > WORD_COPY_MAX {
            // SAFETY: `dst` is valid for `src.len()` bytes and does not
            // overlap `src`, as the caller guarantees.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
            return;
        }
        let mut chunks = src.chunks_exact(8);
        let mut k = 0;
        for c in &mut chunks {
            let w = u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
            // SAFETY: word `k` covers bytes `8k .. 8k + 8 <= src.len()`, in
            // a cell the caller vouches for; cells of `u64` are aligned.
            unsafe { dst.cast::<u64>().add(k).write_volatile(w) };
            k += 1;
        }
        let rest = chunks.remainder();
        // SAFETY: the last `rest.len() < 8` bytes of the destination, inside
        // the `src.len()` bytes the caller vouches for, and within one
        // aligned word (so no store straddles a line).
        unsafe { core::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(8 * k), rest.len()) };
    }
    #[cfg(loom)]
    for (k, chunk) in src.chunks(8).enumerate() {
        // SAFETY: cell `k < src.len().div_ceil(8)`, valid by the caller.
        let cell = unsafe { &*words.add(k) };
        cell.with_mut(|p| {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: this word is reserved to the caller by the protocol.
            unsafe { p.write(u64::from_ne_bytes(b)) }
        });
    }
}

/// Copies `dst.len()` bytes out of the words that start at `words` (with
/// `memcpy`; under `--cfg loom`, word by word through the loom cells).
///
/// # Safety
/// - `words` points to at least `dst.len().div_ceil(8)` consecutive cells,
///   valid for reads;
/// - no other thread or process writes them during the copy (the channel's
///   protocol reserves them to the caller).
#[inline(always)]
pub unsafe fn copy_from_shared(words: *const UnsafeCell<u64>, dst: &mut [u8]) {
    #[cfg(not(loom))]
    // SAFETY: the first `dst.len()` bytes of the cells are valid and not
    // written meanwhile, as the caller guarantees; `dst` is private memory,
    // so the two cannot overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(words.cast::<u8>(), dst.as_mut_ptr(), dst.len())
    };
    #[cfg(loom)]
    for (k, chunk) in dst.chunks_mut(8).enumerate() {
        // SAFETY: cell `k < dst.len().div_ceil(8)`, valid by the caller.
        let cell = unsafe { &*words.add(k) };
        // SAFETY: this word is reserved to the caller by the protocol.
        let w = cell.with(|p| unsafe { p.read() });
        chunk.copy_from_slice(&w.to_ne_bytes()[..chunk.len()]);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn copy_to_shared_copies_exactly_the_bytes() {
        for len in (0..=40).chain([WORD_COPY_MAX - 1, WORD_COPY_MAX, WORD_COPY_MAX + 9]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            // Cells with guard bytes after the copy.
            let guard = u64::from_ne_bytes([0xEE; 8]);
            let dst: Vec<UnsafeCell<u64>> =
                (0..len / 8 + 3).map(|_| UnsafeCell::new(guard)).collect();
            // SAFETY: `dst` has `len / 8 + 3` cells and is private.
            unsafe { copy_to_shared(dst.as_ptr(), &src) };
            let mut bytes = vec![0u8; dst.len() * 8];
            // SAFETY: as above; nothing writes `dst` meanwhile.
            unsafe { copy_from_shared(dst.as_ptr(), &mut bytes) };
            assert_eq!(&bytes[..len], &src[..], "len {len}");
            assert!(
                bytes[len..].iter().all(|&b| b == 0xEE),
                "len {len}: wrote past the end"
            );
        }
    }
}
