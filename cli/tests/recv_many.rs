//! `shmbus recv NAME NAME...`: one process waits on several pipes and a
//! queue at once and prefixes each frame with its channel's name; it sleeps
//! while nothing comes, and ends when every pipe has ended.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use support::{shmbus, shmbus_bg, sleeps_in_futex, Daemon, WATCHDOG};

#[test]
fn frames_from_several_channels_come_prefixed_with_their_names() {
    let d = Daemon::start("recv-many", &[]);
    for (kind, name) in [("pipe", "a"), ("pipe", "b"), ("queue", "q")] {
        let o = shmbus(&d.bus, &["create", kind, name]);
        assert!(o.status.success(), "{o:?}");
    }
    let rx = shmbus_bg(&d.bus, &["recv", "a", "b", "q", "-n", "3"]);
    // It sleeps (one futex sleep over all three) before anything is sent.
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(rx.pid()) {
        assert!(Instant::now() < deadline, "recv never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    for (name, msg) in [("b", "one"), ("q", "two"), ("a", "three")] {
        let o = shmbus(&d.bus, &["send", name, msg]);
        assert!(o.status.success(), "{o:?}");
    }
    let out = rx.expect_success();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["a: three", "b: one", "q: two"]);
}

#[test]
fn it_ends_when_every_pipe_has_ended() {
    let d = Daemon::start("recv-many-eof", &[]);
    for name in ["x", "y"] {
        let o = shmbus(&d.bus, &["create", "pipe", name]);
        assert!(o.status.success(), "{o:?}");
    }
    let rx = shmbus_bg(&d.bus, &["recv", "x", "y"]);
    // Attached and asleep before the senders come (a receiver that attaches
    // after a sender left waits for the next, as a FIFO reader).
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(rx.pid()) {
        assert!(Instant::now() < deadline, "recv never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Each sender attaches, sends and leaves: an end of each pipe.
    for (name, msg) in [("x", "1"), ("y", "2")] {
        let o = shmbus(&d.bus, &["send", name, msg]);
        assert!(o.status.success(), "{o:?}");
    }
    let out = rx.expect_success();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["x: 1", "y: 2"]);
}
