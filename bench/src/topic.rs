//! shmbus topic rows, through the client's public API only: round trip
//! through a `ping` and a `pong` topic with one subscriber each, and one-way
//! throughput from one publisher to 1, 2 or 4 subscribers.

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use hdrhistogram::Histogram;
use shmbus_client::{Bus, Error};

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, spawn_with, unique};

/// Slots of the throughput topics.
const TOPIC_SLOTS: u64 = 4096;
/// Slots of the round-trip topics.
const RT_SLOTS: u64 = 64;
/// Message size of the topic rows.
const MSG: usize = 64;

/// `CLOCK_MONOTONIC` in ns: comparable between processes.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn seq_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn open(bus: &Bus, name: &str, slots: u64) -> shmbus_client::Topic {
    bus.topic_builder(name)
        .slots(slots)
        .slot_size(MSG as u64)
        .open()
        .expect("topic")
}

/// Waits until `t` has `n` subscribers (the children joined).
fn wait_subscribers(t: &shmbus_client::Topic, n: u64) {
    let start = Instant::now();
    while t.stats().subscribers < n {
        assert!(start.elapsed().as_secs() < 60, "subscribers never joined");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Topic round trip of 64-byte messages: publish on `ping`, the child
/// (subscribed to `ping`) publishes it back on `pong`, to which we are
/// subscribed. Busy-polling `try_publish`/`try_recv_with`, or the blocking
/// `publish`/`recv_with` back to back.
pub(crate) fn round_trip(ctx: &Ctx, blocking: bool) -> Measured {
    let n = if blocking {
        ctx.counts.kernel_round_trips
    } else {
        ctx.counts.busy_round_trips
    };
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let tag = unique(if blocking { "trtb" } else { "trt" });
    let ping = open(&bus, &format!("{tag}-ping"), RT_SLOTS);
    let pong = open(&bus, &format!("{tag}-pong"), RT_SLOTS);
    let sub = pong.subscribe().expect("subscribe");
    let publisher = ping.publisher();
    let kid = spawn(
        "topic-echo",
        &[
            ctx.bus().to_owned(),
            tag,
            n.to_string(),
            blocking.to_string(),
        ],
        ctx.placement.child,
    );
    wait_subscribers(&ping, 1);
    let mut msg = [0u8; MSG];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..n {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        let got = if blocking {
            publisher.publish(&msg).expect("publish");
            sub.recv_with(seq_of).expect("recv")
        } else {
            while publisher.try_publish(&msg).is_err() {
                core::hint::spin_loop();
            }
            loop {
                if let Ok(v) = sub.try_recv_with(seq_of) {
                    break v;
                }
                core::hint::spin_loop();
            }
        };
        h.record(t.elapsed().as_nanos() as u64).expect("record");
        assert_eq!(got, i, "echo out of order");
    }
    kid.wait();
    Measured::latency(h)
}

/// The `topic-echo` role: receive every message of `ping`, publish it on
/// `pong`.
pub(crate) fn echo(bus: &str, tag: &str, n: u64, blocking: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let sub = b
        .open_topic(&format!("{tag}-ping"))
        .expect("ping topic")
        .subscribe()
        .expect("subscribe");
    let p = b
        .open_topic(&format!("{tag}-pong"))
        .expect("pong topic")
        .publisher();
    let mut msg = [0u8; MSG];
    for _ in 0..n {
        if blocking {
            sub.recv_with(|x| msg.copy_from_slice(x)).expect("recv");
            p.publish(&msg).expect("publish");
        } else {
            while sub.try_recv_with(|x| msg.copy_from_slice(x)).is_err() {
                core::hint::spin_loop();
            }
            while p.try_publish(&msg).is_err() {
                core::hint::spin_loop();
            }
        }
    }
}

/// One-way lossless throughput: one publisher process (blocking `publish`)
/// and `subs` subscriber processes (blocking `recv_with`), 64-byte
/// messages; messages per second from the first message any subscriber got
/// to the last message the last one got (each subscriber gets every
/// message). With more than one subscriber the 2 cpus are oversubscribed.
pub(crate) fn throughput(ctx: &Ctx, subs: u64) -> Measured {
    let n = ctx.counts.queue_messages;
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let cpus = [ctx.placement.child, ctx.placement.parent];
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let name = unique("t");
        let t = open(&bus, &name, TOPIC_SLOTS);
        let args = vec![ctx.bus().to_owned(), name.clone(), n.to_string()];
        let kids: Vec<_> = (0..subs)
            .map(|j| {
                spawn_with(
                    "topic-subscriber",
                    &args,
                    cpus[(j as usize + 1) % 2],
                    Stdio::null(),
                    Stdio::piped(),
                )
            })
            .collect();
        wait_subscribers(&t, subs);
        let publisher = spawn("topic-publisher", &args, cpus[0]);
        let (mut first, mut last) = (u64::MAX, 0u64);
        for mut k in kids {
            let mut out = String::new();
            k.stdout()
                .expect("piped")
                .read_to_string(&mut out)
                .expect("subscriber output");
            k.wait();
            let mut it = out
                .split_whitespace()
                .map(|x| x.parse::<u64>().expect("ns"));
            first = first.min(it.next().expect("first"));
            last = last.max(it.next().expect("last"));
        }
        publisher.wait();
        rates.push((n - 1) as f64 / ((last - first) as f64 / 1e9));
    }
    let mut m = Measured::rates(rates);
    if subs > 1 {
        m.note = format!("{} processes on 2 cpus", subs + 1);
    }
    m
}

/// The `topic-publisher` role.
pub(crate) fn publisher(bus: &str, name: &str, n: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let p = b.open_topic(name).expect("topic").publisher();
    let mut msg = [5u8; MSG];
    for i in 0..n {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        p.publish(&msg).expect("publish");
    }
}

/// The `topic-subscriber` role: prints the monotonic ns of its first and
/// last message.
pub(crate) fn subscriber(bus: &str, name: &str, n: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let s = b
        .open_topic(name)
        .expect("topic")
        .subscribe()
        .expect("subscribe");
    let mut buf = [0u8; MSG];
    let mut first = 0;
    for i in 0..n {
        match s.recv_with(|x| buf[..x.len()].copy_from_slice(x)) {
            Ok(()) => {}
            Err(Error::Lagged(k)) => panic!("lossless topic lagged by {k}"),
            Err(e) => panic!("recv: {e}"),
        }
        assert_eq!(seq_of(&buf), i, "message out of order");
        if i == 0 {
            first = now_ns();
        }
    }
    println!("{first} {}", now_ns());
}
