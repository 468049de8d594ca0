//! A pipe's sending end ([`PipeSender`]) and the room it claims for one
//! frame ([`PipeClaim`]).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::pipe::{Claim, Producer, TrySendError};

use super::{phantom_end, Pipe, PHANTOM_END};
use crate::bus::removal::Hold;
use crate::bus::Inner;
use crate::error::{End, Error, Result};
use crate::ladder::Until;
use crate::select::{Ready, Source};
use crate::wait::PhantomWatch;

impl Pipe {
    /// Claims the sending end. Only one holder on the whole bus may have it at
    /// a time; dropping the [`PipeSender`] releases it.
    ///
    /// # Errors
    /// [`Error::Busy`] if another handle (in any process) holds the
    /// sending end; `Corrupt` if the pipe's control block is inconsistent.
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe("orders")?;
    /// let mut tx = pipe.sender()?;
    /// tx.send(b"buy 10")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn sender(&self) -> Result<PipeSender> {
        let (ctl, ring) = self.body()?;
        // SAFETY:
        // - `ctl` passed `PipeCtl::check` with this capacity in `body`, and
        //   `ring` is that pipe's ring (at `offset + CTL_SIZE`, checked to lie
        //   in the arena);
        // - both stay mapped for the producer's whole life: it is stored in a
        //   `PipeSender` together with `Arc<Inner>`, which owns the mapping and
        //   is declared after `producer`, so it is dropped after it.
        let producer = unsafe { Producer::attach(ctl, ring, self.bus.owner()) }
            .map_err(|e| self.attach_error(e, End::Sender))?;
        Ok(PipeSender {
            producer,
            bus: Arc::clone(&self.bus),
            name: Arc::clone(&self.name),
            _hold: Arc::clone(&self.hold),
        })
    }
}

/// The sending end of a pipe.
///
/// `Send` but not `Sync`: every method takes `&mut self`. Dropping it releases
/// the end; a receiver attached while this sender was (or before it came)
/// then sees end of file ([`Error::Disconnected`]) once it has read
/// everything. See [`PipeReceiver`](crate::PipeReceiver)'s "End of file".
///
/// # Examples
/// ```no_run
/// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
/// for i in 0..10u32 {
///     tx.send(&i.to_le_bytes())?;
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Debug)]
pub struct PipeSender {
    // Declared before `bus`, so dropped first: it detaches while the mapping
    // that `bus` owns is still there.
    producer: Producer,
    bus: Arc<Inner>,
    name: Arc<str>,
    // Last: its drop tells the daemon we are done with the pipe, after the
    // end above was released.
    _hold: Arc<Hold>,
}

impl PipeSender {
    /// The pipe's name.
    ///
    /// # Examples
    /// ```no_run
    /// let tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// assert_eq!(tx.name(), "orders");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest frame this pipe takes (`capacity / 8` bytes).
    ///
    /// # Examples
    /// ```no_run
    /// let tx = shmbus_client::Bus::connect()?.pipe_with_capacity("orders", 4096)?.sender()?;
    /// assert_eq!(tx.max_frame(), 512);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.producer.max_frame()
    }

    /// The ring's capacity in bytes.
    ///
    /// # Examples
    /// ```no_run
    /// let tx = shmbus_client::Bus::connect()?.pipe_with_capacity("orders", 4096)?.sender()?;
    /// assert_eq!(tx.capacity(), 4096);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.producer.capacity()
    }

    /// Sends one frame if there is room now; never blocks.
    ///
    /// # Errors
    /// [`Error::Full`] (try again later), `Disconnected` (full, and the
    /// receiver has gone), `TooLarge`, `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::Error;
    ///
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("ticks")?.sender()?;
    /// if let Err(Error::Full) = tx.try_send(b"tick") {
    ///     // The receiver is behind: drop this tick.
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, frame: &[u8]) -> Result<()> {
        self.bus.check_open()?;
        self.producer
            .try_send(frame)
            .map_err(|e| self.bus.explain(e.into()))
    }

    /// Sends frames from the front of `frames` while there is room, and
    /// publishes them together; never blocks. One batch costs one
    /// publication to the receiver (a store the receiver's core may be
    /// polling) instead of one per frame. Returns how many were sent; send
    /// `&frames[n..]` later.
    ///
    /// # Errors
    /// As [`PipeSender::try_send`], when not even the first frame can be
    /// sent. An error met after the first frame ends the batch, and the
    /// next call reports it.
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("ticks")?.sender()?;
    /// let ticks = [b"t1", b"t2", b"t3"];
    /// let mut rest = &ticks[..];
    /// while !rest.is_empty() {
    ///     match tx.try_send_batch(rest) {
    ///         Ok(n) => rest = &rest[n..],
    ///         Err(shmbus_client::Error::Full) => std::thread::yield_now(),
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_send_batch<F: AsRef<[u8]>>(&mut self, frames: &[F]) -> Result<usize> {
        self.bus.check_open()?;
        self.producer
            .try_send_batch(frames)
            .map_err(|e| self.bus.explain(e.into()))
    }

    /// Sends one frame, waiting as long as the pipe is full.
    ///
    /// # Errors
    /// [`Error::Disconnected`] (the receiver has gone and the pipe is
    /// full), `TooLarge`, `BusClosed` (the daemon went away while waiting),
    /// `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// tx.send(b"buy 10")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.send_until(frame, Until::Forever)
    }

    /// Sends one frame, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the pipe stayed full; otherwise as
    /// [`PipeSender::send`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// tx.send_timeout(b"buy 10", Duration::from_millis(100))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn send_timeout(&mut self, frame: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(frame, Until::Timeout(timeout))
    }

    /// Sends one frame, waiting for room until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the pipe stayed full until `deadline`;
    /// otherwise as [`PipeSender::send`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// for i in 0..100u32 {
    ///     tx.send_deadline(&i.to_le_bytes(), deadline)?;
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn send_deadline(&mut self, frame: &[u8], deadline: Instant) -> Result<()> {
        self.send_until(frame, Until::Deadline(deadline))
    }

    /// One implementation for every blocking send: try once (no clock, no
    /// system call), and only if the pipe is full compute the deadline and
    /// wait, checking the bus between futex sleeps.
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn send_until(&mut self, frame: &[u8], until: Until) -> Result<()> {
        self.bus.check_open()?;
        match self.producer.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full) => self.send_slow(frame, until.deadline()),
            Err(e) => Err(self.bus.explain(e.into())),
        }
    }

    #[inline(never)]
    fn send_slow(&mut self, frame: &[u8], deadline: Option<Instant>) -> Result<()> {
        let bus = &*self.bus;
        let ctl = NonNull::from(self.producer.control());
        // SAFETY: the control block lives in the mapping that `bus` keeps
        // alive for as long as `self`; it is all atomics, so a shared
        // reference next to `&mut self.producer` aliases nothing non-atomic.
        let other = unsafe { &ctl.as_ref().ends.consumer };
        let watch = PhantomWatch::default();
        let check = || watch.check(phantom_end(bus, other));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.producer.send_until(frame, deadline, Some(&interrupt));
        watch
            .result(r.map_err(Error::from), PHANTOM_END)
            .map_err(|e| bus.explain(e))
    }

    /// Claims room for a frame of `len` bytes if there is room now, to be
    /// written in place and published with [`PipeClaim::commit`] (zero-copy).
    /// Dropping the claim publishes nothing.
    ///
    /// # Errors
    /// As [`PipeSender::try_send`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// let mut claim = tx.try_claim(8)?;
    /// claim.copy_from_slice(&42u64.to_le_bytes());
    /// claim.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_claim(&mut self, len: usize) -> Result<PipeClaim<'_>> {
        self.bus.check_open()?;
        let bus = &*self.bus;
        let claim = self
            .producer
            .try_claim(len)
            .map_err(|e| bus.explain(e.into()))?;
        Ok(PipeClaim::new(claim))
    }

    /// Claims room for a frame of `len` bytes, waiting as long as the pipe is
    /// full; write it in place and [`commit`](PipeClaim::commit) it.
    ///
    /// # Errors
    /// As [`PipeSender::send`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// let mut claim = tx.claim(5)?;
    /// claim.copy_from_slice(b"hello");
    /// claim.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim(&mut self, len: usize) -> Result<PipeClaim<'_>> {
        self.claim_until(len, Until::Forever)
    }

    /// Claims room for a frame of `len` bytes, waiting at most `timeout`.
    ///
    /// NB: unlike the other calls, this reads the clock (`clock_gettime`, a
    /// vDSO call on Linux, not a system call) even when there is room: the
    /// claim borrows the sender, so the room cannot be tried first and the
    /// deadline computed afterwards.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the pipe stayed full; otherwise as
    /// [`PipeSender::send`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// let mut claim = tx.claim_timeout(5, Duration::from_millis(10))?;
    /// claim.copy_from_slice(b"hello");
    /// claim.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim_timeout(&mut self, len: usize, timeout: Duration) -> Result<PipeClaim<'_>> {
        self.claim_until(len, Until::Timeout(timeout))
    }

    /// Claims room for a frame of `len` bytes, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the pipe stayed full until `deadline`;
    /// otherwise as [`PipeSender::send`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("orders")?.sender()?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let mut claim = tx.claim_deadline(5, deadline)?;
    /// claim.copy_from_slice(b"hello");
    /// claim.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn claim_deadline(&mut self, len: usize, deadline: Instant) -> Result<PipeClaim<'_>> {
        self.claim_until(len, Until::Deadline(deadline))
    }

    /// One implementation for the blocking claims. The core's `claim_until`
    /// tries for room before anything else, so the fast path stays free of
    /// system calls; `interrupt` runs only between futex sleeps.
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn claim_until(&mut self, len: usize, until: Until) -> Result<PipeClaim<'_>> {
        let bus = &*self.bus;
        bus.check_open()?;
        let deadline = until.deadline();
        let ctl = NonNull::from(self.producer.control());
        // SAFETY: as in `send_slow`.
        let other = unsafe { &ctl.as_ref().ends.consumer };
        let watch = PhantomWatch::default();
        let check = || watch.check(phantom_end(bus, other));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.producer.claim_until(len, deadline, Some(&interrupt));
        let claim = watch
            .result(r.map_err(Error::from), PHANTOM_END)
            .map_err(|e| bus.explain(e))?;
        Ok(PipeClaim::new(claim))
    }
}

/// Room for one frame in a pipe, from [`PipeSender::claim`] or
/// [`PipeSender::try_claim`]: a `&mut [u8]` (through `DerefMut`) to fill in
/// place, published by [`commit`](PipeClaim::commit). Dropping it publishes
/// nothing, and the room is claimed again by the next send.
///
/// The bytes start with unspecified contents (whatever the ring held).
///
/// # Examples
/// ```no_run
/// use std::io::Write;
///
/// let mut tx = shmbus_client::Bus::connect()?.pipe("log")?.sender()?;
/// let mut claim = tx.claim(64)?;
/// claim.fill(b' ');
/// write!(&mut claim[..], "pid {}", std::process::id())?;
/// claim.commit()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PipeClaim<'a> {
    claim: Claim<'a>,
    /// The claimed payload: `claim.len()` bytes inside the ring.
    bytes: NonNull<[u8]>,
}

impl fmt::Debug for PipeClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeClaim")
            .field("len", &self.claim.len())
            .finish_non_exhaustive()
    }
}

impl<'a> PipeClaim<'a> {
    #[inline]
    fn new(mut claim: Claim<'a>) -> Self {
        // The slice's pointer comes from the ring's raw pointer, not from
        // `claim`'s own memory, so keeping it while `claim` moves is fine.
        let bytes = NonNull::from(claim.as_mut_slice());
        Self { claim, bytes }
    }

    /// Length of the claimed frame.
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("log")?.sender()?;
    /// assert_eq!(tx.claim(16)?.len(), 16);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    #[allow(clippy::len_without_is_empty)] // `is_empty` comes through `Deref`.
    pub fn len(&self) -> usize {
        self.claim.len()
    }

    /// Publishes the frame to the receiver.
    ///
    /// # Errors
    /// None today; the `Result` matches [`QueueClaim::commit`](crate::QueueClaim::commit),
    /// so that both claims are committed with `?`.
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("log")?.sender()?;
    /// let mut claim = tx.claim(2)?;
    /// claim.copy_from_slice(b"ok");
    /// claim.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.claim.commit();
        Ok(())
    }
}

impl Deref for PipeClaim<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY:
        // - `bytes` is the claimed payload, inside the mapped ring, which the
        //   claim's `&mut PipeSender` borrow keeps mapped;
        // - the pipe protocol reserves those bytes to the producer from the
        //   claim until `commit`: the receiver reads nothing past the published
        //   tail, and no other sender can exist;
        // - no `&mut` to them is live: `deref_mut` hands one out only through
        //   `&mut self`, and the result borrows `self`.
        unsafe { self.bytes.as_ref() }
    }
}

impl DerefMut for PipeClaim<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // to the bytes for its lifetime.
        unsafe { self.bytes.as_mut() }
    }
}

/// [`PipeSender::writable`]'s event.
struct Writable<'a>(&'a PipeSender, usize);

impl Source for Writable<'_> {
    fn is_ready(&self) -> bool {
        self.0.producer.is_writable(self.1) || self.0.bus.daemon_gone()
    }

    fn doorbell(&self) -> &shmbus::futex::Doorbell {
        &self.0.producer.control().writable
    }

    fn bus(&self) -> &Arc<Inner> {
        &self.0.bus
    }
}

impl PipeSender {
    /// The event "a send of a `len`-byte frame would not wait" (there is
    /// room, or the receiver is gone), for a [`Select`](crate::Select).
    ///
    /// # Examples
    /// ```no_run
    /// let mut tx = shmbus_client::Bus::connect()?.pipe("out")?.sender()?;
    /// shmbus_client::Select::new().with(tx.writable(64)).wait()?;
    /// tx.try_send(&[0; 64])?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn writable(&self, len: usize) -> Ready<'_> {
        Ready(Box::new(Writable(self, len)))
    }
}
