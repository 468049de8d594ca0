//! `shmbus._shmbus.RawShared`: a bus value or array of one element type
//! chosen at run time (the base of `shmbus.Value` and `shmbus.Array`).
//!
//! Elements travel as their 64-bit words (`Element::to_bits`); [`to_py`] and
//! [`from_py`] convert by element type. `get_lock()` holds the channel's
//! writer lock for the length of a `with` block: the client's `update`
//! closure runs on a helper thread that hands the contents to the block and
//! waits for it to end; reads and writes of this handle inside the block see
//! and change the held copy, published when the block ends.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice};
use shmbus::sync::{AtomicU32, Ordering};
use shmbus_client::{Array, Bus, ElemType, Element, Error, Kind, Result, Value};

use crate::bus::{bus, resolve};
use crate::errors::to_py as err;
use crate::fork::PerProcess;
use crate::wait::{blocking, deadline};

/// A value or array, as words.
trait Words: Send + Sync {
    fn len(&self) -> usize;
    fn read(&self) -> Vec<u64>;
    fn get(&self, i: usize) -> u64;
    fn write(&self, w: &[u64]) -> Result<()>;
    fn set(&self, i: usize, w: u64) -> Result<()>;
    fn update(&self, f: &mut dyn FnMut(&mut [u64])) -> Result<()>;
    fn version(&self) -> u64;
    fn wait_changed(&self, since: u64, deadline: Option<Instant>) -> Result<u64>;
}

impl<T: Element + Send + Sync> Words for Value<T> {
    fn len(&self) -> usize {
        1
    }
    fn read(&self) -> Vec<u64> {
        vec![self.load().to_bits()]
    }
    fn get(&self, _: usize) -> u64 {
        self.load().to_bits()
    }
    fn write(&self, w: &[u64]) -> Result<()> {
        self.store(T::from_bits(w[0]))
    }
    fn set(&self, _: usize, w: u64) -> Result<()> {
        self.store(T::from_bits(w))
    }
    fn update(&self, f: &mut dyn FnMut(&mut [u64])) -> Result<()> {
        Value::update(self, |x| {
            let mut b = [x.to_bits()];
            f(&mut b);
            T::from_bits(b[0])
        })
        .map(drop)
    }
    fn version(&self) -> u64 {
        Value::version(self)
    }
    fn wait_changed(&self, since: u64, deadline: Option<Instant>) -> Result<u64> {
        match deadline {
            Some(d) => self.wait_changed_deadline(since, d),
            None => Value::wait_changed(self, since),
        }
    }
}

impl<T: Element + Send + Sync> Words for Array<T> {
    fn len(&self) -> usize {
        Array::len(self)
    }
    fn read(&self) -> Vec<u64> {
        Array::read(self)
            .into_iter()
            .map(Element::to_bits)
            .collect()
    }
    fn get(&self, i: usize) -> u64 {
        Array::get(self, i).to_bits()
    }
    fn write(&self, w: &[u64]) -> Result<()> {
        let v: Vec<T> = w.iter().map(|&b| T::from_bits(b)).collect();
        Array::write(self, &v)
    }
    fn set(&self, i: usize, w: u64) -> Result<()> {
        Array::set(self, i, T::from_bits(w))
    }
    fn update(&self, f: &mut dyn FnMut(&mut [u64])) -> Result<()> {
        Array::update(self, |buf| {
            let mut b: Vec<u64> = buf.iter().map(|x| x.to_bits()).collect();
            f(&mut b);
            for (x, w) in buf.iter_mut().zip(b) {
                *x = T::from_bits(w);
            }
        })
    }
    fn version(&self) -> u64 {
        Array::version(self)
    }
    fn wait_changed(&self, since: u64, deadline: Option<Instant>) -> Result<u64> {
        match deadline {
            Some(d) => self.wait_changed_deadline(since, d),
            None => Array::wait_changed(self, since),
        }
    }
}

macro_rules! by_elem {
    ($elem:expr, $T:ident => $body:expr) => {
        match $elem {
            ElemType::I8 => {
                type $T = i8;
                $body
            }
            ElemType::U8 => {
                type $T = u8;
                $body
            }
            ElemType::I16 => {
                type $T = i16;
                $body
            }
            ElemType::U16 => {
                type $T = u16;
                $body
            }
            ElemType::I32 => {
                type $T = i32;
                $body
            }
            ElemType::U32 => {
                type $T = u32;
                $body
            }
            ElemType::I64 => {
                type $T = i64;
                $body
            }
            ElemType::U64 => {
                type $T = u64;
                $body
            }
            ElemType::F32 => {
                type $T = f32;
                $body
            }
            ElemType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

fn open(b: &Bus, kind: Kind, elem: ElemType, name: &str, len: usize) -> Result<Arc<dyn Words>> {
    Ok(match kind {
        Kind::Value => by_elem!(elem, T => Arc::new(b.value::<T>(name)?) as Arc<dyn Words>),
        _ => by_elem!(elem, T => Arc::new(b.array::<T>(name, len)?) as Arc<dyn Words>),
    })
}

/// Word `w` of type `elem` as a Python int or float.
fn to_py(py: Python<'_>, elem: ElemType, w: u64) -> PyResult<PyObject> {
    by_elem!(elem, T => Ok(<T as Element>::from_bits(w).into_pyobject(py)?.into_any().unbind()))
}

/// `ob` as a word of type `elem` (`OverflowError` if it does not fit).
fn from_py(elem: ElemType, ob: &Bound<'_, PyAny>) -> PyResult<u64> {
    by_elem!(elem, T => Ok(Element::to_bits(ob.extract::<T>()?)))
}

/// `a + b` in type `elem` (integers wrap).
fn add(elem: ElemType, a: u64, b: u64) -> u64 {
    by_elem!(elem, T => {
        let (a, b) = (<T as Element>::from_bits(a), <T as Element>::from_bits(b));
        Element::to_bits(a.wrapping_add_bits(b))
    })
}

/// Addition for every element type, wrapping for integers.
trait WrappingAddBits {
    fn wrapping_add_bits(self, rhs: Self) -> Self;
}
macro_rules! wrapping {
    ($($t:ty),*) => {$(impl WrappingAddBits for $t {
        fn wrapping_add_bits(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
    })*};
}
wrapping!(i8, u8, i16, u16, i32, u32, i64, u64);
impl WrappingAddBits for f32 {
    fn wrapping_add_bits(self, rhs: Self) -> Self {
        self + rhs
    }
}
impl WrappingAddBits for f64 {
    fn wrapping_add_bits(self, rhs: Self) -> Self {
        self + rhs
    }
}

/// A held writer lock (`get_lock()`): the copy being changed, and the way
/// to hand it back to the helper thread that holds the lock.
struct Held {
    words: Vec<u64>,
    done: mpsc::Sender<Option<Vec<u64>>>,
    thread: std::thread::JoinHandle<Result<()>>,
    /// The fork generation that holds it (a child has no helper thread).
    gen: u64,
}

/// A named value or array on a bus.
#[pyclass(subclass, module = "shmbus._shmbus", frozen)]
pub(crate) struct RawShared {
    w: PerProcess<Arc<dyn Words>>,
    elem: ElemType,
    held: Mutex<Option<Held>>,
    /// 1 while `held` is `Some`: lets reads skip the mutex. This process's
    /// threads only; the thread in the `with` block sets and reads it itself.
    holding: AtomicU32,
    #[pyo3(get)]
    bus: String,
    #[pyo3(get)]
    name: String,
    /// The typecode as given.
    #[pyo3(get)]
    typecode: String,
    /// True for an array, false for a value.
    #[pyo3(get)]
    is_array: bool,
}

fn elem_of(typecode: &str) -> PyResult<ElemType> {
    ElemType::parse(typecode).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unsupported typecode {typecode:?}: one of b B h H i I l L q Q f d"
        ))
    })
}

impl RawShared {
    fn index(&self, len: usize, i: isize) -> PyResult<usize> {
        let j = if i < 0 { i + len as isize } else { i };
        usize::try_from(j)
            .ok()
            .filter(|&j| j < len)
            .ok_or_else(|| PyIndexError::new_err("array index out of range"))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The words of this handle's held copy, if `get_lock()` is held.
    #[inline]
    fn held_words(&self) -> Option<Vec<u64>> {
        // Relaxed: see `holding`.
        if self.holding.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.held().as_ref().map(|h| h.words.clone())
    }

    /// Element `i` (checked), from the held copy or the channel.
    #[inline]
    fn word(&self, w: &dyn Words, i: usize) -> u64 {
        match self.held_words() {
            Some(h) => h[i],
            None => w.get(i),
        }
    }

    /// Every element, from the held copy or one consistent snapshot.
    fn words(&self, w: &dyn Words) -> Vec<u64> {
        self.held_words().unwrap_or_else(|| w.read())
    }
}

#[pymethods]
impl RawShared {
    /// Opens (creating if missing) value `name` (`length` None) or array
    /// `name` of `length` elements, of element type `typecode`
    /// (`multiprocessing`'s typecodes), on bus `bus`.
    #[new]
    #[pyo3(signature = (bus, name, typecode, length=None))]
    fn new(
        py: Python<'_>,
        bus: Option<&str>,
        name: String,
        typecode: String,
        length: Option<usize>,
    ) -> PyResult<Self> {
        let elem = elem_of(&typecode)?;
        let bus_name = resolve(bus);
        let kind = if length.is_some() {
            Kind::Array
        } else {
            Kind::Value
        };
        let len = length.unwrap_or(1);
        let w = py
            .allow_threads(|| open(&self::bus(&bus_name)?, kind, elem, &name, len))
            .map_err(err)?;
        let (b2, n2) = (bus_name.clone(), name.clone());
        Ok(Self {
            w: PerProcess::new(w, move || {
                open(&self::bus(&b2).map_err(err)?, kind, elem, &n2, len).map_err(err)
            }),
            elem,
            held: Mutex::new(None),
            holding: AtomicU32::new(0),
            bus: bus_name,
            name,
            typecode,
            is_array: length.is_some(),
        })
    }

    /// Number of elements (1 for a value).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.w.get()?.len())
    }

    /// Element `i` (negative counts from the end); never torn.
    fn getitem(&self, py: Python<'_>, i: isize) -> PyResult<PyObject> {
        let w = self.w.get()?;
        let i = self.index(w.len(), i)?;
        to_py(py, self.elem, self.word(&**w, i))
    }

    /// The value (element 0): one lock-free read, never torn.
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<PyObject> {
        let w = self.w.get()?;
        to_py(py, self.elem, self.word(&**w, 0))
    }

    /// Sets the value (element 0).
    #[setter]
    fn set_value(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.setitem(py, 0, x)
    }

    /// `a[i]` (an element) or `a[i:j:k]` (a list, from one consistent
    /// snapshot).
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let Ok(sl) = key.downcast::<PySlice>() else {
            return self.getitem(py, key.extract()?);
        };
        let w = self.w.get()?;
        let words = self.words(&**w);
        let ix = sl.indices(words.len() as isize)?;
        let list = PyList::empty(py);
        let mut i = ix.start;
        for _ in 0..ix.slicelength {
            list.append(to_py(py, self.elem, words[i as usize])?)?;
            i += ix.step;
        }
        Ok(list.into_any().unbind())
    }

    /// `a[i] = x`, or `a[i:j:k] = xs` (one publication; `xs` must have the
    /// slice's length).
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let Ok(sl) = key.downcast::<PySlice>() else {
            return self.setitem(py, key.extract()?, x);
        };
        let len = self.w.get()?.len();
        let ix = sl.indices(len as isize)?;
        let xs: Vec<Bound<'_, PyAny>> = x.try_iter()?.collect::<PyResult<_>>()?;
        if xs.len() as isize != ix.slicelength as isize {
            return Err(PyValueError::new_err(
                "can only assign a sequence of the same size",
            ));
        }
        let indices = (0..ix.slicelength as isize)
            .map(|k| (ix.start + k * ix.step) as usize)
            .collect();
        self.assign(py, indices, xs)
    }

    /// Every element, as a list, from one consistent snapshot.
    fn read(&self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let words = self.words(&**self.w.get()?);
        words.into_iter().map(|x| to_py(py, self.elem, x)).collect()
    }

    /// Sets element `i` to `x`.
    fn setitem(&self, py: Python<'_>, i: isize, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let w = self.w.get()?;
        let i = self.index(w.len(), i)?;
        let word = from_py(self.elem, x)?;
        if let Some(h) = &mut *self.held() {
            h.words[i] = word;
            return Ok(());
        }
        py.allow_threads(|| w.set(i, word)).map_err(err)
    }

    /// Writes `xs` at the positions `indices` in one publication (readers see
    /// all of it or none).
    fn assign(
        &self,
        py: Python<'_>,
        indices: Vec<usize>,
        xs: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let w = self.w.get()?;
        if indices.len() != xs.len() || indices.iter().any(|&i| i >= w.len()) {
            return Err(PyValueError::new_err(
                "assignment does not match the array's size",
            ));
        }
        let words = xs
            .iter()
            .map(|x| from_py(self.elem, x))
            .collect::<PyResult<Vec<_>>>()?;
        if let Some(h) = &mut *self.held() {
            for (&i, &x) in indices.iter().zip(&words) {
                h.words[i] = x;
            }
            return Ok(());
        }
        let whole = indices.len() == w.len() && indices.iter().enumerate().all(|(k, &i)| k == i);
        py.allow_threads(|| {
            if whole {
                w.write(&words)
            } else {
                w.update(&mut |buf| {
                    for (&i, &x) in indices.iter().zip(&words) {
                        buf[i] = x;
                    }
                })
            }
        })
        .map_err(err)
    }

    /// Adds `delta` to element `i` under the writer lock and returns the
    /// value before (integers wrap around).
    #[pyo3(signature = (delta, i=0))]
    fn fetch_add(&self, py: Python<'_>, delta: &Bound<'_, PyAny>, i: usize) -> PyResult<PyObject> {
        let w = self.w.get()?;
        let i = self.index(w.len(), i as isize)?;
        let d = from_py(self.elem, delta)?;
        if self.held().is_some() {
            return Err(PyRuntimeError::new_err(
                "fetch_add inside get_lock(): use += instead",
            ));
        }
        let elem = self.elem;
        let mut old = 0;
        py.allow_threads(|| {
            w.update(&mut |buf| {
                old = buf[i];
                buf[i] = add(elem, buf[i], d);
            })
        })
        .map_err(err)?;
        to_py(py, elem, old)
    }

    /// The version: bumped by every write (0 = never written).
    #[getter]
    fn version(&self) -> PyResult<u64> {
        Ok(self.w.get()?.version())
    }

    /// Waits until the version differs from `since`, at most `timeout`
    /// seconds if given; returns the new version, or `None` on timeout.
    #[pyo3(signature = (since, timeout=None))]
    fn wait_version(
        &self,
        py: Python<'_>,
        since: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let w = self.w.get()?;
        let dl = deadline(timeout)?;
        match blocking(py, dl, |d| w.wait_changed(since, d))? {
            Ok(v) => Ok(Some(v)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Takes the writer lock (for `get_lock().__enter__`); true if taken.
    fn lock_acquire(&self, py: Python<'_>) -> PyResult<bool> {
        let mut held = self.held();
        if held.is_some() {
            return Err(PyRuntimeError::new_err(
                "get_lock() is already held by this handle (it is not re-entrant)",
            ));
        }
        let w = Arc::clone(&*self.w.get()?);
        let (tx_in, rx_in) = mpsc::channel::<Vec<u64>>();
        let (tx_done, rx_done) = mpsc::channel::<Option<Vec<u64>>>();
        let thread = std::thread::spawn(move || {
            w.update(&mut |buf| {
                if tx_in.send(buf.to_vec()).is_err() {
                    return;
                }
                if let Ok(Some(new)) = rx_done.recv() {
                    buf.copy_from_slice(&new);
                }
            })
        });
        match py.allow_threads(move || rx_in.recv()) {
            Ok(words) => {
                *held = Some(Held {
                    words,
                    done: tx_done,
                    thread,
                    gen: crate::fork::generation(),
                });
                self.holding.store(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(_) => {
                let r = py.allow_threads(|| thread.join());
                match r {
                    Ok(Err(e)) => Err(err(e)),
                    _ => Err(PyRuntimeError::new_err("the lock holder thread failed")),
                }
            }
        }
    }

    /// Publishes what the `with` block wrote (if `commit`) and releases the
    /// writer lock (for `get_lock().__exit__`).
    #[pyo3(signature = (commit=true))]
    fn lock_release(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        self.holding.store(0, Ordering::Relaxed);
        let Some(h) = self.held().take() else {
            return Err(PyRuntimeError::new_err("release of an unheld lock"));
        };
        let _ = h.done.send(commit.then_some(h.words));
        match py.allow_threads(|| h.thread.join()) {
            Ok(r) => r.map_err(err),
            Err(_) => Err(PyRuntimeError::new_err("the lock holder thread failed")),
        }
    }
}

impl Drop for RawShared {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = held.take() {
            if h.gen != crate::fork::generation() {
                std::mem::forget(h);
                return;
            }
            let _ = h.done.send(None);
            let _ = h.thread.join();
        }
    }
}
