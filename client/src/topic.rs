//! Topics: publish once, every subscriber receives. A bounded ring in the
//! segment that any number of [`Publisher`](crate::Publisher)s write and up to
//! `max_subscribers` [`Subscriber`](crate::Subscriber)s read, each at its own pace, all in the
//! same order (one market-data feed, sensor stream or log read by many
//! processes).
//!
//! The algorithm is the core's [`shmbus::topic`]; this module adds the bus
//! around it: the mapping stays alive as long as a handle does, blocking
//! calls stop with `BusClosed` when the daemon goes away, and a subscriber or
//! publisher whose process dies is repaired by the daemon (its place freed,
//! its unfinished publish turned into a tombstone that subscribers skip).
//!
//! # Modes
//! - **lossless** (default): a publisher waits while the slowest live
//!   subscriber is a whole ring behind (`try_publish` returns `Full`);
//!   receives read the message in place.
//! - **lossy** ([`TopicBuilder::lossy`]): publishers never wait for
//!   subscribers; a subscriber that falls more than a ring behind gets
//!   [`Error::Lagged(n)`](crate::Error::Lagged) with the exact number of
//!   messages it missed, and continues with the oldest one still in the
//!   ring. It never gets a torn or overwritten message.
//!
//! # Cost
//! While a lossless ring has room, a publish makes no system call and takes
//! no lock: a few loads and two CAS (claim the slot, advance `tail`), the
//! copy, one store, and a look at whether anybody sleeps. A receive is a load,
//! the read in place (lossless) or a copy and a second look (lossy), and a
//! store of the subscriber's cursor. A blocking call spins briefly, then
//! sleeps on a shared futex; nobody makes a system call to wake a sleeper
//! unless one sleeps.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use shmbus::topic::{Ring, TopicCtl, TopicStats};

use crate::bus::removal::Hold;
use crate::bus::Inner;

pub(crate) mod open;
pub(crate) mod publisher;
pub(crate) mod subscriber;

/// An opened topic. Cheap to clone; `Send` and `Sync`; keeps the bus
/// connection alive. Make a [`Publisher`](crate::Publisher) to publish and a
/// [`Subscriber`](crate::Subscriber) to receive.
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let t = bus.topic("prices")?;
/// let sub = t.subscribe()?;
/// t.publisher().publish(b"EURUSD 1.0842")?;
/// assert_eq!(sub.recv()?, b"EURUSD 1.0842");
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Topic {
    pub(crate) ctl: NonNull<TopicCtl>,
    pub(crate) ring: Ring,
    pub(crate) bus: Arc<Inner>,
    name: Arc<str>,
    // Last: its drop tells the daemon we are done with the topic.
    _hold: Arc<Hold>,
}

// SAFETY: `ctl` and `ring` point into the mapping that `bus` (an
// `Arc<Inner>`) keeps alive as long as this handle; everything there is
// accessed atomically.
unsafe impl Send for Topic {}
// SAFETY: as above; `&self` methods only read atomics.
unsafe impl Sync for Topic {}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("bus", &self.bus.name())
            .field("name", &self.name)
            .field("slots", &self.ring.slots())
            .field("slot_size", &self.ring.slot_size())
            .field("lossy", &self.ring.is_lossy())
            .finish_non_exhaustive()
    }
}

impl Topic {
    /// A topic whose body the mapping has checked (`Mapping::topic`).
    pub(crate) fn new(
        bus: Arc<Inner>,
        name: Arc<str>,
        ctl: NonNull<TopicCtl>,
        ring: Ring,
        hold: Arc<Hold>,
    ) -> Self {
        Self {
            ctl,
            ring,
            bus,
            name,
            _hold: hold,
        }
    }

    pub(crate) fn ctl(&self) -> &TopicCtl {
        // SAFETY: the mapping outlives `self` (see `Topic`'s Send impl).
        unsafe { self.ctl.as_ref() }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of slots: how far (in messages) the slowest subscriber of a
    /// lossless topic may fall behind before publishers wait.
    pub fn slots(&self) -> u64 {
        self.ring.slots()
    }

    /// Largest message in bytes (the slot size).
    pub fn slot_size(&self) -> usize {
        self.ring.slot_size() as usize
    }

    /// True for a lossy topic.
    pub fn is_lossy(&self) -> bool {
        self.ring.is_lossy()
    }

    /// Largest number of subscribers at a time.
    pub fn max_subscribers(&self) -> u64 {
        self.ring.max_subscribers()
    }

    /// A snapshot: subscribers now, the slowest one's lag, messages
    /// published (approximate: other processes publish and receive at any
    /// moment).
    pub fn stats(&self) -> TopicStats {
        self.ctl().stats(&self.ring)
    }
}
