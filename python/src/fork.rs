//! Fork generations: which handles belong to this process.

use shmbus::sync::{AtomicU64, Ordering};
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::{Mutex, Once, PoisonError};

use pyo3::PyResult;

/// Bumped in every child right after `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Relaxed: the child has one thread here; later loads in it are ordered
    // after this store by program order.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Registers the child-side fork handler (once per process image; handlers
/// are inherited across `fork`).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic, which is
        // async-signal-safe as a child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// This process's fork generation.
#[inline]
pub(crate) fn generation() -> u64 {
    // Relaxed: see `after_fork_in_child`.
    GENERATION.load(Ordering::Relaxed)
}

/// A client handle opened in one fork generation, and its re-opening in a
/// later one. `T` is a cheap clone of a shared handle (the client's `Queue`,
/// an `Arc`).
pub(crate) struct PerProcess<T: Clone> {
    gen: u64,
    first: ManuallyDrop<T>,
    later: Mutex<Option<(u64, ManuallyDrop<T>)>>,
    reopen: Box<dyn Fn() -> PyResult<T> + Send + Sync>,
}

/// A borrowed handle, or a clone when it came from the re-opened one.
pub(crate) enum Handle<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> Deref for Handle<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Handle::Borrowed(t) => t,
            Handle::Owned(t) => t,
        }
    }
}

impl<T: Clone> PerProcess<T> {
    /// `first`, opened now; `reopen` opens the same channel again in a
    /// forked child.
    pub(crate) fn new(first: T, reopen: impl Fn() -> PyResult<T> + Send + Sync + 'static) -> Self {
        Self {
            gen: generation(),
            first: ManuallyDrop::new(first),
            later: Mutex::new(None),
            reopen: Box::new(reopen),
        }
    }

    /// The handle for this process.
    #[inline]
    pub(crate) fn get(&self) -> PyResult<Handle<'_, T>> {
        if self.gen == generation() {
            return Ok(Handle::Borrowed(&self.first));
        }
        self.get_slow()
    }

    #[cold]
    fn get_slow(&self) -> PyResult<Handle<'_, T>> {
        let now = generation();
        let mut later = self.later.lock().unwrap_or_else(PoisonError::into_inner);
        match &*later {
            Some((g, t)) if *g == now => Ok(Handle::Owned(T::clone(t))),
            _ => {
                // An older generation's handle is leaked with the slot: its
                // connection is the parent's (see the crate docs).
                let t = (self.reopen)()?;
                *later = Some((now, ManuallyDrop::new(t.clone())));
                Ok(Handle::Owned(t))
            }
        }
    }
}

impl<T: Clone> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let now = generation();
        if self.gen == now {
            // SAFETY: `first` is dropped once, here, and not used after.
            unsafe { ManuallyDrop::drop(&mut self.first) };
        }
        if let Some((g, t)) = self
            .later
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            if *g == now {
                // SAFETY: as above, for the re-opened handle.
                unsafe { ManuallyDrop::drop(t) };
            }
        }
    }
}

/// A value that belongs to the fork generation that made it; dropped only in
/// that generation, leaked in any other (see the crate docs).
pub(crate) struct Owned<T> {
    pub(crate) gen: u64,
    val: ManuallyDrop<T>,
}

impl<T> Owned<T> {
    pub(crate) fn new(val: T) -> Self {
        Self {
            gen: generation(),
            val: ManuallyDrop::new(val),
        }
    }

    /// True if it was made in this process.
    #[inline]
    pub(crate) fn current(&self) -> bool {
        self.gen == generation()
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.val
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if self.current() {
            // SAFETY: dropped once, here, and not used after.
            unsafe { ManuallyDrop::drop(&mut self.val) };
        }
    }
}
