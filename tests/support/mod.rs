//! Shared helpers for the multi-process tests.
//!
//! Child processes are this same test binary, re-run with `SHMBUS_TEST_ROLE`
//! naming what to do and `SHMBUS_TEST_ARGS` its arguments; libtest is told to
//! run only the test that dispatches roles (see [`Proc::spawn`]). Every child
//! has a watchdog, every bus a unique name, and guards clean up on drop, so a
//! failing test neither hangs nor leaves files in `/dev/shm`.
#![allow(dead_code)]

use shmbus::sync::{AtomicU32, Ordering};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmbus::name::BusPaths;

/// Environment variable naming a child's role.
pub const ROLE_ENV: &str = "SHMBUS_TEST_ROLE";
/// Environment variable holding a child's arguments, separated by `\x1f`.
pub const ARGS_ENV: &str = "SHMBUS_TEST_ARGS";
/// Longest a child may run before the watchdog kills it and fails the test.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// A bus name no other test (or test run) uses.
pub fn unique_bus(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// If this process is a child, returns its role and arguments.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let args = std::env::var(ARGS_ENV).unwrap_or_default();
    let args = if args.is_empty() {
        Vec::new()
    } else {
        args.split('\x1f').map(str::to_owned).collect()
    };
    Some((role, args))
}

/// A child process with a watchdog; killed on drop if still running. Its
/// stdout is read line by line on a thread, so a test can wait for a line.
pub struct Proc {
    child: Option<Child>,
    what: String,
    lines: Option<mpsc::Receiver<String>>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    /// Re-runs this test binary as `role`, running only the test named
    /// `dispatch` (which must call [`role`] and act on it).
    pub fn spawn(dispatch: &str, role: &str, args: &[&str]) -> Self {
        let child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([dispatch, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_ENV, role)
            .env(ARGS_ENV, args.join("\x1f"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        Self::watch(child, format!("{role} {args:?}"))
    }

    fn watch(mut child: Child, what: String) -> Self {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self {
            child: Some(child),
            what,
            lines: Some(rx),
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits (watchdog: [`WATCHDOG`]) until the child prints a line that
    /// contains `pat`.
    pub fn expect_line(&mut self, pat: &str) {
        let deadline = Instant::now() + WATCHDOG;
        let rx = self.lines.as_ref().expect("lines");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(pat);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(e) => panic!(
                    "child `{}` never printed {pat:?} ({e}); printed: {:?}",
                    self.what, self.seen
                ),
            }
        }
    }

    /// Runs an arbitrary command under the same watchdog.
    pub fn command(mut cmd: Command, what: &str) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Self::watch(child, what.to_owned())
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// True while the child runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().expect("child").try_wait(), Ok(None))
    }

    /// Waits for the child (watchdog: [`WATCHDOG`]) and returns its status
    /// and output.
    pub fn wait(mut self) -> (ExitStatus, String, String) {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + WATCHDOG;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "watchdog: child `{}` still running after {WATCHDOG:?}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut out = String::new();
        if let Some(rx) = self.lines.take() {
            // The reader thread ends at the child's end of file.
            for l in self.seen.drain(..).chain(rx.iter()) {
                out.push_str(&l);
                out.push('\n');
            }
        }
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, out, err)
    }

    /// Waits and panics with the child's output unless it exited 0.
    pub fn expect_success(self) -> String {
        let what = self.what.clone();
        let (st, out, err) = self.wait();
        assert!(
            st.success(),
            "child `{what}` failed: {st}\nstdout:\n{out}\nstderr:\n{err}"
        );
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A daemon serving a unique bus; stopped and its files removed on drop.
pub struct Daemon {
    /// The bus name.
    pub bus: String,
    /// Its files.
    pub paths: BusPaths,
    proc: Option<Proc>,
}

impl Daemon {
    /// Starts a daemon (this binary in the `daemon` role) on a fresh bus and
    /// waits until it accepts clients.
    pub fn start(dispatch: &str, tag: &str, extra: &[&str]) -> Self {
        let bus = unique_bus(tag);
        let mut args = vec!["--name", bus.as_str(), "--size", "16M"];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(dispatch, "daemon", &args);
        let d = Self {
            paths: BusPaths::new(&bus),
            bus,
            proc: Some(proc),
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if shmbus_client::Bus::connect_to(&self.bus).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon for {} did not come up",
                self.bus
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon process.
    pub fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            if let Some(c) = &p.child {
                if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
            let _ = p.wait();
        }
        for f in [&self.paths.segment, &self.paths.socket, &self.paths.lock] {
            if Path::new(f).exists() {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// Runs the daemon in this process (for the `daemon` role) and exits.
pub fn daemon_main(args: &[String]) -> ! {
    let argv = std::iter::once("shmbusd".to_owned()).chain(args.iter().cloned());
    std::process::exit(shmbus_daemon::main_with_args(argv))
}

/// True once process `pid` sleeps in a futex wait (from `/proc/PID/wchan`,
/// or any of its threads').
pub fn sleeps_in_futex(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let p = t.path();
        let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        wchan.contains("futex") && state == Some("S")
    })
}

/// A small deterministic PRNG (xorshift64*), so sender and receiver draw the
/// same lengths from the same seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..=max`.
    pub fn below_eq(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// FNV-1a over `bytes`.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
