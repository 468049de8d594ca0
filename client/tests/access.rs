//! Who may use a bus, and when a client's resources are taken back: real
//! `shmbusd` processes, the `shmbus` command run as `nobody` (uid/gid 65534;
//! the tests run as root), SIGSTOP/SIGCONT/SIGKILL on a real sender, and
//! segment files tampered with under a running daemon.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/access.rs`.

use shmbus_test_support as support;

use std::os::unix::fs::PermissionsExt as _;

use shmbus_client::{Bus, Error};
use support::Daemon;

/// `nobody`.
const NOBODY: u32 = 65534;

fn root_only() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to run a client as another uid");
    false
}

#[test]
fn dropping_the_last_handle_says_bye_and_frees_the_slot_at_once() {
    // One peer slot: a second client gets in only once the first is gone.
    // This process keeps running, so without BYE the daemon would keep the
    // slot for it (its pidfd never says "exited").
    let d = Daemon::start("bye", &["--max-peers", "1"]);
    for i in 0..3 {
        let bus = d.connect();
        let mut tx = bus.pipe("p").unwrap().sender().unwrap();
        tx.send(format!("{i}").as_bytes()).unwrap();
        drop(tx);
        drop(bus);
    }
    // A Bus that is still held keeps the slot: the next one is refused.
    let held = d.connect();
    match Bus::connect_to(&d.bus) {
        Err(Error::Refused { message, .. }) => {
            assert!(message.contains("--max-peers"), "{message}")
        }
        other => panic!("expected Refused (peer table full), got {other:?}"),
    }
    drop(held);
    d.connect();
}

#[test]
fn a_segment_with_the_wrong_owner_or_mode_or_a_symlink_is_refused() {
    if !root_only() {
        return;
    }
    let d = Daemon::start("tamper", &[]);
    let seg = &d.paths.segment;
    let chown = |uid: u32| {
        std::os::unix::fs::chown(seg, Some(uid), Some(uid)).expect("chown the segment");
    };
    let chmod = |mode: u32| {
        std::fs::set_permissions(seg, std::fs::Permissions::from_mode(mode))
            .expect("chmod the segment");
    };

    chown(NOBODY);
    match Bus::connect_to(&d.bus) {
        Err(e @ Error::WrongOwner { owner, daemon, .. }) => {
            assert_eq!((owner, daemon), (NOBODY, 0));
            assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        }
        other => panic!("expected WrongOwner, got {other:?}"),
    }
    chown(0);

    // The daemon's mode is 0600 (its socket's); anything more is refused.
    for mode in [0o606, 0o640, 0o700, 0o4600] {
        chmod(mode);
        match Bus::connect_to(&d.bus) {
            Err(e @ Error::UnsafeMode { .. }) => {
                let Error::UnsafeMode {
                    mode: m, allowed, ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((m, allowed), (mode, 0o600));
            }
            other => panic!("mode {mode:o}: expected UnsafeMode, got {other:?}"),
        }
    }
    chmod(0o600);

    let moved = seg.with_extension("moved");
    std::fs::rename(seg, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, seg).unwrap();
    let r = Bus::connect_to(&d.bus);
    std::fs::remove_file(seg).unwrap();
    std::fs::rename(&moved, seg).unwrap();
    match r {
        Err(Error::NotShmbus { reason, .. }) => {
            assert!(reason.contains("symbolic link"), "{reason}")
        }
        other => panic!("expected NotShmbus (symbolic link), got {other:?}"),
    }

    // Put back as the daemon made it, the segment is accepted again.
    d.connect();
}
