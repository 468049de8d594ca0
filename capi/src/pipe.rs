//! Pipe ends: `shmbus_pipe_sender` (send, zero-copy claim/commit) and
//! `shmbus_pipe_receiver` (receive into a buffer, or in place through a
//! callback).

use std::ffi::{c_char, c_void};
use std::fmt;
use std::ptr::NonNull;

use shmbus_client::{Bus, Error, PipeClaim, PipeReceiver, PipeSender};

use crate::bus::{opener, shmbus_bus};
use crate::ffi::{
    check_ptr, check_timeout, fail, free_box, guard, handle_mut, new_box, ok, put, slice,
    slice_mut, wait, Wait,
};
use crate::status::shmbus_status;

/// The sending end of a pipe. One holder on the whole bus at a time.
///
/// Thread safety: one thread at a time (it may move between threads); calls
/// on one sender from two threads at once are undefined behaviour.
pub struct shmbus_pipe_sender {
    /// The frame claimed by `shmbus_pipe_claim`, until commit or cancel. It
    /// borrows `*tx`; declared first, so dropped before `tx` is freed.
    claim: Option<PipeClaim<'static>>,
    /// The sender, in an allocation of its own (from `Box::into_raw`), so
    /// that a `&mut shmbus_pipe_sender` covers none of the memory `claim`
    /// borrows; touched only while `claim` is `None`.
    tx: NonNull<PipeSender>,
    /// `tx.max_frame()`, kept here so that it can be read while a claim is
    /// open.
    max_frame: usize,
}

impl fmt::Debug for shmbus_pipe_sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("shmbus_pipe_sender")
            .field("claimed", &self.claim.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for shmbus_pipe_sender {
    fn drop(&mut self) {
        // The claim first: it borrows the sender.
        self.claim = None;
        // SAFETY: `tx` came from `Box::into_raw` in `shmbus_pipe_sender_open`
        // and is freed only here; no claim borrows it any more.
        drop(unsafe { Box::from_raw(self.tx.as_ptr()) });
    }
}

impl shmbus_pipe_sender {
    /// The sender, if no claim is open.
    #[inline(always)]
    fn sender(&mut self) -> Result<&mut PipeSender, shmbus_status> {
        if self.claim.is_some() {
            return Err(claim_open());
        }
        // SAFETY: `tx` is live until drop; no claim borrows it (checked), and
        // `&mut self` makes this the only use.
        Ok(unsafe { self.tx.as_mut() })
    }
}

#[cold]
#[inline(never)]
fn claim_open() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "a claimed frame is open on this sender: shmbus_pipe_commit or shmbus_pipe_cancel it first",
    )
}

/// The receiving end of a pipe. One holder on the whole bus at a time.
///
/// Thread safety: one thread at a time (it may move between threads).
#[derive(Debug)]
pub struct shmbus_pipe_receiver {
    rx: PipeReceiver,
    /// A frame taken from the pipe that did not fit the caller's buffer: the
    /// next receive returns it first.
    pending: Option<Vec<u8>>,
}

/// Called with one received frame, in place in shared memory: `data` is
/// valid for `len` bytes until the callback returns, and the sender cannot
/// reuse them until then. `ctx` is the caller's pointer, passed through.
/// The callback must not call into the same receiver. A C++ exception
/// thrown out of it aborts the process.
pub type shmbus_frame_fn =
    Option<unsafe extern "C-unwind" fn(ctx: *mut c_void, data: *const c_void, len: usize)>;

/// The pipe `name` on `bus`, created with `capacity` bytes (a power of two;
/// 0: the daemon's default) if absent.
fn open_pipe(bus: &Bus, name: &str, capacity: u64) -> Result<shmbus_client::Pipe, shmbus_status> {
    ok(if capacity == 0 {
        bus.pipe(name)
    } else {
        bus.pipe_with_capacity(name, capacity)
    })
}

/// Opens pipe `name` (creating it with `capacity` bytes, a power of two, or
/// the daemon's default for 0) and claims its sending end into `*out`.
///
/// Errors: `SHMBUS_BUSY` (another handle holds the end), `SHMBUS_PARAM_MISMATCH`
/// (the pipe exists with another capacity), the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_sender_open(
    bus: *const shmbus_bus,
    name: *const c_char,
    capacity: u64,
    out: *mut *mut shmbus_pipe_sender,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let tx = ok(open_pipe(bus, name, capacity)?.sender())?;
        let h = new_box(shmbus_pipe_sender {
            claim: None,
            max_frame: tx.max_frame(),
            tx: NonNull::from(Box::leak(Box::new(tx))),
        });
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Releases the sending end and frees the handle (NULL: nothing). An open
/// claim is dropped unpublished. The receiver sees end of file once it has
/// read everything.
///
/// # Safety
/// `tx` is NULL or a live sender handle, freed once, by one thread.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_sender_free(tx: *mut shmbus_pipe_sender) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(tx) }
}

/// Sends the `len` bytes at `data` as one frame, waiting at most
/// `timeout_ns` (0: try once, -1: forever) while the pipe is full.
///
/// Errors: `SHMBUS_FULL` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_DISCONNECTED`
/// (the receiver has gone and the pipe is full), `SHMBUS_TOO_LARGE` (more
/// than capacity / 8 bytes), `SHMBUS_BUS_CLOSED`, `SHMBUS_BAD_STATE` (a claim
/// is open).
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only; `data` is
/// NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_send(
    tx: *mut shmbus_pipe_sender,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        check_timeout(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(tx, "tx") }?;
        // SAFETY: delegated to the caller.
        let frame = unsafe { slice(data.cast::<u8>(), len, "data") }?;
        let tx = h.sender()?;
        // Every form tries first, inline; only a wait goes out of line, and
        // only it decodes the timeout.
        match tx.try_send(frame) {
            Err(Error::Full) if timeout_ns != 0 => ok(send_waiting(tx, frame, wait(timeout_ns)?)),
            r => ok(r),
        }
    })
}

/// The waiting forms of `shmbus_pipe_send`, after a `try_send` found the
/// pipe full; out of line: inlined, they made every call save more registers
/// (callgrind: 13 instructions per send).
#[inline(never)]
fn send_waiting(tx: &mut PipeSender, frame: &[u8], until: Wait) -> shmbus_client::Result<()> {
    match until {
        Wait::For(d) => tx.send_timeout(frame, d),
        _ => tx.send(frame),
    }
}

/// Claims room for a frame of `len` bytes in the ring (zero-copy), waiting
/// at most `timeout_ns` (0: try once, -1: forever), and stores its address
/// in `*data` (contents unspecified). Write the frame there, then publish it
/// with `shmbus_pipe_commit`, or drop it with `shmbus_pipe_cancel`. Until
/// then the sender takes no other send or claim.
///
/// Errors: as `shmbus_pipe_send`.
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only; `data` is
/// NULL or writable. The claimed bytes are valid until commit, cancel or
/// free.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_claim(
    tx: *mut shmbus_pipe_sender,
    len: usize,
    data: *mut *mut c_void,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        check_ptr(data, "data")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(tx, "tx") }?;
        h.sender()?;
        // SAFETY:
        // - `tx` is live until `h` is dropped, and `Drop` drops the claim
        //   before freeing it, so `'static` outlives no use of the borrow;
        // - no other reference to `*tx` exists while the claim does: every
        //   other path reaches `*tx` through `sender()`, which refuses while
        //   `claim` is `Some`, and `h` itself does not contain `*tx`.
        let tx: &'static mut PipeSender = unsafe { &mut *h.tx.as_ptr() };
        let mut claim = ok(match until {
            Wait::Try => tx.try_claim(len),
            Wait::Forever => tx.claim(len),
            Wait::For(d) => tx.claim_timeout(len, d),
        })?;
        let at = claim.as_mut_ptr().cast::<c_void>();
        h.claim = Some(claim);
        // SAFETY: `data` checked above; writable by the contract.
        unsafe { put(data, at, "data") }
    })
}

/// Publishes the frame claimed by `shmbus_pipe_claim`.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_commit(tx: *mut shmbus_pipe_sender) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(tx, "tx") }?;
        match h.claim.take() {
            Some(c) => ok(c.commit()),
            None => Err(no_claim()),
        }
    })
}

/// Drops the frame claimed by `shmbus_pipe_claim` unpublished.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_cancel(tx: *mut shmbus_pipe_sender) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(tx, "tx") }?;
        match h.claim.take() {
            // Nothing to undo: an unpublished claim is room the next send
            // claims again.
            Some(_) => Ok(()),
            None => Err(no_claim()),
        }
    })
}

#[cold]
#[inline(never)]
fn no_claim() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "no claimed frame is open on this sender: call shmbus_pipe_claim first",
    )
}

/// Stores the largest frame the pipe takes (capacity / 8 bytes) in `*out`.
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_sender_max_frame(
    tx: *mut shmbus_pipe_sender,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(tx, "tx") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, h.max_frame, "out") }
    })
}

/// Opens pipe `name` (creating it with `capacity` bytes, or the daemon's
/// default for 0) and claims its receiving end into `*out`.
///
/// Errors: as `shmbus_pipe_sender_open`.
///
/// # Safety
/// As `shmbus_pipe_sender_open`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_receiver_open(
    bus: *const shmbus_bus,
    name: *const c_char,
    capacity: u64,
    out: *mut *mut shmbus_pipe_receiver,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let rx = ok(open_pipe(bus, name, capacity)?.receiver())?;
        let h = new_box(shmbus_pipe_receiver { rx, pending: None });
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Releases the receiving end and frees the handle (NULL: nothing).
///
/// # Safety
/// `rx` is NULL or a live receiver handle, freed once, by one thread.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_receiver_free(rx: *mut shmbus_pipe_receiver) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(rx) }
}

/// Stores the largest frame the pipe carries (capacity / 8 bytes) in
/// `*out`: a buffer that large always fits.
///
/// # Safety
/// `rx` is NULL or a live receiver handle used by this thread only; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_receiver_max_frame(
    rx: *mut shmbus_pipe_receiver,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(rx, "rx") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, h.rx.max_frame(), "out") }
    })
}

/// Receives the next frame into the `cap` bytes at `buf`, waiting at most
/// `timeout_ns` (0: try once, -1: forever), and stores its length in
/// `*len`. If the frame is longer than `cap`, nothing is copied, `*len` is
/// set to the length needed and `SHMBUS_BUFFER_TOO_SMALL` returned; the frame
/// is kept, and the next receive on this handle returns it (`cap` 0 with
/// `buf` NULL asks for the size).
///
/// Errors: `SHMBUS_EMPTY` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_DISCONNECTED`
/// (end of file), `SHMBUS_BUS_CLOSED`, `SHMBUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `rx` is NULL or a live receiver handle used by this thread only; `buf`
/// NULL or writable for `cap` bytes; `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_recv(
    rx: *mut shmbus_pipe_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        check_timeout(timeout_ns)?;
        check_ptr(len, "len")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(rx, "rx") }?;
        // SAFETY: delegated to the caller.
        let buf = unsafe { slice_mut(buf.cast::<u8>(), cap, "buf") }?;
        if h.pending.is_some() {
            // SAFETY: `len` checked above; writable by the contract.
            return unsafe { recv_pending(h, buf, len) };
        }
        // A frame that does not fit is kept in `pending` (and its length
        // returned all the same), so that the closure's result stays a
        // `usize`, as in the Rust library's own `recv_with` copies.
        let pending = &mut h.pending;
        let mut copy = |b: &[u8]| {
            match buf.get_mut(..b.len()) {
                Some(dst) => dst.copy_from_slice(b),
                None => *pending = Some(b.to_vec()),
            }
            b.len()
        };
        // Every form tries first, inline; only a wait goes out of line, and
        // only it decodes the timeout.
        let n = match h.rx.try_recv_with(&mut copy) {
            Err(Error::Empty) if timeout_ns != 0 => {
                ok(recv_waiting(&mut h.rx, wait(timeout_ns)?, copy))?
            }
            r => ok(r)?,
        };
        // SAFETY: `len` checked above; writable by the contract.
        unsafe { put(len, n, "len") }?;
        if h.pending.is_some() {
            return Err(too_small(n, cap));
        }
        Ok(())
    })
}

/// `shmbus_pipe_recv` when a frame too large for an earlier buffer is
/// pending: returns it if `buf` takes it now, else its size again.
///
/// # Safety
/// `len` is writable (checked by the caller).
#[cold]
#[inline(never)]
unsafe fn recv_pending(
    h: &mut shmbus_pipe_receiver,
    buf: &mut [u8],
    len: *mut usize,
) -> Result<(), shmbus_status> {
    let Some(frame) = h.pending.take() else {
        return Ok(());
    };
    let n = frame.len();
    // SAFETY: delegated to the caller.
    unsafe { put(len, n, "len") }?;
    match buf.get_mut(..n) {
        Some(dst) => {
            dst.copy_from_slice(&frame);
            Ok(())
        }
        None => {
            let cap = buf.len();
            h.pending = Some(frame);
            Err(too_small(n, cap))
        }
    }
}

/// The waiting forms of the receives, out of line (as `send_waiting`).
#[inline(never)]
fn recv_waiting<R>(
    rx: &mut PipeReceiver,
    until: Wait,
    f: impl FnOnce(&[u8]) -> R,
) -> shmbus_client::Result<R> {
    match until {
        Wait::For(d) => rx.recv_with_timeout(d, f),
        _ => rx.recv_with(f),
    }
}

#[cold]
#[inline(never)]
pub(crate) fn too_small(need: usize, cap: usize) -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BUFFER_TOO_SMALL,
        format!("the frame is {need} bytes, the buffer {cap}: *len holds the size needed"),
    )
}

/// Receives the next frame in place, waiting at most `timeout_ns` (0: try
/// once, -1: forever), and calls `f(ctx, data, len)` with it (zero-copy);
/// the frame is released when `f` returns.
///
/// Errors: as `shmbus_pipe_recv`, without `SHMBUS_BUFFER_TOO_SMALL`;
/// `SHMBUS_NULL_POINTER` if `f` is NULL.
///
/// # Safety
/// `rx` is NULL or a live receiver handle used by this thread only; `f`
/// NULL or a function that may be called with `ctx` (see
/// `shmbus_frame_fn`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_pipe_recv_with(
    rx: *mut shmbus_pipe_receiver,
    f: shmbus_frame_fn,
    ctx: *mut c_void,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(rx, "rx") }?;
        let Some(f) = f else {
            return Err(crate::ffi::null("f"));
        };
        // SAFETY: `f` may be called with `ctx` and a frame by the contract;
        // `b` is valid for its length during the call.
        let call = |b: &[u8]| unsafe { f(ctx, b.as_ptr().cast(), b.len()) };
        if let Some(frame) = h.pending.take() {
            call(&frame);
            return Ok(());
        }
        match (h.rx.try_recv_with(call), until) {
            (Err(Error::Empty), Wait::Forever | Wait::For(_)) => {
                ok(recv_waiting(&mut h.rx, until, call))
            }
            (r, _) => ok(r),
        }
    })
}
