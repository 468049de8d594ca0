//! Runs each program of `client/examples/` against a real daemon, as a user
//! would with `cargo run -p shmbus-client --example NAME`, and without one.
//!
//! The example binaries are those `cargo test` builds next to this test
//! (`target/<profile>/examples/NAME`); `cargo test -p shmbus-client --test
//! examples` alone does not build them: run `cargo build -p shmbus-client
//! --examples` first.

use shmbus_test_support as support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{sleeps_in_futex, unique_bus, Daemon, Output, Proc, WATCHDOG};

/// `target/<profile>/examples/NAME`.
///
/// # Panics
/// With instructions if it has not been built.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/examples-HASH -> target/debug
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the examples first with `cargo build -p shmbus-client --examples` \
         (`cargo test` builds them too)",
        path.display()
    );
    path
}

/// `NAME ARGS...` on bus `bus`, in the background.
fn spawn(bus: &str, name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(example(name));
    cmd.args(args).env("SHMBUS_BUS", bus);
    Proc::spawn(cmd, &format!("example {name} {}", args.join(" ")))
}

/// Runs `NAME ARGS...` on bus `bus` to completion (watchdog: [`WATCHDOG`]).
fn run(bus: &str, name: &str, args: &[&str]) -> Output {
    spawn(bus, name, args).wait(WATCHDOG)
}

fn assert_ok(name: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{name} failed with {}: stdout {:?} stderr {:?}",
        out.status,
        out.stdout_str(),
        out.stderr
    );
}

#[test]
fn pipe_pair() {
    let d = Daemon::start("ex-pipe", &[]);
    let consumer = spawn(&d.bus, "pipe_consumer", &[]);
    // The consumer sleeps on the empty pipe once it holds the receiving end.
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(consumer.pid()) {
        assert!(Instant::now() < deadline, "pipe_consumer never waited");
        std::thread::sleep(Duration::from_millis(5));
    }
    // More frames than the pipe holds (64 KiB of 24-byte records), so the
    // producer also waits for room.
    let n = 5000;
    let out = run(&d.bus, "pipe_producer", &[&n.to_string()]);
    assert_ok("pipe_producer", &out);
    assert!(out.stdout_str().contains(&format!("sent {n} frames")));
    let out = consumer.wait(WATCHDOG);
    assert_ok("pipe_consumer", &out);
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("receiving on pipe example-pipe"),
        "{text}"
    );
    let frames: Vec<String> = (0..n).map(|i| format!("hello {i:010}")).collect();
    assert_eq!(lines[1..=n], frames[..], "frames in order, none lost");
    assert_eq!(lines[n + 1], format!("end of file after {n} frames"));
    assert_eq!(lines.len(), n + 2, "{text}");
}

#[test]
fn worker_pool() {
    let d = Daemon::start("ex-pool", &[]);
    let out = run(&d.bus, "worker_pool", &["200", "3"]);
    assert_ok("worker_pool", &out);
    let text = out.stdout_str();
    let want: u64 = (1..=200u64).map(|j| j * j).sum();
    assert!(
        text.contains(&format!(
            "200 jobs done by 3 worker processes: sum of squares {want}"
        )),
        "{text}"
    );
    // Each worker reports how many jobs it did; together, all of them.
    let done: u64 = text
        .lines()
        .filter(|l| l.starts_with("worker "))
        .map(|l| {
            let n = l.rsplit_once(": ").expect("worker PID: N jobs").1;
            n.trim_end_matches(" jobs").parse::<u64>().expect("a count")
        })
        .sum();
    assert_eq!(done, 200, "{text}");
    // A second run on the same bus starts from a clean slate.
    let out = run(&d.bus, "worker_pool", &["10", "2"]);
    assert_ok("worker_pool (again)", &out);
    assert!(out.stdout_str().contains("sum of squares 385"));
}

#[test]
fn counter() {
    let d = Daemon::start("ex-counter", &[]);
    let out = run(&d.bus, "counter", &["2000"]);
    assert_ok("counter", &out);
    let text = out.stdout_str();
    assert!(
        text.contains("hits 8000 = 4 workers x 2000 rounds; per worker [2000, 2000, 2000, 2000]"),
        "{text}"
    );
    // The values persist on the bus; what the example left is what it said.
    let bus = d.connect();
    assert_eq!(bus.open_value::<u64>("example-hits").unwrap().load(), 8000);
    assert_eq!(
        bus.open_array::<u64>("example-per-worker").unwrap().read(),
        [2000; 4]
    );
}

/// Without a daemon each example exits 1 with the advice, not a struct dump
/// (`main` returns `Result<(), Error>`, printed with `Debug`).
#[test]
fn no_daemon_says_how_to_start_one() {
    let bus = unique_bus("ex-nodaemon");
    for name in ["pipe_producer", "pipe_consumer", "worker_pool", "counter"] {
        let out = run(&bus, name, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert_eq!(
            out.stderr.trim_end(),
            format!(
                "Error: no shmbusd serves bus {bus}: start it with `shmbusd --name {bus}` \
                 (DaemonNotRunning)"
            ),
            "{name}"
        );
    }
}
