//! Where a bus's files are and who may take them over (issue #12): real
//! `shmbusd` processes on unique buses, files made by another uid (the tests
//! run as root and hand files to `nobody`), clients racing a daemon's start,
//! and a huge channel created while other clients come and go.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/paths.rs`.

use shmbus_test_support as support;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rustix::process::Signal;
use shmbus::name::BusPaths;
use shmbus_client::{Bus, Error};
use support::{shmbusd, unique_bus, Daemon, Files, Output, Proc, WATCHDOG};

/// `nobody`.
const NOBODY: u32 = 65534;

fn root_only() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to make files of another uid");
    false
}

/// Runs `shmbusd --name BUS` where it is expected to refuse to start, and
/// returns its output. If it serves the bus instead (it took over a file it
/// should have left alone), it is killed and the test fails.
fn start_expecting_refusal(bus: &str) -> Output {
    let mut cmd = Command::new(shmbusd());
    cmd.args(["--name", bus, "--size", "1M"]);
    let mut p = Proc::spawn(cmd, &format!("shmbusd --name {bus}"));
    let deadline = Instant::now() + WATCHDOG;
    while p.running() {
        if Bus::connect_to(bus).is_ok() {
            drop(p);
            panic!("shmbusd took over a file that is not its own and serves {bus}");
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: shmbusd {bus} neither served nor exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    p.wait(WATCHDOG)
}

/// FNV-1a, as the old path scheme used to shorten long bus names: the socket
/// of a long name was `.shmbus-<hash in hex>.sock`.
fn fnv1a(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn channel_names(bus: &Bus) -> Vec<String> {
    bus.channels().into_iter().map(|c| c.name).collect()
}

#[test]
fn a_long_name_and_the_name_of_its_old_hash_are_two_buses() {
    // Long enough that its socket path does not fit `sun_path`.
    let long = format!("{}-{}", unique_bus("long"), "x".repeat(120));
    let short = format!("{:016x}", fnv1a(&long));
    let dl = Daemon::start_named(long.clone(), &["--pipe", "only-long"]);
    let ds = Daemon::start_named(short.clone(), &["--pipe", "only-short"]);
    // Each client reaches its own daemon.
    let bl = Bus::connect_to(&long).expect("connect to the long-named bus");
    assert_eq!(channel_names(&bl), ["only-long"]);
    let bs = Bus::connect_to(&short).expect("connect to the short bus");
    assert_eq!(channel_names(&bs), ["only-short"]);
    // No file is shared.
    for (d, p) in [(&dl, &ds.paths), (&ds, &dl.paths)] {
        for (mine, theirs) in [
            (&d.paths.segment, &p.segment),
            (&d.paths.socket, &p.socket),
            (&d.paths.lock, &p.lock),
        ] {
            assert_ne!(mine, theirs);
            assert!(mine.exists(), "{} missing", mine.display());
        }
    }
    // The long bus works end to end, through its long socket path.
    let mut tx = bl.pipe("only-long").unwrap().sender().unwrap();
    let mut rx = bl.pipe("only-long").unwrap().receiver().unwrap();
    tx.send(b"hi").unwrap();
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), b"hi");
    // Stopping one leaves the other reachable.
    drop((bs, ds));
    let again = Bus::connect_to(&long).expect("long bus still reachable");
    assert_eq!(channel_names(&again), ["only-long"]);
    assert!(!again.is_closed());
}

#[test]
fn another_users_empty_or_zero_segment_is_left_alone() {
    if !root_only() {
        return;
    }
    for (tag, bytes) in [("empty", vec![]), ("zero", vec![0u8; 4096])] {
        let bus = unique_bus(tag);
        let files = Files(BusPaths::new(&bus));
        let seg = &files.0.segment;
        std::fs::write(seg, &bytes).unwrap();
        std::os::unix::fs::chown(seg, Some(NOBODY), Some(NOBODY)).unwrap();
        let o = start_expecting_refusal(&bus);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(
            o.stderr.contains(&seg.display().to_string()) && o.stderr.contains("uid 65534"),
            "{o:?}"
        );
        let m = std::fs::symlink_metadata(seg).expect("the file is still there");
        assert_eq!((m.uid(), m.len()), (NOBODY, bytes.len() as u64));
    }
}

#[test]
fn a_zero_segment_of_our_own_is_not_taken_for_a_bus() {
    let bus = unique_bus("ownzero");
    let files = Files(BusPaths::new(&bus));
    std::fs::write(&files.0.segment, vec![0u8; 4096]).unwrap();
    let o = start_expecting_refusal(&bus);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("empty or zero-filled"), "{o:?}");
    assert_eq!(std::fs::read(&files.0.segment).unwrap(), vec![0u8; 4096]);
}

/// A socket at the bus's socket path, listened on by this test.
fn squat_socket(paths: &BusPaths, owner: Option<u32>) -> UnixListener {
    let l = UnixListener::bind(&paths.socket).expect("bind the squatting socket");
    if let Some(uid) = owner {
        std::os::unix::fs::chown(&paths.socket, Some(uid), Some(uid)).unwrap();
    }
    l
}

fn assert_still_listening(l: &UnixListener, path: &Path) {
    // (The test buses' names are short: no need for `name::connect_socket`.)
    let _c = std::os::unix::net::UnixStream::connect(path).expect("the socket still works");
    l.accept().expect("accept");
}

#[test]
fn a_live_socket_of_another_user_is_left_alone() {
    if !root_only() {
        return;
    }
    let bus = unique_bus("sockuid");
    let files = Files(BusPaths::new(&bus));
    let l = squat_socket(&files.0, Some(NOBODY));
    let o = start_expecting_refusal(&bus);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains(&files.0.socket.display().to_string()) && o.stderr.contains("uid 65534"),
        "{o:?}"
    );
    assert_still_listening(&l, &files.0.socket);
    // Not listened on any more, but still not ours.
    drop(l);
    let o = start_expecting_refusal(&bus);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("uid 65534"), "{o:?}");
    assert!(files.0.socket.exists());
}

#[test]
fn a_live_socket_of_our_own_is_left_alone_but_a_dead_one_is_taken_over() {
    let bus = unique_bus("socklive");
    let files = Files(BusPaths::new(&bus));
    let l = squat_socket(&files.0, None);
    let o = start_expecting_refusal(&bus);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("is in use"), "{o:?}");
    assert_still_listening(&l, &files.0.socket);
    // Nobody listens any more: a stale socket of ours, taken over.
    drop(l);
    let d = Daemon::start_named(bus, &[]);
    drop(d.connect());
    drop(files);
}

#[test]
fn another_users_lock_file_is_left_alone() {
    if !root_only() {
        return;
    }
    let bus = unique_bus("lockuid");
    let files = Files(BusPaths::new(&bus));
    std::fs::write(&files.0.lock, b"").unwrap();
    std::os::unix::fs::chown(&files.0.lock, Some(NOBODY), Some(NOBODY)).unwrap();
    let o = start_expecting_refusal(&bus);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains(&files.0.lock.display().to_string()) && o.stderr.contains("uid 65534"),
        "{o:?}"
    );
    assert_eq!(std::fs::metadata(&files.0.lock).unwrap().uid(), NOBODY);
}

#[test]
fn a_client_racing_a_daemon_start_is_never_told_the_segment_is_foreign() {
    for round in 0..8 {
        let bus = unique_bus(&format!("race{round}"));
        let _files = Files(BusPaths::new(&bus));
        let mut cmd = Command::new(shmbusd());
        // A large segment: its fallocate leaves a window to race into.
        cmd.args(["--name", &bus, "--size", "256M"]);
        let mut p = Proc::spawn(cmd, &format!("shmbusd --name {bus}"));
        let deadline = Instant::now() + WATCHDOG;
        loop {
            match Bus::connect_to(&bus) {
                Ok(_) => break,
                Err(Error::DaemonNotRunning { .. }) => {}
                Err(e) => panic!("round {round}: a client racing the start was told: {e}"),
            }
            assert!(p.running(), "shmbusd {bus} exited");
            assert!(Instant::now() < deadline, "watchdog: {bus} never served");
        }
        p.signal(Signal::TERM);
        let o = p.wait(WATCHDOG);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
}

#[test]
fn a_segment_that_never_gets_a_header_is_reported_after_a_wait() {
    let bus = unique_bus("noheader");
    let files = Files(BusPaths::new(&bus));
    std::fs::write(&files.0.segment, vec![0u8; 4096]).unwrap();
    let e = Bus::connect_to(&bus).unwrap_err();
    assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("no shmbusd finished it within 2 s"), "{m}");
}
