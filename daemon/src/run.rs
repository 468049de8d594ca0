//! Starting, serving and stopping a bus: the singleton lock, the segment file
//! and its mapping, the control socket, and the shutdown sequence.
//!
//! # Files
//! All three live in `/dev/shm` ([`BusPaths`]):
//!
//! | file | created | removed |
//! |---|---|---|
//! | lock `.shmbus@NAME.lock` (mode 0600 always) | opened (or created) first; holds our pid | last, at shutdown or failed start, while still locked |
//! | segment `NAME` (`--mode`) | after the lock, unnamed (`O_TMPFILE`); linked into place (never replacing a file) once `READY` | at shutdown |
//! | socket `.shmbus@NAME.sock` (`--mode`) | after the segment, bound under a temporary name and renamed into place (never replacing a file) once listening | at shutdown |
//!
//! With `--allow-group`, the segment and the socket belong to the first
//! allowed group (`fchown` / `chown` before they are published); otherwise to
//! the daemon's group. Their mode is always the same.
//!
//! Whoever holds the `flock` owns all three names, so a segment or socket found
//! by a daemon that just got the lock was most likely left by a daemon that
//! died. It is removed and made anew ("taking over stale segment") only if it
//! is provably ours and provably dead: our uid, our magic (segment), nobody
//! listening (socket), and the daemon the header names gone
//! ([`remove_stale`]). Anything else, in particular another user's file, is
//! never removed: start fails with a message naming the file and its owner.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, MetadataExt as _};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use shmbus::layout::{self, DirEntry, Geometry, Header, PeerSlot, MAGIC};
use shmbus::name::BusPaths;
use shmbus::pipe::PipeCtl;
use shmbus::queue::{Cells, QueueCtl};
use shmbus::seqlock::SeqlockCtl;

use crate::config::Spec;
use crate::server::Bus;
use crate::Error;

/// The daemon's event log: one line per event, prefixed `shmbusd[NAME]: `,
/// sent to the [`log`] facade under the target [`crate::service::LOG_TARGET`].
///
/// Whoever runs the daemon picks the logger: the `shmbusd` binary installs
/// `env_logger` (stderr, timestamp and level, `RUST_LOG`); a program that
/// embeds a [`Daemon`] gets the events through its own logger, or not at all.
/// Loggers must not panic on a failed write (`env_logger` ignores it), so a
/// closed stderr cannot take the daemon down.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    prefix: Arc<str>,
    quiet: bool,
}

impl Log {
    pub(crate) fn new(bus: &str, quiet: bool) -> Self {
        Self {
            prefix: format!("shmbusd[{bus}]: ").into(),
            quiet,
        }
    }

    /// A notable event, at level info (suppressed by `--quiet`).
    pub(crate) fn info(&self, args: std::fmt::Arguments<'_>) {
        if !self.quiet {
            log::info!(target: crate::service::LOG_TARGET, "{}{args}", self.prefix);
        }
    }

    /// Something went wrong but the daemon goes on, at level warn (shown even
    /// with `--quiet`).
    pub(crate) fn warn(&self, args: std::fmt::Arguments<'_>) {
        log::warn!(target: crate::service::LOG_TARGET, "{}{args}", self.prefix);
    }
}

/// Structs that may be viewed in place inside the segment.
///
/// # Safety
/// Implementors consist only of atomics (so a shared reference may coexist with
/// writes from other processes) and every bit pattern, all-zero included, is a
/// valid value.
unsafe trait InSegment {}

// SAFETY: `Header` is `#[repr(C)]` and all its fields are `AtomicU32`/`AtomicU64`
// (layout.rs); any bits are a valid atomic integer.
unsafe impl InSegment for Header {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields.
unsafe impl InSegment for PeerSlot {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields and arrays of them.
unsafe impl InSegment for DirEntry {}
// SAFETY: `PipeCtl` is `#[repr(C)]` `Line`s of `Meta`, `AtomicU64`, `Ends` and
// `Doorbell`, which hold only `AtomicU32`/`AtomicU64`/`FutexWord` (a transparent
// `AtomicU32`); padding bytes of `Line` are never read as values.
unsafe impl InSegment for PipeCtl {}
// SAFETY: `SeqlockCtl` is `#[repr(C)]` `Line`s of `seqlock::Meta`, `AtomicU64`
// and `Doorbell`s: only `AtomicU32`/`AtomicU64`/`FutexWord`, any bits valid.
unsafe impl InSegment for SeqlockCtl {}
// SAFETY: `QueueCtl` is `#[repr(C)]` `Line`s of `QueueMeta`, `AtomicU64` and
// `Doorbell`, which hold only `AtomicU32`/`AtomicU64`/`FutexWord`.
unsafe impl InSegment for QueueCtl {}
// SAFETY: an array of `AtomicU64`: only atomics, any bits valid.
unsafe impl InSegment for [shmbus::sync::AtomicU64; 16] {}

/// The daemon's mapping of the segment.
///
/// # Invariants
/// - `map` is a shared, read-write mapping of exactly `geometry.total_size`
///   bytes, page-aligned (mmap returns page-aligned addresses), alive as long as
///   `self`;
/// - `geometry` came from `Geometry::plan` for that size, so the peer table, the
///   directory and the arena lie inside the mapping, 128-byte aligned.
#[derive(Debug)]
pub(crate) struct Segment {
    map: MmapRaw,
    geometry: Geometry,
}

impl Segment {
    /// Wraps a mapping of `geometry.total_size` bytes.
    ///
    /// # Errors
    /// If the mapping's length is not the planned size.
    pub(crate) fn new(map: MmapRaw, geometry: Geometry) -> Result<Self, Error> {
        if map.len() as u64 != geometry.total_size {
            return Err(Error::Failed(format!(
                "mapping has {} bytes, expected {}",
                map.len(),
                geometry.total_size
            )));
        }
        Ok(Self { map, geometry })
    }

    /// The validated layout of this segment.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// A shared reference to the `T` at byte `off`.
    ///
    /// # Panics
    /// If `T` would not lie wholly inside the mapping or `off` is misaligned
    /// for `T`; callers pass offsets computed from the geometry, so a panic is
    /// a bug in the daemon.
    fn at<T: InSegment>(&self, off: u64) -> &T {
        let size = core::mem::size_of::<T>() as u64;
        let align = core::mem::align_of::<T>() as u64;
        assert!(
            off.checked_add(size)
                .is_some_and(|end| end <= self.map.len() as u64)
                && off.is_multiple_of(align),
            "segment access out of bounds or misaligned: offset {off}, size {size}"
        );
        // SAFETY:
        // - `off + size_of::<T>() <= len` (asserted), so the pointer and the
        //   whole `T` are inside the mapping; `off` fits `usize` because it is
        //   below the mapping's length;
        // - the base is page-aligned and `off` is a multiple of `align_of::<T>()`
        //   (asserted, and `align_of` is at most 128 here), so the `T` is aligned;
        // - `T: InSegment`: only atomics, any bits valid, so a shared reference is
        //   sound even while other processes write those words;
        // - the reference borrows `self`, and the mapping lives as long as `self`.
        unsafe { &*self.map.as_mut_ptr().add(off as usize).cast::<T>() }
    }

    /// The header, at offset 0.
    pub(crate) fn header(&self) -> &Header {
        self.at(0)
    }

    /// Peer slot `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned peer count.
    pub(crate) fn peer(&self, i: u32) -> &PeerSlot {
        assert!(i < self.geometry.peers_count, "peer slot {i} out of range");
        self.at(self.geometry.peers_off + u64::from(i) * 128)
    }

    /// Directory entry `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned channel count.
    pub(crate) fn entry(&self, i: u32) -> &DirEntry {
        assert!(
            i < self.geometry.dir_count,
            "directory entry {i} out of range"
        );
        self.at(self.geometry.dir_off + u64::from(i) * 256)
    }

    /// The control block of the value or array whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena (a daemon bug).
    pub(crate) fn seqlock(&self, offset: u64) -> &SeqlockCtl {
        assert!(
            offset >= self.geometry.arena_off,
            "value body before the arena"
        );
        self.at(offset)
    }

    /// The control block and cells of the queue whose body starts at
    /// `offset`, created with `slots` and `slot_size` (from the daemon's
    /// mirror, never read back from the segment).
    ///
    /// # Panics
    /// If the body is not inside the arena (a daemon bug).
    pub(crate) fn queue(&self, offset: u64, slots: u64, slot_size: u64) -> (&QueueCtl, Cells) {
        assert!(
            offset >= self.geometry.arena_off
                && shmbus::queue::check_params(slots, slot_size).is_ok()
                && offset + shmbus::queue::body_len(slots, slot_size) <= self.map.len() as u64,
            "queue body outside the arena"
        );
        let ctl = self.at::<QueueCtl>(offset);
        let first = offset + shmbus::queue::CTL_SIZE;
        // SAFETY: `first .. offset + body_len` lies inside the mapping
        // (asserted), is 8-aligned (`offset` is 128-aligned, `CTL_SIZE` a
        // multiple of 128), and the mapping lives as long as `self`, which
        // the returned `Cells` are only used under; `check_params` holds.
        let cells = unsafe {
            let p = self.map.as_mut_ptr().add(first as usize);
            Cells::in_segment(core::ptr::NonNull::new_unchecked(p), slots, slot_size)
        };
        (ctl, cells)
    }

    /// Zeroes the `len` bytes at `offset` (whole 128-byte lines inside the
    /// arena) with Relaxed atomic stores: the body of a removed channel that
    /// nobody holds any more. Atomic, so that even a client that scribbles
    /// there against the protocol races no plain access; Relaxed, because
    /// the next channel placed here is published by the Release store of its
    /// entry's state, which comes after these stores in this thread.
    ///
    /// # Panics
    /// If the range is not whole lines inside the arena (a daemon bug).
    pub(crate) fn zero(&self, offset: u64, len: u64) {
        let line = shmbus::layout::LINE;
        assert!(
            offset >= self.geometry.arena_off
                && offset.is_multiple_of(line)
                && len.is_multiple_of(line),
            "zeroing {len} bytes at {offset}: not whole lines of the arena"
        );
        for off in (offset..offset + len).step_by(line as usize) {
            for w in self.at::<[shmbus::sync::AtomicU64; 16]>(off) {
                w.store(0, shmbus::sync::Ordering::Relaxed);
            }
        }
    }

    /// The control block of the pipe whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena (a daemon bug).
    pub(crate) fn pipe(&self, offset: u64) -> &PipeCtl {
        assert!(
            offset >= self.geometry.arena_off,
            "pipe body before the arena"
        );
        self.at(offset)
    }
}

/// Asks a running [`Daemon`] to shut down; cheap to clone, usable from any
/// thread (the SIGINT/SIGTERM handler of [`crate::run()`] holds one).
///
/// A stop requested before [`Daemon::serve`] starts takes effect as soon as it
/// does.
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    state: Mutex<StopState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct StopState {
    requested: bool,
    failure: Option<String>,
}

impl StopHandle {
    /// A handle with no stop requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests a clean shutdown ([`Daemon::serve`] then returns `Ok`).
    pub fn stop(&self) {
        self.set(None);
    }

    /// Whether a stop has been requested.
    pub fn is_stopped(&self) -> bool {
        self.lock().requested
    }

    /// Requests a shutdown because serving failed ([`Daemon::serve`] then
    /// returns `Err(Error::Failed(message))`).
    pub(crate) fn fail(&self, message: String) {
        self.set(Some(message));
    }

    fn set(&self, failure: Option<String>) {
        let mut s = self.lock();
        s.requested = true;
        if s.failure.is_none() {
            s.failure = failure;
        }
        self.inner.cv.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StopState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a stop is requested; returns the failure, if any.
    fn wait(&self) -> Option<String> {
        let mut s = self.lock();
        while !s.requested {
            s = self
                .inner
                .cv
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.failure.clone()
    }
}

/// Files to remove when the daemon stops (or fails to start), and the locked
/// lock file, which is closed (unlocked) only after they are gone.
#[derive(Debug)]
struct Cleanup {
    /// Removed in order: segment, socket, lock file.
    paths: Vec<PathBuf>,
    /// The `flock`ed lock file; dropped after `paths` are removed.
    lock: Option<OwnedFd>,
    log: Log,
}

impl Cleanup {
    fn run(&mut self) {
        for p in self.paths.drain(..) {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => self
                    .log
                    .warn(format_args!("cannot remove {}: {e}", p.display())),
            }
        }
        self.lock = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// A started daemon: the segment exists and is `READY`, the socket is bound.
///
/// [`serve`](Daemon::serve) runs it until its [`StopHandle`] is used. Dropping a
/// `Daemon` without serving it marks the segment `CLOSING` and removes its files.
///
/// # Examples
/// ```no_run
/// use shmbus_daemon::{Cli, Daemon, Spec, StopHandle};
/// let cli = Cli::parse_args(["shmbusd", "--name", "demo", "--pipe", "ticks:4096"])?;
/// let stop = StopHandle::new();
/// let daemon = Daemon::start(Spec::from_cli(cli)?, stop.clone())?;
/// let server = std::thread::spawn(move || daemon.serve());
/// // ... clients connect to /dev/shm/.shmbus@demo.sock ...
/// stop.stop();
/// server.join().expect("serve panicked")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Daemon {
    bus: Arc<Bus>,
    listener: UnixListener,
    stop: StopHandle,
    /// Removes the files when run by `serve`, or when dropped (a failed start,
    /// or a `Daemon` that is never served).
    cleanup: Cleanup,
    /// Set once the segment is marked `CLOSING` (by `serve` or by drop).
    shut_down: bool,
}

impl Drop for Daemon {
    /// A `Daemon` dropped without being served still tells clients that may
    /// have mapped the segment that the bus is closing; its files are removed.
    fn drop(&mut self) {
        if !self.shut_down {
            self.bus.begin_shutdown();
        }
    }
}

impl Daemon {
    /// Takes the bus's lock, creates and publishes the segment (with the
    /// channels `spec` declares) and binds the control socket. Logs the start.
    ///
    /// # Errors
    /// [`Error::AlreadyServed`] if another daemon holds the lock;
    /// [`Error::Io`] / [`Error::Failed`] if a file cannot be created (for
    /// example `ENOSPC` when `/dev/shm` has no room for the segment). Whatever
    /// was created before the failure is removed.
    pub fn start(spec: Spec, stop: StopHandle) -> Result<Self, Error> {
        let log = Log::new(spec.name(), spec.quiet());
        let paths = spec.paths().clone();
        let g = *spec.geometry();
        let mut cleanup = Cleanup {
            paths: Vec::new(),
            lock: None,
            log: log.clone(),
        };
        cleanup.lock = Some(acquire_lock(spec.name(), &paths)?);
        cleanup.paths.push(paths.lock.clone());
        remove_stale(spec.name(), &paths, &log)?;

        let group = spec.allow_groups().first().copied();
        let (map, seg_fd) = create_segment(&paths.segment, g.total_size, spec.mode(), group)?;
        let seg = Segment::new(map, g)?;
        let epoch = new_epoch();
        let pid = std::process::id();
        // 0 if `/proc` is not our pid namespace's (`unshare --pid` without
        // `--mount-proc`): `/proc/PID` would be another process there.
        let start_time = if crate::process::proc_is_ours() {
            proc_start_time(pid).unwrap_or(0)
        } else {
            0
        };
        layout::init(seg.header(), &g, epoch, pid, start_time);
        log.info(format_args!(
            "starting: segment {} ({} bytes: {} peer slots, {} directory entries, \
             {} arena bytes, mode {:04o}), pid {pid}, epoch {epoch:#018x}",
            paths.segment.display(),
            g.total_size,
            g.peers_count,
            g.dir_count,
            g.arena_len,
            spec.mode(),
        ));
        let bus = Bus::new(seg, spec.clone(), epoch, log.clone())
            .map_err(|e| Error::io("cannot make an eventfd", e))?;
        for c in spec.channels() {
            bus.create_declared(c)?;
        }
        layout::publish(bus.seg.header());
        link_segment(&seg_fd, &paths.segment)?;
        drop(seg_fd);
        // Removed first (before the socket and the lock file).
        cleanup.paths.insert(0, paths.segment.clone());

        let listener = bind_socket(&paths.socket, spec.mode(), group, epoch)?;
        // Removed before the lock file, after the segment.
        cleanup.paths.insert(1, paths.socket.clone());
        log.info(format_args!(
            "ready: {} channels, listening on {}",
            spec.channels().len(),
            paths.socket.display(),
        ));
        Ok(Self {
            bus: Arc::new(bus),
            listener,
            stop,
            cleanup,
            shut_down: false,
        })
    }

    /// Serves clients until the [`StopHandle`] given to [`start`](Self::start)
    /// is used, then shuts down: marks the segment `CLOSING`, wakes every
    /// sleeper on every pipe, removes the segment, socket and lock file, closes
    /// every client connection and waits (briefly) for their threads.
    ///
    /// # Errors
    /// [`Error::Failed`] if serving failed (the files are removed all the same)
    /// or the accept thread could not be started.
    pub fn serve(mut self) -> Result<(), Error> {
        let listener = self
            .listener
            .try_clone()
            .map_err(|e| Error::io("cannot clone the control socket", e))?;
        let bus = Arc::clone(&self.bus);
        let stop = self.stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("shmbusd-accept".into())
            .spawn(move || crate::server::accept_loop(&bus, &listener, &stop))
            .map_err(|e| Error::io("cannot start the accept thread", e))?;

        let failure = self.stop.wait();
        let log = &self.bus.log;
        match &failure {
            None => log.info(format_args!("shutting down")),
            Some(m) => log.warn(format_args!("shutting down after an error: {m}")),
        }
        let woken = self.bus.begin_shutdown();
        self.shut_down = true;
        self.cleanup.run();
        // Wakes the accept thread: `accept` on a listening Unix socket that was
        // shut down for reading fails with EINVAL, and the loop sees the stop.
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Read);
        let _ = acceptor.join();
        self.bus.disconnect_all(Duration::from_secs(2));
        log.info(format_args!(
            "stopped ({woken} channels woken; segment, socket and lock file removed)"
        ));
        match failure {
            None => Ok(()),
            Some(m) => Err(Error::Failed(m)),
        }
    }

    /// A handle that stops this daemon (the one given to [`start`](Self::start)).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// A handle that reads this daemon's status (peers, channels, arena use)
    /// while it serves; the `shmbusd` binary logs it on `SIGHUP`.
    pub fn status_handle(&self) -> crate::StatusHandle {
        crate::StatusHandle::new(Arc::clone(&self.bus))
    }
}

fn open_flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens (creating if needed) and locks the bus's lock file, then writes our
/// pid into it.
///
/// A daemon shutting down unlinks the lock file while it still holds the lock;
/// a daemon that opened the old file just before could then lock an unlinked
/// inode. So after locking we check that the path still names the inode we
/// locked, and start over if not.
fn acquire_lock(bus: &str, paths: &BusPaths) -> Result<OwnedFd, Error> {
    let path = &paths.lock;
    for _ in 0..8 {
        let fd = rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::RDWR | open_flags(),
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(format!("cannot open lock file {}", path.display()), e))?;
        // Another user's file (or not a file) at our lock's path is not ours
        // to lock, write or remove at shutdown.
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::Failed(format!(
                "{} (the lock file) is not a regular file; remove it or pick another bus name",
                path.display()
            )));
        }
        check_ours(path, "the lock file", st.st_uid)?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::AlreadyServed {
                    bus: bus.to_owned(),
                    pid: live_daemon_pid(paths, fd),
                })
            }
            Err(e) => return Err(Error::io(format!("cannot lock {}", path.display()), e)),
        }
        let locked = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.dev() == locked.st_dev && m.ino() == locked.st_ino => {
                let file = File::from(fd);
                let pid = format!("{}\n", std::process::id());
                file.set_len(0)
                    .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                return Ok(file.into());
            }
            // Unlinked or replaced under us: try again with the new file.
            _ => continue,
        }
    }
    Err(Error::Failed(format!(
        "lock file {} keeps changing under us; is another shmbusd starting and stopping?",
        path.display()
    )))
}

/// The pid of the daemon holding the lock: from the segment header if it is a
/// shmbus segment, else from the lock file's contents.
///
/// Never blocks: [`inspect_segment`] opens without blocking, and the lock
/// file is read only if it is a regular file.
fn live_daemon_pid(paths: &BusPaths, lock: OwnedFd) -> Option<u32> {
    if let Ok(Looks::Shmbus { pid: Some(pid), .. }) = inspect_segment(&paths.segment) {
        return Some(pid);
    }
    let st = rustix::fs::fstat(&lock).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut buf = [0u8; 16];
    let n = File::from(lock).read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// What a file at the segment path looks like.
#[derive(Debug)]
enum Looks {
    /// A shmbus segment (our magic), with the pid and start time of the daemon
    /// that made it (if the header got that far).
    Shmbus { pid: Option<u32>, start: u64 },
    /// Empty or zero-filled: not ours (our segments are linked in only
    /// once written).
    Blank,
    /// Something else: not ours to remove.
    Foreign,
}

/// Reads the start of the file at `path` (without mapping it) to tell whether
/// it is a shmbus segment. `pread` copies the bytes in the kernel, so a daemon
/// writing the header concurrently cannot cause a data race here.
///
/// Never blocks on a file we do not control: opened `O_NONBLOCK` (a FIFO
/// would otherwise block `open` until someone writes to it), and anything
/// but a regular file (by `fstat` of what was opened) is `Foreign`, unread.
fn inspect_segment(path: &Path) -> io::Result<Looks> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | open_flags(),
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(Looks::Foreign);
    }
    // Header bytes 0..8: magic; 36..40: daemon_pid; 40..48: daemon_start
    // (pinned by the const asserts in `shmbus::layout`).
    let mut buf = [0u8; 48];
    let n = File::from(fd).read_at(&mut buf, 0)?;
    let word = |r: core::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&buf[r]);
        u64::from_le_bytes(b)
    };
    Ok(match word(0..8) {
        MAGIC if n == buf.len() => Looks::Shmbus {
            pid: u32::try_from(word(36..40)).ok().filter(|&p| p != 0),
            start: word(40..48),
        },
        MAGIC => Looks::Shmbus {
            pid: None,
            start: 0,
        },
        _ if buf[..n].iter().all(|&b| b == 0) => Looks::Blank,
        _ => Looks::Foreign,
    })
}

/// The user name of `uid` from `/etc/passwd`, for messages.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_owned())
    })
}

/// "uid 65534 (nobody)", or "uid 65534".
fn describe_uid(uid: u32) -> String {
    match user_name(uid) {
        Some(n) => format!("uid {uid} ({n})"),
        None => format!("uid {uid}"),
    }
}

/// Refuses `path` unless it belongs to us (our effective uid).
fn check_ours(path: &Path, what: &str, owner: u32) -> Result<(), Error> {
    let me = rustix::process::geteuid().as_raw();
    if owner == me {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "{} ({what}) belongs to {}, not to {} that runs this daemon: not touching another \
         user's file; its owner may remove it, or pick another bus name",
        path.display(),
        describe_uid(owner),
        describe_uid(me)
    )))
}

/// Removes a segment and socket left by a daemon that died. We hold the lock,
/// so no daemon that plays by the rules serves them; still, a file is removed
/// only if it is provably ours and provably dead:
///
/// | file | removed when | otherwise |
/// |---|---|---|
/// | segment | regular file, our uid, our magic, and the daemon its header names is gone | refused, naming the file and its owner |
/// | socket | a socket, our uid, and `connect` is refused (nobody listens) | refused, naming the file and its owner |
///
/// An empty or zero-filled segment is never ours: the daemon creates the
/// segment unnamed (`O_TMPFILE`) and links it into place only once it is
/// `READY` ([`create_segment`], [`link_segment`]).
fn remove_stale(bus: &str, paths: &BusPaths, log: &Log) -> Result<(), Error> {
    let seg = &paths.segment;
    match std::fs::symlink_metadata(seg) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("cannot stat {}", seg.display()), e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(Error::Failed(format!(
                "{} exists and is not a regular file (owner {}); remove it or pick another \
                 bus name",
                seg.display(),
                describe_uid(m.uid())
            )))
        }
        Ok(m) => {
            check_ours(seg, "a file where the segment goes", m.uid())?;
            let looks = inspect_segment(seg)
                .map_err(|e| Error::io(format!("cannot read {}", seg.display()), e))?;
            let by = match looks {
                Looks::Foreign | Looks::Blank => {
                    let what = if matches!(looks, Looks::Blank) {
                        "is empty or zero-filled: not a shmbus segment (a starting shmbusd \
                         never shows one)"
                    } else {
                        "is not a shmbus segment"
                    };
                    return Err(Error::Failed(format!(
                        "{} {what}; owner {}; if no program of yours uses it, remove it, or \
                         pick another bus name",
                        seg.display(),
                        describe_uid(m.uid())
                    )));
                }
                // Belt and braces: the lock says nobody serves this bus, but if
                // the lock file was deleted by hand while its daemon runs, the
                // header still names a live process (pid and start time match).
                Looks::Shmbus {
                    pid: Some(pid),
                    start,
                } if start != 0 && proc_start_time(pid).ok() == Some(start) => {
                    return Err(Error::AlreadyServed {
                        bus: bus.to_owned(),
                        pid: Some(pid),
                    })
                }
                Looks::Shmbus { pid: Some(pid), .. } => format!(" left by shmbusd pid {pid}"),
                Looks::Shmbus { pid: None, .. } => String::new(),
            };
            log.info(format_args!(
                "taking over stale segment {}{by} (its daemon is gone)",
                seg.display()
            ));
            std::fs::remove_file(seg)
                .map_err(|e| Error::io(format!("cannot remove stale {}", seg.display()), e))?;
        }
    }
    let sock = &paths.socket;
    match std::fs::symlink_metadata(sock) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("cannot stat {}", sock.display()), e)),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(Error::Failed(format!(
                "{} exists and is not a socket (owner {}); remove it or pick another bus name",
                sock.display(),
                describe_uid(m.uid())
            )))
        }
        Ok(m) => {
            check_ours(sock, "a socket where the control socket goes", m.uid())?;
            // Dead only if nobody listens: a live listener (a daemon whose
            // lock file was deleted, or another program) keeps its socket.
            match shmbus::name::connect_socket(sock) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Ok(_) => {
                    return Err(Error::Failed(format!(
                        "{} (owner {}) is in use: something is listening on it, although we \
                         hold the bus's lock; stop that process or pick another bus name",
                        sock.display(),
                        describe_uid(m.uid())
                    )))
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot tell whether {} is in use", sock.display()),
                        e,
                    ))
                }
            }
            log.info(format_args!("removing stale socket {}", sock.display()));
            std::fs::remove_file(sock)
                .map_err(|e| Error::io(format!("cannot remove stale {}", sock.display()), e))?;
        }
    }
    Ok(())
}

/// Creates the segment as an unnamed file in `path`'s directory
/// (`O_TMPFILE`), sized, fully allocated and mapped. It gets its name only
/// from [`link_segment`], once it is `READY`: no client and no other daemon
/// ever sees a half-made segment, and a crash before that leaves nothing
/// behind. Returns the mapping and the file.
fn create_segment(
    path: &Path,
    size: u64,
    mode: u32,
    group: Option<u32>,
) -> Result<(MmapRaw, OwnedFd), Error> {
    let shown = path.display();
    let dir = path.parent().unwrap_or(Path::new(shmbus::name::SHM_DIR));
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| {
        Error::io(
            format!(
                "cannot create segment {shown} (O_TMPFILE in {})",
                dir.display()
            ),
            e,
        )
    })?;
    if let Some(gid) = group {
        // Before fchmod: chown may clear set-id bits, and the group bits of
        // the mode are meant for this group.
        rustix::fs::fchown(&fd, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| Error::io(format!("cannot give {shown} to group {gid}"), e))?;
    }
    // fchmod: the mode asked for, whatever the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        .map_err(|e| Error::io(format!("cannot set the mode of {shown}"), e))?;
    rustix::fs::ftruncate(&fd, size)
        .map_err(|e| Error::io(format!("cannot size {shown} to {size} bytes"), e))?;
    // tmpfs allocates pages on first touch; a full /dev/shm would then kill
    // whichever process touched a page with SIGBUS. Allocate everything now.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, size) {
        Ok(()) => {}
        Err(e @ (Errno::NOSPC | Errno::FBIG | Errno::NOMEM)) => {
            return Err(Error::io(
                format!(
                    "no room for a segment of {size} bytes in {} (fallocate failed); free \
                     space there or use a smaller --size",
                    dir.display()
                ),
                e,
            ))
        }
        Err(e) => return Err(Error::io(format!("cannot allocate {shown}"), e)),
    }
    let len = usize::try_from(size)
        .map_err(|_| Error::Failed(format!("segment size {size} does not fit in memory")))?;
    let map = MmapOptions::new()
        .len(len)
        .map_raw(&fd)
        .map_err(|e| Error::io(format!("cannot map {shown}"), e))?;
    Ok((map, fd))
}

/// Gives the unnamed segment `fd` its name `path` (`linkat` of
/// `/proc/self/fd/N`, which needs no privilege, unlike `AT_EMPTY_PATH`).
/// Never replaces a file: if one appeared at `path` since [`remove_stale`],
/// start fails.
fn link_segment(fd: &OwnedFd, path: &Path) -> Result<(), Error> {
    use std::os::fd::AsRawFd as _;
    let me = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        &me,
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(|e| {
        let hint = if e == Errno::EXIST {
            ": a file appeared there while this daemon was starting"
        } else {
            ""
        };
        Error::io(format!("cannot create segment {}{hint}", path.display()), e)
    })
}

/// Binds the control socket under a temporary name, sets its mode, and renames
/// it into place.
///
/// `UnixListener::bind` is `bind` then `listen`: between the two the path
/// exists but refuses connections, and until `chmod` it has the umask's
/// permissions. The rename makes the socket appear at `path` only once it is
/// listening with its final mode, so a client that sees the path can connect.
/// (Changing the process-wide umask instead would race other threads of a
/// process that embeds the daemon.)
fn bind_socket(
    path: &Path,
    mode: u32,
    group: Option<u32>,
    epoch: u64,
) -> Result<UnixListener, Error> {
    let shown = path.display();
    // Short enough for `sun_path` whatever the bus name; unique per start;
    // no bus's file (see `BusPaths`).
    let tmp = shmbus::name::bind_temp_name(std::process::id(), epoch);
    let listener = UnixListener::bind(&tmp)
        .map_err(|e| Error::io(format!("cannot bind control socket {}", tmp.display()), e))?;
    let placed = group
        .map_or(Ok(()), |gid| {
            rustix::fs::chownat(
                rustix::fs::CWD,
                &tmp,
                None,
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::io(format!("cannot give {} to group {gid}", tmp.display()), e))
        })
        .and_then(|()| {
            rustix::fs::chmod(&tmp, Mode::from_raw_mode(mode))
                .map_err(|e| Error::io(format!("cannot set the mode of {}", tmp.display()), e))
        })
        .and_then(|()| {
            // NOREPLACE: a file that appeared at `path` since `remove_stale`
            // is not ours to replace.
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            )
            .map_err(|e| Error::io(format!("cannot move the control socket to {shown}"), e))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// A fresh epoch: `RandomState` is keyed from the OS's random source; the time
/// and pid are mixed in as well. Never 0.
fn new_epoch() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.finish().max(1)
}

/// Start time of process `pid` in clock ticks since boot: field 22 of
/// `/proc/PID/stat`. Together with the pid it identifies a process (a pid
/// alone may be reused).
pub(crate) fn proc_start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

/// Field 22 of a `/proc/PID/stat` line. Field 2, the command name, is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`; the field after it is field 3.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parsing() {
        let line = "123 (a) b) c) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time("1 (x) S 1"), None);
        assert!(proc_start_time(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn epochs_differ() {
        let a = new_epoch();
        let b = new_epoch();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn stop_handle() {
        let s = StopHandle::new();
        assert!(!s.is_stopped());
        let t = s.clone();
        let h = std::thread::spawn(move || t.wait());
        s.fail("boom".into());
        s.stop();
        assert_eq!(h.join().unwrap().as_deref(), Some("boom"));
        assert!(s.is_stopped());
    }
}
