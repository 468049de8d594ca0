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
use std::ptr::NonNull;
use std::sync::Arc;

use shmbus::params::{ChannelParams, OpenParams};
use shmbus::pipe::{end, AttachError, Ring};
use shmbus::sync::{AtomicU64, Ordering};

use crate::bus::removal::Hold;
use crate::bus::{Bus, Inner};
use crate::error::{End, Error, Result};

pub(crate) mod receiver;
pub(crate) mod sender;

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

impl Bus {
    /// Opens pipe `name`, creating it with the daemon's default capacity if it
    /// does not exist yet. An existing pipe is opened whatever its capacity.
    ///
    /// # Errors
    /// [`Error::BadName`], `KindMismatch` (the name is taken by another
    /// kind of channel), `NoSpace` / `DirectoryFull` (no room to create it),
    /// `BusClosed`, `Denied`, `Corrupt`, `Protocol`, `Io`.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let pipe = bus.pipe("orders")?;
    /// println!("{}: {} bytes", pipe.name(), pipe.capacity());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn pipe(&self, name: &str) -> Result<Pipe> {
        self.open_pipe_impl(name, true, None)
    }

    /// Opens pipe `name`, creating it with a ring of `capacity` bytes if it
    /// does not exist yet. The largest frame is `capacity / 8` bytes.
    ///
    /// # Errors
    /// [`Error::BadParams`] unless `capacity` is a power of two from 64
    /// bytes to 1 GiB; `ParamMismatch` if the pipe exists with another
    /// capacity; otherwise as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let pipe = bus.pipe_with_capacity("video", 1 << 24)?;
    /// assert_eq!(pipe.max_frame(), 1 << 21);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn pipe_with_capacity(&self, name: &str, capacity: u64) -> Result<Pipe> {
        if let Err(message) = shmbus::pipe::check_capacity(capacity) {
            return Err(Error::BadParams {
                channel: name.to_owned(),
                message,
            });
        }
        self.open_pipe_impl(name, true, Some(capacity))
    }

    /// Opens existing pipe `name`; never creates one.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no channel of that name; otherwise
    /// as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::{Bus, Error};
    ///
    /// let bus = Bus::connect()?;
    /// match bus.open_pipe("orders") {
    ///     Ok(pipe) => println!("orders holds {} bytes", pipe.capacity()),
    ///     Err(Error::NotFound { .. }) => println!("no orders yet"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn open_pipe(&self, name: &str) -> Result<Pipe> {
        self.open_pipe_impl(name, false, None)
    }

    fn open_pipe_impl(&self, name: &str, create: bool, capacity: Option<u64>) -> Result<Pipe> {
        let g = self.open(name, create, OpenParams::Pipe { capacity })?;
        let hold = Hold::new(Arc::clone(&self.inner), g.index, g.generation);
        let ChannelParams::Pipe { capacity } = g.params else {
            unreachable!("`open` checked the kind")
        };
        if let Err(what) = self.inner.map().pipe(g.offset, g.length, capacity) {
            return Err(Error::Corrupt(what));
        }
        Ok(Pipe::new(
            Arc::clone(&self.inner),
            name.into(),
            g.offset,
            g.length,
            capacity,
            hold,
        ))
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
