//! Helpers shared by the tests of `shmbus-client`, `shmbus-cli` and
//! `shmbus-daemon`: a real `shmbusd` per test on a unique bus, the `shmbus`
//! binary as a child process, watchdogs everywhere, and guards that kill what
//! they started and remove the bus's files.
//!
//! A crate of its own (never published; a path-only dev-dependency, which
//! `cargo package` drops) rather than a module each test file includes: it is
//! compiled once, its items are a public API instead of `dead_code` in every
//! test binary that uses a part of them, and no test of one crate reaches into
//! the files of another.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use shmbus::name::BusPaths;
use shmbus::sync::{AtomicU32, Ordering};
use shmbus_client::Bus;

/// Longest any child process may run before the watchdog kills it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// A bus name no other test (or concurrent test run) uses.
pub fn unique_bus(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cl-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `target/<profile>/NAME`, next to the directory of this test binary.
///
/// # Panics
/// With instructions (`cargo build -p PACKAGE`) if it has not been built.
fn built_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/e2e-HASH -> target/debug
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p {package}` \
         (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// `target/<profile>/shmbusd`, next to the directory of this test binary.
///
/// # Panics
/// With instructions if it has not been built.
pub fn shmbusd() -> PathBuf {
    built_binary("shmbusd", "shmbus-daemon")
}

/// `target/<profile>/shmbus`, the command line (`cargo test -p shmbus-cli`
/// builds it before its tests).
///
/// # Panics
/// With instructions if it has not been built.
pub fn shmbus_exe() -> PathBuf {
    built_binary("shmbus", "shmbus-cli")
}

/// Reads a child's pipe to the end on a thread.
fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = kill_process(pid, sig);
    }
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A child process, killed on drop if still running; its stdout and stderr
/// are collected on threads (unless the test took stdout).
pub struct Proc {
    child: Child,
    what: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    pub stdin: Option<ChildStdin>,
    /// Set by [`Proc::take_stdout`].
    pub raw_stdout: Option<ChildStdout>,
}

impl Proc {
    /// Spawns `cmd` with piped stdio.
    pub fn spawn(mut cmd: Command, what: &str) -> Self {
        Self::spawn_with(&mut cmd, what, false)
    }

    /// As [`Proc::spawn`], but leaves stdout to the test (see `raw_stdout`).
    pub fn spawn_raw_stdout(mut cmd: Command, what: &str) -> Self {
        Self::spawn_with(&mut cmd, what, true)
    }

    fn spawn_with(cmd: &mut Command, what: &str, raw_stdout: bool) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (stdout, raw) = if raw_stdout {
            (None, Some(out))
        } else {
            (Some(drain(out)), None)
        };
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        let stdin = child.stdin.take();
        Self {
            child,
            what: what.to_owned(),
            stdout,
            stderr,
            stdin,
            raw_stdout: raw,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Writes to the child's stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(bytes).expect("write child stdin");
        w.flush().expect("flush child stdin");
    }

    /// True while the child runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, sig: Signal) {
        signal(&self.child, sig);
    }

    /// Waits for the child to exit (killing it after `limit`) and collects
    /// its output.
    ///
    /// # Panics
    /// If the watchdog had to kill it.
    pub fn wait(mut self, limit: Duration) -> Output {
        self.stdin = None;
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    signal(&self.child, Signal::KILL);
                    let _ = self.child.wait();
                    let out = self.collect(None);
                    panic!(
                        "watchdog: `{}` still ran after {limit:?}; killed it. stdout: {:?} stderr: {:?}",
                        self.what,
                        out.stdout_str(),
                        out.stderr
                    );
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        self.collect(Some(status))
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> Output {
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Output {
            status: status.unwrap_or_else(|| self.child.wait().expect("wait")),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(&self.child, Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// `shmbus --bus BUS ARGS...` as a command.
pub fn shmbus_cmd(bus: &str, args: &[&str]) -> Command {
    let mut c = Command::new(shmbus_exe());
    c.arg("--bus").arg(bus).args(args).env_remove("SHMBUS_BUS");
    c
}

/// Runs `shmbus --bus BUS ARGS...` to completion (watchdog: [`WATCHDOG`]).
pub fn shmbus(bus: &str, args: &[&str]) -> Output {
    let what = format!("shmbus --bus {bus} {}", args.join(" "));
    Proc::spawn(shmbus_cmd(bus, args), &what).wait(WATCHDOG)
}

/// Starts `shmbus --bus BUS ARGS...` in the background.
pub fn shmbus_bg(bus: &str, args: &[&str]) -> Proc {
    let what = format!("shmbus --bus {bus} {}", args.join(" "));
    Proc::spawn(shmbus_cmd(bus, args), &what)
}

/// A `shmbusd` serving a unique bus. Dropping it stops the daemon (SIGTERM,
/// then SIGKILL) and removes the bus's files.
pub struct Daemon {
    pub bus: String,
    pub paths: BusPaths,
    proc: Option<Proc>,
}

impl Daemon {
    /// Starts `shmbusd --name <unique> --size 1M EXTRA...` and waits until a
    /// client can connect.
    pub fn start(tag: &str, extra: &[&str]) -> Self {
        Self::start_named(unique_bus(tag), extra)
    }

    /// As [`Daemon::start`], on bus `bus`.
    pub fn start_named(bus: String, extra: &[&str]) -> Self {
        Self::start_wrapped(bus, &[], extra)
    }

    /// As [`Daemon::start_named`], run by a wrapper command (`wrapper`
    /// followed by the daemon's path and arguments), e.g. `unshare --pid
    /// --fork`. The wrapper must pass SIGTERM on (`--kill-child=SIGTERM`).
    pub fn start_wrapped(bus: String, wrapper: &[&str], extra: &[&str]) -> Self {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(shmbusd());
                c
            }
            None => Command::new(shmbusd()),
        };
        cmd.args(["--name", &bus, "--size", "1M"]).args(extra);
        let proc = Proc::spawn(cmd, &format!("shmbusd --name {bus}"));
        let mut d = Self {
            paths: BusPaths::new(&bus),
            bus,
            proc: Some(proc),
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            match Bus::connect_to(&self.bus) {
                Ok(_) => return,
                Err(e) => {
                    let p = self.proc.as_mut().expect("daemon");
                    if !p.running() {
                        let out = self.proc.take().expect("daemon").wait(WATCHDOG);
                        panic!(
                            "shmbusd for {} exited with {} before serving: {}",
                            self.bus, out.status, out.stderr
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "shmbusd for {} did not come up: {e}",
                        self.bus
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Connects a client.
    pub fn connect(&self) -> Bus {
        Bus::connect_to(&self.bus).expect("connect to the test daemon")
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        self.proc.as_ref().expect("daemon").signal(sig);
    }

    /// Waits for the daemon to exit and returns its output.
    pub fn wait(&mut self) -> Output {
        self.proc.take().expect("daemon").wait(WATCHDOG)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut p = p;
            while p.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Kills it if SIGTERM did not.
            drop(p);
        }
        for f in [&self.paths.segment, &self.paths.socket, &self.paths.lock] {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A file under `/dev/shm` (a would-be segment) removed on drop.
pub struct ShmFile {
    pub bus: String,
    pub path: PathBuf,
}

impl ShmFile {
    pub fn new(tag: &str, bytes: &[u8]) -> Self {
        let bus = unique_bus(tag);
        let path = BusPaths::new(&bus).segment;
        std::fs::write(&path, bytes).expect("write /dev/shm file");
        Self { bus, path }
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit`.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        // The closure panicked: fail with its message.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(e) => panic!("watchdog: {what} did not finish within {limit:?} ({e})"),
    }
}

/// True once a thread of process `pid` sleeps in a futex wait.
pub fn sleeps_in_futex(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
        wchan.contains("futex")
    })
}
