//! `shmbus-bridge-bench`: two bridges over loopback TCP beside zenoh's own
//! publish/subscribe between two processes over the same link, in the same
//! run: one-way throughput and round-trip latency, 64 B and 64 KiB.
//!
//! ```sh
//! cargo run --release --manifest-path bridge/Cargo.toml --bin shmbus-bridge-bench
//! ```
//!
//! zenoh alone: a publisher process and a subscriber process (throughput),
//! a ping and a pong process (round trip), peers over `tcp/127.0.0.1`.
//! Through the bridges: two daemons, a bridge on each, the sender and
//! receiver (or ping and pong) as threads of this process on local pipes;
//! the bridges are the two processes on the link.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmbus_client::{Bus, Error};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

const ROLE: &str = "SHMBUS_BRIDGE_BENCH_ROLE";
/// How long each throughput run sends.
const RUN: Duration = Duration::from_secs(3);

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        role_main(&role, &args);
        return;
    }
    println!("| size | path | one-way throughput | round trip median | round trip p99 |");
    println!("|---|---|---|---|---|");
    for size in [64usize, 64 << 10] {
        let z = (zenoh_throughput(size), zenoh_rtt(size));
        let b = bridge(size);
        let row = |path: &str, (tp, (med, p99)): ((f64, f64), (f64, f64))| {
            println!(
                "| {} | {path} | {:.0} msg/s ({:.1} MB/s) | {:.1} µs | {:.1} µs |",
                if size == 64 { "64 B" } else { "64 KiB" },
                tp.0,
                tp.1,
                med,
                p99
            );
        };
        row("zenoh pub/sub", z);
        row("two bridges", b);
        println!(
            "|  | bridge / zenoh | {:.0} % of the throughput | {:+.0} % latency | |",
            100.0 * b.0 .0 / z.0 .0,
            100.0 * (b.1 .0 / z.1 .0 - 1.0)
        );
    }
}

fn child(role: &str, args: &[String]) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .args(args)
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a bench process")
}

fn first_line(c: &mut Child) -> String {
    let mut l = String::new();
    BufReader::new(c.stdout.as_mut().expect("stdout"))
        .read_line(&mut l)
        .expect("read a line");
    l.trim().to_owned()
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn session(listen: Option<&str>, connect: Option<&str>) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", "\"peer\"").unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    if let Some(l) = listen {
        c.insert_json5("listen/endpoints", &format!("[\"{l}\"]"))
            .unwrap();
    }
    if let Some(l) = connect {
        c.insert_json5("connect/endpoints", &format!("[\"{l}\"]"))
            .unwrap();
    }
    zenoh::open(c).wait().expect("zenoh session")
}

/// The child processes: `sub`/`pong` listen, `pub`/`ping` connect.
fn role_main(role: &str, args: &[String]) {
    if role == "daemon" {
        let argv = std::iter::once("shmbusd".to_owned()).chain(args.iter().cloned());
        std::process::exit(shmbus_daemon::main_with_args(argv));
    }
    let ep = &args[0];
    let size: usize = args[1].parse().unwrap();
    match role {
        "sub" => {
            let s = session(Some(ep), None);
            let (tx, rx) = std::sync::mpsc::channel::<usize>();
            let _sub = s
                .declare_subscriber("bench/tp")
                .callback(move |x| {
                    let _ = tx.send(x.payload().len());
                })
                .wait()
                .unwrap();
            println!("ready");
            // Counts from the first message until the publisher's last
            // (an empty one).
            let _ = rx.recv();
            let t = Instant::now();
            let mut n = 1u64;
            while rx.recv().unwrap() != 0 {
                n += 1;
            }
            println!("{} {}", n, t.elapsed().as_secs_f64());
        }
        "pub" => {
            let s = session(None, Some(ep));
            let p = s
                .declare_publisher("bench/tp")
                .congestion_control(CongestionControl::Block)
                .wait()
                .unwrap();
            wait_matched(&p);
            let msg = vec![7u8; size];
            let t = Instant::now();
            while t.elapsed() < RUN {
                for _ in 0..64 {
                    p.put(msg.clone()).wait().unwrap();
                }
            }
            p.put(Vec::<u8>::new()).wait().unwrap();
            std::thread::sleep(Duration::from_secs(1));
        }
        "pong" => {
            let s = session(Some(ep), None);
            let p = s
                .declare_publisher("bench/pong")
                .congestion_control(CongestionControl::Block)
                .wait()
                .unwrap();
            let _sub = s
                .declare_subscriber("bench/ping")
                .callback(move |x| {
                    p.put(x.payload().clone()).wait().unwrap();
                })
                .wait()
                .unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(3600));
        }
        other => panic!("unknown role {other}"),
    }
}

fn wait_matched(p: &zenoh::pubsub::Publisher<'_>) {
    while !p.matching_status().wait().unwrap().matching() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Messages per second and MB/s, zenoh alone.
fn zenoh_throughput(size: usize) -> (f64, f64) {
    let ep = format!("tcp/127.0.0.1:{}", port());
    let mut sub = child("sub", &[ep.clone(), size.to_string()]);
    assert_eq!(first_line(&mut sub), "ready");
    let mut publ = child("pub", &[ep, size.to_string()]);
    let line = first_line(&mut sub);
    let _ = publ.wait();
    let _ = sub.wait();
    let mut it = line.split(' ');
    let n: f64 = it.next().unwrap().parse().unwrap();
    let secs: f64 = it.next().unwrap().parse().unwrap();
    (n / secs, n * size as f64 / secs / 1e6)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn rounds(size: usize) -> usize {
    if size <= 1024 {
        5000
    } else {
        1000
    }
}

/// Round trip (median, p99) in µs, zenoh alone.
fn zenoh_rtt(size: usize) -> (f64, f64) {
    let ep = format!("tcp/127.0.0.1:{}", port());
    let mut pong = child("pong", &[ep.clone(), size.to_string()]);
    assert_eq!(first_line(&mut pong), "ready");
    let s = session(None, Some(&ep));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let _sub = s
        .declare_subscriber("bench/pong")
        .callback(move |_| {
            let _ = tx.send(());
        })
        .wait()
        .unwrap();
    let p = s
        .declare_publisher("bench/ping")
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    wait_matched(&p);
    let msg = vec![1u8; size];
    // Until the pong's own subscription to the reply is known here.
    loop {
        p.put(msg.clone()).wait().unwrap();
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
    }
    while rx.try_recv().is_ok() {}
    let mut v = Vec::new();
    for _ in 0..rounds(size) {
        let t = Instant::now();
        p.put(msg.clone()).wait().unwrap();
        rx.recv().unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = pong.kill();
    let _ = pong.wait();
    drop(s);
    percentiles(v)
}

/// Kills and reaps on drop.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(name: &str) -> Reap {
    let c = child(
        "daemon",
        &["--name".into(), name.into(), "--size".into(), "64M".into()],
    );
    while Bus::connect_to(name).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    Reap(c)
}

fn spawn_bridge(args: &[&str]) -> Reap {
    let exe = std::env::current_exe()
        .unwrap()
        .with_file_name("shmbus-bridge");
    let mut c = Command::new(&exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release first)", exe.display()));
    assert!(first_line(&mut c).contains("ready"));
    Reap(c)
}

fn recv_retry(rx: &mut shmbus_client::PipeReceiver) -> Vec<u8> {
    loop {
        match rx.recv() {
            Ok(v) => return v,
            Err(Error::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
}

fn send_retry(tx: &mut shmbus_client::PipeSender, m: &[u8]) {
    loop {
        match tx.send(m) {
            Ok(()) => return,
            Err(Error::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Throughput and round trip through two bridges.
fn bridge(size: usize) -> ((f64, f64), (f64, f64)) {
    let id = std::process::id();
    let (na, nb) = (
        format!("bench-a-{id}-{size}"),
        format!("bench-b-{id}-{size}"),
    );
    let (_da, _db) = (daemon(&na), daemon(&nb));
    let (ba, bb) = (Bus::connect_to(&na).unwrap(), Bus::connect_to(&nb).unwrap());
    for bus in [&ba, &bb] {
        for p in ["tp", "ping", "pong"] {
            bus.pipe_with_capacity(p, 4 << 20).unwrap();
        }
    }
    let ep = format!("tcp/127.0.0.1:{}", port());
    let _xa = spawn_bridge(&[
        "--bus", &na, "--listen", &ep, "--export", "tp", "--export", "ping", "--import", "pong",
    ]);
    let _xb = spawn_bridge(&[
        "--bus",
        &nb,
        "--connect",
        &ep,
        "--import",
        "tp",
        "--import",
        "ping",
        "--export",
        "pong",
    ]);
    // Throughput: A's sender, B's receiver.
    let mut tx = ba.pipe("tp").unwrap().sender().unwrap();
    let mut rx = bb.pipe("tp").unwrap().receiver().unwrap();
    let msg = vec![7u8; size];
    send_retry(&mut tx, &msg);
    recv_retry(&mut rx);
    let counter = std::thread::spawn(move || {
        let _ = recv_retry(&mut rx);
        let t = Instant::now();
        let mut n = 1u64;
        while !recv_retry(&mut rx).is_empty() {
            n += 1;
        }
        (n, t.elapsed().as_secs_f64())
    });
    let t = Instant::now();
    while t.elapsed() < RUN {
        for _ in 0..64 {
            send_retry(&mut tx, &msg);
        }
    }
    send_retry(&mut tx, &[]);
    let (n, secs) = counter.join().unwrap();
    let tp = (n as f64 / secs, n as f64 * size as f64 / secs / 1e6);
    // Round trip: A pings, a thread on B echoes.
    let mut ping = ba.pipe("ping").unwrap().sender().unwrap();
    let mut pong = ba.pipe("pong").unwrap().receiver().unwrap();
    let mut echo_in = bb.pipe("ping").unwrap().receiver().unwrap();
    let mut echo_out = bb.pipe("pong").unwrap().sender().unwrap();
    let total = rounds(size) + 1;
    let echo = std::thread::spawn(move || {
        for _ in 0..total {
            let m = recv_retry(&mut echo_in);
            send_retry(&mut echo_out, &m);
        }
    });
    send_retry(&mut ping, &msg);
    recv_retry(&mut pong);
    let mut v = Vec::new();
    for _ in 1..total {
        let t = Instant::now();
        send_retry(&mut ping, &msg);
        recv_retry(&mut pong);
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    echo.join().unwrap();
    (tp, percentiles(v))
}
