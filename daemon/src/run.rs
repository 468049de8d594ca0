//! Starting, serving and stopping a bus ([`Daemon`]): the order in which
//! the lock, the segment and the socket are made (`files`, `segment`), and
//! the shutdown sequence ([`StopHandle`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shmbus::layout;

use crate::admission::accept_loop;
use crate::config::Spec;
use crate::error::Error;
use crate::events::Log;
use crate::files::{acquire_lock, bind_socket, remove_stale};
use crate::process::{proc_is_ours, proc_start_time};
use crate::segment::{create_segment, link_segment, Segment};
use crate::server::Bus;
use crate::status::StatusHandle;
use crate::stop::StopHandle;

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
        let start_time = if proc_is_ours() {
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
    /// sleeper on every channel, removes the segment, socket and lock file, closes
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
            .spawn(move || accept_loop(&bus, &listener, &stop))
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
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle::new(Arc::clone(&self.bus))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_differ() {
        let a = new_epoch();
        let b = new_epoch();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }
}
