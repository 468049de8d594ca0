//! `shmbus._shmbus`: the native half of the `shmbus` Python package.
//!
//! The Python half (`python/shmbus/__init__.py`) names things as
//! `multiprocessing` does, pickles objects and defines the exceptions; this
//! module holds the handles over the client library and does everything that
//! touches the bus. Three concerns run through it:
//!
//! - **Fork** (`fork.rs`): a child made by `fork()` inherits the parent's
//!   handles, but not its connection to the daemon (the liveness thread is
//!   not copied, and closing the inherited socket would end the parent's
//!   connection). Every handle remembers the fork generation it was opened
//!   in; used in a later one, it leaks the inherited handle and opens the
//!   channel again by name, on this process's own connection.
//! - **Waiting** (`wait.rs`): a call that must wait releases the GIL; in the
//!   main thread it chains a handler in front of Python's for the signals
//!   Python handles, so that a signal ends the futex sleep (`EINTR`) and the
//!   client's interrupt check stops the wait; the Python handler then runs
//!   (`KeyboardInterrupt` for SIGINT) and, if it raises nothing, the wait
//!   goes on. No periodic wake-up is added.
//! - **Errors** (`errors.rs`): each client error becomes the exception class
//!   of the same name in `shmbus._errors` (subclasses of both `shmbus.Error`
//!   and the builtin or `queue` exception that `multiprocessing` raises).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use pyo3::prelude::*;

mod bus;
mod errors;
mod fork;
mod pipe;
mod queue;
mod shared;
mod topic;
mod wait;

/// The native module.
#[pymodule]
fn _shmbus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    fork::install();
    wait::install();
    m.add_function(wrap_pyfunction!(bus::connect, m)?)?;
    m.add_function(wrap_pyfunction!(bus::default_bus_name, m)?)?;
    m.add_class::<queue::RawQueue>()?;
    m.add_class::<pipe::RawReader>()?;
    m.add_class::<pipe::RawWriter>()?;
    m.add_class::<shared::RawShared>()?;
    m.add_class::<topic::RawTopic>()?;
    m.add_class::<topic::RawSubscriber>()?;
    Ok(())
}
