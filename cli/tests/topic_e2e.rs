//! End-to-end tests of topics through the `shmbus` command against a real
//! `shmbusd`: `create topic`, `pub`, `sub` (with history), `send`/`recv` on
//! a topic, `ls`, and the missed count of a lossy subscriber.
//!
//! The tests of the library are in `client/tests/multiproc_topic.rs`.

use shmbus_test_support as support;

use support::{eventually, shmbus, shmbus_bg, Daemon, WATCHDOG};

fn code(o: &support::Output) -> Option<i32> {
    o.status.code()
}

/// Two `sub` processes each print every message one `pub` sends.
#[test]
fn every_subscriber_prints_every_message() {
    let d = Daemon::start("t-cli", &["--topic", "news:8:64"]);
    let subs: Vec<_> = (0..2)
        .map(|_| shmbus_bg(&d.bus, &["sub", "news", "-n", "20"]))
        .collect();
    let b = d.connect();
    let t = b.open_topic("news").unwrap();
    eventually("both subscribers joined", || {
        (t.stats().subscribers == 2).then_some(())
    });
    let msgs: Vec<String> = (0..20).map(|k| format!("m{k}")).collect();
    let mut args = vec!["pub", "news"];
    args.extend(msgs.iter().map(String::as_str));
    let o = shmbus(&d.bus, &args);
    assert_eq!(code(&o), Some(0), "{o:?}");
    for s in subs {
        let o = s.wait(WATCHDOG);
        assert_eq!(code(&o), Some(0), "{o:?}");
        let lines: Vec<String> = o.stdout_str().lines().map(str::to_owned).collect();
        assert_eq!(lines, msgs);
    }
    // History: the last two, then a timeout (exit 124).
    let o = shmbus(
        &d.bus,
        &["sub", "news", "--history", "2", "--timeout", "0.2"],
    );
    assert_eq!(code(&o), Some(124), "{o:?}");
    assert_eq!(o.stdout_str(), "m18\nm19\n");
    // `send` and `recv` use a topic as a topic.
    let r = shmbus_bg(&d.bus, &["recv", "news", "-n", "1"]);
    eventually("the receiver joined", || {
        (t.stats().subscribers == 1).then_some(())
    });
    assert_eq!(
        code(&shmbus(&d.bus, &["send", "news", "via-send"])),
        Some(0)
    );
    let o = r.wait(WATCHDOG);
    assert_eq!(o.stdout_str(), "via-send\n", "{o:?}");
    let ls = shmbus(&d.bus, &["ls"]).stdout_str();
    let row = ls.lines().find(|l| l.starts_with("news")).unwrap_or("");
    assert!(
        row.contains("topic") && row.contains("8x64 lossless") && row.contains("0 subscribers"),
        "{ls}"
    );
}

/// `create topic --lossy`; a subscriber that starts behind is told on
/// stderr how many it missed, and prints the rest.
#[test]
fn lossy_subscriber_reports_what_it_missed() {
    let d = Daemon::start("t-cli-lossy", &[]);
    let o = shmbus(
        &d.bus,
        &["create", "topic", "feed", "--slots", "4", "--lossy"],
    );
    assert_eq!(code(&o), Some(0), "{o:?}");
    // Join first, then fall behind: the subscriber reads nothing until
    // the publisher has lapped the ring twice.
    let b = d.connect();
    let t = b.open_topic("feed").unwrap();
    assert!(t.is_lossy());
    let s = t.subscribe().unwrap();
    let msgs: Vec<String> = (0..10).map(|k| k.to_string()).collect();
    let mut args = vec!["pub", "feed"];
    args.extend(msgs.iter().map(String::as_str));
    assert_eq!(code(&shmbus(&d.bus, &args)), Some(0));
    let mut got = Vec::new();
    let mut missed = 0;
    loop {
        match s.try_recv() {
            Ok(m) => got.push(String::from_utf8(m).unwrap()),
            Err(shmbus_client::Error::Lagged(n)) => missed += n,
            Err(shmbus_client::Error::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len() as u64 + missed, 10, "{got:?} missed {missed}");
    assert!(missed > 0 && got.last().map(String::as_str) == Some("9"));
    // The command line: `ls` shows the mode.
    let ls = shmbus(&d.bus, &["ls"]).stdout_str();
    assert!(
        ls.lines()
            .any(|l| l.starts_with("feed") && l.contains("lossy")),
        "{ls}"
    );
    // A kind mismatch is explained.
    assert_eq!(code(&shmbus(&d.bus, &["create", "queue", "jobs"])), Some(0));
    let o = shmbus(&d.bus, &["pub", "jobs", "x"]);
    assert_eq!(code(&o), Some(1));
    assert!(o.stderr.contains("not a topic"), "{o:?}");
}
