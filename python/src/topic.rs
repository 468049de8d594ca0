//! `shmbus._shmbus.RawTopic` / `RawSubscriber`: a bus topic (publish once,
//! every subscriber receives) and a place among its subscribers (the bases
//! of `shmbus.Topic` and `shmbus.Subscriber`, which add pickling).
//!
//! The topic handle pickles by name and is re-opened in a forked child like
//! the other handles. A subscriber is not: its position in the topic is the
//! process's own, so a child that inherits one gets an error on use and
//! subscribes again.

use std::sync::Mutex;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmbus_client::{Error, Publisher, Subscriber, Topic};

use crate::bus::{bus, resolve};
use crate::errors::to_py;
use crate::fork::{Owned, PerProcess};
use crate::pipe::{lock, with_bytes};
use crate::wait::{blocking, deadline};

/// A named topic on a bus.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawTopic {
    t: PerProcess<Topic>,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
}

/// Creation parameters; `None`/0 leave the bus default (or, for an existing
/// topic, whatever it has).
#[derive(Clone, Copy, Default)]
struct Params {
    slots: u64,
    slot_size: u64,
    lossy: Option<bool>,
    max_subscribers: u64,
}

fn open(bus_name: &str, name: &str, p: Params, create: bool) -> shmbus_client::Result<Topic> {
    let b = bus(bus_name)?;
    let mut builder = b.topic_builder(name).create(create);
    if p.slots != 0 {
        builder = builder.slots(p.slots);
    }
    if p.slot_size != 0 {
        builder = builder.slot_size(p.slot_size);
    }
    if let Some(l) = p.lossy {
        builder = builder.lossy(l);
    }
    if p.max_subscribers != 0 {
        builder = builder.max_subscribers(p.max_subscribers);
    }
    builder.open()
}

/// `Timeout` of a call that waited as `what` (`Full` or `Empty`), as
/// `multiprocessing`'s queues raise.
fn timeout_as(e: Error, what: Error) -> PyErr {
    to_py(if matches!(e, Error::Timeout) { what } else { e })
}

#[pymethods]
impl RawTopic {
    /// Opens topic `name` on bus `bus` (default bus if `None`), creating it
    /// unless `create` is false with `slots` slots (a power of two) of
    /// `slot_size` bytes, lossy or not, for up to `max_subscribers`
    /// subscribers (0 or `None`: the bus default).
    #[new]
    #[pyo3(signature = (bus, name, slots=0, slot_size=0, lossy=None, max_subscribers=0, create=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bus: Option<&str>,
        name: String,
        slots: u64,
        slot_size: u64,
        lossy: Option<bool>,
        max_subscribers: u64,
        create: bool,
    ) -> PyResult<Self> {
        let bus_name = resolve(bus);
        let p = Params {
            slots,
            slot_size,
            lossy,
            max_subscribers,
        };
        let t = py
            .allow_threads(|| open(&bus_name, &name, p, create))
            .map_err(to_py)?;
        let (b2, n2) = (bus_name.clone(), name.clone());
        Ok(Self {
            t: PerProcess::new(t, move || {
                open(&b2, &n2, Params::default(), false).map_err(to_py)
            }),
            bus: bus_name,
            name,
        })
    }

    /// Publishes `data` (bytes-like) as one message, without pickling. On a
    /// lossless topic whose slowest subscriber is a ring behind, waits if
    /// `block` (at most `timeout` seconds, if given), else raises
    /// `shmbus.Full` (a `queue.Full`); a lossy topic never waits.
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn publish_bytes(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let p: Publisher = self.t.get()?.publisher();
        with_bytes(data, |b| match p.try_publish(b) {
            Err(Error::Full) if block => {
                let dl = deadline(timeout)?;
                // Moved in: a `Publisher` is `Send`, not `Sync`.
                blocking(py, dl, move |d| match d {
                    Some(d) => p.publish_deadline(b, d),
                    None => p.publish(b),
                })?
                .map_err(|e| timeout_as(e, Error::Full))
            }
            r => r.map_err(to_py),
        })
    }

    /// Slots in the ring.
    #[getter]
    fn slots(&self) -> PyResult<u64> {
        Ok(self.t.get()?.slots())
    }

    /// Largest message, in bytes.
    #[getter]
    fn slot_size(&self) -> PyResult<usize> {
        Ok(self.t.get()?.slot_size())
    }

    /// True if publishers never wait and a slow subscriber gets `Lagged`.
    #[getter]
    fn lossy(&self) -> PyResult<bool> {
        Ok(self.t.get()?.is_lossy())
    }

    /// Largest number of subscribers at a time.
    #[getter]
    fn max_subscribers(&self) -> PyResult<u64> {
        Ok(self.t.get()?.max_subscribers())
    }
}

/// What `poll()` took for the next receive.
enum Pending {
    Msg(Vec<u8>),
    Lagged(u64),
}

struct SubState {
    /// `None` once closed.
    s: Option<Owned<Subscriber>>,
    pending: Option<Pending>,
}

/// A place among a topic's subscribers.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawSubscriber {
    state: Mutex<SubState>,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
}

impl SubState {
    fn sub(&mut self) -> PyResult<&mut Subscriber> {
        match &mut self.s {
            None => Err(PyOSError::new_err("subscriber is closed")),
            Some(o) if !o.current() => Err(PyOSError::new_err(
                "this subscriber belongs to the process that subscribed \
                 (a forked child subscribes again)",
            )),
            Some(o) => Ok(o.get_mut()),
        }
    }

    /// The next message (or what the receive ended with), waiting if
    /// `block` (until `timeout`); a raised signal handler's exception, or a
    /// closed or inherited subscriber, is the outer error.
    fn next(
        &mut self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<shmbus_client::Result<Vec<u8>>> {
        match self.pending.take() {
            Some(Pending::Msg(v)) => return Ok(Ok(v)),
            Some(Pending::Lagged(n)) => return Ok(Err(Error::Lagged(n))),
            None => {}
        }
        // Moved into the wait: a `Subscriber` is `Send`, not `Sync`.
        let s = self.sub()?;
        Ok(match s.try_recv() {
            Err(Error::Empty) if block && timeout != Some(0.0) => {
                let dl = deadline(timeout)?;
                blocking(py, dl, move |d| match d {
                    Some(d) => s.recv_deadline(d),
                    None => s.recv(),
                })?
            }
            r => r,
        })
    }
}

#[pymethods]
impl RawSubscriber {
    /// Joins `topic`, asking for up to the last `history` messages still in
    /// the ring first; raises `shmbus.TooManySubscribers` when it is full.
    #[new]
    #[pyo3(signature = (topic, history=0))]
    fn new(py: Python<'_>, topic: &Bound<'_, RawTopic>, history: u64) -> PyResult<Self> {
        let topic = topic.get();
        let t = topic.t.get()?;
        let s = py
            .allow_threads(|| t.subscribe_with_history(history))
            .map_err(to_py)?;
        Ok(Self {
            state: Mutex::new(SubState {
                s: Some(Owned::new(s)),
                pending: None,
            }),
            bus: topic.bus.clone(),
            name: topic.name.clone(),
        })
    }

    /// Receives the next message as `bytes`. Waits if `block` (at most
    /// `timeout` seconds, if given); raises `shmbus.Empty` (a `queue.Empty`)
    /// when there is none, and on a lossy topic `shmbus.Lagged` (with
    /// `.missed`) once for messages overwritten before this subscriber read
    /// them (the next receive continues with the oldest one still there).
    #[pyo3(signature = (block=true, timeout=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut st = lock(py, &self.state);
        match st.next(py, block, timeout)? {
            Ok(v) => Ok(PyBytes::new(py, &v)),
            Err(e) => Err(timeout_as(e, Error::Empty)),
        }
    }

    /// True if a receive would not wait (a message, or a `Lagged` report,
    /// is ready), waiting at most `timeout` seconds (0: do not wait, `None`:
    /// as long as it takes). The message is not consumed: the next receive
    /// returns it.
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let mut st = lock(py, &self.state);
        if st.pending.is_some() {
            return Ok(true);
        }
        st.pending = match st.next(py, true, timeout)? {
            Ok(v) => Some(Pending::Msg(v)),
            // Reported by the receive that follows.
            Err(Error::Lagged(n)) => Some(Pending::Lagged(n)),
            Err(Error::Empty | Error::Timeout) => return Ok(false),
            Err(e) => return Err(to_py(e)),
        };
        Ok(true)
    }

    /// Approximately how many published messages this subscriber has not
    /// read yet.
    fn pending(&self, py: Python<'_>) -> PyResult<u64> {
        let mut st = lock(py, &self.state);
        let held = u64::from(st.pending.is_some());
        Ok(st.sub()?.pending() + held)
    }

    /// Leaves the topic (a lossless topic's publishers no longer wait for
    /// this subscriber).
    fn close(&self, py: Python<'_>) {
        let mut st = lock(py, &self.state);
        st.pending = None;
        let s = st.s.take();
        drop(st);
        py.allow_threads(|| drop(s));
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).s.is_none()
    }
}
