//! Pipes: single-producer single-consumer rings of byte frames in the segment.
//!
//! [`Pipe`] names an opened pipe; [`Pipe::sender`] and [`Pipe::receiver`]
//! claim its two ends, each for one holder at a time on the whole bus. The
//! algorithm is the core's [`shmbus::pipe`] (an rtrb-style ring with cached
//! positions and a shared-futex doorbell); this module adds the bus around it:
//! the mapping stays alive as long as an endpoint does, and blocking calls stop
//! with `BusClosed` when the daemon goes away.
//!
//! # Cost
//! While the peer keeps up, `send`/`try_send`/`recv`/`try_recv` and the
//! claim/`recv_with` forms make no system call and take no lock: a few loads
//! and stores on the ring and one `Release` store of a position. Only a call
//! that must wait sleeps on a futex, and only then does it check the bus's
//! liveness (one non-blocking `recv` at most every 200 ms).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::pipe::{end, AttachError, Claim, Consumer, Producer, Ring, TryRecvError, TrySendError};
use shmbus::sync::{AtomicU64, Ordering};

use crate::bus::{Hold, Inner, PhantomWatch};
use crate::error::{End, Error, Result};
use crate::ladder::{copy_into, Until};

/// An opened pipe: a name and a place in the segment. Make its ends with
/// [`Pipe::sender`] and [`Pipe::receiver`].
///
/// Cheap to clone; keeps the bus connection alive.
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let pipe = bus.pipe("orders")?;
/// let mut tx = pipe.sender()?;
/// tx.send(b"buy 10")?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Pipe {
    bus: Arc<Inner>,
    name: Arc<str>,
    offset: u64,
    length: u64,
    capacity: u64,
    /// The daemon's count of our open; shared with the ends.
    hold: Arc<Hold>,
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("bus", &self.bus.name())
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Pipe {
    /// A pipe whose body the daemon put at `offset .. offset + length`
    /// (already checked by [`crate::segment::Mapping::pipe`]).
    pub(crate) fn new(
        bus: Arc<Inner>,
        name: Arc<str>,
        offset: u64,
        length: u64,
        capacity: u64,
        hold: Arc<Hold>,
    ) -> Self {
        Self {
            bus,
            name,
            offset,
            length,
            capacity,
            hold,
        }
    }

    /// The pipe's name.
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe("orders")?;
    /// assert_eq!(pipe.name(), "orders");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ring's capacity in bytes.
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe_with_capacity("orders", 4096)?;
    /// assert_eq!(pipe.capacity(), 4096);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest frame the pipe takes: `capacity / 8` bytes.
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe_with_capacity("orders", 4096)?;
    /// assert_eq!(pipe.max_frame(), 512);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn max_frame(&self) -> usize {
        usize::try_from(shmbus::pipe::max_frame(self.capacity)).unwrap_or(usize::MAX)
    }

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

    /// Claims the receiving end. Only one holder on the whole bus may have it
    /// at a time; dropping the [`PipeReceiver`] releases it.
    ///
    /// Whether a sender is attached at this moment decides when the receiver
    /// sees end of file: see [`PipeReceiver`]'s "End of file".
    ///
    /// # Errors
    /// [`Error::Busy`] if another handle (in any process) holds the
    /// receiving end; `Corrupt` if the pipe's control block is inconsistent.
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe("orders")?;
    /// let mut rx = pipe.receiver()?;
    /// let frame = rx.recv()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn receiver(&self) -> Result<PipeReceiver> {
        let (ctl, ring) = self.body()?;
        // SAFETY: as in `sender`: `ctl` and `ring` are a checked pipe, kept
        // mapped by the `Arc<Inner>` that `PipeReceiver` drops after `consumer`.
        let consumer = unsafe { Consumer::attach(ctl, ring, self.bus.owner()) }
            .map_err(|e| self.attach_error(e, End::Receiver))?;
        Ok(PipeReceiver {
            consumer,
            bus: Arc::clone(&self.bus),
            name: Arc::clone(&self.name),
            _hold: Arc::clone(&self.hold),
        })
    }

    /// The checked control block and ring.
    fn body(&self) -> Result<(NonNull<shmbus::pipe::PipeCtl>, Ring)> {
        let body = self
            .bus
            .map()
            .pipe(self.offset, self.length, self.capacity)
            .map_err(Error::Corrupt)?;
        // SAFETY:
        // - `body.ring` points to `capacity` bytes inside the mapping, 8-byte
        //   aligned (`Mapping::pipe` checked both);
        // - they stay mapped while the ring is used: the ring goes only into a
        //   `Producer`/`Consumer` that is dropped before the `Arc<Inner>`
        //   holding the mapping (see `sender`/`receiver`);
        // - they are accessed only through the pipe protocol: this crate
        //   touches them only via `Producer`/`Consumer`.
        let ring = unsafe { Ring::new(body.ring, body.capacity) };
        Ok((NonNull::from(body.ctl), ring))
    }

    fn attach_error(&self, e: AttachError, end: End) -> Error {
        match e {
            AttachError::Busy { owner } => {
                let slot = owner.wrapping_sub(1);
                Error::Busy {
                    channel: self.name.to_string(),
                    end,
                    slot,
                    pid: self.bus.peer_pid(slot),
                    this_connection: owner == self.bus.owner(),
                }
            }
            AttachError::Corrupt(what) => Error::Corrupt(what),
        }
    }
}

/// The sending end of a pipe.
///
/// `Send` but not `Sync`: every method takes `&mut self`. Dropping it releases
/// the end; a receiver attached while this sender was (or before it came)
/// then sees end of file ([`Error::Disconnected`]) once it has read
/// everything. See [`PipeReceiver`]'s "End of file".
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
    #[inline]
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
    #[inline]
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

/// The receiving end of a pipe.
///
/// `Send` but not `Sync`: every method takes `&mut self`. Dropping it releases
/// the end; a sender blocked on a full pipe then gets
/// [`Error::Disconnected`].
///
/// # End of file
/// As for the reader of a Unix FIFO, a receive returns
/// [`Error::Disconnected`] (end of file) exactly when
/// 1. everything in the pipe has been read, and
/// 2. no sender is attached now, and
/// 3. a sender was attached at some moment since this receiver was claimed
///    (at that moment or later) and has gone since, by dropping its
///    [`PipeSender`] or by dying (the daemon then releases its end).
///
/// So:
/// - claimed while a sender is attached: end of file once that sender has
///   gone and its frames are read;
/// - claimed while no sender is attached (a new pipe, or one whose senders
///   have all left): frames an earlier sender left in the pipe are read
///   first, then the receiver **waits** (`Empty` for the `try_` forms,
///   blocking or `Timeout` otherwise) until a sender attaches, sends and
///   leaves, however many senders came and went before it was claimed;
/// - once seen, end of file stays while no sender is attached; a sender
///   attaching afterwards is read from as usual, and its departure is end of
///   file again.
///
/// A sender's attach alone does not wake a blocked receiver (there is
/// nothing to read yet); its first frame or its departure does.
///
/// # Examples
/// ```no_run
/// use shmbus_client::Error;
///
/// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
/// loop {
///     match rx.recv() {
///         Ok(frame) => println!("{}", String::from_utf8_lossy(&frame)),
///         Err(Error::Disconnected) => break,
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Debug)]
pub struct PipeReceiver {
    // Declared before `bus`, so dropped first: it detaches while the mapping
    // that `bus` owns is still there.
    consumer: Consumer,
    bus: Arc<Inner>,
    name: Arc<str>,
    // Last: its drop tells the daemon we are done with the pipe, after the
    // end above was released.
    _hold: Arc<Hold>,
}

impl PipeReceiver {
    /// The pipe's name.
    ///
    /// # Examples
    /// ```no_run
    /// let rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// assert_eq!(rx.name(), "orders");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest frame this pipe carries (`capacity / 8` bytes).
    ///
    /// # Examples
    /// ```no_run
    /// let rx = shmbus_client::Bus::connect()?.pipe_with_capacity("orders", 4096)?.receiver()?;
    /// let buf = Vec::<u8>::with_capacity(rx.max_frame());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.consumer.max_frame()
    }

    /// Takes the next frame if there is one; never blocks.
    ///
    /// # Errors
    /// [`Error::Empty`] (nothing yet, including while no sender has attached
    /// since this receiver was claimed), `Disconnected` (end of file: a
    /// sender attached since then has gone, none is attached, and everything
    /// was read; see [`PipeReceiver`]'s "End of file"), `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// while let Ok(frame) = rx.try_recv() {
    ///     println!("{} bytes", frame.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        self.try_recv_with(<[u8]>::to_vec)
    }

    /// Takes the next frame, waiting as long as the pipe is empty, including
    /// for a sender to attach if none has since this receiver was claimed.
    ///
    /// # Errors
    /// [`Error::Disconnected`] at end of file (a sender attached since this
    /// receiver was claimed has gone, none is attached, and everything was
    /// read; see [`PipeReceiver`]'s "End of file"), `BusClosed` (the daemon
    /// went away while waiting), `Corrupt`.
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let frame = rx.recv()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Forever, <[u8]>::to_vec)
    }

    /// Takes the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// match rx.recv_timeout(Duration::from_secs(1)) {
    ///     Ok(frame) => println!("{} bytes", frame.len()),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Timeout(timeout), <[u8]>::to_vec)
    }

    /// Takes the next frame, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came by `deadline`; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// while let Ok(frame) = rx.recv_deadline(deadline) {
    ///     println!("{} bytes", frame.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Deadline(deadline), <[u8]>::to_vec)
    }

    /// Copies the next frame into `buf` (cleared first) if there is one, and
    /// returns its length. Reuses `buf`'s allocation; never blocks.
    ///
    /// # Errors
    /// As [`PipeReceiver::try_recv`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let mut buf = Vec::new();
    /// while rx.try_recv_into(&mut buf).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.bus.check_open()?;
        self.consumer
            .try_recv_into(buf)
            .map_err(|e| self.bus.explain(e.into()))
    }

    /// Copies the next frame into `buf` (cleared first), waiting as long as
    /// the pipe is empty, and returns its length. Reuses `buf`'s allocation.
    ///
    /// # Errors
    /// As [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let mut buf = Vec::with_capacity(rx.max_frame());
    /// while rx.recv_into(&mut buf).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_with_until(Until::Forever, copy_into(buf))
    }

    /// Copies the next frame into `buf` (cleared first), waiting at most
    /// `timeout`, and returns its length.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let mut buf = Vec::with_capacity(rx.max_frame());
    /// while rx.recv_into_timeout(&mut buf, Duration::from_secs(1)).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_into_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.recv_with_until(Until::Timeout(timeout), copy_into(buf))
    }

    /// Copies the next frame into `buf` (cleared first), waiting until
    /// `deadline`, and returns its length.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came by `deadline`; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let mut buf = Vec::new();
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// while rx.recv_into_deadline(&mut buf, deadline).is_ok() {
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_into_deadline(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize> {
        self.recv_with_until(Until::Deadline(deadline), copy_into(buf))
    }

    /// Runs `f` on the next frame in place (zero-copy) if there is one, then
    /// releases the frame; never blocks. `f` sees the bytes in shared memory,
    /// and the sender cannot reuse them until `f` returns.
    ///
    /// # Errors
    /// As [`PipeReceiver::try_recv`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let sum: u64 = rx.try_recv_with(|b| b.iter().map(|&x| u64::from(x)).sum())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.bus.check_open()?;
        self.consumer
            .try_recv_with(f)
            .map_err(|e| self.bus.explain(e.into()))
    }

    /// Runs `f` on the next frame in place (zero-copy), waiting as long as the
    /// pipe is empty, then releases the frame.
    ///
    /// # Errors
    /// As [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let len = rx.recv_with(|bytes| bytes.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with_until(Until::Forever, f)
    }

    /// Runs `f` on the next frame in place, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let len = rx.recv_with_timeout(Duration::from_secs(1), |b| b.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_with_timeout<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_with_until(Until::Timeout(timeout), f)
    }

    /// Runs `f` on the next frame in place, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing came by `deadline`; otherwise as
    /// [`PipeReceiver::recv`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("orders")?.receiver()?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let len = rx.recv_with_deadline(deadline, |b| b.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_with_deadline<R>(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_with_until(Until::Deadline(deadline), f)
    }

    /// One implementation for every blocking receive: try once (no clock, no
    /// system call), and only if the pipe is empty compute the deadline and
    /// wait, checking the bus between futex sleeps.
    #[inline]
    fn recv_with_until<R>(&mut self, until: Until, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.bus.check_open()?;
        let mut f = Some(f);
        let r = self.consumer.try_recv_with(|b| match f.take() {
            Some(f) => f(b),
            None => unreachable!("try_recv_with calls its closure once"),
        });
        match r {
            Ok(r) => Ok(r),
            Err(TryRecvError::Empty) => match f {
                Some(f) => self.recv_slow(until.deadline(), f),
                None => unreachable!("the closure only runs on a frame"),
            },
            Err(e) => Err(self.bus.explain(e.into())),
        }
    }

    #[inline(never)]
    fn recv_slow<R>(&mut self, deadline: Option<Instant>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let bus = &*self.bus;
        let ctl = NonNull::from(self.consumer.control());
        // SAFETY: as in `PipeSender::send_slow`.
        let other = unsafe { &ctl.as_ref().ends.producer };
        let watch = PhantomWatch::default();
        let check = || watch.check(phantom_end(bus, other));
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.consumer.recv_with_until(deadline, Some(&interrupt), f);
        watch
            .result(r.map_err(Error::from), PHANTOM_END)
            .map_err(|e| bus.explain(e))
    }
}

/// The other end's word if it is *phantom*: owned (tag not 0) by a peer slot
/// that is FREE or past the peer table (see [`PhantomWatch`]). Only a
/// scribbled end word does that: the daemon releases a dead peer's ends
/// before it frees its slot, and an attach bumps the word's attach count, so
/// a slot freed and handed out again never shows the same word.
fn phantom_end(bus: &Inner, word: &AtomicU64) -> Option<u64> {
    // Relaxed: `PhantomWatch` looks twice.
    let w = word.load(Ordering::Relaxed);
    let tag = end::owner(w);
    (tag != 0 && !bus.peer_connected(tag)).then_some(w)
}

/// What a blocking call on a pipe whose other end is phantom returns.
const PHANTOM_END: &str =
    "the pipe's other end is held by no connected process (its end word was overwritten)";
