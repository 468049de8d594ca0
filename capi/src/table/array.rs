//! `shmbus_array_*_T`: the array calls of each element type, one line each
//! over the generic functions in `table.rs`. Written out, not made by a
//! macro, so that cbindgen sees every function.

use std::ffi::c_char;

use super::{array_open, array_read, array_write, shmbus_array};
use crate::bus::shmbus_bus;
use crate::status::shmbus_status;

/// Opens array `name` of `len` `int8_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_i8(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<i8>(bus, name, len, out) }
}

/// Copies the whole `int8_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_i8(
    a: *const shmbus_array,
    out: *mut i8,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `int8_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_i8(
    a: *const shmbus_array,
    src: *const i8,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `uint8_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_u8(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<u8>(bus, name, len, out) }
}

/// Copies the whole `uint8_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_u8(
    a: *const shmbus_array,
    out: *mut u8,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `uint8_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_u8(
    a: *const shmbus_array,
    src: *const u8,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `int16_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_i16(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<i16>(bus, name, len, out) }
}

/// Copies the whole `int16_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_i16(
    a: *const shmbus_array,
    out: *mut i16,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `int16_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_i16(
    a: *const shmbus_array,
    src: *const i16,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `uint16_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_u16(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<u16>(bus, name, len, out) }
}

/// Copies the whole `uint16_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_u16(
    a: *const shmbus_array,
    out: *mut u16,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `uint16_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_u16(
    a: *const shmbus_array,
    src: *const u16,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `int32_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_i32(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<i32>(bus, name, len, out) }
}

/// Copies the whole `int32_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_i32(
    a: *const shmbus_array,
    out: *mut i32,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `int32_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_i32(
    a: *const shmbus_array,
    src: *const i32,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `uint32_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_u32(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<u32>(bus, name, len, out) }
}

/// Copies the whole `uint32_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_u32(
    a: *const shmbus_array,
    out: *mut u32,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `uint32_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_u32(
    a: *const shmbus_array,
    src: *const u32,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `int64_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_i64(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<i64>(bus, name, len, out) }
}

/// Copies the whole `int64_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_i64(
    a: *const shmbus_array,
    out: *mut i64,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `int64_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_i64(
    a: *const shmbus_array,
    src: *const i64,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `uint64_t` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_u64(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<u64>(bus, name, len, out) }
}

/// Copies the whole `uint64_t` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_u64(
    a: *const shmbus_array,
    out: *mut u64,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `uint64_t` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_u64(
    a: *const shmbus_array,
    src: *const u64,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `float` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_f32(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<f32>(bus, name, len, out) }
}

/// Copies the whole `float` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_f32(
    a: *const shmbus_array,
    out: *mut f32,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `float` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_f32(
    a: *const shmbus_array,
    src: *const f32,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}

/// Opens array `name` of `len` `double` elements into `*out`, creating it
/// as zeros if absent.
///
/// Errors: `SHMBUS_TYPE_MISMATCH` (it exists with another type or length),
/// the opening codes.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_open_f64(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_open::<f64>(bus, name, len, out) }
}

/// Copies the whole `double` array into the `len` elements at `out` (never
/// torn) and stores the version read in `*version` (may be NULL).
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH` (`len` is not
/// the array's length).
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_read_f64(
    a: *const shmbus_array,
    out: *mut f64,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_read(a, out, len, version) }
}

/// Replaces the whole `double` array with the `len` elements at `src`.
///
/// Errors: `SHMBUS_TYPE_MISMATCH`, `SHMBUS_LENGTH_MISMATCH`,
/// `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `a` is NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_write_f64(
    a: *const shmbus_array,
    src: *const f64,
    len: usize,
) -> shmbus_status {
    // SAFETY: delegated to the caller.
    unsafe { array_write(a, src, len) }
}
