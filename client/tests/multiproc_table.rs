//! Values and arrays between real processes through a real daemon and a real
//! `/dev/shm` segment: no torn reads while another process writes as fast as
//! it can, exact totals from concurrent `fetch_add`/`update`, `wait_changed`
//! across processes, and a writer killed while it holds the lock.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::Bus;
use support::{Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Elements per array in the torn-read test (Python's measured case).
const LEN: usize = 16;
/// Reader processes in the torn-read test.
const READERS: usize = 2;
/// Reads per reader: 2 × 5 M = 10 M reads in all.
const READS: u64 = 5_000_000;
/// Incrementing processes, and operations of each kind per process.
const ADDERS: usize = 4;
const OPS: u64 = 100_000;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "array_writer" => array_writer(&args[0]),
        "array_reader" => array_reader(&args[0]),
        "adder" => adder(&args[0]),
        "hold_lock" => hold_lock(&args[0]),
        "watcher" => watcher(&args[0]),
        "flat_out_writer" => flat_out_writer(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Stores `[k; LEN]` for k = 1, 2, ... until the `stop` value is set.
fn array_writer(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let a = b.array::<u64>("arr", LEN).unwrap();
    let stop = b.value::<u32>("stop").unwrap();
    let mut k = 0u64;
    println!("writing");
    loop {
        k += 1;
        a.write(&[k; LEN]).unwrap();
        if k.is_multiple_of(256) && stop.load() != 0 {
            break;
        }
    }
    println!("wrote {k}");
}

/// Reads the array `READS` times, counting torn reads and changes seen.
fn array_reader(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let a = b.open_array::<u64>("arr").unwrap();
    let mut buf = [0u64; LEN];
    let (mut torn, mut changes, mut last) = (0u64, 0u64, 0u64);
    for _ in 0..READS {
        a.read_into(&mut buf).unwrap();
        if buf.iter().any(|&x| x != buf[0]) {
            torn += 1;
        }
        if buf[0] != last {
            changes += 1;
            last = buf[0];
        }
    }
    println!("reads {READS} torn {torn} changes {changes}");
}

#[test]
fn ten_million_reads_while_another_process_writes_are_never_torn() {
    let d = Daemon::start_role(
        DISPATCH,
        "torn",
        &["--array", "arr:Q:16", "--value", "stop:I"],
    );
    let b = Bus::connect_to(&d.bus).unwrap();
    let stop = b.open_value::<u32>("stop").unwrap();
    let mut w = Proc::spawn_role(DISPATCH, "array_writer", &[&d.bus]);
    w.expect_line("writing");
    let readers: Vec<Proc> = (0..READERS)
        .map(|_| Proc::spawn_role(DISPATCH, "array_reader", &[&d.bus]))
        .collect();
    let outs: Vec<String> = readers.into_iter().map(Proc::expect_success).collect();
    stop.store(1).unwrap();
    let wout = w.expect_success();
    let mut total_changes = 0;
    for out in &outs {
        let line = out.lines().find(|l| l.starts_with("reads ")).expect(out);
        let f: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
        assert_eq!(f[0], READS, "{line}");
        assert_eq!(f[1], 0, "torn reads: {line}");
        total_changes += f[2];
        println!("{line}");
    }
    println!("{}", wout.trim());
    // The reads really overlapped the writes.
    assert!(total_changes > 1, "readers never saw the writer: {outs:?}");
}

/// `OPS` `fetch_add(1)`s and `OPS` `update(+1)`s on `counter`, interleaved.
fn adder(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let c = b.value::<u64>("counter").unwrap();
    let f = b.value::<f64>("fcounter").unwrap();
    for i in 0..OPS {
        c.fetch_add(1).unwrap();
        c.update(|v| v + 1).unwrap();
        if i % 16 == 0 {
            f.update(|v| v + 1.0).unwrap();
        }
    }
    println!("done");
}

#[test]
fn four_processes_fetch_add_and_update_exactly() {
    let d = Daemon::start_role(DISPATCH, "adders", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let c = b.value::<u64>("counter").unwrap();
    let f = b.value::<f64>("fcounter").unwrap();
    let procs: Vec<Proc> = (0..ADDERS)
        .map(|_| Proc::spawn_role(DISPATCH, "adder", &[&d.bus]))
        .collect();
    for p in procs {
        p.expect_success();
    }
    assert_eq!(c.load(), ADDERS as u64 * OPS * 2);
    assert_eq!(c.version(), ADDERS as u64 * OPS * 2);
    assert_eq!(f.load(), (ADDERS as u64 * OPS.div_ceil(16)) as f64);
}

/// Takes the writer lock of `v` inside `update` and never lets go.
fn hold_lock(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let v = b.value::<i64>("v").unwrap();
    v.update(|x| {
        println!("holding");
        std::thread::sleep(Duration::from_secs(600));
        x + 1000
    })
    .unwrap();
}

#[test]
fn writer_killed_while_holding_the_lock_is_recovered() {
    let d = Daemon::start_role(DISPATCH, "kill-writer", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let v = b.value::<i64>("v").unwrap();
    v.store(7).unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "hold_lock", &[&d.bus]);
    p.expect_line("holding");
    // Readers are not blocked by the stuck writer.
    assert_eq!(v.load(), 7);
    let writer = std::thread::spawn({
        let v = v.clone();
        move || {
            let t = Instant::now();
            v.update(|x| x + 1).unwrap();
            t.elapsed()
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    p.signal(Signal::KILL);
    let waited = writer.join().unwrap();
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    // The dead writer's copy was never published: 7 + 1, not 1007 + 1.
    assert_eq!(v.load(), 8);
    assert_eq!(v.version(), 2);
    drop(p);
}

/// Waits for `n` to change from version 0 and prints what it saw.
fn watcher(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let n = b.value::<i32>("n").unwrap();
    println!("watching");
    let g = n.wait_changed_timeout(0, Duration::from_secs(60)).unwrap();
    println!("changed to {} at version {g}", n.load());
}

#[test]
fn wait_changed_in_another_process_is_woken_by_a_store() {
    let d = Daemon::start_role(DISPATCH, "watch", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let n = b.value::<i32>("n").unwrap();
    let mut w = Proc::spawn_role(DISPATCH, "watcher", &[&d.bus]);
    w.expect_line("watching");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !support::sleeps_in_futex(w.pid()) {
        assert!(Instant::now() < deadline, "watcher never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    n.store(-3).unwrap();
    let out = w.expect_success();
    assert!(out.contains("changed to -3 at version 1"), "{out}");
}

/// Stores `[k; LEN]` into `killme` as fast as it can, forever.
fn flat_out_writer(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let a = b.array::<u64>("killme", LEN).unwrap();
    println!("writing");
    for k in 1.. {
        a.write(&[k; LEN]).unwrap();
    }
}

#[test]
fn writers_killed_at_random_moments_never_leave_a_torn_or_stuck_array() {
    let d = Daemon::start_role(DISPATCH, "kill-random", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let a = b.array::<u64>("killme", LEN).unwrap();
    let mut rng = support::Rng::new(0x5eed);
    let mut buf = [0u64; LEN];
    let mut died_holding = 0u32;
    for round in 0..8u64 {
        let mut w = Proc::spawn_role(DISPATCH, "flat_out_writer", &[&d.bus]);
        w.expect_line("writing");
        std::thread::sleep(Duration::from_millis(5 + rng.below_eq(40)));
        w.signal(Signal::KILL);
        drop(w);
        let held = b.channels().into_iter().any(|c| {
            c.name == "killme"
                && matches!(c.details, shmbus_client::ChannelDetails::Table(t) if t.writer.is_some())
        });
        died_holding += u32::from(held);
        // Never torn, whether the writer died inside a write or not.
        a.read_into(&mut buf).unwrap();
        assert!(
            buf.iter().all(|&x| x == buf[0]),
            "round {round}: torn {buf:?}"
        );
        // The lock is free again (at once, or once the daemon has seen the
        // death): this write completes and is what readers see next.
        let mark = u64::MAX - round;
        a.write(&[mark; LEN]).unwrap();
        a.read_into(&mut buf).unwrap();
        assert_eq!(buf, [mark; LEN], "round {round}");
    }
    // Informational: how often the daemon had not yet cleared the dead
    // writer's lock when we looked (recovery is usually quicker than that).
    println!("killed writer still held the lock in {died_holding} of 8 rounds");
}
