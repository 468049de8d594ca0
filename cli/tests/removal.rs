//! Removing channels (`Bus::remove`, `shmbus rm`) against a real `shmbusd`
//! and real processes: `unlink` semantics (the name goes at once, holders
//! keep working, the space is reused once the last holder is gone, dead
//! holders included), and the cases of issue #10 (a typo, a pipe where a
//! queue was meant, a queue's leftovers making `join()` hang).
//!
//! The tests of the library alone are in `client/tests/removal.rs`.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{Bus, ChannelInfo, Error, Kind};
use support::{eventually, shmbus, shmbus_bg, sleeps_in_futex, within, Daemon, Proc, WATCHDOG};

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

/// The rows of `bus.channels()` called `name`.
fn rows(bus: &Bus, name: &str) -> Vec<ChannelInfo> {
    bus.channels()
        .into_iter()
        .filter(|c| c.name == name)
        .collect()
}

/// Waits (with the watchdog) until process `p` sleeps in a futex wait.
fn wait_asleep(p: &mut Proc, what: &str) {
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(p.pid()) {
        assert!(p.running(), "{what} exited early");
        assert!(Instant::now() < deadline, "watchdog: {what} never slept");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remove_while_in_use_keeps_holders_working_and_frees_the_name() {
    let d = Daemon::start("rm-use", &[]);
    let bus = d.connect();
    let old = bus.pipe("p").unwrap();
    let mut tx = old.sender().unwrap();
    // Another process receives: it has the pipe open across the removal.
    let rx = shmbus_bg(&d.bus, &["recv", "p", "-n", "6"]);
    // The removal must find it open there: wait for its OPEN.
    eventually("shmbus recv p opens p", || {
        (rows(&bus, "p").first()?.holders == 2).then_some(())
    });
    for i in 0..3 {
        tx.send(format!("before-{i}").as_bytes()).unwrap();
    }
    let o = shmbus(&d.bus, &["rm", "p"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert!(o.stderr.contains("still have it open"), "{o:?}");

    // The name is gone: opening finds nothing, and `ls` shows the old one as
    // removed, with its holders (this test and the receiver).
    assert!(matches!(bus.open_pipe("p"), Err(Error::NotFound { .. })));
    let r = rows(&bus, "p");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].removed && r[0].holders == 2, "{r:?}");
    let ls = shmbus(&d.bus, &["ls"]).stdout_str();
    assert!(ls.contains("pipe (removed, 2 open)"), "{ls}");

    // A new channel of that name is independent of the old one.
    let new = bus.pipe_with_capacity("p", 4096).unwrap();
    let (mut ntx, mut nrx) = (new.sender().unwrap(), new.receiver().unwrap());
    ntx.send(b"new").unwrap();
    assert_eq!(nrx.recv().unwrap(), b"new");
    // The old sender and receiver keep exchanging.
    for i in 3..6 {
        tx.send(format!("before-{i}").as_bytes()).unwrap();
    }
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let want: Vec<String> = (0..6).map(|i| format!("before-{i}")).collect();
    assert_eq!(o.stdout_str().lines().collect::<Vec<_>>(), want, "{o:?}");
    assert!(nrx.try_recv().is_err(), "the new pipe got old frames");

    // Once the last holder drops it, the removed pipe is gone for good; the
    // new one stays.
    drop(tx);
    drop(old);
    let r = eventually("removed pipe freed", || {
        let r = rows(&bus, "p");
        (r.len() == 1).then_some(r)
    });
    assert!(!r[0].removed, "{r:?}");
    assert!(matches!(bus.remove("p"), Ok(1)));
    assert!(matches!(bus.remove("p"), Err(Error::NotFound { .. })));
}

#[test]
fn remove_while_blocked_receiver_gets_its_frames_then_eof() {
    let d = Daemon::start("rm-blocked", &[]);
    let bus = d.connect();
    let pipe = bus.pipe("p").unwrap();
    let mut tx = pipe.sender().unwrap();
    let mut rx = shmbus_bg(&d.bus, &["recv", "p"]);
    wait_asleep(&mut rx, "shmbus recv");
    let o = shmbus(&d.bus, &["rm", "p"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    // Removal does not wake or fail it (unlink semantics): it still waits
    // for its sender.
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.running(), "the blocked receiver gave up at the removal");
    tx.send(b"after rm").unwrap();
    // The sender leaves: the receiver reads what is left, then end of file.
    drop(tx);
    drop(pipe);
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert_eq!(o.stdout_str(), "after rm\n");
    // Nobody holds it any more: it is freed.
    eventually("removed pipe freed", || {
        rows(&bus, "p").is_empty().then_some(())
    });
}

#[test]
fn remove_then_recreate_starts_from_zero_with_any_kind() {
    let d = Daemon::start("rm-recreate", &[]);
    let run = |args: &[&str]| {
        let o = shmbus(&d.bus, args);
        assert_eq!(code(&o), Some(0), "{args:?}: {o:?}");
        o.stdout_str()
    };
    run(&["create", "array", "a", "i32", "4"]);
    run(&["set", "a", "1", "2", "3", "4"]);
    assert_eq!(run(&["get", "a"]), "1 2 3 4\n");
    // Without rm, "re-creating" returns the old contents.
    run(&["create", "array", "a", "i32", "4"]);
    assert_eq!(run(&["get", "a"]), "1 2 3 4\n");
    run(&["rm", "a"]);
    run(&["create", "array", "a", "i32", "4"]);
    assert_eq!(run(&["get", "a"]), "0 0 0 0\n");

    // Another kind under the same name.
    run(&["rm", "a"]);
    run(&["create", "pipe", "a", "--capacity", "4096"]);
    let bus = d.connect();
    let p = bus.open_pipe("a").unwrap();
    assert_eq!(p.capacity(), 4096);
    let (mut tx, mut rx) = (p.sender().unwrap(), p.receiver().unwrap());
    tx.send(b"x").unwrap();
    assert_eq!(rx.recv().unwrap(), b"x");
    drop((tx, rx, p));
    run(&["rm", "a"]);
    let v = bus.value::<f64>("a").unwrap();
    assert_eq!(v.load(), 0.0);
    v.store(2.5).unwrap();
    // A removed value still held keeps its contents for its holder.
    bus.remove("a").unwrap();
    assert_eq!(v.load(), 2.5);
    assert_eq!(bus.value::<f64>("a").unwrap().load(), 0.0);
}

#[test]
fn removed_channel_of_a_killed_holder_is_freed_after_recovery() {
    let d = Daemon::start("rm-dead", &[]);
    let o = shmbus(&d.bus, &["create", "pipe", "big", "--capacity", "512K"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let mut rx = shmbus_bg(&d.bus, &["recv", "big"]);
    wait_asleep(&mut rx, "shmbus recv");
    let o = shmbus(&d.bus, &["rm", "big"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert!(
        o.stderr.contains("1 connection(s) still have it open"),
        "{o:?}"
    );
    let bus = d.connect();
    assert!(matches!(
        bus.pipe_with_capacity("big2", 1 << 19),
        Err(Error::NoSpace { .. })
    ));
    rx.signal(Signal::KILL);
    let _ = rx.wait(WATCHDOG);
    // The daemon recovers the dead client, then frees what it held.
    let p = eventually("space of the dead holder's removed pipe reused", || {
        bus.pipe_with_capacity("big2", 1 << 19).ok()
    });
    assert_eq!(p.capacity(), 1 << 19);
    assert!(rows(&bus, "big").is_empty(), "{:?}", bus.channels());
}

#[test]
fn cli_rm_fixes_typos_wrong_kinds_and_leftovers() {
    let d = Daemon::start("rm-cli", &[]);
    let run = |args: &[&str]| {
        let o = shmbus(&d.bus, args);
        assert_eq!(code(&o), Some(0), "{args:?}: {o:?}");
        o
    };
    // A typo'd channel created by mistake.
    run(&["create", "pipe", "ordrs"]);
    let o = run(&["rm", "ordrs"]);
    assert!(o.stderr.is_empty(), "{o:?}");
    assert!(!run(&["ls"]).stdout_str().contains("ordrs"));
    let o = shmbus(&d.bus, &["rm", "ordrs", "nosuch"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("cannot remove ordrs") && o.stderr.contains("cannot remove nosuch"),
        "{o:?}"
    );

    // A pipe created where a queue was meant.
    run(&["send", "jobsq", "oops"]);
    let o = shmbus(&d.bus, &["create", "queue", "jobsq"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    run(&["rm", "jobsq"]);
    run(&["create", "queue", "jobsq"]);
    run(&["send", "jobsq", "job1"]);
    let bus = d.connect();
    let r = rows(&bus, "jobsq");
    assert_eq!((r.len(), r[0].kind), (1, Kind::Queue), "{r:?}");
    assert_eq!(bus.open_queue("jobsq").unwrap().get().unwrap(), b"job1");

    // Leftovers of a failed run: items put and never done make join() hang.
    run(&["create", "queue", "work"]);
    run(&["send", "work", "a", "b"]);
    let q = bus.open_queue("work").unwrap();
    assert_eq!(q.unfinished(), 2);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    drop(q);
    run(&["rm", "work"]);
    run(&["create", "queue", "work"]);
    let q = bus.open_queue("work").unwrap();
    assert_eq!(q.unfinished(), 0);
    within(WATCHDOG, "join() on the re-created queue", move || q.join()).unwrap();
}

#[test]
fn remove_while_blocked_queue_consumer_still_gets_items() {
    let d = Daemon::start("rm-blocked-q", &["--queue", "q:8:32"]);
    let bus = d.connect();
    let q = bus.open_queue("q").unwrap();
    let mut rx = shmbus_bg(&d.bus, &["recv", "q", "-n", "1"]);
    wait_asleep(&mut rx, "shmbus recv on a queue");
    assert_eq!(bus.remove("q").unwrap(), 2);
    // A new queue of that name does not feed the old one's consumer.
    let new = bus
        .queue_builder("q")
        .slots(4)
        .slot_size(16)
        .open()
        .unwrap();
    new.put(b"new").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rx.running(),
        "the blocked consumer gave up or read the new queue"
    );
    q.put(b"old").unwrap();
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert_eq!(o.stdout_str(), "old\n");
    assert_eq!(new.get().unwrap(), b"new");
}
