//! Publishing on a topic: [`Publisher`] and its zero-copy [`TopicClaim`].

use std::fmt;
use std::time::{Duration, Instant};

use shmbus::topic::{Publisher as CorePublisher, TopicClaim as CoreClaim, TryPublishError};

use super::Topic;
use crate::error::{Error, Result};
use crate::ladder::Until;
use crate::wait::PhantomWatch;

/// What a blocking publish stalled behind a phantom subscriber returns.
const PHANTOM_SUBSCRIBER: &str =
    "a topic's subscriber entry is held by no connected process (it was overwritten)";

/// Publishes on a [`Topic`]: made by [`Topic::publisher`]. Any number of
/// publishers, in any processes, may publish at once; every subscriber sees
/// their messages in one order.
///
/// `Send` and `Clone`, not `Sync`: it caches where the slowest subscriber
/// was; give each thread its own clone.
///
/// # Examples
/// ```no_run
/// let t = shmbus_client::Bus::connect()?.topic("ticks")?;
/// let p = t.publisher();
/// p.publish(b"tick 1")?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Publisher {
    // Declared before `topic`, so it is dropped before the mapping can go.
    p: CorePublisher,
    topic: Topic,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic.name())
            .finish_non_exhaustive()
    }
}

impl Topic {
    /// A handle to publish on this topic.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.clone())
    }
}

impl Publisher {
    pub(crate) fn new(topic: Topic) -> Self {
        // SAFETY: `Mapping::topic` checked the control block against the
        // ring's parameters; the core handle is stored before `topic`, which
        // owns the mapping (through `Arc<Inner>`), so it is dropped first.
        let p = unsafe { CorePublisher::attach(topic.ctl, topic.ring, topic.bus.owner()) };
        Self { p, topic }
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Publishes `msg` if there is room now.
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full) (lossless: the slowest subscriber
    /// is a ring behind), `TooLarge`, `BusClosed`, `Corrupt`.
    #[inline]
    pub fn try_publish(&self, msg: &[u8]) -> Result<()> {
        self.topic.bus.check_open()?;
        Ok(self.p.try_publish(msg)?)
    }

    /// Publishes `msg`, waiting while the slowest subscriber of a lossless
    /// topic is a ring behind.
    ///
    /// # Errors
    /// `TooLarge`, `BusClosed`, `Corrupt`.
    #[inline]
    pub fn publish(&self, msg: &[u8]) -> Result<()> {
        self.publish_until(msg, Until::Forever)
    }

    /// Publishes `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`publish`](Self::publish).
    #[inline]
    pub fn publish_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.publish_until(msg, Until::Timeout(timeout))
    }

    /// Publishes `msg`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`publish`](Self::publish).
    #[inline]
    pub fn publish_deadline(&self, msg: &[u8], deadline: Instant) -> Result<()> {
        self.publish_until(msg, Until::Deadline(deadline))
    }

    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn publish_until(&self, msg: &[u8], until: Until) -> Result<()> {
        self.topic.bus.check_open()?;
        match self.p.try_publish(msg) {
            Err(TryPublishError::Full) => self.publish_slow(msg, until.deadline()),
            r => Ok(r?),
        }
    }

    #[inline(never)]
    fn publish_slow(&self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        let bus = &self.topic.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_subscriber());
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.p.publish_until(msg, deadline, Some(&interrupt));
        watch.result(r.map_err(Error::from), PHANTOM_SUBSCRIBER)
    }

    /// The owner word of a subscriber entry that holds publishers back
    /// under an owner tag no connected peer has (only a scribbled entry
    /// does: the daemon frees a dead peer's entries before its slot).
    fn phantom_subscriber(&self) -> Option<u64> {
        let ring = self.topic.ring;
        let bus = &self.topic.bus;
        (0..ring.max_subscribers()).find_map(|k| {
            // Relaxed: a look; confirmed by a second one (`PhantomWatch`).
            let w = ring.entry(k).owner.load(shmbus::sync::Ordering::Relaxed);
            let tag = u16::try_from(w).ok();
            let phantom = w != 0 && tag.is_none_or(|t| t != bus.owner() && !bus.peer_connected(t));
            phantom.then_some(w | (k << 32))
        })
    }

    /// Claims a slot for a message of `len` bytes, written in place with
    /// [`TopicClaim::write_at`] and published by [`TopicClaim::commit`]
    /// (zero-copy publish). Dropped without commit, it leaves a tombstone
    /// that subscribers skip.
    ///
    /// # Errors
    /// As [`try_publish`](Self::try_publish).
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.topic("ticks")?;
    /// let p = t.publisher();
    /// let mut c = p.try_claim(16)?;
    /// c.write_at(0, &1u64.to_le_bytes());
    /// c.write_at(8, &2u64.to_le_bytes());
    /// c.commit()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn try_claim(&self, len: usize) -> Result<TopicClaim<'_>> {
        self.topic.bus.check_open()?;
        Ok(TopicClaim {
            c: self.p.try_claim(len)?,
        })
    }

    /// As [`try_claim`](Self::try_claim), waiting for room.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    #[inline]
    pub fn claim(&self, len: usize) -> Result<TopicClaim<'_>> {
        self.claim_until(len, Until::Forever)
    }

    /// As [`claim`](Self::claim), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`publish`](Self::publish).
    #[inline]
    pub fn claim_timeout(&self, len: usize, timeout: Duration) -> Result<TopicClaim<'_>> {
        self.claim_until(len, Until::Timeout(timeout))
    }

    /// As [`claim`](Self::claim), waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout); otherwise as [`publish`](Self::publish).
    #[inline]
    pub fn claim_deadline(&self, len: usize, deadline: Instant) -> Result<TopicClaim<'_>> {
        self.claim_until(len, Until::Deadline(deadline))
    }

    // Always inline: see "Cost" in `crate::ladder`.
    #[inline(always)]
    fn claim_until(&self, len: usize, until: Until) -> Result<TopicClaim<'_>> {
        self.topic.bus.check_open()?;
        match self.p.try_claim(len) {
            Ok(c) => Ok(TopicClaim { c }),
            Err(TryPublishError::Full) => self.claim_slow(len, until.deadline()),
            Err(e) => Err(e.into()),
        }
    }

    #[inline(never)]
    fn claim_slow(&self, len: usize, deadline: Option<Instant>) -> Result<TopicClaim<'_>> {
        let bus = &self.topic.bus;
        let watch = PhantomWatch::default();
        let check = || watch.check(self.phantom_subscriber());
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.p.claim_until_deadline(len, deadline, Some(&interrupt));
        Ok(TopicClaim {
            c: watch.result(r.map_err(Error::from), PHANTOM_SUBSCRIBER)?,
        })
    }
}

/// A slot claimed by [`Publisher::claim`], [`Publisher::try_claim`] or their
/// timed forms: write the message with [`write_at`](Self::write_at), then
/// [`commit`](Self::commit). Dropped without commit, it leaves a tombstone
/// that subscribers skip.
///
/// The bytes go straight into the slot, a word at a time; unlike a
/// [`QueueClaim`](crate::QueueClaim) it offers no `&mut [u8]`, because lossy
/// and history readers may still be reading the slot's previous message
/// (they notice and discard what they read, but a plain write racing their
/// read would be undefined behaviour). Bytes not written read as zero up to
/// the next multiple of 8, and are unspecified beyond.
pub struct TopicClaim<'a> {
    c: CoreClaim<'a>,
}

impl fmt::Debug for TopicClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicClaim")
            .field("len", &self.c.len())
            .finish_non_exhaustive()
    }
}

impl TopicClaim<'_> {
    /// Length of the claimed message.
    pub fn len(&self) -> usize {
        self.c.len()
    }

    /// True for a zero-length claim.
    pub fn is_empty(&self) -> bool {
        self.c.is_empty()
    }

    /// Copies `src` into the message at byte `at` (a multiple of 8).
    ///
    /// # Panics
    /// If `at` is not a multiple of 8 or the write leaves the claim.
    #[inline]
    pub fn write_at(&mut self, at: usize, src: &[u8]) {
        self.c.write_at(at, src);
    }

    /// Publishes the message.
    ///
    /// # Errors
    /// None today; `Result` for symmetry with the other claims.
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.c.commit();
        Ok(())
    }
}
