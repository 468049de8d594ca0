//! An idle bus is silent: a client blocked on it makes no periodic wake-ups.
//!
//! A blocked call sleeps on a doorbell with no time slice; the daemon's death
//! wakes it through the liveness watcher (`client/src/liveness.rs`, loom
//! model `tests/loom_liveness.rs`), which `e2e.rs`
//! (`blocked_clients_see_bus_closed_*`) checks. Here the daemon lives, and
//! each blocked client's voluntary context switches (every thread, from
//! `/proc/PID/task/*/status`) are counted over a few seconds of idleness.
//! That is a count, not a time: before the change, the same clients woke 5
//! (`recv`) and 10 (`watch`) times a second, i.e. 15 and 30 in this window.

mod support;

use std::time::{Duration, Instant};

use support::{shmbus_bg, sleeps_in_futex, Daemon, Proc, WATCHDOG};

/// How long the clients are watched while idle.
const WINDOW: Duration = Duration::from_secs(3);

/// Most voluntary context switches allowed per client in [`WINDOW`]:
/// generous (a stray wake-up, a page fault on a freshly mapped page), far
/// below one a second.
const MAX_SWITCHES: u64 = 3;

/// Voluntary context switches of every thread of `pid` so far.
fn voluntary_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the client runs");
    tasks
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn wait_asleep(what: &str, p: &Proc) {
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(p.pid()) {
        assert!(Instant::now() < deadline, "{what} never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blocked_clients_do_not_wake_while_the_bus_is_idle() {
    let d = Daemon::start("idle", &["--value", "v:u32"]);
    let clients = [
        ("shmbus recv p", shmbus_bg(&d.bus, &["recv", "p"])),
        ("shmbus watch v", shmbus_bg(&d.bus, &["watch", "v"])),
    ];
    for (what, p) in &clients {
        wait_asleep(what, p);
    }
    // Let the start-up settle (the liveness thread reaching its poll, the
    // spin before the first sleep).
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<u64> = clients
        .iter()
        .map(|(_, p)| voluntary_switches(p.pid()))
        .collect();
    std::thread::sleep(WINDOW);
    for ((what, p), b) in clients.iter().zip(before) {
        let n = voluntary_switches(p.pid()) - b;
        eprintln!("{what}: {n} voluntary context switches in {WINDOW:?}");
        assert!(
            n <= MAX_SWITCHES,
            "{what} woke {n} times in {WINDOW:?} on an idle bus"
        );
    }
    for (_, mut p) in clients {
        assert!(p.running(), "a blocked client exited");
        p.signal(rustix::process::Signal::KILL);
        p.wait(WATCHDOG);
    }
}
