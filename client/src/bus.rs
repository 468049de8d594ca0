//! [`Bus`]: one connection to a daemon plus the mapped segment.

use std::fmt;
use std::sync::Arc;

use shmbus::futex::WaitRecords;
use shmbus::layout::{peer_state, state, Kind};
use shmbus::name::{validate_bus, validate_channel, BusPaths};
use shmbus::params::{ChannelParams, OpenParams};
use shmbus::protocol::{ErrorCode, Request, Response};
use shmbus::sync::{AtomicU32, Ordering};

use crate::channels::{self, ChannelInfo};
use crate::control::{Control, RequestError};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::segment::{Mapping, SegmentFile};
use crate::wait::{wake_own_sleepers, BusWaiter, Connection, PhantomWatch};

pub(crate) mod removal;

pub use shmbus::name::{default_bus_name, BUS_ENV, DEFAULT_BUS};

/// How many times [`Bus::connect_to`] starts over when the segment it mapped
/// turns out not to be the one the daemon serves (a daemon restart in between).
const CONNECT_ATTEMPTS: u32 = 3;

/// Everything one connection owns. Shared by the [`Bus`] handles and by every
/// endpoint, so the peer slot, the control connection (the daemon's liveness
/// signal for our endpoints) and the mapping live as long as any of them.
#[derive(Debug)]
pub(crate) struct Inner {
    name: String,
    /// Declared before `control`, so dropped first: its thread's duplicate of
    /// the connection is closed before `control` says `BYE` and closes it.
    liveness: Liveness,
    control: Control,
    /// Shared with the liveness watcher, which rings our recorded sleepers'
    /// doorbells when the daemon hangs up.
    map: Arc<Mapping>,
    /// Per value/array (keyed by its body's address): set while a caller's
    /// `update` closure runs under its writer lock (see `phantom_lock` in
    /// `table.rs`). Shared by every handle of this `Bus` on that channel.
    user_code: std::sync::Mutex<std::collections::HashMap<usize, Arc<AtomicU32>>>,
}

impl Inner {
    /// The segment.
    #[inline]
    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }

    /// The flag that says a caller's `update` closure runs under the writer
    /// lock of the value or array whose body is at address `key` (one flag
    /// per channel, shared by this bus's handles on it).
    pub(crate) fn user_code_flag(&self, key: usize) -> Arc<AtomicU32> {
        let mut m = self
            .user_code
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key).or_default().clone()
    }

    /// The bus name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Our owner tag: peer slot + 1 (never 0; `Control::connect` refuses slot
    /// `u16::MAX`).
    #[inline]
    pub(crate) fn owner(&self) -> u16 {
        self.control.welcome().slot + 1
    }

    /// True once the bus is gone for us: the daemon marked it closing, a new
    /// daemon re-initialised the segment (epoch changed), or the daemon closed
    /// our connection (it exited or was killed).
    ///
    /// This is the `interrupt` check that blocking calls run before every
    /// futex sleep and after every wake-up; it makes one non-blocking `recv`
    /// system call, so it never runs on the fast path. The sleeps need no
    /// time limit for it: the daemon's shutdown rings every doorbell after it
    /// stored `CLOSING`, its death makes our watcher ring the sleeps this
    /// process recorded (see `BusWaiter::slice`), and a new epoch or an end
    /// of our connection come only after one of those.
    pub(crate) fn is_closed(&self) -> bool {
        if self.daemon_gone() {
            return true;
        }
        let h = self.map.header();
        // Acquire: pairs with the daemon's Release store of CLOSING; a hint
        // only, nothing else is read on the strength of it.
        h.state.load(Ordering::Acquire) == state::CLOSING
            // Relaxed: the epoch is a hint too; a new one comes only after
            // the old daemon died, which wakes us anyway.
            || h.epoch.load(Ordering::Relaxed) != self.control.welcome().epoch
            || self.control.peer_gone()
    }

    /// True once the watcher thread saw the daemon hang up our connection:
    /// one relaxed load of a process-local flag, for the fast path of every
    /// channel operation (see [`Liveness`]). [`is_closed`](Self::is_closed)
    /// is the thorough check for slow paths.
    #[inline]
    pub(crate) fn daemon_gone(&self) -> bool {
        self.liveness.daemon_gone()
    }

    /// `Err(BusClosed)` once the daemon is gone ([`daemon_gone`](Self::daemon_gone)):
    /// the first step of every channel operation, so that a client streaming
    /// at full speed, which never sleeps and so never runs the slow check,
    /// learns of the daemon's death as soon as a blocked one does.
    #[inline]
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.daemon_gone() {
            return Err(self.gone_error());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn gone_error(&self) -> Error {
        Error::BusClosed
    }

    /// `e`, except that an end of stream (`Disconnected`) that the daemon's
    /// death explains is reported as `BusClosed`: when the daemon dies, the
    /// first client to notice drops its ends, and its peers must not take
    /// that for a clean end of file. Runs the thorough
    /// [`is_closed`](Self::is_closed) check, on error paths only.
    #[cold]
    #[inline(never)]
    pub(crate) fn explain(&self, e: Error) -> Error {
        if matches!(e, Error::Disconnected) && self.is_closed() {
            Error::BusClosed
        } else {
            e
        }
    }

    /// What blocking calls pass to the core as their [`Waiter`]: the
    /// [`is_closed`](Self::is_closed) check, and this process's wait records
    /// in its peer slot, so that the daemon can undo the sleeper counts of a
    /// thread that dies asleep (DESIGN.md §5).
    #[inline]
    pub(crate) fn waiter(&self) -> BusWaiter<'_, Self> {
        BusWaiter::new(self, None)
    }

    /// [`waiter`](Self::waiter) whose interrupt check also runs `extra` (a
    /// look of `watch`): the wait stops when it returns true, and sleeps no
    /// longer than `watch` asks ([`PhantomWatch::slice`]).
    #[inline]
    pub(crate) fn waiter_with<'a>(
        &'a self,
        extra: &'a dyn Fn() -> bool,
        watch: &'a PhantomWatch,
    ) -> BusWaiter<'a, Self> {
        BusWaiter::new(self, Some((extra, watch)))
    }

    /// True if owner tag `tag` (peer slot + 1) belongs to a peer slot that
    /// is held (LIVE) or being recovered; false for 0, a tag past the peer
    /// table, or a FREE slot.
    pub(crate) fn peer_connected(&self, tag: u16) -> bool {
        let Some(p) = tag.checked_sub(1).and_then(|slot| self.map.peer(slot)) else {
            return false;
        };
        // Acquire: pairs with the daemon's Release store of FREE, which it
        // makes after clearing what the slot held.
        p.state.load(Ordering::Acquire) != peer_state::FREE
    }

    /// The pid holding peer slot `slot`, if the peer table says.
    pub(crate) fn peer_pid(&self, slot: u16) -> Option<u32> {
        channels::peer_pid(&self.map, slot)
    }
}

impl Connection for Inner {
    fn is_closed(&self) -> bool {
        Inner::is_closed(self)
    }

    fn watching(&self) -> bool {
        self.liveness.watching()
    }

    fn wait_records(&self) -> Option<WaitRecords<'_>> {
        self.map.wait_records(self.control.welcome().slot)
    }
}

/// A connection to one bus: the control connection to its daemon, held for
/// this handle's life, and the mapped shared segment.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. Every [`Pipe`](crate::Pipe) and endpoint made
/// from it keeps the connection alive: the daemon frees this client's peer slot
/// and releases its pipe ends only when the last of them is dropped (or when
/// the process dies).
///
/// # Examples
/// ```no_run
/// use shmbus_client::Bus;
///
/// let bus = Bus::connect()?; // $SHMBUS_BUS, else "shmbus"
/// let pipe = bus.pipe("greetings")?;
/// let (mut tx, mut rx) = (pipe.sender()?, pipe.receiver()?);
/// tx.send(b"hello")?;
/// assert_eq!(rx.recv()?, b"hello");
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("name", &self.inner.name)
            .field("slot", &self.inner.control.welcome().slot)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects to the default bus: `$SHMBUS_BUS`, else `shmbus`.
    ///
    /// # Errors
    /// As [`Bus::connect_to`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// println!("connected to {}", bus.name());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn connect() -> Result<Self> {
        Self::connect_to(&default_bus_name())
    }

    /// Connects to bus `name`: maps and validates `/dev/shm/NAME`, connects to
    /// its daemon and registers (which hands out this client's peer slot).
    ///
    /// # Errors
    /// - [`Error::BadName`] for a name outside `[A-Za-z0-9._-]{1,200}`;
    /// - [`Error::DaemonNotRunning`] if no daemon serves the bus;
    /// - [`Error::PermissionDenied`];
    /// - `NotShmbus`, `Truncated`, `SizeMismatch`, `AbiMismatch`,
    ///   `CorruptSegment` if `/dev/shm/NAME` is not a valid segment of this
    ///   shmbus version;
    /// - `WrongOwner`, `UnsafeMode` if it is not owned by the daemon's user or
    ///   has permission bits the daemon does not set;
    /// - `NotReady` while the daemon starts, `BusClosed` while it stops;
    /// - `Refused` if the daemon turns this client away (peer table full,
    ///   permissions), `Protocol`, `Io`.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect_to("prices")?;
    /// assert_eq!(bus.name(), "prices");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn connect_to(name: &str) -> Result<Self> {
        validate_bus(name).map_err(|error| Error::BadName {
            what: "bus",
            name: name.to_owned(),
            error,
        })?;
        // Lets this process's wake-up checks on the data plane be compiler
        // fences (see `shmbus::sync::light_barrier`); harmless if refused.
        shmbus::sync::enable_asymmetric_barriers();
        let paths = BusPaths::new(name);
        let mut mismatch = String::new();
        for _ in 0..CONNECT_ATTEMPTS {
            // The file and its header first, so that a foreign or broken file
            // is reported as such even when no daemon runs; its owner and mode
            // once the daemon's uid is known; only then all of it is mapped.
            // A segment still being made is waited for (briefly), not reported.
            let file = SegmentFile::open_waiting(name, &paths.segment)?;
            let control = Control::connect(name, &paths.socket)?;
            file.check_owner(control.daemon_uid(), control.socket_mode())?;
            let map = file.map(name)?;
            let w = *control.welcome();
            // Relaxed: `validate` read the header after an Acquire of READY.
            let epoch = map.header().epoch.load(Ordering::Relaxed);
            if w.epoch == epoch && w.segment_size == map.geometry().total_size {
                let map = Arc::new(map);
                let wake = {
                    let map = map.clone();
                    move || {
                        wake_own_sleepers(&map, w.slot);
                        crate::wait::run_hang_up_hook();
                    }
                };
                let liveness =
                    Liveness::watch(control.stream(), wake).map_err(|source| Error::Io {
                        doing: "starting the thread that watches the daemon's connection",
                        source,
                    })?;
                return Ok(Self {
                    inner: Arc::new(Inner {
                        name: name.to_owned(),
                        liveness,
                        control,
                        map,
                        user_code: std::sync::Mutex::default(),
                    }),
                });
            }
            // The daemon that answered is not the one that made the segment we
            // mapped (it restarted in between): map again.
            mismatch = format!(
                "{} has epoch {epoch} and size {}, the daemon serves epoch {} and size {}",
                paths.segment.display(),
                map.geometry().total_size,
                w.epoch,
                w.segment_size
            );
        }
        Err(Error::Protocol(mismatch))
    }

    /// The bus name.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect_to("prices")?;
    /// assert_eq!(bus.name(), "prices");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This client's peer slot on the bus (owner tags in the segment are
    /// `slot + 1`).
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// println!("peer slot {}", bus.peer_slot());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn peer_slot(&self) -> u16 {
        self.inner.control.welcome().slot
    }

    /// True if the bus has gone away for this client: the daemon is shutting
    /// down, exited, was killed, or was replaced by a new one. Blocking calls
    /// check this while they wait and return `BusClosed`.
    ///
    /// Makes one non-blocking system call.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// if bus.is_closed() {
    ///     eprintln!("shmbusd went away; reconnect");
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Sends `OPEN` and checks the answer.
    pub(crate) fn open(&self, name: &str, create: bool, params: OpenParams) -> Result<Grant> {
        let kind = params.kind();
        validate_channel(name).map_err(|error| Error::BadName {
            what: "channel",
            name: name.to_owned(),
            error,
        })?;
        let req = Request::open(name, create, params);
        let channel = || name.to_owned();
        match self.inner.control.request(&req) {
            Ok(Response::Channel {
                index,
                generation,
                kind: k,
                offset,
                length,
                params,
            }) if k == kind => Ok(Grant {
                index,
                generation,
                offset,
                length,
                params: ChannelParams::from_words(kind, params)
                    .map_err(|_| Error::Corrupt("the daemon granted bad channel parameters"))?,
            }),
            Ok(Response::Error { code, message }) => Err(match code {
                ErrorCode::NotFound => Error::NotFound { channel: channel() },
                ErrorCode::KindMismatch => Error::KindMismatch {
                    channel: channel(),
                    expected: kind,
                    found: self.kind_of(name),
                },
                ErrorCode::ParamMismatch => Error::ParamMismatch {
                    channel: channel(),
                    message,
                },
                ErrorCode::BadParams => Error::BadParams {
                    channel: channel(),
                    message,
                },
                ErrorCode::NoSpace => Error::NoSpace {
                    channel: channel(),
                    message,
                },
                ErrorCode::Full => Error::DirectoryFull {
                    channel: channel(),
                    message,
                },
                ErrorCode::Denied => Error::Denied {
                    channel: channel(),
                    message,
                },
                ErrorCode::Closing => Error::BusClosed,
                // The name passed `validate_channel` here, and ABI and protocol
                // errors are not ours to fix: all three mean the two sides
                // disagree about the protocol.
                ErrorCode::BadName | ErrorCode::Abi | ErrorCode::Protocol => {
                    Error::Protocol(format!("shmbusd answered {code}: {message}"))
                }
            }),
            Ok(other) => Err(Error::Protocol(format!(
                "expected CHANNEL for a {kind}, got {}",
                other.encode().trim_end()
            ))),
            Err(RequestError::Closed) => Err(Error::BusClosed),
            Err(RequestError::Protocol(message)) => Err(Error::Protocol(message)),
            Err(RequestError::Io(source)) => Err(Error::Io {
                doing: "talking to shmbusd",
                source,
            }),
        }
    }

    /// The kind of the live channel called `name`, from the directory.
    pub(crate) fn kind_of(&self, name: &str) -> Option<Kind> {
        self.channels()
            .into_iter()
            .find(|c| c.name == name && !c.removed)
            .map(|c| c.kind)
    }

    /// A snapshot of the bus's channels, read from the segment's directory
    /// (no request to the daemon).
    ///
    /// Every value is read with loads another process may race, so counts are
    /// approximate; everything is bounds-checked before use, and an entry that
    /// changes while it is read is skipped.
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::{Bus, ChannelDetails};
    ///
    /// for c in Bus::connect()?.channels() {
    ///     if let ChannelDetails::Pipe(p) = c.details {
    ///         println!("{}: {} of {} bytes waiting", c.name, p.waiting, p.capacity);
    ///     }
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn channels(&self) -> Vec<ChannelInfo> {
        channels::list(&self.inner.map)
    }
}

/// Where the daemon put an opened channel.
pub(crate) struct Grant {
    /// Directory index and generation, for `CLOSE`.
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) offset: u64,
    pub(crate) length: u64,
    /// Checked to be of the kind asked for.
    pub(crate) params: ChannelParams,
}
