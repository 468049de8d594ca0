//! The queue benchmark's body (see `benches/queue.rs`).

#[path = "../common/mod.rs"]
mod common;

use common::{
    child_setup, common_role, floor_round_trip, pin, spawn_child, wait_child, Daemon, ROLE,
};
use std::env;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmbus_client::{Bus, Error};

const FRAME: usize = 64;
/// Slots of the throughput queues.
const SLOTS: u64 = 4096;

#[derive(Clone, Copy)]
struct Counts {
    round_trips: u64,
    blocking_round_trips: u64,
    items: u64,
    runs: usize,
}

const FULL: Counts = Counts {
    round_trips: 1_000_000,
    blocking_round_trips: 100_000,
    items: 10_000_000,
    runs: 3,
};
const QUICK: Counts = Counts {
    round_trips: 10_000,
    blocking_round_trips: 1_000,
    items: 100_000,
    runs: 1,
};

pub(crate) fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
        return;
    }
    let full = env::args().any(|a| a == "--bench");
    let counts = if full { FULL } else { QUICK };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cpus >= 2;
    eprintln!(
        "shmbus queue benchmark ({} mode), {cpus} cpus",
        if full { "full" } else { "quick" },
    );
    let bus = format!("bench-q-{}", std::process::id());
    let daemon = Daemon::start(&bus);

    if pinned {
        pin(0);
    }
    let floor = floor_round_trip(counts.round_trips, pinned.then_some(1));
    let rt = queue_round_trip(&bus, counts.round_trips, false, pinned);
    let brt = queue_round_trip(&bus, counts.blocking_round_trips, true, pinned);
    let pipe = median(
        &mut (0..counts.runs)
            .map(|r| pipe_throughput(&bus, counts.items, r, pinned))
            .collect::<Vec<_>>(),
    );
    let mut tput = Vec::new();
    // `SHMBUS_QBENCH_ONLY=1` measures 1P/1C only (for quick comparisons).
    let configs: &[(u64, u64, bool)] = if env::var("SHMBUS_QBENCH_ONLY").is_ok() {
        &[(1, 1, true), (1, 1, false)]
    } else {
        &[(1, 1, true), (1, 1, false), (2, 2, false), (4, 4, false)]
    };
    for &(np, nc, busy) in configs {
        let mut rates: Vec<f64> = (0..counts.runs)
            .map(|r| queue_throughput(&bus, counts.items, np, nc, r, pinned && np == 1, busy))
            .collect();
        tput.push((np, nc, busy, median(&mut rates), rates));
    }
    drop(daemon);

    let f50 = floor.value_at_quantile(0.5) as f64;
    println!();
    println!("| measurement | p50 ns | p90 ns | p99 ns | p99.9 ns | max ns | p50 / floor |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, h) in [
        ("floor: raw cache-line ping-pong", &floor),
        ("queue round trip, busy-poll (64 B)", &rt),
        ("queue round trip, blocking (64 B)", &brt),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.2}× |",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.value_at_quantile(0.5) as f64 / f50
        );
    }
    println!();
    println!("| throughput (64 B items) | median items/s | vs pipe | vs 1P/1C | runs (M/s) |");
    println!("|---|---:|---:|---:|---|");
    println!("| pipe one-way | {:.2} M | 1.00× | | |", pipe / 1e6);
    let one = tput[1].3;
    for (np, nc, busy, m, rates) in &tput {
        let all: Vec<String> = rates.iter().map(|r| format!("{:.2}", r / 1e6)).collect();
        println!(
            "| queue {np}P/{nc}C, {}{} | {:.2} M | {:.2}× | {:.2}× | {} |",
            if *busy { "busy-poll" } else { "blocking" },
            if *np == 1 && pinned { ", pinned" } else { "" },
            m / 1e6,
            m / pipe,
            m / one,
            all.join(", ")
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn child(role: &str) {
    let args = child_setup();
    if common_role(role, &args) {
        return;
    }
    match role {
        "echo" => echo_child(&args[0], args[1].parse().unwrap(), &args[2], &args[3]),
        "pipe_sender" => pipe_sender(&args[0], args[1].parse().unwrap(), &args[2]),
        "producer" => producer(&args[0], args[1].parse().unwrap(), &args[2], &args[3]),
        "consumer" => consumer(&args[0], &args[1], &args[2]),
        other => panic!("unknown role {other}"),
    }
}

// ---- queue round trip ----------------------------------------------------------

fn queue_round_trip(bus: &str, n: u64, blocking: bool, pinned: bool) -> Histogram<u64> {
    let b = Bus::connect_to(bus).expect("connect");
    let tag = format!(
        "{}-{}",
        if blocking { "b" } else { "p" },
        std::process::id()
    );
    let (ping_name, pong_name) = (format!("qping-{tag}"), format!("qpong-{tag}"));
    let ping = b
        .queue_builder(&ping_name)
        .slots(64)
        .slot_size(64)
        .open()
        .unwrap();
    let pong = b
        .queue_builder(&pong_name)
        .slots(64)
        .slot_size(64)
        .open()
        .unwrap();
    let mode = if blocking { "blocking" } else { "busy" };
    let child = spawn_child(
        "echo",
        &[bus, &n.to_string(), &tag, mode],
        pinned.then_some(1),
    );
    if pinned {
        pin(0);
    }
    let mut frame = [0u8; FRAME];
    let mut h = Histogram::<u64>::new(3).unwrap();
    let id = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    for i in 0..n {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        if blocking {
            ping.put(&frame).expect("put");
            assert_eq!(pong.get_with(id).expect("get"), i);
        } else {
            while ping.try_put(&frame).is_err() {
                core::hint::spin_loop();
            }
            loop {
                match pong.try_get_with(id) {
                    Ok(got) => {
                        assert_eq!(got, i);
                        break;
                    }
                    Err(_) => core::hint::spin_loop(),
                }
            }
        }
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    wait_child(child);
    h
}

fn echo_child(bus: &str, n: u64, tag: &str, mode: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let ping = b.open_queue(&format!("qping-{tag}")).unwrap();
    let pong = b.open_queue(&format!("qpong-{tag}")).unwrap();
    let mut frame = [0u8; FRAME];
    for _ in 0..n {
        if mode == "blocking" {
            ping.get_with(|b| frame.copy_from_slice(b)).expect("get");
            pong.put(&frame).expect("put");
        } else {
            while ping.try_get_with(|b| frame.copy_from_slice(b)).is_err() {
                core::hint::spin_loop();
            }
            while pong.try_put(&frame).is_err() {
                core::hint::spin_loop();
            }
        }
    }
}

// ---- throughput ----------------------------------------------------------------

/// Pipe one-way throughput (items/s), busy-polling, as `benches/pipe` does.
fn pipe_throughput(bus: &str, n: u64, run: usize, pinned: bool) -> f64 {
    let b = Bus::connect_to(bus).expect("connect");
    let name = format!("qb-pipe-{}-{run}", std::process::id());
    let mut rx = b
        .pipe_with_capacity(&name, 1 << 20)
        .expect("pipe")
        .receiver()
        .expect("receiver");
    let child = spawn_child(
        "pipe_sender",
        &[bus, &n.to_string(), &name],
        pinned.then_some(1),
    );
    if pinned {
        pin(0);
    }
    let mut got = 0u64;
    let mut start = None;
    let mut sum = 0u64;
    while got < n {
        match rx.try_recv_with(|b| b[0] as u64) {
            Ok(v) => {
                if got == 0 {
                    start = Some(Instant::now());
                }
                sum += v;
                got += 1;
            }
            Err(_) => core::hint::spin_loop(),
        }
    }
    let secs = start.unwrap().elapsed().as_secs_f64();
    std::hint::black_box(sum);
    wait_child(child);
    let rate = (n - 1) as f64 / secs;
    eprintln!("  pipe run {}: {:.2} M/s", run + 1, rate / 1e6);
    rate
}

fn pipe_sender(bus: &str, n: u64, name: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let mut tx = b.pipe(name).unwrap().sender().expect("sender");
    let frame = [1u8; FRAME];
    for _ in 0..n {
        while tx.try_send(&frame).is_err() {
            core::hint::spin_loop();
        }
    }
}

/// Queue throughput with `np` producer and `nc` consumer processes, all using
/// the blocking `put` / `get_with` (spin briefly, then sleep): items/s from
/// the start signal until the last consumer has taken its share.
fn queue_throughput(
    bus: &str,
    n: u64,
    np: u64,
    nc: u64,
    run: usize,
    pinned: bool,
    busy: bool,
) -> f64 {
    let mode = if busy { "busy" } else { "blocking" };
    let b = Bus::connect_to(bus).expect("connect");
    let name = format!("qb-{np}x{nc}-{}-{run}", std::process::id());
    let q = b
        .queue_builder(&name)
        .slots(SLOTS)
        .slot_size(FRAME as u64)
        .open()
        .expect("queue");
    let go_name = format!("{name}-go");
    let go = b
        .queue_builder(&go_name)
        .slots(16)
        .slot_size(8)
        .open()
        .unwrap();
    let per = n / np;
    let mut kids = Vec::new();
    for i in 0..np {
        let cpu = pinned.then_some(1);
        let _ = i;
        kids.push(spawn_child(
            "producer",
            &[bus, &per.to_string(), &name, mode],
            cpu,
        ));
    }
    for _ in 0..nc {
        kids.push(spawn_child(
            "consumer",
            &[bus, &name, mode],
            pinned.then_some(0),
        ));
    }
    // Let the children connect, then start them all at once.
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    for _ in 0..np + nc {
        go.put(&[1]).unwrap();
    }
    let (producers, consumers) = kids.split_at_mut(np as usize);
    for p in producers {
        assert!(p.wait().expect("wait").success());
    }
    // One stop item per consumer, after every producer is done.
    for _ in 0..nc {
        q.put(&[]).unwrap();
    }
    for c in consumers {
        assert!(c.wait().expect("wait").success());
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (per * np) as f64 / secs;
    eprintln!(
        "  queue {np}P/{nc}C {mode} run {}: {:.2} M/s",
        run + 1,
        rate / 1e6
    );
    assert!(q.is_empty());
    rate
}

fn wait_go(b: &Bus, name: &str) {
    let go = b.open_queue(&format!("{name}-go")).unwrap();
    go.get().unwrap();
}

fn producer(bus: &str, n: u64, name: &str, mode: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).unwrap();
    wait_go(&b, name);
    let mut frame = [1u8; FRAME];
    for i in 0..n {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        if mode == "busy" {
            while q.try_put(&frame).is_err() {
                core::hint::spin_loop();
            }
        } else {
            q.put(&frame).unwrap();
        }
    }
}

fn consumer(bus: &str, name: &str, mode: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let q = b.open_queue(name).unwrap();
    wait_go(&b, name);
    let mut sum = 0u64;
    loop {
        let r = if mode == "busy" {
            match q.try_get_with(|b| (b.len(), b.first().copied())) {
                Err(Error::Empty) => {
                    core::hint::spin_loop();
                    continue;
                }
                r => r,
            }
        } else {
            q.get_with(|b| (b.len(), b.first().copied()))
        };
        match r {
            Ok((0, _)) => break,
            Ok((_, v)) => sum += u64::from(v.unwrap_or(0)),
            Err(Error::BusClosed) => panic!("bus closed"),
            Err(e) => panic!("get: {e}"),
        }
    }
    std::hint::black_box(sum);
}
