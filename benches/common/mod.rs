//! What the per-primitive benchmarks share: re-running this executable as a
//! child process with a role, pinning, a daemon on a private bus, and the raw
//! cache-line ping-pong that every latency is compared with.
//!
//! Each benchmark includes this file with `#[path = "../common/mod.rs"]`.
#![allow(dead_code)]

use std::env;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmbus::sync::{AtomicU64, Ordering};
use shmbus_client::Bus;

/// Environment variable naming a child's role.
pub(crate) const ROLE: &str = "SHMBUS_BENCH_ROLE";
/// Environment variable naming the cpu a child pins itself to (empty: none).
const CPU: &str = "SHMBUS_BENCH_CPU";

/// Pins the calling thread (and children spawned later) to `cpu`.
pub(crate) fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("warning: could not pin to cpu {cpu}: {e}");
    }
}

/// Spawns this executable as `role` with `args`, pinned to `cpu` if given.
pub(crate) fn spawn_child(role: &str, args: &[&str], cpu: Option<usize>) -> Child {
    Command::new(env::current_exe().expect("current_exe"))
        .env(ROLE, role)
        .env(CPU, cpu.map_or_else(String::new, |c| c.to_string()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// Waits for a child and panics unless it succeeded.
pub(crate) fn wait_child(mut c: Child) {
    let st = c.wait().expect("wait child");
    assert!(st.success(), "child failed: {st}");
}

/// In a child: pins it where the parent asked and returns its arguments.
pub(crate) fn child_setup() -> Vec<String> {
    if let Some(c) = env::var(CPU).ok().and_then(|c| c.parse().ok()) {
        pin(c);
    }
    env::args().skip(1).collect()
}

/// Runs the roles this module provides (`daemon`, `floor`); returns false for
/// any other role, which the benchmark handles itself.
pub(crate) fn common_role(role: &str, args: &[String]) -> bool {
    match role {
        "daemon" => daemon_main(args),
        "floor" => floor_child(&args[0], args[1].parse().expect("count")),
        _ => return false,
    }
    true
}

// ---- daemon ----------------------------------------------------------------

/// A daemon on a private bus, stopped and its files removed on drop.
pub(crate) struct Daemon {
    child: Child,
    paths: shmbus::name::BusPaths,
}

impl Daemon {
    /// Starts the daemon (this executable in the `daemon` role) and waits
    /// until it accepts clients.
    pub(crate) fn start(bus: &str) -> Self {
        let child = Command::new(env::current_exe().expect("current_exe"))
            .env(ROLE, "daemon")
            .args(["--name", bus, "--size", "64M", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn daemon");
        let paths = shmbus::name::BusPaths::new(bus);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Bus::connect_to(bus).is_err() {
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, paths }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let _ = self.child.wait();
        for p in [&self.paths.segment, &self.paths.socket, &self.paths.lock] {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn daemon_main(args: &[String]) {
    let argv = std::iter::once("shmbusd".to_owned()).chain(args.iter().cloned());
    std::process::exit(shmbus_daemon::main_with_args(argv));
}

// ---- floor -------------------------------------------------------------------

/// Two words on separate 128-byte lines of a `/dev/shm` file.
struct Lines {
    map: memmap2::MmapRaw,
    path: PathBuf,
    owner: bool,
}

impl Lines {
    fn create() -> Self {
        let path = PathBuf::from(format!(
            "/dev/shm/shmbus-bench-floor-{}",
            std::process::id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create floor file");
        f.set_len(4096).expect("size floor file");
        let map = memmap2::MmapOptions::new()
            .map_raw(&f)
            .expect("map floor file");
        Self {
            map,
            path,
            owner: true,
        }
    }

    fn open(path: &str) -> Self {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open floor file");
        let map = memmap2::MmapOptions::new()
            .map_raw(&f)
            .expect("map floor file");
        Self {
            map,
            path: path.into(),
            owner: false,
        }
    }

    fn word(&self, line: usize) -> &AtomicU64 {
        assert!(line < 2 && self.map.len() >= 256);
        // SAFETY: the mapping is at least 256 bytes (checked) and page-aligned,
        // so `line * 128` is in bounds and 8-byte aligned; `AtomicU64` has the
        // size and alignment of `u64` and every bit pattern is valid; the
        // mapping lives as long as `self`, which the returned reference borrows.
        unsafe { &*self.map.as_mut_ptr().add(line * 128).cast::<AtomicU64>() }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The floor: `n` round trips of a raw cache-line ping-pong with a child
/// (pinned to `cpu` if given).
pub(crate) fn floor_round_trip(n: u64, cpu: Option<usize>) -> Histogram<u64> {
    let lines = Lines::create();
    let child = spawn_child(
        "floor",
        &[lines.path.to_str().unwrap(), &n.to_string()],
        cpu,
    );
    let (ping, pong) = (lines.word(0), lines.word(1));
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 1..=n {
        let t = Instant::now();
        // Release/Acquire: the floor uses exactly the orderings a pipe needs.
        ping.store(i, Ordering::Release);
        while pong.load(Ordering::Acquire) != i {
            core::hint::spin_loop();
        }
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    wait_child(child);
    h
}

fn floor_child(path: &str, n: u64) {
    let lines = Lines::open(path);
    let (ping, pong) = (lines.word(0), lines.word(1));
    for i in 1..=n {
        while ping.load(Ordering::Acquire) != i {
            core::hint::spin_loop();
        }
        pong.store(i, Ordering::Release);
    }
}
