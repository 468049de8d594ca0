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
