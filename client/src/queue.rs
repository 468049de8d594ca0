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

use crate::bus::{Hold, Inner, PhantomWatch};
use crate::error::{Error, Result};

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
    #[inline]
    pub fn put(&self, item: &[u8]) -> Result<()> {
        self.bus.check_open()?;
        match self.q.try_put(item) {
            Err(shmbus::queue::TryPutError::Full) => self.put_slow(item, None),
            r => Ok(r?),
        }
    }

    /// Puts `item`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::put`].
    pub fn put_timeout(&self, item: &[u8], timeout: Duration) -> Result<()> {
        self.put_deadline(item, Instant::now() + timeout)
    }

    /// Puts `item`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_deadline(&self, item: &[u8], deadline: Instant) -> Result<()> {
        self.put_slow(item, Some(deadline))
    }

    fn put_slow(&self, item: &[u8], deadline: Option<Instant>) -> Result<()> {
        let bus = &self.bus;
        bus.check_open()?;
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
    pub fn claim(&self, len: usize) -> Result<QueueClaim<'_>> {
        self.claim_until(len, None)
    }

    /// Claims a slot for `len` bytes, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn claim_timeout(&self, len: usize, timeout: Duration) -> Result<QueueClaim<'_>> {
        self.claim_until(len, Some(Instant::now() + timeout))
    }

    fn claim_until(&self, len: usize, deadline: Option<Instant>) -> Result<QueueClaim<'_>> {
        let bus = &self.bus;
        bus.check_open()?;
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
    #[inline]
    pub fn try_get(&self) -> Result<Vec<u8>> {
        self.try_get_with(<[u8]>::to_vec)
    }

    /// Takes the next item, waiting while the queue is empty.
    ///
    /// # Errors
    /// `BusClosed`, `Corrupt`.
    #[inline]
    pub fn get(&self) -> Result<Vec<u8>> {
        self.get_with(<[u8]>::to_vec)
    }

    /// Takes the next item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`Queue::get`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.get_with_deadline(Instant::now() + timeout, <[u8]>::to_vec)
    }

    /// Takes the next item into `buf` (cleared and resized), waiting while
    /// the queue is empty; returns its length. Reuses `buf`'s allocation.
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.get_with(|b| {
            buf.clear();
            buf.extend_from_slice(b);
            b.len()
        })
    }

    /// Takes the next item and passes it to `f` in place, without copying
    /// (get-in-place); its slot is freed when `f` returns.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
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
    #[inline]
    pub fn get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.bus.check_open()?;
        match self.q.try_get_claim() {
            Ok(c) => Ok(finish(c, f)),
            Err(shmbus::queue::TryGetError::Empty) => self.get_slow(None, f),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until `deadline` at most for the next item and passes it to `f`.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_with_deadline<R>(&self, deadline: Instant, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.get_slow(Some(deadline), f)
    }

    fn get_slow<R>(&self, deadline: Option<Instant>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let bus = &self.bus;
        bus.check_open()?;
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
    pub fn task_done(&self) -> Result<()> {
        self.bus.check_open()?;
        Ok(self.q.task_done()?)
    }

    /// Waits until every item ever put has been marked with
    /// [`Queue::task_done`] (Python's `JoinableQueue.join`).
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
        self.join_until(None)
    }

    /// As [`Queue::join`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout), `BusClosed`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_until(Some(Instant::now() + timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<()> {
        let bus = &self.bus;
        bus.check_open()?;
        let interrupt = bus.waiter();
        Ok(self.q.join_until(deadline, Some(&interrupt))?)
    }
}

/// Runs `f` on the claimed frame, then frees the slot.
#[inline(always)]
fn finish<R>(c: GetClaim<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    let r = f(c.as_slice());
    drop(c);
    r
}

/// A slot claimed by [`Queue::try_claim`]: write the item in place (it derefs
/// to `[u8]` of the claimed length), then [`commit`](QueueClaim::commit).
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
    /// None today; the `Result` leaves room for a check that the daemon did
    /// not repair the slot meanwhile.
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
