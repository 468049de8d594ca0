//! End-to-end tests of values and arrays: the library against a real
//! `shmbusd`, and the `shmbus create value|array`, `get`, `set`, `add` and
//! `watch` commands, including type errors and Python typecodes.
//!
//! The tests of the library alone are in `client/tests/table_e2e.rs`.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use shmbus_client::Bus;
use support::{shmbus, shmbus_bg, sleeps_in_futex, Daemon, WATCHDOG};

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

/// Runs `shmbus ARGS`, expects success, returns stdout.
fn ok(bus: &str, args: &[&str]) -> String {
    let o = shmbus(bus, args);
    assert_eq!(code(&o), Some(0), "shmbus {args:?}: {o:?}");
    assert!(o.stderr.is_empty(), "shmbus {args:?}: {o:?}");
    o.stdout_str()
}

/// Runs `shmbus ARGS`, expects exit status 1, returns stderr.
fn fails(bus: &str, args: &[&str]) -> String {
    let o = shmbus(bus, args);
    assert_eq!(code(&o), Some(1), "shmbus {args:?}: {o:?}");
    assert!(o.stdout.is_empty(), "shmbus {args:?}: {o:?}");
    assert!(o.stderr.starts_with("shmbus: "), "{o:?}");
    o.stderr
}

#[test]
fn cli_create_get_set_add_with_python_typecodes() {
    let d = Daemon::start("tbl-cli", &["--value", "hits:L", "--array", "prices:d:3"]);
    let b = d.bus.as_str();
    assert_eq!(ok(b, &["get", "hits"]), "0\n");
    assert_eq!(ok(b, &["add", "hits", "5"]), "5\n");
    assert_eq!(ok(b, &["add", "hits", "2"]), "7\n");
    assert_eq!(ok(b, &["get", "prices"]), "0 0 0\n");
    assert_eq!(ok(b, &["set", "prices", "1.5", "-2", "1e3"]), "");
    assert_eq!(ok(b, &["get", "prices"]), "1.5 -2 1000\n");
    assert_eq!(ok(b, &["add", "prices", "-0.5"]), "1 -2.5 999.5\n");

    // Every typecode, with its range.
    for (i, (tc, v)) in [
        ("b", "-128"),
        ("B", "255"),
        ("h", "-32768"),
        ("H", "65535"),
        ("i", "-2147483648"),
        ("I", "4294967295"),
        ("l", "-9223372036854775808"),
        ("L", "18446744073709551615"),
        ("q", "-1"),
        ("Q", "1"),
        ("f", "0.25"),
        ("d", "-0.125"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("tc{i}");
        assert_eq!(ok(b, &["create", "value", &name, tc]), "");
        assert_eq!(ok(b, &["set", &name, v]), "");
        assert_eq!(ok(b, &["get", &name]), format!("{v}\n"), "{tc}");
    }
    assert_eq!(ok(b, &["create", "array", "small", "i16", "4"]), "");
    assert_eq!(ok(b, &["set", "small", "-1", "2", "-3", "4"]), "");
    assert_eq!(ok(b, &["get", "small"]), "-1 2 -3 4\n");
    // Creating what exists with the same parameters is fine.
    assert_eq!(ok(b, &["create", "array", "small", "h", "4"]), "");
    let ls = ok(b, &["ls"]);
    assert!(ls.contains("small") && ls.contains("i16[4]"), "{ls}");

    // The library sees what the command wrote.
    let bus = Bus::connect_to(b).unwrap();
    assert_eq!(
        bus.open_array::<i16>("small").unwrap().read(),
        [-1, 2, -3, 4]
    );
    assert_eq!(bus.open_value::<u64>("hits").unwrap().load(), 7);
}

#[test]
fn cli_type_errors_are_clear() {
    let d = Daemon::start("tbl-err", &["--value", "n:B", "--array", "a:i:3"]);
    let b = d.bus.as_str();
    let e = fails(b, &["get", "missing"]);
    assert!(e.contains("no value or array named missing"), "{e}");
    assert!(e.contains("shmbus create value missing"), "{e}");
    // `get` on a missing name does not create it.
    assert!(!ok(b, &["ls"]).contains("missing"));

    let e = fails(b, &["set", "n", "256"]);
    assert!(
        e.contains("\"256\" is not a valid u8") && e.contains("0 to 255"),
        "{e}"
    );
    let e = fails(b, &["set", "n", "x"]);
    assert!(e.contains("not a valid u8"), "{e}");
    let e = fails(b, &["set", "a", "1", "2"]);
    assert!(e.contains("has 3 elements, but 2 values were given"), "{e}");
    let e = fails(b, &["set", "a", "1", "2", "3.5"]);
    assert!(e.contains("\"3.5\" is not a valid i32"), "{e}");
    let e = fails(b, &["add", "n", "1.5"]);
    assert!(e.contains("not a valid u8"), "{e}");
    assert_eq!(ok(b, &["get", "a"]), "0 0 0\n", "failed sets wrote nothing");

    let e = fails(b, &["create", "array", "a", "d", "3"]);
    assert!(e.contains("i32[3]") && e.contains("f64[3]"), "{e}");
    let e = fails(b, &["create", "array", "a", "i", "4"]);
    assert!(e.contains("i32[3]") && e.contains("i32[4]"), "{e}");
    let e = fails(b, &["create", "value", "a", "i"]);
    assert!(e.contains("array"), "{e}");
    let e = fails(b, &["create", "array", "z", "i", "0"]);
    assert!(e.contains("from 1"), "{e}");

    // Unknown types are command-line errors (status 2).
    let o = shmbus(b, &["create", "value", "v", "x"]);
    assert_eq!(code(&o), Some(2), "{o:?}");
    assert!(o.stderr.contains("not an element type"), "{o:?}");

    // Pipes are not values.
    ok(b, &["create", "pipe", "p"]);
    let e = fails(b, &["get", "p"]);
    assert!(e.contains("pipe"), "{e}");
}

#[test]
fn cli_watch_prints_the_current_value_then_changes_and_times_out() {
    let d = Daemon::start("tbl-watch", &["--value", "x:i32"]);
    let b = d.bus.as_str();
    assert_eq!(ok(b, &["set", "x", "42"]), "");
    // The current value first: `-n 1` prints it and stops, without waiting
    // for a change.
    let o = shmbus(b, &["watch", "x", "-n", "1"]);
    assert_eq!(
        (code(&o), o.stdout_str().as_str()),
        (Some(0), "42\n"),
        "{o:?}"
    );
    let o = shmbus(b, &["watch", "x", "-n", "0"]);
    assert_eq!((code(&o), o.stdout.len()), (Some(0), 0), "{o:?}");

    // Then one line per change: keep storing until it has seen one.
    let w = shmbus_bg(b, &["watch", "x", "-n", "2", "--timeout", "30"]);
    let mut w = Some(w);
    let deadline = Instant::now() + WATCHDOG;
    let mut k = 0;
    let out = loop {
        k += 1;
        assert_eq!(ok(b, &["set", "x", &(100 + k).to_string()]), "");
        let p = w.as_mut().unwrap();
        if !p.running() {
            break w.take().unwrap().wait(WATCHDOG);
        }
        assert!(Instant::now() < deadline, "watch never saw a change");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code(&out), Some(0), "{out:?}");
    let lines: Vec<i32> = out
        .stdout_str()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // The value when it started (42, or a store made before it read), then
    // a later one.
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(lines[0] == 42 || lines[0] > 100, "{out:?}");
    assert!(lines[1] > 100 && lines[1] > lines[0], "{out:?}");

    // The timeout counts from the last line printed.
    let o = shmbus(b, &["watch", "x", "--timeout", "0.1"]);
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert_eq!(o.stdout_str().lines().count(), 1, "{o:?}");
    assert!(o.stderr.contains("did not change"), "{o:?}");
}

#[test]
fn cli_watch_leaves_cleanly_on_ctrl_c() {
    let d = Daemon::start("tbl-int", &["--value", "x:u8"]);
    let w = shmbus_bg(&d.bus, &["watch", "x"]);
    let deadline = Instant::now() + WATCHDOG;
    while !sleeps_in_futex(w.pid()) {
        assert!(Instant::now() < deadline, "watch never slept");
        std::thread::sleep(Duration::from_millis(5));
    }
    w.signal(rustix::process::Signal::INT);
    let o = w.wait(WATCHDOG);
    assert_eq!(code(&o), Some(130), "{o:?}");
    // The current value, printed before it slept.
    assert_eq!(o.stdout_str(), "0\n", "{o:?}");
}
