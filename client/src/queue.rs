//! Queues: bounded multi-producer multi-consumer queues of byte frames in the
//! segment, Python's `multiprocessing.JoinableQueue` for processes on one host.
//!
//! Any number of processes may hold a [`Queue`] of the same name and put or
//! get; each item is taken by exactly one getter. The algorithm is the core's
//! [`shmbus::queue`] (Vyukov's bounded MPMC ring with owner-tagged cells, so
//! that the daemon repairs cells held by a process that dies); this module adds
//! the bus around it: the mapping stays alive as long as a handle does, and
//! blocking calls stop with `BusClosed` when the daemon goes away.
//!
//! # Cost
//! While the queue is neither empty nor full, puts and gets make no system
//! call and take no lock: a few loads and three CAS (claim the cell, advance
//! the position, publish or release the cell). A waiting call spins briefly,
//! then sleeps on a shared futex; a put or get wakes sleepers only if some
//! sleep.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::queue::{GetClaim, PutClaim, Queue as CoreQueue};

use crate::bus::removal::Hold;
use crate::bus::Inner;
use crate::error::{Error, Result};
use crate::ladder::{copy_into, Until};
use crate::select::{Ready, Source};
use crate::wait::PhantomWatch;

pub(crate) mod open;

/// What a blocking call stalled behind a phantom claim returns.
const PHANTOM_CLAIM: &str =
    "a queue cell is claimed by no connected process (its state word was overwritten)";

/// An opened queue. Cheap to clone; `Send` and `Sync`, so threads may share
/// one; keeps the bus connection alive.
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let q = bus.queue("jobs")?;
/// q.put(b"resize img-1.png")?;
/// let job = q.get()?;
/// q.task_done()?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    // Declared before `bus`, so it is dropped before the mapping can go.
    q: CoreQueue,
    bus: Arc<Inner>,
    name: Arc<str>,
    // Last: its drop tells the daemon we are done with the queue.
    _hold: Arc<Hold>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("bus", &self.bus.name())
            .field("name", &self.name)
            .field("slots", &self.q.slots())
            .field("slot_size", &self.q.slot_size())
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue whose body the mapping has checked (`Mapping::queue`).
    pub(crate) fn new(bus: Arc<Inner>, name: Arc<str>, q: CoreQueue, hold: Arc<Hold>) -> Self {
        Self {
            q,
            bus,
            name,
            _hold: hold,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of slots: at most this many items wait at a time.
    pub fn slots(&self) -> u64 {
        self.q.slots()
    }

    /// Largest item in bytes (the slot size).
    pub fn slot_size(&self) -> usize {
        self.q.slot_size()
    }

    /// Approximate number of items waiting (Python's `qsize()`): another
    /// process may put or get at any moment.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Approximately true if no item waits (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Approximately true if every slot is taken (Python's `full()`).
    pub fn is_full(&self) -> bool {
        self.q.is_full()
    }

    /// Items put and not yet marked done with [`Queue::task_done`].
    pub fn unfinished(&self) -> u64 {
        self.q.unfinished()
    }

    /// Puts `item` if a slot is free now (Python's `put_nowait`).
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full), `TooLarge` (over [`Queue::slot_size`]), `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// match q.try_put(b"job") {
    ///     Err(shmbus_client::Error::Full) => println!("busy, later"),
    ///     other => other?,
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_put(&self, item: &[u8]) -> Result<()> {
        self.bus.check_open()?;
        Ok(self.q.try_put(item)?)
    }

    /// Puts `item`, waiting while the queue is full.
    ///
    /// # Errors
    /// `TooLarge`, `BusClosed` (the daemon went away while we waited), `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// q.put(b"resize img-1.png")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn put(&self, item: &[u8]) -> Result<()> {
        self.put_until(item, Until::Forever)
    }

    /// Puts `item`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::put`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// q.put_timeout(b"job", Duration::from_millis(100))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn put_timeout(&self, item: &[u8], timeout: Duration) -> Result<()> {
        self.put_until(item, Until::Timeout(timeout))
    }

    /// Puts `item`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::put`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// for i in 0..10u8 {
    ///     q.put_deadline(&[i], deadline)?;
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn put_deadline(&self, item: &[u8], deadline: Instant) -> Result<()> {
        self.put_until(item, Until::Deadline(deadline))
    }

    /// One implementation for every blocking put: try once (no clock, no
    /// system call), and only if the queue is full compute the deadline and
    /// wait, checking the bus between futex sleeps.
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn put_until(&self, item: &[u8], until: Until) -> Result<()> {
        self.bus.check_open()?;
        match self.q.try_put(item) {
            Err(shmbus::queue::TryPutError::Full) => self.put_slow(item, until.deadline()),
            r => Ok(r?),
        }
    }

    #[inline(never)]
    fn put_slow(&self, item: &[u8], deadline: Option<Instant>) -> Result<()> {
        let bus = &self.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_claim(false));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.q.put_until(item, deadline, Some(&interrupt));
        watch.result(r.map_err(Error::from), PHANTOM_CLAIM)
    }

    /// The state word of the claim that stalls putters (`getters` false) or
    /// getters, if its owner tag is no connected peer's (see
    /// [`PhantomWatch`]). Only a scribbled cell does that: the daemon
    /// repairs a dead peer's cells before it frees its slot. Our own tag is
    /// never called phantom: another of our threads may hold the claim.
    fn phantom_claim(&self, getters: bool) -> Option<u64> {
        let w = self.q.stalling_claim(getters)?;
        let tag = shmbus::queue::state::owner(w);
        (tag != self.bus.owner() && !self.bus.peer_connected(tag)).then_some(w)
    }

    /// Claims a slot for an item of `len` bytes to be written in place; it is
    /// put by [`QueueClaim::commit`] (zero-copy put). A claim dropped without
    /// commit leaves a tombstone that getters skip.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut c = q.try_claim(8)?;
    /// c.copy_from_slice(&42u64.to_le_bytes());
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_claim(&self, len: usize) -> Result<QueueClaim<'_>> {
        self.bus.check_open()?;
        Ok(QueueClaim {
            c: self.q.try_claim(len)?,
        })
    }

    /// Claims a slot for `len` bytes, waiting while the queue is full.
    ///
    /// # Errors
    /// As [`Queue::put`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut c = q.claim(5)?;
    /// c.copy_from_slice(b"hello");
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim(&self, len: usize) -> Result<QueueClaim<'_>> {
        self.claim_until(len, Until::Forever)
    }

    /// Claims a slot for `len` bytes, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut c = q.claim_timeout(5, Duration::from_millis(100))?;
    /// c.copy_from_slice(b"hello");
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim_timeout(&self, len: usize, timeout: Duration) -> Result<QueueClaim<'_>> {
        self.claim_until(len, Until::Timeout(timeout))
    }

    /// Claims a slot for `len` bytes, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Queue::put_deadline`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let mut c = q.claim_deadline(5, deadline)?;
    /// c.copy_from_slice(b"hello");
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim_deadline(&self, len: usize, deadline: Instant) -> Result<QueueClaim<'_>> {
        self.claim_until(len, Until::Deadline(deadline))
    }

    /// One implementation for the blocking claims, as `put_until`.
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn claim_until(&self, len: usize, until: Until) -> Result<QueueClaim<'_>> {
        self.bus.check_open()?;
        match self.q.try_claim(len) {
            Ok(c) => Ok(QueueClaim { c }),
            Err(shmbus::queue::TryPutError::Full) => self.claim_slow(len, until.deadline()),
            Err(e) => Err(e.into()),
        }
    }

    #[inline(never)]
    fn claim_slow(&self, len: usize, deadline: Option<Instant>) -> Result<QueueClaim<'_>> {
        let bus = &self.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_claim(false));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.q.claim_until(len, deadline, Some(&interrupt));
        Ok(QueueClaim {
            c: watch.result(r.map_err(Error::from), PHANTOM_CLAIM)?,
        })
    }

    /// Takes the next item if there is one (Python's `get_nowait`).
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty), `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// while let Ok(job) = q.try_get() {
    ///     println!("{} bytes", job.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_get(&self) -> Result<Vec<u8>> {
        self.try_get_with(<[u8]>::to_vec)
    }

    /// Takes the next item, waiting while the queue is empty.
    ///
    /// # Errors
    /// `BusClosed`, `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let job = q.get()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get(&self) -> Result<Vec<u8>> {
        self.get_with_until(Until::Forever, <[u8]>::to_vec)
    }

    /// Takes the next item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::get`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// match q.get_timeout(Duration::from_secs(1)) {
    ///     Ok(job) => println!("{} bytes", job.len()),
    ///     Err(shmbus_client::Error::Timeout) => println!("idle"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.get_with_until(Until::Timeout(timeout), <[u8]>::to_vec)
    }

    /// Takes the next item, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::get`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// while let Ok(job) = q.get_deadline(deadline) {
    ///     println!("{} bytes", job.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_deadline(&self, deadline: Instant) -> Result<Vec<u8>> {
        self.get_with_until(Until::Deadline(deadline), <[u8]>::to_vec)
    }

    /// Takes the next item into `buf` (cleared and resized) if there is one;
    /// returns its length. Reuses `buf`'s allocation; never blocks.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut buf = Vec::with_capacity(q.slot_size());
    /// while q.try_get_into(&mut buf).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_get_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.try_get_with(copy_into(buf))
    }

    /// Takes the next item into `buf` (cleared and resized), waiting while
    /// the queue is empty; returns its length. Reuses `buf`'s allocation.
    ///
    /// # Errors
    /// As [`Queue::get`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut buf = Vec::with_capacity(q.slot_size());
    /// loop {
    ///     q.get_into(&mut buf)?;
    ///     println!("{} bytes", buf.len());
    ///     q.task_done()?;
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.get_with_until(Until::Forever, copy_into(buf))
    }

    /// Takes the next item into `buf` (cleared and resized), waiting at most
    /// `timeout`; returns its length.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut buf = Vec::new();
    /// while q.get_into_timeout(&mut buf, Duration::from_secs(1)).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_into_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.get_with_until(Until::Timeout(timeout), copy_into(buf))
    }

    /// Takes the next item into `buf` (cleared and resized), waiting until
    /// `deadline` at most; returns its length.
    ///
    /// # Errors
    /// As [`Queue::get_deadline`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut buf = Vec::new();
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// while q.get_into_deadline(&mut buf, deadline).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_into_deadline(&self, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize> {
        self.get_with_until(Until::Deadline(deadline), copy_into(buf))
    }

    /// Takes the next item and passes it to `f` in place, without copying
    /// (get-in-place); its slot is freed when `f` returns.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let len = q.try_get_with(|item| item.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.bus.check_open()?;
        let c = self.q.try_get_claim()?;
        Ok(finish(c, f))
    }

    /// Waits for the next item and passes it to `f` in place.
    ///
    /// # Errors
    /// As [`Queue::get`].
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let len = q.get_with(|item| item.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.get_with_until(Until::Forever, f)
    }

    /// Waits at most `timeout` for the next item and passes it to `f` in
    /// place.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let len = q.get_with_timeout(Duration::from_secs(1), |item| item.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_with_timeout<R>(&self, timeout: Duration, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.get_with_until(Until::Timeout(timeout), f)
    }

    /// Waits until `deadline` at most for the next item and passes it to `f`
    /// in place.
    ///
    /// # Errors
    /// As [`Queue::get_deadline`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let len = q.get_with_deadline(deadline, |item| item.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn get_with_deadline<R>(&self, deadline: Instant, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.get_with_until(Until::Deadline(deadline), f)
    }

    /// One implementation for every blocking get, as `put_until`.
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn get_with_until<R>(&self, until: Until, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.bus.check_open()?;
        match self.q.try_get_claim() {
            Ok(c) => Ok(finish(c, f)),
            Err(shmbus::queue::TryGetError::Empty) => self.get_slow(until.deadline(), f),
            Err(e) => Err(e.into()),
        }
    }

    #[inline(never)]
    fn get_slow<R>(&self, deadline: Option<Instant>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let bus = &self.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_claim(true));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.q.get_claim_until(deadline, Some(&interrupt));
        let c = watch.result(r.map_err(Error::from), PHANTOM_CLAIM)?;
        Ok(finish(c, f))
    }

    /// Marks one item taken from the queue as processed, as Python's
    /// `JoinableQueue.task_done`; when every item put has been marked,
    /// [`Queue::join`] returns.
    ///
    /// # Errors
    /// [`Error::TaskDone`](crate::Error::TaskDone) if called more times than items were put.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let job = q.get()?;
    /// // ... process `job` ...
    /// q.task_done()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.bus.check_open()?;
        Ok(self.q.task_done()?)
    }

    /// Waits until every item ever put has been marked with
    /// [`Queue::task_done`] (Python's `JoinableQueue.join`). Its non-blocking
    /// form is the question `unfinished() == 0`.
    ///
    /// # Errors
    /// `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// for i in 0..10u8 {
    ///     q.put(&[i])?;
    /// }
    /// q.join()?; // workers elsewhere call get() and task_done()
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.join_until(Until::Forever)
    }

    /// As [`Queue::join`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout), `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// if q.join_timeout(Duration::from_secs(10)).is_err() {
    ///     eprintln!("{} items still unfinished", q.unfinished());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_until(Until::Timeout(timeout))
    }

    /// As [`Queue::join`], waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Queue::join_timeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// q.join_deadline(Instant::now() + Duration::from_secs(10))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        self.join_until(Until::Deadline(deadline))
    }

    /// One implementation for the joins. The core's `join_until` checks the
    /// count before it sleeps, so a finished queue returns without a wait.
    fn join_until(&self, until: Until) -> Result<()> {
        let bus = &self.bus;
        bus.check_open()?;
        let interrupt = bus.waiter();
        Ok(self.q.join_until(until.deadline(), Some(&interrupt))?)
    }
}

/// Runs `f` on the claimed frame, then frees the slot.
#[inline(always)]
fn finish<R>(c: GetClaim<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    let r = f(c.as_slice());
    drop(c);
    r
}

/// A slot claimed by [`Queue::claim`], [`Queue::try_claim`] or their timed
/// forms: write the item in place (it derefs to `[u8]` of the claimed
/// length), then [`commit`](QueueClaim::commit). Dropped without commit, it
/// leaves a tombstone that getters skip.
///
/// The bytes start with unspecified contents (whatever the slot held).
///
/// # Examples
/// ```no_run
/// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
/// let mut c = q.claim(8)?;
/// c.copy_from_slice(&7u64.to_le_bytes());
/// c.commit()?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
pub struct QueueClaim<'a> {
    c: PutClaim<'a>,
}

impl fmt::Debug for QueueClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueClaim")
            .field("len", &self.c.len())
            .finish_non_exhaustive()
    }
}

impl QueueClaim<'_> {
    /// Puts the item.
    ///
    /// # Errors
    /// None today; the `Result` is the same as
    /// [`PipeClaim::commit`](crate::PipeClaim::commit)'s, so that both claims
    /// are committed with `?`, and leaves room for a check that the daemon
    /// did not repair the slot meanwhile.
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// let mut c = q.try_claim(2)?;
    /// c.copy_from_slice(b"ok");
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.c.commit();
        Ok(())
    }
}

impl Deref for QueueClaim<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.c.as_slice()
    }
}

impl DerefMut for QueueClaim<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.c.as_mut_slice()
    }
}

/// [`Queue::readable`]'s and [`Queue::writable`]'s events.
struct QueueEvent<'a> {
    q: &'a Queue,
    getters: bool,
}

impl Source for QueueEvent<'_> {
    fn is_ready(&self) -> bool {
        self.q.q.is_ready(self.getters) || self.q.bus.daemon_gone()
    }

    fn doorbell(&self) -> &shmbus::futex::Doorbell {
        self.q.q.doorbell(self.getters)
    }

    fn bus(&self) -> &Arc<Inner> {
        &self.q.bus
    }
}

impl Queue {
    /// The event "an item is waiting" (a get would find one, unless another
    /// consumer takes it first), for a [`Select`](crate::Select).
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// shmbus_client::Select::new().with(q.readable()).wait()?;
    /// let job = q.try_get(); // Empty if another consumer was faster
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn readable(&self) -> Ready<'_> {
        Ready(Box::new(QueueEvent {
            q: self,
            getters: true,
        }))
    }

    /// The event "a slot is free" (a put would find one, unless another
    /// producer takes it first), for a [`Select`](crate::Select).
    ///
    /// # Examples
    /// ```no_run
    /// let q = shmbus_client::Bus::connect()?.queue("jobs")?;
    /// shmbus_client::Select::new().with(q.writable()).wait()?;
    /// let _ = q.try_put(b"job"); // Full if another producer was faster
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn writable(&self) -> Ready<'_> {
        Ready(Box::new(QueueEvent {
            q: self,
            getters: false,
        }))
    }
}
