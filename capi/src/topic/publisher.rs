//! `shmbus_topic_publisher`: publish a message from a buffer, or claim a
//! slot, write the message into it in place and commit it (zero-copy).

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;

use shmbus_client::{Publisher, TopicClaim};

use super::shmbus_topic;
use crate::ffi::{check_ptr, fail, free_box, guard, handle, handle_mut, new_box, ok, put, slice};
use crate::ffi::{wait, Wait};
use crate::status::shmbus_status;

/// A handle to publish on a topic. A topic takes any number of publishers.
///
/// Thread safety: one thread at a time (it may move between threads); give
/// each publishing thread its own publisher.
pub struct shmbus_topic_publisher {
    /// The slot claimed by `shmbus_topic_claim`, until commit or cancel. It
    /// borrows `*p`; declared first, so dropped before `p` is freed.
    claim: Option<TopicClaim<'static>>,
    /// The publisher, in an allocation of its own (from `Box::into_raw`), so
    /// that a `&mut shmbus_topic_publisher` covers none of the memory `claim`
    /// borrows; only shared borrows of it are made.
    p: NonNull<Publisher>,
}

impl fmt::Debug for shmbus_topic_publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("shmbus_topic_publisher")
            .field("claimed", &self.claim.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for shmbus_topic_publisher {
    fn drop(&mut self) {
        // The claim first: it borrows the publisher.
        self.claim = None;
        // SAFETY: `p` came from `Box::into_raw` in
        // `shmbus_topic_publisher_open` and is freed only here; no claim
        // borrows it any more.
        drop(unsafe { Box::from_raw(self.p.as_ptr()) });
    }
}

impl shmbus_topic_publisher {
    /// The publisher, if no claim is open.
    #[inline(always)]
    fn publisher(&self) -> Result<&Publisher, shmbus_status> {
        if self.claim.is_some() {
            return Err(claim_open());
        }
        // SAFETY: `p` is live until drop, and only shared borrows of it are
        // made.
        Ok(unsafe { self.p.as_ref() })
    }
}

#[cold]
#[inline(never)]
fn claim_open() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "a claimed message is open on this publisher: shmbus_topic_commit or \
         shmbus_topic_cancel it first",
    )
}

#[cold]
#[inline(never)]
fn no_claim() -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_BAD_STATE,
        "no claimed message is open on this publisher: call shmbus_topic_claim first",
    )
}

/// Makes a publisher on `topic` into `*out`.
///
/// # Safety
/// `topic` is NULL or a live topic handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_publisher_open(
    topic: *const shmbus_topic,
    out: *mut *mut shmbus_topic_publisher,
) -> shmbus_status {
    guard(|| {
        check_ptr(out, "out")?;
        // SAFETY: delegated to the caller.
        let t = unsafe { handle(topic, "topic") }?;
        let h = new_box(shmbus_topic_publisher {
            claim: None,
            p: NonNull::from(Box::leak(Box::new(t.topic.publisher()))),
        });
        // SAFETY: `out` checked above; writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Frees a publisher (NULL: nothing). An open claim is dropped unpublished.
///
/// # Safety
/// `publisher` is NULL or a live publisher handle, freed once, by one thread.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_publisher_free(publisher: *mut shmbus_topic_publisher) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(publisher) }
}

/// Publishes the `len` bytes at `data` as one message, waiting at most
/// `timeout_ns` (0: try once, -1: forever) while the slowest subscriber of a
/// lossless topic is a ring behind (a lossy topic never waits).
///
/// Errors: `SHMBUS_FULL` (timeout 0), `SHMBUS_TIMEOUT`, `SHMBUS_TOO_LARGE`
/// (longer than the slot size), `SHMBUS_BUS_CLOSED`, `SHMBUS_CORRUPT`,
/// `SHMBUS_BAD_STATE` (a claim is open).
///
/// # Safety
/// `publisher` is NULL or a live publisher handle used by this thread only;
/// `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_publish(
    publisher: *mut shmbus_topic_publisher,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(publisher, "publisher") }?;
        // SAFETY: delegated to the caller.
        let msg = unsafe { slice(data.cast::<u8>(), len, "data") }?;
        let p = h.publisher()?;
        ok(match until {
            Wait::Try => p.try_publish(msg),
            Wait::Forever => p.publish(msg),
            Wait::For(d) => p.publish_timeout(msg, d),
        })
    })
}

/// Claims a slot for a message of `len` bytes (zero-copy publish), waiting
/// at most `timeout_ns` (0: try once, -1: forever) as `shmbus_topic_publish`
/// does. Write the message into it with `shmbus_topic_claim_write`, then
/// publish it with `shmbus_topic_commit`, or drop it with
/// `shmbus_topic_cancel` (subscribers skip it). Until then the publisher
/// takes no other publish or claim.
///
/// The slot is not handed out as a pointer: a lossy topic's subscribers may
/// still be reading the slot's previous message (they notice and discard
/// it), so the message goes in through the library's atomic word writes.
/// Bytes not written read as zero up to the next multiple of 8, and are
/// unspecified beyond.
///
/// Errors: as `shmbus_topic_publish`.
///
/// # Safety
/// `publisher` is NULL or a live publisher handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_claim(
    publisher: *mut shmbus_topic_publisher,
    len: usize,
    timeout_ns: i64,
) -> shmbus_status {
    guard(|| {
        let until = wait(timeout_ns)?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(publisher, "publisher") }?;
        h.publisher()?;
        // SAFETY:
        // - `p` is live until `h` is dropped, and `Drop` drops the claim
        //   before freeing it, so `'static` outlives no use of the borrow;
        // - only shared borrows of `*p` are ever made, and `h` itself does
        //   not contain `*p`, so `&mut` to `h` does not invalidate this one.
        let p: &'static Publisher = unsafe { h.p.as_ref() };
        let claim = ok(match until {
            Wait::Try => p.try_claim(len),
            Wait::Forever => p.claim(len),
            Wait::For(d) => p.claim_timeout(len, d),
        })?;
        h.claim = Some(claim);
        Ok(())
    })
}

/// Copies the `len` bytes at `data` into the claimed message at byte `at`,
/// which must be a multiple of 8, with `at + len` at most the claimed
/// length.
///
/// Errors: `SHMBUS_INVALID_ARGUMENT` (`at` not a multiple of 8, or the
/// bytes would leave the claim), `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `publisher` is NULL or a live publisher handle used by this thread only;
/// `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_claim_write(
    publisher: *mut shmbus_topic_publisher,
    at: usize,
    data: *const c_void,
    len: usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(publisher, "publisher") }?;
        // SAFETY: delegated to the caller.
        let src = unsafe { slice(data.cast::<u8>(), len, "data") }?;
        let Some(c) = h.claim.as_mut() else {
            return Err(no_claim());
        };
        if !at.is_multiple_of(8) || at.checked_add(len).is_none_or(|end| end > c.len()) {
            return Err(fail(
                shmbus_status::SHMBUS_INVALID_ARGUMENT,
                format!(
                    "writing {len} bytes at {at} into a claim of {} bytes: the offset must be a \
                     multiple of 8 and the bytes within the claim",
                    c.len()
                ),
            ));
        }
        c.write_at(at, src);
        Ok(())
    })
}

/// Publishes the message claimed by `shmbus_topic_claim`.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `publisher` is NULL or a live publisher handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_commit(
    publisher: *mut shmbus_topic_publisher,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(publisher, "publisher") }?;
        match h.claim.take() {
            Some(c) => ok(c.commit()),
            None => Err(no_claim()),
        }
    })
}

/// Drops the message claimed by `shmbus_topic_claim` unpublished:
/// subscribers skip its slot.
///
/// Errors: `SHMBUS_BAD_STATE` (no claim is open).
///
/// # Safety
/// `publisher` is NULL or a live publisher handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_cancel(
    publisher: *mut shmbus_topic_publisher,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle_mut(publisher, "publisher") }?;
        match h.claim.take() {
            Some(_) => Ok(()),
            None => Err(no_claim()),
        }
    })
}
