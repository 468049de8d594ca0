//! Real atomics, cells and the real shared futex.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

pub use core::sync::atomic::{fence, Ordering};
pub use std::sync::Mutex;

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

/// Spin, scheduling and cache hints.
pub mod hint {
    pub use core::hint::spin_loop;
    pub use std::thread::yield_now;

    /// Asks the CPU to start fetching the cache line that holds `p`, for
    /// reading, without waiting for it. A hint: it reads no value, cannot
    /// fault, and has no effect on the memory model (loom builds make it a
    /// no-op). Useful where the address of a line that a later load will
    /// need is known before the load can be issued.
    #[inline(always)]
    pub fn prefetch_read<T>(p: *const T) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is
        // in the target's baseline). PREFETCHT0 neither reads a value nor
        // faults, whatever `p` is (an unmapped address is simply not
        // fetched), so no pointer validity is required.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
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
    /// condition in a loop; see [`crate::futex::Doorbell::wait`].
    #[inline]
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) {
        crate::futex::linux::wait(&self.0, expected, deadline)
    }

    /// The std atomic inside, for the futex system calls.
    #[inline]
    pub(crate) fn raw(&self) -> &core::sync::atomic::AtomicU32 {
        &self.0
    }

    /// Wakes every sleeper on this word, in any process.
    #[inline]
    pub fn wake_all(&self) {
        crate::futex::linux::wake(&self.0, i32::MAX as u32)
    }
}

/// Sleeps while every word equals its expected value, until one of them is
/// woken, until `deadline`, a signal, or spuriously: one `futex_waitv(2)`
/// (shared futexes, as [`FutexWord::wait`]). At most
/// [`crate::futex::WAITV_MAX`] words.
///
/// Returns false, without sleeping, when the kernel has no `futex_waitv`
/// (Linux before 5.16) or more words were given than it takes; the caller
/// then falls back (see [`crate::futex::wait_any`]).
#[inline]
pub fn wait_any(words: &[(&FutexWord, u32)], deadline: Option<Instant>) -> bool {
    crate::futex::linux::wait_any(words, deadline)
}

/// Process-wide switch: true once this process registered for
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so its light barriers may be compiler
/// fences.
static LIGHT_IS_COMPILER_FENCE: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// How [`heavy_barrier`] works on this kernel: 0 = not yet asked,
/// 1 = `membarrier(GLOBAL_EXPEDITED)`, 2 = only a `fence(SeqCst)`.
static HEAVY_MODE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

fn heavy_mode() -> u8 {
    use core::sync::atomic::Ordering::Relaxed;
    // Relaxed: the value is a pure function of the kernel; racing first calls
    // compute the same answer.
    match HEAVY_MODE.load(Relaxed) {
        0 => {
            let q = rustix::thread::membarrier_query();
            let m = if q.contains(rustix::thread::MembarrierQuery::GLOBAL_EXPEDITED) {
                1
            } else {
                2
            };
            HEAVY_MODE.store(m, Relaxed);
            m
        }
        m => m,
    }
}

/// Registers this process as a target of other processes' heavy barriers,
/// which lets its [`light_barrier`]s be mere compiler fences. Idempotent;
/// returns whether light barriers are now compiler fences.
///
/// Call it once per process before using the data plane (the client does, in
/// `Bus::connect`). Without it everything stays correct, only slower: light
/// barriers remain full `fence(SeqCst)`.
pub fn enable_asymmetric_barriers() -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    // Relaxed: a stale `false` only means a full fence where a compiler fence
    // would do.
    if LIGHT_IS_COMPILER_FENCE.load(Relaxed) {
        return true;
    }
    let q = rustix::thread::membarrier_query();
    let wanted = rustix::thread::MembarrierQuery::GLOBAL_EXPEDITED
        | rustix::thread::MembarrierQuery::REGISTER_GLOBAL_EXPEDITED;
    if !q.contains(wanted) {
        return false;
    }
    if rustix::thread::membarrier(rustix::thread::MembarrierCommand::RegisterGlobalExpedited)
        .is_err()
    {
        return false;
    }
    // Relaxed: registration is in force once the system call returned, and the
    // kernel's own barriers order it before our next light barrier.
    LIGHT_IS_COMPILER_FENCE.store(true, Relaxed);
    true
}

/// The fast half of an asymmetric store→load barrier: pairs with
/// [`heavy_barrier`] as two `fence(SeqCst)` would.
///
/// In a process registered by [`enable_asymmetric_barriers`] this is a
/// compiler fence only; the heavy side's `membarrier(GLOBAL_EXPEDITED)` forces
/// a full barrier on every CPU running a registered process, so a store before
/// this point and a load after it cannot be reordered across the heavy
/// barrier (membarrier(2): "barrier() on the fast path, membarrier() on the
/// slow path"). Elsewhere it is `fence(SeqCst)`.
///
/// NB: measured on the 2-core development machine with the former
/// `cargo bench --bench pipe` (now `shmbus-bench --preset pipe`):
/// one-way 64-byte throughput 20.3 M frames/s with a `fence(SeqCst)` (x86
/// `lock or`) after every publish, against 34.5 M without it. The fence waits
/// for the store buffer, which holds the just-published position whose cache
/// line the peer is reading. Do not put a full fence back on this path.
#[inline(always)]
pub fn light_barrier() {
    use core::sync::atomic::{compiler_fence, Ordering::Relaxed};
    // Relaxed: see `enable_asymmetric_barriers`.
    if LIGHT_IS_COMPILER_FENCE.load(Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The slow half of an asymmetric store→load barrier (see [`light_barrier`]):
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` where the kernel has it, a
/// `fence(SeqCst)` where it does not. Costs a system call (about 0.3 µs here):
/// use it only on paths that are about to sleep anyway.
#[inline]
pub fn heavy_barrier() {
    fence(Ordering::SeqCst);
    if heavy_mode() == 1
        && rustix::thread::membarrier(rustix::thread::MembarrierCommand::GlobalExpedited).is_err()
    {
        // The kernel said it supports the command; a failure here means a
        // sandbox forbids it, and then no process could have registered.
        debug_assert!(
            false,
            "membarrier(GLOBAL_EXPEDITED) failed after the kernel offered it"
        );
    }
}

/// The crash hook of the loom models (see [`super::CrashPoint`]): inert here.
pub mod crash {
    use crate::sync::CrashPoint;

    /// Always false outside loom; compiles away.
    #[inline(always)]
    pub fn hit(_point: CrashPoint) -> bool {
        false
    }

    /// Does nothing outside loom; compiles away.
    #[inline(always)]
    pub fn die(_point: CrashPoint) {}
}
