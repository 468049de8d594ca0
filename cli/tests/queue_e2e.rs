//! End-to-end tests of queues: the client library and the `shmbus` command
//! against a real `shmbusd` and real processes.
//!
//! The tests of the library alone are in `client/tests/queue_e2e.rs`.

use shmbus_test_support as support;

use std::collections::HashSet;

use support::{shmbus, shmbus_bg, Daemon, WATCHDOG};

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn cli_several_senders_and_receivers_share_a_queue() {
    let d = Daemon::start("q-cli", &["--queue", "jobs:8:32"]);
    const RECEIVERS: usize = 3;
    const SENDERS: usize = 4;
    const EACH: usize = 30;
    let per_receiver = SENDERS * EACH / RECEIVERS;
    // Receivers first: they block until items come.
    let n = per_receiver.to_string();
    let rx: Vec<_> = (0..RECEIVERS)
        .map(|_| shmbus_bg(&d.bus, &["recv", "jobs", "-n", &n]))
        .collect();
    let tx: Vec<_> = (0..SENDERS)
        .map(|s| {
            let msgs: Vec<String> = (0..EACH).map(|k| format!("s{s}-{k}")).collect();
            let mut args = vec!["send", "jobs"];
            args.extend(msgs.iter().map(String::as_str));
            shmbus_bg(&d.bus, &args)
        })
        .collect();
    for t in tx {
        let o = t.wait(WATCHDOG);
        assert_eq!(code(&o), Some(0), "{o:?}");
    }
    let mut all = HashSet::new();
    for r in rx {
        let o = r.wait(WATCHDOG);
        assert_eq!(code(&o), Some(0), "{o:?}");
        let lines: Vec<String> = o.stdout_str().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), per_receiver, "{o:?}");
        for l in lines {
            assert!(all.insert(l.clone()), "{l} received twice");
        }
    }
    for s in 0..SENDERS {
        for k in 0..EACH {
            assert!(all.contains(&format!("s{s}-{k}")), "s{s}-{k} lost");
        }
    }
    // `ls` shows the queue, now empty.
    let o = shmbus(&d.bus, &["ls"]);
    let ls = o.stdout_str();
    let row = ls
        .lines()
        .find(|l| l.starts_with("jobs"))
        .expect("jobs row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..4], ["jobs", "queue", "8x32", "0"], "{ls}");
}

#[test]
fn cli_create_queue_and_pipe_and_bad_input() {
    let d = Daemon::start("q-create", &[]);
    for slots in ["3", "0"] {
        let o = shmbus(&d.bus, &["create", "queue", "q", "--slots", slots]);
        assert_eq!(code(&o), Some(1), "{o:?}");
        assert!(
            o.stderr.contains("power of two") && o.stderr.contains(&format!("slots {slots}")),
            "{o:?}"
        );
    }
    let o = shmbus(
        &d.bus,
        &["create", "queue", "q", "--slots", "8", "--slot-size", "16"],
    );
    assert_eq!(code(&o), Some(0), "{o:?}");
    // Again with the same parameters: fine; with others: refused.
    let o = shmbus(&d.bus, &["create", "queue", "q", "--slots", "8"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = shmbus(&d.bus, &["create", "queue", "q", "--slots", "16"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    let o = shmbus(&d.bus, &["create", "pipe", "p", "--capacity", "4K"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    // Kind mismatch both ways.
    let o = shmbus(&d.bus, &["create", "pipe", "q"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(o.stderr.contains("queue"), "{o:?}");
    let o = shmbus(&d.bus, &["create", "queue", "p"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(o.stderr.contains("pipe"), "{o:?}");
    // Too large for a slot.
    let o = shmbus(&d.bus, &["send", "q", "0123456789abcdefX"]);
    assert_eq!(code(&o), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("17 bytes") && o.stderr.contains("16 bytes"),
        "{o:?}"
    );
    // Send and receive with a timeout.
    let o = shmbus(&d.bus, &["send", "q", "a", "b"]);
    assert_eq!(code(&o), Some(0), "{o:?}");
    let o = shmbus(&d.bus, &["ls"]);
    assert!(
        o.stdout_str()
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4] == ["q", "queue", "8x16", "2"]),
        "{o:?}"
    );
    let o = shmbus(&d.bus, &["recv", "q", "--timeout", "0.2"]);
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert_eq!(o.stdout_str(), "a\nb\n");
}
