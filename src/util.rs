//! Small layout and spinning helpers.

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

/// Copies `src` to `dst`, a channel's payload in shared memory that the
/// other side will read: up to [`WORD_COPY_MAX`] bytes as aligned 8-byte
/// stores, the last partial word byte by byte.
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
/// 190–201 ns in the same runs, 170–211 ns in a six-round run afterwards.) 56-byte frames, whose payload fills the rest
/// of one line, gain less (6.7 → 7.3 M/s far apart). The queue's cells get
/// the same copy.
///
/// The stores are volatile so that the compiler does not merge them back
/// into wide ones (a plain word loop compiles to the same vector code as
/// `memcpy`).
///
/// # Safety
/// - `dst` is 8-byte aligned and valid for writes of `src.len()` bytes;
/// - no other thread or process reads or writes those bytes during the
///   copy (the channel's protocol reserves them to the caller);
/// - `src` does not overlap them (it is the caller's private memory).
#[cfg(not(loom))]
#[inline(always)]
pub unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    debug_assert!((dst as usize).is_multiple_of(8));
    if src.len() > WORD_COPY_MAX {
        // SAFETY: `dst` is valid for `src.len()` bytes and does not overlap
        // `src`, as the caller guarantees.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        return;
    }
    let words = dst.cast::<u64>();
    let mut chunks = src.chunks_exact(8);
    let mut k = 0;
    for c in &mut chunks {
        let w = u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
        // SAFETY: word `k` covers bytes `8k .. 8k + 8 <= src.len()` of `dst`,
        // valid and reserved to us by the caller; `dst` is 8-aligned, so the
        // word is aligned.
        unsafe { words.add(k).write_volatile(w) };
        k += 1;
    }
    let rest = chunks.remainder();
    // SAFETY: the last `rest.len() < 8` bytes of the destination, inside the
    // `src.len()` bytes the caller vouches for, and within one aligned word
    // (so no store straddles a line).
    unsafe { core::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(8 * k), rest.len()) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn copy_to_shared_copies_exactly_the_bytes() {
        for len in (0..=40).chain([WORD_COPY_MAX - 1, WORD_COPY_MAX, WORD_COPY_MAX + 9]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            // Aligned destination with guard bytes after the copy.
            let mut dst = vec![u64::from_ne_bytes([0xEE; 8]); len / 8 + 3];
            // SAFETY: `dst` is 8-aligned, `len + 16` bytes long and private.
            unsafe { copy_to_shared(dst.as_mut_ptr().cast(), &src) };
            // SAFETY: reading the bytes of our own `u64` buffer.
            let bytes =
                unsafe { core::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), dst.len() * 8) };
            assert_eq!(&bytes[..len], &src[..], "len {len}");
            assert!(
                bytes[len..].iter().all(|&b| b == 0xEE),
                "len {len}: wrote past the end"
            );
        }
    }
}
