//! # libshmbus: the shmbus client library for C and C++
//!
//! `libshmbus.so` / `libshmbus.a` and `include/shmbus.h` (generated from this
//! crate by cbindgen; `tests/header.rs` fails when the checked-in header
//! differs from a fresh one). Every call goes through the Rust client
//! library, `shmbus-client`; this crate only crosses the boundary:
//!
//! - every call returns a [`shmbus_status`](status::shmbus_status) (one code per client error
//!   variant, plus `SHMBUS_NULL_POINTER`, `SHMBUS_MISALIGNED`,
//!   `SHMBUS_INVALID_ARGUMENT`, `SHMBUS_BUFFER_TOO_SMALL`, `SHMBUS_BAD_STATE`,
//!   `SHMBUS_PANIC`, `SHMBUS_UNKNOWN`) and hands results back through
//!   out-pointers; `shmbus_last_error()` gives the latest failure's message on
//!   the calling thread;
//! - handles are opaque, made by `shmbus_*_open` / `shmbus_connect` and freed
//!   by `shmbus_*_free` (NULL is accepted and ignored);
//! - a panic never unwinds into C: it is caught and returned as
//!   `SHMBUS_PANIC`;
//! - timeouts are `int64_t` nanoseconds: `0` tries once (`SHMBUS_EMPTY`,
//!   `SHMBUS_FULL`), `-1` waits forever, a positive number waits at most so
//!   long (`SHMBUS_TIMEOUT`).
//!
//! Modules: `status` (the codes and their mapping from the client's `Error`),
//! `ffi` (the guard, pointer checks, the thread-local last error), then one
//! per handle: `bus`, `pipe`, `queue`, `table` (values and arrays, with the
//! per-type calls in `table/value.rs` and `table/array.rs`), `topic`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]
// The exported names are C's: `shmbus_bus`, `shmbus_status`, `SHMBUS_OK`.
#![allow(non_camel_case_types)]

// Each module imports only from those before it: status, ffi, bus, pipe,
// queue (which borrows pipe's callback type), table, topic (as queue).
pub mod bus;
mod ffi;
pub mod pipe;
pub mod queue;
pub mod status;
pub mod table;
pub mod topic;

use std::ffi::c_char;

/// A fixed one-line description of `code` (a static string, never NULL;
/// "unknown status code" for a number that is none).
///
/// Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn shmbus_strerror(code: i32) -> *const c_char {
    status::describe(code)
        .unwrap_or("unknown status code\0")
        .as_ptr()
        .cast()
}

/// The message of the latest failed call on the calling thread: what went
/// wrong and what to do, as the Rust library says it. Never NULL ("no error"
/// before any failure). The string stays valid until the next failing call
/// on this thread; copy it to keep it. Successful calls leave it unchanged.
///
/// Thread safety: any thread; each thread has its own.
#[no_mangle]
pub extern "C" fn shmbus_last_error() -> *const c_char {
    ffi::last_error()
}
