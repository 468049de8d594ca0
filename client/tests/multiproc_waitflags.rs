//! Waiting flags (per-peer wait records) with real processes, a real daemon
//! and a real `/dev/shm` segment: a process SIGKILLed while asleep in the
//! kernel leaves a sleeper count in a doorbell, and the daemon's recovery
//! takes it back, so notifiers stop paying a `FUTEX_WAKE` per notify
//! (DESIGN.md §5 "clear its waiting flags").
//!
//! The test reads the doorbells' `waiters` and the peer slots' `waits` by
//! mapping the segment itself.
#![cfg(not(loom))]

use shmbus_test_support as support;

use core::mem::offset_of;
use std::fs::OpenOptions;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use rustix::process::Signal;
use shmbus::futex::Doorbell;
use shmbus::layout::{self, entry_state, peer_state, DirEntry, Geometry, Header, PeerSlot};
use shmbus::queue::QueueCtl;
use shmbus::seqlock::SeqlockCtl;
use shmbus::sync::Ordering;
use shmbus_client::Bus;
use support::{Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// How long the test waits for something another process does.
const PATIENCE: Duration = Duration::from_secs(30);

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "getter" => getter(&args[0]),
        "holder" => holder(&args[0]),
        "locker" => locker(&args[0]),
        "watcher" => watcher(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Blocks in `get` on the empty queue `q` until killed.
fn getter(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let q = b.open_queue("q").unwrap();
    println!("getting");
    let item = q.get();
    panic!("the queue was meant to stay empty, got {item:?}");
}

/// Holds the writer lock of `v` until killed.
fn holder(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let v = b.value::<u64>("v").unwrap();
    v.update(|x| {
        println!("holding");
        std::thread::sleep(Duration::from_secs(600));
        x + 1
    })
    .unwrap();
}

/// Blocks waiting for the writer lock of `v` until killed.
fn locker(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let v = b.value::<u64>("v").unwrap();
    println!("locking");
    v.store(5).unwrap();
    panic!("the lock was meant to stay held");
}

/// Blocks in `wait_changed` on `v` until killed.
fn watcher(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let v = b.value::<u64>("v").unwrap();
    println!("watching");
    let g = v.wait_changed_timeout(v.version(), PATIENCE * 20);
    panic!("the value was meant to stay unchanged: {g:?}");
}

/// The test's own read-write mapping of a bus's segment.
struct Segment {
    map: MmapRaw,
}

impl Segment {
    fn open(d: &Daemon) -> Self {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&d.paths.segment)
            .unwrap();
        let len = f.metadata().unwrap().len() as usize;
        Self {
            map: MmapOptions::new().len(len).map_raw(&f).unwrap(),
        }
    }

    /// The `T` at `off`, after checking bounds and alignment. `T` must be
    /// one of the segment's structs (atomics only, any bits valid).
    fn at<T>(&self, off: u64) -> &T {
        let size = core::mem::size_of::<T>() as u64;
        assert!(
            off + size <= self.map.len() as u64,
            "offset {off} out of bounds"
        );
        assert_eq!(off % core::mem::align_of::<T>() as u64, 0, "misaligned");
        // SAFETY:
        // - `off .. off + size_of::<T>()` lies inside the mapping (asserted);
        // - the address is aligned for `T` (the mapping is page-aligned and
        //   `off` is a multiple of `T`'s alignment, asserted);
        // - callers use only the segment's structs, which hold only atomics,
        //   so any contents are valid and concurrent writes are atomic;
        // - the reference borrows `self`, which owns the mapping.
        unsafe { &*self.map.as_ptr().add(off as usize).cast::<T>() }
    }

    fn geometry(&self) -> Geometry {
        layout::validate(self.at::<Header>(0), self.map.len() as u64).unwrap()
    }

    fn peer(&self, slot: u32) -> &PeerSlot {
        let g = self.geometry();
        assert!(slot < g.peers_count);
        self.at(g.peers_off + u64::from(slot) * 128)
    }

    /// The body offset of live channel `name`.
    fn channel(&self, name: &str) -> u64 {
        let g = self.geometry();
        (0..g.dir_count)
            .map(|i| self.at::<DirEntry>(g.dir_off + u64::from(i) * 256))
            .find(|e| {
                // Acquire: pairs with the daemon's Release store of LIVE.
                e.state.load(Ordering::Acquire) == entry_state::LIVE
                    && layout::read_name(e).as_deref() == Some(name.as_bytes())
            })
            .map(|e| e.offset.load(Ordering::Relaxed))
            .unwrap_or_else(|| panic!("no channel {name}"))
    }

    /// The peer slot held by process `pid`.
    fn slot_of(&self, pid: u32) -> u32 {
        let g = self.geometry();
        (0..g.peers_count)
            .find(|&i| {
                let p = self.peer(i);
                // Acquire: pairs with the daemon's Release store of LIVE.
                p.state.load(Ordering::Acquire) == peer_state::LIVE
                    && p.pid.load(Ordering::Relaxed) == pid
            })
            .unwrap_or_else(|| panic!("pid {pid} holds no peer slot"))
    }
}

/// `waiters` of the doorbell at `off`.
fn waiters(seg: &Segment, off: u64) -> u32 {
    // Relaxed: a snapshot; the test polls.
    seg.at::<Doorbell>(off).waiters.load(Ordering::Relaxed)
}

/// Polls `cond` until it holds, failing with `what` after [`PATIENCE`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `role` until it sleeps in the kernel on the doorbell at `bell`,
/// checks that it is counted there and recorded in its peer slot, kills it
/// with SIGKILL and waits for the daemon to free its slot. Returns the
/// doorbell's count after the recovery.
fn kill_asleep(d: &Daemon, seg: &Segment, role: &str, line: &str, bell: u64) -> u32 {
    let before = waiters(seg, bell);
    let mut p = Proc::spawn_role(DISPATCH, role, &[&d.bus]);
    p.expect_line(line);
    let pid = p.pid();
    let slot = seg.slot_of(pid);
    let peer = seg.peer(slot);
    // Relaxed, here and below: snapshots; the test polls.
    let generation = peer.generation.load(Ordering::Relaxed);
    // Its sleeps are cut into slices (the closed-bus check runs between
    // them), so catch it asleep in the kernel, counted and recorded.
    let recorded = || peer.waits.iter().any(|w| w.load(Ordering::Relaxed) == bell);
    eventually(&format!("{role} asleep, counted and recorded"), || {
        support::sleeps_in_futex(pid) && waiters(seg, bell) == before + 1 && recorded()
    });
    p.signal(Signal::KILL);
    let st = p.wait(support::WATCHDOG).status;
    assert!(!st.success(), "{role} was killed: {st}");
    // The daemon recovers the slot when the dead client's connection ends,
    // then frees it with a new generation.
    eventually(&format!("recovery of {role}'s slot {slot}"), || {
        // Acquire: pairs with the daemon's Release store of FREE.
        peer.state.load(Ordering::Acquire) == peer_state::FREE
            && peer.generation.load(Ordering::Relaxed) != generation
    });
    assert!(
        peer.waits.iter().all(|w| w.load(Ordering::Relaxed) == 0),
        "{role}'s wait records were not cleared"
    );
    waiters(seg, bell)
}

/// A consumer killed asleep in `get` leaves no sleeper count in the
/// queue's `not_empty` doorbell once the daemon has recovered it.
#[test]
fn consumer_killed_asleep_in_get_leaves_no_sleeper_count() {
    let d = Daemon::start_role(DISPATCH, "wf-queue", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let q = b.queue_builder("q").slots(4).slot_size(64).open().unwrap();
    let seg = Segment::open(&d);
    let not_empty = seg.channel("q") + offset_of!(QueueCtl, not_empty) as u64;
    assert_eq!(waiters(&seg, not_empty), 0);

    let left = kill_asleep(&d, &seg, "getter", "getting", not_empty);
    assert_eq!(left, 0, "the dead consumer's count is still in not_empty");

    // The queue still works, and a put finds nobody to wake.
    q.put(b"after").unwrap();
    assert_eq!(q.get().unwrap(), b"after");
    assert_eq!(waiters(&seg, not_empty), 0);
}

/// A writer killed asleep waiting for a value's writer lock, and a reader
/// killed asleep in `wait_changed`, leave no sleeper count in the value's
/// `unlocked` and `changed` doorbells once the daemon has recovered them.
#[test]
fn value_waiters_killed_asleep_leave_no_sleeper_count() {
    let d = Daemon::start_role(DISPATCH, "wf-value", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let v = b.value::<u64>("v").unwrap();
    let seg = Segment::open(&d);
    let body = seg.channel("v");
    let unlocked = body + offset_of!(SeqlockCtl, unlocked) as u64;
    let changed = body + offset_of!(SeqlockCtl, changed) as u64;

    let left = kill_asleep(&d, &seg, "watcher", "watching", changed);
    assert_eq!(left, 0, "the dead reader's count is still in changed");

    let mut h = Proc::spawn_role(DISPATCH, "holder", &[&d.bus]);
    h.expect_line("holding");
    let left = kill_asleep(&d, &seg, "locker", "locking", unlocked);
    assert_eq!(left, 0, "the dead writer's count is still in unlocked");

    // Killing the holder frees the lock; the value still works.
    h.signal(Signal::KILL);
    drop(h);
    v.store(9).unwrap();
    assert_eq!(v.load(), 9);
    assert_eq!(waiters(&seg, unlocked), 0);
    assert_eq!(waiters(&seg, changed), 0);
}
