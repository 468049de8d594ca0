//! An idle bus is silent: neither a blocked client nor the daemon wakes up
//! periodically, and a blocked client still learns of the daemon's death.
//!
//! A blocked call sleeps on a doorbell with no time slice; the daemon's death
//! wakes it through the liveness watcher (`client/src/liveness.rs`, loom
//! model `tests/loom_liveness.rs`). Here:
//!
//! - threads blocked in `recv`, queue `get` and `wait_changed` return
//!   `BusClosed` when the daemon is SIGKILLed, long before their own
//!   timeouts (which a lost wake-up would run into);
//! - blocked clients and the daemon (with slots kept for live clients that
//!   broke the protocol) are watched while idle, counting voluntary context
//!   switches of every thread from `/proc/PID/task/*/status`: a count of
//!   wake-ups, not a time. (A blocked pipe or queue call still looks for a
//!   scribbled owner word every 30 s, `PHANTOM_RECHECK` in
//!   `client/src/wait.rs`, which a window may catch once.) Before this was fixed, the same clients woke 5
//!   (`recv`) and 10 (`watch`) times a second, and the daemon 1 + 5 per kept
//!   slot times a second;
//! - a uid's slots kept for running processes that broke the protocol are
//!   limited to [`KEPT_PER_UID`], and freed when those processes exit.
//!
//! The `shmbus` command's blocked clients are watched in `cli/tests/idle.rs`;
//! the wake-up counting is `shmbus_test_support::idle`.

use shmbus_test_support as support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus::layout::ABI_VERSION;
use shmbus::name::BusPaths;
use shmbus::protocol::{ErrorCode, Response, KEPT_PER_UID};
use shmbus_client::{Bus, Error};
use support::idle::{assert_silent, task_switches, WINDOW};
use support::{within, Daemon, Proc, WATCHDOG};

/// The blocked calls' own timeout: a wake-up lost at the daemon's death
/// would make them return `Timeout` after it, failing the test.
const LONG: Duration = Duration::from_secs(60);

/// A thread's blocked call, its thread id and the result.
type Blocked = (String, u32, std::thread::JoinHandle<Result<(), Error>>);

fn blocked(what: &str, f: impl FnOnce() -> Result<(), Error> + Send + 'static) -> Blocked {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32)
            .unwrap();
        f()
    });
    let tid = rx.recv_timeout(WATCHDOG).expect("the thread starts");
    (what.to_owned(), tid, h)
}

/// True once task `tid` of this process sleeps in a futex wait.
fn task_in_futex(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan"))
        .is_ok_and(|w| w.contains("futex"))
}

#[test]
fn blocked_calls_return_bus_closed_when_the_daemon_is_killed() {
    let mut d = Daemon::start("idle-kill", &["--queue", "q:4:32", "--value", "v:u32"]);
    let bus = d.connect();
    // One of them on its own connection, so that two watchers act.
    let other = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    let q = other.open_queue("q").unwrap();
    let v = bus.open_value::<u32>("v").unwrap();
    let since = v.version();
    let calls = [
        blocked("pipe recv", move || rx.recv_timeout(LONG).map(drop)),
        blocked("queue get", move || q.get_timeout(LONG).map(drop)),
        blocked("value wait_changed", move || {
            v.wait_changed_timeout(since, LONG).map(drop)
        }),
    ];
    let deadline = Instant::now() + WATCHDOG;
    for (what, tid, _) in &calls {
        while !task_in_futex(*tid) {
            assert!(Instant::now() < deadline, "{what} never went to sleep");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The blocked threads' own wake-ups over the window (the figure only:
    // the per-process test above asserts).
    std::thread::sleep(Duration::from_millis(300));
    let path = |tid: u32| std::path::PathBuf::from(format!("/proc/self/task/{tid}"));
    let before: Vec<u64> = calls
        .iter()
        .map(|(_, t, _)| task_switches(&path(*t)))
        .collect();
    std::thread::sleep(WINDOW);
    for ((what, tid, _), b) in calls.iter().zip(before) {
        let n = task_switches(&path(*tid)) - b;
        eprintln!("blocked {what}: {n} voluntary context switches in {WINDOW:?}");
    }
    d.signal(Signal::KILL);
    let killed = Instant::now();
    for (what, _, h) in calls {
        let r = within(WATCHDOG, &what, move || h.join().unwrap());
        eprintln!(
            "{what}: {r:?} {:.1} ms after the kill",
            killed.elapsed().as_secs_f64() * 1e3
        );
        assert!(matches!(r, Err(Error::BusClosed)), "{what}: {r:?}");
    }
    d.wait();
}

/// Environment variables of the child role below.
const ROLE_ENV: &str = "SHMBUS_IDLE_TEST_ROLE";
const BUS_ENV: &str = "SHMBUS_IDLE_TEST_BUS";

/// A raw control connection that said `HELLO` and got its `WELCOME`.
fn hello(bus: &str) -> Result<(UnixStream, BufReader<UnixStream>), Response> {
    let s = UnixStream::connect(BusPaths::new(bus).socket).expect("connect");
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    w.write_all(format!("HELLO {ABI_VERSION} {}\n", std::process::id()).as_bytes())
        .unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    match Response::decode(&l).expect("a response") {
        Response::Welcome { .. } => Ok((s, r)),
        e => Err(e),
    }
}

/// Child role: breaks the protocol on a connection and lives on.
fn breaker(bus: &str) {
    let (mut s, mut r) = hello(bus).expect("WELCOME");
    s.write_all(b"FROBNICATE\n").unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(
        matches!(
            Response::decode(&l),
            Ok(Response::Error {
                code: ErrorCode::Protocol,
                ..
            })
        ),
        "{l}"
    );
    println!("broken");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(WATCHDOG);
}

/// Dispatches child roles; an ordinary test run passes through.
#[test]
fn child_role() {
    if let (Ok(role), Ok(bus)) = (std::env::var(ROLE_ENV), std::env::var(BUS_ENV)) {
        match role.as_str() {
            "breaker" => breaker(&bus),
            r => panic!("unknown role {r}"),
        }
    }
}

/// Runs this test binary as a child that breaks the protocol on `bus` and
/// lives on; returns once it did.
fn spawn_breaker(bus: &str) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_role",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE_ENV, "breaker")
    .env(BUS_ENV, bus);
    let mut p = Proc::spawn_raw_stdout(cmd, "protocol breaker");
    let out = p.raw_stdout.take().expect("raw stdout");
    let broke = within(WATCHDOG, "the breaker", move || {
        // libtest prints a line or two of its own first.
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("broken"))
    });
    assert!(broke, "the breaker exited without breaking the protocol");
    p
}

/// Connects until the daemon refuses this uid for its kept slots (true) or
/// the watchdog fires; `Ok` connections are dropped at once (`BYE`).
fn refused_for_kept_slots(bus: &str, want: bool) -> bool {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let refused = match Bus::connect_to(bus) {
            Ok(_) => false,
            Err(Error::Refused {
                code: ErrorCode::Full,
                message,
            }) => {
                assert!(message.contains("kept"), "{message}");
                true
            }
            Err(e) => panic!("connect: {e}"),
        };
        if refused == want || Instant::now() >= deadline {
            return refused;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slots_kept_for_live_protocol_breakers_are_limited_per_uid_and_cost_no_wake_ups() {
    let d = Daemon::start("idle-kept", &["--max-peers", "16"]);
    let mut breakers: Vec<Proc> = (0..KEPT_PER_UID).map(|_| spawn_breaker(&d.bus)).collect();
    // Each slot is kept once the daemon saw its process still running.
    assert!(
        refused_for_kept_slots(&d.bus, true),
        "{KEPT_PER_UID} kept slots never made the daemon refuse this uid"
    );
    // The daemon, holding them, sleeps.
    assert_silent(&[("shmbusd with kept slots", d.pid())]);
    // One breaker exits: its slot is recovered and the uid may connect again.
    let p = breakers.pop().unwrap();
    p.signal(Signal::KILL);
    p.wait(WATCHDOG);
    assert!(
        !refused_for_kept_slots(&d.bus, false),
        "a kept slot was not given back when its process exited"
    );
    for p in breakers {
        p.signal(Signal::KILL);
        p.wait(WATCHDOG);
    }
}
