//! Values and arrays: `shmbus_value` and `shmbus_array`, one handle type
//! each for every element type. The calls that depend on the element type
//! (`_open_T`, `_load_T`, `_store_T`, `_fetch_add_T`, `_read_T`,
//! `_write_T`) are one per type in `table/value.rs` and `table/array.rs`,
//! each a one-line call of a generic function here; a typed call on a handle
//! opened with another type returns `SHMBUS_TYPE_MISMATCH`.

use std::ffi::c_char;

use shmbus_client::{Array, Element, Integer, Table, Value};

use crate::bus::{opener, shmbus_bus};
use crate::ffi::{
    fail, free_box, guard, handle, new_box, ok, put, put_opt, slice, slice_mut, wait, Wait,
};
use crate::status::shmbus_status;

pub mod array;
pub mod value;

/// A named typed value (`int8_t` … `double`), read without a lock and never
/// torn.
///
/// Thread safety: any number of threads may use one handle at once; free it
/// once, when no other thread uses it.
#[derive(Debug)]
pub struct shmbus_value {
    v: AnyValue,
}

/// A named fixed-length typed array, read without a lock and never torn.
///
/// Thread safety: any number of threads may use one handle at once; free it
/// once, when no other thread uses it.
#[derive(Debug)]
pub struct shmbus_array {
    a: AnyArray,
}

macro_rules! any {
    ($($t:ident => $v:ident),*) => {
        #[derive(Debug)]
        enum AnyValue { $($v(Value<$t>)),* }
        #[derive(Debug)]
        enum AnyArray { $($v(Array<$t>)),* }

        impl AnyValue {
            fn table(&self) -> &Table {
                match self { $(Self::$v(x) => x.table()),* }
            }
        }
        impl AnyArray {
            fn table(&self) -> &Table {
                match self { $(Self::$v(x) => x.table()),* }
            }
        }
        $(
            impl Typed for $t {
                #[inline(always)]
                fn value(v: &AnyValue) -> Option<&Value<Self>> {
                    match v { AnyValue::$v(x) => Some(x), #[allow(unreachable_patterns)] _ => None }
                }
                #[inline(always)]
                fn array(a: &AnyArray) -> Option<&Array<Self>> {
                    match a { AnyArray::$v(x) => Some(x), #[allow(unreachable_patterns)] _ => None }
                }
                fn wrap_value(v: Value<Self>) -> AnyValue { AnyValue::$v(v) }
                fn wrap_array(a: Array<Self>) -> AnyArray { AnyArray::$v(a) }
            }
        )*
    };
}

/// An element type with its place in [`AnyValue`] and [`AnyArray`].
trait Typed: Element {
    fn value(v: &AnyValue) -> Option<&Value<Self>>;
    fn array(a: &AnyArray) -> Option<&Array<Self>>;
    fn wrap_value(v: Value<Self>) -> AnyValue;
    fn wrap_array(a: Array<Self>) -> AnyArray;
}

any!(i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
     i64 => I64, u64 => U64, f32 => F32, f64 => F64);

#[cold]
#[inline(never)]
fn wrong_type(t: &Table, asked: &str) -> shmbus_status {
    fail(
        shmbus_status::SHMBUS_TYPE_MISMATCH,
        format!(
            "{} holds {}, not {asked}: use the calls of its element type",
            t.name(),
            t.elem()
        ),
    )
}

/// The typed value behind `v`.
///
/// # Safety
/// `v` is NULL or a live value handle.
#[inline(always)]
unsafe fn typed_value<'a, T: Typed>(v: *const shmbus_value) -> Result<&'a Value<T>, shmbus_status> {
    // SAFETY: delegated to the caller.
    let h = unsafe { handle(v, "value") }?;
    T::value(&h.v).ok_or_else(|| wrong_type(h.v.table(), T::TYPE.name()))
}

/// The typed array behind `a`.
///
/// # Safety
/// `a` is NULL or a live array handle.
#[inline(always)]
unsafe fn typed_array<'a, T: Typed>(a: *const shmbus_array) -> Result<&'a Array<T>, shmbus_status> {
    // SAFETY: delegated to the caller.
    let h = unsafe { handle(a, "array") }?;
    T::array(&h.a).ok_or_else(|| wrong_type(h.a.table(), T::TYPE.name()))
}

/// `shmbus_value_open_T`.
///
/// # Safety
/// As the exported openers.
unsafe fn value_open<T: Typed>(
    bus: *const shmbus_bus,
    name: *const c_char,
    out: *mut *mut shmbus_value,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let v = T::wrap_value(ok(bus.value::<T>(name))?);
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, new_box(shmbus_value { v }), "out") }
    })
}

/// `shmbus_value_load_T`.
///
/// # Safety
/// `v` NULL or a live value handle; `out` NULL or writable.
#[inline(always)]
unsafe fn value_load<T: Typed>(v: *const shmbus_value, out: *mut T) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let v = unsafe { typed_value::<T>(v) }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, v.load(), "out") }
    })
}

/// `shmbus_value_store_T`.
///
/// # Safety
/// `v` NULL or a live value handle.
#[inline(always)]
unsafe fn value_store<T: Typed>(v: *const shmbus_value, x: T) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let v = unsafe { typed_value::<T>(v) }?;
        ok(v.store(x))
    })
}

/// `shmbus_value_fetch_add_T`.
///
/// # Safety
/// `v` NULL or a live value handle; `prev` NULL or writable.
#[inline(always)]
unsafe fn value_fetch_add<T: Typed + Integer>(
    v: *const shmbus_value,
    delta: T,
    prev: *mut T,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr_opt(prev, "prev")?;
        // SAFETY: delegated to the caller.
        let v = unsafe { typed_value::<T>(v) }?;
        let p = ok(v.fetch_add(delta))?;
        // SAFETY: delegated to the caller.
        unsafe { put_opt(prev, p, "prev") }
    })
}

/// `shmbus_array_open_T`.
///
/// # Safety
/// As the exported openers.
unsafe fn array_open<T: Typed>(
    bus: *const shmbus_bus,
    name: *const c_char,
    len: usize,
    out: *mut *mut shmbus_array,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let (bus, name) = unsafe { opener(bus, name, out) }?;
        let a = T::wrap_array(ok(bus.array::<T>(name, len))?);
        // SAFETY: `out` checked by `opener`, writable by the contract.
        unsafe { put(out, new_box(shmbus_array { a }), "out") }
    })
}

/// `shmbus_array_read_T`.
///
/// # Safety
/// `a` NULL or a live array handle; `out` NULL or writable for `len`
/// elements; `version` NULL or writable.
#[inline(always)]
unsafe fn array_read<T: Typed>(
    a: *const shmbus_array,
    out: *mut T,
    len: usize,
    version: *mut u64,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr_opt(version, "version")?;
        // SAFETY: delegated to the caller.
        let a = unsafe { typed_array::<T>(a) }?;
        // SAFETY: delegated to the caller.
        let out = unsafe { slice_mut(out, len, "out") }?;
        let v = ok(a.read_into(out))?;
        // SAFETY: delegated to the caller.
        unsafe { put_opt(version, v, "version") }
    })
}

/// `shmbus_array_write_T`.
///
/// # Safety
/// `a` NULL or a live array handle; `src` NULL or readable for `len`
/// elements.
#[inline(always)]
unsafe fn array_write<T: Typed>(
    a: *const shmbus_array,
    src: *const T,
    len: usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let a = unsafe { typed_array::<T>(a) }?;
        // SAFETY: delegated to the caller.
        let src = unsafe { slice(src, len, "src") }?;
        ok(a.write(src))
    })
}

/// The version and wait calls, the same for values and arrays.
fn wait_changed(t: &Table, since: u64, timeout_ns: i64) -> Result<u64, shmbus_status> {
    ok(match wait(timeout_ns)? {
        Wait::Try => t.wait_changed_timeout(since, std::time::Duration::ZERO),
        Wait::Forever => t.wait_changed(since),
        Wait::For(d) => t.wait_changed_timeout(since, d),
    })
}

/// Stores the value's version (it changes with every store) in `*out`.
///
/// # Safety
/// `v` is NULL or a live value handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_version(
    v: *const shmbus_value,
    out: *mut u64,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(v, "value") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, h.v.table().version(), "out") }
    })
}

/// Waits at most `timeout_ns` (0: check once, -1: forever) until the
/// value's version differs from `since`, and stores the new version in
/// `*version` (may be NULL).
///
/// Errors: `SHMBUS_TIMEOUT`, `SHMBUS_BUS_CLOSED`.
///
/// # Safety
/// `v` is NULL or a live value handle; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_wait_changed(
    v: *const shmbus_value,
    since: u64,
    timeout_ns: i64,
    version: *mut u64,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr_opt(version, "version")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(v, "value") }?;
        let now = wait_changed(h.v.table(), since, timeout_ns)?;
        // SAFETY: delegated to the caller.
        unsafe { put_opt(version, now, "version") }
    })
}

/// Frees a value handle (NULL: nothing).
///
/// # Safety
/// `v` is NULL or a live value handle, freed once, when no thread uses it.
#[no_mangle]
pub unsafe extern "C" fn shmbus_value_free(v: *mut shmbus_value) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(v) }
}

/// Stores the array's number of elements in `*out`.
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_len(
    a: *const shmbus_array,
    out: *mut usize,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(a, "array") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, h.a.table().len(), "out") }
    })
}

/// Stores the array's version (it changes with every write) in `*out`.
///
/// # Safety
/// `a` is NULL or a live array handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_version(
    a: *const shmbus_array,
    out: *mut u64,
) -> shmbus_status {
    guard(|| {
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(a, "array") }?;
        // SAFETY: delegated to the caller.
        unsafe { put(out, h.a.table().version(), "out") }
    })
}

/// As `shmbus_value_wait_changed`, for an array.
///
/// # Safety
/// `a` is NULL or a live array handle; `version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_wait_changed(
    a: *const shmbus_array,
    since: u64,
    timeout_ns: i64,
    version: *mut u64,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr_opt(version, "version")?;
        // SAFETY: delegated to the caller.
        let h = unsafe { handle(a, "array") }?;
        let now = wait_changed(h.a.table(), since, timeout_ns)?;
        // SAFETY: delegated to the caller.
        unsafe { put_opt(version, now, "version") }
    })
}

/// Frees an array handle (NULL: nothing).
///
/// # Safety
/// `a` is NULL or a live array handle, freed once, when no thread uses it.
#[no_mangle]
pub unsafe extern "C" fn shmbus_array_free(a: *mut shmbus_array) {
    // SAFETY: delegated to the caller.
    unsafe { free_box(a) }
}
