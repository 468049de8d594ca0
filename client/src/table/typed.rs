//! The typed forms of a value or array: [`Value<T>`](crate::Value) and
//! [`Array<T>`](crate::Array), over an untyped [`Table`].

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use shmbus::layout::Kind;
use shmbus::seqlock::{Element, Integer};

use super::Table;
use crate::bus::Bus;
use crate::error::{Error, Result};

/// A typed value shared between processes: Python's
/// `multiprocessing.Value(typecode)`, with reads that never take a lock.
///
/// Cheap to clone; `Send + Sync`; keeps the bus connection alive.
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let price = bus.value::<f64>("price")?; // created as 0.0 if absent
/// price.store(101.25)?;
/// assert_eq!(price.load(), 101.25);
/// let hits = bus.value::<u64>("hits")?;
/// hits.fetch_add(1)?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
pub struct Value<T: Element> {
    table: Table,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("name", &self.table.name)
            .field("value", &self.load())
            .finish()
    }
}

impl<T: Element> Value<T> {
    pub(crate) fn new(table: Table) -> Self {
        debug_assert_eq!(table.elem(), T::TYPE);
        Self {
            table,
            _t: PhantomData,
        }
    }

    /// The untyped handle.
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<i32>("n")?;
    /// assert_eq!(v.table().len(), 1);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The value's name.
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<i32>("n")?;
    /// assert_eq!(v.name(), "n");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// Reads the value; never blocks, never torn.
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// println!("{}", v.load());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn load(&self) -> T {
        self.table.lock.load::<T>().0
    }

    /// Reads the value and the version it had.
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// let (x, version) = v.load_versioned();
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn load_versioned(&self) -> (T, u64) {
        self.table.lock.load::<T>()
    }

    /// Stores `v`. Waits if another writer holds the lock.
    ///
    /// # Errors
    /// [`Error::BusClosed`] if the daemon goes away while waiting for the
    /// lock; [`Error::Corrupt`] if the lock is held under an owner tag that
    /// no connected process has (the segment was scribbled on).
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// v.store(1.5)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn store(&self, v: T) -> Result<()> {
        let mut g = self.table.lock_write(None)?;
        g.write(&[v]);
        g.publish();
        Ok(())
    }

    /// Read-modify-write under the writer lock: Python's
    /// `with v.get_lock(): v.value = f(v.value)`. Returns the new value. If
    /// `f` panics, nothing is published and the lock is released.
    ///
    /// # Errors
    /// As [`Value::store`].
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// let doubled = v.update(|x| x * 2.0)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T> {
        self.modify(|x| self.table.run_user_code(|| f(x)))
    }

    /// [`update`](Self::update) for this crate's own bounded closures, which
    /// need not be counted as user code under the lock.
    #[inline]
    fn modify(&self, f: impl FnOnce(T) -> T) -> Result<T> {
        let mut g = self.table.lock_write(None)?;
        let mut cur = [T::default()];
        g.read_into(&mut cur);
        let new = f(cur[0]);
        g.write(&[new]);
        g.publish();
        Ok(new)
    }

    /// The event "the version is no longer `since`", for a
    /// [`Select`](crate::Select) (see [`Table::changed_since`]).
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("speed")?;
    /// let since = v.version();
    /// shmbus_client::Select::new().with(v.changed_since(since)).wait()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn changed_since(&self, since: u64) -> crate::select::Ready<'_> {
        self.table.changed_since(since)
    }

    /// The version: bumped by every write (0 = never written).
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// let before = v.version();
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn version(&self) -> u64 {
        self.table.version()
    }

    /// Blocks until the version differs from `since` (sleeping on a futex),
    /// and returns the new version: at once if it differs already.
    ///
    /// # Errors
    /// `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// let mut seen = v.version();
    /// loop {
    ///     seen = v.wait_changed(seen)?;
    ///     println!("now {}", v.load());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed(&self, since: u64) -> Result<u64> {
        self.table.wait_changed(since)
    }

    /// As [`Value::wait_changed`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`]; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// match v.wait_changed_timeout(v.version(), Duration::from_millis(100)) {
    ///     Ok(_) => println!("now {}", v.load()),
    ///     Err(shmbus_client::Error::Timeout) => println!("unchanged"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_timeout(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.table.wait_changed_timeout(since, timeout)
    }

    /// As [`Value::wait_changed`], waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`]; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// let v = shmbus_client::Bus::connect()?.value::<f64>("x")?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let mut seen = v.version();
    /// while let Ok(now) = v.wait_changed_deadline(seen, deadline) {
    ///     seen = now;
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_deadline(&self, since: u64, deadline: Instant) -> Result<u64> {
        self.table.wait_changed_deadline(since, deadline)
    }
}

impl<T: Integer> Value<T> {
    /// Adds `delta` (wrapping) atomically and returns the previous value, as
    /// `AtomicXX::fetch_add` does.
    ///
    /// # Errors
    /// As [`Value::store`].
    ///
    /// # Examples
    /// ```no_run
    /// let hits = shmbus_client::Bus::connect()?.value::<u64>("hits")?;
    /// let before = hits.fetch_add(1)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn fetch_add(&self, delta: T) -> Result<T> {
        let mut old = T::default();
        self.modify(|v| {
            old = v;
            v.wrapping_add(delta)
        })?;
        Ok(old)
    }
}

/// A typed fixed-length array shared between processes: Python's
/// `multiprocessing.Array(typecode, n)`, with reads that never take a lock
/// and are never torn.
///
/// Cheap to clone; `Send + Sync`; keeps the bus connection alive.
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let a = bus.array::<i32>("a", 4)?; // created as zeros if absent
/// a.write(&[1, 2, 3, 4])?;
/// assert_eq!(a.read(), [1, 2, 3, 4]);
/// a.update(|xs| xs[0] += 10)?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
pub struct Array<T: Element> {
    table: Table,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for Array<T> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.table.name)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T: Element> Array<T> {
    pub(crate) fn new(table: Table) -> Self {
        debug_assert_eq!(table.elem(), T::TYPE);
        Self {
            table,
            _t: PhantomData,
        }
    }

    /// The untyped handle.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// assert_eq!(a.table().len(), 4);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The array's name.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// assert_eq!(a.name(), "a");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// Number of elements.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// assert_eq!(a.len(), 4);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    fn check_len(&self, n: usize) -> Result<()> {
        if n == self.len() {
            Ok(())
        } else {
            Err(Error::LengthMismatch {
                channel: self.table.name.to_string(),
                expected: self.len(),
                found: n,
            })
        }
    }

    /// Copies every element into `out`, never torn, never blocking. Returns
    /// the version read.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `out.len() == self.len()`.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<f64>("prices", 16)?;
    /// let mut buf = [0.0; 16];
    /// let version = a.read_into(&mut buf)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn read_into(&self, out: &mut [T]) -> Result<u64> {
        self.check_len(out.len())?;
        Ok(self.table.lock.read_into(out))
    }

    /// Reads every element into a new `Vec`, never torn.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// println!("{:?}", a.read());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn read(&self) -> Vec<T> {
        let mut v = vec![T::default(); self.len()];
        self.table.lock.read_into(&mut v);
        v
    }

    /// Reads element `i` alone (Python's `a[i]`), never torn.
    ///
    /// # Panics
    /// If `i >= self.len()`, as slice indexing does.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// println!("{}", a.get(3));
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get(&self, i: usize) -> T {
        self.table.lock.load_at::<T>(i).0
    }

    /// Stores element `i` alone (Python's `a[i] = v`): a read-modify-write of
    /// the whole array under the writer lock, since every write publishes a
    /// complete copy.
    ///
    /// # Errors
    /// As [`Array::write`].
    ///
    /// # Panics
    /// If `i >= self.len()`.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 4)?;
    /// a.set(3, 42)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        assert!(
            i < self.len(),
            "index {i} out of range for array of {}",
            self.len()
        );
        self.update(|xs| xs[i] = v)
    }

    /// Stores every element at once: readers see the old array or the new
    /// one, never a mix. Waits if another writer holds the lock.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `src.len() == self.len()`;
    /// `BusClosed` if the daemon goes away while waiting for the lock;
    /// `Corrupt` if no connected process holds it (as [`Value::store`]).
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// a.write(&[1, 2, 3])?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn write(&self, src: &[T]) -> Result<()> {
        self.check_len(src.len())?;
        let mut g = self.table.lock_write(None)?;
        g.write(src);
        g.publish();
        Ok(())
    }

    /// Read-modify-write of the whole array under the writer lock (Python's
    /// `with a.get_lock(): ...`). If `f` panics, nothing is published.
    ///
    /// # Errors
    /// As [`Array::write`] (`BusClosed`).
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// a.update(|xs| xs.iter_mut().for_each(|x| *x += 1))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn update(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        let mut g = self.table.lock_write(None)?;
        let mut cur = vec![T::default(); self.len()];
        g.read_into(&mut cur);
        self.table.run_user_code(|| f(&mut cur));
        g.write(&cur);
        g.publish();
        Ok(())
    }

    /// The event "the version is no longer `since`", for a
    /// [`Select`](crate::Select) (see [`Table::changed_since`]).
    ///
    /// # Examples
    /// ```no_run
    /// let v = shmbus_client::Bus::connect()?.array::<f64>("speeds", 4)?;
    /// let since = v.version();
    /// shmbus_client::Select::new().with(v.changed_since(since)).wait()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn changed_since(&self, since: u64) -> crate::select::Ready<'_> {
        self.table.changed_since(since)
    }

    /// The version: bumped by every write (0 = never written).
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// println!("{}", a.version());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn version(&self) -> u64 {
        self.table.version()
    }

    /// Blocks until the version differs from `since` (sleeping on a futex),
    /// and returns the new version: at once if it differs already.
    ///
    /// # Errors
    /// `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// let v = a.wait_changed(a.version())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed(&self, since: u64) -> Result<u64> {
        self.table.wait_changed(since)
    }

    /// As [`Array::wait_changed`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`]; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// let v = a.wait_changed_timeout(a.version(), Duration::from_secs(1))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_timeout(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.table.wait_changed_timeout(since, timeout)
    }

    /// As [`Array::wait_changed`], waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`]; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// let a = shmbus_client::Bus::connect()?.array::<i32>("a", 3)?;
    /// let d = Instant::now() + Duration::from_secs(1);
    /// let v = a.wait_changed_deadline(a.version(), d)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_deadline(&self, since: u64, deadline: Instant) -> Result<u64> {
        self.table.wait_changed_deadline(since, deadline)
    }
}

impl Bus {
    /// Opens the value `name` holding one `T`, creating it (as zero) if it
    /// does not exist yet: Python's `multiprocessing.Value`.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] if `name` holds another element type or is an
    /// array; otherwise as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let x = bus.value::<f64>("x")?;
    /// x.store(x.load() + 1.0)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn value<T: Element>(&self, name: &str) -> Result<Value<T>> {
        self.table_impl(Kind::Value, name, true, Some(T::TYPE), Some(1))
            .map(Value::new)
    }

    /// Opens the array `name` of `len` elements of `T`, creating it (all
    /// zero) if it does not exist yet: Python's `multiprocessing.Array`.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] if `name` holds another element type or
    /// length; [`Error::BadParams`] unless `1 <= len <= 2^20`; otherwise as
    /// [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let a = bus.array::<i32>("a", 10)?;
    /// a.write(&[7; 10])?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn array<T: Element>(&self, name: &str, len: usize) -> Result<Array<T>> {
        self.table_impl(Kind::Array, name, true, Some(T::TYPE), Some(len as u64))
            .map(Array::new)
    }

    /// Opens the existing value `name`, which must hold a `T`; never creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; otherwise as [`Bus::value`].
    ///
    /// # Examples
    /// ```no_run
    /// let x = shmbus_client::Bus::connect()?.open_value::<f64>("x")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn open_value<T: Element>(&self, name: &str) -> Result<Value<T>> {
        self.table_impl(Kind::Value, name, false, Some(T::TYPE), Some(1))
            .map(Value::new)
    }

    /// Opens the existing array `name` of `T`, whatever its length; never
    /// creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; otherwise as [`Bus::array`].
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.open_array::<i32>("a")?;
    /// println!("{} elements", a.len());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn open_array<T: Element>(&self, name: &str) -> Result<Array<T>> {
        self.table_impl(Kind::Array, name, false, Some(T::TYPE), None)
            .map(Array::new)
    }
}
