//! loom's model-checked atomics and cells, and a futex stand-in.

use std::time::Instant;

pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
pub use loom::sync::Mutex;

/// Spin and scheduling hints (loom's, which let other model threads run).
pub mod hint {
    pub use loom::hint::spin_loop;
    pub use loom::thread::yield_now;

    /// No-op: a prefetch has no effect on the memory model.
    #[inline(always)]
    pub fn prefetch_read<T>(_: *const T) {}
}

/// loom's `UnsafeCell`, which checks every access for data races.
pub mod cell {
    pub use loom::cell::UnsafeCell;
}

/// Futex stand-in for loom: the word, and one mutex and condition variable
/// shared by every word of the model (one "hash bucket"), so that a sleep on
/// several words at once ([`wait_any`]) is woken by a wake of any of them.
///
/// `wait` re-checks the word under the lock, as the kernel re-checks it under
/// its hash-bucket lock, and ignores deadlines, so a lost wake-up in a protocol
/// that uses it becomes a loom deadlock instead of a timeout. A wake of one
/// word also wakes sleepers on other words (spuriously, which every caller
/// tolerates: it re-checks and sleeps again).
#[derive(Debug)]
pub struct FutexWord {
    word: AtomicU32,
}

/// The one bucket of the stand-in futex (per model execution).
struct Bucket {
    lock: loom::sync::Mutex<()>,
    cv: loom::sync::Condvar,
}

loom::lazy_static! {
    static ref BUCKET: Bucket = Bucket {
        lock: loom::sync::Mutex::new(()),
        cv: loom::sync::Condvar::new(),
    };
}

impl Default for FutexWord {
    fn default() -> Self {
        Self::new(0)
    }
}

impl FutexWord {
    /// A word holding `v`.
    pub fn new(v: u32) -> Self {
        Self {
            word: AtomicU32::new(v),
        }
    }

    /// Loads the word.
    pub fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    /// Stores the word.
    pub fn store(&self, v: u32, order: Ordering) {
        self.word.store(v, order)
    }

    /// Adds to the word (wrapping), returning the previous value.
    pub fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        self.word.fetch_add(v, order)
    }

    /// Sleeps while the word equals `expected` (deadline ignored under loom).
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) {
        wait_any(&[(self, expected)], deadline);
    }

    /// Wakes every sleeper.
    pub fn wake_all(&self) {
        let _guard = BUCKET.lock.lock().unwrap();
        BUCKET.cv.notify_all();
    }
}

/// Sleeps while every word equals its expected value, as `futex_waitv` does
/// (deadline ignored under loom). Always supported: returns true.
pub fn wait_any(words: &[(&FutexWord, u32)], _deadline: Option<Instant>) -> bool {
    let guard = BUCKET.lock.lock().unwrap();
    // The kernel compares the words atomically with queueing the waiter.
    if words
        .iter()
        .any(|(w, e)| w.word.load(Ordering::SeqCst) != *e)
    {
        return true;
    }
    drop(BUCKET.cv.wait(guard).unwrap());
    true
}

/// Under loom, both halves of the asymmetric barrier are `fence(SeqCst)`: the
/// pair orders store→load exactly as two SeqCst fences do, which is what loom
/// models (it cannot model `membarrier`).
pub fn light_barrier() {
    fence(Ordering::SeqCst);
}

/// See [`light_barrier`].
pub fn heavy_barrier() {
    fence(Ordering::SeqCst);
}

/// No-op under loom; light barriers stay full fences.
pub fn enable_asymmetric_barriers() -> bool {
    false
}

/// The crash hook (see [`super::CrashPoint`]), one armed point per loom thread.
pub mod crash {
    use std::cell::Cell;

    use crate::sync::CrashPoint;

    loom::thread_local! {
        static ARMED: Cell<Option<CrashPoint>> = Cell::new(None);
        static FIRED: Cell<bool> = Cell::new(false);
    }

    /// Arms `point` for the calling model thread (`None` disarms); clears
    /// [`fired`].
    pub fn arm(point: Option<CrashPoint>) {
        ARMED.with(|a| a.set(point));
        FIRED.with(|f| f.set(false));
    }

    /// True, once, when the calling thread reaches its armed point: the
    /// operation must stop there.
    pub fn hit(point: CrashPoint) -> bool {
        let now = ARMED.with(|a| a.get() == Some(point));
        if now {
            ARMED.with(|a| a.set(None));
            FIRED.with(|f| f.set(true));
        }
        now
    }

    /// Whether the calling thread's armed point was reached.
    pub fn fired() -> bool {
        FIRED.with(Cell::get)
    }

    /// Panic payload of [`die`]: a model's stand-in for the death of the
    /// process that the model thread plays.
    #[derive(Debug)]
    pub struct Crashed;

    /// For steps with no error to return (inside a wait): the calling thread
    /// "dies" at its armed point by panicking with [`Crashed`] (the model
    /// catches it with `catch_unwind`): every store before the point is done,
    /// none after.
    pub fn die(point: CrashPoint) {
        if hit(point) {
            std::panic::panic_any(Crashed);
        }
    }
}
