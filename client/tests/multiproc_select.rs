//! `Select` with real processes, a real daemon and a real segment: 16
//! channels of three kinds woken in turn by another process, a peer that
//! dies, a deadline, the daemon's death, and signals.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{Bus, Error, Select};
use support::{Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Generous limit for a wait that another process will end.
const PATIENCE: Duration = Duration::from_secs(60);

/// Pipes among the 16 channels (the others: one queue, one value).
const PIPES: usize = 14;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "writer" => writer(&args[0]),
        "attached" => attached(&args[0]),
        "selector" => selector(&args[0]),
        "late_sender" => late_sender(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Writes once to each of the 16 channels in turn, pausing between writes
/// so that the parent's select goes back to sleep each time.
fn writer(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut txs: Vec<_> = (0..PIPES)
        .map(|i| b.pipe(&format!("p{i}")).unwrap().sender().unwrap())
        .collect();
    let q = b.queue("q").unwrap();
    let v = b.value::<u64>("v").unwrap();
    println!("attached");
    for (i, tx) in txs.iter_mut().enumerate() {
        std::thread::sleep(Duration::from_millis(5));
        tx.send(format!("{i}").as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    q.put(b"q").unwrap();
    std::thread::sleep(Duration::from_millis(5));
    v.store(7).unwrap();
    // Keep the senders until the parent read everything (it closes stdin).
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Attaches as the sender of pipe `a`, says so, and waits to be killed.
fn attached(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let _tx = b.pipe("a").unwrap().sender().unwrap();
    println!("attached");
    std::thread::sleep(PATIENCE * 10);
}

/// Attaches as the sender of pipe `a`, then sends one frame when its stdin
/// closes.
fn late_sender(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe("a").unwrap().sender().unwrap();
    println!("attached");
    let _ = std::io::stdin().read_line(&mut String::new());
    tx.send(b"late").unwrap();
}

/// Selects on two pipes and a queue that stay empty, and reports how the
/// select ended (only when it ends without a signal killing us).
fn selector(bus: &str) {
    // A job started in the background by a non-interactive shell (as CI may
    // be) begins with SIGINT ignored, and children inherit that; the test is
    // about SIGINT's default action, so restore it.
    // SAFETY: SIG_DFL is a valid disposition, set before any thread starts here.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    let b = Bus::connect_to(bus).unwrap();
    let rx = b.pipe("a").unwrap().receiver().unwrap();
    let rx2 = b.pipe("b").unwrap().receiver().unwrap();
    let q = b.queue("q").unwrap();
    println!("selecting");
    let r = Select::new()
        .with(rx.readable())
        .with(rx2.readable())
        .with(q.readable())
        .wait_timeout(PATIENCE * 10);
    println!("ended: {r:?}");
}

#[test]
fn sixteen_channels_woken_in_turn_by_another_process() {
    let d = Daemon::start_role(DISPATCH, "sel16", &[]);
    let b = d.connect();
    let mut rxs: Vec<_> = (0..PIPES)
        .map(|i| b.pipe(&format!("p{i}")).unwrap().receiver().unwrap())
        .collect();
    let q = b.queue("q").unwrap();
    let v = b.value::<u64>("v").unwrap();
    let mut since = v.version();
    let mut w = Proc::spawn_role(DISPATCH, "writer", &[&d.bus]);
    w.expect_line("attached");
    let mut got: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut wakes = 0;
    while got.len() < PIPES + 2 {
        let ready = {
            let mut s = Select::new();
            for rx in &rxs {
                s.add(rx.readable());
            }
            s.add(q.readable());
            s.add(v.changed_since(since));
            assert_eq!(s.len(), 16);
            s.wait_timeout(PATIENCE).expect("a write was never seen")
        };
        wakes += 1;
        assert!(!ready.is_empty());
        for i in ready {
            let item = match i {
                i if i < PIPES => rxs[i].try_recv().unwrap(),
                i if i == PIPES => q.try_get().unwrap(),
                _ => {
                    let (x, now) = (v.load(), v.version());
                    since = now;
                    x.to_string().into_bytes()
                }
            };
            assert!(got.insert(i, item).is_none(), "channel {i} seen twice");
        }
    }
    for (i, item) in got.iter().take(PIPES) {
        assert_eq!(item, format!("{i}").as_bytes());
    }
    assert_eq!(got[&PIPES], b"q");
    assert_eq!(got[&(PIPES + 1)], b"7");
    assert!(wakes <= PIPES + 2);
    w.close_stdin();
    w.expect_success();
}

#[test]
fn a_peer_that_dies_ends_the_select_with_end_of_file() {
    let d = Daemon::start_role(DISPATCH, "seldead", &[]);
    let b = d.connect();
    let mut a = b.pipe("a").unwrap().receiver().unwrap();
    let idle = b.pipe("b").unwrap().receiver().unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "attached", &[&d.bus]);
    p.expect_line("attached");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        p.signal(Signal::KILL);
        p.wait(support::WATCHDOG)
    });
    let ready = Select::new()
        .with(a.readable())
        .with(idle.readable())
        .wait_timeout(PATIENCE)
        .unwrap();
    assert_eq!(ready, vec![0]);
    assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
    assert!(!killer.join().unwrap().status.success());
}

#[test]
fn a_deadline_ends_the_select_with_timeout() {
    let d = Daemon::start_role(DISPATCH, "seldl", &[]);
    let b = d.connect();
    let a = b.pipe("a").unwrap().receiver().unwrap();
    let q = b.queue("q").unwrap();
    let deadline = Instant::now() + Duration::from_millis(100);
    let r = Select::new()
        .with(a.readable())
        .with(q.readable())
        .wait_deadline(deadline);
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(Instant::now() >= deadline);
    // Nothing ready: the non-blocking look agrees.
    assert!(Select::new().with(a.readable()).ready().is_empty());
    // And an empty select is refused rather than waiting forever.
    assert!(matches!(Select::new().wait(), Err(Error::BadParams { .. })));
}

#[test]
fn the_daemons_death_ends_the_select_with_bus_closed() {
    let d = Daemon::start_role(DISPATCH, "selbus", &[]);
    let mut p = Proc::spawn_role(DISPATCH, "selector", &[&d.bus]);
    p.expect_line("selecting");
    // Let it fall asleep in the kernel, then kill the daemon.
    let deadline = Instant::now() + PATIENCE;
    while !support::sleeps_in_futex(p.pid()) {
        assert!(Instant::now() < deadline, "the selector never slept");
        std::thread::sleep(Duration::from_millis(2));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.pid() as i32).unwrap(),
        Signal::KILL,
    )
    .unwrap();
    let out = p.expect_success();
    assert!(
        out.contains("ended: Err(") && out.contains("(BusClosed)"),
        "{out}"
    );
}

#[test]
fn stop_and_continue_leave_the_select_asleep_and_sigint_ends_it_as_recv() {
    let d = Daemon::start_role(DISPATCH, "selsig", &[]);
    let b = d.connect();
    let mut p = Proc::spawn_role(DISPATCH, "selector", &[&d.bus]);
    p.expect_line("selecting");
    let deadline = Instant::now() + PATIENCE;
    while !support::sleeps_in_futex(p.pid()) {
        assert!(Instant::now() < deadline, "the selector never slept");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGSTOP/SIGCONT interrupt the sleep (EINTR or a restart): the select
    // re-checks and sleeps again, as a single-channel call does.
    p.signal(Signal::STOP);
    p.signal(Signal::CONT);
    let deadline = Instant::now() + PATIENCE;
    while !support::sleeps_in_futex(p.pid()) {
        assert!(Instant::now() < deadline, "the selector never slept again");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(p.running(), "a stop and continue ended the select");
    // SIGINT kills it, as it kills a process blocked in `recv`; the daemon
    // then releases its pipe ends, so a sender sees the receiver gone.
    p.signal(Signal::INT);
    let st = p.wait(support::WATCHDOG).status;
    assert!(!st.success());
    let mut tx = b.pipe("a").unwrap().sender().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The pipe holds 64 KiB by default; fill it until the send reports
        // the receiver gone.
        match tx.try_send(&[0; 64]) {
            Err(Error::Disconnected) => break,
            Ok(()) | Err(Error::Full) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the dead receiver was never released"
        );
    }
}

#[test]
fn an_idle_select_wakes_no_one() {
    let d = Daemon::start_role(DISPATCH, "selidle", &[]);
    let mut p = Proc::spawn_role(DISPATCH, "selector", &[&d.bus]);
    p.expect_line("selecting");
    let deadline = Instant::now() + PATIENCE;
    while !support::sleeps_in_futex(p.pid()) {
        assert!(Instant::now() < deadline, "the selector never slept");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Neither the selecting process nor the daemon wakes while nothing
    // happens: no slices, no polling.
    support::idle::assert_silent(&[("selector", p.pid()), ("daemon", d.pid())]);
    p.signal(Signal::KILL);
    let _ = p.wait(support::WATCHDOG);
}

#[test]
fn the_select_fd_turns_readable_when_another_process_sends() {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use shmbus_client::SelectFd;

    let d = Daemon::start_role(DISPATCH, "selfd", &[]);
    let b = d.connect();
    let mut a = b.pipe("a").unwrap().receiver().unwrap();
    let idle = b.pipe("b").unwrap().receiver().unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "late_sender", &[&d.bus]);
    p.expect_line("attached");
    let fd = SelectFd::new().unwrap();
    let armed = fd
        .arm(&Select::new().with(a.readable()).with(idle.readable()))
        .unwrap();
    assert!(armed.is_empty(), "nothing was sent yet: {armed:?}");
    let readable = |ms: i64| {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let t = Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        poll(&mut fds, Some(&t)).unwrap() == 1
    };
    assert!(!readable(100), "readable before anything was sent");
    p.close_stdin();
    assert!(readable(PATIENCE.as_millis() as i64), "never readable");
    fd.clear();
    let ready = fd
        .arm(&Select::new().with(a.readable()).with(idle.readable()))
        .unwrap();
    assert_eq!(ready, vec![0]);
    assert_eq!(a.try_recv().unwrap(), b"late");
    p.expect_success();
}

#[test]
fn the_daemons_death_makes_an_armed_select_fd_readable() {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use shmbus_client::SelectFd;

    let d = Daemon::start_role(DISPATCH, "selfddie", &[]);
    let b = d.connect();
    let a = b.pipe("a").unwrap().receiver().unwrap();
    let fd = SelectFd::new().unwrap();
    assert!(fd
        .arm(&Select::new().with(a.readable()))
        .unwrap()
        .is_empty());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.pid() as i32).unwrap(),
        Signal::KILL,
    )
    .unwrap();
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let t = Timespec {
        tv_sec: PATIENCE.as_secs() as i64,
        tv_nsec: 0,
    };
    assert_eq!(poll(&mut fds, Some(&t)).unwrap(), 1, "never readable");
    fd.clear();
    assert!(matches!(
        fd.arm(&Select::new().with(a.readable())),
        Err(Error::BusClosed)
    ));
}
