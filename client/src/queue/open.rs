//! Opening a queue: the [`Bus`] methods that open or create one, and
//! [`QueueBuilder`] for chosen parameters.

use std::sync::Arc;

use shmbus::params::{ChannelParams, OpenParams};

use super::Queue;
use crate::bus::removal::Hold;
use crate::bus::Bus;
use crate::error::{Error, Result};

impl Bus {
    /// Opens queue `name`, creating it with the default 1024 slots of 256
    /// bytes if it does not exist yet (an existing queue is opened whatever
    /// its parameters). Python: `multiprocessing.JoinableQueue()`.
    ///
    /// # Errors
    /// [`Error::BadName`], `KindMismatch` (the name is taken by another kind
    /// of channel), `NoSpace` / `DirectoryFull`, `BusClosed`, `Denied`,
    /// `Corrupt`, `Protocol`, `Io`.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let q = bus.queue("jobs")?;
    /// q.put(b"work")?;
    /// assert_eq!(q.get()?, b"work");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_builder(name).open()
    }

    /// Opens existing queue `name`; never creates one.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no channel of that name; otherwise as
    /// [`Bus::queue`].
    pub fn open_queue(&self, name: &str) -> Result<Queue> {
        self.queue_builder(name).create(false).open()
    }

    /// A builder to open queue `name` with chosen slots and slot size.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let q = bus.queue_builder("frames").slots(64).slot_size(4096).open()?;
    /// assert_eq!(q.slot_size(), 4096);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn queue_builder<'a>(&'a self, name: &'a str) -> QueueBuilder<'a> {
        QueueBuilder {
            bus: self,
            name,
            slots: None,
            slot_size: None,
            create: true,
        }
    }

    fn open_queue_impl(
        &self,
        name: &str,
        create: bool,
        slots: Option<u64>,
        slot_size: Option<u64>,
    ) -> Result<Queue> {
        let check = shmbus::queue::check_params(
            slots.unwrap_or(shmbus::queue::DEFAULT_SLOTS),
            slot_size.unwrap_or(shmbus::queue::DEFAULT_SLOT_SIZE),
        );
        if let (Err(message), true) = (check, slots.is_some() || slot_size.is_some()) {
            return Err(Error::BadParams {
                channel: name.to_owned(),
                message,
            });
        }
        let g = self.open(name, create, OpenParams::Queue { slots, slot_size })?;
        let hold = Hold::new(Arc::clone(&self.inner), g.index, g.generation);
        let ChannelParams::Queue { slots, slot_size } = g.params else {
            unreachable!("`open` checked the kind")
        };
        let body = self
            .inner
            .map()
            .queue(g.offset, g.length, slots, slot_size)
            .map_err(Error::Corrupt)?;
        // SAFETY:
        // - `body.ctl` passed `QueueCtl::check` with the cells' parameters in
        //   `Mapping::queue`, and `body.cells()` are that queue's cells;
        // - both stay mapped as long as the handle: it is stored in a `Queue`
        //   together with `Arc<Inner>`, which owns the mapping and is declared
        //   after the handle, so it is dropped after it (clones likewise).
        let q = unsafe {
            shmbus::queue::Queue::attach(
                std::ptr::NonNull::from(body.ctl),
                body.cells(),
                self.inner.owner(),
            )
        };
        Ok(Queue::new(Arc::clone(&self.inner), name.into(), q, hold))
    }
}

/// Opens a queue with chosen parameters: made by [`Bus::queue_builder`].
///
/// # Examples
/// ```no_run
/// let bus = shmbus_client::Bus::connect()?;
/// let q = bus.queue_builder("jobs").slots(4096).open()?;
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "call .open()"]
pub struct QueueBuilder<'a> {
    bus: &'a Bus,
    name: &'a str,
    slots: Option<u64>,
    slot_size: Option<u64>,
    create: bool,
}

impl QueueBuilder<'_> {
    /// Number of slots (a power of two, 2 to 2^24) if the queue is created;
    /// if it exists, it must have this many. Default 1024.
    pub fn slots(mut self, slots: u64) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Largest item in bytes (1 to 1 MiB) if the queue is created; if it
    /// exists, it must have this slot size. Default 256.
    pub fn slot_size(mut self, bytes: u64) -> Self {
        self.slot_size = Some(bytes);
        self
    }

    /// Whether to create the queue if it does not exist (default true).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens (or creates) the queue.
    ///
    /// # Errors
    /// [`Error::BadParams`] for slots that are zero or not a power of two, or
    /// a slot size out of range; `ParamMismatch` if the queue exists with
    /// other parameters; `NotFound` without `create`; otherwise as
    /// [`Bus::queue`].
    pub fn open(self) -> Result<Queue> {
        self.bus
            .open_queue_impl(self.name, self.create, self.slots, self.slot_size)
    }
}
