//! A pipe's receiving end ([`PipeReceiver`]).

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::pipe::{Consumer, TryRecvError};

use super::{phantom_end, Pipe, PHANTOM_END};
use crate::bus::removal::Hold;
use crate::bus::Inner;
use crate::error::{End, Error, Result};
use crate::ladder::{copy_into, Until};
use crate::select::{Ready, Source};
use crate::wait::PhantomWatch;

impl Pipe {
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
        self.receiver_impl(None)
    }

    /// The senders' mark now, for [`receiver_since`](Self::receiver_since):
    /// taken when a pair of ends is made together, before either is used.
    ///
    /// # Errors
    /// `Corrupt` if the pipe's control block is inconsistent.
    pub fn mark(&self) -> Result<PipeMark> {
        let (ctl, _) = self.body()?;
        // SAFETY: `ctl` is a checked control block inside the mapping that
        // `self.bus` keeps alive for this call.
        Ok(PipeMark(unsafe { ctl.as_ref() }.producers_mark()))
    }

    /// Claims the receiving end as [`receiver`](Self::receiver) does, but
    /// with end of file counted from `mark` instead of from now: every sender
    /// attached since `mark` was taken is one this receiver reads from, so
    /// once such a sender has gone (and its frames are read) the receiver
    /// sees end of file — even if that sender came and went before this
    /// call. This is `multiprocessing.Pipe()`'s pair: the writer may send and
    /// close before the reader is first used, and the reader still ends.
    ///
    /// # Errors
    /// As [`receiver`](Self::receiver).
    ///
    /// # Examples
    /// ```no_run
    /// let pipe = shmbus_client::Bus::connect()?.pipe("ticks")?;
    /// let mark = pipe.mark()?;
    /// // ... a sender (perhaps another process) sends and drops ...
    /// let mut rx = pipe.receiver_since(mark)?;
    /// while let Ok(frame) = rx.recv() { /* every frame it sent */ }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn receiver_since(&self, mark: PipeMark) -> Result<PipeReceiver> {
        self.receiver_impl(Some(mark.0))
    }

    fn receiver_impl(&self, mark: Option<u64>) -> Result<PipeReceiver> {
        let (ctl, ring) = self.body()?;
        // SAFETY: as in `sender`: `ctl` and `ring` are a checked pipe, kept
        // mapped by the `Arc<Inner>` that `PipeReceiver` drops after `consumer`.
        let consumer = unsafe { Consumer::attach_since(ctl, ring, self.bus.owner(), mark) }
            .map_err(|e| self.attach_error(e, End::Receiver))?;
        Ok(PipeReceiver {
            consumer,
            bus: Arc::clone(&self.bus),
            name: Arc::clone(&self.name),
            _hold: Arc::clone(&self.hold),
        })
    }
}

/// A point in a pipe's history of senders ([`Pipe::mark`]), for
/// [`Pipe::receiver_since`]. Its raw form ([`to_raw`](Self::to_raw) /
/// [`from_raw`](Self::from_raw)) lets it travel to another process with the
/// pipe's name; a made-up one cannot harm the bus, only end a receive early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeMark(u64);

impl PipeMark {
    /// The mark as a number.
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// A mark from [`to_raw`](Self::to_raw).
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
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
///    (at that moment or later) — or since its [`PipeMark`], when claimed
///    with [`Pipe::receiver_since`] — and has gone since, by dropping its
///    [`PipeSender`](crate::PipeSender) or by dying (the daemon then releases its end).
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

    /// Runs `f` on every frame readable now, up to `max`, in place and in
    /// order, then releases them together; never blocks. One batch costs one
    /// release of the frames' room to the sender (a store the sender's core
    /// may be reading) instead of one per frame. Returns how many frames `f`
    /// saw: at least 1, or 0 for `max == 0`.
    ///
    /// # Errors
    /// As [`PipeReceiver::try_recv`], when there is no frame at all.
    ///
    /// # Examples
    /// ```no_run
    /// let mut rx = shmbus_client::Bus::connect()?.pipe("ticks")?.receiver()?;
    /// let mut total = 0;
    /// let n = rx.try_recv_batch_with(64, |b| total += b.len())?;
    /// println!("{n} frames, {total} bytes");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_recv_batch_with(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize> {
        self.bus.check_open()?;
        self.consumer
            .try_recv_batch_with(max, f)
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
    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
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

/// [`PipeReceiver::readable`]'s event.
struct Readable<'a>(&'a PipeReceiver);

impl Source for Readable<'_> {
    fn is_ready(&self) -> bool {
        self.0.consumer.is_readable() || self.0.bus.daemon_gone()
    }

    fn doorbell(&self) -> &shmbus::futex::Doorbell {
        &self.0.consumer.control().readable
    }

    fn bus(&self) -> &Arc<Inner> {
        &self.0.bus
    }
}

impl PipeReceiver {
    /// The event "a receive would not wait" (a frame, or end of file), for a
    /// [`Select`](crate::Select).
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let (mut a, mut b) = (bus.pipe("a")?.receiver()?, bus.pipe("b")?.receiver()?);
    /// let ready = shmbus_client::Select::new().with(a.readable()).with(b.readable()).wait()?;
    /// let frame = if ready[0] == 0 { a.try_recv()? } else { b.try_recv()? };
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn readable(&self) -> Ready<'_> {
        Ready(Box::new(Readable(self)))
    }
}
