//! End-to-end tests of `shmbusd`: real processes, real `/dev/shm`.
//!
//! Every test uses its own bus name, every daemon is a [`Daemon`] guard that
//! kills it and removes its files on drop (so a failing test leaves nothing
//! behind), and every wait has a watchdog that fails the test instead of
//! hanging. No test asserts how long anything takes. Child output is captured,
//! never inherited.
//!
//! Not built under `--cfg loom`: loom's atomics are not words in a real segment.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use rustix::process::{kill_process, Pid, Signal};
use shmbus::layout::{
    self, entry_state, peer_state, state, DirEntry, Geometry, Header, Kind, PeerSlot, ABI_VERSION,
};
use shmbus::name::BusPaths;
use shmbus::pipe::{end, PipeCtl};
use shmbus::protocol::{ErrorCode, Response};
use shmbus::sync::Ordering;
use shmbus_test_support::{remove_files, unique_bus, Files, WATCHDOG};

const BIN: &str = env!("CARGO_BIN_EXE_shmbusd");
const ROLE_ENV: &str = "SHMBUSD_TEST_ROLE";
const BUS_ENV: &str = "SHMBUSD_TEST_BUS";

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Waits for `child` with a watchdog; kills it and fails the test on timeout.
fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: {what} did not exit within {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `shmbusd ARGS` to completion (it is expected to exit by itself).
fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .env_remove("SHMBUS_BUS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbusd");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let st = wait_child(&mut child, &format!("shmbusd {args:?}"));
    let _ = out.join();
    (st, err.join().unwrap_or_default())
}

/// A running daemon. Drop kills it and removes the bus's files.
struct Daemon {
    name: String,
    paths: BusPaths,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    stdout: Option<JoinHandle<String>>,
    remove_on_drop: bool,
}

impl Daemon {
    /// Starts `shmbusd --name NAME ARGS` and waits until it serves.
    fn start(name: &str, args: &[&str]) -> Self {
        let mut d = Self::spawn(name, args, &[]);
        d.wait_ready();
        d
    }

    fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        if !env.iter().any(|(k, _)| *k == "SHMBUS_BUS") {
            cmd.arg("--name").arg(name).env_remove("SHMBUS_BUS");
        }
        let mut child = cmd
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmbusd");
        let stdout = Some(drain(child.stdout.take().expect("stdout")));
        let stderr = Some(drain(child.stderr.take().expect("stderr")));
        Self {
            name: name.to_owned(),
            paths: BusPaths::new(name),
            child: Some(child),
            stderr,
            stdout,
            remove_on_drop: true,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Polls until the socket exists and the segment validates, with this
    /// daemon's pid in the header.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if self.paths.socket.exists() {
                if let Ok(seg) = Segment::open(&self.paths.segment) {
                    let h = seg.header();
                    if layout::validate(h, seg.len()).is_ok()
                        && h.daemon_pid.load(Ordering::Relaxed) == self.pid()
                    {
                        return;
                    }
                }
            }
            let child = self.child.as_mut().expect("running");
            if let Some(st) = child.try_wait().expect("try_wait") {
                let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
                panic!(
                    "shmbusd {} exited with {st} before serving:\n{}",
                    self.name,
                    err.unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "watchdog: shmbusd {} not ready within {WATCHDOG:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: Signal) {
        let child = self.child.as_ref().expect("running");
        kill_process(Pid::from_child(child), sig).expect("kill");
    }

    /// Waits for the daemon to exit; returns its status and stderr.
    fn wait_exit(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let st = wait_child(&mut child, &format!("shmbusd {}", self.name));
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (st, err)
    }

    /// SIGKILLs the daemon and leaves its files behind (as a crash would),
    /// for another guard to clean up. Returns its stderr.
    fn crash(mut self) -> String {
        self.signal(Signal::KILL);
        let (st, err) = self.wait_exit();
        assert!(!st.success());
        self.remove_on_drop = false;
        err
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.remove_on_drop {
            remove_files(&self.paths);
        }
    }
}

/// A read-write mapping of a segment file, as a client would have.
struct Segment {
    map: MmapRaw,
}

impl Segment {
    fn open(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = f.metadata()?.len();
        if len < 4096 {
            return Err(std::io::Error::other("too short"));
        }
        Ok(Self {
            map: MmapOptions::new().len(len as usize).map_raw(&f)?,
        })
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The `T` at `off`, after checking bounds and alignment.
    ///
    /// `T` must be one of the segment's structs: only atomics, any bits valid.
    fn at<T>(&self, off: u64) -> &T {
        let size = std::mem::size_of::<T>() as u64;
        assert!(off + size <= self.len(), "offset {off} out of bounds");
        assert_eq!(off % std::mem::align_of::<T>() as u64, 0, "misaligned");
        // SAFETY: in bounds and aligned (asserted; the mapping is page-aligned);
        // callers use only `Header`/`PeerSlot`/`DirEntry`/`PipeCtl`, which hold
        // only atomics, so a shared reference is fine while the daemon writes;
        // the reference borrows `self`, which owns the mapping.
        unsafe { &*self.map.as_ptr().add(off as usize).cast::<T>() }
    }

    fn header(&self) -> &Header {
        self.at(0)
    }

    fn geometry(&self) -> Geometry {
        layout::validate(self.header(), self.len()).expect("valid segment")
    }

    fn peer(&self, slot: u16) -> &PeerSlot {
        let g = self.geometry();
        assert!(u32::from(slot) < g.peers_count);
        self.at(g.peers_off + u64::from(slot) * 128)
    }

    fn entry(&self, index: u32) -> &DirEntry {
        let g = self.geometry();
        assert!(index < g.dir_count);
        self.at(g.dir_off + u64::from(index) * 256)
    }

    fn pipe(&self, offset: u64) -> &PipeCtl {
        assert!(offset >= self.geometry().arena_off);
        self.at(offset)
    }
}

/// A raw control-protocol client over the daemon's socket.
struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(paths: &BusPaths) -> Self {
        let stream = UnixStream::connect(&paths.socket).expect("connect");
        stream.set_read_timeout(Some(WATCHDOG)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Self { stream, reader }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).expect("write");
    }

    /// The next line, or `None` at end of stream.
    fn recv_line(&mut self) -> Option<String> {
        let mut s = String::new();
        let n = self.reader.read_line(&mut s).expect("read (watchdog?)");
        (n > 0).then_some(s)
    }

    fn request(&mut self, line: &str) -> Response {
        self.send(line);
        let l = self.recv_line().expect("daemon closed the connection");
        Response::decode(&l).unwrap_or_else(|e| panic!("bad response {l:?}: {e}"))
    }

    fn hello(&mut self) -> (u16, u32, u64, u64) {
        match self.request(&format!("HELLO {ABI_VERSION} {}\n", std::process::id())) {
            Response::Welcome {
                slot,
                generation,
                epoch,
                segment_size,
            } => (slot, generation, epoch, segment_size),
            r => panic!("expected WELCOME, got {r:?}"),
        }
    }

    /// Expects the daemon to close the connection next.
    fn expect_eof(&mut self) {
        assert_eq!(self.recv_line(), None, "connection still open");
    }

    /// Closes our side for writing (the daemon sees EOF) and expects the
    /// daemon to close its side too.
    fn expect_eof_after_close(&mut self) {
        self.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        self.expect_eof();
    }
}

fn expect_err(r: Response, want: ErrorCode) -> String {
    match r {
        Response::Error { code, message } if code == want => message,
        r => panic!("expected ERR {want}, got {r:?}"),
    }
}

fn expect_channel(r: Response) -> (u32, u64, u64, [u64; 3]) {
    match r {
        Response::Channel {
            index,
            kind: Kind::Pipe,
            offset,
            length,
            params,
            ..
        } => (index, offset, length, params),
        r => panic!("expected CHANNEL pipe, got {r:?}"),
    }
}

/// Polls `cond` until true; fails the test after the watchdog.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !cond() {
        assert!(Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn starts_with_private_segment_and_socket() {
    let name = unique_bus("start");
    let d = Daemon::start(&name, &[]);
    assert_eq!(d.paths.segment, Path::new("/dev/shm").join(&name));
    assert_eq!(mode_of(&d.paths.segment), 0o600);
    assert_eq!(mode_of(&d.paths.socket), 0o600);
    assert!(std::fs::symlink_metadata(&d.paths.socket)
        .unwrap()
        .file_type()
        .is_socket());
    assert!(d.paths.lock.exists());
    let seg = Segment::open(&d.paths.segment).unwrap();
    let g = layout::validate(seg.header(), seg.len()).expect("header validates");
    assert_eq!(g.total_size, 32 << 20);
    assert_eq!(g.peers_count, 128);
    assert_eq!(g.dir_count, 256);
    let h = seg.header();
    assert_eq!(h.state.load(Ordering::Acquire), state::READY);
    assert_eq!(h.daemon_pid.load(Ordering::Relaxed), d.pid());
    assert_ne!(h.daemon_start.load(Ordering::Relaxed), 0);
    assert_ne!(h.epoch.load(Ordering::Relaxed), 0);
    assert_eq!(h.arena_used.load(Ordering::Relaxed), 0);
    // The lock file names the daemon too.
    let lock = std::fs::read_to_string(&d.paths.lock).unwrap();
    assert_eq!(lock.trim(), d.pid().to_string());
}

#[test]
fn mode_and_size_options() {
    let name = unique_bus("mode");
    let d = Daemon::start(
        &name,
        &["--mode", "0640", "--size", "4M", "--max-peers", "8"],
    );
    assert_eq!(mode_of(&d.paths.segment), 0o640);
    assert_eq!(mode_of(&d.paths.socket), 0o640);
    assert_eq!(std::fs::metadata(&d.paths.segment).unwrap().len(), 4 << 20);
    let seg = Segment::open(&d.paths.segment).unwrap();
    assert_eq!(seg.geometry().peers_count, 8);
}

#[test]
fn bus_name_from_environment() {
    let name = unique_bus("env");
    let mut d = Daemon::spawn(&name, &[], &[("SHMBUS_BUS", &name)]);
    d.wait_ready();
    assert!(d.paths.segment.exists());
}

#[test]
fn second_daemon_on_a_live_bus_is_refused() {
    let name = unique_bus("second");
    let d = Daemon::start(&name, &[]);
    let (st, err) = run_to_end(&["--name", &name], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(&name), "message should name the bus: {err}");
    assert!(
        err.contains(&format!("pid {}", d.pid())),
        "message should name the live daemon's pid: {err}"
    );
    // The first daemon is unharmed.
    let seg = Segment::open(&d.paths.segment).unwrap();
    assert_eq!(
        seg.header().daemon_pid.load(Ordering::Relaxed),
        d.pid(),
        "the refused daemon must not touch the segment"
    );
    assert!(d.paths.socket.exists());
    Client::connect(&d.paths).hello();
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for sig in [Signal::TERM, Signal::INT] {
        let name = unique_bus("term");
        let mut d = Daemon::start(&name, &["--pipe", "p"]);
        let seg = Segment::open(&d.paths.segment).unwrap();
        let mut c = Client::connect(&d.paths);
        c.hello();
        d.signal(sig);
        let (st, err) = d.wait_exit();
        assert_eq!(st.code(), Some(0), "{sig:?}: {err}");
        assert!(err.contains("shutting down"), "{err}");
        for p in [&d.paths.segment, &d.paths.socket, &d.paths.lock] {
            assert!(!p.exists(), "{} left behind", p.display());
        }
        // Our mapping outlives the file: the daemon marked it CLOSING.
        assert_eq!(seg.header().state.load(Ordering::Acquire), state::CLOSING);
        // And the client's connection was closed.
        c.expect_eof();
    }
}

/// A daemon whose stderr is a file (as under `nohup`), which the test can
/// read while the daemon runs. Drop removes the file.
struct LogFile(std::path::PathBuf);

impl LogFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("{name}.log")))
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// Starts `shmbusd --name NAME ARGS` with stderr appended to this file
    /// and waits until it serves.
    fn start(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::File::create(&self.0).expect("create log file");
        let child = Command::new(BIN)
            .arg("--name")
            .arg(name)
            .args(args)
            .env_remove("SHMBUS_BUS")
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn shmbusd");
        let mut d = Daemon {
            name: name.to_owned(),
            paths: BusPaths::new(name),
            child: Some(child),
            stderr: None,
            stdout: None,
            remove_on_drop: true,
        };
        d.wait_ready();
        d
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every line is `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL shmbusd[NAME]: ...`.
fn assert_log_format(log: &str, name: &str) {
    assert!(!log.is_empty());
    for line in log.lines() {
        let mut f = line.splitn(3, ' ').filter(|w| !w.is_empty());
        let (ts, level) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let digits = |r: std::ops::Range<usize>| ts[r].bytes().all(|b| b.is_ascii_digit());
        assert!(
            ts.len() == 24
                && digits(0..4)
                && digits(5..7)
                && digits(8..10)
                && &ts[10..11] == "T"
                && digits(11..13)
                && digits(20..23)
                && ts.ends_with('Z'),
            "no timestamp: {line:?}"
        );
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&level),
            "no level: {line:?}"
        );
        assert!(
            line.contains(&format!(" shmbusd[{name}]: ")),
            "no bus prefix: {line:?}"
        );
    }
}

#[test]
fn sighup_logs_status_and_keeps_serving() {
    let name = unique_bus("hup");
    let log = LogFile::new(&name);
    let mut d = log.start(&name, &["--pipe", "p", "--queue", "q"], &[]);
    let mut c = Client::connect(&d.paths);
    c.hello();
    for _ in 0..2 {
        d.signal(Signal::HUP);
    }
    let want = "status: serving; peers 1/128; channels 2/256 (pipes 1, queues 1, values 0, \
                arrays 0, topics 0); arena ";
    wait_until("the status line after SIGHUP", || {
        let child = d.child.as_mut().expect("running");
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("shmbusd exited with {st} on SIGHUP:\n{}", log.read());
        }
        log.read().contains(want)
    });
    // Still serving: the old client's connection is open, a new one works.
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
    Client::connect(&d.paths).hello();
    assert_eq!(
        Segment::open(&d.paths.segment)
            .unwrap()
            .header()
            .state
            .load(Ordering::Acquire),
        state::READY
    );

    d.signal(Signal::TERM);
    let (st, _) = d.wait_exit();
    let text = log.read();
    assert_eq!(st.code(), Some(0), "{text}");
    for p in [&d.paths.segment, &d.paths.socket, &d.paths.lock] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(text.contains("SIGTERM received"), "{text}");
    assert!(text.contains("stopped (2 channels woken;"), "{text}");
    assert!(!text.contains("SIGHUP received"), "{text}");
    assert_log_format(&text, &name);
    c.expect_eof();
}

#[test]
fn rust_log_filters_the_log() {
    for (rust_log, shown) in [
        ("", true),
        ("info", true),
        ("warn", false),
        ("shmbusd=warn", false),
    ] {
        let name = unique_bus("rustlog");
        let mut d = Daemon::spawn(&name, &["--pipe", "p"], &[("RUST_LOG", rust_log)]);
        d.wait_ready();
        Client::connect(&d.paths).hello();
        d.signal(Signal::HUP);
        d.signal(Signal::TERM);
        let (st, err) = d.wait_exit();
        assert_eq!(st.code(), Some(0), "{err}");
        if shown {
            assert!(
                err.contains("ready: 1 channels") && err.contains("stopped"),
                "{err}"
            );
            assert_log_format(&err, &name);
        } else {
            assert_eq!(err, "", "RUST_LOG={rust_log}");
        }
    }
}

#[test]
fn journal_stream_gets_syslog_priorities() {
    let name = unique_bus("journal");
    let log = LogFile::new(&name);
    std::fs::File::create(&log.0).unwrap();
    let m = std::fs::metadata(&log.0).unwrap();
    let stream = format!("{}:{}", std::os::unix::fs::MetadataExt::dev(&m), {
        std::os::unix::fs::MetadataExt::ino(&m)
    });
    let mut d = log.start(&name, &[], &[("JOURNAL_STREAM", &stream)]);
    d.signal(Signal::TERM);
    let (st, _) = d.wait_exit();
    let text = log.read();
    assert_eq!(st.code(), Some(0), "{text}");
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(
            line.starts_with(&format!("<6>shmbusd[{name}]: ")),
            "{line:?}"
        );
    }
    // A JOURNAL_STREAM that is not our stderr (inherited, then redirected) is ignored.
    let name = unique_bus("journal");
    let log = LogFile::new(&name);
    let mut d = log.start(&name, &[], &[("JOURNAL_STREAM", "1:2")]);
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit().0.code(), Some(0));
    assert_log_format(&log.read(), &name);
}

#[test]
fn systemd_notify_socket_gets_ready_status_and_stopping() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let recv = |sock: &UnixDatagram| {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification (watchdog?)");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    for abstract_name in [false, true] {
        let name = unique_bus("notify");
        let path = std::env::temp_dir().join(format!("{name}.notify"));
        let (sock, target) = if abstract_name {
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
        } else {
            let sock = UnixDatagram::bind(&path).unwrap();
            (sock, path.display().to_string())
        };
        let _sock_file = LogFile(path.clone());
        sock.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut d = Daemon::spawn(&name, &["--pipe", "p"], &[("NOTIFY_SOCKET", &target)]);
        let ready = recv(&sock);
        assert!(
            ready.starts_with("READY=1\nSTATUS=serving; peers 0/128; channels 1/256"),
            "{ready:?}"
        );
        // Ready means ready: the socket is there and the segment validates.
        assert!(d.paths.socket.exists());
        d.wait_ready();
        Client::connect(&d.paths).hello();
        d.signal(Signal::HUP);
        let status = recv(&sock);
        assert!(status.starts_with("STATUS=serving; peers "), "{status:?}");
        d.signal(Signal::TERM);
        assert_eq!(recv(&sock), "STOPPING=1");
        let (st, err) = d.wait_exit();
        assert_eq!(st.code(), Some(0), "{err}");
    }
}

#[test]
fn stale_segment_of_a_killed_daemon_is_taken_over() {
    let name = unique_bus("stale");
    let first = Daemon::start(&name, &["--pipe", "old"]);
    let old_pid = first.pid();
    let old_epoch = Segment::open(&first.paths.segment)
        .unwrap()
        .header()
        .epoch
        .load(Ordering::Relaxed);
    let paths = first.paths.clone();
    first.crash();
    assert!(paths.segment.exists() && paths.socket.exists() && paths.lock.exists());

    let mut second = Daemon::start(&name, &[]);
    let seg = Segment::open(&paths.segment).unwrap();
    let h = seg.header();
    assert_eq!(h.daemon_pid.load(Ordering::Relaxed), second.pid());
    assert_ne!(h.epoch.load(Ordering::Relaxed), old_epoch);
    // A fresh segment: the old daemon's pipe is gone.
    let mut c = Client::connect(&paths);
    c.hello();
    expect_err(c.request("OPEN pipe old 0 - - -\n"), ErrorCode::NotFound);
    drop(c);
    second.signal(Signal::TERM);
    let (st, err) = second.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(err.contains("taking over stale segment"), "{err}");
    assert!(err.contains(&format!("pid {old_pid}")), "{err}");
}

#[test]
fn foreign_file_is_not_removed() {
    let name = unique_bus("foreign");
    let files = Files(BusPaths::new(&name));
    std::fs::write(&files.0.segment, b"not a shmbus segment at all").unwrap();
    let (st, err) = run_to_end(&["--name", &name], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("not a shmbus segment"), "{err}");
    assert_eq!(
        std::fs::read(&files.0.segment).unwrap(),
        b"not a shmbus segment at all"
    );
}

#[test]
fn bad_bus_name_is_refused() {
    for bad in ["a/b", "..", "", "sp ace"] {
        let (st, err) = run_to_end(&["--name", bad], &[]);
        assert_eq!(st.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains("bad bus name"), "{bad:?}: {err}");
    }
}

#[test]
fn segment_too_large_for_dev_shm_fails_cleanly() {
    let name = unique_bus("huge");
    let files = Files(BusPaths::new(&name));
    let (st, err) = run_to_end(&["--name", &name, "--size", "1T"], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left") || err.contains("no room"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line of error: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for p in [&files.0.segment, &files.0.socket, &files.0.lock] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn bad_pipe_capacity_is_refused() {
    let name = unique_bus("cap");
    let files = Files(BusPaths::new(&name));
    let (st, err) = run_to_end(&["--name", &name, "--pipe", "a:100"], &[]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("power of two"), "{err}");
    assert!(!files.0.segment.exists());
}

#[test]
fn config_file_and_flags_declare_pipes() {
    let name = unique_bus("config");
    let cfg = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "name = \"{name}\"\nsize = \"8M\"\n\
             [[pipe]]\nname = \"a\"\ncapacity = 4096\n\
             [[pipe]]\nname = \"b\"\ncapacity = \"8K\"\n"
        ),
    )
    .unwrap();
    struct Rm<'a>(&'a Path);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _rm = Rm(&cfg);
    let cfg_s = cfg.to_str().unwrap();
    let mut d = Daemon::spawn(
        &name,
        &["--config", cfg_s, "--pipe", "b:16K", "--pipe", "c"],
        &[],
    );
    d.wait_ready();
    let seg = Segment::open(&d.paths.segment).unwrap();
    assert_eq!(seg.len(), 8 << 20);
    let mut c = Client::connect(&d.paths);
    c.hello();
    for (p, cap) in [("a", 4096), ("b", 16384), ("c", 65536)] {
        let (index, offset, length, params) =
            expect_channel(c.request(&format!("OPEN pipe {p} 0 - - -\n")));
        assert_eq!(params, [cap, 0, 0], "{p}");
        let e = seg.entry(index);
        assert_eq!(e.state.load(Ordering::Acquire), entry_state::LIVE);
        assert_eq!(layout::read_name(e).unwrap(), p.as_bytes());
        assert_eq!(seg.pipe(offset).check(cap, length), Ok(cap));
    }
}

/// A flag that names a channel of the config file overrides it, for every
/// kind (`--pipe`, `--queue`, `--value`, `--array`): what the flag gives
/// replaces the file's, what it leaves out is kept. Declaring the name with
/// another kind, or twice on the command line, is a usage error.
#[test]
fn config_file_and_flags_override_every_kind() {
    let name = unique_bus("override");
    let cfg = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "name = \"{name}\"\nsize = \"2M\"\n\
             [[pipe]]\nname = \"p\"\ncapacity = 4096\n\
             [[queue]]\nname = \"q\"\nslots = 8\nslot_size = 64\n\
             [[queue]]\nname = \"r\"\nslots = 4\nslot_size = 32\n\
             [[value]]\nname = \"v\"\ntype = \"i32\"\n\
             [[array]]\nname = \"a\"\ntype = \"d\"\nlen = 4\n"
        ),
    )
    .unwrap();
    struct Rm<'a>(&'a Path);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _rm = Rm(&cfg);
    let cfg_s = cfg.to_str().unwrap();

    // Refused before any file is made: another kind, or twice on the
    // command line.
    for (args, needle) in [
        (&["--queue", "p:8"][..], "is a pipe in the config file"),
        (&["--array", "v:i32:2"][..], "is a value in the config file"),
        (&["--value", "q:d"][..], "is a queue in the config file"),
        (
            &["--value", "v:d", "--value", "v:f32"][..],
            "twice on the command line",
        ),
    ] {
        let mut all = vec!["--config", cfg_s];
        all.extend_from_slice(args);
        let (st, err) = run_to_end(&all, &[]);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!BusPaths::new(&name).segment.exists());
    }

    let mut d = Daemon::spawn(
        &name,
        &[
            "--config", cfg_s, "--pipe", "p:16K", "--queue", "q:16:128", "--queue", "r::1K",
            "--value", "v:f64", "--array", "a:u8:32",
        ],
        &[],
    );
    d.wait_ready();
    let mut c = Client::connect(&d.paths);
    c.hello();
    let code = |t: &str| u64::from(shmbus::seqlock::ElemType::parse(t).unwrap().code());
    for (kind, ch, want) in [
        ("pipe", "p", [16384, 0, 0]),
        ("queue", "q", [16, 128, 0]),
        ("queue", "r", [4, 1024, 0]),
        ("value", "v", [code("f64"), 1, 0]),
        ("array", "a", [code("u8"), 32, 0]),
    ] {
        match c.request(&format!("OPEN {kind} {ch} 0 - - -\n")) {
            Response::Channel {
                kind: k, params, ..
            } => {
                assert_eq!((k.as_str(), params), (kind, want), "{ch}");
            }
            r => panic!("{ch}: expected CHANNEL, got {r:?}"),
        }
    }
}

#[test]
fn control_protocol() {
    let name = unique_bus("proto");
    let d = Daemon::start(&name, &[]);
    let seg = Segment::open(&d.paths.segment).unwrap();
    let g = seg.geometry();

    let mut c = Client::connect(&d.paths);
    let (slot, generation, epoch, size) = c.hello();
    assert_eq!(epoch, seg.header().epoch.load(Ordering::Relaxed));
    assert_eq!(size, seg.len());
    let p = seg.peer(slot);
    assert_eq!(p.state.load(Ordering::Acquire), peer_state::LIVE);
    assert_eq!(p.generation.load(Ordering::Relaxed), generation);
    assert_eq!(p.pid.load(Ordering::Relaxed), std::process::id());
    assert_eq!(
        p.uid.load(Ordering::Relaxed),
        rustix::process::getuid().as_raw()
    );
    assert_ne!(p.start_time.load(Ordering::Relaxed), 0);

    // Create, then find it again.
    let (index, offset, length, params) = expect_channel(c.request("OPEN pipe x 1 - - -\n"));
    assert_eq!(params, [65536, 0, 0]);
    assert!(offset >= g.arena_off && offset % 128 == 0, "{offset}");
    assert!(offset + length <= size, "{offset} + {length} > {size}");
    assert_eq!(length, shmbus::pipe::body_len(65536));
    let e = seg.entry(index);
    assert_eq!(e.state.load(Ordering::Acquire), entry_state::LIVE);
    assert_eq!(e.kind.load(Ordering::Relaxed), Kind::Pipe as u32);
    assert_eq!(layout::read_name(e).unwrap(), b"x");
    assert_eq!(e.offset.load(Ordering::Relaxed), offset);
    assert_eq!(seg.pipe(offset).check(65536, length), Ok(65536));
    assert!(seg.header().arena_used.load(Ordering::Relaxed) >= length);
    assert_eq!(
        expect_channel(c.request("OPEN pipe x 0 - - -\n")),
        (index, offset, length, params)
    );
    assert_eq!(
        expect_channel(c.request("OPEN pipe x 1 65536 - -\n")),
        (index, offset, length, params)
    );

    // Errors that keep the connection open.
    let m = expect_err(c.request("OPEN queue x 0 - - -\n"), ErrorCode::KindMismatch);
    assert!(m.contains("pipe") && m.contains("queue"), "{m}");
    let m = expect_err(
        c.request("OPEN pipe x 1 4096 - -\n"),
        ErrorCode::ParamMismatch,
    );
    assert!(m.contains("65536") && m.contains("4096"), "{m}");
    expect_err(c.request("OPEN pipe nope 0 - - -\n"), ErrorCode::NotFound);
    let m = expect_err(c.request("OPEN pipe y 1 100 - -\n"), ErrorCode::BadParams);
    assert!(m.contains("power of two"), "{m}");
    expect_err(c.request("OPEN pipe y 1 - 5 -\n"), ErrorCode::BadParams);
    let m = expect_err(c.request("OPEN queue q 1 3 - -\n"), ErrorCode::BadParams);
    assert!(m.contains("power of two"), "{m}");
    expect_err(c.request("OPEN queue q 1 - - 5\n"), ErrorCode::BadParams);
    expect_err(c.request("OPEN pipe a/b 1 - - -\n"), ErrorCode::BadName);
    let long = "n".repeat(200);
    expect_err(
        c.request(&format!("OPEN pipe {long} 1 - - -\n")),
        ErrorCode::BadName,
    );

    // A second client gets another slot and sees the same channel.
    let mut c2 = Client::connect(&d.paths);
    let (slot2, ..) = c2.hello();
    assert_ne!(slot2, slot);
    assert_eq!(
        expect_channel(c2.request("OPEN pipe x 0 - - -\n")).1,
        offset
    );

    // Garbage ends the connection. This process is still running and said
    // no BYE, so the slot stays its own until it exits.
    expect_err(c.request("FROBNICATE 1 2 3\n"), ErrorCode::Protocol);
    c.expect_eof();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(p.state.load(Ordering::Acquire), peer_state::LIVE);
    assert_eq!(p.generation.load(Ordering::Relaxed), generation);
    // The other client is unaffected; BYE then close frees its slot at once.
    assert_eq!(
        seg.peer(slot2).state.load(Ordering::Acquire),
        peer_state::LIVE
    );
    c2.send("BYE\n");
    c2.expect_eof_after_close();
    wait_until("second slot freed after BYE", || {
        seg.peer(slot2).state.load(Ordering::Acquire) == peer_state::FREE
    });
    assert_eq!(seg.peer(slot2).pid.load(Ordering::Relaxed), 0);
    // A request after BYE is a protocol error.
    let mut c3 = Client::connect(&d.paths);
    c3.hello();
    c3.send("BYE\n");
    expect_err(c3.request("OPEN pipe x 0 - - -\n"), ErrorCode::Protocol);
    c3.expect_eof();
}

#[test]
fn hello_is_required_and_checked() {
    let name = unique_bus("hello");
    let d = Daemon::start(&name, &[]);

    let mut c = Client::connect(&d.paths);
    expect_err(c.request("OPEN pipe x 1 - - -\n"), ErrorCode::Protocol);
    c.expect_eof();

    let mut c = Client::connect(&d.paths);
    let m = expect_err(
        c.request(&format!("HELLO 999 {}\n", std::process::id())),
        ErrorCode::Abi,
    );
    assert!(m.contains("999"), "{m}");
    c.expect_eof();

    let mut c = Client::connect(&d.paths);
    expect_err(
        c.request(&format!("HELLO {ABI_VERSION} 1\n")),
        ErrorCode::Denied,
    );
    c.expect_eof();

    let mut c = Client::connect(&d.paths);
    let (kept, ..) = c.hello();
    expect_err(
        c.request(&format!("HELLO {ABI_VERSION} {}\n", std::process::id())),
        ErrorCode::Protocol,
    );
    c.expect_eof();

    // A line over MAX_LINE is refused without reading it all.
    let mut c = Client::connect(&d.paths);
    let long = "x".repeat(shmbus::protocol::MAX_LINE + 10);
    c.send(&long);
    let l = c.recv_line().expect("ERR before close");
    expect_err(Response::decode(&l).unwrap(), ErrorCode::Protocol);

    // Every connection refused at HELLO left the peer table as it was; the
    // one refused after HELLO keeps its slot while this process runs (it
    // said no BYE, and a live process's slot is never taken from it).
    let seg = Segment::open(&d.paths.segment).unwrap();
    wait_until("all other slots free", || {
        (0..4)
            .filter(|&i| i != kept)
            .all(|i| seg.peer(i).state.load(Ordering::Acquire) == peer_state::FREE)
    });
    assert_eq!(
        seg.peer(kept).state.load(Ordering::Acquire),
        peer_state::LIVE
    );
}

#[test]
fn full_directory_and_arena() {
    let name = unique_bus("full");
    // 128 KiB with 2 directory entries leaves an arena of about 100 KiB: one
    // 64 KiB pipe fits, a second does not.
    let d = Daemon::start(&name, &["--size", "128K", "--max-channels", "2"]);
    let mut c = Client::connect(&d.paths);
    c.hello();
    expect_channel(c.request("OPEN pipe a 1 65536 - -\n"));
    let m = expect_err(c.request("OPEN pipe b 1 65536 - -\n"), ErrorCode::NoSpace);
    assert!(m.contains("--size"), "{m}");
    expect_channel(c.request("OPEN pipe c 1 64 - -\n"));
    let m = expect_err(c.request("OPEN pipe d 1 64 - -\n"), ErrorCode::Full);
    assert!(m.contains("--max-channels"), "{m}");
}

#[test]
fn remove_and_close_over_the_wire() {
    let name = unique_bus("remove");
    let d = Daemon::start(&name, &["--size", "128K", "--max-channels", "2"]);
    let mut c = Client::connect(&d.paths);
    expect_err(c.request("REMOVE a\n"), ErrorCode::Protocol);
    c.expect_eof();

    let mut c = Client::connect(&d.paths);
    c.hello();
    let (i, off, ..) = expect_channel(c.request("OPEN pipe a 1 65536 - -\n"));
    // Opened twice by this connection: one holder, two opens.
    expect_channel(c.request("OPEN pipe a 0 - - -\n"));
    let seg = Segment::open(&d.paths.segment).unwrap();
    assert_eq!(seg.entry(i).holders.load(Ordering::Relaxed), 1);
    match c.request("REMOVE a\n") {
        Response::Removed {
            index,
            generation: 1,
            holders: 1,
        } if index == i => {}
        r => panic!("expected REMOVED {i} 1 1, got {r:?}"),
    }
    assert_eq!(
        seg.entry(i).state.load(Ordering::Acquire),
        entry_state::REMOVED
    );
    expect_err(c.request("REMOVE a\n"), ErrorCode::NotFound);
    expect_err(c.request("REMOVE a/b\n"), ErrorCode::BadName);
    expect_err(c.request("OPEN pipe a 0 - - -\n"), ErrorCode::NotFound);
    // Its space is still held: another 64 KiB pipe does not fit.
    expect_err(c.request("OPEN pipe b 1 65536 - -\n"), ErrorCode::NoSpace);
    // CLOSEs have no answer; ones that match nothing change nothing.
    c.send(&format!("CLOSE {i} 2\nCLOSE 99 1\nCLOSE {i} 1\n"));
    expect_err(c.request("OPEN pipe b 1 65536 - -\n"), ErrorCode::NoSpace);
    assert_eq!(seg.entry(i).holders.load(Ordering::Relaxed), 1);
    // The second open given back: freed, its space reused at once.
    c.send(&format!("CLOSE {i} 1\n"));
    let (_, off_b, ..) = expect_channel(c.request("OPEN pipe b 1 65536 - -\n"));
    assert_eq!(off_b, off);
    // A malformed CLOSE is a protocol error like any other.
    expect_err(c.request("CLOSE x\n"), ErrorCode::Protocol);
    c.expect_eof();
}

#[test]
fn peer_table_full() {
    let name = unique_bus("peers");
    let d = Daemon::start(&name, &["--max-peers", "1"]);
    let mut a = Client::connect(&d.paths);
    a.hello();
    let mut b = Client::connect(&d.paths);
    let m = expect_err(
        b.request(&format!("HELLO {ABI_VERSION} {}\n", std::process::id())),
        ErrorCode::Full,
    );
    assert!(m.contains("--max-peers"), "{m}");
    a.send("BYE\n");
    drop(a);
    // Once the first client is gone its slot is handed out again.
    let seg = Segment::open(&d.paths.segment).unwrap();
    wait_until("slot 0 freed", || {
        seg.peer(0).state.load(Ordering::Acquire) == peer_state::FREE
    });
    let (slot, ..) = Client::connect(&d.paths).hello();
    assert_eq!(slot, 0);
}

/// What a producer child does once it holds the producer end of `p`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Waits to be killed.
    Wait,
    /// Shuts its control connection down (the daemon sees EOF without BYE)
    /// and waits to be killed.
    CloseSocket,
    /// Hands its control connection to a `sleep` it starts (as a forked
    /// child would inherit it), reports the sleeper's pid, and exits.
    HandOverAndExit,
}

/// Child role for the tests below: registers, creates pipe `p`, claims its
/// producer end as `attach` would, reports `attached SLOT`, then does `then`.
fn producer_child(bus: &str, then: Then) {
    let paths = BusPaths::new(bus);
    let mut c = Client::connect(&paths);
    let (slot, ..) = c.hello();
    let (_, offset, ..) = expect_channel(c.request("OPEN pipe p 1 4096 - -\n"));
    let seg = Segment::open(&paths.segment).unwrap();
    let ctl = seg.pipe(offset);
    ctl.ends
        .producer
        .compare_exchange(
            0,
            end::ATTACH_ONE | u64::from(slot + 1),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .expect("producer end free");
    println!("attached {slot}");
    std::io::stdout().flush().unwrap();
    match then {
        Then::Wait => {}
        Then::CloseSocket => {
            c.stream.shutdown(std::net::Shutdown::Both).unwrap();
            println!("closed");
            std::io::stdout().flush().unwrap();
        }
        Then::HandOverAndExit => {
            // The sleeper inherits the socket: clear close-on-exec on it.
            rustix::io::fcntl_setfd(&c.stream, rustix::io::FdFlags::empty()).unwrap();
            // Not waited for on purpose: it outlives this process (and is
            // reaped by init); the test kills it by pid.
            #[allow(clippy::zombie_processes)]
            let sleeper = Command::new("sleep")
                // Longer than any watchdog, so that only the pidfd can
                // explain a recovery; the test kills it.
                .arg((WATCHDOG * 5).as_secs().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            println!("sleeper {}", sleeper.id());
            std::io::stdout().flush().unwrap();
            // Exit (the test returns) with the connection still open in the
            // sleeper, and no BYE.
            return;
        }
    }
    std::thread::sleep(WATCHDOG);
}

/// Dispatches child roles; an ordinary test run passes through.
#[test]
fn child_role() {
    if let (Ok(role), Ok(bus)) = (std::env::var(ROLE_ENV), std::env::var(BUS_ENV)) {
        match role.as_str() {
            "producer" => producer_child(&bus, Then::Wait),
            "producer-close" => producer_child(&bus, Then::CloseSocket),
            "producer-handover" => producer_child(&bus, Then::HandOverAndExit),
            r => panic!("unknown role {r}"),
        }
    }
}

/// A child process killed (and reaped) on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test binary as a producer child in `role` on bus `name`; returns
/// it, its peer slot (from its `attached SLOT` line) and a receiver of its
/// later stdout lines.
fn spawn_producer(role: &str, name: &str) -> (Kill, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_role",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_ENV, role)
        .env(BUS_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = drain(child.stderr.take().unwrap());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        while out.read_line(&mut l).unwrap_or(0) > 0 {
            if tx.send(l.trim().to_owned()).is_err() {
                break;
            }
            l.clear();
        }
    });
    // libtest prints a line or two of its own first.
    let deadline = Instant::now() + WATCHDOG;
    let line = std::iter::from_fn(|| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    })
    .find(|l| l.starts_with("attached "));
    let Some(line) = line else {
        drop(child);
        panic!(
            "{role} child never attached:\n{}",
            stderr.join().unwrap_or_default()
        );
    };
    let slot = line["attached ".len()..].parse().unwrap();
    (child, slot, rx)
}

/// Waits up to the watchdog for a line from a child.
fn next_line(rx: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    loop {
        let l = rx
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("watchdog: no {what} line from the child ({e})"));
        if l.starts_with(what) {
            return l;
        }
    }
}

/// Asserts, for a while, that `slot` stays registered and keeps the producer
/// end of the pipe at `offset`: what a second sender's attach would find. No
/// time limit is asserted; the pause only gives a wrong recovery the chance
/// to happen.
fn assert_kept(seg: &Segment, slot: u16, offset: u64, why: &str) {
    let ctl = seg.pipe(offset);
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(
            seg.peer(slot).state.load(Ordering::Acquire),
            peer_state::LIVE,
            "{why}: slot {slot} was recovered"
        );
        assert_eq!(
            end::owner(ctl.ends.producer.load(Ordering::Acquire)),
            slot + 1,
            "{why}: producer end released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the producer end at `offset` is released and `slot` is free.
fn assert_recovered(seg: &Segment, slot: u16, offset: u64) {
    let ctl = seg.pipe(offset);
    wait_until("producer end released", || {
        end::gone(ctl.ends.producer.load(Ordering::Acquire))
    });
    wait_until("slot freed", || {
        seg.peer(slot).state.load(Ordering::Acquire) == peer_state::FREE
    });
    let w = ctl.ends.producer.load(Ordering::Acquire);
    assert_eq!(end::owner(w), 0);
}

/// Creates pipe `p` as the producer children do and returns its offset. Call
/// it before a child registers, so that this connection's slot is not the
/// one a recovered child frees.
fn pipe_p(d: &Daemon) -> (Client, u64) {
    let mut c = Client::connect(&d.paths);
    c.hello();
    let (_, offset, ..) = expect_channel(c.request("OPEN pipe p 1 4096 - -\n"));
    (c, offset)
}

#[test]
fn client_that_closed_its_socket_keeps_its_end_until_it_exits() {
    let name = unique_bus("closed");
    let d = Daemon::start(&name, &[]);
    let (_c, offset) = pipe_p(&d);
    let (mut child, slot, rx) = spawn_producer("producer-close", &name);
    assert_eq!(next_line(&rx, "closed"), "closed");
    let seg = Segment::open(&d.paths.segment).unwrap();
    // EOF without BYE from a live process: nothing is touched.
    assert_kept(&seg, slot, offset, "live client without a connection");
    // Once it exits, it is recovered.
    child.0.kill().unwrap();
    let _ = wait_child(&mut child.0, "killed child");
    assert_recovered(&seg, slot, offset);
}

#[test]
fn sigstopped_client_keeps_its_end_until_killed() {
    let name = unique_bus("stop");
    let d = Daemon::start(&name, &[]);
    let (_c, offset) = pipe_p(&d);
    let (mut child, slot, _rx) = spawn_producer("producer", &name);
    let seg = Segment::open(&d.paths.segment).unwrap();
    let pid = Pid::from_child(&child.0);
    kill_process(pid, Signal::STOP).unwrap();
    assert_kept(&seg, slot, offset, "stopped client");
    kill_process(pid, Signal::CONT).unwrap();
    assert_kept(&seg, slot, offset, "continued client");
    kill_process(pid, Signal::STOP).unwrap();
    // SIGKILL ends a stopped process too; then it is recovered.
    kill_process(pid, Signal::KILL).unwrap();
    let _ = wait_child(&mut child.0, "killed child");
    assert_recovered(&seg, slot, offset);
}

#[test]
fn client_that_exits_while_a_child_holds_its_socket_is_recovered() {
    let name = unique_bus("handover");
    let d = Daemon::start(&name, &[]);
    let (_c, offset) = pipe_p(&d);
    let (mut child, slot, rx) = spawn_producer("producer-handover", &name);
    let sleeper = next_line(&rx, "sleeper");
    let sleeper: i32 = sleeper["sleeper ".len()..].parse().unwrap();
    let sleeper = Pid::from_raw(sleeper).unwrap();
    struct KillPid(Pid);
    impl Drop for KillPid {
        fn drop(&mut self) {
            let _ = kill_process(self.0, Signal::KILL);
        }
    }
    let _sleeper = KillPid(sleeper);
    let _ = wait_child(&mut child.0, "exiting child");
    let seg = Segment::open(&d.paths.segment).unwrap();
    // The connection is still open (the sleeper holds it), but the process
    // that registered exited: its pidfd says so, and it is recovered.
    assert_recovered(&seg, slot, offset);
    // The sleeper still runs: the daemon did not wait for the socket.
    assert!(kill_process(sleeper, Signal::CONT).is_ok());
}

#[test]
fn sigkilled_client_releases_its_pipe_end() {
    let name = unique_bus("kill");
    let d = Daemon::start(&name, &[]);
    let (mut child, slot, _rx) = spawn_producer("producer", &name);

    let seg = Segment::open(&d.paths.segment).unwrap();
    let mut c = Client::connect(&d.paths);
    c.hello();
    let (_, offset, ..) = expect_channel(c.request("OPEN pipe p 0 - - -\n"));
    let ctl = seg.pipe(offset);
    assert_eq!(
        end::owner(ctl.ends.producer.load(Ordering::Acquire)),
        slot + 1
    );
    assert_eq!(
        seg.peer(slot).state.load(Ordering::Acquire),
        peer_state::LIVE
    );

    kill_process(Pid::from_child(&child.0), Signal::KILL).unwrap();
    let _ = wait_child(&mut child.0, "killed child");
    wait_until("producer end released", || {
        end::gone(ctl.ends.producer.load(Ordering::Acquire))
    });
    wait_until("slot freed", || {
        seg.peer(slot).state.load(Ordering::Acquire) == peer_state::FREE
    });
    // The freed end can be claimed again (by the next producer).
    let w = ctl.ends.producer.load(Ordering::Acquire);
    assert_eq!(end::owner(w), 0);
    assert_eq!(w & !end::OWNER_MASK, end::ATTACH_ONE);
}

#[test]
fn live_daemon_is_not_taken_over_even_without_its_lock_file() {
    let name = unique_bus("nolock");
    let d = Daemon::start(&name, &[]);
    // Someone deletes the lock file by hand: the next daemon gets a lock on a
    // new file, but the segment header still names a live daemon.
    std::fs::remove_file(&d.paths.lock).unwrap();
    let (st, err) = run_to_end(&["--name", &name], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
    let seg = Segment::open(&d.paths.segment).unwrap();
    assert_eq!(seg.header().daemon_pid.load(Ordering::Relaxed), d.pid());
    Client::connect(&d.paths).hello();
}

#[test]
fn quiet_prints_nothing_on_success() {
    let name = unique_bus("quiet");
    let mut d = Daemon::start(&name, &["--quiet", "--pipe", "p"]);
    Client::connect(&d.paths).hello();
    d.signal(Signal::TERM);
    let (st, err) = d.wait_exit();
    assert_eq!(st.code(), Some(0));
    assert_eq!(err, "");
}

#[test]
fn help_and_bad_flags() {
    let (st, _) = run_to_end(&["--help"], &[]);
    assert_eq!(st.code(), Some(0));
    let (st, err) = run_to_end(&["--no-such-flag"], &[]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("--no-such-flag"), "{err}");
    let (st, err) = run_to_end(&["--mode", "0400", "--name", &unique_bus("m")], &[]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("owner read and write"), "{err}");
}

/// Issue #12: `HELLO` has an absolute deadline from accept. A connection that
/// sends one byte every 500 ms (never a newline) used to be kept forever,
/// since each byte restarted the read timeout.
#[test]
fn hello_has_an_absolute_deadline_from_accept() {
    let name = unique_bus("deadline");
    let d = Daemon::start(&name, &[]);
    let mut c = Client::connect(&d.paths);
    let trickle = c.stream.try_clone().expect("clone");
    let t = std::thread::spawn(move || {
        let mut s = trickle;
        let until = Instant::now() + WATCHDOG;
        while Instant::now() < until && s.write_all(b"H").is_ok() {
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // Watchdog: `recv_line` fails the test if nothing comes within 60 s.
    let l = c
        .recv_line()
        .expect("an ERR before the connection is closed");
    let m = expect_err(Response::decode(&l).unwrap(), ErrorCode::Protocol);
    assert!(m.contains("no HELLO within 10 s of connecting"), "{m}");
    c.expect_eof();
    drop(d);
    t.join().unwrap();
}

/// Issue #12: nothing at start-up blocks on a file the daemon does not
/// control. With the lock held by someone else and a FIFO where the segment
/// would be, a second daemon used to hang in `open()` (reading the other
/// daemon's pid), deaf to SIGTERM; now it says the bus is served and exits.
#[test]
fn a_fifo_at_the_segment_path_of_a_locked_bus_does_not_hang_start() {
    use rustix::fs::{flock, mknodat, FileType, FlockOperation, Mode, CWD};
    let name = unique_bus("fifo");
    let paths = BusPaths::new(&name);
    let _files = Files(paths.clone());
    let lock = std::fs::File::create(&paths.lock).expect("lock file");
    std::fs::write(&paths.lock, "4242\n").expect("write lock file");
    flock(&lock, FlockOperation::NonBlockingLockExclusive).expect("flock");
    mknodat(
        CWD,
        &paths.segment,
        FileType::Fifo,
        Mode::from_raw_mode(0o666),
        0,
    )
    .expect("mkfifo");
    // Watchdog in `run_to_end`: a hang fails the test.
    let (st, err) = run_to_end(&["--name", &name], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("already served"), "{err}");
    assert!(err.contains("pid 4242"), "{err}");
    let m = std::fs::symlink_metadata(&paths.segment).expect("FIFO still there");
    assert!(m.file_type().is_fifo());
    drop(lock);
}
