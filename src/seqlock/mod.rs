//! Typed values and arrays: a multi-buffered seqlock (DESIGN.md §3.3).
//!
//! A channel of kind `value` (one element) or `array` (fixed length) holds a
//! control word and **`N` copies** of the data (`N` = [`copies`]: 2 to 8, a
//! power of two, as many as fit in 4 KiB), each a run of `AtomicU64` words
//! into which the elements are packed (see [`Element`]). Readers never wait
//! for a writer and never see a half-written copy; writers serialize on a
//! `busy` bit that records the owner, so the daemon can clear it if the writer
//! dies.
//!
//! # The protocol
//! | writer | reader |
//! |---|---|
//! | CAS `(g, 0, 0)` → `(g, 1, me)` (Acquire), then `fence(Release)` | `s1 = state` (Acquire), `g = gen(s1)` |
//! | fill copy `(g + 1) % N` with Relaxed atomic stores | copy `copy[g % N]` with Relaxed atomic loads |
//! | store `(g + 1, 0, 0)` (Release); ring `changed` and `unlocked` | `fence(Acquire)`; `s2 = state` (Relaxed); retry unless `gen(s2) - g <= N - 2` |
//!
//! Why a reader never returns a torn copy. The reader copies `copy[g % N]`,
//! the copy that generation `g` published. Its last writer (the one that
//! published `g`) finished before its Release store of `g`, which the reader's
//! Acquire load of `s1` read, so the reader sees those stores. A writer
//! holding the lock at generation `G` fills `copy[(G + 1) % N]`, so the only
//! writers that ever touch `copy[g % N]` *again* hold the lock at a
//! generation `G >= g + N - 1` (the writers from `g` to `g + N - 2` fill the
//! other copies, which is why a reader need not wait for them, and why `busy`
//! in `s2` does not make a reader retry). A writer at `G` took the lock with a
//! CAS that came after the publication of `G` in the state word's
//! modification order; if any load of the reader saw one of that writer's
//! stores, that store is after the writer's `fence(Release)` and the load is
//! before the reader's `fence(Acquire)`, so the fences synchronize and the
//! writer's CAS happens-before the reader's load of `s2`, which therefore
//! reads a generation `>= G >= g + N - 1` and the reader retries. If no load
//! saw such a store, every load returned the value published at `g`. (An
//! aborted writer leaves the generation where it was, so `s2` may show
//! `(g + N - 1, 0, 0)` after a writer at `g + N - 1` scribbled on
//! `copy[g % N]` and gave up: that is why the bound is `N - 2`, with or
//! without `busy`.) Generations are 47 bits: repeating `g` would need 2^47
//! writes during one read.
//!
//! Why `N` copies and not two. With two, every publish makes a concurrent
//! read retry, and a writer storing flat out (a 16-word array every ~70 ns)
//! publishes before a reader on another core has fetched the lines it needs
//! (two or three cache-line transfers of 100–400 ns): the reader retries
//! several times per read, and each attempt steals the writer's lines. With
//! `N`, a read survives `N - 2` publishes.
//! NB (measured, issue #17, 2026-12-04, `shmbus-bench --filter
//! shmbus/array16-read/,shmbus/value-read/`, three alternating runs of each
//! build): reads of a 16-word array under a flat-out writer went from
//! 13.2 M/s with two copies to 16.5–20.3 M/s with eight (floor probe
//! ≈ 200 ns), and from 3.7–5.2 M/s to 6.9 M/s (probe 700–1,200 ns); value
//! reads from 13–26 M/s to 31–93 M/s. The price: 23 instructions per
//! uncontended value load instead of 18, 94 per array read instead of 80
//! (callgrind, `bench/icount`): the copy index is `g & mask` times a stride
//! instead of `g & 1`.
//!
//! # Prefetching the next copy
//! A read is a chain of two loads: the state word gives the generation, and
//! the generation gives the copy to load. Under a writer storing flat out,
//! both are lines the writer's core has just written, so a read paid two
//! line transfers one after the other. Each thread remembers the generation
//! it last read and of which seqlock (a thread-local, so that handles stay
//! `Copy + Sync` and threads sharing a handle do not write a shared line).
//! A read of the same seqlock first prefetches the first 128 bytes of the
//! copy the next generation fills, `copy[(g + 1) % N]`, and then loads the
//! state word: when the writer has published `g + 1` meanwhile, the two
//! transfers overlap. A prefetch reads no value and has no effect on the
//! memory model; the protocol and its proof above are unchanged, and loom
//! builds do not prefetch.
//!
//! Measured (issue #17, 2026-12-05, `shmbus-bench --filter
//! shmbus/array16-read/,shmbus/value-read/,...`, this build alternating with
//! the one before four times; the rounds with the vCPUs close, probe
//! 110–130 ns): 16-word array reads under a flat-out writer 43.0–43.5 M/s
//! against 14.9–20.1 M/s; value reads 240–252 M/s against 103–125 M/s.
//! The price: the writer, whose next copy the reader now fetches early,
//! stores 20.7–22.8 M arrays/s against 23.4–25.8 M (value writes 11.4–13.0
//! against 15.0–15.4 M/s); an uncontended read runs more instructions
//! (callgrind, `bench/icount`: value load 22 → 34; 16-word array read
//! 94 → 120, `read_into` no longer being inlined into the caller), which
//! shows only where nothing else costs anything: 475–498 M value reads/s
//! alone against 908–935 M, 155–160 M array reads/s against 175–189 M.
//! Reads of an array written a million times a second are unchanged
//! (99–101 against 97–108 M/s). The full suite in rotation
//! (`--rounds 3`, 04:25 the same day) settled array reads at 52.4 M/s,
//! 125× Python's locked `Array`, where the run before this change had
//! 15.5 M/s, 30.8×.
//!
//! Plain or volatile reads that race a write would be undefined behaviour in
//! Rust whatever is done with the result afterwards (Boehm 2012, "Can seqlocks
//! get along with programming language memory models?"); every data access here
//! is an atomic load or store, so the racing loads are merely discarded.
//!
//! # Writers
//! [`Seqlock::lock`] spins with backoff on the CAS, then sleeps on the
//! `unlocked` doorbell. A [`WriteGuard`] publishes on [`WriteGuard::publish`];
//! dropped without publishing (a panic in an `update` closure) it clears
//! `busy` without bumping the generation, so the half-written copy is never
//! published. The daemon does the same for a dead owner with
//! [`SeqlockCtl::recover_owner`].
//!
//! `update` (read-modify-write, Python's `with v.get_lock(): v.value += 1`)
//! and integer `fetch_add` take the writer lock: the current copy cannot change
//! while it is held, so reading it needs no retry.
//!
//! # Waiting for a change
//! [`Seqlock::wait_changed`] sleeps on the `changed` doorbell until the
//! generation differs from the one given; writers ring it after every publish
//! (no system call when nobody sleeps).
//!
//! Everything read from the segment is untrusted: [`SeqlockCtl::check`]
//! validates the type code, length, copy count and sizes against the
//! directory before a handle is made, and the state word only ever selects a
//! copy modulo `N`.

//! # Files
//! | file | what |
//! |---|---|
//! | `mod.rs` | parameters and copy counts, the [`state`] word, [`Seqlock`] (reads) and [`WriteGuard`] (writes) |
//! | `ctl.rs` | the control block [`SeqlockCtl`]: parameters, state, doorbells, the daemon's recovery |
//! | `element.rs` | element types and their packing into words |
//! | `heap.rs` | [`HeapSeqlock`], for tests, benchmarks and loom models |

mod ctl;
mod element;
mod heap;

pub use ctl::{Meta, SeqlockCtl};
pub use element::{ElemType, Element, Integer, ALL_TYPES};
pub use heap::HeapSeqlock;

use core::ptr::NonNull;
use std::time::Instant;

use crate::futex::WaitError;
use crate::sync::{crash, fence, AtomicU64, Backoff, CrashPoint, Ordering};

/// `b"SEQL"` as a little-endian `u32`.
pub const SEQLOCK_MAGIC: u32 = u32::from_le_bytes(*b"SEQL");
/// Size of the control block that precedes the copies.
pub const CTL_SIZE: u64 = 4 * 128;
/// Most elements in an array.
pub const MAX_LEN: u64 = 1 << 20;
/// Most copies of a value's or array's data (see [`copies`]).
pub const MAX_COPIES: u64 = 8;
/// The copies of a small value or array fill up to this many bytes (see
/// [`copies`]).
pub const COPIES_BYTES: u64 = 4096;

/// The state word [`SeqlockCtl::state`].
///
/// # Bit layout
/// ```text
/// 63                       17   16   15          0
/// +---------------------------+------+------------+
/// | gen (47 bits)             | busy | owner (16) |
/// +---------------------------+------+------------+
/// ```
/// | gen | busy | owner | meaning |
/// |---|---|---|---|
/// | g | 0 | 0 | stable: `copy[g % N]` holds the value; no writer |
/// | g | 1 | k > 0 | peer slot `k - 1` is writing `copy[(g + 1) % N]`; readers still use `copy[g % N]` |
/// | g | 0 | k > 0 | never stored |
///
/// Lock: CAS `(g, 0, 0)` → `(g, 1, me)`. Publish: store `(g + 1, 0, 0)`.
/// Abort (panic in `update`, or the daemon's recovery of a dead owner): back
/// to `(g, 0, 0)`, so the half-written copy is never published.
pub mod state {
    /// Mask of the owner tag.
    pub const OWNER_MASK: u64 = 0xFFFF;
    /// The busy bit.
    pub const BUSY: u64 = 1 << 16;
    /// Shift of the generation.
    pub const GEN_SHIFT: u32 = 17;
    /// One generation.
    pub const GEN_ONE: u64 = 1 << GEN_SHIFT;

    /// The generation.
    #[inline(always)]
    pub const fn gen(s: u64) -> u64 {
        s >> GEN_SHIFT
    }

    /// How many generations the state word `later` is past the state word
    /// `earlier`, modulo 2^47 (the generation's width). Subtracting the whole
    /// words with `earlier`'s low bits cleared leaves `later`'s busy and owner
    /// bits below the generation, where the shift drops them.
    #[inline(always)]
    pub const fn gens_between(earlier: u64, later: u64) -> u64 {
        later.wrapping_sub(unlocked(earlier)) >> GEN_SHIFT
    }

    /// The owner tag (peer slot + 1, or 0).
    #[inline(always)]
    pub const fn owner(s: u64) -> u16 {
        (s & OWNER_MASK) as u16
    }

    /// True while a writer holds the lock.
    #[inline(always)]
    pub const fn busy(s: u64) -> bool {
        s & BUSY != 0
    }

    /// The stable state of the next generation (what a publish stores).
    #[inline(always)]
    pub const fn next(s: u64) -> u64 {
        (s & !(BUSY | OWNER_MASK)).wrapping_add(GEN_ONE)
    }

    /// The stable state of the same generation (what an abort stores).
    #[inline(always)]
    pub const fn unlocked(s: u64) -> u64 {
        s & !(BUSY | OWNER_MASK)
    }
}

/// Checks the parameters of a new value or array.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_params(elem: u64, len: u64) -> Result<ElemType, String> {
    let t = ElemType::from_code(elem)
        .ok_or_else(|| format!("unknown element type code {elem} (1 to 10)"))?;
    if len == 0 || len > MAX_LEN {
        return Err(format!(
            "array length {len} must be from 1 to {MAX_LEN} elements"
        ));
    }
    Ok(t)
}

/// Bytes between the starts of two neighbouring copies for `len` elements
/// of `t`.
pub const fn stride(t: ElemType, len: u64) -> u64 {
    (t.words(len) * 8 + 127) & !127
}

/// Number of copies of `len` elements of `t`: as many as fit in
/// [`COPIES_BYTES`], rounded down to a power of two, from 2 to
/// [`MAX_COPIES`]. A 16-element `u64` array (128 bytes a copy) has 8; a
/// copy over 2 KiB has 2. A read survives `copies - 2` publishes made while
/// it copies (see the module docs).
pub const fn copies(t: ElemType, len: u64) -> u64 {
    let fit = COPIES_BYTES / stride(t, len);
    if fit >= MAX_COPIES {
        MAX_COPIES
    } else if fit >= 4 {
        4
    } else {
        2
    }
}

/// True for a count of copies a handle can work with: a power of two from 2
/// to [`MAX_COPIES`] (every count [`copies`] gives is one).
pub const fn copy_count_ok(n: u64) -> bool {
    n.is_power_of_two() && n >= 2 && n <= MAX_COPIES
}

/// Bytes a value or array takes in the arena (control block + copies).
pub const fn body_len(t: ElemType, len: u64) -> u64 {
    CTL_SIZE + copies(t, len) * stride(t, len)
}

std::thread_local! {
    /// This thread's last successful read: the address of the seqlock's
    /// control block (its identity in this process) and the generation read.
    /// A guess for the next read's prefetch, never trusted for anything else.
    static LAST_READ: core::cell::Cell<(usize, u64)> = const { core::cell::Cell::new((0, 0)) };
}

/// A handle to one value or array: its control block and its copies.
///
/// Untyped: the element type is checked once, when the handle is made, and the
/// typed methods take `T: Element` and check `T::TYPE` with a `debug_assert`.
/// Cheap to copy; `Send + Sync` (everything it points to is atomic).
#[derive(Debug, Clone, Copy)]
pub struct Seqlock {
    ctl: NonNull<SeqlockCtl>,
    /// The first word of copy 0.
    first: NonNull<AtomicU64>,
    /// Words from one copy to the next.
    stride: usize,
    /// Number of copies minus one (the count is a power of two).
    mask: u64,
    elem: ElemType,
    len: usize,
    words: usize,
}

// SAFETY: a `Seqlock` only reaches atomics (the control block and the copy
// words), which are safe to use from any thread; the memory's lifetime is the
// `new` caller's contract.
unsafe impl Send for Seqlock {}
// SAFETY: as above: every access through a shared `Seqlock` is atomic.
unsafe impl Sync for Seqlock {}

/// The lock holder's handle: write the next copy, then [`publish`](Self::publish).
/// Dropped without publishing, it releases the lock without publishing.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    lock: &'a Seqlock,
    /// The state word as we locked it (`busy` clear).
    before: u64,
    published: bool,
}

impl Seqlock {
    /// A handle over the control block `ctl` (which passed
    /// [`SeqlockCtl::check`]) and its `copies` copies, copy `i` starting
    /// `i * stride` words after `first`.
    ///
    /// # Safety
    /// - `ctl` and the copies (each `elem.words(len)` words, 8-aligned) stay
    ///   valid for as long as the handle and its copies are used;
    /// - `elem` and `len` are what `check` returned / validated;
    /// - `copies` is a power of two from 2 to [`MAX_COPIES`], the same
    ///   number every other process uses for this value (the control
    ///   block's, which `check` compared with [`copies`]), and `stride >=
    ///   elem.words(len)`.
    ///
    /// # Panics
    /// If `copies` is not a power of two from 2 to [`MAX_COPIES`].
    pub unsafe fn new(
        ctl: NonNull<SeqlockCtl>,
        first: NonNull<AtomicU64>,
        stride: usize,
        copies: u64,
        elem: ElemType,
        len: u64,
    ) -> Self {
        assert!(copy_count_ok(copies), "{copies} copies");
        debug_assert!((1..=MAX_LEN).contains(&len));
        debug_assert!(stride >= elem.words(len) as usize);
        Self {
            ctl,
            first,
            stride,
            mask: copies - 1,
            elem,
            len: len as usize,
            words: elem.words(len) as usize,
        }
    }

    /// The control block.
    #[inline(always)]
    pub fn ctl(&self) -> &SeqlockCtl {
        // SAFETY: `new`'s caller keeps the control block valid.
        unsafe { self.ctl.as_ref() }
    }

    /// The copy generation `g` publishes: `copy[g % N]`.
    #[inline(always)]
    fn copy(&self, g: u64) -> &[AtomicU64] {
        let k = (g & self.mask) as usize;
        // SAFETY: `k < copies` and `new`'s caller guarantees `copies` copies
        // of `words` atomic words, `stride` words apart from `first`, valid
        // as long as `self` is used; `k * stride` stays inside them.
        unsafe { core::slice::from_raw_parts(self.first.as_ptr().add(k * self.stride), self.words) }
    }

    /// Number of copies.
    #[inline]
    pub fn copies(&self) -> u64 {
        self.mask + 1
    }

    /// Element type.
    #[inline]
    pub fn elem(&self) -> ElemType {
        self.elem
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a value or array has at least one element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The published generation (bumped by every write).
    #[inline]
    pub fn version(&self) -> u64 {
        // Acquire: pairs with the writers' Release publish, so a following
        // read sees at least this generation's data.
        state::gen(self.ctl().state.load(Ordering::Acquire))
    }

    /// Reads the current words through `f`, retrying until the copy read was
    /// not overwritten meanwhile (see the module docs). `f` may see values a
    /// writer is storing in a retried attempt; it must not act on them beyond
    /// copying. Returns `f`'s last result and the generation it read.
    //
    // Always inlined: with the prefetch it grew past the inliner's
    // threshold, and out of line a value load ran 38 instructions, not 34.
    #[inline(always)]
    pub fn read_with<R>(&self, mut f: impl FnMut(&[AtomicU64]) -> R) -> (R, u64) {
        let ctl = self.ctl();
        self.prefetch_next();
        loop {
            // Acquire: pairs with the Release publish of the writer that filled
            // `copy[g % N]`.
            let s1 = ctl.state.load(Ordering::Acquire);
            let g = state::gen(s1);
            let r = f(self.copy(g));
            // Acquire fence: orders the copy's loads before the re-load of the
            // state; pairs with the `fence(Release)` after a writer's lock CAS.
            fence(Ordering::Acquire);
            // Relaxed: ordered by the fence above.
            let s2 = ctl.state.load(Ordering::Relaxed);
            // The first writer that may have touched `copy[g % N]` since `g`
            // locks at `g + N - 1` (see the module docs).
            if state::gens_between(s1, s2) < self.mask {
                self.remember(g);
                return (r, g);
            }
            self.read_retry();
        }
    }

    /// Starts fetching the copy the next generation will publish, if this
    /// thread's last read was of this seqlock (see "Prefetching the next
    /// copy" in the module docs): its first 128 bytes, all of a value or of
    /// an array of up to 16 `u64`; the hardware's own sequential prefetch
    /// takes the rest of a longer one.
    #[inline(always)]
    fn prefetch_next(&self) {
        let (at, g) = LAST_READ.get();
        if at == self.ctl.as_ptr() as usize {
            let next = self.copy(g.wrapping_add(1)).as_ptr();
            // Both lines lie in the copy's stride (a multiple of 128 bytes),
            // whatever the copy's length. Under loom a prefetch is a no-op.
            crate::sync::hint::prefetch_read(next);
            crate::sync::hint::prefetch_read(next.wrapping_add(8));
        }
    }

    /// Records that this thread last read generation `g` of this seqlock.
    #[inline(always)]
    fn remember(&self, g: u64) {
        LAST_READ.set((self.ctl.as_ptr() as usize, g));
    }

    #[cold]
    #[inline(never)]
    fn read_retry(&self) {
        crate::sync::hint::spin_loop();
    }

    /// Reads every element into `out` (`out.len() == self.len()`), never torn.
    /// Returns the generation read.
    #[inline]
    pub fn read_into<T: Element>(&self, out: &mut [T]) -> u64 {
        debug_assert_eq!(T::TYPE, self.elem);
        assert_eq!(out.len(), self.len, "read_into: wrong length");
        // The loads are Relaxed, validated by the generation check in `read_with`.
        let ((), g) = self.read_with(|c| element::unpack_into(c, out));
        g
    }

    /// Reads element 0 (a value), never torn. Returns it and the generation.
    #[inline]
    pub fn load<T: Element>(&self) -> (T, u64) {
        debug_assert_eq!(T::TYPE, self.elem);
        // Relaxed: validated by the generation check in `read_with`.
        self.read_with(|c| T::from_bits(c[0].load(Ordering::Relaxed)))
    }

    /// Reads element `i` alone, never torn. Returns it and the generation.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[inline]
    pub fn load_at<T: Element>(&self, i: usize) -> (T, u64) {
        debug_assert_eq!(T::TYPE, self.elem);
        assert!(i < self.len, "load_at: index {i} out of {}", self.len);
        let per = T::TYPE.per_word() as usize;
        let shift = (i % per) * (64 / per);
        // Relaxed: validated by the generation check in `read_with`.
        self.read_with(|c| T::from_bits(c[i / per].load(Ordering::Relaxed) >> (shift % 64)))
    }

    /// Reads the raw words of the current copy into `out` (`words()` long).
    pub fn read_words(&self, out: &mut [u64]) -> u64 {
        assert_eq!(out.len(), self.words);
        let ((), g) = self.read_with(|c| {
            for (o, w) in out.iter_mut().zip(c) {
                // Relaxed: validated by the generation check in `read_with`.
                *o = w.load(Ordering::Relaxed);
            }
        });
        g
    }

    /// Number of 64-bit words per copy.
    #[inline]
    pub fn words(&self) -> usize {
        self.words
    }

    /// Takes the writer lock once, if it is free now.
    #[inline]
    pub fn try_lock(&self, me: u16) -> Option<WriteGuard<'_>> {
        debug_assert!(me != 0);
        let st = &self.ctl().state;
        // Relaxed: a guess for the CAS, which re-checks it.
        let s = st.load(Ordering::Relaxed);
        if state::busy(s) {
            return None;
        }
        // Acquire: pairs with the previous writer's Release publish, so
        // `current()` under the lock sees its copy.
        st.compare_exchange(
            s,
            s | state::BUSY | u64::from(me),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .ok()?;
        // Release fence: orders the CAS before our copy stores; pairs with the
        // Acquire fence in `read_with` (see the module docs). NB: the loom
        // models do not detect its removal (see tests/loom_seqlock.rs); it is
        // required by the proof, not by a failing model. On x86 it compiles to
        // nothing (the CAS is a full barrier already).
        fence(Ordering::Release);
        Some(WriteGuard {
            lock: self,
            before: s,
            published: false,
        })
    }

    /// Takes the writer lock: spins with backoff, then sleeps until it is
    /// free, `deadline` passes, or `interrupt` says stop.
    ///
    /// # Errors
    /// [`WaitError`] on timeout or interruption.
    #[inline]
    pub fn lock(
        &self,
        me: u16,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<WriteGuard<'_>, WaitError> {
        if let Some(g) = self.try_lock(me) {
            return Ok(g);
        }
        self.lock_slow(me, deadline, interrupt)
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(
        &self,
        me: u16,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<WriteGuard<'_>, WaitError> {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            if let Some(g) = self.try_lock(me) {
                return Ok(g);
            }
        }
        self.ctl()
            .unlocked
            .wait(deadline, interrupt, || self.try_lock(me))
    }

    /// Blocks until the generation differs from `since`, `deadline` passes or
    /// `interrupt` says stop. Returns the new generation.
    ///
    /// # Errors
    /// [`WaitError`] on timeout or interruption.
    pub fn wait_changed(
        &self,
        since: u64,
        deadline: Option<Instant>,
        interrupt: Option<&dyn crate::futex::Waiter>,
    ) -> Result<u64, WaitError> {
        let g = self.version();
        if g != since {
            return Ok(g);
        }
        self.ctl().changed.wait(deadline, interrupt, || {
            let g = self.version();
            (g != since).then_some(g)
        })
    }
}

impl WriteGuard<'_> {
    /// The copy the lock holder reads: the published one (stable while the
    /// lock is held).
    #[inline]
    fn current(&self) -> &[AtomicU64] {
        self.lock.copy(state::gen(self.before))
    }

    /// The copy the lock holder fills.
    #[inline]
    fn next(&self) -> &[AtomicU64] {
        self.lock.copy(state::gen(self.before).wrapping_add(1))
    }

    /// The generation being written (published by `publish`).
    pub fn generation(&self) -> u64 {
        state::gen(state::next(self.before))
    }

    /// Reads the current value into `out`. No retry needed: no one else
    /// writes while we hold the lock.
    #[inline]
    pub fn read_into<T: Element>(&self, out: &mut [T]) {
        debug_assert_eq!(T::TYPE, self.lock.elem);
        // The loads are Relaxed: the lock's Acquire CAS made the last publish
        // visible, and nobody else writes this copy while we hold the lock.
        element::unpack_into(self.current(), out);
    }

    /// Reads the current raw words.
    pub fn read_words(&self, out: &mut [u64]) {
        for (o, w) in out.iter_mut().zip(self.current()) {
            // Relaxed: as in `read_into`.
            *o = w.load(Ordering::Relaxed);
        }
    }

    /// Fills the next copy with `src` (`src.len() == len`).
    #[inline]
    pub fn write<T: Element>(&mut self, src: &[T]) {
        debug_assert_eq!(T::TYPE, self.lock.elem);
        assert_eq!(src.len(), self.lock.len, "write: wrong length");
        if crash::hit(CrashPoint::SeqlockLocked) {
            return;
        }
        let next = self.next();
        for (i, w) in next.iter().enumerate() {
            if i == next.len().div_ceil(2) && crash::hit(CrashPoint::SeqlockHalfWritten) {
                return;
            }
            // Relaxed: ordered after the lock by its `fence(Release)`, before
            // the publish by its Release store.
            w.store(element::pack_word(src, i), Ordering::Relaxed);
        }
    }

    /// Fills the next copy with raw words.
    pub fn write_words(&mut self, src: &[u64]) {
        assert_eq!(src.len(), self.lock.words);
        for (w, v) in self.next().iter().zip(src) {
            // Relaxed: as in `write`.
            w.store(*v, Ordering::Relaxed);
        }
    }

    /// Stores word `i` of the next copy only (for tests that crash mid-write).
    pub fn write_word(&mut self, i: usize, v: u64) {
        // Relaxed: as in `write`.
        self.next()[i].store(v, Ordering::Relaxed);
    }

    /// Publishes the next copy: bumps the generation, clears `busy`, wakes
    /// `wait_changed` sleepers and lock waiters. Returns the new generation.
    #[inline]
    pub fn publish(mut self) -> u64 {
        let ctl = self.lock.ctl();
        let s = state::next(self.before);
        if crash::hit(CrashPoint::SeqlockWritten) {
            // The process dies holding the lock: no abort in `drop`.
            core::mem::forget(self);
            return state::gen(s);
        }
        self.published = true;
        // Release: publishes the copy; pairs with the Acquire load in
        // `read_with`, `version` and the next writer's lock CAS.
        ctl.state.store(s, Ordering::Release);
        if crash::hit(CrashPoint::SeqlockPublished) {
            return state::gen(s);
        }
        ctl.changed.notify();
        ctl.unlocked.notify();
        state::gen(s)
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if !self.published {
            let ctl = self.lock.ctl();
            // Release: as in `recover_owner`; the generation is unchanged, so
            // the half-written copy is never published.
            ctl.state
                .store(state::unlocked(self.before), Ordering::Release);
            ctl.unlocked.notify();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const GEN_ONE_AND_BUSY: u64 = state::GEN_ONE | state::BUSY | 0xFFFF;

    #[test]
    fn state_word() {
        let s = 5 * state::GEN_ONE;
        assert_eq!(state::gen(s), 5);
        let locked = s | state::BUSY | 7;
        assert!(state::busy(locked));
        assert_eq!(state::owner(locked), 7);
        assert_eq!(state::next(locked), 6 * state::GEN_ONE);
        assert_eq!(state::unlocked(locked), s);
        assert_eq!(state::gens_between(locked, s), 0);
        assert_eq!(
            state::gens_between(s, (8 * state::GEN_ONE) | state::BUSY | 9),
            3
        );
        let top = !(state::BUSY | state::OWNER_MASK);
        assert_eq!(
            state::gens_between(top | state::BUSY | 3, GEN_ONE_AND_BUSY),
            2
        );
        // The generation wraps at 2^47 without touching busy or owner.
        assert_eq!(state::next(top | state::BUSY | 3), 0);
    }

    #[test]
    fn sizes() {
        assert_eq!(stride(ElemType::F64, 1), 128);
        assert_eq!(stride(ElemType::F64, 16), 128);
        assert_eq!(stride(ElemType::F64, 17), 256);
        assert_eq!(stride(ElemType::I8, 1024), 1024);
        assert_eq!(copies(ElemType::F64, 16), 8);
        assert!([2, 4, 8].into_iter().all(copy_count_ok));
        assert!(![0, 1, 3, 6, 16].into_iter().any(copy_count_ok));
        assert_eq!(body_len(ElemType::F64, 16), CTL_SIZE + 8 * 128);
        assert_eq!(copies(ElemType::F64, 128), 4);
        assert_eq!(copies(ElemType::F64, 129), 2);
        assert_eq!(copies(ElemType::F64, 256), 2);
        assert_eq!(copies(ElemType::U8, MAX_LEN), 2);
        assert_eq!(body_len(ElemType::U8, MAX_LEN), CTL_SIZE + 2 * MAX_LEN);
        assert!(check_params(0, 1).is_err());
        assert!(check_params(10, 0).is_err());
        assert!(check_params(10, MAX_LEN + 1).is_err());
    }

    #[test]
    fn write_read_update_abort_recover() {
        let h = HeapSeqlock::new::<u16>(5);
        // SAFETY: `h` outlives `s`.
        let s = unsafe { h.handle() };
        assert_eq!(s.version(), 0);
        let mut w = s.try_lock(3).unwrap();
        assert!(s.try_lock(4).is_none(), "busy");
        assert_eq!(h.ctl().writer(), 3);
        w.write(&[1u16, 2, 3, 4, 5]);
        assert_eq!(w.publish(), 1);
        let mut out = [0u16; 5];
        assert_eq!(s.read_into(&mut out), 1);
        assert_eq!(out, [1, 2, 3, 4, 5]);

        // A dropped guard (panic in an update) publishes nothing.
        let mut w = s.lock(4, None, None).unwrap();
        w.write(&[9u16; 5]);
        drop(w);
        assert_eq!(s.read_into(&mut out), 1);
        assert_eq!(out, [1, 2, 3, 4, 5]);

        // Read-modify-write under the lock.
        let mut w = s.try_lock(4).unwrap();
        let mut cur = [0u16; 5];
        w.read_into(&mut cur);
        cur[4] += 10;
        w.write(&cur);
        w.publish();
        assert_eq!(s.read_into(&mut out), 2);
        assert_eq!(out, [1, 2, 3, 4, 15]);

        // A dead writer is cleared without publishing.
        let mut w = s.try_lock(6).unwrap();
        w.write_word(0, u64::MAX);
        std::mem::forget(w);
        assert!(!h.ctl().recover_owner(5), "not the holder");
        assert!(h.ctl().recover_owner(6));
        assert!(!h.ctl().recover_owner(6), "idempotent");
        assert_eq!(s.read_into(&mut out), 2);
        assert_eq!(out, [1, 2, 3, 4, 15]);
        assert!(s.try_lock(1).is_some());
        assert_eq!(s.load_at::<u16>(0), (1, 2));
        assert_eq!(s.load_at::<u16>(3), (4, 2));
        assert_eq!(s.load_at::<u16>(4), (15, 2));
    }

    #[test]
    fn wait_changed_times_out_and_returns() {
        let h = HeapSeqlock::new::<f64>(1);
        // SAFETY: `h` outlives `s`.
        let s = unsafe { h.handle() };
        let d = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(s.wait_changed(0, Some(d), None), Err(WaitError::Timeout));
        let mut w = s.try_lock(1).unwrap();
        w.write(&[2.5f64]);
        w.publish();
        assert_eq!(s.wait_changed(0, None, None), Ok(1));
        assert_eq!(s.load::<f64>(), (2.5, 1));
    }

    #[test]
    fn check_validates_control_block() {
        let h = HeapSeqlock::new::<i32>(10);
        let code = u64::from(ElemType::I32.code());
        let need = body_len(ElemType::I32, 10);
        assert_eq!(h.ctl().check(code, 10, need), Ok(ElemType::I32));
        assert!(h.ctl().check(code, 11, need).is_err());
        assert!(h.ctl().check(9, 10, need).is_err());
        assert!(h.ctl().check(code, 10, need - 1).is_err());
        h.ctl().meta.magic.store(0, Ordering::Relaxed);
        assert!(h.ctl().check(code, 10, need).is_err());
    }
}
