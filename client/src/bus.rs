//! [`Bus`]: one connection to a daemon plus the mapped segment.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::futex::{WaitRecords, Waiter, INTERRUPT_SLICE};
use shmbus::layout::{entry_state, peer_state, state, Kind};
use shmbus::name::{validate_bus, validate_channel, BusPaths};
use shmbus::params::{ChannelParams, OpenParams};
use shmbus::protocol::{ErrorCode, Request, Response};
use shmbus::sync::{fence, AtomicU32, Ordering};

use crate::control::{Control, RequestError};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::pipe::Pipe;
use crate::queue::Queue;
use crate::segment::{Mapping, SegmentFile};
use crate::table::{Array, Table, Value};
use shmbus::seqlock::{ElemType, Element, Seqlock};

mod removal;
pub(crate) use removal::Hold;

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
    /// process recorded (see [`BusWaiter::slice`]), and a new epoch or an end
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
    pub(crate) fn waiter(&self) -> BusWaiter<'_> {
        BusWaiter {
            bus: self,
            extra: None,
        }
    }

    /// [`waiter`](Self::waiter) whose interrupt check also runs `extra` (a
    /// look of `watch`): the wait stops when it returns true, and sleeps no
    /// longer than `watch` asks ([`PhantomWatch::slice`]).
    #[inline]
    pub(crate) fn waiter_with<'a>(
        &'a self,
        extra: &'a dyn Fn() -> bool,
        watch: &'a PhantomWatch,
    ) -> BusWaiter<'a> {
        BusWaiter {
            bus: self,
            extra: Some((extra, watch)),
        }
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
        let p = self.map.peer(slot)?;
        // Acquire: pairs with the daemon's Release store of LIVE after it
        // wrote the pid.
        if p.state.load(Ordering::Acquire) != peer_state::LIVE {
            return None;
        }
        // Relaxed: ordered by the Acquire above; informational anyway. 0: the
        // daemon could not see its pid (another pid namespace).
        Some(p.pid.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
    }
}

/// The liveness watcher's hang-up action: wakes every thread of this process
/// asleep on a doorbell it recorded in peer slot `slot` (ours), so that it
/// runs its interrupt check and sees the flag the watcher set just before.
///
/// The records lie in shared memory: each offset is looked up through
/// [`Mapping::doorbell_at`] (inside the arena, aligned), never used as an
/// address. A scribbled record could at worst make us bump a word of a
/// segment whose daemon is gone (a new daemon makes a new file).
fn wake_own_sleepers(map: &Mapping, slot: u16) {
    if let Some(p) = map.peer(slot) {
        shmbus::futex::wake_recorded(&p.waits, |off| map.doorbell_at(off));
    }
}

/// See [`Inner::waiter`].
pub(crate) struct BusWaiter<'a> {
    bus: &'a Inner,
    /// An extra interrupt check (a [`PhantomWatch`] look) and its watch.
    extra: Option<(&'a dyn Fn() -> bool, &'a PhantomWatch)>,
}

impl std::fmt::Debug for BusWaiter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusWaiter")
            .field("extra", &self.extra.is_some())
            .finish_non_exhaustive()
    }
}

impl Waiter for BusWaiter<'_> {
    fn interrupted(&self) -> bool {
        self.bus.is_closed() || self.extra.is_some_and(|(f, _)| f())
    }

    /// No slice for the bus itself: the daemon's death wakes recorded
    /// sleepers (see [`Liveness`]), and its shutdown rings every doorbell
    /// after marking the segment `CLOSING`. [`INTERRUPT_SLICE`] while the
    /// watcher does not watch (it failed). A [`PhantomWatch`] adds its own
    /// slice: nothing rings when a word is scribbled.
    fn slice(&self) -> Option<Duration> {
        if !self.bus.liveness.watching() {
            return Some(INTERRUPT_SLICE);
        }
        self.extra.map(|(_, w)| w.slice())
    }

    fn records(&self) -> Option<WaitRecords<'_>> {
        self.bus.map.wait_records(self.bus.control.welcome().slot)
    }
}

/// How long a blocked call sleeps between two [`PhantomWatch`] looks while
/// the last one saw nothing wrong. Only a word scribbled *while* the call
/// sleeps waits this long to be noticed (one scribbled before is seen by the
/// look that precedes the first sleep); an idle blocked call wakes this
/// often and no more.
pub(crate) const PHANTOM_RECHECK: Duration = Duration::from_secs(30);

/// Watches, while a blocking call waits, for a holder that no process can be:
/// a writer lock, pipe end or queue cell claimed under an owner tag that no
/// connected peer has, which only a scribbled segment shows (each caller says
/// why). Without it the call would wait forever for a release that never
/// comes. It runs in the interrupt check of the blocking call, and reports a
/// phantom only when the same word was seen phantom on two consecutive checks
/// (at most [`INTERRUPT_SLICE`] apart), which rides out the moment between a
/// legitimate change of the word and the bookkeeping around it (the daemon
/// freeing a slot, a thread counting its lock).
///
/// Nothing rings a doorbell when a word is scribbled, so the looks need
/// periodic wake-ups ([`slice`](Self::slice)): every [`INTERRUPT_SLICE`]
/// while a suspicious word awaits its second look, and only every
/// [`PHANTOM_RECHECK`] while the last look saw nothing wrong, so that a
/// client blocked on an idle bus stays nearly silent.
#[derive(Debug, Default)]
pub(crate) struct PhantomWatch {
    /// The word last seen phantom, and when it was first seen.
    last: std::cell::Cell<Option<(u64, Instant)>>,
    /// Set when a phantom was confirmed.
    hit: std::cell::Cell<bool>,
}

impl PhantomWatch {
    /// Records one look: `phantom` is the word just read if it names a holder
    /// that cannot be, `None` otherwise. True (stop waiting) on the second
    /// look in a row at the same phantom word.
    pub(crate) fn check(&self, phantom: Option<u64>) -> bool {
        self.check_for(phantom, Duration::ZERO)
    }

    /// As [`check`](Self::check), but the same phantom word must also have
    /// been seen for at least `patience` (for holders that are phantom only
    /// unless something slow but legitimate explains them).
    pub(crate) fn check_for(&self, phantom: Option<u64>, patience: Duration) -> bool {
        match (phantom, self.last.get()) {
            (Some(w), Some((l, since))) if l == w => {
                let hit = since.elapsed() >= patience;
                self.hit.set(hit);
                hit
            }
            (w, _) => {
                self.last.set(w.map(|w| (w, Instant::now())));
                false
            }
        }
    }

    /// How long the wait may sleep before the next look: short while a
    /// suspicious word awaits confirmation, long otherwise.
    pub(crate) fn slice(&self) -> Duration {
        if self.last.get().is_some() {
            INTERRUPT_SLICE
        } else {
            PHANTOM_RECHECK
        }
    }

    /// `r`, with the `BusClosed` that a phantom caused (through the interrupt
    /// check) turned into `Corrupt(what)`.
    pub(crate) fn result<T>(&self, r: Result<T>, what: &'static str) -> Result<T> {
        match r {
            Err(Error::BusClosed) if self.hit.get() => Err(Error::Corrupt(what)),
            r => r,
        }
    }
}

/// A connection to one bus: the control connection to its daemon, held for
/// this handle's life, and the mapped shared segment.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. Every [`Pipe`] and endpoint made
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
    inner: Arc<Inner>,
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
                    move || wake_own_sleepers(&map, w.slot)
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
        if let Err(what) = self.inner.map.pipe(g.offset, g.length, capacity) {
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
            .map
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

    /// Opens the value `name` holding one `T`, creating it (as zero) if it
    /// does not exist yet: Python's `multiprocessing.Value`.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] if `name` holds another element type or is an
    /// array; otherwise as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let x = bus.value::<f64>("x")?;
    /// x.store(x.load() + 1.0)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn value<T: Element>(&self, name: &str) -> Result<Value<T>> {
        self.table_impl(Kind::Value, name, true, Some(T::TYPE), Some(1))
            .map(Value::new)
    }

    /// Opens the array `name` of `len` elements of `T`, creating it (all
    /// zero) if it does not exist yet: Python's `multiprocessing.Array`.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] if `name` holds another element type or
    /// length; [`Error::BadParams`] unless `1 <= len <= 2^20`; otherwise as
    /// [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// let a = bus.array::<i32>("a", 10)?;
    /// a.write(&[7; 10])?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn array<T: Element>(&self, name: &str, len: usize) -> Result<Array<T>> {
        self.table_impl(Kind::Array, name, true, Some(T::TYPE), Some(len as u64))
            .map(Array::new)
    }

    /// Opens the existing value `name`, which must hold a `T`; never creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; otherwise as [`Bus::value`].
    ///
    /// # Examples
    /// ```no_run
    /// let x = shmbus_client::Bus::connect()?.open_value::<f64>("x")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn open_value<T: Element>(&self, name: &str) -> Result<Value<T>> {
        self.table_impl(Kind::Value, name, false, Some(T::TYPE), Some(1))
            .map(Value::new)
    }

    /// Opens the existing array `name` of `T`, whatever its length; never
    /// creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; otherwise as [`Bus::array`].
    ///
    /// # Examples
    /// ```no_run
    /// let a = shmbus_client::Bus::connect()?.open_array::<i32>("a")?;
    /// println!("{} elements", a.len());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn open_array<T: Element>(&self, name: &str) -> Result<Array<T>> {
        self.table_impl(Kind::Array, name, false, Some(T::TYPE), None)
            .map(Array::new)
    }

    /// Creates (or opens, if it exists with the same type) a value of element
    /// type `elem`, untyped: for tools such as the `shmbus` command.
    ///
    /// # Errors
    /// As [`Bus::value`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::ElemType;
    /// let t = shmbus_client::Bus::connect()?.create_value("x", ElemType::F64)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn create_value(&self, name: &str, elem: ElemType) -> Result<Table> {
        self.table_impl(Kind::Value, name, true, Some(elem), Some(1))
    }

    /// Creates (or opens, if it exists with the same type and length) an
    /// array, untyped.
    ///
    /// # Errors
    /// As [`Bus::array`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::ElemType;
    /// let t = shmbus_client::Bus::connect()?.create_array("a", ElemType::I32, 10)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn create_array(&self, name: &str, elem: ElemType, len: usize) -> Result<Table> {
        self.table_impl(Kind::Array, name, true, Some(elem), Some(len as u64))
    }

    /// Opens the existing value or array `name`, whatever its element type and
    /// length; never creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; `KindMismatch` if `name` is a pipe or a queue;
    /// otherwise as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// println!("{}", t.read_strings().join(" "));
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn table(&self, name: &str) -> Result<Table> {
        validate_channel(name).map_err(|error| Error::BadName {
            what: "channel",
            name: name.to_owned(),
            error,
        })?;
        match self.kind_of(name) {
            None => Err(Error::NotFound {
                channel: name.to_owned(),
            }),
            Some(kind @ (Kind::Value | Kind::Array)) => {
                self.table_impl(kind, name, false, None, None)
            }
            Some(found) => Err(Error::KindMismatch {
                channel: name.to_owned(),
                expected: Kind::Value,
                found: Some(found),
            }),
        }
    }

    fn table_impl(
        &self,
        kind: Kind,
        name: &str,
        create: bool,
        elem: Option<ElemType>,
        len: Option<u64>,
    ) -> Result<Table> {
        if let (Some(t), Some(n)) = (elem, len) {
            if let Err(message) = shmbus::seqlock::check_params(u64::from(t.code()), n) {
                return Err(Error::BadParams {
                    channel: name.to_owned(),
                    message,
                });
            }
        }
        let params = match kind {
            Kind::Value => OpenParams::Value { elem },
            _ => OpenParams::Array { elem, len },
        };
        let g = match self.open(name, create, params) {
            Err(Error::ParamMismatch { .. }) => {
                return Err(Error::TypeMismatch {
                    channel: name.to_owned(),
                    expected: describe_table(kind, elem, len),
                    found: self.describe_entry(name),
                })
            }
            r => r?,
        };
        let hold = Hold::new(Arc::clone(&self.inner), g.index, g.generation);
        let (granted, n) = match g.params {
            ChannelParams::Value { elem } => (elem, 1),
            ChannelParams::Array { elem, len } => (elem, len),
            _ => unreachable!("`open` checked the kind"),
        };
        let body = self
            .inner
            .map
            .seqlock(g.offset, g.length, u64::from(granted.code()), n)
            .map_err(Error::Corrupt)?;
        if elem.is_some_and(|t| t != body.elem) || len.is_some_and(|want| want != n) {
            return Err(Error::Protocol(format!(
                "asked for {}, the daemon granted {}",
                describe_table(kind, elem, len),
                describe_table(kind, Some(body.elem), Some(n))
            )));
        }
        // SAFETY:
        // - `body.ctl` passed `SeqlockCtl::check` for this type and length, and
        //   `body.copies` are its two copies, each `words(len)` atomic words,
        //   8-aligned, inside the arena (`Mapping::seqlock` checked all this);
        // - the mapping stays alive as long as the handle: it is stored in a
        //   `Table` together with the `Arc<Inner>` that owns the mapping.
        let lock =
            unsafe { Seqlock::new(std::ptr::NonNull::from(body.ctl), body.copies, body.elem, n) };
        Ok(Table::new(
            Arc::clone(&self.inner),
            name.into(),
            kind,
            lock,
            hold,
        ))
    }

    /// What the directory says channel `name` holds, for `TypeMismatch`.
    fn describe_entry(&self, name: &str) -> String {
        match self
            .channels()
            .into_iter()
            .find(|c| c.name == name && !c.removed)
        {
            Some(ChannelInfo {
                kind,
                details: ChannelDetails::Table(t),
                ..
            }) => describe_table(kind, Some(t.elem), Some(t.len)),
            Some(c) => c.kind.with_article().to_owned(),
            None => "something else".to_owned(),
        }
    }

    /// Sends `OPEN` and checks the answer.
    fn open(&self, name: &str, create: bool, params: OpenParams) -> Result<Grant> {
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
    fn kind_of(&self, name: &str) -> Option<Kind> {
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
        let n = self.inner.map.geometry().dir_count;
        (0..n).filter_map(|i| self.read_entry(i)).collect()
    }

    fn read_entry(&self, index: u32) -> Option<ChannelInfo> {
        let m = &self.inner.map;
        let e = m.entry(index)?;
        // Acquire: pairs with the daemon's Release store of LIVE, made after
        // it wrote every other field of the entry (REMOVED is stored later
        // still, and changes nothing else).
        let state = e.state.load(Ordering::Acquire);
        if state != entry_state::LIVE && state != entry_state::REMOVED {
            return None;
        }
        // Relaxed, all: ordered after the Acquire above, and re-validated by
        // the second look below.
        let generation = e.generation.load(Ordering::Relaxed);
        let kind = e.kind.load(Ordering::Relaxed);
        let name = shmbus::layout::read_name(e)?;
        let offset = e.offset.load(Ordering::Relaxed);
        let length = e.length.load(Ordering::Relaxed);
        let params = [
            e.params[0].load(Ordering::Relaxed),
            e.params[1].load(Ordering::Relaxed),
            e.params[2].load(Ordering::Relaxed),
        ];
        let holders = e.holders.load(Ordering::Relaxed);
        // Acquire fence: keeps the loads above before the second look, as a
        // seqlock reader does; if the daemon freed or reused the entry
        // meanwhile, the state or generation differ and we skip it.
        fence(Ordering::Acquire);
        if e.state.load(Ordering::Relaxed) != state
            || e.generation.load(Ordering::Relaxed) != generation
        {
            return None;
        }
        let name = String::from_utf8(name).ok()?;
        let kind = Kind::from_u32(kind)?;
        let details = match ChannelParams::from_words(kind, params) {
            Err(_) => ChannelDetails::Corrupt("bad channel parameters in the directory"),
            Ok(ChannelParams::Pipe { capacity }) => match m.pipe(offset, length, capacity) {
                Ok(body) => {
                    let s = body.ctl.stats();
                    ChannelDetails::Pipe(PipeInfo {
                        capacity: s.capacity,
                        waiting: s.used.min(s.capacity),
                        sender: self.holder(s.producer),
                        receiver: self.holder(s.consumer),
                        written: s.tail,
                        read: s.head,
                    })
                }
                Err(what) => ChannelDetails::Corrupt(what),
            },
            Ok(ChannelParams::Queue { slots, slot_size }) => {
                match m.queue(offset, length, slots, slot_size) {
                    Ok(body) => {
                        let s = body.ctl.stats();
                        ChannelDetails::Queue(QueueInfo {
                            slots: s.slots,
                            slot_size: s.slot_size,
                            depth: s.depth,
                            unfinished: s.unfinished,
                            put: s.enqueue_pos,
                            taken: s.dequeue_pos,
                        })
                    }
                    Err(what) => ChannelDetails::Corrupt(what),
                }
            }
            Ok(p @ (ChannelParams::Value { elem } | ChannelParams::Array { elem, .. })) => {
                let len = p.table_len().unwrap_or(1);
                match m.seqlock(offset, length, u64::from(elem.code()), len) {
                    Ok(body) => ChannelDetails::Table(TableInfo {
                        elem: body.elem,
                        len,
                        version: body.ctl.generation(),
                        writer: self.holder(body.ctl.writer()),
                    }),
                    Err(what) => ChannelDetails::Corrupt(what),
                }
            }
        };
        Some(ChannelInfo {
            name,
            kind,
            details,
            removed: state == entry_state::REMOVED,
            holders,
        })
    }

    fn holder(&self, owner: u16) -> Option<Holder> {
        let slot = owner.checked_sub(1)?;
        Some(Holder {
            slot,
            pid: self.inner.peer_pid(slot),
        })
    }
}

/// `f64 value`, `i32[10]`, `i32 array`.
fn describe_table(kind: Kind, elem: Option<ElemType>, len: Option<u64>) -> String {
    let t = elem.map_or("any", ElemType::name);
    match (kind, len) {
        (Kind::Value, _) => format!("{t} value"),
        (_, Some(n)) => format!("{t}[{n}]"),
        (_, None) => format!("{t} array"),
    }
}

/// Where the daemon put an opened channel.
struct Grant {
    /// Directory index and generation, for `CLOSE`.
    index: u32,
    generation: u32,
    offset: u64,
    length: u64,
    /// Checked to be of the kind asked for.
    params: ChannelParams,
}

/// One channel of a bus, as listed by [`Bus::channels`].
///
/// # Examples
/// ```no_run
/// for c in shmbus_client::Bus::connect()?.channels() {
///     println!("{} ({})", c.name, c.kind);
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Kind-specific state.
    pub details: ChannelDetails,
    /// Removed ([`Bus::remove`]) while still open somewhere: its name is
    /// free (another channel may have it), and its space is reused once the
    /// holders below are gone.
    pub removed: bool,
    /// Connections that have the channel open (approximate: read while
    /// others open and close it).
    pub holders: u64,
}

/// Kind-specific part of a [`ChannelInfo`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     match c.details {
///         ChannelDetails::Pipe(p) => println!("{}: {} bytes waiting", c.name, p.waiting),
///         ChannelDetails::Corrupt(what) => println!("{}: corrupt: {what}", c.name),
///         _ => println!("{}", c.name),
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelDetails {
    /// A pipe's state.
    Pipe(PipeInfo),
    /// A queue's state.
    Queue(QueueInfo),
    /// A value's or array's type and state.
    Table(TableInfo),
    /// A kind this version does not inspect; its raw parameters.
    Other {
        /// The directory's parameters.
        params: [u64; 3],
    },
    /// The channel's body failed validation.
    Corrupt(&'static str),
}

/// A snapshot of a value or array, in [`ChannelDetails::Table`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Table(t) = c.details {
///         println!("{}: {}[{}], written {} times", c.name, t.elem, t.len, t.version);
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Element type.
    pub elem: ElemType,
    /// Number of elements (1 for a value).
    pub len: u64,
    /// Writes so far.
    pub version: u64,
    /// Who holds the writer lock right now, if anyone.
    pub writer: Option<Holder>,
}

/// A snapshot of a queue, in [`ChannelDetails::Queue`] (approximate).
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Queue(q) = c.details {
///         println!("{}: {} of {} slots in use", c.name, q.depth, q.slots);
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// Number of slots.
    pub slots: u64,
    /// Largest item in bytes.
    pub slot_size: u64,
    /// Items waiting.
    pub depth: u64,
    /// Items put and not yet marked done.
    pub unfinished: u64,
    /// Items ever put (the queue's enqueue position, puts in progress
    /// included): two snapshots give a rate (`shmbus top`).
    pub put: u64,
    /// Items ever taken (the dequeue position, gets in progress included).
    pub taken: u64,
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

/// A snapshot of a pipe, in [`ChannelDetails::Pipe`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Pipe(p) = c.details {
///         let busy = p.sender.is_some() && p.receiver.is_some();
///         println!("{}: {}", c.name, if busy { "in use" } else { "waiting for an end" });
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeInfo {
    /// Ring capacity in bytes.
    pub capacity: u64,
    /// Bytes waiting to be read, record headers and padding included.
    pub waiting: u64,
    /// Who holds the sending end, if anyone.
    pub sender: Option<Holder>,
    /// Who holds the receiving end, if anyone.
    pub receiver: Option<Holder>,
    /// Bytes ever sent (the sender's position), record headers and padding
    /// included: two snapshots give a rate (`shmbus top`).
    pub written: u64,
    /// Bytes ever received (the receiver's position), likewise.
    pub read: u64,
}

/// The holder of a pipe end: a peer slot, and its process if the peer table
/// says.
///
/// # Examples
/// ```
/// let h = shmbus_client::Holder { slot: 2, pid: Some(4242) };
/// assert_eq!(h.to_string(), "pid 4242");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Peer slot.
    pub slot: u16,
    /// pid of the process in that slot.
    pub pid: Option<u32>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}"),
            None => write!(f, "slot {}", self.slot),
        }
    }
}
