//! End-to-end tests of the `shmbus` command's channel lookup (`recv` creates
//! nothing unless asked, `send` says when it creates), `top`, and its error
//! messages, against a real `shmbusd` and real processes.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog.

use shmbus_test_support as support;

use std::sync::Arc;
use std::time::Duration;

use shmbus::sync::{AtomicU32, Ordering};
use shmbus_client::Kind;
use support::{shmbus, Daemon};

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

/// A typo'd `recv` used to create a pipe and block on it forever: now it
/// fails at once and leaves the bus as it was; `--create` makes the pipe and
/// says so, as does `send` for a missing name.
#[test]
fn cli_recv_of_a_missing_channel_fails_and_creates_nothing_send_says_it_created() {
    let d = Daemon::start("nocreate", &[]);
    let o = shmbus(&d.bus, &["recv", "greetings_typo"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    assert_eq!(
        o.stderr,
        "shmbus: no pipe or queue named greetings_typo on this bus: create one with \
         `shmbus create pipe greetings_typo` or `shmbus create queue greetings_typo`, \
         or use `shmbus recv --create greetings_typo`\n",
        "{o:?}"
    );
    let bus = d.connect();
    assert!(bus.channels().is_empty(), "{:?}", bus.channels());
    let o = shmbus(&d.bus, &["ls"]);
    assert_eq!(
        (code(&o), o.stdout_str().lines().count()),
        (Some(0), 1),
        "only the header: {o:?}"
    );
    // With a timeout too: still an error, not a wait.
    let o = shmbus(&d.bus, &["recv", "other", "--timeout", "30"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(bus.channels().is_empty(), "{:?}", bus.channels());

    // `send` creates a missing name as a pipe, and says so.
    let o = shmbus(&d.bus, &["send", "greetings", "hello"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    assert_eq!(
        o.stderr, "shmbus: created pipe greetings (capacity 65536 bytes)\n",
        "{o:?}"
    );
    let names: Vec<(String, Kind)> = bus
        .channels()
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect();
    assert_eq!(names, [("greetings".to_owned(), Kind::Pipe)]);
    // Sending again: it exists, nothing is said.
    let o = shmbus(&d.bus, &["send", "greetings", "again"]);
    assert_eq!((code(&o), o.stderr.as_str()), (Some(0), ""), "{o:?}");
    // Both senders have gone before this receiver came: as a FIFO reader, it
    // reads what they left and would then wait for a sender (README, "A pipe
    // behaves like a Unix FIFO"), hence -n.
    let o = shmbus(&d.bus, &["recv", "greetings", "-n", "2"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str(), o.stderr.as_str()),
        (Some(0), "hello\nagain\n", ""),
        "{o:?}"
    );
    // A value is not something to send to or receive from.
    bus.create_value("temp", shmbus_client::ElemType::F64)
        .unwrap();
    let o = shmbus(&d.bus, &["recv", "temp"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("temp is a value, not a pipe or queue"),
        "{o:?}"
    );
    // A bad name is reported as such, not as missing.
    let o = shmbus(&d.bus, &["recv", "a/b"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(o.stderr.contains("bad channel name"), "{o:?}");
    assert_eq!(bus.channels().len(), 2, "{:?}", bus.channels());
}

#[test]
fn cli_queue_item_too_large_names_the_queue_and_its_slot_size() {
    let d = Daemon::start("q-big", &[]);
    let o = shmbus(
        &d.bus,
        &[
            "create",
            "queue",
            "jobsq",
            "--slots",
            "8",
            "--slot-size",
            "16",
        ],
    );
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = shmbus(&d.bus, &["send", "jobsq", "0123456789abcdefX"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert_eq!(
        o.stderr,
        "shmbus: sending to queue jobsq: item of 17 bytes is larger than this queue's \
         slot size of 16 bytes: create the queue with a larger slot size\n",
        "{o:?}"
    );
    assert!(!o.stderr.contains("pipe"), "{o:?}");
}

/// `create` takes sizes as the daemon does (one parser, in the core): any
/// case, with or without `iB`, so that `--capacity 64m` works as `--size 64m`.
#[test]
fn cli_create_takes_sizes_as_the_daemon_does() {
    let d = Daemon::start("sizes", &[]);
    for args in [
        &["create", "pipe", "small", "--capacity", "4kib"][..],
        &["create", "queue", "q", "--slots", "8", "--slot-size", "2k"][..],
        &[
            "create",
            "queue",
            "r",
            "--slots",
            "2",
            "--slot-size",
            "64kb",
        ][..],
    ] {
        let o = shmbus(&d.bus, args);
        assert_eq!(
            (code(&o), o.stderr.as_str()),
            (Some(0), ""),
            "{args:?}: {o:?}"
        );
    }
    let mut got: Vec<(String, String)> = d
        .connect()
        .channels()
        .into_iter()
        .map(|c| {
            let p = match c.details {
                shmbus_client::ChannelDetails::Pipe(p) => format!("pipe {}", p.capacity),
                shmbus_client::ChannelDetails::Queue(q) => {
                    format!("queue {}x{}", q.slots, q.slot_size)
                }
                other => panic!("{other:?}"),
            };
            (c.name, p)
        })
        .collect();
    got.sort();
    let want = [
        ("q", "queue 8x2048"),
        ("r", "queue 2x65536"),
        ("small", "pipe 4096"),
    ]
    .map(|(n, p)| (n.to_owned(), p.to_owned()));
    assert_eq!(got, want);
    // `64m` is 64 MiB: the daemon is asked for it (and has no room for it in
    // this test's 1 MiB segment).
    let o = shmbus(&d.bus, &["create", "pipe", "big", "--capacity", "64m"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    let need = shmbus::pipe::body_len(64 << 20);
    assert!(o.stderr.contains(&format!("needs {need} bytes")), "{o:?}");
    // A bad size is a usage error naming the value, before any request.
    let o = shmbus(&d.bus, &["create", "pipe", "p", "--capacity", "64q"]);
    assert_eq!(code(&o), Some(2), "{o:?}");
    assert!(o.stderr.contains("64q"), "{o:?}");
    assert_eq!(d.connect().channels().len(), 3);
}

/// Splits `top`'s plain output into tables: each is a title line, a header
/// and one row per channel; tables are separated by an empty line.
fn tables(out: &str) -> Vec<Vec<Vec<String>>> {
    out.split("\n\n")
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.lines()
                .map(|l| l.split_whitespace().map(str::to_owned).collect())
                .collect()
        })
        .collect()
}

/// `top` while this process sends through a pipe, puts to and takes from a
/// queue, and stores a value, in a loop on threads: every table shows a
/// non-zero rate for each, the depth and the attached ends, and the output
/// (not a terminal) holds no escape codes.
#[test]
fn cli_top_shows_rates_of_a_busy_bus() {
    let d = Daemon::start("top", &["--queue", "jobs:64:32", "--value", "temp:f64"]);
    let bus = d.connect();
    let pipe = bus.pipe_with_capacity("p", 4096).unwrap();
    let mut tx = pipe.sender().unwrap();
    let mut rx = pipe.receiver().unwrap();
    let q = bus.open_queue("jobs").unwrap();
    let v = bus.open_value::<f64>("temp").unwrap();
    let stop = Arc::new(AtomicU32::new(0));
    let stop2 = Arc::clone(&stop);
    // One thread does all of it, one frame/item/store a millisecond, so that
    // it never competes for long with `top` on a small machine.
    let worker = std::thread::spawn(move || {
        let mut i = 0u64;
        // Relaxed: a stop flag; no data depends on it.
        while stop2.load(Ordering::Relaxed) == 0 {
            tx.send_timeout(b"0123456789abcdef", support::WATCHDOG)
                .unwrap();
            rx.recv_timeout(support::WATCHDOG).unwrap();
            q.put_timeout(b"job", support::WATCHDOG).unwrap();
            q.get_timeout(support::WATCHDOG).unwrap();
            v.store(i as f64).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let o = shmbus(&d.bus, &["top", "-n", "2", "--interval", "0.5"]);
    stop.store(1, Ordering::Relaxed);
    worker.join().unwrap();
    assert_eq!((code(&o), o.stderr.as_str()), (Some(0), ""), "{o:?}");
    let out = o.stdout_str();
    assert!(
        !out.contains('\x1b'),
        "escape codes in plain output: {out:?}"
    );
    let tables = tables(&out);
    assert_eq!(tables.len(), 2, "{out}");
    let me = std::process::id();
    for t in &tables {
        assert_eq!(t[0][0..2], ["bus", format!("{}:", d.bus).as_str()], "{out}");
        assert_eq!(
            t[1],
            ["NAME", "KIND", "CAPACITY", "DEPTH", "IN", "OUT", "ATTACHED"],
            "{out}"
        );
        let row = |name: &str| {
            t.iter()
                .find(|r| r[0] == name)
                .unwrap_or_else(|| panic!("no row {name}: {out}"))
                .clone()
        };
        let p = row("p");
        assert_eq!(p[1..3], ["pipe", "4096"], "{out}");
        for rate in &p[4..6] {
            assert!(
                rate.ends_with("B/s") && rate != "0B/s",
                "pipe rate {rate}: {out}"
            );
        }
        assert_eq!(p[6], format!("sender:{me},receiver:{me}"), "{out}");
        let jobs = row("jobs");
        assert_eq!(jobs[1..3], ["queue", "64x32"], "{out}");
        for rate in &jobs[4..6] {
            assert!(
                rate.ends_with("/s") && rate != "0/s",
                "queue rate {rate}: {out}"
            );
        }
        let temp = row("temp");
        assert_eq!(temp[1..3], ["value", "f64[1]"], "{out}");
        assert!(temp[3].starts_with('v'), "{out}");
        assert!(temp[4] != "0/s" && temp[4].ends_with("/s"), "{out}");
        assert_eq!(temp[5..], ["-", "-"], "{out}");
    }
}

/// `top` on an idle bus: zero rates, and a channel made between two samples
/// has none yet.
#[test]
fn cli_top_on_an_idle_bus() {
    let d = Daemon::start("top-idle", &["--pipe", "idle:4096"]);
    let o = shmbus(&d.bus, &["top", "-n", "1", "-i", "0.1"]);
    assert_eq!((code(&o), o.stderr.as_str()), (Some(0), ""), "{o:?}");
    let out = o.stdout_str();
    let tables = tables(&out);
    assert_eq!(tables.len(), 1, "{out}");
    assert_eq!(
        tables[0][2],
        ["idle", "pipe", "4096", "0", "0B/s", "0B/s", "-"],
        "{out}"
    );
}

/// True once process `pid` catches SIGINT (`SigCgt` in its status).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .is_some_and(|m| m & (1 << (rustix::process::Signal::INT.as_raw() - 1)) != 0)
}

/// `top` sleeps through its interval in one wait (no slices), and SIGINT
/// still ends it at once with status 130.
#[test]
fn cli_top_leaves_on_ctrl_c_during_its_interval() {
    let d = Daemon::start("top-int", &[]);
    let t = support::shmbus_bg(&d.bus, &["top", "--interval", "3600"]);
    let deadline = std::time::Instant::now() + support::WATCHDOG;
    while !catches_sigint(t.pid()) {
        assert!(
            std::time::Instant::now() < deadline,
            "top never set its handler"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.signal(rustix::process::Signal::INT);
    let o = t.wait(support::WATCHDOG);
    assert_eq!(code(&o), Some(130), "{o:?}");
}
