//! `shmbus._shmbus.RawReader` / `RawWriter`: the two ends of a bus pipe
//! (the bases of `shmbus.PipeReader` / `PipeWriter`, which add pickling).
//! Each end is claimed on the bus when first used, not when made, so that
//! a parent can make both and hand one to a child. A reader made as one of
//! a pair (`Pipe()`) keeps the writers' mark of that moment, so it ends
//! after a writer that sent and closed before the reader was first used.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmbus_client::{Error, PipeMark, PipeReceiver, PipeSender};

use crate::bus::{bus, resolve};
use crate::errors::{to_py, to_py_as};
use crate::fork::Owned;
use crate::wait::{blocking, deadline};

/// Runs `f` over the bytes of `ob` (`bytes`, or anything `bytes()` takes).
pub(crate) fn with_bytes<R>(
    ob: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    if let Ok(b) = ob.downcast::<PyBytes>() {
        return f(b.as_bytes());
    }
    let b = ob.py().get_type::<PyBytes>().call1((ob,))?;
    f(b.downcast::<PyBytes>()?.as_bytes())
}

/// Locks `m`, waiting without the GIL if another thread holds it (it may be
/// waiting on the bus with the GIL released, and need the GIL to finish).
pub(crate) fn lock<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            // Wait for the holder without the GIL, then try again with it
            // (a guard cannot cross `allow_threads`).
            Err(std::sync::TryLockError::WouldBlock) => {
                py.allow_threads(|| drop(m.lock().unwrap_or_else(PoisonError::into_inner)));
            }
        }
    }
}

fn closed() -> PyErr {
    PyOSError::new_err("handle is closed")
}

/// Creates pipe `name` on `bus` if it does not exist (with `capacity` bytes,
/// or the bus default); returns the writers' mark now.
fn create(bus_name: &str, name: &str, capacity: Option<u64>) -> shmbus_client::Result<u64> {
    let b = bus(bus_name)?;
    let pipe = match capacity {
        Some(c) => b.pipe_with_capacity(name, c)?,
        None => b.pipe(name)?,
    };
    Ok(pipe.mark()?.to_raw())
}

struct ReaderState {
    rx: Option<Owned<PipeReceiver>>,
    /// A frame `poll()` took, returned by the next receive.
    pending: Option<Vec<u8>>,
    closed: bool,
}

/// The receiving end of a bus pipe.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawReader {
    state: Mutex<ReaderState>,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
    /// The writers' mark when the pair was made (`None`: end of file
    /// counts from the claim, as a lone reader's does).
    #[pyo3(get)]
    mark: Option<u64>,
}

impl RawReader {
    /// This process's receiver, claimed now if not yet.
    fn rx<'a>(&self, py: Python<'_>, st: &'a mut ReaderState) -> PyResult<&'a mut PipeReceiver> {
        if st.closed {
            return Err(closed());
        }
        if !st.rx.as_ref().is_some_and(Owned::current) {
            // A parent's end (after fork) is leaked by `Owned`'s drop.
            let (b, n, mark) = (&self.bus, &self.name, self.mark);
            let rx = py
                .allow_threads(|| {
                    let pipe = bus(b)?.pipe(n)?;
                    match mark {
                        Some(m) => pipe.receiver_since(PipeMark::from_raw(m)),
                        None => pipe.receiver(),
                    }
                })
                .map_err(to_py)?;
            st.rx = Some(Owned::new(rx));
            st.pending = None;
        }
        Ok(st.rx.as_mut().expect("set above").get_mut())
    }
}

#[pymethods]
impl RawReader {
    /// The reading end of pipe `name` on bus `bus` (default bus if `None`);
    /// with `create`, the pipe is made now if missing (`capacity` bytes)
    /// and the reader is one of a pair: it keeps the writers' mark of now
    /// (or `mark`, when given: a pair's reader sent to another process).
    /// The end itself is claimed when first used.
    #[new]
    #[pyo3(signature = (bus, name, capacity=None, create=false, mark=None))]
    fn new(
        py: Python<'_>,
        bus: Option<&str>,
        name: String,
        capacity: Option<u64>,
        create: bool,
        mark: Option<u64>,
    ) -> PyResult<Self> {
        let bus = resolve(bus);
        let mut mark = mark;
        if create {
            let now = py
                .allow_threads(|| self::create(&bus, &name, capacity))
                .map_err(to_py)?;
            mark = mark.or(Some(now));
        }
        Ok(Self {
            state: Mutex::new(ReaderState {
                rx: None,
                pending: None,
                closed: false,
            }),
            bus,
            name,
            mark,
        })
    }

    /// Receives one message as `bytes`, waiting for it (at most `timeout`
    /// seconds if given: then raises `shmbus.Timeout`). Raises `EOFError`
    /// (`shmbus.EndOfPipe`) once the writer closed or died and nothing is
    /// left, and `OSError` if the message is longer than `maxlength`.
    #[pyo3(signature = (maxlength=None, timeout=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut st = lock(py, &self.state);
        let st = &mut *st;
        let b = match st.pending.take() {
            Some(v) => PyBytes::new(py, &v),
            None => {
                let rx = self.rx(py, st)?;
                match rx.try_recv_with(|b| PyBytes::new(py, b)) {
                    Err(Error::Empty) => {
                        let dl = deadline(timeout)?;
                        let v = blocking(py, dl, |d| match d {
                            Some(d) => rx.recv_deadline(d),
                            None => rx.recv(),
                        })?
                        .map_err(to_py)?;
                        PyBytes::new(py, &v)
                    }
                    r => r.map_err(to_py)?,
                }
            }
        };
        if maxlength.is_some_and(|m| b.as_bytes().len() > m) {
            return Err(PyOSError::new_err("bad message length"));
        }
        Ok(b)
    }

    /// True if a message (or the end of the pipe) is ready, waiting at most
    /// `timeout` seconds (0: do not wait, `None`: wait as long as it takes).
    /// The message is not consumed: the next `recv_bytes()` returns it.
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let mut st = lock(py, &self.state);
        let st = &mut *st;
        if st.pending.is_some() {
            return Ok(true);
        }
        let rx = self.rx(py, st)?;
        let r = match rx.try_recv() {
            Err(Error::Empty) if timeout != Some(0.0) => {
                let dl = deadline(timeout)?;
                blocking(py, dl, |d| match d {
                    Some(d) => rx.recv_deadline(d),
                    None => rx.recv(),
                })?
            }
            r => r,
        };
        match r {
            Ok(v) => {
                st.pending = Some(v);
                Ok(true)
            }
            Err(Error::Disconnected) => Ok(true),
            Err(Error::Empty | Error::Timeout) => Ok(false),
            Err(e) => Err(to_py(e)),
        }
    }

    /// Gives the end up (its writer then sees `BrokenPipeError`).
    fn close(&self, py: Python<'_>) {
        let mut st = lock(py, &self.state);
        st.closed = true;
        st.pending = None;
        let rx = st.rx.take();
        drop(st);
        py.allow_threads(|| drop(rx));
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).closed
    }
}

struct WriterState {
    tx: Option<Owned<PipeSender>>,
    closed: bool,
}

/// The sending end of a bus pipe.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawWriter {
    state: Mutex<WriterState>,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
}

#[pymethods]
impl RawWriter {
    /// The writing end of pipe `name` on bus `bus` (default bus if `None`);
    /// with `create`, the pipe is made now if missing (`capacity` bytes).
    /// The end itself is claimed when first used.
    #[new]
    #[pyo3(signature = (bus, name, capacity=None, create=false))]
    fn new(
        py: Python<'_>,
        bus: Option<&str>,
        name: String,
        capacity: Option<u64>,
        create: bool,
    ) -> PyResult<Self> {
        let bus = resolve(bus);
        if create {
            py.allow_threads(|| self::create(&bus, &name, capacity))
                .map_err(to_py)?;
        }
        Ok(Self {
            state: Mutex::new(WriterState {
                tx: None,
                closed: false,
            }),
            bus,
            name,
        })
    }

    /// Sends `buf[offset:offset+size]` (bytes-like) as one message, waiting
    /// for room. Raises `BrokenPipeError` (`shmbus.BrokenPipe`) once the
    /// reader closed or died, and `ValueError` (`shmbus.TooLarge`) for a
    /// message larger than the pipe allows.
    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: usize,
        size: Option<usize>,
    ) -> PyResult<()> {
        let mut st = lock(py, &self.state);
        let st = &mut *st;
        if st.closed {
            return Err(closed());
        }
        if !st.tx.as_ref().is_some_and(Owned::current) {
            let (b, n) = (&self.bus, &self.name);
            let tx = py
                .allow_threads(|| bus(b)?.pipe(n)?.sender())
                .map_err(to_py)?;
            st.tx = Some(Owned::new(tx));
        }
        let tx = st.tx.as_mut().expect("set above").get_mut();
        let eof = |e| to_py_as(e, "BrokenPipe");
        with_bytes(buf, |all| {
            let end = match size {
                Some(s) => offset.checked_add(s),
                None => Some(all.len()),
            };
            let Some(b) = end.and_then(|end| all.get(offset..end)) else {
                return Err(PyValueError::new_err(
                    "buffer too short for offset and size",
                ));
            };
            match tx.try_send(b) {
                Err(Error::Full) => blocking(py, None, |_| tx.send(b))?.map_err(eof),
                r => r.map_err(eof),
            }
        })
    }

    /// Gives the end up: the reader sees `EOFError` once it has read what
    /// was sent.
    fn close(&self, py: Python<'_>) {
        let mut st = lock(py, &self.state);
        st.closed = true;
        let tx = st.tx.take();
        drop(st);
        py.allow_threads(|| drop(tx));
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).closed
    }
}
