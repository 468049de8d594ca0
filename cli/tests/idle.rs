//! An idle bus is silent: neither a blocked client nor the daemon wakes up
//! periodically, and a blocked client still learns of the daemon's death.
//!
//! A blocked call sleeps on a doorbell with no time slice; the daemon's death
//! wakes it through the liveness watcher (`client/src/liveness.rs`, loom
//! model `tests/loom_liveness.rs`). Here:
//!
//! - threads blocked in `recv`, queue `get` and `wait_changed` return
//!   `BusClosed` when the daemon is SIGKILLed, long before their own
//!   timeouts (which a lost wake-up would run into);
//! - blocked clients and the daemon (with slots kept for live clients that
//!   broke the protocol) are watched while idle, counting voluntary context
//!   switches of every thread from `/proc/PID/task/*/status`: a count of
//!   wake-ups, not a time. (A blocked pipe or queue call still looks for a
//!   scribbled owner word every 30 s, `PHANTOM_RECHECK` in
//!   `client/src/bus.rs`, which a window may catch once.) Before this was fixed, the same clients woke 5
//!   (`recv`) and 10 (`watch`) times a second, and the daemon 1 + 5 per kept
//!   slot times a second;
//! - a uid's slots kept for running processes that broke the protocol are
//!   limited to [`KEPT_PER_UID`], and freed when those processes exit.
//!
//! This file holds the `shmbus` command's blocked clients; the library's, the
//! daemon's death and the kept slots are in `client/tests/idle.rs`. The
//! wake-up counting is `shmbus_test_support::idle`.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::idle::assert_silent;
use support::{shmbus_bg, sleeps_in_futex, Daemon, WATCHDOG};

fn wait_asleep(what: &str, pid: u32) {
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(pid) {
        assert!(Instant::now() < deadline, "{what} never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blocked_clients_do_not_wake_while_the_bus_is_idle() {
    let d = Daemon::start("idle", &["--value", "v:u32"]);
    let clients = [
        (
            "shmbus recv --create p",
            shmbus_bg(&d.bus, &["recv", "--create", "p"]),
        ),
        ("shmbus watch v", shmbus_bg(&d.bus, &["watch", "v"])),
    ];
    for (what, p) in &clients {
        wait_asleep(what, p.pid());
    }
    let mut watched: Vec<(&str, u32)> = clients.iter().map(|(w, p)| (*w, p.pid())).collect();
    watched.push(("shmbusd", d.pid()));
    assert_silent(&watched);
    for (_, mut p) in clients {
        assert!(p.running(), "a blocked client exited");
        p.signal(Signal::KILL);
        p.wait(WATCHDOG);
    }
}
