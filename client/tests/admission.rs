//! A daemon out of file descriptors says so and recovers (issue #12): real
//! `shmbusd` run under `prlimit`, real clients. The flood of connections that
//! never finish `HELLO` is driven by `cli/tests/admission.rs`.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.

use shmbus_test_support as support;

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use shmbus::name::BusPaths;
use support::{within, Daemon, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(30);

/// Issue #12 item 5: a daemon out of file descriptors says so in its log (and
/// does not pass it off as "too many connections"), keeps serving, and
/// serves clients again once descriptors are free.
#[test]
fn a_daemon_out_of_file_descriptors_logs_it_and_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    // A hard limit of 40 (the daemon raises its soft limit to the hard one):
    // about a dozen connections waiting for HELLO use it up.
    let mut d = Daemon::start_wrapped(
        support::unique_bus("emfile"),
        &["prlimit", "--nofile=40:40"],
        &[],
    );
    let socket = BusPaths::new(&d.bus).socket;
    let idle: Vec<UnixStream> = (0..60)
        .filter_map(|_| {
            let s = UnixStream::connect(&socket).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .collect();
    // The daemon meets EMFILE on these (at accept or taking a pidfd); give
    // it a moment to try them all, then free its descriptors.
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    let bus = within(WATCHDOG, "connect after EMFILE", {
        let name = d.bus.clone();
        move || {
            let deadline = std::time::Instant::now() + LONG;
            loop {
                match shmbus_client::Bus::connect_to(&name) {
                    Ok(b) => return b,
                    Err(e) => {
                        assert!(std::time::Instant::now() < deadline, "never served: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    });
    let pipe = bus.pipe("p").unwrap();
    let mut tx = pipe.sender().unwrap();
    let mut rx = pipe.receiver().unwrap();
    tx.send(b"after").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"after");
    drop((tx, rx, pipe, bus));
    d.signal(rustix::process::Signal::TERM);
    let out = d.wait();
    assert!(
        out.stderr.contains("Too many open files") || out.stderr.contains("os error 24"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("too many connections"),
        "{}",
        out.stderr
    );
}
