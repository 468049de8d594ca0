//! `shmbus._shmbus.RawQueue`: a bus queue of bytes (the base of
//! `shmbus.Queue` and `shmbus.JoinableQueue`, which add pickling).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmbus_client::{Error, Queue};

use crate::bus::{bus, resolve};
use crate::errors::to_py;
use crate::fork::PerProcess;
use crate::pipe::with_bytes;
use crate::wait::{blocking, deadline};

/// A named multi-producer multi-consumer queue of byte items on a bus.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawQueue {
    q: PerProcess<Queue>,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
}

fn open(
    bus_name: &str,
    name: &str,
    slots: u64,
    slot_size: u64,
    create: bool,
) -> shmbus_client::Result<Queue> {
    let b = bus(bus_name)?;
    let mut builder = b.queue_builder(name).create(create);
    if slots != 0 {
        builder = builder.slots(slots);
    }
    if slot_size != 0 {
        builder = builder.slot_size(slot_size);
    }
    builder.open()
}

#[pymethods]
impl RawQueue {
    /// Opens queue `name` on bus `bus` (default bus if `None`), creating it
    /// with `slots` slots of `slot_size` bytes (0: the bus default) unless
    /// `create` is false.
    #[new]
    #[pyo3(signature = (bus, name, slots=0, slot_size=0, create=true))]
    fn new(
        py: Python<'_>,
        bus: Option<&str>,
        name: String,
        slots: u64,
        slot_size: u64,
        create: bool,
    ) -> PyResult<Self> {
        let bus_name = resolve(bus);
        let q = py
            .allow_threads(|| open(&bus_name, &name, slots, slot_size, create))
            .map_err(to_py)?;
        let (b2, n2) = (bus_name.clone(), name.clone());
        Ok(Self {
            q: PerProcess::new(q, move || open(&b2, &n2, 0, 0, false).map_err(to_py)),
            bus: bus_name,
            name,
        })
    }

    /// Puts `data` (bytes-like) as one item, without pickling. Waits for room
    /// if `block` (at most `timeout` seconds, if given); raises
    /// `shmbus.Full` (a `queue.Full`) when there is none.
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn put_bytes(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let q = self.q.get()?;
        with_bytes(data, |b| match q.try_put(b) {
            Err(Error::Full) if block => {
                let dl = deadline(timeout)?;
                blocking(py, dl, |d| match d {
                    Some(d) => q.put_deadline(b, d),
                    None => q.put(b),
                })?
                .map_err(|e| {
                    to_py(if matches!(e, Error::Timeout) {
                        Error::Full
                    } else {
                        e
                    })
                })
            }
            r => r.map_err(to_py),
        })
    }

    /// Takes one item as `bytes`. Waits if `block` (at most `timeout`
    /// seconds, if given); raises `shmbus.Empty` (a `queue.Empty`) when
    /// there is none.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_bytes<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let q = self.q.get()?;
        match q.try_get_with(|b| PyBytes::new(py, b)) {
            Err(Error::Empty) if block => {
                let dl = deadline(timeout)?;
                let v = blocking(py, dl, |d| match d {
                    Some(d) => q.get_deadline(d),
                    None => q.get(),
                })?
                .map_err(|e| {
                    to_py(if matches!(e, Error::Timeout) {
                        Error::Empty
                    } else {
                        e
                    })
                })?;
                Ok(PyBytes::new(py, &v))
            }
            r => r.map_err(to_py),
        }
    }

    /// Items in the queue now (a snapshot, as `multiprocessing`'s).
    fn qsize(&self) -> PyResult<usize> {
        Ok(self.q.get()?.len())
    }

    /// True if the queue holds no item now.
    fn empty(&self) -> PyResult<bool> {
        Ok(self.q.get()?.is_empty())
    }

    /// True if every slot is taken now.
    fn full(&self) -> PyResult<bool> {
        Ok(self.q.get()?.is_full())
    }

    /// Slots (the most items the queue holds).
    #[getter]
    fn maxsize(&self) -> PyResult<u64> {
        Ok(self.q.get()?.slots())
    }

    /// Largest item, in bytes.
    #[getter]
    fn item_size(&self) -> PyResult<usize> {
        Ok(self.q.get()?.slot_size())
    }

    /// Items put and not yet marked done with `task_done()`.
    fn unfinished(&self) -> PyResult<u64> {
        Ok(self.q.get()?.unfinished())
    }

    /// Marks one item taken earlier as processed; raises `ValueError`
    /// (`shmbus.TaskDoneError`) if called more times than items were put.
    fn task_done(&self) -> PyResult<()> {
        self.q.get()?.task_done().map_err(to_py)
    }

    /// Waits until every item put has been marked done with `task_done()`,
    /// at most `timeout` seconds if given (then raises `shmbus.Timeout`, a
    /// `TimeoutError`).
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let q = self.q.get()?;
        if q.unfinished() == 0 {
            return Ok(());
        }
        let dl = deadline(timeout)?;
        blocking(py, dl, |d| match d {
            Some(d) => q.join_deadline(d),
            None => q.join(),
        })?
        .map_err(to_py)
    }
}
