//! Queues between real processes through a real daemon and a real `/dev/shm`
//! segment: several producer and consumer processes move numbered messages and
//! the test checks that each arrives exactly once; `join` across processes;
//! and a producer killed under load, whose claimed cell the daemon repairs.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;
use shmbus_client::{Bus, Error};
use support::{fnv, Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Producer and consumer processes.
const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 3;
/// Messages per producer (300,000 in all).
const PER_PRODUCER: u64 = 100_000;
/// Slots of the test queue: small, so it is often full and often empty.
const SLOTS: u64 = 256;
/// Message size: producer, sequence number, filler, checksum.
const MSG: usize = 64;
/// The producer id of the "stop" message each consumer ends on.
const STOP: u64 = 0xFFFF;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "producer" => producer(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap()),
        "consumer" => consumer(&args[0], &args[1]),
        "logging_consumer" => logging_consumer(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

fn message(producer: u64, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&producer.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[16..MSG - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ producer as u8;
    }
    let sum = fnv(&m[..MSG - 8]);
    m[MSG - 8..].copy_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a message and returns `(producer, seq)`.
fn parse(m: &[u8]) -> (u64, u64) {
    assert_eq!(m.len(), MSG, "wrong length");
    let sum = u64::from_le_bytes(m[MSG - 8..].try_into().unwrap());
    assert_eq!(sum, fnv(&m[..MSG - 8]), "checksum mismatch (torn message)");
    (
        u64::from_le_bytes(m[..8].try_into().unwrap()),
        u64::from_le_bytes(m[8..16].try_into().unwrap()),
    )
}

/// Puts `count` messages, a third of them through zero-copy claims. With
/// `count == 0`, puts until killed.
fn producer(bus: &str, id: u64, count: u64) {
    let b = Bus::connect_to(bus).unwrap();
    let q = b.queue("q").unwrap();
    println!("started");
    let mut seq = 0;
    while count == 0 || seq < count {
        let m = message(id, seq);
        if seq % 3 == 0 {
            let mut c = q.claim(MSG).unwrap();
            c.copy_from_slice(&m);
            c.commit().unwrap();
        } else {
            q.put(&m).unwrap();
        }
        seq += 1;
    }
}

/// Takes messages until a STOP message, checking each and that every
/// producer's messages come in order; writes the ids it took to `out`.
fn consumer(bus: &str, out: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let q = b.queue("q").unwrap();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut got: Vec<u8> = Vec::new();
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        let (p, seq) = if n.is_multiple_of(2) {
            q.get_with(parse).unwrap()
        } else {
            q.get_into(&mut buf).unwrap();
            parse(&buf)
        };
        q.task_done().unwrap();
        n += 1;
        if p == STOP {
            break;
        }
        if let Some(prev) = last.insert(p, seq) {
            assert!(seq > prev, "producer {p}: {seq} after {prev}");
        }
        got.extend_from_slice(&p.to_le_bytes());
        got.extend_from_slice(&seq.to_le_bytes());
    }
    std::fs::write(out, &got).unwrap();
    println!("consumed {}", got.len() / 16);
}

/// Takes messages until killed, each held in place for a millisecond, and
/// appends each id to `out` with one unbuffered write (so the file survives
/// SIGKILL).
fn logging_consumer(bus: &str, out: &str) {
    use std::io::Write;
    let b = Bus::connect_to(bus).unwrap();
    let q = b.queue("q").unwrap();
    let mut f = std::fs::File::create(out).unwrap();
    println!("started");
    loop {
        // Hold each item in place for a while, so that the kill most likely
        // lands while the victim holds a read claim.
        let (p, seq) = q
            .get_with(|m| {
                std::thread::sleep(Duration::from_millis(1));
                parse(m)
            })
            .unwrap();
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&p.to_le_bytes());
        rec[8..].copy_from_slice(&seq.to_le_bytes());
        f.write_all(&rec).unwrap();
    }
}

fn out_path(bus: &str, i: u64) -> PathBuf {
    std::env::temp_dir().join(format!("{bus}-consumer-{i}"))
}

/// Reads the consumers' files: how often each `(producer, seq)` was taken.
fn tally(bus: &str) -> HashMap<(u64, u64), u32> {
    let mut seen = HashMap::new();
    for i in 0..CONSUMERS {
        let path = out_path(bus, i);
        let data = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        for rec in data.chunks_exact(16) {
            let p = u64::from_le_bytes(rec[..8].try_into().unwrap());
            let s = u64::from_le_bytes(rec[8..].try_into().unwrap());
            *seen.entry((p, s)).or_insert(0) += 1;
        }
    }
    seen
}

fn spawn_consumers(bus: &str) -> Vec<Proc> {
    (0..CONSUMERS)
        .map(|i| {
            let out = out_path(bus, i);
            Proc::spawn_role(DISPATCH, "consumer", &[bus, out.to_str().unwrap()])
        })
        .collect()
}

/// Sends one STOP per consumer, then checks that `join` returns (every item,
/// STOPs included, was marked done by some consumer) and that the consumers
/// exit cleanly.
fn stop_consumers(b: &Bus, consumers: Vec<Proc>) {
    let q = b.queue("q").unwrap();
    for _ in 0..CONSUMERS {
        q.put(&message(STOP, 0)).unwrap();
    }
    q.join_timeout(Duration::from_secs(100))
        .expect("join: every item marked done");
    for c in consumers {
        c.expect_success();
    }
    assert!(q.is_empty());
}

#[test]
fn three_producers_three_consumers_exactly_once() {
    let d = Daemon::start_role(DISPATCH, "mpmc", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let q = b
        .queue_builder("q")
        .slots(SLOTS)
        .slot_size(MSG as u64)
        .open()
        .unwrap();
    let consumers = spawn_consumers(&d.bus);
    let count = PER_PRODUCER.to_string();
    let producers: Vec<Proc> = (0..PRODUCERS)
        .map(|p| Proc::spawn_role(DISPATCH, "producer", &[&d.bus, &p.to_string(), &count]))
        .collect();
    for p in producers {
        p.expect_success();
    }
    stop_consumers(&b, consumers);
    let seen = tally(&d.bus);
    let mut missing = 0;
    for p in 0..PRODUCERS {
        for s in 0..PER_PRODUCER {
            match seen.get(&(p, s)) {
                Some(1) => {}
                Some(n) => panic!("message ({p}, {s}) received {n} times"),
                None => missing += 1,
            }
        }
    }
    assert_eq!(missing, 0, "messages lost");
    assert_eq!(
        seen.len() as u64,
        PRODUCERS * PER_PRODUCER,
        "unknown messages"
    );
    println!("{} messages, each received once", seen.len());
    drop(q);
}

#[test]
fn killed_producer_is_repaired_under_load() {
    let d = Daemon::start_role(DISPATCH, "mpmc-kill", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    b.queue_builder("q")
        .slots(16)
        .slot_size(MSG as u64)
        .open()
        .unwrap();
    let consumers = spawn_consumers(&d.bus);
    // Producer 9 puts until killed; producers 0 and 1 put 20,000 each.
    let mut victim = Proc::spawn_role(DISPATCH, "producer", &[&d.bus, "9", "0"]);
    victim.expect_line("started");
    let live: Vec<Proc> = (0..2)
        .map(|p| Proc::spawn_role(DISPATCH, "producer", &[&d.bus, &p.to_string(), "20000"]))
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    victim.signal(Signal::KILL);
    let st = victim.wait(support::WATCHDOG).status;
    assert!(!st.success());
    for p in live {
        p.expect_success();
    }
    stop_consumers(&b, consumers);
    let seen = tally(&d.bus);
    for ((p, s), n) in &seen {
        assert_eq!(*n, 1, "message ({p}, {s}) received {n} times");
    }
    for p in 0..2 {
        for s in 0..20_000 {
            assert!(seen.contains_key(&(p, s)), "message ({p}, {s}) lost");
        }
    }
    // The victim's messages are a prefix: each put finished before the next
    // began, and the one it held when killed became a tombstone.
    let k = seen.keys().filter(|(p, _)| *p == 9).count() as u64;
    for s in 0..k {
        assert!(seen.contains_key(&(9, s)), "victim's message {s} lost");
    }
    println!("victim put {k} messages before it was killed");
    // The queue is whole: a fresh put and get go through.
    let q = b.queue("q").unwrap();
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), b"after");
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn killed_consumer_is_repaired_under_load() {
    let d = Daemon::start_role(DISPATCH, "mpmc-kill-rx", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    b.queue_builder("q")
        .slots(16)
        .slot_size(MSG as u64)
        .open()
        .unwrap();
    // Consumers 0..3 as usual; the victim logs to file index CONSUMERS.
    let consumers = spawn_consumers(&d.bus);
    let victim_out = out_path(&d.bus, CONSUMERS);
    let mut victim = Proc::spawn_role(
        DISPATCH,
        "logging_consumer",
        &[&d.bus, victim_out.to_str().unwrap()],
    );
    victim.expect_line("started");
    let producers: Vec<Proc> = (0..2)
        .map(|p| Proc::spawn_role(DISPATCH, "producer", &[&d.bus, &p.to_string(), "20000"]))
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    victim.signal(Signal::KILL);
    let st = victim.wait(support::WATCHDOG).status;
    assert!(!st.success());
    // Producers blocked on a cell the victim held must be released by the
    // daemon's repair, or they would never finish.
    for p in producers {
        p.expect_success();
    }
    let q = b.queue("q").unwrap();
    for _ in 0..CONSUMERS {
        q.put(&message(STOP, 0)).unwrap();
    }
    for c in consumers {
        c.expect_success();
    }
    let mut seen = tally(&d.bus);
    let data = std::fs::read(&victim_out).unwrap();
    let _ = std::fs::remove_file(&victim_out);
    for rec in data.chunks_exact(16) {
        let p = u64::from_le_bytes(rec[..8].try_into().unwrap());
        let s = u64::from_le_bytes(rec[8..].try_into().unwrap());
        *seen.entry((p, s)).or_insert(0) += 1;
    }
    for ((p, s), n) in &seen {
        assert_eq!(*n, 1, "message ({p}, {s}) received {n} times");
    }
    // At most one message is lost: the one the victim held when killed.
    let missing = (0..2)
        .flat_map(|p| (0..20_000).map(move |s| (p, s)))
        .filter(|k| !seen.contains_key(k))
        .count();
    assert!(missing <= 1, "{missing} messages lost");
    println!(
        "victim took {} messages; {missing} lost with it",
        data.len() / 16
    );
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), b"after");
}
