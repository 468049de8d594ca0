//! Where a bus's files are and who may take them over (issue #12): real
//! `shmbusd` processes on unique buses, files made by another uid (the tests
//! run as root and hand files to `nobody`), clients racing a daemon's start,
//! and a huge channel created while other clients come and go.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.
//!
//! The tests of the library alone are in `client/tests/paths.rs`.

use shmbus_test_support as support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rustix::process::Signal;
use shmbus::layout::{self, entry_state, DirEntry, Header};
use shmbus::name::BusPaths;
use shmbus::sync::Ordering;
use shmbus_client::{Bus, End, Error};
use support::{shmbus, shmbus_bg, shmbusd, unique_bus, Files, Proc, WATCHDOG};

#[test]
fn a_non_ascii_bus_name_is_shown_as_written() {
    let o = shmbus("caf\u{e9}", &["ls"]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(o.stderr.contains("'\u{e9}' (U+00E9) at byte 3"), "{o:?}");
}

/// The state of directory entry `name` in the segment at `path`, read as a
/// client would (a fresh read-only mapping each time).
fn entry_state_of(path: &Path, name: &str) -> Option<u32> {
    let f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let map = memmap2::MmapOptions::new()
        .len(usize::try_from(len).ok()?)
        .map_raw_read_only(&f)
        .ok()?;
    let base = map.as_ptr();
    // SAFETY: the mapping is page-aligned and at least a header long (the
    // daemon made it); `Header` holds only atomics, so a shared reference is
    // sound while the daemon writes; it does not outlive `map`.
    let h = unsafe { &*base.cast::<Header>() };
    let g = layout::validate(h, len).ok()?;
    (0..g.dir_count).find_map(|i| {
        let off = g.dir_off + u64::from(i) * 256;
        // SAFETY: `validate` checked that the directory lies inside the
        // mapping, 128-aligned; `DirEntry` holds only atomics.
        let e = unsafe { &*base.add(off as usize).cast::<DirEntry>() };
        let st = e.state.load(Ordering::Acquire);
        (st != entry_state::FREE && layout::read_name(e).as_deref() == Some(name.as_bytes()))
            .then_some(st)
    })
}

#[test]
fn hello_and_crash_recovery_do_not_wait_for_a_huge_channel() {
    // 2^23 slots of 64-byte cells: half a GiB to initialise.
    let name = unique_bus("huge");
    let files = Files(BusPaths::new(&name));
    let mut cmd = Command::new(shmbusd());
    cmd.args(["--name", &name, "--size", "640M"]);
    let mut daemon = Proc::spawn(cmd, &format!("shmbusd --name {name}"));
    let deadline = Instant::now() + WATCHDOG;
    let bus = loop {
        match Bus::connect_to(&name) {
            Ok(b) => break b,
            Err(e) => assert!(
                daemon.running() && Instant::now() < deadline,
                "shmbusd {name} did not come up: {e}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    drop(bus.pipe("p").unwrap());
    let mut holder = shmbus_bg(&name, &["recv", "p"]);
    // Wait until the holder has the receiving end.
    while bus.pipe("p").unwrap().receiver().is_ok() {
        assert!(Instant::now() < deadline, "watchdog: holder never took p");
        assert!(holder.running(), "holder exited");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let creator = shmbus_bg(
        &name,
        &[
            "create",
            "queue",
            "big",
            "--slots",
            "8388608",
            "--slot-size",
            "8",
        ],
    );
    while entry_state_of(&files.0.segment, "big") != Some(entry_state::INITIALIZING) {
        assert_ne!(
            entry_state_of(&files.0.segment, "big"),
            Some(entry_state::LIVE),
            "the creation ended before it could be watched"
        );
        assert!(Instant::now() < deadline, "watchdog: big never appeared");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // While the daemon initialises the queue: a new client says HELLO, and
    // a client killed holding a pipe end is recovered.
    let newcomer = Bus::connect_to(&name).expect("HELLO during the creation");
    holder.signal(Signal::KILL);
    let rx = loop {
        match newcomer.pipe("p").unwrap().receiver() {
            Ok(rx) => break rx,
            Err(Error::Busy {
                end: End::Receiver, ..
            }) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "watchdog: p never recovered");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let state = entry_state_of(&files.0.segment, "big");
    assert_eq!(
        state,
        Some(entry_state::INITIALIZING),
        "HELLO or recovery waited for the queue's creation to finish"
    );
    drop(rx);
    let o = creator.wait(WATCHDOG);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        entry_state_of(&files.0.segment, "big"),
        Some(entry_state::LIVE)
    );
    let q = newcomer.open_queue("big").expect("the new queue opens");
    q.put(b"x").unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), b"x");
    drop((q, newcomer, bus));
    daemon.signal(Signal::TERM);
    let o = daemon.wait(WATCHDOG);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}
