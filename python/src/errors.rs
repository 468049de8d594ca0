//! Client errors as Python exceptions (classes defined in `shmbus/_errors.py`).

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyModule;
use shmbus_client::{Error, ErrorKind};

/// The Python class for an error of kind `k`, by name in `shmbus._errors`
/// (the client's `ErrorKind`, the classification the C library's status
/// codes map from too). `eof` names the class for `Disconnected`, which
/// depends on the end: `EndOfPipe` (an `EOFError`) for a reader,
/// `BrokenPipe` (a `BrokenPipeError`) for a writer.
fn class_name(k: ErrorKind, eof: &'static str) -> &'static str {
    use ErrorKind as K;
    match k {
        K::Full => "Full",
        K::Empty => "Empty",
        K::Timeout => "Timeout",
        K::Disconnected => eof,
        K::BusClosed => "BusClosed",
        K::TaskDone => "TaskDoneError",
        K::TooLarge => "TooLarge",
        K::Busy => "Busy",
        K::NotFound => "NotFound",
        K::DaemonNotRunning => "DaemonNotRunning",
        K::PermissionDenied | K::Denied => "PermissionDenied",
        K::BadName | K::BadParams => "InvalidArgument",
        K::KindMismatch | K::TypeMismatch | K::LengthMismatch | K::ParamMismatch => "Mismatch",
        K::Corrupt | K::CorruptSegment => "Corrupt",
        K::Lagged => "Lagged",
        K::TooManySubscribers => "TooManySubscribers",
        _ => "Error",
    }
}

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: GILOnceCell<Py<PyModule>> = GILOnceCell::new();
    MODULE
        .get_or_try_init(py, || {
            PyModule::import(py, "shmbus._errors").map(Bound::unbind)
        })
        .map(|m| m.bind(py))
}

/// `e` as the exception of its class, with the client's message.
pub(crate) fn to_py_as(e: Error, eof: &'static str) -> PyErr {
    Python::with_gil(|py| {
        let msg = e.to_string();
        let made = errors_module(py)
            .and_then(|m| m.getattr(class_name(e.kind(), eof)))
            .and_then(|cls| match e {
                Error::Lagged(n) => cls.call1((msg, n)),
                _ => cls.call1((msg,)),
            });
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        }
    })
}

/// `e` as a Python exception; `Disconnected` as `EndOfPipe`.
pub(crate) fn to_py(e: Error) -> PyErr {
    to_py_as(e, "EndOfPipe")
}
