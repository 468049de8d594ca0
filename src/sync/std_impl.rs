//! Real atomics, cells and the real shared futex.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

pub use core::sync::atomic::{fence, Ordering};

macro_rules! atomic {
    ($name:ident, $raw:ty, $int:ty) => {
        /// `#[repr(transparent)]` over the std atomic of the same name; the only
        /// way the rest of the crate names it (loom swaps in its own).
        #[derive(Debug, Default)]
        #[repr(transparent)]
        pub struct $name($raw);

        impl $name {
            /// A new atomic holding `v`.
            #[inline(always)]
            pub const fn new(v: $int) -> Self {
                Self(<$raw>::new(v))
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn store(&self, v: $int, order: Ordering) {
                self.0.store(v, order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn swap(&self, v: $int, order: Ordering) -> $int {
                self.0.swap(v, order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_add(v, order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_sub(v, order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_or(v, order)
            }
            /// See the std method of the same name.
            #[inline(always)]
            pub fn fetch_and(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_and(v, order)
            }
        }
    };
}

atomic!(AtomicU32, core::sync::atomic::AtomicU32, u32);
atomic!(AtomicU64, core::sync::atomic::AtomicU64, u64);

/// Spin and scheduling hints.
pub mod hint {
    pub use core::hint::spin_loop;
    pub use std::thread::yield_now;
}

/// `UnsafeCell` with loom's closure API, so algorithm code builds both ways.
pub mod cell {
    /// A `#[repr(transparent)]` wrapper of `core::cell::UnsafeCell`.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        pub const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable raw pointer to the contents.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A 32-bit futex word that lives in shared memory.
///
/// # Layout
/// Exactly one `u32` (`#[repr(transparent)]` over `AtomicU32`), so it can sit in
/// the segment. Waits and wakes are **shared** futex operations (no
/// `FUTEX_PRIVATE_FLAG`), so a wake from another process reaches the sleeper.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct FutexWord(core::sync::atomic::AtomicU32);

impl FutexWord {
    /// A word holding `v`.
    pub const fn new(v: u32) -> Self {
        Self(core::sync::atomic::AtomicU32::new(v))
    }

    /// Loads the word.
    #[inline]
    pub fn load(&self, order: Ordering) -> u32 {
        self.0.load(order)
    }

    /// Stores the word.
    #[inline]
    pub fn store(&self, v: u32, order: Ordering) {
        self.0.store(v, order)
    }

    /// Adds to the word (wrapping), returning the previous value.
    #[inline]
    pub fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        self.0.fetch_add(v, order)
    }

    /// Sleeps while the word equals `expected`, until woken, until `deadline`
    /// (absolute, `CLOCK_MONOTONIC`), or spuriously. Callers re-check their
    /// condition in a loop; see [`crate::futex::wait`].
    #[inline]
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) {
        crate::futex::linux::wait(&self.0, expected, deadline)
    }

    /// Wakes every sleeper on this word, in any process.
    #[inline]
    pub fn wake_all(&self) {
        crate::futex::linux::wake(&self.0, i32::MAX as u32)
    }
}
