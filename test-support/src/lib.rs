//! Helpers shared by the tests of `shmbus-client`, `shmbus-cli` and
//! `shmbus-daemon`: a real daemon per test on a unique bus, child processes
//! (the `shmbus` binary, or the test binary itself in a role), watchdogs
//! everywhere, and guards that kill what they started and remove the bus's
//! files.
//!
//! # Roles
//! A multi-process test runs its children as this same test binary, re-run
//! with [`ROLE_ENV`] naming what to do and [`ARGS_ENV`] its arguments;
//! libtest is told to run only the test that dispatches roles (it calls
//! [`role`] and acts on it; see [`Proc::spawn_role`]). The `daemon` role is
//! [`daemon_main`]: [`Daemon::start_role`] runs a daemon that way, which needs
//! no `shmbusd` binary built beforehand. [`Daemon::start`] runs the
//! `shmbusd` binary, for tests that wrap it in another command (`unshare`,
//! `prlimit`) or check it as a program.
//!
//! A crate of its own (never published; a path-only dev-dependency, which
//! `cargo package` drops) rather than a module each test file includes: it is
//! compiled once, its items are a public API instead of `dead_code` in every
//! test binary that uses a part of them, and no test of one crate reaches into
//! the files of another.

pub mod idle;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use shmbus::name::BusPaths;
use shmbus::sync::{AtomicU32, Ordering};
use shmbus_client::Bus;

/// Longest any child process may run before the watchdog kills it, and
/// longest a test waits for a line or a daemon.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// Environment variable naming a child's role.
pub const ROLE_ENV: &str = "SHMBUS_TEST_ROLE";
/// Environment variable holding a child's arguments, separated by `\x1f`.
pub const ARGS_ENV: &str = "SHMBUS_TEST_ARGS";

/// A bus name no other test (or test run) uses: the pid, a counter, and the
/// clock's nanoseconds against a reused pid.
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

/// This test binary, to be re-run as `role` with `args`, running only the
/// test named `dispatch` (which must call [`role`] and act on it).
pub fn role_command(dispatch: &str, role: &str, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.args([dispatch, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_ENV, role)
        .env(ARGS_ENV, args.join("\x1f"));
    c
}

/// Runs the daemon in this process (for the `daemon` role) and exits.
pub fn daemon_main(args: &[String]) -> ! {
    let argv = std::iter::once("shmbusd".to_owned()).chain(args.iter().cloned());
    std::process::exit(shmbus_daemon::main_with_args(argv))
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

/// A child's standard output as read so far, filled by a thread, so that a
/// test can wait for a line ([`Proc::expect_line`]) and still get the whole
/// output, binary frames included, at the end ([`Proc::wait`]).
#[derive(Default)]
struct Collected {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

/// Reads `r` to the end into a [`Collected`] on a thread.
fn collect_into(mut r: impl Read + Send + 'static) -> (Arc<Collected>, JoinHandle<()>) {
    let c = Arc::new(Collected::default());
    let c2 = Arc::clone(&c);
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = r.read(&mut buf).unwrap_or(0);
            let mut st = c2.state.lock().unwrap_or_else(|e| e.into_inner());
            if n == 0 {
                st.1 = true;
            } else {
                st.0.extend_from_slice(&buf[..n]);
            }
            c2.grew.notify_all();
            if n == 0 {
                return;
            }
        }
    });
    (c, h)
}

fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = kill_process(pid, sig);
    }
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A child process, killed on drop if still running; its stdout and stderr
/// are collected on threads (unless the test took stdout).
pub struct Proc {
    child: Child,
    what: String,
    stdout: Option<(Arc<Collected>, JoinHandle<()>)>,
    /// Offset in the collected stdout up to which [`Proc::expect_line`] has
    /// looked.
    scanned: usize,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// The child's standard input, until [`Proc::close_stdin`] or
    /// [`Proc::wait`].
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, for a test that reads it itself
    /// ([`Proc::spawn_raw_stdout`]).
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

    /// Re-runs this test binary as `role` with `args` (see [`role_command`]).
    pub fn spawn_role(dispatch: &str, role: &str, args: &[&str]) -> Self {
        Self::spawn(
            role_command(dispatch, role, args),
            &format!("{role} {args:?}"),
        )
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
            (Some(collect_into(out)), None)
        };
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        let stdin = child.stdin.take();
        Self {
            child,
            what: what.to_owned(),
            stdout,
            scanned: 0,
            stderr,
            stdin,
            raw_stdout: raw,
        }
    }

    /// The child's pid.
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

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: Signal) {
        signal(&self.child, sig);
    }

    /// Waits (watchdog: [`WATCHDOG`]) until the child prints a line, after
    /// those an earlier call matched, that contains `pat`.
    ///
    /// # Panics
    /// If the child's output ends or the watchdog fires first, with what it
    /// printed.
    pub fn expect_line(&mut self, pat: &str) {
        let deadline = Instant::now() + WATCHDOG;
        let (c, _) = self.stdout.as_ref().expect("stdout collected");
        let mut st = c.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(nl) = st.0[self.scanned..].iter().position(|&b| b == b'\n') {
                let line = &st.0[self.scanned..self.scanned + nl];
                self.scanned += nl + 1;
                if String::from_utf8_lossy(line).contains(pat) {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !st.1 && !left.is_zero(),
                "child `{}` never printed {pat:?} ({}); printed: {:?}",
                self.what,
                if st.1 { "end of output" } else { "watchdog" },
                String::from_utf8_lossy(&st.0)
            );
            st = c
                .grew
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
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

    /// Waits (watchdog: [`WATCHDOG`]) and returns the child's standard
    /// output.
    ///
    /// # Panics
    /// With its output, unless it exited 0.
    pub fn expect_success(self) -> String {
        let what = self.what.clone();
        let o = self.wait(WATCHDOG);
        assert!(
            o.status.success(),
            "child `{what}` failed: {}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            o.stdout_str(),
            o.stderr
        );
        o.stdout_str()
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> Output {
        let stdout = self
            .stdout
            .take()
            .map(|(c, h)| {
                let _ = h.join();
                let mut st = c.state.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut st.0)
            })
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

/// A daemon serving a unique bus: the `shmbusd` binary ([`Daemon::start`])
/// or this test binary in the `daemon` role ([`Daemon::start_role`]).
/// Dropping it stops the daemon (SIGTERM, then SIGKILL) and removes the bus's
/// files.
pub struct Daemon {
    /// The bus name.
    pub bus: String,
    /// The bus's files.
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

    /// Starts a daemon on a fresh bus as this test binary in the `daemon`
    /// role (see [`daemon_main`]; `dispatch` names the test that dispatches
    /// roles) with a 16 MiB segment, and waits until a client can connect.
    pub fn start_role(dispatch: &str, tag: &str, extra: &[&str]) -> Self {
        let bus = unique_bus(tag);
        let mut args = vec!["--name", bus.as_str(), "--size", "16M"];
        args.extend_from_slice(extra);
        let proc = Proc::spawn_role(dispatch, "daemon", &args);
        let mut d = Self {
            paths: BusPaths::new(&bus),
            bus,
            proc: Some(proc),
        };
        d.wait_ready();
        d
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

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("daemon").pid()
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
        remove_files(&self.paths);
    }
}

/// Removes a bus's files (segment, socket, lock), whichever exist.
pub fn remove_files(paths: &BusPaths) {
    for f in [&paths.segment, &paths.socket, &paths.lock] {
        let _ = std::fs::remove_file(f);
    }
}

/// Removes a bus's files on drop, even if the test fails: for buses whose
/// daemon is expected to refuse, or is killed and leaves them behind.
#[derive(Debug)]
pub struct Files(pub BusPaths);

impl Drop for Files {
    fn drop(&mut self) {
        remove_files(&self.0);
    }
}

/// A file under `/dev/shm` (a would-be segment) removed on drop.
pub struct ShmFile {
    /// The unique bus name whose segment path it takes.
    pub bus: String,
    /// Its path.
    pub path: PathBuf,
}

impl ShmFile {
    /// Writes `bytes` at the segment path of a fresh bus name.
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

/// Polls `f` every 20 ms until it returns `Some`, and fails the test after
/// [`WATCHDOG`] (for what a daemon does asynchronously, as recovering a
/// killed client).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WATCHDOG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(20));
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

/// True once a thread of process `pid` sleeps in a futex wait (from
/// `/proc/PID/task/*/wchan`, in state `S`).
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
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Next value.
    #[allow(clippy::should_implement_trait)]
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

/// Runs `wait`, a blocking call, on a new thread, and `wake` once that thread
/// sleeps in a futex wait; returns what `wait` returned. So the call is known
/// to have gone to sleep before what it waits for happens. Fails the test if
/// the thread neither sleeps nor finishes within [`WATCHDOG`], or panics.
pub fn woken<T: Send + 'static>(
    wait: impl FnOnce() -> T + Send + 'static,
    wake: impl FnOnce(),
) -> T {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get());
        wait()
    });
    let tid = tid_rx
        .recv_timeout(WATCHDOG)
        .expect("the waiting thread starts");
    let wchan = format!("/proc/self/task/{tid}/wchan");
    let start = Instant::now();
    // A thread that finished without sleeping is left to the caller's
    // asserts on what it returned.
    while !t.is_finished()
        && !std::fs::read_to_string(&wchan)
            .unwrap_or_default()
            .contains("futex")
    {
        assert!(
            start.elapsed() < WATCHDOG,
            "watchdog: the waiting thread never slept"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    wake();
    while !t.is_finished() {
        assert!(
            start.elapsed() < 2 * WATCHDOG,
            "watchdog: the waiting thread was not woken"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}
