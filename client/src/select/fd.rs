//! A file descriptor that becomes readable when a [`Select`]'s events may be
//! ready, for event loops (epoll, mio, libuv, asyncio): [`SelectFd`].
//!
//! # How
//! [`SelectFd::arm`] runs the select's announce → re-check half itself:
//! it announces on every doorbell (as [`shmbus::futex::wait_any`] does),
//! then checks readiness without a system call. If something is ready it
//! withdraws and returns it: the caller handles it and never sleeps, so a
//! busy loop makes no system call on this path but the heavy barrier. If
//! nothing is ready it hands the announced doorbells to the process's one
//! driver thread (started on first use, at most one per process), which
//! sleeps in one `futex_waitv` over the doorbells of every armed fd plus its
//! own wake-up word. When a doorbell of an armed request rings, the driver
//! withdraws that request's announcements and writes the fd's eventfd.
//!
//! Cost of a wake-up through the fd, beyond the select's: one futex wake of
//! the driver per `arm` that has to sleep, the driver's own wake-up, an
//! eventfd write, and the event loop's wake-up from epoll.
//!
//! The protocol and its loom model (`tests/loom_selectfd.rs`) are in
//! [`shmbus::futex::driver`]. The daemon's death makes an armed fd readable:
//! the liveness watcher kicks the driver after setting its flag, and the
//! driver signals every request on a closed bus (so does the daemon's
//! shutdown, which rings every doorbell). Should the watcher itself fail
//! (its `poll` errs), that wake-up is missing. Beyond
//! [`WAITV_MAX`](shmbus::futex::WAITV_MAX) doorbells in all, the driver
//! falls back to waking every
//! [`FALLBACK_SLICE`](shmbus::futex::FALLBACK_SLICE).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};

use rustix::event::{eventfd, EventfdFlags};
use shmbus::futex::driver::{arm, Driver, Request};
use shmbus::futex::Doorbell;

use super::Select;
use crate::bus::Inner;
use crate::error::Result;

/// A readable-when-ready file descriptor for a [`Select`]; see the module
/// docs.
///
/// # Examples
/// ```no_run
/// use std::os::fd::AsRawFd;
/// use shmbus_client::{Bus, Select, SelectFd};
///
/// let bus = Bus::connect()?;
/// let mut rx = bus.pipe("commands")?.receiver()?;
/// let fd = SelectFd::new()?;
/// // Register fd.as_raw_fd() for reading with epoll / mio / asyncio once.
/// loop {
///     let ready = fd.arm(&Select::new().with(rx.readable()))?;
///     if ready.is_empty() {
///         // Wait in the event loop until fd is readable, then:
///         fd.clear();
///         continue;
///     }
///     println!("{:?}", rx.try_recv()?);
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Debug)]
pub struct SelectFd {
    efd: Arc<OwnedFd>,
    /// Dropped with the fd: tells the driver its requests are void.
    alive: Arc<()>,
}

/// Doorbells announced on, handed to the driver.
struct Armed {
    /// The doorbells and the bell value seen when announcing.
    bells: Vec<(*const Doorbell, u32)>,
    /// Keep the mappings that hold the doorbells alive.
    buses: Vec<Arc<Inner>>,
    efd: Arc<OwnedFd>,
    /// Gone once the [`SelectFd`] was dropped.
    owner: Weak<()>,
}

// SAFETY: the raw pointers point into mappings kept alive by `buses`
// (`Arc<Inner>` owns the mapping), and doorbells are atomics, usable from
// any thread.
unsafe impl Send for Armed {}

impl Request for Armed {
    fn bells(&self) -> Vec<(&Doorbell, u32)> {
        // SAFETY: see `unsafe impl Send for Armed`: the mappings live as
        // long as `self`.
        self.bells
            .iter()
            .map(|&(b, v)| (unsafe { &*b }, v))
            .collect()
    }

    fn void(&self) -> bool {
        self.owner.strong_count() == 0
    }

    fn interrupted(&self) -> bool {
        self.buses.iter().any(|b| b.is_closed())
    }

    fn signal(&self) {
        // Any nonzero write makes it readable; a full counter (EAGAIN) is
        // readable already.
        let _ = rustix::io::write(&*self.efd, &1u64.to_ne_bytes());
    }
}

/// The process's one driver, once started.
static DRIVER: OnceLock<&'static Driver<Armed>> = OnceLock::new();

fn driver() -> &'static Driver<Armed> {
    DRIVER.get_or_init(|| {
        crate::wait::on_hang_up(kick_driver);
        let d: &'static Driver<Armed> = Box::leak(Box::new(Driver::new()));
        std::thread::Builder::new()
            .name("shmbus-select".into())
            .stack_size(64 * 1024)
            .spawn(move || d.runner().run(&|| false))
            .expect("spawning the shmbus select driver thread");
        d
    })
}

/// Makes the driver, if started, sweep its requests again: the liveness
/// watcher's hang-up action, after it set the flag that
/// [`Request::interrupted`] reads, so that armed fds turn readable.
fn kick_driver() {
    if let Some(d) = DRIVER.get() {
        d.kick();
    }
}

impl SelectFd {
    /// A new fd (an eventfd, non-blocking, close-on-exec). The driver thread
    /// starts with the first [`arm`](Self::arm) that has to sleep.
    ///
    /// # Errors
    /// `Io` if the eventfd cannot be made.
    pub fn new() -> Result<Self> {
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(|e| {
            crate::Error::Io {
                doing: "making the select's eventfd",
                source: io::Error::from(e),
            }
        })?;
        Ok(Self {
            efd: Arc::new(efd),
            alive: Arc::new(()),
        })
    }

    /// Returns the events of `select` ready now (handle them; the fd is not
    /// armed), or, if none is, an empty list after arming the fd: it becomes
    /// readable once one of the events' channels rings its doorbell. Call
    /// [`clear`](Self::clear) when it was readable, then `arm` again.
    ///
    /// # Errors
    /// `BusClosed` if a channel's daemon is gone.
    pub fn arm(&self, select: &Select<'_>) -> Result<Vec<usize>> {
        for e in &select.events {
            e.0.bus().check_open()?;
        }
        let now = select.ready();
        if !now.is_empty() {
            return Ok(now);
        }
        let bells: Vec<&Doorbell> = select.events.iter().map(|e| e.0.doorbell()).collect();
        let Some(seen) = arm(&bells, &mut || !select.ready().is_empty()) else {
            return Ok(select.ready());
        };
        let mut buses: Vec<Arc<Inner>> = Vec::new();
        for e in &select.events {
            if !buses.iter().any(|x| Arc::ptr_eq(x, e.0.bus())) {
                buses.push(Arc::clone(e.0.bus()));
            }
        }
        driver().submit(Armed {
            bells: bells
                .iter()
                .zip(seen)
                .map(|(&b, v)| (b as *const Doorbell, v))
                .collect(),
            buses,
            efd: Arc::clone(&self.efd),
            owner: Arc::downgrade(&self.alive),
        });
        Ok(Vec::new())
    }

    /// Empties the eventfd after it was readable.
    pub fn clear(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&*self.efd, &mut b);
    }
}

impl Drop for SelectFd {
    fn drop(&mut self) {
        // Our requests' `owner` is gone once `alive` drops (after this
        // body); wake the driver so it withdraws them. A kick before the
        // drop of `alive` is still seen: the driver re-reads `armed` after
        // every wake-up, and the bump of `kick` after this one ends its
        // next sleep at once.
        if let Some(d) = DRIVER.get() {
            let alive = std::mem::replace(&mut self.alive, Arc::new(()));
            drop(alive);
            d.kick();
        }
    }
}

impl AsFd for SelectFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

impl AsRawFd for SelectFd {
    fn as_raw_fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }
}
