//! Client errors as Python exceptions (classes defined in `shmbus/_errors.py`).

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyModule;
use shmbus_client::Error;

/// The Python class for `e`, by name in `shmbus._errors`. `eof` names the
/// class for `Disconnected`, which depends on the end: `EndOfPipe` (an
/// `EOFError`) for a reader, `BrokenPipe` (a `BrokenPipeError`) for a writer.
fn class_name(e: &Error, eof: &'static str) -> &'static str {
    match e {
        Error::Full => "Full",
        Error::Empty => "Empty",
        Error::Timeout => "Timeout",
        Error::Disconnected => eof,
        Error::BusClosed => "BusClosed",
        Error::TaskDone => "TaskDoneError",
        Error::TooLarge { .. } => "TooLarge",
        Error::Busy { .. } => "Busy",
        Error::NotFound { .. } => "NotFound",
        Error::DaemonNotRunning { .. } => "DaemonNotRunning",
        Error::PermissionDenied { .. } | Error::Denied { .. } => "PermissionDenied",
        Error::BadName { .. } | Error::BadParams { .. } => "InvalidArgument",
        Error::KindMismatch { .. }
        | Error::TypeMismatch { .. }
        | Error::LengthMismatch { .. }
        | Error::ParamMismatch { .. } => "Mismatch",
        Error::Corrupt(_) | Error::CorruptSegment { .. } => "Corrupt",
        Error::Lagged(_) => "Lagged",
        Error::TooManySubscribers { .. } => "TooManySubscribers",
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
            .and_then(|m| m.getattr(class_name(&e, eof)))
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
