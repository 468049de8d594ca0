//! The bus handle: `shmbus_connect`, `shmbus_bus_free`.

use std::ffi::c_char;

use shmbus_client::Bus;

use crate::ffi::{free_box, guard, handle, name, ok, put};
use crate::status::shmbus_status;

/// A connection to one bus (its daemon's socket and the mapped segment).
///
/// Thread safety: may be used from several threads at once (opening
/// channels); free it once, when no other thread uses it. Handles opened
/// from it keep the connection alive on their own, so it may be freed
/// before them.
#[derive(Debug)]
pub struct shmbus_bus {
    pub(crate) bus: Bus,
}

/// Connects to bus `name` (NULL: `$SHMBUS_BUS`, else `shmbus`) and stores
/// the handle in `*out`. A `shmbusd` must serve the bus.
///
/// Errors: `SHMBUS_DAEMON_NOT_RUNNING`, `SHMBUS_BAD_NAME`, the other
/// connecting codes, `SHMBUS_NULL_POINTER` (`out`).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_connect(
    name: *const c_char,
    out: *mut *mut shmbus_bus,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr(out, "out")?;
        let bus = if name.is_null() {
            ok(Bus::connect())?
        } else {
            // SAFETY: not NULL; NUL-terminated by the contract.
            let n = unsafe { crate::ffi::name(name, "bus name") }?;
            ok(Bus::connect_to(n))?
        };
        let h = crate::ffi::new_box(shmbus_bus { bus });
        // SAFETY: `out` checked above; writable by the contract.
        unsafe { put(out, h, "out") }
    })
}

/// Frees a bus handle (NULL: nothing). Channels opened from it stay usable.
///
/// # Safety
/// `bus` is NULL or a handle from `shmbus_connect`, not yet freed and not in
/// use by another thread.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_free(bus: *mut shmbus_bus) {
    // SAFETY: made by `Box::into_raw` in `shmbus_connect`, freed once by the
    // contract.
    unsafe { free_box(bus) }
}

/// Removes the channel named `channel` from the bus: its name is free at once; handles
/// that have it open, in any process, keep working, and its space is reused
/// once the last of them is gone. Stores in `*holders` (if not NULL) how many
/// connections still have it open (0: its space was freed at once; this
/// process's own handles count).
///
/// Errors: `SHMBUS_NOT_FOUND` (no channel of that name), `SHMBUS_BAD_NAME`,
/// `SHMBUS_BUS_CLOSED`, `SHMBUS_PROTOCOL`, `SHMBUS_IO`.
///
/// # Safety
/// `bus` is NULL or a live bus handle; `name` NULL or a NUL-terminated
/// string; `holders` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_remove(
    bus: *const shmbus_bus,
    channel: *const c_char,
    holders: *mut u64,
) -> shmbus_status {
    guard(|| {
        crate::ffi::check_ptr_opt(holders, "holders")?;
        // SAFETY: delegated to the caller.
        let b = unsafe { handle(bus, "bus") }?;
        // SAFETY: delegated to the caller.
        let n = unsafe { name(channel, "channel name") }?;
        let left = ok(b.bus.remove(n))?;
        // SAFETY: `holders` checked above; NULL or writable by the contract.
        unsafe { crate::ffi::put_opt(holders, left, "holders") }
    })
}

/// The bus, the channel name, and the out-pointer every opener checks.
///
/// # Safety
/// As the openers' contracts: `bus` a live handle or NULL, `channel` NULL or
/// a NUL-terminated string, `out` NULL or writable.
pub(crate) unsafe fn opener<'a, T>(
    bus: *const shmbus_bus,
    channel: *const c_char,
    out: *mut *mut T,
) -> Result<(&'a Bus, &'a str), shmbus_status> {
    crate::ffi::check_ptr(out, "out")?;
    // SAFETY: delegated to the caller.
    let b = unsafe { handle(bus, "bus") }?;
    // SAFETY: delegated to the caller.
    let n = unsafe { name(channel, "channel name") }?;
    Ok((&b.bus, n))
}
