//! Values and arrays on the heap, for tests, benchmarks and loom models.

use core::ptr::NonNull;

use super::{check_params, copies, copy_count_ok, ElemType, Element, Seqlock, SeqlockCtl};
use crate::sync::AtomicU64;

/// A value or array on the heap instead of in a segment: for tests, benchmarks
/// and loom models. Works under `--cfg loom` (construct it inside
/// `loom::model`).
///
/// # Examples
/// ```
/// use shmbus::seqlock::HeapSeqlock;
///
/// let a = HeapSeqlock::new::<i32>(3);
/// // SAFETY: `a` outlives `s`.
/// let s = unsafe { a.handle() };
/// let mut w = s.try_lock(1).unwrap();
/// w.write(&[1, 2, 3]);
/// assert_eq!(w.publish(), 1);
/// let mut out = [0; 3];
/// assert_eq!(s.read_into(&mut out), 1);
/// assert_eq!(out, [1, 2, 3]);
/// ```
#[derive(Debug)]
pub struct HeapSeqlock {
    ctl: Box<SeqlockCtl>,
    /// The copies, `words` words each, one after the other.
    data: Box<[AtomicU64]>,
    copies: u64,
    elem: ElemType,
    len: u64,
}

impl HeapSeqlock {
    /// A fresh array of `len` elements of `T`, all zero.
    ///
    /// # Panics
    /// If `len` is 0 or over [`MAX_LEN`](super::MAX_LEN).
    pub fn new<T: Element>(len: u64) -> Self {
        Self::with_copies::<T>(len, copies(T::TYPE, len))
    }

    /// The same with `n` copies instead of [`copies`]'s number: fewer copies
    /// let a loom model or a stress test rewrite the copy a reader reads
    /// within a few writes.
    ///
    /// # Panics
    /// If `len` is 0 or over [`MAX_LEN`](super::MAX_LEN), or `n` is not a power of two from 2
    /// to [`MAX_COPIES`](super::MAX_COPIES).
    pub fn with_copies<T: Element>(len: u64, n: u64) -> Self {
        if let Err(e) = check_params(u64::from(T::TYPE.code()), len) {
            panic!("{e}");
        }
        assert!(copy_count_ok(n), "{n} copies");
        let ctl = Box::<SeqlockCtl>::default();
        ctl.init(T::TYPE, len);
        let words = T::TYPE.words(len);
        let data = (0..n * words).map(|_| AtomicU64::new(0)).collect();
        Self {
            ctl,
            data,
            copies: n,
            elem: T::TYPE,
            len,
        }
    }

    /// The control block.
    pub fn ctl(&self) -> &SeqlockCtl {
        &self.ctl
    }

    /// A handle to this array.
    ///
    /// # Safety
    /// The handle borrows nothing: `self` must outlive every use of it (and of
    /// its copies), e.g. by keeping `self` in an `Arc` next to the handle.
    pub unsafe fn handle(&self) -> Seqlock {
        let first = NonNull::from(&*self.data).cast::<AtomicU64>();
        let words = self.elem.words(self.len) as usize;
        // SAFETY: the control block and the `copies` copies (`words` atomics
        // each, `words` apart) are boxed in `self`, which the caller keeps
        // alive while the handle is used; `copies` passed `with_copies`'s
        // check; the type and length are the ones `init` stored.
        unsafe {
            Seqlock::new(
                NonNull::from(&*self.ctl),
                first,
                words,
                self.copies,
                self.elem,
                self.len,
            )
        }
    }
}
