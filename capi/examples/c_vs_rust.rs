//! The pipe from C beside the pipe from Rust, in one run: the same loops in
//! `bench/pipe.c` (through libshmbus.a) and here (through shmbus-client).
//!
//! ```sh
//! cargo build --release -p shmbus-daemon -p shmbus-capi   # shmbusd, libshmbus.a
//! cargo run --release -p shmbus-capi --example c_vs_rust               # round trip, throughput
//! cargo run --release -p shmbus-capi --example c_vs_rust -- callgrind  # instructions per send+recv
//! ```
//!
//! It starts `target/release/shmbusd` on a bus of its own and stops it at the
//! end. Round trip: 64-byte frames through two pipes between two processes
//! (blocking calls); throughput: 64-byte frames one way; each the median of
//! 5 alternating runs. `callgrind`: one thread sends a 64-byte frame and
//! receives it (timeout 0: `try_send` / `try_recv_with`; and timeout -1:
//! `send` / `recv_with`, which find room and a frame at once), counted by
//! valgrind's callgrind at two loop lengths; the difference divided by the
//! extra iterations is the cost of one send+recv, without start-up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use shmbus_client::Bus;

const FRAME: usize = 64;
const ROUND_TRIPS: u64 = 200_000;
const FRAMES: u64 = 2_000_000;
const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--role") {
        let n = args[4].parse().expect("N");
        role(&args[2], &args[3], n);
        return;
    }
    let release = std::env::current_exe()
        .expect("current_exe")
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples")
        .to_owned();
    let c = compile(&release);
    let daemon = Daemon::start(&release);
    if args.get(1).map(String::as_str) == Some("callgrind") {
        let me = std::env::current_exe().expect("current_exe");
        for (name, exe, mode) in [
            ("C, timeout 0", &c, "loop"),
            ("Rust try_send/try_recv_with", &me, "loop"),
            ("C, timeout -1", &c, "loop-wait"),
            ("Rust send/recv_with", &me, "loop-wait"),
        ] {
            let per = callgrind(exe, exe == &me, mode, &daemon.bus);
            println!("{name:>28}: {per:.1} instructions per send+recv (64-byte frame)");
        }
        return;
    }
    let me = std::env::current_exe().expect("current_exe");
    let mut rt = [Vec::new(), Vec::new()];
    let mut tp = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (i, (exe, rust)) in [(&c, false), (&me, true)].into_iter().enumerate() {
            rt[i].push(pair(
                exe,
                rust,
                &daemon.bus,
                "pong",
                "ping",
                ROUND_TRIPS,
                false,
            ));
            tp[i].push(pair(exe, rust, &daemon.bus, "recv", "send", FRAMES, true));
        }
    }
    println!("pipe, 64-byte frames, median of {RUNS} alternating runs");
    println!(
        "{:>5} {:>16} {:>22}",
        "", "round trip (ns)", "one way (M frames/s)"
    );
    for (i, name) in ["C", "Rust"].iter().enumerate() {
        println!(
            "{name:>5} {:>16.0} {:>22.2}",
            median(&mut rt[i]),
            median(&mut tp[i]) / 1e6
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// bench/pipe.c, compiled against target/<profile>/libshmbus.a.
fn compile(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join("capi-bench-pipe");
    let lib = dir.join("libshmbus.a");
    assert!(
        lib.is_file(),
        "{} is missing: cargo build --release -p shmbus-capi",
        lib.display()
    );
    let st = Command::new("cc")
        .args(["-std=c11", "-O2", "-g", "-I"])
        .arg(src.join("include"))
        .arg(src.join("bench/pipe.c"))
        .arg("-o")
        .arg(&out)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .expect("cc");
    assert!(st.success(), "compiling bench/pipe.c failed");
    out
}

fn command(exe: &Path, rust: bool, mode: &str, bus: &str, n: u64) -> Command {
    let mut c = Command::new(exe);
    if rust {
        c.arg("--role");
    }
    c.args([mode, bus, &n.to_string()]);
    c
}

/// Runs `first` (the measuring side when `first_measures`), then `second`;
/// returns the number the measuring side prints.
fn pair(
    exe: &Path,
    rust: bool,
    bus: &str,
    first: &str,
    second: &str,
    n: u64,
    first_measures: bool,
) -> f64 {
    let mut a = command(exe, rust, first, bus, n)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    if first_measures {
        // Wait for "ready": the receiver is attached before the sender comes.
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(a.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let b = command(exe, rust, second, bus, n)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        oa.status.success() && ob.status.success(),
        "a benchmark process failed"
    );
    let out = if first_measures { oa.stdout } else { ob.stdout };
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .last()
        .and_then(|s| s.parse().ok())
        .expect("a number")
}

/// Instructions per iteration of `loop`, from two callgrind runs.
fn callgrind(exe: &Path, rust: bool, mode: &str, bus: &str) -> f64 {
    let (short, long) = (10_000u64, 110_000u64);
    let total = |n: u64| -> f64 {
        let out = std::env::temp_dir().join(format!("capi-callgrind-{}-{n}", std::process::id()));
        let mut c = Command::new("valgrind");
        c.args(["--tool=callgrind", "-q"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(exe);
        if rust {
            c.arg("--role");
        }
        let st = c
            .args([mode, bus, &n.to_string()])
            .status()
            .expect("valgrind");
        assert!(st.success(), "callgrind run failed");
        let text = std::fs::read_to_string(&out).expect("callgrind output");
        let _ = std::fs::remove_file(&out);
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|s| s.trim().parse().ok())
            .expect("callgrind summary line")
    };
    (total(long) - total(short)) / (long - short) as f64
}

/// The Rust side of each mode of bench/pipe.c, call for call.
fn role(mode: &str, bus: &str, n: u64) {
    let bus = Bus::connect_to(bus).expect("connect");
    let frame = [7u8; FRAME];
    let mut buf = [0u8; FRAME];
    let mut copy = |b: &[u8]| {
        buf[..b.len()].copy_from_slice(b);
        b.len()
    };
    match mode {
        "loop" => {
            let pipe = bus.pipe("loop").unwrap();
            let mut rx = pipe.receiver().unwrap();
            let mut tx = pipe.sender().unwrap();
            // The length known at run time only, as it is behind the C call
            // (a constant made no difference: `try_send` is not inlined).
            let len = std::hint::black_box(FRAME);
            for _ in 0..n {
                tx.try_send(&frame[..len]).unwrap();
                rx.try_recv_with(&mut copy).unwrap();
            }
        }
        "loop-wait" => {
            let pipe = bus.pipe("loop").unwrap();
            let mut rx = pipe.receiver().unwrap();
            let mut tx = pipe.sender().unwrap();
            let len = std::hint::black_box(FRAME);
            for _ in 0..n {
                tx.send(&frame[..len]).unwrap();
                rx.recv_with(&mut copy).unwrap();
            }
        }
        "ping" | "pong" => {
            let ping = mode == "ping";
            let mut rx = bus
                .pipe(if ping { "pong" } else { "ping" })
                .unwrap()
                .receiver()
                .unwrap();
            let mut tx = bus
                .pipe(if ping { "ping" } else { "pong" })
                .unwrap()
                .sender()
                .unwrap();
            let mut t0 = Instant::now();
            for i in 0..n {
                if i == n / 10 {
                    t0 = Instant::now();
                }
                if ping {
                    tx.send(&frame).unwrap();
                    rx.recv_with(&mut copy).unwrap();
                } else {
                    let len = rx.recv_with(&mut copy).unwrap();
                    tx.send(&frame[..len]).unwrap();
                }
            }
            if ping {
                let ns = t0.elapsed().as_nanos() as f64 / (n - n / 10) as f64;
                println!("{ns:.1}");
            }
        }
        "send" => {
            let mut tx = bus.pipe("flow").unwrap().sender().unwrap();
            for _ in 0..n {
                tx.send(&frame).unwrap();
            }
        }
        "recv" => {
            let mut rx = bus.pipe("flow").unwrap().receiver().unwrap();
            println!("ready");
            rx.recv_with(&mut copy).unwrap();
            let t0 = Instant::now();
            for _ in 1..n {
                rx.recv_with(&mut copy).unwrap();
            }
            println!("{:.0}", (n - 1) as f64 / t0.elapsed().as_secs_f64());
        }
        other => panic!("unknown mode {other}"),
    }
}

/// `target/<profile>/shmbusd` on a bus of its own, stopped on drop.
struct Daemon {
    child: Child,
    bus: String,
}

impl Daemon {
    fn start(dir: &Path) -> Self {
        let exe = dir.join("shmbusd");
        assert!(
            exe.is_file(),
            "{} is missing: cargo build --release -p shmbus-daemon",
            exe.display()
        );
        let bus = format!("capi-bench-{}", std::process::id());
        let child = Command::new(exe)
            .args(["--name", &bus])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start shmbusd");
        let start = Instant::now();
        while Bus::connect_to(&bus).is_err() {
            assert!(start.elapsed().as_secs() < 30, "shmbusd did not come up");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, bus }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon removes its segment and socket.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
