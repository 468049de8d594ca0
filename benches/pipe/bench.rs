//! The pipe benchmark's body (see `benches/pipe.rs`).

#[path = "../common/mod.rs"]
mod common;

use common::{
    child_setup, common_role, floor_round_trip, pin, spawn_child, wait_child, Daemon, ROLE,
};
use std::env;
use std::time::Instant;

use hdrhistogram::Histogram;
use shmbus_client::Bus;

const FRAME: usize = 64;

#[derive(Clone, Copy)]
struct Counts {
    round_trips: u64,
    blocking_round_trips: u64,
    frames: u64,
    runs: usize,
}

const FULL: Counts = Counts {
    round_trips: 2_000_000,
    blocking_round_trips: 200_000,
    frames: 20_000_000,
    runs: 5,
};
const QUICK: Counts = Counts {
    round_trips: 20_000,
    blocking_round_trips: 2_000,
    frames: 200_000,
    runs: 2,
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
    if pinned {
        pin(0);
    }
    eprintln!(
        "shmbus pipe benchmark ({} mode), {cpus} cpus, {}",
        if full { "full" } else { "quick" },
        if pinned {
            "parent on cpu 0, child on cpu 1"
        } else {
            "not pinned (1 cpu)"
        }
    );

    let bus = format!("bench-{}", std::process::id());
    let daemon = Daemon::start(&bus);

    let mut rows = Vec::new();
    let floor = floor_round_trip(counts.round_trips, pinned.then_some(1));
    rows.push(Row::latency("floor: raw cache-line ping-pong", &floor));

    let rt = pipe_round_trip(&bus, counts.round_trips, "busy", pinned);
    rows.push(Row::latency("pipe round trip, busy-poll (64 B)", &rt));

    let brt = pipe_round_trip(&bus, counts.blocking_round_trips, "blocking", pinned);
    rows.push(Row::latency("pipe round trip, blocking (64 B)", &brt));

    let tput = pipe_throughput(&bus, counts.frames, counts.runs, pinned);
    drop(daemon);

    let f50 = floor.value_at_quantile(0.5) as f64;
    println!();
    println!("| measurement | p50 ns | p90 ns | p99 ns | p99.9 ns | max ns | p50 / floor |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2}× |",
            r.name,
            r.q[0],
            r.q[1],
            r.q[2],
            r.q[3],
            r.q[4],
            r.q[0] as f64 / f50
        );
    }
    println!();
    println!("| throughput | median frames/s | median MB/s | runs |");
    println!("|---|---:|---:|---:|");
    let all: Vec<String> = tput.iter().map(|r| format!("{:.1}", r / 1e6)).collect();
    let median = tput[tput.len() / 2];
    println!(
        "| pipe one-way, 64 B frames | {:.2} M | {:.0} | {} (M/s: {}) |",
        median / 1e6,
        median * FRAME as f64 / 1e6,
        counts.runs,
        all.join(", ")
    );
}

struct Row {
    name: &'static str,
    q: [u64; 5],
}

impl Row {
    fn latency(name: &'static str, h: &Histogram<u64>) -> Self {
        Self {
            name,
            q: [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
            ],
        }
    }
}

fn child(role: &str) {
    let args = child_setup();
    if common_role(role, &args) {
        return;
    }
    match role {
        "echo" => echo_child(&args[0], args[1].parse().unwrap(), &args[2]),
        "sender" => sender_child(&args[0], args[1].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
}

// ---- pipe --------------------------------------------------------------------

fn pipe_round_trip(bus: &str, n: u64, mode: &str, pinned: bool) -> Histogram<u64> {
    let b = Bus::connect_to(bus).expect("connect");
    let tag = format!("{mode}-{}", std::process::id());
    let ping = b.pipe(&format!("ping-{tag}")).expect("ping pipe");
    let pong = b.pipe(&format!("pong-{tag}")).expect("pong pipe");
    let mut tx = ping.sender().expect("ping sender");
    let mut rx = pong.receiver().expect("pong receiver");
    let child = spawn_child("echo", &[bus, &n.to_string(), &tag], pinned.then_some(1));
    let blocking = mode == "blocking";
    let mut frame = [0u8; FRAME];
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 0..n {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        if blocking {
            tx.send(&frame).expect("send");
            let got = rx
                .recv_with(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
                .expect("recv");
            assert_eq!(got, i);
        } else {
            while tx.try_send(&frame).is_err() {
                core::hint::spin_loop();
            }
            loop {
                match rx.try_recv_with(|b| u64::from_le_bytes(b[..8].try_into().unwrap())) {
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
    drop(tx);
    wait_child(child);
    h
}

fn echo_child(bus: &str, n: u64, tag: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let mut rx = b
        .pipe(&format!("ping-{tag}"))
        .unwrap()
        .receiver()
        .expect("ping receiver");
    let mut tx = b
        .pipe(&format!("pong-{tag}"))
        .unwrap()
        .sender()
        .expect("pong sender");
    let blocking = tag.starts_with("blocking");
    let mut frame = [0u8; FRAME];
    for _ in 0..n {
        if blocking {
            rx.recv_with(|b| frame.copy_from_slice(b)).expect("recv");
            tx.send(&frame).expect("send");
        } else {
            while rx.try_recv_with(|b| frame.copy_from_slice(b)).is_err() {
                core::hint::spin_loop();
            }
            while tx.try_send(&frame).is_err() {
                core::hint::spin_loop();
            }
        }
    }
}

/// One-way throughput of each run, in frames per second, sorted.
fn pipe_throughput(bus: &str, n: u64, runs: usize, pinned: bool) -> Vec<f64> {
    let b = Bus::connect_to(bus).expect("connect");
    let mut rates = Vec::new();
    for run in 0..runs {
        let name = format!("tput-{}-{run}", std::process::id());
        let mut rx = b
            .pipe_with_capacity(&name, 1 << 20)
            .expect("pipe")
            .receiver()
            .expect("receiver");
        let child = spawn_child("sender", &[bus, &n.to_string(), &name], pinned.then_some(1));
        let mut got = 0u64;
        let mut start = None;
        // The whole frame is copied out, as `read(2)` would. NB: `shmbus-bench`'s
        // `pipe-tput/64` measured 17.8-30.5 M/s in the same sequence of runs
        // where this gave 37-44 M/s (vCPUs close, 2026-11-25); copying with a
        // runtime length as it does made no difference here (37.1-37.2 M/s).
        // The cause is not found yet (see the foundation issue's note).
        let mut buf = [0u8; FRAME];
        while got < n {
            match rx.try_recv_with(|b| buf.copy_from_slice(b)) {
                Ok(()) => {
                    if got == 0 {
                        start = Some(Instant::now());
                    }
                    got += 1;
                }
                Err(_) => core::hint::spin_loop(),
            }
        }
        let secs = start.unwrap().elapsed().as_secs_f64();
        std::hint::black_box(&buf);
        wait_child(child);
        let rate = (n - 1) as f64 / secs;
        eprintln!("  throughput run {}: {:.2} M frames/s", run + 1, rate / 1e6);
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rates
}

fn sender_child(bus: &str, n: u64) {
    let name = env::args().nth(3).expect("pipe name");
    let b = Bus::connect_to(bus).expect("connect");
    let mut tx = b.pipe(&name).unwrap().sender().expect("sender");
    let frame = [1u8; FRAME];
    for _ in 0..n {
        while tx.try_send(&frame).is_err() {
            core::hint::spin_loop();
        }
    }
}
