//! Opening a topic: the [`Bus`] methods that open or create one, and
//! [`TopicBuilder`] for chosen parameters.

use std::sync::Arc;

use shmbus::params::{ChannelParams, OpenParams};
use shmbus::topic::{mode_word, split_mode, DEFAULT_MAX_SUBSCRIBERS};

use super::Topic;
use crate::bus::removal::Hold;
use crate::bus::Bus;
use crate::error::{Error, Result};

impl Bus {
    /// Opens topic `name`, creating it if it does not exist yet with the
    /// defaults: lossless, 1024 slots of 256 bytes, up to 64 subscribers (an
    /// existing topic is opened whatever its parameters).
    ///
    /// # Errors
    /// [`Error::BadName`], `KindMismatch` (the name is taken by another kind
    /// of channel), `NoSpace` / `DirectoryFull`, `BusClosed`, `Denied`,
    /// `Corrupt`, `Protocol`, `Io`.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let t = bus.topic("prices")?;
    /// let sub = t.subscribe()?;
    /// t.publisher().publish(b"up")?;
    /// assert_eq!(sub.recv()?, b"up");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.topic_builder(name).open()
    }

    /// Opens existing topic `name`; never creates one.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no channel of that name; otherwise as
    /// [`Bus::topic`].
    pub fn open_topic(&self, name: &str) -> Result<Topic> {
        self.topic_builder(name).create(false).open()
    }

    /// A builder to open topic `name` with chosen parameters.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let t = bus.topic_builder("video").slots(64).slot_size(4096).lossy(true).open()?;
    /// assert!(t.is_lossy());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn topic_builder<'a>(&'a self, name: &'a str) -> TopicBuilder<'a> {
        TopicBuilder {
            bus: self,
            name,
            slots: None,
            slot_size: None,
            lossy: None,
            max_subscribers: None,
            create: true,
        }
    }
}

/// Opens a topic with chosen parameters: made by [`Bus::topic_builder`].
///
/// The mode (lossy or not) and the largest number of subscribers are one
/// parameter word: giving either asks for both (the other at its default).
#[derive(Debug)]
#[must_use = "call .open()"]
pub struct TopicBuilder<'a> {
    bus: &'a Bus,
    name: &'a str,
    slots: Option<u64>,
    slot_size: Option<u64>,
    lossy: Option<bool>,
    max_subscribers: Option<u64>,
    create: bool,
}

impl TopicBuilder<'_> {
    /// Number of slots (a power of two, 2 to 2^24) if the topic is created;
    /// if it exists, it must have this many. Default 1024.
    pub fn slots(mut self, slots: u64) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Largest message in bytes (1 to 1 MiB) if the topic is created; if it
    /// exists, it must have this slot size. Default 256.
    pub fn slot_size(mut self, bytes: u64) -> Self {
        self.slot_size = Some(bytes);
        self
    }

    /// Lossy delivery (publishers never wait; a subscriber that falls a
    /// ring behind gets `Lagged`) if the topic is created; if it exists, it
    /// must have this mode. Default lossless.
    pub fn lossy(mut self, lossy: bool) -> Self {
        self.lossy = Some(lossy);
        self
    }

    /// Largest number of subscribers at a time (1 to 1024) if the topic is
    /// created; if it exists, it must have this. Default 64.
    pub fn max_subscribers(mut self, n: u64) -> Self {
        self.max_subscribers = Some(n);
        self
    }

    /// Whether to create the topic if it does not exist (default true).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens (or creates) the topic.
    ///
    /// # Errors
    /// [`Error::BadParams`] for parameters out of range; `ParamMismatch` if
    /// the topic exists with other parameters; `NotFound` without `create`;
    /// otherwise as [`Bus::topic`].
    pub fn open(self) -> Result<Topic> {
        let name = self.name;
        let bus = self.bus;
        let mode = (self.lossy.is_some() || self.max_subscribers.is_some()).then(|| {
            mode_word(
                self.lossy.unwrap_or(false),
                self.max_subscribers.unwrap_or(DEFAULT_MAX_SUBSCRIBERS),
            )
        });
        let asked = OpenParams::Topic {
            slots: self.slots,
            slot_size: self.slot_size,
            mode,
        };
        if let Err(message) = asked.resolve() {
            return Err(Error::BadParams {
                channel: name.to_owned(),
                message,
            });
        }
        let g = bus.open(name, self.create, asked)?;
        let hold = Hold::new(Arc::clone(&bus.inner), g.index, g.generation);
        let ChannelParams::Topic {
            slots,
            slot_size,
            mode,
        } = g.params
        else {
            unreachable!("`open` checked the kind")
        };
        debug_assert!(split_mode(mode).1 >= 1);
        let body = bus
            .inner
            .map()
            .topic(g.offset, g.length, slots, slot_size, mode)
            .map_err(Error::Corrupt)?;
        // SAFETY: the mapping lives in `bus.inner`, which the `Topic` keeps
        // (and which every handle made from it keeps in turn) for as long
        // as the ring is used.
        let ring = unsafe { body.ring() };
        Ok(Topic::new(
            Arc::clone(&bus.inner),
            name.into(),
            std::ptr::NonNull::from(body.ctl),
            ring,
            hold,
        ))
    }
}
