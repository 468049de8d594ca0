//! `shmbus_value_*_T`: the value calls of each element type, one line each
//! over the generic functions in `table.rs`. Written out, not made by a
//! macro, so that cbindgen sees every function.

use std::ffi::c_char;

use super::{shmbus_value, value_fetch_add, value_load, value_open, value_store};
use crate::bus::shmbus_bus;
use crate::status::shmbus_status;

/// Opens value `name` of `int8_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_i8(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<i8>(bus, name, out) }
}

/// Stores the `int8_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_i8(
    v: *const shmbus_value,
    out: *mut i8,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `int8_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_i8(v: *const shmbus_value, x: i8) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `int8_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_i8(
    v: *const shmbus_value,
    delta: i8,
    prev: *mut i8,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `uint8_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_u8(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<u8>(bus, name, out) }
}

/// Stores the `uint8_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_u8(
    v: *const shmbus_value,
    out: *mut u8,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `uint8_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_u8(v: *const shmbus_value, x: u8) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `uint8_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_u8(
    v: *const shmbus_value,
    delta: u8,
    prev: *mut u8,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `int16_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_i16(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<i16>(bus, name, out) }
}

/// Stores the `int16_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_i16(
    v: *const shmbus_value,
    out: *mut i16,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `int16_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_i16(v: *const shmbus_value, x: i16) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `int16_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_i16(
    v: *const shmbus_value,
    delta: i16,
    prev: *mut i16,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `uint16_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_u16(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<u16>(bus, name, out) }
}

/// Stores the `uint16_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_u16(
    v: *const shmbus_value,
    out: *mut u16,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `uint16_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_u16(v: *const shmbus_value, x: u16) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `uint16_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_u16(
    v: *const shmbus_value,
    delta: u16,
    prev: *mut u16,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `int32_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_i32(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<i32>(bus, name, out) }
}

/// Stores the `int32_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_i32(
    v: *const shmbus_value,
    out: *mut i32,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `int32_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_i32(v: *const shmbus_value, x: i32) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `int32_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_i32(
    v: *const shmbus_value,
    delta: i32,
    prev: *mut i32,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `uint32_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_u32(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<u32>(bus, name, out) }
}

/// Stores the `uint32_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_u32(
    v: *const shmbus_value,
    out: *mut u32,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `uint32_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_u32(v: *const shmbus_value, x: u32) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `uint32_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_u32(
    v: *const shmbus_value,
    delta: u32,
    prev: *mut u32,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `int64_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_i64(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<i64>(bus, name, out) }
}

/// Stores the `int64_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_i64(
    v: *const shmbus_value,
    out: *mut i64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `int64_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_i64(v: *const shmbus_value, x: i64) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `int64_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_i64(
    v: *const shmbus_value,
    delta: i64,
    prev: *mut i64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `uint64_t` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_u64(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<u64>(bus, name, out) }
}

/// Stores the `uint64_t` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_u64(
    v: *const shmbus_value,
    out: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `uint64_t` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_u64(v: *const shmbus_value, x: u64) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Adds `delta` to the `uint64_t` value (wrapping) and stores the value before
/// in `*prev` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `prev` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_fetch_add_u64(
    v: *const shmbus_value,
    delta: u64,
    prev: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_fetch_add(v, delta, prev) }
}

/// Opens value `name` of `float` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_f32(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<f32>(bus, name, out) }
}

/// Stores the `float` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_f32(
    v: *const shmbus_value,
    out: *mut f32,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `float` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_f32(v: *const shmbus_value, x: f32) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}

/// Opens value `name` of `double` into `*out`, creating it as 0 if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type), the
/// opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_open_f64(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_open::<f64>(bus, name, out) }
}

/// Stores the `double` value in `*out` (lock-free, never torn).
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (the handle has another type).
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_load_f64(
    v: *const shmbus_value,
    out: *mut f64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_load(v, out) }
}

/// Sets the `double` value to `x`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_store_f64(v: *const shmbus_value, x: f64) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { value_store(v, x) }
}
