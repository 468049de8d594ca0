//! End-to-end tests of the `shmbus` command against a
//! real `shmbusd` (from `target/<profile>/shmbusd`) and real processes.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog.
//!
//! The tests of the library alone are in `client/tests/e2e.rs`.

use shmbus_test_support as support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{Bus, ChannelDetails, End, Error, Kind};
use support::{shmbus, shmbus_bg, sleeps_in_futex, within, Daemon, ShmFile, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine, short enough that a
/// hang fails the test instead of the CI run.
const LONG: Duration = Duration::from_secs(30);

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

// ---- connecting -------------------------------------------------------------

#[test]
fn connect_to_a_missing_bus_says_how_to_start_the_daemon() {
    let bus = support::unique_bus("missing");
    match Bus::connect_to(&bus) {
        Err(Error::DaemonNotRunning { bus: b, stale }) => {
            assert_eq!(b, bus);
            assert!(!stale);
        }
        other => panic!("expected DaemonNotRunning, got {other:?}"),
    }
    let o = shmbus(&bus, &["ls"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert_eq!(
        o.stderr,
        format!("shmbus: no shmbusd serves bus {bus}: start it with `shmbusd --name {bus}`\n")
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_bus_name_is_refused_before_touching_files() {
    match Bus::connect_to("../etc/passwd") {
        Err(Error::BadName { what: "bus", .. }) => {}
        other => panic!("expected BadName, got {other:?}"),
    }
    let o = shmbus("a/b", &["ls"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.starts_with("shmbus: bad bus name \"a/b\""),
        "{o:?}"
    );
}

#[test]
fn stale_files_of_a_killed_daemon() {
    let mut d = Daemon::start("stale", &[]);
    d.signal(Signal::KILL);
    d.wait();
    // The segment and socket are still there; nobody listens.
    assert!(d.paths.socket.exists() && d.paths.segment.exists());
    match Bus::connect_to(&d.bus) {
        Err(Error::DaemonNotRunning { stale: true, .. }) => {}
        other => panic!("expected DaemonNotRunning {{ stale: true }}, got {other:?}"),
    }
    let o = shmbus(&d.bus, &["ls"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("left behind by a daemon that died"),
        "{o:?}"
    );
}

// ---- foreign and corrupt segments -------------------------------------------

/// Bytes of a real segment, copied while its daemon runs.
fn real_segment() -> Vec<u8> {
    let d = Daemon::start("copy", &["--pipe", "p:4096"]);
    std::fs::read(&d.paths.segment).expect("read the live segment")
}

/// Connects to a bus whose only file is `bytes` at /dev/shm/NAME, through the
/// library and through the CLI; returns the library's error and checks that
/// the CLI failed cleanly with the same message.
fn open_file(tag: &str, bytes: &[u8]) -> Error {
    let f = ShmFile::new(tag, bytes);
    let e = match Bus::connect_to(&f.bus) {
        Ok(b) => panic!("connected to a bad segment: {b:?}"),
        Err(e) => e,
    };
    let o = shmbus(&f.bus, &["ls"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert_eq!(o.stderr, format!("shmbus: {e}\n"));
    e
}

#[test]
fn foreign_and_corrupt_segments_give_errors_not_crashes() {
    let real = real_segment();
    assert!(real.len() >= 4096);

    // Random bytes.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let random: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let e = open_file("random", &random);
    assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
    assert!(e.to_string().contains("not a shmbus segment"), "{e}");

    // Another program's text file.
    let e = open_file(
        "text",
        b"hello, I am somebody else's file\n".repeat(100).as_slice(),
    );
    assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");

    // A real header with the wrong magic.
    let mut img = real.clone();
    img[0] ^= 0x55;
    let e = open_file("magic", &img);
    assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");

    // A real header with another ABI version.
    let mut img = real.clone();
    img[8..12].copy_from_slice(&(shmbus::layout::ABI_VERSION + 1).to_le_bytes());
    let e = open_file("abi", &img);
    match e {
        Error::AbiMismatch { found, expected } => {
            assert_eq!(found, shmbus::layout::ABI_VERSION + 1);
            assert_eq!(expected, shmbus::layout::ABI_VERSION);
        }
        other => panic!("expected AbiMismatch, got {other:?}"),
    }

    // A real segment cut short.
    let e = open_file("cut", &real[..real.len() / 2]);
    match e {
        Error::SizeMismatch { header, file, .. } => {
            assert_eq!(header, real.len() as u64);
            assert_eq!(file, real.len() as u64 / 2);
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }

    // Shorter than a header; empty.
    let e = open_file("short", &real[..64]);
    assert!(matches!(e, Error::Truncated { size: 64, .. }), "{e:?}");
    let e = open_file("empty", &[]);
    assert!(matches!(e, Error::Truncated { size: 0, .. }), "{e:?}");

    // A real header whose directory lies past the end of the file.
    let mut img = real.clone();
    img[64..72].copy_from_slice(&(real.len() as u64 * 4).to_le_bytes());
    let e = open_file("region", &img);
    assert!(matches!(e, Error::CorruptSegment { .. }), "{e:?}");

    // A real header in an unknown state; one still initialising.
    let mut img = real.clone();
    img[32..36].copy_from_slice(&77u32.to_le_bytes());
    let e = open_file("state", &img);
    assert!(matches!(e, Error::CorruptSegment { .. }), "{e:?}");
    let mut img = real.clone();
    img[32..36].copy_from_slice(&shmbus::layout::state::INITIALIZING.to_le_bytes());
    let e = open_file("init", &img);
    assert!(matches!(e, Error::NotReady { .. }), "{e:?}");

    // A valid copy whose daemon is gone: the segment checks out, the socket
    // does not exist.
    let f = ShmFile::new("orphan", &real);
    match Bus::connect_to(&f.bus) {
        Err(Error::DaemonNotRunning { .. }) => {}
        other => panic!("expected DaemonNotRunning, got {other:?}"),
    }
}

// ---- opening pipes ----------------------------------------------------------

// ---- the library across processes ------------------------------------------

#[test]
fn each_end_has_one_holder() {
    let d = Daemon::start("busy", &[]);
    let bus = d.connect();
    let pipe = bus.pipe("p").unwrap();
    let tx = pipe.sender().unwrap();
    let rx = pipe.receiver().unwrap();

    // Same connection.
    match pipe.sender() {
        Err(Error::Busy {
            end: End::Sender,
            this_connection: true,
            ..
        }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    // Another connection of this process.
    let other = d.connect();
    match other.pipe("p").unwrap().receiver() {
        Err(
            e @ Error::Busy {
                end: End::Receiver,
                this_connection: false,
                ..
            },
        ) => {
            let Error::Busy { pid, slot, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*pid, Some(std::process::id()));
            assert_eq!(*slot, bus.peer_slot());
            assert!(
                e.to_string()
                    .contains(&format!("process {}", std::process::id())),
                "{e}"
            );
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // Another process: the CLI.
    let o = shmbus(&d.bus, &["send", "p", "x"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.starts_with(&format!(
            "shmbus: pipe p already has a sender (process {}",
            std::process::id()
        )),
        "{o:?}"
    );
    // Released on drop.
    drop(tx);
    drop(rx);
    let _tx = other.pipe("p").unwrap().sender().unwrap();
    let _rx = other.pipe("p").unwrap().receiver().unwrap();
}

#[test]
fn channels_lists_the_directory() {
    let d = Daemon::start("list", &["--pipe", "pre:4096"]);
    let bus = d.connect();
    let chans = bus.channels();
    assert_eq!(chans.len(), 1, "{chans:?}");
    assert_eq!(chans[0].name, "pre");
    assert_eq!(chans[0].kind, Kind::Pipe);
    let pipe = bus.pipe_with_capacity("p", 8192).unwrap();
    let mut tx = pipe.sender().unwrap();
    tx.send(b"12345678").unwrap(); // 8 + 8 bytes in the ring
    let c = bus
        .channels()
        .into_iter()
        .find(|c| c.name == "p")
        .expect("p listed");
    match c.details {
        ChannelDetails::Pipe(p) => {
            assert_eq!(p.capacity, 8192);
            assert_eq!(p.waiting, 16);
            let h = p.sender.expect("sender listed");
            assert_eq!(h.slot, bus.peer_slot());
            assert_eq!(h.pid, Some(std::process::id()));
            assert!(p.receiver.is_none());
        }
        other => panic!("{other:?}"),
    }

    let o = shmbus(&d.bus, &["ls"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let out = o.stdout_str();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "KIND", "CAPACITY", "WAITING", "ATTACHED"]
    );
    assert!(
        lines.contains(&vec!["pre", "pipe", "4096", "0", "-"]),
        "{out}"
    );
    assert!(
        lines.contains(&vec!["p", "pipe", "8192", "16", "sender"]),
        "{out}"
    );
    let _rx = pipe.receiver().unwrap();
    let out = shmbus(&d.bus, &["ls"]).stdout_str();
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["p", "pipe", "8192", "16", "sender,receiver"]),
        "{out}"
    );
}

// ---- the CLI ----------------------------------------------------------------

#[test]
fn cli_send_and_recv_across_processes() {
    let d = Daemon::start("cli", &[]);
    let o = shmbus(&d.bus, &["create", "pipe", "p"]);
    assert_eq!((code(&o), o.stderr.as_str()), (Some(0), ""), "{o:?}");
    // The receiver starts first and blocks until frames come.
    let rx = shmbus_bg(&d.bus, &["recv", "p", "-n", "3"]);
    let o = shmbus(&d.bus, &["send", "p", "hello", "wide world", ""]);
    // An existing pipe: nothing said about creating it.
    assert_eq!((code(&o), o.stderr.as_str()), (Some(0), ""), "{o:?}");
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert_eq!(o.stdout, b"hello\nwide world\n\n");
    assert!(o.stderr.is_empty(), "{o:?}");
}

#[test]
fn cli_recv_count_leaves_the_rest() {
    let d = Daemon::start("count", &[]);
    let o = shmbus(&d.bus, &["send", "p", "1", "2", "3", "4", "5"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = shmbus(&d.bus, &["recv", "p", "-n", "2"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(0), "1\n2\n"),
        "{o:?}"
    );
    // The rest. The sender left before this receiver came, so that is not
    // end of file: it waits for a sender (see tests/pipe_eof.rs), here
    // until its timeout.
    let o = shmbus(&d.bus, &["recv", "p", "--timeout", "0.2"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(124), "3\n4\n5\n"),
        "{o:?}"
    );
    let o = shmbus(&d.bus, &["recv", "p", "--count", "0"]);
    assert_eq!((code(&o), o.stdout.len()), (Some(0), 0), "{o:?}");
}

#[test]
fn cli_send_reads_lines_from_stdin_and_recv_sees_eof_when_it_exits() {
    let d = Daemon::start("stdin", &[]);
    let mut rx = shmbus_bg(&d.bus, &["recv", "--create", "p"]);
    // The receiver must be attached before the sender can come and go: one
    // that attaches after the sender left waits for the next sender.
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(rx.pid()) {
        assert!(rx.running(), "shmbus recv p exited before any sender came");
        assert!(
            Instant::now() < deadline,
            "shmbus recv p never went to sleep"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut tx = shmbus_bg(&d.bus, &["send", "p"]);
    tx.write_stdin(b"alpha\n\nbeta\xff\ngamma");
    tx.close_stdin();
    let o = tx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert_eq!(o.stdout, b"alpha\n\nbeta\xff\ngamma\n");
}

#[test]
fn cli_recv_timeout_exits_nonzero() {
    let d = Daemon::start("timeout", &[]);
    let t = Instant::now();
    let o = shmbus(&d.bus, &["recv", "--create", "fresh", "--timeout", "0.3"]);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert!(o.stdout.is_empty());
    assert_eq!(
        o.stderr,
        "shmbus: created pipe fresh (capacity 65536 bytes)\n\
         shmbus: no frame on pipe fresh for 300ms: is its sender running (`shmbus send fresh`)?\n",
        "{o:?}"
    );
    // Frames that did come are printed before the timeout.
    let bus = d.connect();
    let mut tx = bus.pipe("p").unwrap().sender().unwrap();
    tx.send(b"early").unwrap();
    let o = shmbus(&d.bus, &["recv", "p", "--timeout", "0.2"]);
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert_eq!(o.stdout, b"early\n");
}

#[test]
fn cli_send_timeout_and_too_large() {
    let d = Daemon::start("sendto", &[]);
    let bus = d.connect();
    let pipe = bus.pipe_with_capacity("small", 4096).unwrap();
    let big = "x".repeat(600);
    let o = shmbus(&d.bus, &["send", "small", &big]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.starts_with(
            "shmbus: sending to pipe small: frame of 600 bytes is larger than this pipe's limit of 512 bytes"
        ),
        "{o:?}"
    );
    // Fill it, with a receiver attached that does not read.
    let _rx = pipe.receiver().unwrap();
    {
        let mut tx = pipe.sender().unwrap();
        while tx.try_send(&[0u8; 100]).is_ok() {}
        // Empty frames take 8 bytes each: now not a byte is left.
        while tx.try_send(&[]).is_ok() {}
    }
    let o = shmbus(&d.bus, &["send", "small", "more", "--timeout", "0.2"]);
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert!(o.stderr.contains("stayed full"), "{o:?}");
}

#[test]
fn cli_quietly_stops_when_stdout_closes() {
    let d = Daemon::start("epipe", &[]);
    let bus = d.connect();
    let mut tx = bus.pipe("p").unwrap().sender().unwrap();
    let mut rx = support::Proc::spawn_raw_stdout(
        support::shmbus_cmd(&d.bus, &["recv", "p"]),
        "shmbus recv p",
    );
    tx.send(b"first").unwrap();
    let mut out = BufReader::new(rx.raw_stdout.take().unwrap());
    let mut line = String::new();
    within(LONG, "reading the first line", move || {
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "first\n");
        // `out` is dropped here: the reader of recv's stdout has gone.
    });
    for _ in 0..100 {
        match tx.send_timeout(b"more", LONG) {
            Ok(()) => {}
            // recv exited and released its end.
            Err(Error::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
        if !rx.running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = rx.wait(WATCHDOG);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}

#[test]
fn cli_usage_errors() {
    let o = shmbus("b", &["recv"]);
    assert_eq!(code(&o), Some(2), "{o:?}");
    let o = shmbus("b", &["recv", "p", "--timeout", "soon"]);
    assert_eq!(code(&o), Some(2), "{o:?}");
    assert!(o.stderr.contains("not a number of seconds"), "{o:?}");
    let o = shmbus("b", &["--help"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    for cmd in [
        "ls", "top", "send", "recv", "create", "get", "set", "add", "watch",
    ] {
        assert!(o.stdout_str().contains(cmd), "{o:?}");
    }
    // The exit statuses are documented, 130 included.
    for status in ["124", "130"] {
        assert!(o.stdout_str().contains(status), "{o:?}");
    }
    // send and recv take a pipe or a queue: the argument says NAME, not PIPE.
    for cmd in ["send", "recv"] {
        let o = shmbus("b", &[cmd, "--help"]);
        assert_eq!(code(&o), Some(0), "{o:?}");
        assert!(
            o.stdout_str().contains("<NAME>") && !o.stdout_str().contains("PIPE"),
            "{o:?}"
        );
    }
    let o = shmbus("b", &["top", "--interval", "0"]);
    assert_eq!(code(&o), Some(2), "{o:?}");
}

// ---- the daemon going away ----------------------------------------------------

/// Clients blocked in every kind of wait when the daemon goes: a receive in
/// this process, and in five `shmbus` processes a pipe receive, a pipe send on
/// a full ring, a queue get on an empty queue, a queue put on a full one and a
/// value watch (`wait_changed`). Every one must return `BusClosed` (the CLI
/// exits 1 saying so); the delay from the signal to each exit is printed
/// (never asserted: the machine is noisy; the watchdogs catch a hang). After
/// SIGKILL, a new `shmbusd` must take the name over and serve a fresh client.
fn blocked_clients_see_bus_closed(sig: Signal) {
    let mut d = Daemon::start(
        "closed",
        &[
            "--pipe",
            "full:4096",
            "--queue",
            "empty:4:32",
            "--queue",
            "qfull:2:32",
            "--value",
            "v:u32",
        ],
    );
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let r = rx.recv_timeout(LONG);
        (r, t.elapsed())
    });
    // The full pipe's receiver stays attached here and reads nothing.
    let _full_rx = bus.pipe("full").unwrap().receiver().unwrap();
    let frame = "x".repeat(100);
    let mut send_full = vec!["send", "full"];
    send_full.extend(std::iter::repeat_n(frame.as_str(), 100));
    let clients = [
        ("pipe recv", shmbus_bg(&d.bus, &["recv", "--create", "q"])),
        ("pipe send (full)", shmbus_bg(&d.bus, &send_full)),
        ("queue get", shmbus_bg(&d.bus, &["recv", "empty"])),
        (
            "queue put (full)",
            shmbus_bg(&d.bus, &["send", "qfull", "a", "b", "c"]),
        ),
        ("value watch", shmbus_bg(&d.bus, &["watch", "v"])),
    ];
    // Wait until each really sleeps in the kernel, on a futex.
    let deadline = Instant::now() + LONG;
    for (what, c) in &clients {
        while !sleeps_in_futex(c.pid()) {
            assert!(Instant::now() < deadline, "{what} never went to sleep");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(!bus.is_closed());
    let name = if sig == Signal::KILL {
        "SIGKILL"
    } else {
        "SIGTERM"
    };
    d.signal(sig);
    let signalled = Instant::now();
    // Each client's exit, as seen by polling every millisecond.
    let mut clients: Vec<_> = clients.into_iter().map(|(w, c)| (w, c, None)).collect();
    while clients.iter().any(|(_, _, t)| t.is_none()) {
        for (what, c, t) in &mut clients {
            if t.is_none() && !c.running() {
                *t = Some(signalled.elapsed());
            }
            assert!(
                signalled.elapsed() < LONG,
                "watchdog: {what} still blocked {LONG:?} after the daemon got {name}"
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (r, waited) = within(LONG, "the blocked receive", move || waiter.join().unwrap());
    assert!(matches!(r, Err(Error::BusClosed)), "{r:?}");
    assert!(waited < LONG, "{waited:?}");
    assert!(bus.is_closed());
    for (what, c, t) in clients {
        let o = c.wait(WATCHDOG);
        assert_eq!(code(&o), Some(1), "{what}: {o:?}");
        assert!(o.stderr.contains("the bus was closed"), "{what}: {o:?}");
        eprintln!(
            "daemon {name}: {what:<16} returned BusClosed {:.1} ms after the signal",
            t.unwrap_or_default().as_secs_f64() * 1e3
        );
    }
    // Control requests fail too.
    assert!(matches!(bus.pipe("r"), Err(Error::BusClosed)));
    d.wait();
    if sig == Signal::KILL {
        // A new daemon takes over the stale segment left on the name, and a
        // fresh client passes a message through it.
        let name = d.bus.clone();
        let d2 = Daemon::start_named(name, &[]);
        let fresh = d2.connect();
        let pipe = fresh.pipe("p").unwrap();
        let mut rx = pipe.receiver().unwrap();
        pipe.sender().unwrap().send(b"after the takeover").unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), b"after the takeover");
        let q = fresh.queue("q2").unwrap();
        q.put(b"queued").unwrap();
        assert_eq!(q.get_timeout(LONG).unwrap(), b"queued");
        // `d2` stops before `d`'s guard removes the bus's files.
        drop(d2);
    }
}

#[test]
fn blocked_clients_see_bus_closed_on_sigterm() {
    blocked_clients_see_bus_closed(Signal::TERM);
}

#[test]
fn blocked_clients_see_bus_closed_on_sigkill_and_a_new_daemon_takes_over() {
    blocked_clients_see_bus_closed(Signal::KILL);
}

#[test]
fn endpoints_keep_the_connection_alive() {
    let d = Daemon::start("alive", &[]);
    let (mut tx, mut rx) = {
        let bus = d.connect();
        let pipe = bus.pipe("p").unwrap();
        (pipe.sender().unwrap(), pipe.receiver().unwrap())
        // `bus` and `pipe` are dropped here; the endpoints hold the connection.
    };
    tx.send(b"still here").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"still here");
    // The daemon still lists both ends as attached.
    let out = shmbus(&d.bus, &["ls"]).stdout_str();
    assert!(out.contains("sender,receiver"), "{out}");
    // The Bus is Send + Sync and endpoints are Send.
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Bus>();
    send_sync::<shmbus_client::Pipe>();
    send::<shmbus_client::PipeSender>();
    send::<shmbus_client::PipeReceiver>();
}
