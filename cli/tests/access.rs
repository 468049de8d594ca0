//! Who may use a bus, and when a client's resources are taken back: real
//! `shmbusd` processes, the `shmbus` command run as `nobody` (uid/gid 65534;
//! the tests run as root), SIGSTOP/SIGCONT/SIGKILL on a real sender, and
//! segment files tampered with under a running daemon.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.
//!
//! The tests of the library alone are in `client/tests/access.rs`.

use shmbus_test_support as support;

use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{End, Error};
use support::{eventually, shmbus_cmd, Daemon, Proc, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine, short enough that a
/// hang fails the test instead of the CI run.
const LONG: Duration = Duration::from_secs(30);

/// `nobody`.
const NOBODY: u32 = 65534;

/// Runs `shmbus --bus BUS ARGS...` as uid and gid 65534 (std drops the
/// supplementary groups with `setgroups(0)` when a root parent sets a uid).
fn shmbus_as_nobody(bus: &str, args: &[&str]) -> support::Output {
    let mut cmd = shmbus_cmd(bus, args);
    cmd.uid(NOBODY).gid(NOBODY);
    Proc::spawn(cmd, &format!("shmbus (as nobody) {}", args.join(" "))).wait(WATCHDOG)
}

fn root_only() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to run a client as another uid");
    false
}

#[test]
fn another_uid_is_refused_by_the_daemon_with_a_clear_error() {
    if !root_only() {
        return;
    }
    // 0666: the socket and the segment let anyone in, so the daemon's
    // SO_PEERCRED check is what refuses.
    let d = Daemon::start("uid", &["--mode", "0666"]);
    let o = shmbus_as_nobody(&d.bus, &["send", "p", "hi"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "uid {NOBODY} may not use bus {}: only uid 0 (root) may",
            d.bus
        )) && o.stderr.contains("--allow-uid"),
        "{o:?}"
    );
    // Through the library, the same refusal is `Refused { Denied }`; the
    // pipe was never created.
    let bus = d.connect();
    assert!(bus.channels().is_empty(), "{:?}", bus.channels());
}

#[test]
fn an_allowed_uid_exchanges_messages_with_root() {
    if !root_only() {
        return;
    }
    let d = Daemon::start("allow", &["--mode", "0666", "--allow-uid", "65534"]);
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    let o = shmbus_as_nobody(&d.bus, &["send", "p", "from nobody"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"from nobody");
    // And the other way round.
    let mut tx = bus.pipe("q").unwrap().sender().unwrap();
    tx.send(b"from root").unwrap();
    let o = shmbus_as_nobody(&d.bus, &["recv", "q", "-n", "1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(o.stdout_str(), "from root\n");
}

#[test]
fn the_default_mode_keeps_other_uids_out_at_open() {
    if !root_only() {
        return;
    }
    let d = Daemon::start("private", &[]);
    let o = shmbus_as_nobody(&d.bus, &["send", "p", "hi"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "cannot open {}: Permission denied",
            d.paths.segment.display()
        )),
        "{o:?}"
    );
}

#[test]
fn a_stopped_sender_keeps_its_end_goes_on_after_sigcont_and_is_recovered_once_killed() {
    let d = Daemon::start("stop", &[]);
    let bus = d.connect();
    let pipe = bus.pipe("p").unwrap();
    let mut rx = pipe.receiver().unwrap();
    let mut sender = support::shmbus_bg(&d.bus, &["send", "p"]);
    sender.write_stdin(b"one\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"one");

    sender.signal(Signal::STOP);
    // Stopped is not dead: for a while, a second sender is refused as the
    // end is still attached. (No time limit asserted: the pause only gives a
    // wrong recovery the chance to happen.)
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match pipe.sender() {
            Err(Error::Busy {
                end: End::Sender,
                pid,
                ..
            }) => assert_eq!(pid, Some(sender.pid())),
            other => panic!("a stopped sender lost its end: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    sender.signal(Signal::CONT);
    sender.write_stdin(b"two\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"two");

    sender.signal(Signal::STOP);
    sender.signal(Signal::KILL);
    let o = sender.wait(WATCHDOG);
    assert!(!o.status.success(), "{o:?}");
    // Recovered: the receiver sees the end of the stream, and the end can
    // be taken by a new sender.
    match rx.recv_timeout(LONG) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let mut tx = eventually("sender end free again", || pipe.sender().ok());
    tx.send(b"three").unwrap();
}

/// Runs `shmbus --bus BUS ARGS...` as uid 65534 with primary group `gid` and
/// supplementary groups `groups`, through util-linux's `setpriv`.
fn shmbus_with_groups(bus: &str, gid: u32, groups: &[u32], args: &[&str]) -> support::Output {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg("--reuid")
        .arg(NOBODY.to_string())
        .arg("--regid")
        .arg(gid.to_string());
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg("--groups").arg(list.join(","));
    }
    cmd.arg(env!("CARGO_BIN_EXE_shmbus"))
        .arg("--bus")
        .arg(bus)
        .args(args)
        .env_remove("SHMBUS_BUS");
    Proc::spawn(
        cmd,
        &format!("setpriv (gid {gid}, groups {groups:?}) shmbus"),
    )
    .wait(WATCHDOG)
}

#[test]
fn an_allowed_group_lets_in_its_members_by_primary_or_supplementary_group() {
    if !root_only() {
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    const GROUP: u32 = 4243;
    let d = Daemon::start("group", &["--mode", "0666", "--allow-group", "4243"]);
    // The segment and the socket belong to the allowed group.
    for f in [&d.paths.segment, &d.paths.socket] {
        let m = std::fs::symlink_metadata(f).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&m),
            GROUP,
            "{}",
            f.display()
        );
    }
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();

    let o = shmbus_with_groups(&d.bus, GROUP, &[], &["send", "p", "primary"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"primary");

    let o = shmbus_with_groups(&d.bus, NOBODY, &[7, GROUP], &["send", "p", "supplementary"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"supplementary");

    let o = shmbus_with_groups(&d.bus, NOBODY, &[7], &["send", "p", "outsider"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("uid 65534 may not use bus")
            && o.stderr.contains("members of group 4243"),
        "{o:?}"
    );
}
