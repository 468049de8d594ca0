//! Topics: `shmbus_topic` (the opened topic), `shmbus_topic_publisher`
//! (publish, or claim, write in place and commit: in `topic/publisher.rs`)
//! and `shmbus_topic_subscriber` (receive into a buffer, or in place through
//! a callback).

use std::ffi::{c_char, c_void};

use shmbus_client::{Error, Subscriber, Topic};

use crate::bus::{opener, shmbus_bus};
use crate::ffi::{
    check_ptr, check_ptr_opt, client, free_box, guard, handle, handle_mut, new_box, ok, put,
    put_opt, slice_mut, wait, Wait,
};
use crate::pipe::{shmbus_frame_fn, too_small};
use crate::status::shmbus_status;

pub mod publisher;

/// An opened topic: makes publishers and subscribers.
///
/// Thread safety: any thread, any time; several threads may open
/// publishers and subscribers from one topic handle at once.
#[derive(Debug)]
pub struct shmbus_topic {
    topic: Topic,
}

/// A place among a topic's subscribers: it receives every message published
/// after it joined, once, in the order every subscriber sees.
///
/// Thread safety: one thread at a time (it may move between threads).
#[derive(Debug)]
pub struct shmbus_topic_subscriber {
    s: Subscriber,
    /// A message taken from the topic that did not fit the caller's buffer:
    /// the next receive returns it first.
    pending: Option<Vec<u8>>,
}

/// Opens topic `name`, creating it if absent. `slots` (a power of two, 2 to
/// 2^24) and `slot_size` (the largest message, 1 byte to 1 MiB): 0 takes the
/// default (1024 slots of 256 bytes) when creating and accepts any when
/// opening. `lossy` (0 or 1) and `max_subscribers` (1 to 1024) form one
/// parameter: with `lossy` 0 and `max_subscribers` 0 an existing topic is
/// opened whatever its mode and a new one is lossless with up to 64
/// subscribers; otherwise both are asked for (`max_subscribers` 0: 64).
/// In a lossless topic publishers wait for the slowest subscriber; in a
/// lossy one they never wait, and a subscriber a ring behind gets
/// `SHMBUS_LAGGED`.
///
/// Errors: `SHMBUS_BAD_PARAMS`, `SHMBUS_PARAM_MISMATCH` (the topic exists
/// with other parameters), `SHMBUS_KIND_MISMATCH`, the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_open(
    bus: *const shmbus_bus,
    name: *const c_char,
    slots: u64,
    slot_size: u64,
    lossy: i32,
    max_subscribers: u64,
    out: *mut *mut shmbus_topic,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let mut b = bus.topic_builder(name);
        if slots != 0 {
            b = b.slots(slots);
        }
        if slot_size != 0 {
            b = b.slot_size(slot_size);
        }
        match lossy {
            0 => {}
            1 => b = b.lossy(true),
            _ => {
                return Err(crate::ffi::fail(
                    shmbus_status::SHMBUS_INVALID_ARGUMENT,
                    format!("lossy is {lossy}: give 0 or 1"),
                ))
            }
        }
        if max_subscribers != 0 {
            b = b.max_subscribers(max_subscribers);
        }
        let topic = ok(b.open())?;
        let h = new_box(shmbus_topic { topic });
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Frees a topic handle (NULL: nothing). Publishers and subscribers opened
/// from it stay usable.
///
/// # Safety
/// `topic` is NULL or a live topic handle, freed once, when no other thread
/// uses it.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_free(topic: *mut shmbus_topic) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(topic) }
}

/// Stores the topic's slot size (the largest message, in bytes) in `*out`:
/// a receive buffer that large always fits.
///
/// # Safety
/// `topic` is NULL or a live topic handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_slot_size(
    topic: *const shmbus_topic,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let t = unsafe { handle(topic, "topic") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, t.topic.slot_size(), "out") }
    })
}

/// Joins `topic` into `*out`: the subscriber receives every message
/// published from now on, and first up to the last `history` messages still
/// in the ring (0: none).
///
/// Errors: `SHMBUS_TOO_MANY_SUBSCRIBERS`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `topic` is NULL or a live topic handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_subscriber_open(
    topic: *const shmbus_topic,
    history: u64,
    out: *mut *mut shmbus_topic_subscriber,
) -> shmbus_status {
    guard(|| {
        check_ptr(out, "out")?;
        // SAFETY: delegated to the caller.
        let t = unsafe { handle(topic, "topic") }?;
        let s = ok(t.topic.subscribe_with_history(history))?;
        let h = new_box(shmbus_topic_subscriber { s, pending: None });
        // SAFETY: `out` checked above; writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Leaves the topic and frees the subscriber (NULL: nothing); publishers of
/// a lossless topic no longer wait for it.
///
/// # Safety
/// `subscriber` is NULL or a live subscriber handle, freed once, by one
/// thread.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_subscriber_free(subscriber: *mut shmbus_topic_subscriber) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(subscriber) }
}

/// Maps a receive's result, storing a lagged count in `*missed`.
///
/// # Safety
/// `missed` is NULL or writable.
unsafe fn lagged<T>(r: shmbus_client::Result<T>, missed: *mut u64) -> Result<T, shmbus_status> {
    match r {
        Ok(v) => Ok(v),
        Err(Error::Lagged(n)) => {
            // SAFETY: delegated to the caller.
            unsafe { put_opt(missed, n, "missed") }?;
            Err(client(Error::Lagged(n)))
        }
        Err(e) => Err(client(e)),
    }
}

/// Runs `f` on the next message, trying first and then waiting as `until`
/// says.
fn recv_with<R>(
    s: &Subscriber,
    until: Wait,
    f: impl FnOnce(&[u8]) -> R,
) -> shmbus_client::Result<R> {
    match until {
        Wait::Try => s.try_recv_with(f),
        Wait::Forever => s.recv_with(f),
        Wait::For(d) => s.recv_with_timeout(d, f),
    }
}

/// Receives the next message into the `cap` bytes at `buf`, waiting at most
/// `timeout_ns` (0: try once, -1: forever), and stores its length in `*len`.
/// If the message is longer than `cap`, nothing is copied, `*len` is set to
/// the length needed and `SHMBUS_BUFFER_TOO_SMALL` returned; the message is
/// kept, and the next receive on this handle returns it (`cap` 0 with `buf`
/// NULL asks for the size; the slot size always fits).
///
/// `SHMBUS_LAGGED` (lossy topics): the subscriber fell a ring behind and the
/// number of messages it missed is stored in `*missed` (if not NULL); the
/// next receive continues with the oldest message still in the ring.
///
/// Errors: `SHMBUS_EMPTY` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_LAGGED`,
/// `SHMBUS_BUS_CLOSED`, `SHMBUS_CORRUPT`, `SHMBUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `subscriber` is NULL or a live subscriber handle used by this thread
/// only; `buf` NULL or writable for `cap` bytes; `len` NULL or writable;
/// `missed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_recv(
    subscriber: *mut shmbus_topic_subscriber,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    missed: *mut u64,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        check_ptr(len, "len")?;
        check_ptr_opt(missed, "missed")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(subscriber, "subscriber") }?;
        // SAFETY: delegated to the caller.
        let buf = unsafe { slice_mut(buf.cast::<u8>(), cap, "buf") }?;
        if let Some(msg) = h.pending.take() {
            let n = msg.len();
            // SAFETY: `len` checked above; writable by the contract.
            unsafe { put(len, n, "len") }?;
            return match buf.get_mut(..n) {
                Some(dst) => {
                    dst.copy_from_slice(&msg);
                    Ok(())
                }
                None => {
                    h.pending = Some(msg);
                    Err(too_small(n, cap))
                }
            };
        }
        // A message that does not fit is kept in `pending`, as the pipe's.
        let pending = &mut h.pending;
        let copy = |b: &[u8]| {
            match buf.get_mut(..b.len()) {
                Some(dst) => dst.copy_from_slice(b),
                None => *pending = Some(b.to_vec()),
            }
            b.len()
        };
        // SAFETY: `missed` is NULL or writable by the contract.
        let n = unsafe { lagged(recv_with(&h.s, until, copy), missed) }?;
        // SAFETY: `len` checked above; writable by the contract.
        unsafe { put(len, n, "len") }?;
        if h.pending.is_some() {
            return Err(too_small(n, cap));
        }
        Ok(())
    })
}

/// Receives the next message, waiting at most `timeout_ns` (0: try once,
/// -1: forever), and calls `f(ctx, data, len)` with it: in place in a
/// lossless topic (zero-copy; publishers cannot reuse the slot until `f`
/// returns), a validated copy in a lossy one.
///
/// Errors: as `shmbus_topic_recv` (`SHMBUS_LAGGED` with `*missed`), without
/// `SHMBUS_BUFFER_TOO_SMALL`; `SHMBUS_NULL_POINTER` if `f` is NULL.
///
/// # Safety
/// `subscriber` is NULL or a live subscriber handle used by this thread
/// only; `f` NULL or a function that may be called with `ctx` (see
/// `shmbus_frame_fn`; it must not call into the same subscriber); `missed`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_recv_with(
    subscriber: *mut shmbus_topic_subscriber,
    f: shmbus_frame_fn,
    ctx: *mut c_void,
    missed: *mut u64,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(subscriber, "subscriber") }?;
        check_ptr_opt(missed, "missed")?;
        let Some(f) = f else {
            return Err(crate::ffi::null("f"));
        };
        // SAFETY: `f` may be called with `ctx` and a message by the
        // contract; `b` is valid for its length during the call.
        let call = |b: &[u8]| unsafe { f(ctx, b.as_ptr().cast(), b.len()) };
        if let Some(msg) = h.pending.take() {
            call(&msg);
            return Ok(());
        }
        // SAFETY: `missed` is NULL or writable by the contract.
        unsafe { lagged(recv_with(&h.s, until, call), missed) }
    })
}
