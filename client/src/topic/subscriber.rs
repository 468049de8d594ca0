//! Receiving from a topic: [`Subscriber`].

use std::fmt;
use std::time::{Duration, Instant};

use shmbus::topic::{SubscribeError, Subscriber as CoreSubscriber, TryRecvError};

use super::Topic;
use crate::error::{Error, Result};
use crate::ladder::{copy_into, Until};
use crate::wait::PhantomWatch;

/// What a blocking receive stalled behind a phantom claim returns.
const PHANTOM_CLAIM: &str =
    "a topic slot is claimed by no connected process (its state word was overwritten)";

/// A place among a [`Topic`]'s subscribers: made by [`Topic::subscribe`].
/// Receives every message published after it joined, whole, once, in the
/// order every other subscriber sees. Dropping it leaves the topic (and a
/// lossless topic's publishers no longer wait for it).
///
/// `Send`, not `Sync` or `Clone`: its position in the topic is its own.
///
/// # Examples
/// ```no_run
/// let t = shmbus_client::Bus::connect()?.topic("ticks")?;
/// let sub = t.subscribe()?;
/// loop {
///     match sub.recv() {
///         Ok(m) => println!("{}", String::from_utf8_lossy(&m)),
///         Err(shmbus_client::Error::Lagged(n)) => eprintln!("missed {n}"),
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
pub struct Subscriber {
    // Declared before `topic`, so it leaves before the mapping can go.
    s: CoreSubscriber,
    topic: Topic,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic.name())
            .field("position", &self.s.position())
            .finish_non_exhaustive()
    }
}

impl Topic {
    /// Joins the topic: the subscriber receives every message published
    /// from now on.
    ///
    /// # Errors
    /// [`Error::TooManySubscribers`], `BusClosed`.
    pub fn subscribe(&self) -> Result<Subscriber> {
        self.subscribe_with_history(0)
    }

    /// Joins the topic, asking also for up to the last `history` messages
    /// still in the ring (at most a ring's worth; iceoryx2's history). Those
    /// come first; one overwritten while it is read is skipped.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_with_history(&self, history: u64) -> Result<Subscriber> {
        self.bus.check_open()?;
        Subscriber::new(self.clone(), history).map_err(|e| match e {
            SubscribeError::TooManySubscribers { max } => Error::TooManySubscribers {
                topic: self.name().to_owned(),
                max,
            },
        })
    }
}

impl Subscriber {
    pub(crate) fn new(topic: Topic, history: u64) -> std::result::Result<Self, SubscribeError> {
        // SAFETY: `Mapping::topic` checked the control block against the
        // ring's parameters; the core handle is stored before `topic`, which
        // owns the mapping (through `Arc<Inner>`), so it is dropped first.
        let s =
            unsafe { CoreSubscriber::attach(topic.ctl, topic.ring, topic.bus.owner(), history) }?;
        Ok(Self { s, topic })
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The position of the next message this subscriber reads (messages
    /// are numbered from 0 when the topic is created).
    pub fn position(&self) -> u64 {
        self.s.position()
    }

    /// Approximately how many published messages this subscriber has not
    /// read yet.
    pub fn pending(&self) -> u64 {
        self.s.pending()
    }

    /// Receives the next message if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty), `Lagged` (lossy), `BusClosed`,
    /// `Corrupt`.
    #[inline]
    pub fn try_recv(&self) -> Result<Vec<u8>> {
        self.try_recv_with(<[u8]>::to_vec)
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    /// `Lagged` (lossy), `BusClosed`, `Corrupt`.
    #[inline]
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Forever, <[u8]>::to_vec)
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`recv`](Self::recv).
    #[inline]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Timeout(timeout), <[u8]>::to_vec)
    }

    /// Receives the next message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`recv`](Self::recv).
    #[inline]
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_with_until(Until::Deadline(deadline), <[u8]>::to_vec)
    }

    /// [`try_recv`](Self::try_recv) into `buf` (replacing its contents,
    /// reusing its allocation); returns the length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[inline]
    pub fn try_recv_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.try_recv_with(copy_into(buf))
    }

    /// [`recv`](Self::recv) into `buf`; returns the length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    #[inline]
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_with_until(Until::Forever, copy_into(buf))
    }

    /// [`recv_timeout`](Self::recv_timeout) into `buf`; returns the length.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    #[inline]
    pub fn recv_into_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.recv_with_until(Until::Timeout(timeout), copy_into(buf))
    }

    /// [`recv_deadline`](Self::recv_deadline) into `buf`; returns the length.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    #[inline]
    pub fn recv_into_deadline(&self, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize> {
        self.recv_with_until(Until::Deadline(deadline), copy_into(buf))
    }

    /// Hands the next message, if there is one now, to `f` and returns what
    /// it returns: in place in a lossless topic (zero-copy), a validated
    /// copy in a lossy one.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[inline]
    pub fn try_recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.topic.bus.check_open()?;
        Ok(self.s.try_recv_with(f)?)
    }

    /// As [`try_recv_with`](Self::try_recv_with), waiting for a message.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.topic("ticks")?;
    /// let sub = t.subscribe()?;
    /// let len = sub.recv_with(|bytes| bytes.len())?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with_until(Until::Forever, f)
    }

    /// As [`recv_with`](Self::recv_with), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    #[inline]
    pub fn recv_with_timeout<R>(&self, timeout: Duration, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with_until(Until::Timeout(timeout), f)
    }

    /// As [`recv_with`](Self::recv_with), waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    #[inline]
    pub fn recv_with_deadline<R>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_with_until(Until::Deadline(deadline), f)
    }

    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn recv_with_until<R>(&self, until: Until, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.topic.bus.check_open()?;
        let mut f = Some(f);
        match self
            .s
            .try_recv_with(|b| (f.take().expect("called once"))(b))
        {
            Err(TryRecvError::Empty) => {
                self.recv_slow(until.deadline(), f.take().expect("not called"))
            }
            r => Ok(r?),
        }
    }

    #[inline(never)]
    fn recv_slow<R>(&self, deadline: Option<Instant>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let bus = &self.topic.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_claim());
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.s.recv_with_until(deadline, Some(&interrupt), f);
        watch.result(r.map_err(Error::from), PHANTOM_CLAIM)
    }

    /// The event "a receive would not wait" for a [`Select`](crate::Select):
    /// a message, a lag (lossy) or the bus gone.
    pub fn readable(&self) -> crate::Ready<'_> {
        crate::Ready(Box::new(Readable(self)))
    }

    /// The next message, awaiting one (`tokio` feature): [`recv`](Self::recv)
    /// for async code. Cancellation safe: a dropped future took no message.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), but never `Empty`.
    #[cfg(feature = "tokio")]
    /// Takes `&mut self` (unlike [`recv`](Self::recv)) so that the
    /// future is `Send`: a subscriber is `Send` but not `Sync`.
    pub async fn recv_async(&mut self) -> Result<Vec<u8>> {
        crate::select::aio::drive(
            self,
            0,
            |s, _| s.readable(),
            |s| crate::select::aio::pending(s.try_recv()),
        )
        .await
    }

    /// The state word of the publish claim this subscriber waits behind, if
    /// its owner tag is no connected peer's (only a scribbled slot: the
    /// daemon tombstones a dead peer's claims before it frees its slot).
    fn phantom_claim(&self) -> Option<u64> {
        let w = self.s.stalling_claim()?;
        let tag = shmbus::queue::state::owner(w);
        let bus = &self.topic.bus;
        (tag != bus.owner() && !bus.peer_connected(tag)).then_some(w)
    }
}

/// [`Subscriber::readable`].
struct Readable<'a>(&'a Subscriber);

impl crate::select::Source for Readable<'_> {
    fn is_ready(&self) -> bool {
        self.0.s.is_readable() || self.0.topic.bus.daemon_gone()
    }

    fn doorbell(&self) -> &shmbus::futex::Doorbell {
        &self.0.s.control().not_empty.bell
    }

    fn bus(&self) -> &std::sync::Arc<crate::bus::Inner> {
        &self.0.topic.bus
    }
}
