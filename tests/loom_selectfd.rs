//! loom model of the pollable select's driver ([`shmbus::futex::driver`],
//! used by the client's `SelectFd`): the caller announcing and re-checking
//! ([`arm`]), handing the doorbells to the driver thread, the driver's
//! sweep-then-sleep loop on the doorbells and its own wake-up word, and the
//! eventfd write, with notifiers racing the caller's arm and the driver's
//! re-arm. The eventfd is a counter on a futex word that the event loop
//! sleeps on, as it would in `epoll_wait`.
//!
//! The futex stand-in ignores deadlines and wakes every word's sleepers from
//! one bucket, so a lost wake-up (of the driver or of the event loop) is a
//! loom deadlock.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_selectfd`
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmbus::futex::driver::{arm, Driver, Request};
use shmbus::futex::Doorbell;
use shmbus::sync::FutexWord;

/// One channel reduced to its condition (a flag) and its doorbell.
#[derive(Default)]
struct Chan {
    ready: AtomicU32,
    bell: Doorbell,
}

impl Chan {
    /// The notifier: publish, then notify.
    fn publish(&self) {
        // Release: pairs with the Acquire load in `is_ready`.
        self.ready.store(1, Ordering::Release);
        self.bell.notify();
    }

    fn is_ready(&self) -> bool {
        // Acquire: pairs with the Release store in `publish`.
        self.ready.load(Ordering::Acquire) == 1
    }

    /// Consumes the condition (a load and a store, not a `swap`: see the NB
    /// in `loom_select.rs`; the event loop is the only consumer).
    fn take(&self) -> bool {
        let r = self.is_ready();
        if r {
            // Relaxed: nobody else clears it.
            self.ready.store(0, Ordering::Relaxed);
        }
        r
    }
}

/// What the client's `SelectFd` holds: the channels, the eventfd, the
/// owner's liveness and the daemon's.
#[derive(Default)]
struct Fd {
    chans: [Chan; 2],
    /// The eventfd: a counter the event loop sleeps on.
    efd: FutexWord,
    /// Set when the `SelectFd` is dropped.
    dropped: AtomicU32,
    /// The liveness watcher's flag.
    gone: AtomicU32,
    /// Set by the stopper request (see `Req::stopper`).
    stop: AtomicU32,
}

impl Fd {
    fn any_ready(&self) -> bool {
        self.chans.iter().any(Chan::is_ready)
    }

    fn bells(&self) -> [&Doorbell; 2] {
        [&self.chans[0].bell, &self.chans[1].bell]
    }

    /// The event loop's sleep: until the eventfd's count passes `consumed`.
    fn wait_readable(&self, consumed: u32) -> u32 {
        loop {
            // Acquire: pairs with the Release bump in `signal`.
            let v = self.efd.load(Ordering::Acquire);
            if v != consumed {
                return v;
            }
            self.efd.wait(v, None);
        }
    }
}

struct Req {
    fd: Arc<Fd>,
    seen: Vec<u32>,
    /// The model's way to stop the driver thread (the real one never
    /// stops): a request that is due at once and sets `Fd::stop`.
    stopper: bool,
}

impl Request for Req {
    fn bells(&self) -> Vec<(&Doorbell, u32)> {
        if self.stopper {
            return Vec::new();
        }
        self.fd
            .bells()
            .into_iter()
            .zip(self.seen.iter().copied())
            .collect()
    }

    fn void(&self) -> bool {
        // Acquire: pairs with the Release store of the drop, before a kick.
        self.fd.dropped.load(Ordering::Acquire) != 0
    }

    fn interrupted(&self) -> bool {
        if self.stopper {
            return true;
        }
        // Relaxed: as the client's `daemon_gone`; ordered by the kick.
        self.fd.gone.load(Ordering::Relaxed) != 0
    }

    fn signal(&self) {
        if self.stopper {
            // Relaxed: read by the driver thread itself.
            self.fd.stop.store(1, Ordering::Relaxed);
            return;
        }
        // Release: the event loop re-checks readiness after it sees this.
        self.fd.efd.fetch_add(1, Ordering::Release);
        self.fd.efd.wake_all();
    }
}

/// The `SelectFd::arm` of the client: ready now, or armed (submitted).
fn arm_fd(fd: &Arc<Fd>, driver: &Driver<Req>) -> bool {
    if fd.any_ready() {
        return true;
    }
    match arm(&fd.bells(), &mut || fd.any_ready()) {
        None => true,
        Some(seen) => {
            driver.submit(Req {
                fd: fd.clone(),
                seen,
                stopper: false,
            });
            false
        }
    }
}

/// Starts the driver thread; the returned closure stops and joins it,
/// after the requests submitted before were swept.
fn start_driver() -> (Arc<Driver<Req>>, impl FnOnce()) {
    let driver = Arc::new(Driver::new());
    let fd = Arc::new(Fd::default());
    let (d, f) = (driver.clone(), fd.clone());
    let t = thread::spawn(move || {
        // Relaxed: set by this thread (in `Req::signal`).
        d.runner().run(&|| f.stop.load(Ordering::Relaxed) != 0);
    });
    let d = driver.clone();
    (driver, move || {
        d.submit(Req {
            fd,
            seen: Vec::new(),
            stopper: true,
        });
        t.join().unwrap();
    })
}

fn check_counts(fd: &Fd) {
    for c in &fd.chans {
        // Relaxed: every thread was joined.
        assert_eq!(c.bell.waiters.load(Ordering::Relaxed), 0);
    }
}

/// An event loop that arms, sleeps on the eventfd and re-arms until it has
/// seen both channels, with a notifier publishing on one, then the other, racing its arms and the
/// driver's sweeps and re-arms: both publishes reach it.
#[test]
fn notifies_racing_arm_and_the_drivers_rearm_are_seen() {
    loom::model(|| {
        let fd = Arc::new(Fd::default());
        let (driver, stop) = start_driver();
        let f = fd.clone();
        let t = thread::spawn(move || {
            f.chans[0].publish();
            f.chans[1].publish();
        });
        let mut seen = [false; 2];
        let mut consumed = 0;
        while !(seen[0] && seen[1]) {
            if !arm_fd(&fd, &driver) {
                consumed = fd.wait_readable(consumed);
            }
            for (i, c) in fd.chans.iter().enumerate() {
                if c.take() {
                    assert!(!seen[i], "a publish was seen twice");
                    seen[i] = true;
                }
            }
        }
        t.join().unwrap();
        stop();
        check_counts(&fd);
    });
}

/// The fd dropped while armed: the driver withdraws the request without
/// signalling, and the counts come back to zero, whatever a notifier does.
#[test]
fn a_dropped_fd_is_withdrawn() {
    loom::model(|| {
        let fd = Arc::new(Fd::default());
        let (driver, stop) = start_driver();
        let f = fd.clone();
        let t = thread::spawn(move || f.chans[1].publish());
        if !arm_fd(&fd, &driver) {
            // Release: pairs with the Acquire load in `Req::void`.
            fd.dropped.store(1, Ordering::Release);
            driver.kick();
        }
        t.join().unwrap();
        stop();
        check_counts(&fd);
    });
}

/// The daemon's death while armed: the liveness watcher sets its flag and
/// kicks the driver, which makes the fd readable though no doorbell rang.
#[test]
fn the_daemons_death_makes_the_fd_readable() {
    loom::model(|| {
        let fd = Arc::new(Fd::default());
        let (driver, stop) = start_driver();
        let (f, d) = (fd.clone(), driver.clone());
        let watcher = thread::spawn(move || {
            // Relaxed, as the client's watcher: the kick publishes it.
            f.gone.store(1, Ordering::Relaxed);
            d.kick();
        });
        assert!(!arm_fd(&fd, &driver), "nothing is published");
        fd.wait_readable(0);
        watcher.join().unwrap();
        stop();
        check_counts(&fd);
    });
}
