//! shmbus queue rows, through the client's public API only.

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use hdrhistogram::Histogram;
use shmbus_client::{Bus, Error};

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, spawn_with, unique};

/// Slots of the throughput queues.
const QUEUE_SLOTS: u64 = 4096;
/// Slots of the round-trip queues.
const RT_SLOTS: u64 = 64;
/// Item size of the queue rows.
const ITEM: usize = 64;

/// `CLOCK_MONOTONIC` in ns: comparable between processes, unlike `Instant`.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn seq_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Queue round trip of 64-byte items through a `ping` and a `pong` queue:
/// busy-polling `try_put`/`try_get_with` on both sides, or the blocking
/// `put`/`get_with` back to back (their spin phase usually catches the
/// answer).
pub(crate) fn round_trip(ctx: &Ctx, blocking: bool) -> Measured {
    let n = if blocking {
        ctx.counts.kernel_round_trips
    } else {
        ctx.counts.busy_round_trips
    };
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let tag = unique(if blocking { "qrtb" } else { "qrt" });
    let open = |side: &str| {
        bus.queue_builder(&format!("{tag}-{side}"))
            .slots(RT_SLOTS)
            .slot_size(ITEM as u64)
            .open()
            .expect("queue")
    };
    let (ping, pong) = (open("ping"), open("pong"));
    let kid = spawn(
        "queue-echo",
        &[
            ctx.bus().to_owned(),
            tag,
            n.to_string(),
            blocking.to_string(),
        ],
        ctx.placement.child,
    );
    let mut item = [0u8; ITEM];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..n {
        item[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        let got = if blocking {
            ping.put(&item).expect("put");
            pong.get_with(seq_of).expect("get")
        } else {
            while ping.try_put(&item).is_err() {
                core::hint::spin_loop();
            }
            loop {
                if let Ok(v) = pong.try_get_with(seq_of) {
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

/// The `queue-echo` role: take every item from `ping`, put it on `pong`.
pub(crate) fn echo(bus: &str, tag: &str, n: u64, blocking: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let ping = b.open_queue(&format!("{tag}-ping")).expect("ping queue");
    let pong = b.open_queue(&format!("{tag}-pong")).expect("pong queue");
    let mut item = [0u8; ITEM];
    for _ in 0..n {
        if blocking {
            ping.get_with(|x| item.copy_from_slice(x)).expect("get");
            pong.put(&item).expect("put");
        } else {
            while ping.try_get_with(|x| item.copy_from_slice(x)).is_err() {
                core::hint::spin_loop();
            }
            while pong.try_put(&item).is_err() {
                core::hint::spin_loop();
            }
        }
    }
}

/// How the throughput rows' producers and consumers wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The blocking `put` / `get_with`, which spin before they sleep.
    Blocking,
    /// Busy-polling `try_put` / `try_get_with`, one `spin_loop` between tries.
    Busy,
    /// As `Busy`, but a consumer that finds the queue empty spins
    /// [`BACKOFF_SPINS`] times before it looks again, so that items pile up
    /// and it takes them in a run instead of polling the very cell the
    /// producer is claiming and filling (see "Throughput" in the queue's
    /// module docs): the price of a busy consumer at the head of the queue.
    Backoff,
}

/// `spin_loop`s a [`Wait::Backoff`] consumer waits after an empty try (about
/// 1.8 µs on the development machine's AMD EPYC, 28 ns a `pause`).
pub(crate) const BACKOFF_SPINS: u32 = 64;

impl Wait {
    /// Parses the `Debug` form the child roles are given.
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "Blocking" => Self::Blocking,
            "Busy" => Self::Busy,
            "Backoff" => Self::Backoff,
            other => panic!("unknown queue wait form {other}"),
        }
    }
}

/// MPMC queue throughput: `p` producer and `c` consumer processes (children),
/// items of 64 bytes, waiting as `wait` says. Items per second from the first
/// item any consumer got to the last; one entry per run. Producers and
/// consumers alternate between the two chosen cpus, so with more than two
/// processes the cpus are shared.
pub(crate) fn throughput(ctx: &Ctx, p: u64, c: u64, wait: Wait) -> Measured {
    let n = ctx.counts.queue_messages / (p * c) * (p * c);
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let cpus = [ctx.placement.child, ctx.placement.parent];
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let name = unique("q");
        let _q = bus
            .queue_builder(&name)
            .slots(QUEUE_SLOTS)
            .slot_size(ITEM as u64)
            .open()
            .expect("queue");
        let args = |k: u64| {
            vec![
                ctx.bus().to_owned(),
                name.clone(),
                (n / k).to_string(),
                format!("{wait:?}"),
            ]
        };
        let consumers: Vec<_> = (0..c)
            .map(|j| {
                spawn_with(
                    "queue-consumer",
                    &args(c),
                    cpus[(j as usize + 1) % 2],
                    Stdio::null(),
                    Stdio::piped(),
                )
            })
            .collect();
        let producers: Vec<_> = (0..p)
            .map(|i| spawn("queue-producer", &args(p), cpus[i as usize % 2]))
            .collect();
        let (mut first, mut last) = (u64::MAX, 0u64);
        for mut k in consumers {
            let mut out = String::new();
            k.stdout()
                .expect("piped")
                .read_to_string(&mut out)
                .expect("consumer output");
            k.wait();
            let mut it = out
                .split_whitespace()
                .map(|x| x.parse::<u64>().expect("ns"));
            first = first.min(it.next().expect("first"));
            last = last.max(it.next().expect("last"));
        }
        for k in producers {
            k.wait();
        }
        rates.push((n - 1) as f64 / ((last - first) as f64 / 1e9));
    }
    let mut m = Measured::rates(rates);
    if p + c > 2 {
        m.note = format!("{} processes on 2 cpus", p + c);
    }
    m
}

/// The `queue-producer` role.
pub(crate) fn producer(bus: &str, name: &str, n: u64, wait: Wait) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).expect("queue");
    let item = [5u8; ITEM];
    for _ in 0..n {
        if wait != Wait::Blocking {
            while q.try_put(&item).is_err() {
                core::hint::spin_loop();
            }
        } else {
            q.put(&item).expect("put");
        }
    }
}

/// The `queue-consumer` role: prints the monotonic ns of its first and last
/// item.
pub(crate) fn consumer(bus: &str, name: &str, n: u64, wait: Wait) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).expect("queue");
    let mut buf = [0u8; ITEM];
    let mut first = 0;
    let spins = if wait == Wait::Backoff {
        BACKOFF_SPINS
    } else {
        1
    };
    for i in 0..n {
        if wait != Wait::Blocking {
            loop {
                match q.try_get_with(|x| buf[..x.len()].copy_from_slice(x)) {
                    Ok(()) => break,
                    Err(Error::Empty) => {
                        for _ in 0..spins {
                            core::hint::spin_loop();
                        }
                    }
                    Err(e) => panic!("get: {e}"),
                }
            }
        } else {
            q.get_with(|x| buf[..x.len()].copy_from_slice(x))
                .expect("get");
        }
        if i == 0 {
            first = now_ns();
        }
    }
    std::hint::black_box(&buf);
    println!("{first} {}", now_ns());
}
