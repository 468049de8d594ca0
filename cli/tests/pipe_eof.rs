//! End of file on a pipe follows a Unix FIFO, between real processes through a
//! real `shmbusd`: a receiver that attaches while no sender is attached reads
//! what an earlier sender left, then waits for a sender instead of seeing end
//! of file; it sees end of file when a sender attached since then has gone
//! and everything is read.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::Error;
use support::{shmbus, shmbus_bg, sleeps_in_futex, Daemon, Proc, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine, short enough that a
/// hang fails the test instead of the CI run.
const LONG: Duration = Duration::from_secs(30);
/// How long a receiver is given to (wrongly) report end of file.
const SHORT: Duration = Duration::from_millis(300);

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

/// Waits until `p` sleeps on a futex (a receiver blocked in `recv`), failing
/// if it exits first.
fn until_asleep(p: &mut Proc, what: &str) {
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(p.pid()) {
        assert!(p.running(), "{what} exited instead of waiting");
        assert!(Instant::now() < deadline, "{what} never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn receiver_attached_after_the_sender_left_waits_for_the_next_sender() {
    let d = Daemon::start("late-rx", &[]);
    // An earlier sender, in its own process, sends one frame and exits.
    let o = shmbus(&d.bus, &["send", "p", "old"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    // What it left comes first.
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"old");
    // Then no end of file: a sender may still come.
    match rx.recv_timeout(SHORT) {
        Err(Error::Timeout) => {}
        other => panic!("expected to wait for a sender (Timeout), got {other:?}"),
    }
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));

    // A new sender process attaches (stdin lines), sends, and stays.
    let mut tx = shmbus_bg(&d.bus, &["send", "p"]);
    tx.write_stdin(b"new\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"new");
    // Still attached: nothing to read, and not end of file.
    match rx.recv_timeout(SHORT) {
        Err(Error::Timeout) => {}
        other => panic!("expected Timeout while the sender is attached, got {other:?}"),
    }
    tx.write_stdin(b"last\n");
    tx.close_stdin();
    let o = tx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    // It has gone: its last frame, then end of file, and it stays so.
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"last");
    assert!(matches!(rx.recv_timeout(LONG), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[test]
fn receiver_attached_after_the_sender_left_sees_end_of_file_when_the_next_is_killed() {
    let d = Daemon::start("late-kill", &[]);
    let o = shmbus(&d.bus, &["send", "p", "old"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"old");
    let mut tx = shmbus_bg(&d.bus, &["send", "p"]);
    tx.write_stdin(b"new\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"new");
    // Killed: the daemon's recovery releases its end, which counts as gone.
    tx.signal(Signal::KILL);
    match rx.recv_timeout(LONG) {
        Err(Error::Disconnected) => {}
        other => panic!("expected end of file after the sender was killed, got {other:?}"),
    }
}

#[test]
fn cli_recv_after_the_sender_left_waits_for_a_sender() {
    let d = Daemon::start("late-cli", &[]);
    let o = shmbus(&d.bus, &["send", "p", "a", "b"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    // The frames left in the pipe, then a wait for a sender: the timeout.
    let o = shmbus(&d.bus, &["recv", "p", "-n", "1"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(0), "a\n"),
        "{o:?}"
    );
    let o = shmbus(&d.bus, &["recv", "p", "--timeout", "0.3"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(124), "b\n"),
        "{o:?}"
    );
    assert!(
        o.stderr.starts_with("shmbus: no frame on pipe p for 300ms"),
        "{o:?}"
    );

    // Without a timeout it sleeps until a sender comes, and ends (exit 0)
    // when that sender has gone.
    let mut rx = shmbus_bg(&d.bus, &["recv", "p"]);
    until_asleep(&mut rx, "shmbus recv p");
    let o = shmbus(&d.bus, &["send", "p", "c", "d"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = rx.wait(WATCHDOG);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(0), "c\nd\n"),
        "{o:?}"
    );
    assert!(o.stderr.is_empty(), "{o:?}");
}
