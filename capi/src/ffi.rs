//! The boundary: every exported call runs its body through [`guard`] (a panic
//! becomes `SHMBUS_PANIC`), checks its pointers with the helpers here (NULL,
//! alignment, length), and records a failure's message in a thread-local for
//! `shmbus_last_error`.
//!
//! A client error is stored as it is and formatted only when
//! `shmbus_last_error` asks, so that a polling loop that sees
//! `SHMBUS_EMPTY` a million times pays for no formatting.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use shmbus_client::Error;

use crate::status::{code, shmbus_status};

/// What the latest failure on this thread was.
enum Last {
    None,
    Client(Error),
    Text(String),
}

struct LastError {
    last: Last,
    /// `last` formatted, once asked for; what `shmbus_last_error` points to.
    formatted: Option<CString>,
}

thread_local! {
    static LAST: RefCell<LastError> = const {
        RefCell::new(LastError { last: Last::None, formatted: None })
    };
}

fn set_last(last: Last) {
    // `try_with`: during thread teardown the slot may be gone; the status
    // code is still returned.
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.last = last;
            l.formatted = None;
        }
    });
}

/// Records a client error and returns its code.
#[cold]
#[inline(never)]
pub(crate) fn client(e: Error) -> shmbus_status {
    let c = code(&e);
    set_last(Last::Client(e));
    c
}

/// Records a failure found at the boundary and returns `status`.
#[cold]
#[inline(never)]
pub(crate) fn fail(status: shmbus_status, message: impl Into<String>) -> shmbus_status {
    set_last(Last::Text(message.into()));
    status
}

/// The latest failure's message on this thread, as a C string that lives
/// until the next failing call on this thread.
pub(crate) fn last_error() -> *const c_char {
    const NONE: &CStr = c"no error";
    LAST.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return NONE.as_ptr();
        };
        if l.formatted.is_none() {
            let text = match &l.last {
                Last::None => return NONE.as_ptr(),
                Last::Client(e) => e.to_string(),
                Last::Text(t) => t.clone(),
            };
            l.formatted = Some(c_string(text));
        }
        l.formatted.as_ref().map_or(NONE.as_ptr(), |c| c.as_ptr())
    })
    .unwrap_or(NONE.as_ptr())
}

/// `text` as a C string, any NUL inside replaced.
fn c_string(text: String) -> CString {
    CString::new(text).unwrap_or_else(|e| {
        let bytes: Vec<u8> = e
            .into_vec()
            .into_iter()
            .map(|b| if b == 0 { b'?' } else { b })
            .collect();
        CString::new(bytes).unwrap_or_default()
    })
}

/// Runs an exported call's body: `Ok` is `SHMBUS_OK`, `Err` its code, a
/// panic `SHMBUS_PANIC` (with the panic's message as the last error). No
/// panic unwinds into C.
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> Result<(), shmbus_status>) -> shmbus_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => shmbus_status::SHMBUS_OK,
        Ok(Err(s)) => s,
        Err(payload) => panicked(payload),
    }
}

#[cold]
#[inline(never)]
fn panicked(payload: Box<dyn std::any::Any + Send>) -> shmbus_status {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    // Dropping the payload could itself panic (a payload with a panicking
    // Drop); forget it rather than risk unwinding out of here.
    std::mem::forget(payload);
    fail(
        shmbus_status::SHMBUS_PANIC,
        format!("internal panic in libshmbus (please report): {what}"),
    )
}

/// `Err(SHMBUS_NULL_POINTER)` naming `what`.
#[cold]
#[inline(never)]
pub(crate) fn null(what: &str) -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_NULL_POINTER,
        format!("{what} is NULL"),
    )
}

#[cold]
#[inline(never)]
fn misaligned(what: &str, align: usize) -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_MISALIGNED,
        format!("{what} is not aligned to {align} bytes"),
    )
}

/// Checks that `p` is neither NULL nor misaligned for `T`.
#[inline(always)]
pub(crate) fn check_ptr<T>(p: *const T, what: &str) -> Result<(), shmbus_status> {
    if p.is_null() {
        return Err(null(what));
    }
    if !(p as usize).is_multiple_of(align_of::<T>()) {
        return Err(misaligned(what, align_of::<T>()));
    }
    Ok(())
}

/// Checks an optional pointer: NULL passes, otherwise as [`check_ptr`].
#[inline(always)]
pub(crate) fn check_ptr_opt<T>(p: *const T, what: &str) -> Result<(), shmbus_status> {
    if p.is_null() {
        Ok(())
    } else {
        check_ptr(p, what)
    }
}

/// The handle behind `p`.
///
/// # Safety
/// `p` is NULL, misaligned, or a live handle from this library that no other
/// thread is using mutably.
#[inline(always)]
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T, shmbus_status> {
    check_ptr(p, what)?;
    // SAFETY: not NULL and aligned (checked); live and unshared by the
    // caller's contract.
    Ok(unsafe { &*p })
}

/// The handle behind `p`, mutably.
///
/// # Safety
/// `p` is NULL, misaligned, or a live handle from this library that no other
/// thread is using.
#[inline(always)]
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, shmbus_status> {
    check_ptr(p, what)?;
    // SAFETY: not NULL and aligned (checked); live and not used elsewhere
    // by the caller's contract.
    Ok(unsafe { &mut *p })
}

/// Writes `v` through the out-pointer `p`.
///
/// # Safety
/// `p` is NULL, misaligned, or valid for a write of a `T`.
#[inline(always)]
pub(crate) unsafe fn put<T>(p: *mut T, v: T, what: &str) -> Result<(), shmbus_status> {
    check_ptr(p, what)?;
    // SAFETY: not NULL and aligned (checked); writable by the caller's
    // contract. `write` drops nothing that was there.
    unsafe { p.write(v) };
    Ok(())
}

/// Writes `v` through `p` if `p` is not NULL (an optional out-pointer).
///
/// # Safety
/// As [`put`].
#[inline(always)]
pub(crate) unsafe fn put_opt<T>(p: *mut T, v: T, what: &str) -> Result<(), shmbus_status> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: delegated to the caller.
    unsafe { put(p, v, what) }
}

/// Moves `v` to the heap for C: the handle `shmbus_*_free` takes back.
pub(crate) fn new_box<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Frees a handle made by [`new_box`] (NULL: nothing). A panic while
/// dropping it is caught and forgotten: a free has no status to return.
///
/// # Safety
/// `p` is NULL or came from [`new_box`] with the same `T`, and is freed once,
/// by one thread, when no other thread uses it.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    let drop_it = AssertUnwindSafe(|| {
        // SAFETY: made by `Box::into_raw` (`new_box`), freed once by the
        // contract.
        drop(unsafe { Box::from_raw(p) });
    });
    let _ = catch_unwind(drop_it);
}

/// Checks a length against what a slice may hold.
#[inline(always)]
fn check_len<T>(len: usize, what: &str) -> Result<(), shmbus_status> {
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(fail(
            shmbus_status::SHMBUS_INVALID_ARGUMENT,
            format!("length {len} of {what} is larger than any buffer can be"),
        ));
    }
    Ok(())
}

/// The `len` elements at `p` (NULL allowed when `len` is 0).
///
/// # Safety
/// If `len > 0`, `p` is NULL, misaligned or valid for reads of `len`
/// elements that nobody writes during the call.
#[inline(always)]
pub(crate) unsafe fn slice<'a, T>(
    p: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], shmbus_status> {
    if len == 0 {
        return Ok(&[]);
    }
    check_len::<T>(len, what)?;
    check_ptr(p, what)?;
    // SAFETY: not NULL, aligned, length within isize (checked); readable for
    // `len` elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The `len` elements at `p`, to write (NULL allowed when `len` is 0).
///
/// # Safety
/// If `len > 0`, `p` is NULL, misaligned or valid for reads and writes of
/// `len` elements that nobody else touches during the call.
#[inline(always)]
pub(crate) unsafe fn slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    what: &str,
) -> Result<&'a mut [T], shmbus_status> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_len::<T>(len, what)?;
    check_ptr(p, what)?;
    // SAFETY: as in `slice`, and writable and unaliased by the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// The NUL-terminated UTF-8 string at `p`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that nobody writes
/// during the call.
pub(crate) unsafe fn name<'a>(p: *const c_char, what: &str) -> Result<&'a str, shmbus_status> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: not NULL; NUL-terminated and stable by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        fail(
            shmbus_status::SHMBUS_INVALID_ARGUMENT,
            format!("{what} is not UTF-8: {}", c.to_string_lossy()),
        )
    })
}

/// How long a call may wait, from its `timeout_ns` argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// `0`: try once, never block (`SHMBUS_EMPTY` / `SHMBUS_FULL`).
    Try,
    /// `-1`: wait as long as it takes.
    Forever,
    /// `> 0`: at most this long (`SHMBUS_TIMEOUT`).
    For(Duration),
}

/// The [`Wait`] for `timeout_ns`: `0` tries, `-1` waits forever, a positive
/// number waits at most that many nanoseconds; anything else is an error.
#[inline(always)]
pub(crate) fn wait(timeout_ns: i64) -> Result<Wait, shmbus_status> {
    match timeout_ns {
        0 => Ok(Wait::Try),
        -1 => Ok(Wait::Forever),
        n if n > 0 => Ok(Wait::For(Duration::from_nanos(n.unsigned_abs()))),
        n => Err(bad_timeout(n)),
    }
}

/// Checks `timeout_ns` as [`wait`] does, without decoding it: for calls that
/// try first and decode it (with `wait`) only when they must wait.
#[inline(always)]
pub(crate) fn check_timeout(timeout_ns: i64) -> Result<(), shmbus_status> {
    if timeout_ns < -1 {
        return Err(bad_timeout(timeout_ns));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn bad_timeout(n: i64) -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_INVALID_ARGUMENT,
        format!("timeout {n} ns: use 0 (try), -1 (forever) or a positive number"),
    )
}

/// Maps a client result to the boundary's.
#[inline(always)]
pub(crate) fn ok<T>(r: shmbus_client::Result<T>) -> Result<T, shmbus_status> {
    r.map_err(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let s = guard(|| panic!("boom"));
        assert_eq!(s, shmbus_status::SHMBUS_PANIC);
        // SAFETY: `last_error` returns a NUL-terminated string that lives
        // until the next failure on this thread.
        let msg = unsafe { CStr::from_ptr(last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"), "{msg:?}");
    }

    #[test]
    fn client_errors_are_formatted_when_asked() {
        assert_eq!(client(Error::Empty), shmbus_status::SHMBUS_EMPTY);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(last_error()) };
        assert_eq!(msg.to_str().unwrap(), Error::Empty.to_string());
    }

    #[test]
    fn timeouts() {
        assert!(matches!(wait(0), Ok(Wait::Try)));
        assert!(matches!(wait(-1), Ok(Wait::Forever)));
        assert!(matches!(wait(5), Ok(Wait::For(d)) if d == Duration::from_nanos(5)));
        assert_eq!(
            wait(-2).unwrap_err(),
            shmbus_status::SHMBUS_INVALID_ARGUMENT
        );
        assert_eq!(
            wait(i64::MIN).unwrap_err(),
            shmbus_status::SHMBUS_INVALID_ARGUMENT
        );
        for ok in [-1, 0, 5, i64::MAX] {
            assert!(check_timeout(ok).is_ok(), "{ok}");
        }
        for bad in [-2, i64::MIN] {
            assert_eq!(
                check_timeout(bad).unwrap_err(),
                shmbus_status::SHMBUS_INVALID_ARGUMENT
            );
        }
    }

    #[test]
    fn pointers() {
        let x = 7u64;
        let p = std::ptr::addr_of!(x)
            .cast::<u8>()
            .wrapping_add(1)
            .cast::<u64>();
        assert_eq!(
            check_ptr(p, "p").unwrap_err(),
            shmbus_status::SHMBUS_MISALIGNED
        );
        assert_eq!(
            check_ptr(std::ptr::null::<u64>(), "p").unwrap_err(),
            shmbus_status::SHMBUS_NULL_POINTER
        );
        // SAFETY: length 0 never reads the (NULL) pointer.
        assert!(unsafe { slice(std::ptr::null::<u8>(), 0, "s") }
            .unwrap()
            .is_empty());
        // SAFETY: the length check fails before the pointer is used.
        let e = unsafe { slice(std::ptr::null::<u64>(), usize::MAX / 2, "s") }.unwrap_err();
        assert_eq!(e, shmbus_status::SHMBUS_INVALID_ARGUMENT);
    }
}
