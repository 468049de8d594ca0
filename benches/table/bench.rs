//! The value/array benchmark's body (see `benches/table.rs`).

#[path = "../common/mod.rs"]
mod common;

use common::{child_setup, common_role, pin, spawn_child, wait_child, Daemon, ROLE};
use std::collections::HashMap;
use std::env;
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmbus_client::Bus;

const LEN: usize = 16;

#[derive(Clone, Copy)]
struct Counts {
    /// Operations per shmbus measurement.
    ops: u64,
    /// Operations per Python measurement.
    python_ops: u64,
}

const FULL: Counts = Counts {
    ops: 20_000_000,
    python_ops: 300_000,
};
const QUICK: Counts = Counts {
    ops: 200_000,
    python_ops: 2_000,
};

pub(crate) fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
        return;
    }
    let full = env::args().any(|a| a == "--bench");
    let c = if full { FULL } else { QUICK };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cpus >= 2;
    if pinned {
        pin(0);
    }
    eprintln!(
        "shmbus value/array benchmark ({} mode), {cpus} cpus, {}",
        if full { "full" } else { "quick" },
        if pinned {
            "parent on cpu 0, children on cpu 1"
        } else {
            "not pinned (1 cpu)"
        }
    );

    let bus = format!("bench-table-{}", std::process::id());
    let daemon = Daemon::start(&bus);
    let b = Bus::connect_to(&bus).expect("connect");
    let v = b.value::<f64>("v").expect("value");
    let a = b.array::<f64>("a", LEN).expect("array");
    let stop = b.value::<u32>("stop").expect("stop");
    let n = c.ops;

    let mut rows: Vec<Row> = Vec::new();
    rows.push(Row::new(
        "value read, uncontended",
        rate(n, || {
            black_box(v.load());
        }),
        "value_read",
    ));
    let mut x = 0.0;
    rows.push(Row::new(
        "value write, uncontended",
        rate(n, || {
            x += 1.0;
            v.store(x).unwrap();
        }),
        "value_write",
    ));
    rows.push(Row::new(
        "value update (+= 1), uncontended",
        rate(n, || {
            v.update(|x| x + 1.0).unwrap();
        }),
        "value_add",
    ));
    let mut buf = [0.0f64; LEN];
    rows.push(Row::new(
        "array[16] read, uncontended",
        rate(n, || {
            a.read_into(&mut buf).unwrap();
            black_box(&buf);
        }),
        "array_read",
    ));
    let row = [1.0f64; LEN];
    rows.push(Row::new(
        "array[16] write, uncontended",
        rate(n, || {
            a.write(&row).unwrap();
        }),
        "array_write",
    ));

    // Control: a busy loop that touches no shared memory on the other cpu.
    // On this project's 2-vcpu machine it alone slows the reader (the vcpus
    // seem to share a physical core), which the rows below include too.
    stop.store(0).unwrap();
    let w = spawn_child("spin", &[&bus], pinned.then_some(1));
    std::thread::sleep(Duration::from_millis(50));
    rows.push(Row::new(
        "array[16] read, busy loop (no writes) on the other cpu",
        rate(n, || {
            a.read_into(&mut buf).unwrap();
            black_box(&buf);
        }),
        "",
    ));
    stop.store(1).unwrap();
    wait_child(w);

    // A writer in another process, storing [k; 16] as fast as it can, then
    // paced at 1 M arrays/s (about what Python's writer manages flat out).
    for (pace, name) in [
        ("0", "array[16] read, writer in another process (flat out)"),
        (
            "1000000",
            "array[16] read, writer in another process (1 M writes/s)",
        ),
    ] {
        stop.store(0).unwrap();
        let w = spawn_child("writer", &[&bus, "a", pace], pinned.then_some(1));
        wait_version(a.table(), 1000);
        let mut torn = 0u64;
        let mut changes = 0u64;
        let mut last = -1.0;
        let (v0, t0) = (a.version(), Instant::now());
        let r = rate(n, || {
            a.read_into(&mut buf).unwrap();
            if buf.iter().any(|&e| e != buf[0]) {
                torn += 1;
            }
            if buf[0] != last {
                changes += 1;
                last = buf[0];
            }
        });
        let writes = (a.version() - v0) as f64 / t0.elapsed().as_secs_f64();
        let mut row_rw = Row::new(name, r, "array_read_with_writer");
        row_rw.torn = Some((torn, n));
        rows.push(row_rw);
        eprintln!(
            "  {name}: the writer stored {} arrays/s meanwhile; the reader saw \
             {changes} distinct arrays, {torn} torn",
            millions(writes)
        );
        if pace == "0" {
            let contended_w = rate(n / 4, || {
                a.write(&row).unwrap();
            });
            rows.push(Row::new(
                "array[16] write, writer in another process (flat out)",
                contended_w,
                "",
            ));
        }
        stop.store(1).unwrap();
        wait_child(w);
    }

    stop.store(0).unwrap();
    let w = spawn_child("writer", &[&bus, "v", "0"], pinned.then_some(1));
    wait_version(v.table(), 1000);
    rows.push(Row::new(
        "value read, writer in another process (flat out)",
        rate(n, || {
            black_box(v.load());
        }),
        "",
    ));
    stop.store(1).unwrap();
    wait_child(w);
    drop(daemon);

    let py = python(c.python_ops);
    println!();
    println!(
        "| measurement | shmbus ops/s | Python multiprocessing ops/s | × Python | torn reads |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let p = py.get(r.python).map(|v| v[0]);
        let torn = r.torn.map_or_else(
            || "-".to_owned(),
            |(t, n)| format!("{t} of {}", millions(n as f64)),
        );
        println!(
            "| {} | {} | {} | {} | {torn} |",
            r.name,
            millions(r.rate),
            p.map_or_else(|| "-".to_owned(), millions),
            p.map_or_else(|| "-".to_owned(), |p| format!("{:.0}×", r.rate / p)),
        );
    }
    if let Some(v) = py.get("array_nolock_read_with_writer") {
        println!(
            "| Python `Array('d', 16, lock=False)` read, writer in another process | - | {} | - | {:.1} % |",
            millions(v[0]),
            v.get(1).copied().unwrap_or(f64::NAN) * 100.0
        );
    }
    if py.is_empty() {
        println!("(python3 not found or failed: no Python figures)");
    }
}

struct Row {
    name: &'static str,
    rate: f64,
    python: &'static str,
    torn: Option<(u64, u64)>,
}

impl Row {
    fn new(name: &'static str, rate: f64, python: &'static str) -> Self {
        Self {
            name,
            rate,
            python,
            torn: None,
        }
    }
}

fn millions(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else {
        format!("{:.0} k", v / 1e3)
    }
}

/// Runs `f` `n` times; operations per second.
fn rate(n: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Waits until the table has been written `n` more times (the child runs).
fn wait_version(t: &shmbus_client::Table, n: u64) {
    let start = t.version();
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.version() < start + n {
        assert!(Instant::now() < deadline, "writer child did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `benches/table/python.py`; its figures by name.
fn python(n: u64) -> HashMap<String, Vec<f64>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/table/python.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let mut m = HashMap::new();
    let Ok(out) = out else { return m };
    if !out.status.success() {
        return m;
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = line.split_whitespace();
        if let Some(k) = w.next() {
            m.insert(k.to_owned(), w.filter_map(|x| x.parse().ok()).collect());
        }
    }
    m
}

fn child(role: &str) {
    let args = child_setup();
    if common_role(role, &args) {
        return;
    }
    match role {
        "writer" => writer_child(&args[0], &args[1], args[2].parse().unwrap()),
        "spin" => spin_child(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Writes `[k; 16]` to array `a` (or `k` to value `v`) until `stop` is set,
/// as fast as it can (`pace` 0) or `pace` times a second.
fn writer_child(bus: &str, what: &str, pace: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.open_value::<u32>("stop").expect("stop");
    let a = b.open_array::<f64>("a").expect("array");
    let v = b.open_value::<f64>("v").expect("value");
    let start = Instant::now();
    let mut k = 0.0f64;
    let mut i = 0u64;
    while !i.is_multiple_of(256) || stop.load() == 0 {
        k += 1.0;
        i += 1;
        if what == "a" {
            a.write(&[k; LEN]).unwrap();
        } else {
            v.store(k).unwrap();
        }
        if let Some(ns) = (i * 1_000_000_000).checked_div(pace) {
            let due = start + Duration::from_nanos(ns);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
    }
}

/// Spins without touching shared memory until `stop` is set (checked every
/// million iterations).
fn spin_child(bus: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.open_value::<u32>("stop").expect("stop");
    let mut x = 0u64;
    while stop.load() == 0 {
        for i in 0..1_000_000u64 {
            x = black_box(x.wrapping_add(i));
        }
    }
}
