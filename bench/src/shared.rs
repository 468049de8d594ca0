//! shmbus queue, value and array rows, through the client's public API only.

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use shmbus_client::Bus;

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, spawn_with};

fn unique(tag: &str) -> String {
    use shmbus::sync::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters.
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{seq}", std::process::id())
}

/// `CLOCK_MONOTONIC` in ns: comparable between processes, unlike `Instant`.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Slots of the benchmark queues.
const QUEUE_SLOTS: u64 = 4096;
/// Item size of the queue rows.
const ITEM: usize = 64;

/// MPMC queue throughput: `p` producer and `c` consumer processes (children),
/// items of 64 bytes with the blocking `put` / `get_with` (which spin before
/// they sleep). Items per second from the first item any consumer got to the
/// last; one entry per run. Producers and consumers alternate between the two
/// chosen cpus, so with more than two processes the cpus are shared.
pub(crate) fn queue_throughput(ctx: &Ctx, p: u64, c: u64) -> Measured {
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
        let consumers: Vec<_> = (0..c)
            .map(|j| {
                spawn_with(
                    "queue-consumer",
                    &[ctx.bus().to_owned(), name.clone(), (n / c).to_string()],
                    cpus[(j as usize + 1) % 2],
                    Stdio::null(),
                    Stdio::piped(),
                )
            })
            .collect();
        let producers: Vec<_> = (0..p)
            .map(|i| {
                spawn(
                    "queue-producer",
                    &[ctx.bus().to_owned(), name.clone(), (n / p).to_string()],
                    cpus[i as usize % 2],
                )
            })
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
pub(crate) fn producer(bus: &str, name: &str, n: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).expect("queue");
    let item = [5u8; ITEM];
    for _ in 0..n {
        q.put(&item).expect("put");
    }
}

/// The `queue-consumer` role: prints the monotonic ns of its first and last
/// item.
pub(crate) fn consumer(bus: &str, name: &str, n: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).expect("queue");
    let mut buf = [0u8; ITEM];
    let mut first = 0;
    for i in 0..n {
        q.get_with(|x| buf[..x.len()].copy_from_slice(x))
            .expect("get");
        if i == 0 {
            first = now_ns();
        }
    }
    std::hint::black_box(&buf);
    println!("{first} {}", now_ns());
}

/// Number of elements of the array rows.
pub(crate) const ARRAY_LEN: usize = 16;

/// Value (`array == false`) or 16-element array reads (`writes == false`)
/// or writes per second in this process, while a child process writes (or
/// reads) the same table as fast as it can. Array reads are checked untorn
/// (the writer stores 16 equal elements).
pub(crate) fn table_rate(ctx: &Ctx, array: bool, writes: bool) -> Measured {
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let mut rates = Vec::new();
    let (mut torn, mut total) = (0u64, 0u64);
    for _ in 0..ctx.counts.runs {
        let name = unique(if array { "arr" } else { "val" });
        let stop_name = format!("{name}-stop");
        let stop = bus.value::<u64>(&stop_name).expect("stop value");
        let value = (!array).then(|| bus.value::<u64>(&name).expect("value"));
        let arr = array.then(|| bus.array::<u64>(&name, ARRAY_LEN).expect("array"));
        let role = if writes {
            "table-reader"
        } else {
            "table-writer"
        };
        let kid = spawn(
            role,
            &[
                ctx.bus().to_owned(),
                name.clone(),
                stop_name,
                array.to_string(),
            ],
            ctx.placement.child,
        );
        // Wait until the peer runs: the writer's first store, or the
        // reader's "ready" mark in the stop value.
        let ready = || {
            if writes {
                stop.load() == 1
            } else if let Some(v) = &value {
                v.load() != 0
            } else {
                arr.as_ref().unwrap().read()[0] != 0
            }
        };
        while !ready() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let secs = ctx.counts.shared_secs;
        let mut buf = [0u64; ARRAY_LEN];
        let mut ops = 0u64;
        let mut i = 0u64;
        let t = Instant::now();
        loop {
            for _ in 0..1024 {
                match (&value, &arr, writes) {
                    (Some(v), _, false) => {
                        std::hint::black_box(v.load());
                    }
                    (Some(v), _, true) => {
                        i += 1;
                        v.store(i).expect("store");
                    }
                    (_, Some(a), false) => {
                        a.read_into(&mut buf).expect("read");
                        if buf.iter().any(|&x| x != buf[0]) {
                            torn += 1;
                        }
                        total += 1;
                    }
                    (_, Some(a), true) => {
                        i += 1;
                        a.write(&[i; ARRAY_LEN]).expect("write");
                    }
                    _ => unreachable!(),
                }
            }
            ops += 1024;
            if t.elapsed().as_secs_f64() >= secs {
                break;
            }
        }
        let el = t.elapsed().as_secs_f64();
        stop.store(2).expect("stop");
        kid.wait();
        rates.push(ops as f64 / el);
    }
    let mut m = Measured::rates(rates);
    if array && !writes {
        m.torn_pct = Some(100.0 * torn as f64 / total.max(1) as f64);
        m.note = format!("{torn} torn of {total} reads");
    }
    m
}

/// The `table-writer` role: stores 1, 2, 3… (in every element) until the
/// stop value is 2.
pub(crate) fn table_writer(bus: &str, name: &str, stop: &str, array: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.value::<u64>(stop).expect("stop");
    let mut i = 0u64;
    if array {
        let a = b.array::<u64>(name, ARRAY_LEN).expect("array");
        while stop.load() != 2 {
            for _ in 0..256 {
                i += 1;
                a.write(&[i; ARRAY_LEN]).expect("write");
            }
        }
    } else {
        let v = b.value::<u64>(name).expect("value");
        while stop.load() != 2 {
            for _ in 0..256 {
                i += 1;
                v.store(i).expect("store");
            }
        }
    }
}

/// The `table-reader` role: reads until the stop value is 2, after setting it
/// to 1 ("ready"); panics (fails the row) on a torn array read.
pub(crate) fn table_reader(bus: &str, name: &str, stop: &str, array: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.value::<u64>(stop).expect("stop");
    let mut buf = [0u64; ARRAY_LEN];
    let a = array.then(|| b.array::<u64>(name, ARRAY_LEN).expect("array"));
    let v = (!array).then(|| b.value::<u64>(name).expect("value"));
    stop.store(1).expect("ready");
    while stop.load() != 2 {
        for _ in 0..256 {
            if let Some(a) = &a {
                a.read_into(&mut buf).expect("read");
                assert!(buf.iter().all(|&x| x == buf[0]), "torn read {buf:?}");
            } else if let Some(v) = &v {
                std::hint::black_box(v.load());
            }
        }
    }
}
