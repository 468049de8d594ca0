//! Queue handles: `shmbus_queue` (put, zero-copy claim/commit, get into a
//! buffer or through a callback, task_done, join).

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, TryLockError};

use shmbus_client::{Queue, QueueClaim};

use crate::bus::{opener, shmbus_bus};
use crate::ffi::{
    check_ptr, fail, free_box, guard, handle, new_box, ok, put, slice, slice_mut, wait, Wait,
};
use crate::pipe::{shmbus_frame_fn, too_small};
use crate::status::shmbus_status;

/// A multi-producer multi-consumer queue of byte items; each item is taken
/// by one getter.
///
/// Thread safety: any number of threads may use one handle at once; free it
/// once, when no other thread uses it. A handle has at most one claimed item
/// open (`shmbus_queue_claim`): threads that claim at the same time use
/// handles of their own (`shmbus_queue_open` again).
#[derive(Debug)]
pub struct shmbus_queue {
    /// The item claimed by `shmbus_queue_claim`, until commit or cancel. It
    /// borrows `q` (only shared borrows of `q` are ever made); declared
    /// first, so dropped before `q`.
    claim: Mutex<Option<Claimed>>,
    q: Queue,
}

/// A claim on a handle's own queue.
#[derive(Debug)]
struct Claimed(QueueClaim<'static>);

// SAFETY: a `QueueClaim` is a slot of the shared queue, which any thread may
// fill and commit (the handle's mutex keeps it to one thread at a time); it
// holds no thread-local state.
unsafe impl Send for Claimed {}

/// Opens queue `name` into `*out`, creating it with `slots` cells (a power
/// of two) of `slot_size` bytes each if absent; 0 for either takes the
/// daemon's default.
///
/// Errors: `SHMBUS_PARAM_MISMATCH` (it exists with other parameters),
/// `SHMBUS_BAD_PARAMS`, the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_open(
    bus: *const shmbus_bus,
    name: *const c_char,
    slots: u64,
    slot_size: u64,
    out: *mut *mut shmbus_queue,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let mut b = bus.queue_builder(name);
        if slots != 0 {
            b = b.slots(slots);
        }
        if slot_size != 0 {
            b = b.slot_size(slot_size);
        }
        let q = ok(b.open())?;
        let h = new_box(shmbus_queue {
            claim: Mutex::new(None),
            q,
        });
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Frees a queue handle (NULL: nothing).
///
/// # Safety
/// `q` is NULL or a live queue handle, freed once, when no thread uses it.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_free(q: *mut shmbus_queue) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(q) }
}

/// Puts the `len` bytes at `data` as one item, waiting at most `timeout_ns`
/// (0: try once, -1: forever) while the queue is full.
///
/// Errors: `SHMBUS_FULL` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_TOO_LARGE`
/// (longer than the slot size), `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `q` is NULL or a live queue handle; `data` NULL or readable for `len`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_put(
    q: *const shmbus_queue,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        // SAFETY: delegated to the caller.
        let item = unsafe { slice(data.cast::<u8>(), len, "data") }?;
        ok(match until {
            Wait::Try => q.try_put(item),
            Wait::Forever => q.put(item),
            Wait::For(d) => q.put_timeout(item, d),
        })
    })
}

/// Claims a slot for an item of `len` bytes (zero-copy put), waiting at most
/// `timeout_ns` (0: try once, -1: forever) while the queue is full, and
/// stores its address in `*data` (contents unspecified). Write the item
/// there, then put it with `shmbus_queue_commit`, or drop it with
/// `shmbus_queue_cancel` (getters skip it).
///
/// Errors: as `shmbus_queue_put`; `SHMBUS_BAD_STATE` if the handle already
/// has a claim open (from this thread or another).
///
/// # Safety
/// `q` is NULL or a live queue handle; `data` NULL or writable. The claimed
/// bytes are valid until commit, cancel or free.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_claim(
    q: *const shmbus_queue,
    len: usize,
    data: *mut *mut c_void,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        check_ptr(data, "data")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(q, "q") }?;
        let mut slot = match h.claim.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(claim_open()),
        };
        if slot.is_some() {
            return Err(claim_open());
        }
        // SAFETY: `h.q` lives as long as the handle, and the handle's `Drop`
        // drops `claim` (declared first) before `q`; only shared borrows of
        // `q` are ever made, so this one is never invalidated.
        let q: &'static Queue = unsafe { &*std::ptr::from_ref(&h.q) };
        let mut claim = ok(match until {
            Wait::Try => q.try_claim(len),
            Wait::Forever => q.claim(len),
            Wait::For(d) => q.claim_timeout(len, d),
        })?;
        let at = claim.as_mut_ptr().cast::<c_void>();
        *slot = Some(Claimed(claim));
        // SAFETY: `data` checked above; writable by the contract.
        unsafe { put(data, at, "data") }
    })
}

/// Puts the item claimed by `shmbus_queue_claim`.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `q` is NULL or a live queue handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_commit(q: *const shmbus_queue) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(q, "q") }?;
        match take_claim(h) {
            Some(c) => ok(c.0.commit()),
            None => Err(no_claim()),
        }
    })
}

/// Drops the item claimed by `shmbus_queue_claim` unput: getters skip its
/// slot.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `q` is NULL or a live queue handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_cancel(q: *const shmbus_queue) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(q, "q") }?;
        match take_claim(h) {
            Some(c) => {
                drop(c);
                Ok(())
            }
            None => Err(no_claim()),
        }
    })
}

/// The handle's open claim, taken out of it.
fn take_claim(h: &shmbus_queue) -> Option<Claimed> {
    h.claim
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

#[cold]
#[inline(never)]
fn claim_open() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "a claimed item is open on this queue handle: shmbus_queue_commit or \
         shmbus_queue_cancel it first, or give each claiming thread a handle of its own",
    )
}

#[cold]
#[inline(never)]
fn no_claim() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "no claimed item is open on this queue handle: call shmbus_queue_claim first",
    )
}

/// Takes the next item into the `cap` bytes at `buf`, waiting at most
/// `timeout_ns` (0: try once, -1: forever), and stores its length in
/// `*len`. `cap` must be at least the slot size (`shmbus_queue_slot_size`),
/// so that every item fits: otherwise nothing is taken, `*len` is set to
/// the slot size and `SHMBUS_BUFFER_TOO_SMALL` returned.
///
/// Errors: `SHMBUS_EMPTY` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_BUS_CLOSED`,
/// `SHMBUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `q` is NULL or a live queue handle; `buf` NULL or writable for `cap`
/// bytes; `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_get(
    q: *const shmbus_queue,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        check_ptr(len, "len")?;
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        let need = q.slot_size();
        if cap < need {
            // SAFETY: `len` checked above; writable by the contract.
            unsafe { put(len, need, "len") }?;
            return Err(too_small(need, cap));
        }
        // SAFETY: delegated to the caller.
        let buf = unsafe { slice_mut(buf.cast::<u8>(), cap, "buf") }?;
        // Every item fits: `cap` is at least the slot size.
        let copy = |b: &[u8]| {
            buf[..b.len()].copy_from_slice(b);
            b.len()
        };
        let n = ok(match until {
            Wait::Try => q.try_get_with(copy),
            Wait::Forever => q.get_with(copy),
            Wait::For(d) => q.get_with_timeout(d, copy),
        })?;
        // SAFETY: `len` checked above; writable by the contract.
        unsafe { put(len, n, "len") }
    })
}

/// Takes the next item in place, waiting at most `timeout_ns` (0: try once,
/// -1: forever), and calls `f(ctx, data, len)` with it (zero-copy); the
/// cell is released when `f` returns.
///
/// Errors: as `shmbus_queue_get`, without `SHMBUS_BUFFER_TOO_SMALL`;
/// `SHMBUS_NULL_POINTER` if `f` is NULL.
///
/// # Safety
/// `q` is NULL or a live queue handle; `f` NULL or a function that may be
/// called with `ctx` (see `shmbus_frame_fn`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_get_with(
    q: *const shmbus_queue,
    f: shmbus_frame_fn,
    ctx: *mut c_void,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        let Some(f) = f else {
            return Err(crate::ffi::null("f"));
        };
        // SAFETY: `f` may be called with `ctx` and an item by the contract;
        // `b` is valid for its length during the call.
        let call = |b: &[u8]| unsafe { f(ctx, b.as_ptr().cast(), b.len()) };
        ok(match until {
            Wait::Try => q.try_get_with(call),
            Wait::Forever => q.get_with(call),
            Wait::For(d) => q.get_with_timeout(d, call),
        })
    })
}

/// Marks one item taken earlier as processed (Python's
/// `JoinableQueue.task_done`).
///
/// Errors: `SHMBUS_TASK_DONE` (more calls than items put), `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `q` is NULL or a live queue handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_task_done(q: *const shmbus_queue) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        ok(q.task_done())
    })
}

/// Waits at most `timeout_ns` (0: check once, -1: forever) until every
/// item put has been marked done with `shmbus_queue_task_done`.
///
/// Errors: `SHMBUS_TIMEOUT` (also for 0 when items are unfinished),
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `q` is NULL or a live queue handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_join(
    q: *const shmbus_queue,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        ok(match until {
            Wait::Try => q.join_timeout(std::time::Duration::ZERO),
            Wait::Forever => q.join(),
            Wait::For(d) => q.join_timeout(d),
        })
    })
}

/// Stores the number of items in the queue now (an approximation while
/// others put and get) in `*out`.
///
/// # Safety
/// `q` is NULL or a live queue handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_len(
    q: *const shmbus_queue,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        // SAFETY: delegated to the caller.
        unsafe { put(out, q.len(), "out") }
    })
}

/// Stores the queue's slot size, the largest item it takes, in `*out`.
///
/// # Safety
/// `q` is NULL or a live queue handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_slot_size(
    q: *const shmbus_queue,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        // SAFETY: delegated to the caller.
        unsafe { put(out, q.slot_size(), "out") }
    })
}

/// Stores the number of items put and not yet marked done in `*out`.
///
/// # Safety
/// `q` is NULL or a live queue handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_queue_unfinished(
    q: *const shmbus_queue,
    out: *mut u64,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let q = &unsafe { handle(q, "q") }?.q;
        // SAFETY: delegated to the caller.
        unsafe { put(out, q.unfinished(), "out") }
    })
}
