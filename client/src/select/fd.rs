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
//! Limits (unfinished): the driver records no wait in the peer slot, so the
//! daemon's death does not make the fd readable (its shutdown does: it
//! rings every doorbell); a request beyond [`WAITV_MAX`] doorbells in all
//! falls back to slices of [`FALLBACK_SLICE`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustix::event::{eventfd, EventfdFlags};
use shmbus::futex::{Doorbell, FALLBACK_SLICE, WAITV_MAX};
use shmbus::sync::{heavy_barrier, FutexWord, Ordering};

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
struct Request {
    /// The doorbells and the bell value seen when announcing.
    bells: Vec<(*const Doorbell, u32)>,
    /// Keep the mappings that hold the doorbells alive.
    _buses: Vec<Arc<Inner>>,
    efd: Arc<OwnedFd>,
    /// Gone once the [`SelectFd`] was dropped.
    owner: Weak<()>,
}

// SAFETY: the raw pointers point into mappings kept alive by `_buses`
// (`Arc<Inner>` owns the mapping), and doorbells are atomics, usable from
// any thread.
unsafe impl Send for Request {}

impl Request {
    fn bells(&self) -> impl Iterator<Item = (&Doorbell, u32)> + '_ {
        // SAFETY: see `unsafe impl Send for Request`: the mapping lives as
        // long as `self`.
        self.bells.iter().map(|&(b, v)| (unsafe { &*b }, v))
    }

    /// Withdraws the announcements.
    fn withdraw(&self) {
        for (b, _) in self.bells() {
            // Relaxed: a stale count only costs a notifier a spare wake.
            b.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn rang(&self) -> bool {
        // Relaxed: a change is all we look for; the fd's reader re-checks
        // readiness, which orders its own loads.
        self.bells()
            .any(|(b, v)| b.bell.load(Ordering::Relaxed) != v)
    }
}

/// The process's one driver thread and what it sleeps on.
struct Driver {
    armed: Mutex<Vec<Request>>,
    /// Bumped and woken when a request is added or removed.
    kick: FutexWord,
}

/// The driver, once started.
static DRIVER: OnceLock<&'static Driver> = OnceLock::new();

fn driver() -> &'static Driver {
    DRIVER.get_or_init(|| {
        let d: &'static Driver = Box::leak(Box::new(Driver {
            armed: Mutex::new(Vec::new()),
            kick: FutexWord::new(0),
        }));
        std::thread::Builder::new()
            .name("shmbus-select".into())
            .stack_size(64 * 1024)
            .spawn(move || d.run())
            .expect("spawning the shmbus select driver thread");
        d
    })
}

impl Driver {
    fn run(&self) {
        loop {
            // Acquire: pairs with the Release bump in `kick`.
            let k = self.kick.load(Ordering::Acquire);
            let words: Vec<(*const FutexWord, u32)> = {
                let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
                // Only this thread removes requests (and so drops the
                // mappings they hold), between its sleeps.
                armed.retain(|r| {
                    let dropped = r.owner.strong_count() == 0;
                    if dropped || r.rang() {
                        r.withdraw();
                        if !dropped {
                            // Any nonzero write makes it readable; a full
                            // counter (EAGAIN) is readable already.
                            let _ = rustix::io::write(&*r.efd, &1u64.to_ne_bytes());
                        }
                        false
                    } else {
                        true
                    }
                });
                armed
                    .iter()
                    .flat_map(|r| r.bells().map(|(b, v)| (&b.bell as *const FutexWord, v)))
                    .collect()
            };
            let mut all: Vec<(&FutexWord, u32)> = vec![(&self.kick, k)];
            // SAFETY: the requests, and so the mappings their doorbells lie
            // in, stay in `armed` until this thread removes them above.
            all.extend(words.iter().map(|&(w, v)| (unsafe { &*w }, v)));
            if all.len() > WAITV_MAX || !shmbus::sync::wait_any(&all, None) {
                let until = std::time::Instant::now().checked_add(FALLBACK_SLICE);
                self.kick.wait(k, until);
            }
        }
    }

    fn kick(&self) {
        // Release: publishes the change of `armed` (also under the mutex).
        self.kick.fetch_add(1, Ordering::Release);
        self.kick.wake_all();
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
        let mut bells = Vec::with_capacity(select.events.len());
        let mut buses: Vec<Arc<Inner>> = Vec::new();
        for e in &select.events {
            let b = e.0.doorbell();
            // Acquire: as in `wait_any`.
            bells.push((b as *const Doorbell, b.bell.load(Ordering::Acquire)));
            // Relaxed: ordered before the re-check by the barrier below.
            b.waiters.fetch_add(1, Ordering::Relaxed);
            if !buses.iter().any(|x| Arc::ptr_eq(x, e.0.bus())) {
                buses.push(Arc::clone(e.0.bus()));
            }
        }
        let req = Request {
            bells,
            _buses: buses,
            efd: Arc::clone(&self.efd),
            owner: Arc::downgrade(&self.alive),
        };
        // Heavy barrier: as in `wait_any` (pairs with every notifier's light
        // barrier).
        heavy_barrier();
        let now = select.ready();
        if !now.is_empty() {
            req.withdraw();
            return Ok(now);
        }
        let d = driver();
        d.armed.lock().unwrap_or_else(|e| e.into_inner()).push(req);
        d.kick();
        Ok(now)
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
