//! Topics between real processes through a real daemon and a real
//! `/dev/shm` segment: publisher processes fan numbered messages out to
//! subscriber processes, lossless (each subscriber gets every message once,
//! all in the same order) and lossy (whole messages in order, missed counts
//! exact); a subscriber killed while publishers wait for it, and a publisher
//! killed under load, both repaired by the daemon.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::collections::HashMap;
use std::time::Duration;

use rustix::process::Signal;
use shmbus_client::{Bus, Error};
use support::{fnv, Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Message size: publisher, sequence number, filler, checksum.
const MSG: usize = 48;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "publisher" => publisher(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap()),
        "subscriber" => subscriber(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap()),
        "idle_subscriber" => idle_subscriber(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

fn message(p: u64, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&p.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[16..MSG - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ p as u8;
    }
    let sum = fnv(&m[..MSG - 8]);
    m[MSG - 8..].copy_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a message and returns `(publisher, seq)`.
fn parse(m: &[u8]) -> (u64, u64) {
    assert_eq!(m.len(), MSG, "wrong length");
    let sum = u64::from_le_bytes(m[MSG - 8..].try_into().unwrap());
    assert_eq!(sum, fnv(&m[..MSG - 8]), "checksum mismatch (torn message)");
    (
        u64::from_le_bytes(m[..8].try_into().unwrap()),
        u64::from_le_bytes(m[8..16].try_into().unwrap()),
    )
}

/// Publishes `count` messages (0: until killed), a third through zero-copy
/// claims; prints "started" after the first.
fn publisher(bus: &str, id: u64, count: u64) {
    let b = Bus::connect_to(bus).unwrap();
    let p = b.open_topic("t").unwrap().publisher();
    let mut seq = 0;
    while count == 0 || seq < count {
        let m = message(id, seq);
        if seq % 3 == 0 {
            let mut c = p.claim(MSG).unwrap();
            c.write_at(0, &m);
            c.commit().unwrap();
        } else {
            p.publish(&m).unwrap();
        }
        if seq == 0 {
            println!("started");
        }
        seq += 1;
    }
}

/// Subscribes, prints "subscribed", then receives until it has accounted
/// for `total` messages (received, or missed when the topic is lossy), with
/// a pause every `pause_every` messages (0: never). Checks each message and
/// each publisher's order; prints the count received, the count missed and
/// a hash of the order received.
fn subscriber(bus: &str, total: u64, pause_every: u64) {
    let b = Bus::connect_to(bus).unwrap();
    let s = b.open_topic("t").unwrap().subscribe().unwrap();
    println!("subscribed");
    let mut last: HashMap<u64, u64> = HashMap::new();
    let (mut got, mut missed, mut hash) = (0u64, 0u64, 0xcbf2_9ce4_8422_2325u64);
    let mut buf = Vec::new();
    while got + missed < total {
        let r = if got.is_multiple_of(2) {
            s.recv_with(parse)
        } else {
            s.recv_into(&mut buf).map(|_| parse(&buf))
        };
        let (p, seq) = match r {
            Ok(x) => x,
            Err(Error::Lagged(n)) => {
                missed += n;
                continue;
            }
            Err(e) => panic!("recv: {e}"),
        };
        if let Some(prev) = last.insert(p, seq) {
            assert!(seq > prev, "publisher {p}: {seq} after {prev}");
            if missed == 0 {
                assert_eq!(seq, prev + 1, "publisher {p}: gap without a lag");
            }
        }
        hash = (hash ^ (p << 32 | seq)).wrapping_mul(0x100_0000_01b3);
        got += 1;
        if pause_every != 0 && got.is_multiple_of(pause_every) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    println!("got {got} missed {missed} order {hash:016x}");
}

/// Subscribes and never reads, until killed.
fn idle_subscriber(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let _s = b.open_topic("t").unwrap().subscribe().unwrap();
    println!("subscribed");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn spawn_subscribers(bus: &str, n: usize, total: u64, pause_every: u64) -> Vec<Proc> {
    (0..n)
        .map(|_| {
            let mut s = Proc::spawn_role(
                DISPATCH,
                "subscriber",
                &[bus, &total.to_string(), &pause_every.to_string()],
            );
            s.expect_line("subscribed");
            s
        })
        .collect()
}

/// `(got, missed, order)` from a subscriber's last line.
fn summary(out: &str) -> (u64, u64, String) {
    let line = out.lines().find(|l| l.starts_with("got ")).unwrap_or("");
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.len(), 6, "subscriber said {out:?}");
    (
        w[1].parse().unwrap(),
        w[3].parse().unwrap(),
        w[5].to_owned(),
    )
}

/// Lossless: two publishers, three subscribers (one slow, so publishers
/// wait for it): every subscriber gets every message once, in one order.
/// The topic is declared on the daemon's command line.
#[test]
fn lossless_fanout_every_subscriber_gets_everything() {
    let d = Daemon::start_role(DISPATCH, "topic", &["--topic", "t:64:48"]);
    let per = 20_000u64;
    let mut subs = spawn_subscribers(&d.bus, 2, 2 * per, 0);
    subs.extend(spawn_subscribers(&d.bus, 1, 2 * per, 500));
    let pubs: Vec<Proc> = (0..2)
        .map(|p| {
            Proc::spawn_role(
                DISPATCH,
                "publisher",
                &[&d.bus, &p.to_string(), &per.to_string()],
            )
        })
        .collect();
    for p in pubs {
        p.expect_success();
    }
    let results: Vec<_> = subs
        .into_iter()
        .map(|s| summary(&s.expect_success()))
        .collect();
    for r in &results {
        assert_eq!((r.0, r.1), (2 * per, 0), "{results:?}");
        assert_eq!(
            r.2, results[0].2,
            "subscribers saw different orders: {results:?}"
        );
    }
    println!(
        "{} subscribers got {} messages each, in one order",
        results.len(),
        2 * per
    );
}

/// Lossy: one publisher never waits; a slow subscriber is told exactly what
/// it missed, a fast one usually misses nothing; every message whole.
#[test]
fn lossy_fanout_counts_what_it_missed() {
    let d = Daemon::start_role(DISPATCH, "topic-lossy", &["--topic", "t:16:48:lossy"]);
    let b = Bus::connect_to(&d.bus).unwrap();
    assert!(b.open_topic("t").unwrap().is_lossy());
    let per = 50_000u64;
    let mut subs = spawn_subscribers(&d.bus, 1, per, 0);
    subs.extend(spawn_subscribers(&d.bus, 1, per, 100));
    Proc::spawn_role(DISPATCH, "publisher", &[&d.bus, "0", &per.to_string()]).expect_success();
    let results: Vec<_> = subs
        .into_iter()
        .map(|s| summary(&s.expect_success()))
        .collect();
    for r in &results {
        assert_eq!(r.0 + r.1, per, "{results:?}");
    }
    println!("lossy subscribers (got, missed): {results:?}");
}

/// A lossless topic's subscriber is killed while a publisher waits for it:
/// the daemon frees its place, the publisher finishes, and the live
/// subscriber gets everything.
#[test]
fn killed_subscriber_releases_publishers() {
    let d = Daemon::start_role(DISPATCH, "topic-kill-sub", &["--topic", "t:16:48"]);
    let per = 2_000u64;
    let mut victim = Proc::spawn_role(DISPATCH, "idle_subscriber", &[&d.bus]);
    victim.expect_line("subscribed");
    let live = spawn_subscribers(&d.bus, 1, per, 0);
    let mut p = Proc::spawn_role(DISPATCH, "publisher", &[&d.bus, "0", &per.to_string()]);
    p.expect_line("started");
    // The publisher fills the ring and waits for the idle subscriber.
    let b = Bus::connect_to(&d.bus).unwrap();
    let t = b.open_topic("t").unwrap();
    support::eventually("the ring to fill", || {
        (t.stats().max_lag >= 16).then_some(())
    });
    assert!(p.running(), "the publisher must be waiting");
    victim.signal(Signal::KILL);
    assert!(!victim.wait(support::WATCHDOG).status.success());
    p.expect_success();
    for s in live {
        assert_eq!(summary(&s.expect_success()).0, per);
    }
    assert_eq!(t.stats().subscribers, 0);
}

/// A publisher killed under load: the daemon tombstones the slot it held,
/// subscribers go on; each gets the live publisher's messages and a prefix
/// of the victim's.
#[test]
fn killed_publisher_is_tombstoned_under_load() {
    let d = Daemon::start_role(DISPATCH, "topic-kill-pub", &["--topic", "t:16:48"]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let t = b.open_topic("t").unwrap();
    let sub = t.subscribe().unwrap();
    let mut victim = Proc::spawn_role(DISPATCH, "publisher", &[&d.bus, "9", "0"]);
    victim.expect_line("started");
    let live = Proc::spawn_role(DISPATCH, "publisher", &[&d.bus, "0", "20000"]);
    let reader = std::thread::spawn(move || {
        let mut seen: HashMap<u64, Vec<u64>> = HashMap::new();
        while seen.get(&0).map_or(0, Vec::len) < 20_000 {
            let (p, s) = sub
                .recv_with_timeout(Duration::from_secs(60), parse)
                .unwrap();
            seen.entry(p).or_default().push(s);
        }
        (seen, sub)
    });
    std::thread::sleep(Duration::from_millis(30));
    victim.signal(Signal::KILL);
    assert!(!victim.wait(support::WATCHDOG).status.success());
    live.expect_success();
    let (seen, sub) = reader.join().unwrap();
    assert_eq!(seen[&0], (0..20_000).collect::<Vec<_>>());
    let mut v = seen.get(&9).cloned().unwrap_or_default();
    // The topic is whole: a fresh publish goes through. The victim may have
    // published on after the live publisher's last message (if that one
    // finished within the 30 ms), and the reader stopped there: a lossless
    // publish waits for this very subscriber, so read those first whenever
    // the ring is full (a blocking publish here would wait for itself).
    let publisher = t.publisher();
    loop {
        match publisher.try_publish(&message(1, 0)) {
            Ok(()) => break,
            Err(Error::Full) => match sub.recv_with_timeout(Duration::from_secs(10), parse) {
                Ok((9, s)) => v.push(s),
                other => panic!("{other:?}"),
            },
            Err(e) => panic!("{e:?}"),
        }
    }
    loop {
        match sub.recv_with_timeout(Duration::from_secs(10), parse) {
            Ok((1, 0)) => break,
            Ok((9, s)) => v.push(s),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));
    assert_eq!(
        v,
        (0..v.len() as u64).collect::<Vec<_>>(),
        "victim's messages a prefix"
    );
    println!("victim published {} messages before it was killed", v.len());
}
