//! The library API: a daemon run inside the test process with [`Daemon`] and
//! stopped with a [`StopHandle`], without signals.
//!
//! Not built under `--cfg loom`: loom's atomics are not words in a real segment.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shmbus::layout::ABI_VERSION;
use shmbus::name::BusPaths;
use shmbus::protocol::Response;
use shmbus_daemon::{Cli, Daemon, Error, Spec, StopHandle};
use shmbus_test_support::{unique_bus, Files};

fn spec(name: &str) -> Spec {
    let cli = Cli::parse_args(["shmbusd", "--name", name, "--size", "1M", "--quiet"]).unwrap();
    Spec::from_cli(cli).unwrap()
}

#[test]
fn start_serve_stop_in_process() {
    let name = unique_bus("embed");
    let files = Files(BusPaths::new(&name));
    let stop = StopHandle::new();
    let daemon = Daemon::start(spec(&name), stop.clone()).unwrap();
    // Ready as soon as `start` returns.
    assert!(files.0.segment.exists() && files.0.socket.exists());

    // A second daemon for the same bus in the same process is refused too.
    match Daemon::start(spec(&name), StopHandle::new()) {
        Err(Error::AlreadyServed { bus, pid }) => {
            assert_eq!(bus, name);
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("expected AlreadyServed, got {other:?}"),
    }

    let server = std::thread::spawn(move || daemon.serve());
    let stream = UnixStream::connect(&files.0.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    (&stream)
        .write_all(format!("HELLO {ABI_VERSION} {}\n", std::process::id()).as_bytes())
        .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        matches!(Response::decode(&line), Ok(Response::Welcome { .. })),
        "{line}"
    );

    stop.stop();
    server.join().unwrap().unwrap();
    for p in [&files.0.segment, &files.0.socket, &files.0.lock] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    // Our connection was closed by the shutdown.
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap(), 0);
}

#[test]
fn dropping_an_unserved_daemon_removes_its_files() {
    let name = unique_bus("drop");
    let files = Files(BusPaths::new(&name));
    let daemon = Daemon::start(spec(&name), StopHandle::new()).unwrap();
    assert!(files.0.segment.exists());
    drop(daemon);
    for p in [&files.0.segment, &files.0.socket, &files.0.lock] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    // And the bus can be served again.
    drop(Daemon::start(spec(&name), StopHandle::new()).unwrap());
}

#[test]
fn stop_before_serve_returns_at_once() {
    let name = unique_bus("early");
    let _files = Files(BusPaths::new(&name));
    let stop = StopHandle::new();
    let daemon = Daemon::start(spec(&name), stop.clone()).unwrap();
    stop.stop();
    daemon.serve().unwrap();
}

#[test]
fn status_handle_summarises_the_bus() {
    let name = unique_bus("status");
    let _files = Files(BusPaths::new(&name));
    let cli = Cli::parse_args([
        "shmbusd",
        "--name",
        &name,
        "--size",
        "1M",
        "--max-peers",
        "4",
        "--quiet",
        "--pipe",
        "a:4096",
        "--pipe",
        "b:4096",
        "--value",
        "v:f64",
    ])
    .unwrap();
    let stop = StopHandle::new();
    let daemon = Daemon::start(Spec::from_cli(cli).unwrap(), stop.clone()).unwrap();
    let status = daemon.status_handle();
    let s = status.summary();
    assert!(
        s.starts_with(
            "serving; peers 0/4; channels 3/256 (pipes 2, queues 0, values 1, arrays 0, topics 0); arena "
        ),
        "{s}"
    );
    let server = std::thread::spawn(move || daemon.serve());
    stop.stop();
    server.join().unwrap().unwrap();
    // The handle outlives the daemon and says so.
    assert!(
        status.summary().starts_with("closing; "),
        "{}",
        status.summary()
    );
}
