//! Hostile shared memory: a seeded property test that scribbles over a live
//! segment and drives real client handles, plus a daemon-side check.
//!
//! A real daemon (this binary in the `daemon` role) serves a unique bus. A
//! fuzz child (this binary in the `fuzz` role, so that a SIGSEGV or SIGBUS is
//! reported with its seed instead of killing the harness) creates a pipe, a
//! queue, a value, an array and a topic, maps the segment itself with `memmap2`, and
//! runs cases. Each case:
//!
//! 1. connects a fresh [`Bus`], attaches both pipe ends, opens the queue,
//!    value, array and topic (a publisher and a subscriber), and moves their
//!    positions with a few normal operations;
//! 2. scribbles 1 to 4 words chosen among the header, the peer table, the
//!    directory entries, the pipe's control block and record headers, the
//!    queue's positions, counters, cell state and length words, the topic's
//!    control block, subscriber entries and slot words, the seqlock
//!    state and copy words, and every doorbell word: with boundary values (0, 1,
//!    capacity - 1, capacity, capacity + 1, `u32::MAX`, `u64::MAX`, 2^63,
//!    misaligned neighbours, one flipped bit) or random ones; before the
//!    operations, between them, or from a second thread while they run;
//! 3. drives every client operation non-blockingly or with 1 ms timeouts
//!    (`try_send`/`try_claim`/`send_timeout`, `try_recv`/`try_recv_into`/
//!    `try_recv_with`/`recv_timeout`, `try_put`/`try_claim`/`put_timeout`/
//!    `try_get`/`try_get_with`/`get_timeout`/`task_done`/`join_timeout`/`len`,
//!    `load`/`store`/`update`/`fetch_add`/`wait_changed`, `read_into`/`get`/
//!    `set`/`write`/`update`, `channels()`, and opening a new `Bus`, pipe
//!    ends, queue, value and array), each under `catch_unwind` and a watchdog
//!    thread that aborts the child, naming the case's seed, if one call runs
//!    or sleeps for over [`OP_LIMIT`] (time spent waiting for a CPU does not
//!    count: see `client/tests/fuzz_watchdog/mod.rs`);
//! 4. checks that each result is `Ok` or an error the corruption can explain
//!    (`Corrupt`, `CorruptSegment`, `BusClosed`, `Busy`, ...), never one that
//!    it cannot (`NotFound`, `Io`, `TooLarge` for a frame that fits, ...);
//! 5. restores the scribbled metadata words, drops everything (sometimes
//!    leaving queue claims forgotten, so the daemon's recovery has cells to
//!    repair in scribbled bodies), waits until the daemon has recovered every
//!    peer slot, and copies the channel bodies back from the snapshot taken
//!    when they were fresh.
//!
//! At the end the parent checks that the daemon still runs and serves a new
//! client. [`killed_client_with_scribbled_channels`] covers the other way the
//! daemon reads scribbled bodies: a client SIGKILLed while it holds pipe ends,
//! queue cells and the writer lock of a value whose words were scribbled.
//!
//! # Running it longer, replaying a failure
//! | variable | meaning | default |
//! |---|---|---|
//! | `SHMBUS_FUZZ_CASES` | number of cases | [`CI_CASES`] |
//! | `SHMBUS_FUZZ_SECS` | run cases until this many seconds have passed (overrides the count) | unset |
//! | `SHMBUS_FUZZ_BASE` | base seed; case `i` runs with seed `mix(base + i)` | a fixed constant |
//! | `SHMBUS_FUZZ_SEED` | run the single case with this seed (as printed by a failure, hex with `0x`, or decimal) | unset |
//! | `SHMBUS_FUZZ_TRACE` | print each scribble (region, field offset, value) and each call with its outcome, wall time, time on a CPU and time spent waiting for one | unset |
//!
//! ```text
//! SHMBUS_FUZZ_SECS=600 cargo test -p shmbus-client --release --test hostile -- --nocapture
//! SHMBUS_FUZZ_TRACE=1 SHMBUS_FUZZ_SEED=0x1234abcd \
//!     cargo test -p shmbus-client --test hostile scribbled_segment -- --nocapture
//! ```
//!
//! What a replay reproduces: a case starts from the channel bodies and
//! directory entries of the fresh segment (restored after every case), so
//! its random stream, the words it scribbles, the values it writes and the
//! calls it makes are the same as in the run that failed. What it cannot
//! reproduce: (1) timing. A third of the cases scribble from a second thread
//! after random delays while the calls run ("from a thread" in the trace);
//! which call meets which scribble then depends on scheduling, in the
//! original run as in the replay. (2) The machine's load. A call that is
//! merely slow (CPU-bound) takes far longer on a loaded machine; the
//! watchdog does not count time spent waiting for a CPU, but a replay on an
//! idle machine shows such a call only by its cost: run it with
//! `SHMBUS_FUZZ_TRACE=1` and look at the "on a CPU" figures (any
//! non-blocking call over a millisecond is a bug: issue #10 was a `try_put`
//! using 50 ms of CPU). To replay under load, keep both cores busy:
//! `for i in 1 2 3 4; do timeout 300 sh -c 'while :; do :; done' & done`.
//! (3) The peer slots and generations of other clients, which only matter to
//! scribbles of the peer table.
#![cfg(not(loom))]

mod fuzz_watchdog;
use shmbus_test_support as support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fuzz_watchdog::{fail, Op, CASE_SEED};
use memmap2::{MmapOptions, MmapRaw};
use rustix::process::Signal;
use shmbus::name::BusPaths;
use shmbus::sync::{AtomicU32, AtomicU64, Ordering};
use shmbus_client::{Bus, Error};
use support::{Daemon, Proc, Rng};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";
/// Cases in the default (CI) run. A case that scribbles a writer lock with
/// this process's own owner tag costs about two seconds per write call
/// (`OWN_TAG_PATIENCE` in client/src/table.rs), which bounds this number.
const CI_CASES: u64 = 500;
/// Base seed of the default run.
const DEFAULT_BASE: u64 = 0x5eed_0f5c_41bb_1e00;
/// Longest one client call may take before the watchdog calls it a hang.
const OP_LIMIT: Duration = Duration::from_secs(10);
/// Timeout given to the blocking calls under test.
const SHORT: Duration = Duration::from_millis(1);

/// Pipe ring capacity (bytes), queue slots and slot size, array length.
const PIPE_CAP: u64 = 256;
const Q_SLOTS: u64 = 4;
const Q_SLOT_SIZE: u64 = 24;
const ARR_LEN: usize = 5;
/// Topic slots, slot size and largest number of subscribers.
const T_SLOTS: u64 = 4;
const T_SLOT_SIZE: u64 = 24;
const T_SUBS: u64 = 4;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "fuzz" => fuzz_main(&args),
        "victim" => victim(&args),
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------------
// The parent side.

/// How many cases (or seconds) to run, from the environment.
struct Plan {
    base: u64,
    cases: u64,
    secs: u64,
    replay: Option<u64>,
}

fn parse_u64(s: &str) -> u64 {
    let s = s.trim();
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|e| panic!("bad number {s:?}: {e}"))
}

fn plan() -> Plan {
    let env = |k| std::env::var(k).ok().map(|v| parse_u64(&v));
    let replay = env("SHMBUS_FUZZ_SEED");
    Plan {
        base: env("SHMBUS_FUZZ_BASE").unwrap_or(DEFAULT_BASE),
        cases: if replay.is_some() {
            1
        } else {
            env("SHMBUS_FUZZ_CASES").unwrap_or(CI_CASES)
        },
        secs: env("SHMBUS_FUZZ_SECS").unwrap_or(0),
        replay,
    }
}

#[test]
fn scribbled_segment_never_crashes_hangs_or_panics() {
    let p = plan();
    let d = Daemon::start_role(DISPATCH, "hostile", &[]);
    let started = Instant::now();
    let args = [
        d.bus.clone(),
        p.base.to_string(),
        p.cases.to_string(),
        p.secs.to_string(),
        p.replay.map_or_else(String::new, |s| s.to_string()),
    ];
    // Our own spawn, not `support::Proc`: a long run outlasts its watchdog.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = support::role_command(DISPATCH, "fuzz", &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the fuzz child");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // Generous: the child's own watchdog catches a hanging call in 10 s.
    let limit = Duration::from_secs(600 + 2 * p.secs + p.cases / 10);
    let mut last_case = String::from("(none started)");
    let mut summary = Vec::new();
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            if l.starts_with("case ") {
                last_case = l;
            } else {
                summary.push(l);
            }
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the fuzz child ran over {limit:?}; last {last_case}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader ends at the child's end of file.
    for l in rx.iter() {
        if l.starts_with("case ") {
            last_case = l;
        } else {
            summary.push(l);
        }
    }
    let stderr = err.join().unwrap_or_default();
    assert!(
        status.success(),
        "fuzz child failed ({status}) in {last_case} \
         (replay: SHMBUS_FUZZ_TRACE=1 SHMBUS_FUZZ_SEED=<seed> cargo test -p shmbus-client --test hostile scribbled_segment -- --nocapture; see the module docs for what a replay reproduces)\n\
         stdout tail:\n{}\nstderr:\n{stderr}",
        summary.join("\n")
    );
    let done = summary
        .iter()
        .find(|l| l.starts_with("done "))
        .unwrap_or_else(|| panic!("no summary from the fuzz child: {summary:?}\n{stderr}"));
    println!("{}", summary.join("\n"));
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    let n: u64 = done.split_whitespace().nth(1).map_or(0, parse_u64);
    assert!(n >= p.cases.min(1), "ran no case: {done}");
    daemon_still_serves(&d);
}

/// A new client connects and uses a new pipe, queue and value end to end.
fn daemon_still_serves(d: &Daemon) {
    let b = Bus::connect_to(&d.bus).expect("the daemon still serves new clients");
    let p = b.pipe("after").expect("a new pipe");
    let (mut tx, mut rx) = (p.sender().unwrap(), p.receiver().unwrap());
    tx.try_send(b"alive").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"alive");
    let q = b.queue("after-q").unwrap();
    q.try_put(b"x").unwrap();
    assert_eq!(q.try_get().unwrap(), b"x");
    let v = b.value::<u64>("after-v").unwrap();
    v.store(7).unwrap();
    assert_eq!(v.load(), 7);
    let t = b.topic("after-t").unwrap();
    let s = t.subscribe().unwrap();
    t.publisher().try_publish(b"y").unwrap();
    assert_eq!(s.try_recv().unwrap(), b"y");
}

// ---------------------------------------------------------------------------
// The segment, as the fuzzer sees it: raw words.

/// The segment mapped by the fuzzer itself.
struct Seg {
    map: MmapRaw,
}

impl Seg {
    fn map(bus: &str) -> Self {
        let path = BusPaths::new(bus).segment;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let map = MmapOptions::new().map_raw(&f).expect("map the segment");
        Self { map }
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn w64(&self, off: u64) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.len(),
            "fuzzer bug: word {off}"
        );
        // SAFETY: `off .. off + 8` is inside the mapping (checked), 8-aligned
        // (the mapping is page-aligned); `AtomicU64` is a transparent atomic
        // over a `u64`, every bit pattern is valid, and every other process
        // only accesses these words atomically or through the protocols that
        // this test deliberately breaks; the reference borrows `self`, which
        // keeps the mapping alive.
        unsafe { &*self.map.as_mut_ptr().add(off as usize).cast::<AtomicU64>() }
    }

    fn w32(&self, off: u64) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len(),
            "fuzzer bug: word {off}"
        );
        // SAFETY: as in `w64`, for a 4-aligned `u32` word.
        unsafe { &*self.map.as_mut_ptr().add(off as usize).cast::<AtomicU32>() }
    }

    fn get(&self, off: u64, wide: bool) -> u64 {
        if wide {
            self.w64(off).load(Ordering::Relaxed)
        } else {
            u64::from(self.w32(off).load(Ordering::Relaxed))
        }
    }

    /// Stores `v` and returns what was there.
    fn swap(&self, off: u64, wide: bool, v: u64) -> u64 {
        if wide {
            self.w64(off).swap(v, Ordering::SeqCst)
        } else {
            u64::from(self.w32(off).swap(v as u32, Ordering::SeqCst))
        }
    }
}

/// Where things are, read once from the fresh segment.
#[derive(Clone, Copy)]
struct Layout {
    peers_off: u64,
    peers: u64,
    dir_off: u64,
    /// Directory index, body offset and body length of p, q, v, a, t.
    chans: [(u64, u64, u64); 5],
}

const PIPE: usize = 0;
const QUEUE: usize = 1;
const VALUE: usize = 2;
const ARRAY: usize = 3;
const TOPIC: usize = 4;
const NAMES: [&str; 5] = ["p", "q", "v", "a", "t"];

impl Layout {
    fn read(seg: &Seg) -> Self {
        let peers_off = seg.get(48, true);
        let peers = seg.get(56, false);
        let dir_off = seg.get(64, true);
        let dir_count = seg.get(72, false);
        let mut chans = [(u64::MAX, 0, 0); 5];
        for i in 0..dir_count {
            let e = dir_off + i * 256;
            if seg.get(e, false) != 2 || seg.get(e + 12, false) != 1 {
                continue;
            }
            let c = (seg.get(e + 64, true) & 0xFF) as u8;
            if let Some(k) = NAMES.iter().position(|n| n.as_bytes()[0] == c) {
                chans[k] = (i, seg.get(e + 16, true), seg.get(e + 24, true));
            }
        }
        assert!(
            chans.iter().all(|c| c.0 != u64::MAX),
            "channels missing from the directory"
        );
        Self {
            peers_off,
            peers,
            dir_off,
            chans,
        }
    }

    fn body(&self, k: usize) -> u64 {
        self.chans[k].1
    }

    fn entry(&self, k: usize) -> u64 {
        self.dir_off + self.chans[k].0 * 256
    }
}

/// Copies of the regions a case may change, taken when they were fresh.
struct Snapshot {
    /// (offset, words).
    regions: Vec<(u64, Vec<u64>)>,
}

impl Snapshot {
    fn take(seg: &Seg, l: &Layout) -> Self {
        let mut spans = vec![(0, 128)];
        for k in 0..5 {
            spans.push((l.entry(k), 256));
            spans.push((l.chans[k].1, l.chans[k].2));
        }
        let regions = spans
            .into_iter()
            .map(|(off, len)| {
                let words = (0..len / 8).map(|i| seg.get(off + i * 8, true)).collect();
                (off, words)
            })
            .collect();
        Self { regions }
    }

    fn restore(&self, seg: &Seg) {
        for (off, words) in &self.regions {
            for (i, w) in words.iter().enumerate() {
                seg.w64(off + i as u64 * 8).store(*w, Ordering::SeqCst);
            }
        }
    }
}

/// Waits until the daemon has freed every peer slot (it does so after its
/// recovery of the slot's channels); the watchdog reports a daemon that never
/// does.
fn wait_quiet(seg: &Seg, l: &Layout) {
    // Waits for another process (the daemon), which may be starved of CPU
    // on a loaded machine where this thread is not: a long limit, and the
    // watchdog's wall-clock cap (`WALL_FACTOR`) above that deadline.
    let limit = 3 * OP_LIMIT;
    let _op = Op::begin("waiting for the daemon's recovery", limit);
    let deadline = Instant::now() + limit.saturating_sub(Duration::from_secs(1)).max(limit / 2);
    loop {
        let busy: Vec<u64> = (0..l.peers)
            .filter(|i| seg.get(l.peers_off + i * 128, false) != 0)
            .collect();
        if busy.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let pid = seg.get(36, false);
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            let slots: Vec<String> = busy
                .iter()
                .map(|i| {
                    let b = l.peers_off + i * 128;
                    format!(
                        "slot {i}: state {} generation {} pid {}",
                        seg.get(b, false),
                        seg.get(b + 4, false),
                        seg.get(b + 8, false)
                    )
                })
                .collect();
            fail(format!(
                "the daemon (pid {pid}, {}) left peer slots taken: {}",
                if alive { "alive" } else { "gone" },
                slots.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

// ---------------------------------------------------------------------------
// The watchdog and the per-call checks.

/// Whether `SHMBUS_FUZZ_TRACE` asks for every scribble and every call (with
/// its outcome and cost) to be printed.
fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SHMBUS_FUZZ_TRACE").is_some())
}

/// A scribble, with the region its word is in.
fn describe(l: &Layout, s: &Scribble) -> String {
    let peers = l.peers_off..l.peers_off + l.peers * 128;
    let at = if s.off < 128 {
        format!("header +{}", s.off)
    } else if peers.contains(&s.off) {
        let o = s.off - l.peers_off;
        format!("peer slot {} +{}", o / 128, o % 128)
    } else {
        (0..5)
            .find_map(|k| {
                let (e, b, n) = (l.entry(k), l.body(k), l.chans[k].2);
                if (e..e + 256).contains(&s.off) {
                    Some(format!("directory entry of {:?} +{}", NAMES[k], s.off - e))
                } else if (b..b + n).contains(&s.off) {
                    Some(format!("body of {:?} +{}", NAMES[k], s.off - b))
                } else {
                    None
                }
            })
            .unwrap_or_else(|| format!("offset {}", s.off))
    };
    let bits = if s.wide { 64 } else { 32 };
    format!("{at} ({bits}-bit word at {}) := {:#x}", s.off, s.value)
}

/// Tally of outcomes, printed at the end.
#[derive(Default)]
struct Stats {
    calls: u64,
    outcomes: BTreeMap<String, u64>,
}

/// What errors a call may return on a scribbled segment.
#[derive(Clone, Copy, PartialEq)]
enum Allow {
    /// Calls on handles and channel opens: the daemon's answers come from its
    /// own tables, which scribbling cannot reach, so `NotFound`, `Protocol`,
    /// `Io` and the like are bugs.
    Data,
    /// Connecting a new `Bus`: the header is validated, so every way it can be
    /// wrong has its error, and a scribbled epoch reads as another daemon
    /// (`Protocol`).
    Connect,
    /// `Bus::table`, which learns the channel's kind from the directory: a
    /// scribbled entry hides the channel (`NotFound`) or changes its kind.
    Directory,
}

fn allowed(e: &Error, a: Allow) -> bool {
    match e {
        Error::Corrupt(_)
        | Error::CorruptSegment { .. }
        | Error::BusClosed
        | Error::Busy { .. }
        | Error::Full
        | Error::Empty
        | Error::Disconnected
        | Error::Timeout
        | Error::TaskDone
        | Error::Lagged(_)
        | Error::TooManySubscribers { .. } => true,
        Error::NotShmbus { .. }
        | Error::Truncated { .. }
        | Error::SizeMismatch { .. }
        | Error::AbiMismatch { .. }
        | Error::NotReady { .. }
        | Error::Protocol(_) => a == Allow::Connect,
        Error::NotFound { .. } | Error::KindMismatch { .. } => a == Allow::Directory,
        _ => false,
    }
}

/// The variant's name, which `Debug` prints in parentheses after the message.
fn variant(e: &Error) -> String {
    let d = format!("{e:?}");
    d.rsplit_once(" (")
        .and_then(|(_, v)| v.strip_suffix(')'))
        .unwrap_or("?")
        .to_owned()
}

impl Stats {
    /// Runs one client call under the watchdog and `catch_unwind`, and checks
    /// its outcome.
    fn call<T>(
        &mut self,
        name: &'static str,
        allow: Allow,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Option<T> {
        self.calls += 1;
        let op = Op::begin(name, OP_LIMIT);
        let r = catch_unwind(AssertUnwindSafe(f));
        let used = op.end();
        if tracing() {
            let o = match &r {
                Ok(Ok(_)) => "Ok".to_owned(),
                Ok(Err(e)) => format!("{e:?}"),
                Err(_) => "panic".to_owned(),
            };
            let u = used.map_or_else(String::new, |u| u.to_string());
            println!("  {name}: {o} ({u})");
        }
        match r {
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                fail(format!("`{name}` panicked: {msg}"))
            }
            Ok(Ok(v)) => {
                *self.outcomes.entry("Ok".into()).or_default() += 1;
                Some(v)
            }
            Ok(Err(e)) => {
                if !allowed(&e, allow) {
                    fail(format!(
                        "`{name}` returned an error corruption cannot explain: {e:?} ({e})"
                    ));
                }
                *self.outcomes.entry(variant(&e)).or_default() += 1;
                None
            }
        }
    }

    /// A call that cannot fail (it returns a plain value).
    fn infallible<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> Option<T> {
        self.call(name, Allow::Data, || Ok(f()))
    }
}

// ---------------------------------------------------------------------------
// Scribbles.

/// One word to overwrite.
#[derive(Clone, Copy, Debug)]
struct Scribble {
    off: u64,
    wide: bool,
    value: u64,
    /// Metadata (header, peer table, directory): restored word by word;
    /// channel bodies come back from the snapshot.
    meta: bool,
}

/// A value for a word that now holds `cur`; `near` are sizes that matter to
/// it (capacity, slots, ...).
fn pick_value(rng: &mut Rng, cur: u64, near: &[u64]) -> u64 {
    let small = rng.below_eq(32).wrapping_sub(16);
    match rng.below_eq(11) {
        0 => 0,
        1 => 1,
        2 => u64::from(u32::MAX),
        3 => u64::MAX,
        4 => cur.wrapping_add(small),
        5 => cur ^ (1 << rng.below_eq(63)),
        6 => rng.next(),
        7 => {
            let n = near.get(rng.below_eq(near.len().max(1) as u64 - 1) as usize);
            n.copied()
                .unwrap_or(8)
                .wrapping_add(rng.below_eq(2))
                .wrapping_sub(1)
        }
        8 => 1 << 63,
        9 => cur.wrapping_add(1 + rng.below_eq(6)),
        10 => cur.wrapping_sub(8 * rng.below_eq(4)),
        _ => u64::from(u32::MAX) + 1,
    }
}

/// Record header word: `len | kind << 32`.
fn pick_record(rng: &mut Rng, cur: u64) -> u64 {
    let lens = [
        0,
        1,
        7,
        8,
        24,
        32,
        33,
        PIPE_CAP - 8,
        PIPE_CAP,
        PIPE_CAP + 1,
        u64::from(u32::MAX),
    ];
    let len = if rng.below_eq(3) == 0 {
        rng.next() & 0xFFFF_FFFF
    } else {
        lens[rng.below_eq(lens.len() as u64 - 1) as usize]
    };
    let kind = match rng.below_eq(5) {
        0 => 0,
        1 | 2 => 1,
        3 => 2,
        4 => 3,
        _ => cur >> 32,
    };
    len | (kind << 32)
}

/// Queue cell state word `seq:48 | owner:16`.
fn pick_cell_state(rng: &mut Rng, i: u64, cur: u64, me: u16) -> u64 {
    let pos = cur >> 16;
    let seqs = [
        pos,
        pos.wrapping_add(1),
        pos.wrapping_sub(1),
        pos.wrapping_add(Q_SLOTS),
        pos.wrapping_sub(Q_SLOTS),
        i,
        i + 1,
        rng.next(),
        (1 << 48) - 1,
    ];
    let owners = [0, me, 0xFFFF, 1, rng.next() as u16];
    let s = seqs[rng.below_eq(seqs.len() as u64 - 1) as usize] & ((1 << 48) - 1);
    let o = owners[rng.below_eq(owners.len() as u64 - 1) as usize];
    (s << 16) | u64::from(o)
}

/// Seqlock state word `gen:47 | busy:1 | owner:16`.
fn pick_lock_state(rng: &mut Rng, cur: u64, me: u16) -> u64 {
    let gen = match rng.below_eq(3) {
        0 => cur >> 17,
        1 => (cur >> 17).wrapping_add(1),
        2 => rng.next(),
        _ => (1 << 47) - 1,
    } & ((1 << 47) - 1);
    let busy = rng.below_eq(1);
    let owners = [0, me, 1, 0xFFFF, rng.next() as u16];
    let o = owners[rng.below_eq(owners.len() as u64 - 1) as usize];
    (gen << 17) | (busy << 16) | u64::from(o)
}

fn choose(rng: &mut Rng, seg: &Seg, l: &Layout, me: u16) -> Scribble {
    let pick = |rng: &mut Rng, xs: &[(u64, bool)]| xs[rng.below_eq(xs.len() as u64 - 1) as usize];
    let s = |off: u64, wide: bool, near: &[u64], rng: &mut Rng, meta: bool| {
        let cur = seg.get(off, wide);
        Scribble {
            off,
            wide,
            value: pick_value(rng, cur, near),
            meta,
        }
    };
    match rng.below_eq(18) {
        // Header: every field.
        0 => {
            let fields = [
                (0, true),
                (8, false),
                (12, false),
                (16, true),
                (24, true),
                (32, false),
                (36, false),
                (40, true),
                (48, true),
                (56, false),
                (60, false),
                (64, true),
                (72, false),
                (76, false),
                (80, true),
                (88, true),
                (96, true),
            ];
            let (o, w) = pick(rng, &fields);
            s(o, w, &[seg.len(), 128, 256, 4096], rng, true)
        }
        // A peer slot: ours or another.
        1 => {
            let slot = if rng.below_eq(1) == 0 {
                u64::from(me - 1)
            } else {
                rng.below_eq(l.peers.min(4) - 1)
            };
            let (o, w) = pick(
                rng,
                &[(0, false), (4, false), (8, false), (12, false), (16, true)],
            );
            s(l.peers_off + slot * 128 + o, w, &[1, 2, 3], rng, true)
        }
        // A directory entry of one of our channels.
        2 => {
            let k = rng.below_eq(4) as usize;
            let fields = [
                (0, false),
                (4, false),
                (8, false),
                (12, false),
                (16, true),
                (24, true),
                (32, true),
                (40, true),
                (64, true),
                (72, true),
            ];
            let (o, w) = pick(rng, &fields);
            let near = [l.chans[k].1, l.chans[k].2, PIPE_CAP, Q_SLOTS, 128];
            s(l.entry(k) + o, w, &near, rng, true)
        }
        // Pipe control block.
        3 | 4 => {
            let b = l.body(PIPE);
            let fields = [
                (0, false),
                (8, true),
                (128, true),
                (128, true),
                (256, true),
                (256, true),
                (384, true),
                (392, true),
                (512, false),
                (516, false),
                (640, false),
                (644, false),
            ];
            let (o, w) = pick(rng, &fields);
            let tail = seg.get(b + 128, true);
            let head = seg.get(b + 256, true);
            let near = [
                PIPE_CAP,
                tail,
                head,
                head.wrapping_add(PIPE_CAP),
                tail.wrapping_sub(PIPE_CAP),
                1 << 16,
                u64::from(me),
            ];
            s(b + o, w, &near, rng, false)
        }
        // Pipe record headers: at head, at tail, or anywhere in the ring.
        5 | 6 => {
            let b = l.body(PIPE);
            let ring = b + 768;
            let at = match rng.below_eq(2) {
                0 => seg.get(b + 256, true),
                1 => seg.get(b + 128, true),
                _ => rng.next(),
            };
            let off = ring + (at & (PIPE_CAP - 1) & !7);
            let cur = seg.get(off, true);
            Scribble {
                off,
                wide: true,
                value: pick_record(rng, cur),
                meta: false,
            }
        }
        // Queue control block.
        7 | 8 => {
            let b = l.body(QUEUE);
            let fields = [
                (0, false),
                (8, true),
                (16, true),
                (128, true),
                (128, true),
                (256, true),
                (256, true),
                (384, false),
                (388, false),
                (512, false),
                (516, false),
                (640, true),
                (768, false),
                (772, false),
            ];
            let (o, w) = pick(rng, &fields);
            let enq = seg.get(b + 128, true);
            let deq = seg.get(b + 256, true);
            let near = [
                Q_SLOTS,
                Q_SLOT_SIZE,
                enq,
                deq,
                deq.wrapping_add(Q_SLOTS),
                enq.wrapping_sub(Q_SLOTS),
            ];
            s(b + o, w, &near, rng, false)
        }
        // Queue cells: state word, claim note, length word, payload.
        9..=11 => {
            let b = l.body(QUEUE);
            let stride = shmbus::queue::cell_stride(Q_SLOT_SIZE);
            let i = rng.below_eq(Q_SLOTS - 1);
            let cell = b + shmbus::queue::CTL_SIZE + i * stride;
            match rng.below_eq(4) {
                0 | 1 => {
                    let cur = seg.get(cell, true);
                    Scribble {
                        off: cell,
                        wide: true,
                        value: pick_cell_state(rng, i, cur, me),
                        meta: false,
                    }
                }
                2 => s(cell + 16, true, &[Q_SLOT_SIZE, Q_SLOT_SIZE + 1], rng, false),
                3 => {
                    let cur = seg.get(cell, true);
                    let me = u64::from(me);
                    s(
                        cell + 8,
                        true,
                        &[cur, cur | me, cur + (1 << 16)],
                        rng,
                        false,
                    )
                }
                _ => s(cell + 24, true, &[], rng, false),
            }
        }
        // Topic: control block, subscriber entries, slots.
        16..=18 => {
            let b = l.body(TOPIC);
            let first = b + shmbus::topic::slots_off(T_SUBS);
            let stride = shmbus::topic::slot_stride(T_SLOT_SIZE);
            let tail = seg.get(b + 128, true);
            match rng.below_eq(4) {
                0 => {
                    let fields = [
                        (0, false),
                        (4, false),
                        (8, true),
                        (16, true),
                        (24, true),
                        (128, true),
                        (128, true),
                        (256, false),
                        (260, false),
                        (264, true),
                        (384, false),
                        (388, false),
                    ];
                    let (o, w) = pick(rng, &fields);
                    let near = [
                        T_SLOTS,
                        T_SLOT_SIZE,
                        T_SUBS,
                        tail,
                        tail.wrapping_add(T_SLOTS),
                        tail.wrapping_sub(T_SLOTS),
                    ];
                    s(b + o, w, &near, rng, false)
                }
                1 => {
                    // A subscriber entry: owner or cursor.
                    let k = rng.below_eq(T_SUBS - 1);
                    let o = shmbus::topic::CTL_SIZE + k * shmbus::topic::ENTRY_SIZE;
                    let near = [
                        u64::from(me),
                        0,
                        tail,
                        tail.wrapping_sub(T_SLOTS),
                        tail.wrapping_add(1),
                    ];
                    s(b + o + 8 * rng.below_eq(1), true, &near, rng, false)
                }
                2 | 3 => {
                    // A slot's state word: the shapes the protocol uses,
                    // at this lap or others, with our tag or another.
                    let i = rng.below_eq(T_SLOTS - 1);
                    let off = first + i * stride;
                    let cur = seg.get(off, true);
                    let lap = tail.wrapping_sub(tail & (T_SLOTS - 1)).wrapping_add(i);
                    let seqs = [
                        lap,
                        lap.wrapping_add(1),
                        lap.wrapping_sub(T_SLOTS),
                        lap.wrapping_add(T_SLOTS),
                        lap.wrapping_add(2),
                        cur >> 16,
                    ];
                    let sq = seqs[rng.below_eq(seqs.len() as u64 - 1) as usize];
                    let owner = [0u16, me, 0xFFFF, 77][rng.below_eq(3) as usize];
                    Scribble {
                        off,
                        wide: true,
                        value: shmbus::queue::state::pack(sq, owner),
                        meta: false,
                    }
                }
                _ => {
                    let i = rng.below_eq(T_SLOTS - 1);
                    let off = first + i * stride;
                    if rng.below_eq(1) == 0 {
                        s(off + 8, true, &[T_SLOT_SIZE, T_SLOT_SIZE + 1], rng, false)
                    } else {
                        s(off + 16, true, &[], rng, false)
                    }
                }
            }
        }
        // Seqlocks: the value's or the array's control block and copies.
        _ => {
            let k = if rng.below_eq(1) == 0 { VALUE } else { ARRAY };
            let b = l.body(k);
            match rng.below_eq(4) {
                0 | 1 => {
                    let cur = seg.get(b + 128, true);
                    Scribble {
                        off: b + 128,
                        wide: true,
                        value: pick_lock_state(rng, cur, me),
                        meta: false,
                    }
                }
                2 => {
                    let fields = [
                        (0, false),
                        (4, false),
                        (8, true),
                        (16, true),
                        (256, false),
                        (260, false),
                        (384, false),
                        (388, false),
                    ];
                    let (o, w) = pick(rng, &fields);
                    s(b + o, w, &[1, ARR_LEN as u64, 128, 256], rng, false)
                }
                _ => {
                    let w = rng.below_eq(31);
                    s(b + 512 + 8 * w, true, &[], rng, false)
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The fuzz child.

fn case_seed(base: u64, i: u64) -> u64 {
    // splitmix64
    let mut z = base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fuzz_main(args: &[String]) {
    let bus = &args[0];
    let base = parse_u64(&args[1]);
    let cases = parse_u64(&args[2]);
    let secs = parse_u64(&args[3]);
    let replay = args.get(4).filter(|s| !s.is_empty()).map(|s| parse_u64(s));
    fuzz_watchdog::start();
    {
        let b = Bus::connect_to(bus).expect("connect for setup");
        b.pipe_with_capacity("p", PIPE_CAP).unwrap();
        b.queue_builder("q")
            .slots(Q_SLOTS)
            .slot_size(Q_SLOT_SIZE)
            .open()
            .unwrap();
        b.value::<u64>("v").unwrap();
        b.array::<u16>("a", ARR_LEN).unwrap();
        b.topic_builder("t")
            .slots(T_SLOTS)
            .slot_size(T_SLOT_SIZE)
            .max_subscribers(T_SUBS)
            .open()
            .unwrap();
    }
    let seg = Seg::map(bus);
    let layout = Layout::read(&seg);
    wait_quiet(&seg, &layout);
    let snap = Snapshot::take(&seg, &layout);
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut n = 0u64;
    let mut scribbles = 0u64;
    loop {
        if secs > 0 {
            if started.elapsed() >= Duration::from_secs(secs) {
                break;
            }
        } else if n >= cases {
            break;
        }
        let seed = replay.unwrap_or_else(|| case_seed(base, n));
        CASE_SEED.store(seed, Ordering::SeqCst);
        println!("case {n} seed {seed:#x}");
        scribbles += run_case(bus, &seg, &layout, seed, &mut stats);
        {
            let _op = Op::begin("restoring the channel bodies", OP_LIMIT);
            snap.restore(&seg);
        }
        n += 1;
    }
    println!(
        "done {n} cases, {scribbles} scribbled words, {} client calls in {:.1} s",
        stats.calls,
        started.elapsed().as_secs_f64()
    );
    let o: Vec<String> = stats
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("outcomes: {}", o.join(", "));
}

/// The handles one case drives.
struct Handles {
    bus: Bus,
    pipe: Option<shmbus_client::Pipe>,
    tx: Option<shmbus_client::PipeSender>,
    rx: Option<shmbus_client::PipeReceiver>,
    q: Option<shmbus_client::Queue>,
    v: Option<shmbus_client::Value<u64>>,
    a: Option<shmbus_client::Array<u16>>,
    // Declared after the publisher and subscriber (dropped after them).
    tp: Option<shmbus_client::Publisher>,
    ts: Option<shmbus_client::Subscriber>,
    t: Option<shmbus_client::Topic>,
}

fn frame(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = match rng.below_eq(7) {
        0 => 0,
        1 => max,
        2 => max + 1,
        _ => rng.below_eq(max as u64) as usize,
    };
    vec![rng.next() as u8; len]
}

/// Runs one case; returns how many words it scribbled.
fn run_case(bus_name: &str, seg: &Seg, l: &Layout, seed: u64, st: &mut Stats) -> u64 {
    let mut rng = Rng::new(seed);
    let bus = {
        let _op = Op::begin("connecting before scribbling", OP_LIMIT);
        Bus::connect_to(bus_name).unwrap_or_else(|e| fail(format!("clean connect: {e}")))
    };
    let me = bus.peer_slot() + 1;
    let pipe = bus
        .pipe("p")
        .unwrap_or_else(|e| fail(format!("clean open: {e}")));
    let mut h = Handles {
        tx: Some(
            pipe.sender()
                .unwrap_or_else(|e| fail(format!("clean sender: {e}"))),
        ),
        rx: Some(
            pipe.receiver()
                .unwrap_or_else(|e| fail(format!("clean receiver: {e}"))),
        ),
        pipe: Some(pipe),
        q: Some(
            bus.open_queue("q")
                .unwrap_or_else(|e| fail(format!("clean open: {e}"))),
        ),
        v: Some(
            bus.open_value("v")
                .unwrap_or_else(|e| fail(format!("clean open: {e}"))),
        ),
        a: Some(
            bus.open_array("a")
                .unwrap_or_else(|e| fail(format!("clean open: {e}"))),
        ),
        tp: None,
        ts: None,
        t: Some(
            bus.open_topic("t")
                .unwrap_or_else(|e| fail(format!("clean open: {e}"))),
        ),
        bus,
    };
    h.tp = h.t.as_ref().map(shmbus_client::Topic::publisher);
    h.ts = h.t.as_ref().map(|t| {
        t.subscribe()
            .unwrap_or_else(|e| fail(format!("clean subscribe: {e}")))
    });
    // Move the positions so that scribbles meet wrapped rings and laps.
    for _ in 0..rng.below_eq(40) {
        op(&mut rng, &mut h, st, 0..=9);
    }
    let count = 1 + rng.below_eq(3);
    let list: Vec<Scribble> = (0..count).map(|_| choose(&mut rng, seg, l, me)).collect();
    let ops = 8 + rng.below_eq(24);
    let mut undo = Vec::new();
    let mode = rng.below_eq(2);
    if tracing() {
        let when = ["before the calls", "between the calls", "from a thread"][mode as usize];
        println!("  owner tag {me}; scribbles {when}:");
        for sc in &list {
            println!("    {}", describe(l, sc));
        }
    }
    match mode {
        // All before the calls.
        0 => {
            for s in &list {
                undo.push((*s, seg.swap(s.off, s.wide, s.value)));
            }
            for _ in 0..ops {
                op(&mut rng, &mut h, st, 0..=41);
            }
        }
        // Interleaved with them.
        1 => {
            let mut next = 0;
            for k in 0..ops {
                if next < list.len() && rng.below_eq(ops - k) < (list.len() - next) as u64 {
                    let s = list[next];
                    undo.push((s, seg.swap(s.off, s.wide, s.value)));
                    next += 1;
                }
                op(&mut rng, &mut h, st, 0..=41);
            }
            for s in &list[next..] {
                undo.push((*s, seg.swap(s.off, s.wide, s.value)));
            }
        }
        // From another thread while the calls run.
        _ => {
            let delays: Vec<u64> = list.iter().map(|_| rng.below_eq(2000)).collect();
            let list2 = list.clone();
            let seg_ref = seg;
            std::thread::scope(|sc| {
                let t = sc.spawn(move || {
                    let mut u = Vec::new();
                    for (s, d) in list2.iter().zip(delays) {
                        let until = Instant::now() + Duration::from_micros(d);
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        u.push((*s, seg_ref.swap(s.off, s.wide, s.value)));
                    }
                    u
                });
                for _ in 0..ops {
                    op(&mut rng, &mut h, st, 0..=41);
                }
                undo = t.join().expect("scribbler thread");
            });
        }
    }
    // Metadata back as it was, newest first (the daemon may have written some
    // peer slot words since; it rewrites them all when it recovers a slot).
    for (s, old) in undo.iter().rev() {
        if s.meta {
            seg.swap(s.off, s.wide, *old);
        }
    }
    // Except the state of peer slots other than ours: a slot that a
    // `Bus::connect_to` call took and gave back may have been LIVE when it was
    // scribbled and freed since, so what the scribble saw is stale. Every
    // such slot is free by now or about to be (its recovery is pending), and
    // FREE is what the daemon's recovery writes.
    let peers = l.peers_off..l.peers_off + l.peers * 128;
    for (s, _) in undo.iter().filter(|(s, _)| peers.contains(&s.off)) {
        let slot = (s.off - l.peers_off) / 128;
        if slot != u64::from(me - 1) {
            seg.swap(l.peers_off + slot * 128, false, 0);
        }
    }
    let forget = rng.below_eq(3) == 0;
    {
        let _op = Op::begin("dropping the handles", OP_LIMIT);
        if forget {
            // Leave claims held by a peer that goes away: the daemon repairs
            // them in a body that may still be scribbled.
            if let Some(q) = &h.q {
                if let Ok(c) = q.try_claim(1) {
                    std::mem::forget(c);
                }
            }
            if let Some(p) = &h.tp {
                if let Ok(c) = p.try_claim(1) {
                    std::mem::forget(c);
                }
            }
        }
        drop(h);
    }
    wait_quiet(seg, l);
    list.len() as u64
}

/// One random client call from `range` of the list below.
fn op(rng: &mut Rng, h: &mut Handles, st: &mut Stats, range: std::ops::RangeInclusive<u64>) {
    let k = range.start() + rng.below_eq(range.end() - range.start());
    let max = h.tx.as_ref().map_or(32, |t| t.max_frame());
    let qmax = h.q.as_ref().map_or(Q_SLOT_SIZE as usize, |q| q.slot_size());
    let tmax = h.t.as_ref().map_or(T_SLOT_SIZE as usize, |t| t.slot_size());
    match k {
        0 | 1 => {
            if let Some(tx) = h.tx.as_mut() {
                let f = frame(rng, max);
                let too_big = f.len() > max;
                st.call("PipeSender::try_send", Allow::Data, || {
                    match tx.try_send(&f) {
                        Err(Error::TooLarge { .. }) if too_big => Ok(()),
                        r => r,
                    }
                });
            }
        }
        2 | 3 => {
            if let Some(rx) = h.rx.as_mut() {
                st.call("PipeReceiver::try_recv", Allow::Data, || rx.try_recv());
            }
        }
        4 | 5 => {
            if let Some(q) = &h.q {
                let f = frame(rng, qmax);
                let too_big = f.len() > qmax;
                st.call("Queue::try_put", Allow::Data, || match q.try_put(&f) {
                    Err(Error::TooLarge { .. }) if too_big => Ok(()),
                    r => r,
                });
            }
        }
        6 | 7 => {
            if let Some(q) = &h.q {
                st.call("Queue::try_get", Allow::Data, || q.try_get());
            }
        }
        8 => {
            if let Some(v) = &h.v {
                let x = rng.next();
                st.call("Value::store", Allow::Data, || v.store(x));
            }
        }
        9 => {
            if let Some(a) = &h.a {
                let xs = [rng.next() as u16; ARR_LEN];
                st.call("Array::write", Allow::Data, || a.write(&xs));
            }
        }
        10 => {
            if let Some(tx) = h.tx.as_mut() {
                let f = frame(rng, max);
                let too_big = f.len() > max;
                st.call("PipeSender::send_timeout", Allow::Data, || {
                    match tx.send_timeout(&f, SHORT) {
                        Err(Error::TooLarge { .. }) if too_big => Ok(()),
                        r => r,
                    }
                });
            }
        }
        11 => {
            if let Some(tx) = h.tx.as_mut() {
                let len = rng.below_eq(max as u64) as usize;
                let commit = rng.below_eq(1) == 0;
                st.call("PipeSender::try_claim", Allow::Data, || {
                    let mut c = tx.try_claim(len)?;
                    c.fill(0xA5);
                    if commit {
                        c.commit()?;
                    }
                    Ok(())
                });
            }
        }
        12 => {
            if let Some(tx) = h.tx.as_mut() {
                let len = rng.below_eq(max as u64) as usize;
                st.call("PipeSender::claim_timeout", Allow::Data, || {
                    tx.claim_timeout(len, SHORT)
                        .and_then(shmbus_client::PipeClaim::commit)
                });
            }
        }
        13 => {
            if let Some(rx) = h.rx.as_mut() {
                st.call("PipeReceiver::recv_timeout", Allow::Data, || {
                    rx.recv_timeout(SHORT)
                });
            }
        }
        14 => {
            if let Some(rx) = h.rx.as_mut() {
                let mut buf = Vec::new();
                st.call("PipeReceiver::try_recv_into", Allow::Data, || {
                    rx.try_recv_into(&mut buf)
                });
            }
        }
        15 => {
            if let Some(rx) = h.rx.as_mut() {
                st.call("PipeReceiver::try_recv_with", Allow::Data, || {
                    rx.try_recv_with(|b| b.iter().map(|&x| u64::from(x)).sum::<u64>())
                });
            }
        }
        16 => {
            if let Some(rx) = h.rx.as_mut() {
                st.call("PipeReceiver::recv_with_timeout", Allow::Data, || {
                    rx.recv_with_timeout(SHORT, |b| b.len())
                });
            }
        }
        17 => {
            if let Some(q) = &h.q {
                let f = frame(rng, qmax);
                let too_big = f.len() > qmax;
                st.call("Queue::put_timeout", Allow::Data, || {
                    match q.put_timeout(&f, SHORT) {
                        Err(Error::TooLarge { .. }) if too_big => Ok(()),
                        r => r,
                    }
                });
            }
        }
        18 => {
            if let Some(q) = &h.q {
                let len = rng.below_eq(qmax as u64) as usize;
                let commit = rng.below_eq(1) == 0;
                st.call("Queue::try_claim", Allow::Data, || {
                    let mut c = q.try_claim(len)?;
                    c.fill(0x5A);
                    if commit {
                        c.commit()?;
                    }
                    Ok(())
                });
            }
        }
        19 => {
            if let Some(q) = &h.q {
                st.call("Queue::get_timeout", Allow::Data, || q.get_timeout(SHORT));
            }
        }
        20 => {
            if let Some(q) = &h.q {
                st.call("Queue::try_get_with", Allow::Data, || {
                    q.try_get_with(|b| b.to_vec())
                });
            }
        }
        21 => {
            if let Some(q) = &h.q {
                st.infallible("Queue::len", || {
                    (q.len(), q.is_empty(), q.is_full(), q.unfinished())
                });
                st.call("Queue::task_done", Allow::Data, || q.task_done());
                st.call("Queue::join_timeout", Allow::Data, || q.join_timeout(SHORT));
            }
        }
        22 => {
            if let Some(v) = &h.v {
                st.infallible("Value::load", || {
                    (v.load(), v.load_versioned(), v.version())
                });
            }
        }
        23 => {
            if let Some(v) = &h.v {
                st.call("Value::update", Allow::Data, || {
                    v.update(|x| x.wrapping_mul(3))
                });
                st.call("Value::fetch_add", Allow::Data, || v.fetch_add(1));
            }
        }
        24 => {
            if let Some(v) = &h.v {
                let since = if rng.below_eq(1) == 0 {
                    v.version()
                } else {
                    rng.next()
                };
                st.call("Value::wait_changed", Allow::Data, || {
                    v.wait_changed_timeout(since, SHORT)
                });
            }
        }
        25 => {
            if let Some(a) = &h.a {
                let mut out = [0u16; ARR_LEN];
                st.call("Array::read_into", Allow::Data, || a.read_into(&mut out));
                let i = rng.below_eq(ARR_LEN as u64 - 1) as usize;
                st.infallible("Array::read", || (a.read(), a.get(i), a.version()));
            }
        }
        26 => {
            if let Some(a) = &h.a {
                let i = rng.below_eq(ARR_LEN as u64 - 1) as usize;
                st.call("Array::set", Allow::Data, || a.set(i, 9));
                st.call("Array::update", Allow::Data, || a.update(|xs| xs[0] ^= 1));
            }
        }
        27 => {
            if let Some(a) = &h.a {
                let since = a.version();
                st.call("Array::wait_changed", Allow::Data, || {
                    a.wait_changed_timeout(since, SHORT)
                });
            }
        }
        28 => {
            st.infallible("Bus::channels", || (h.bus.channels(), h.bus.is_closed()));
        }
        29 => {
            st.call("Bus::connect_to", Allow::Connect, || {
                let b = Bus::connect_to(h.bus.name())?;
                let n = b.channels().len();
                Ok(n)
            });
        }
        30 => {
            let b = h.bus.clone();
            st.call("Bus::pipe (reopen)", Allow::Data, || {
                b.open_pipe("p").map(|_| ())
            });
        }
        31 => {
            // A second attach while we hold the ends: `Busy`, unless a
            // scribble freed the end word.
            if let Some(p) = &h.pipe {
                st.call("Pipe::sender (again)", Allow::Data, || p.sender().map(drop));
                st.call("Pipe::receiver (again)", Allow::Data, || {
                    p.receiver().map(drop)
                });
            }
        }
        32 => {
            // Detach and attach again: the attach re-validates the positions.
            if rng.below_eq(1) == 0 {
                h.tx = None;
                if let Some(p) = &h.pipe {
                    h.tx = st.call("Pipe::sender (reattach)", Allow::Data, || p.sender());
                }
            } else {
                h.rx = None;
                if let Some(p) = &h.pipe {
                    h.rx = st.call("Pipe::receiver (reattach)", Allow::Data, || p.receiver());
                }
            }
        }
        33 => {
            let b = h.bus.clone();
            st.call("Bus::open_queue (reopen)", Allow::Data, || {
                b.open_queue("q").map(drop)
            });
            st.call("Bus::queue_builder (reopen)", Allow::Data, || {
                b.queue_builder("q")
                    .slots(Q_SLOTS)
                    .slot_size(Q_SLOT_SIZE)
                    .open()
                    .map(drop)
            });
        }
        34 => {
            let b = h.bus.clone();
            st.call("Bus::open_value (reopen)", Allow::Data, || {
                b.open_value::<u64>("v").map(drop)
            });
            st.call("Bus::array (reopen)", Allow::Data, || {
                b.array::<u16>("a", ARR_LEN).map(drop)
            });
            st.call("Bus::table (reopen)", Allow::Directory, || {
                b.table("a").map(|t| t.read_strings())
            });
        }
        35 => {
            // Replace the handles with freshly opened ones (they re-validate).
            let b = h.bus.clone();
            if let Some(q) = st.call("Bus::open_queue (replace)", Allow::Data, || {
                b.open_queue("q")
            }) {
                h.q = Some(q);
            }
            if let Some(v) = st.call("Bus::open_value (replace)", Allow::Data, || {
                b.open_value("v")
            }) {
                h.v = Some(v);
            }
            if let Some(a) = st.call("Bus::open_array (replace)", Allow::Data, || {
                b.open_array("a")
            }) {
                h.a = Some(a);
            }
        }
        37 | 38 => {
            if let Some(p) = &h.tp {
                let f = frame(rng, tmax);
                let too_big = f.len() > tmax;
                st.call("Publisher::try_publish", Allow::Data, || {
                    match p.try_publish(&f) {
                        Err(Error::TooLarge { .. }) if too_big => Ok(()),
                        r => r,
                    }
                });
            }
        }
        39 => {
            if let Some(s) = &h.ts {
                st.call("Subscriber::try_recv", Allow::Data, || s.try_recv());
                st.call("Subscriber::try_recv_with", Allow::Data, || {
                    s.try_recv_with(|b| b.len())
                });
                st.infallible("Subscriber::pending", || (s.pending(), s.position()));
            }
        }
        40 => {
            if let Some(p) = &h.tp {
                let f = frame(rng, tmax.min(8));
                st.call("Publisher::publish_timeout", Allow::Data, || {
                    p.publish_timeout(&f, SHORT)
                });
                st.call("Publisher::try_claim", Allow::Data, || {
                    let mut c = p.try_claim(tmax.min(16))?;
                    c.write_at(0, &[7; 8]);
                    c.commit()
                });
            }
            if let Some(s) = &h.ts {
                st.call("Subscriber::recv_timeout", Allow::Data, || {
                    s.recv_timeout(SHORT)
                });
            }
        }
        41 => {
            // Leave and join again (with history), or reopen the topic.
            h.ts = None;
            let b = h.bus.clone();
            if rng.below_eq(1) == 0 {
                if let Some(t) = st.call("Bus::open_topic (replace)", Allow::Data, || {
                    b.open_topic("t")
                }) {
                    h.tp = Some(t.publisher());
                    h.t = Some(t);
                }
            }
            if let Some(t) = &h.t {
                let k = rng.below_eq(T_SLOTS + 1);
                st.infallible("Topic::stats", || t.stats());
                h.ts = st.call("Topic::subscribe_with_history", Allow::Data, || {
                    t.subscribe_with_history(k)
                });
            }
        }
        _ => {
            let b = h.bus.clone();
            st.call("Table::write_strings", Allow::Directory, || {
                let t = b.table("v")?;
                t.write_strings(&["5"])?;
                t.add_string("2").map(drop)
            });
        }
    }
}

// ---------------------------------------------------------------------------
// The daemon's side: recovery of a killed client whose channels are scribbled.

/// Rounds of [`killed_client_with_scribbled_channels`].
const KILL_ROUNDS: u64 = 12;

/// Holds both pipe ends, a write claim and a read claim in the queue, and the
/// value's writer lock, then waits to be killed. Channel names end in the
/// round number, so every round starts from fresh channels.
fn victim(args: &[String]) {
    let b = Bus::connect_to(&args[0]).unwrap();
    let r = &args[1];
    let p = b.pipe_with_capacity(&format!("kp{r}"), PIPE_CAP).unwrap();
    let (mut tx, rx) = (p.sender().unwrap(), p.receiver().unwrap());
    for i in 0..5u8 {
        tx.try_send(&[i; 20]).unwrap();
    }
    let q = b
        .queue_builder(&format!("kq{r}"))
        .slots(Q_SLOTS)
        .slot_size(Q_SLOT_SIZE)
        .open()
        .unwrap();
    q.try_put(b"one").unwrap();
    q.try_put(b"two").unwrap();
    std::mem::forget(q.try_claim(3).unwrap());
    let v = b.value::<u64>(&format!("kv{r}")).unwrap();
    v.store(1).unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ready2 = ready_tx.clone();
    std::thread::spawn(move || {
        // Holds a read claim until the process dies.
        let _ = q.try_get_with(|_| {
            let _ = ready2.send(());
            std::thread::sleep(Duration::from_secs(3600));
        });
    });
    std::thread::spawn(move || {
        // Holds the writer lock until the process dies.
        let _ = v.update(|x| {
            let _ = ready_tx.send(());
            std::thread::sleep(Duration::from_secs(3600));
            x
        });
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    println!("ready");
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(3600));
    drop((tx, rx));
}

#[test]
fn killed_client_with_scribbled_channels() {
    let d = Daemon::start_role(DISPATCH, "hostile-kill", &[]);
    let base = plan().base;
    for round in 0..KILL_ROUNDS {
        let seed = case_seed(base ^ 0x4b11, round);
        let mut rng = Rng::new(seed);
        let r = round.to_string();
        let mut v = Proc::spawn_role(DISPATCH, "victim", &[&d.bus, &r]);
        v.expect_line("ready");
        let seg = Seg::map(&d.bus);
        let bodies: Vec<(u64, u64)> = ["kp", "kq", "kv"]
            .iter()
            .filter_map(|k| find_channel(&seg, &format!("{k}{r}")))
            .collect();
        assert_eq!(bodies.len(), 3, "round {round}: the victim's channels");
        for _ in 0..1 + rng.below_eq(7) {
            let (off, len) = bodies[rng.below_eq(2) as usize];
            // Mostly the control blocks and the first cells, where the
            // recovery looks.
            let span = if rng.below_eq(1) == 0 { 128 } else { len / 8 };
            let w = off + 8 * rng.below_eq(span.min(len / 8) - 1);
            let cur = seg.get(w, true);
            seg.swap(
                w,
                true,
                pick_value(&mut rng, cur, &[PIPE_CAP, Q_SLOTS, 1 << 16]),
            );
        }
        v.signal(Signal::KILL);
        let _ = v.wait(support::WATCHDOG);
        // The daemon recovers the dead peer: its slot becomes FREE again.
        let peers_off = seg.get(48, true);
        let peers = seg.get(56, false);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..peers).any(|i| seg.get(peers_off + i * 128, false) != 0) {
            assert!(
                Instant::now() < deadline,
                "round {round} (seed {seed:#x}): the daemon never recovered the killed client"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Still serving: a client opens the scribbled channels (errors are
        // fine, crashes are not) and uses a fresh one.
        let b = Bus::connect_to(&d.bus)
            .unwrap_or_else(|e| panic!("round {round} (seed {seed:#x}): daemon gone: {e}"));
        let _ = b
            .open_pipe(&format!("kp{r}"))
            .and_then(|p| p.receiver())
            .map(|mut r| r.try_recv());
        let _ = b.open_queue(&format!("kq{r}")).map(|q| q.try_get());
        let _ = b.open_value::<u64>(&format!("kv{r}")).map(|v| v.load());
        let p = b.pipe(&format!("fresh{round}")).unwrap();
        let (mut tx, mut rx) = (p.sender().unwrap(), p.receiver().unwrap());
        tx.try_send(b"ok").unwrap();
        assert_eq!(rx.try_recv().unwrap(), b"ok");
    }
}

/// Body offset and length of live channel `name` (at most 8 bytes), from the
/// directory.
fn find_channel(seg: &Seg, name: &str) -> Option<(u64, u64)> {
    let dir_off = seg.get(64, true);
    let dir_count = seg.get(72, false);
    let mut word = [0u8; 8];
    word[..name.len()].copy_from_slice(name.as_bytes());
    (0..dir_count).map(|i| dir_off + i * 256).find_map(|e| {
        (seg.get(e, false) == 2
            && seg.get(e + 12, false) == name.len() as u64
            && seg.get(e + 64, true) == u64::from_le_bytes(word))
        .then(|| (seg.get(e + 16, true), seg.get(e + 24, true)))
    })
}

/// Runs `f` on a thread; fails the test if it takes over 30 s.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("watchdog: {what} did not return within 30 s ({e})"))
}

/// Regression test for the hangs the fuzzer found: a blocking call waiting
/// for a writer lock or a pipe end held by an owner tag that no connected
/// process has (0, a FREE peer slot, or our own tag while no thread of ours
/// runs an `update` under it, for over two seconds)
/// returns `Corrupt` instead of waiting forever.
#[test]
fn phantom_holders_are_reported_not_waited_for() {
    let d = Daemon::start_role(DISPATCH, "hostile-phantom", &[]);
    let bus = Bus::connect_to(&d.bus).unwrap();
    let seg = Seg::map(&d.bus);
    let peers = seg.get(56, false);
    let me = bus.peer_slot() + 1;
    // The last slot is free: only this test's one client is connected.
    let free_tag = peers as u16;
    assert_ne!(free_tag, me);

    let v = bus.value::<u64>("pv").unwrap();
    v.store(5).unwrap();
    let (body, _) = find_channel(&seg, "pv").unwrap();
    let state = seg.w64(body + 128);
    let clean = state.load(Ordering::SeqCst);
    // Our own tag is given two seconds (see `phantom_lock` in
    // client/src/table.rs): another of our threads may hold the lock.
    for owner in [free_tag, 0, me] {
        state.store(clean | (1 << 16) | u64::from(owner), Ordering::SeqCst);
        let v2 = v.clone();
        let r = within("Value::store on a phantom lock", move || v2.store(6));
        assert!(matches!(r, Err(Error::Corrupt(_))), "owner {owner}: {r:?}");
        let v2 = v.clone();
        let r = within("Value::update on a phantom lock", move || {
            v2.update(|x| x + 1)
        });
        assert!(matches!(r, Err(Error::Corrupt(_))), "owner {owner}: {r:?}");
        assert_eq!(v.load(), 5, "nothing was published");
        state.store(clean, Ordering::SeqCst);
    }
    v.store(7).unwrap();
    assert_eq!(v.load(), 7);

    // Not a phantom: another thread of this process holds the lock with our
    // own tag, inside an `update` closure, for longer than an own-tag lock
    // is otherwise given; the writer waits.
    let (held_tx, held_rx) = mpsc::channel();
    let holder = {
        let v = v.clone();
        std::thread::spawn(move || {
            v.update(|x| {
                held_tx.send(()).unwrap();
                // Longer than the two seconds an own-tag lock is given
                // when no `update` closure of ours runs.
                std::thread::sleep(Duration::from_millis(3000));
                x + 1
            })
        })
    };
    held_rx.recv().unwrap();
    let v2 = v.clone();
    let r = within("Value::store behind our own thread", move || v2.store(100));
    assert!(
        r.is_ok(),
        "a lock our own thread holds is not a phantom: {r:?}"
    );
    assert_eq!(holder.join().unwrap().unwrap(), 8);
    assert_eq!(v.load(), 100);
    v.store(7).unwrap();

    // A receiver waiting for a sender that does not exist.
    let p = bus.pipe_with_capacity("pp", 64).unwrap();
    let mut rx = p.receiver().unwrap();
    let (body, _) = find_channel(&seg, "pp").unwrap();
    let producer = seg.w64(body + 384);
    producer.store((1 << 16) | u64::from(free_tag), Ordering::SeqCst);
    let r = within("PipeReceiver::recv from a phantom sender", move || {
        let r = rx.recv();
        (r, rx)
    });
    assert!(matches!(r.0, Err(Error::Corrupt(_))), "{:?}", r.0);
    drop(r.1);
    producer.store(1 << 16, Ordering::SeqCst);

    // A sender waiting for room that a receiver that does not exist would
    // make.
    let mut tx = p.sender().unwrap();
    while tx.try_send(b"12345678").is_ok() {}
    let consumer = seg.w64(body + 392);
    consumer.store((2 << 16) | u64::from(free_tag), Ordering::SeqCst);
    let (r, tx) = within("PipeSender::send to a phantom receiver", move || {
        let r = tx.send(b"x");
        (r, tx)
    });
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
    let (r, _tx) = within("PipeSender::claim for a phantom receiver", move || {
        let mut tx = tx;
        let r = tx.claim(1).map(drop);
        (r, tx)
    });
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");

    // Getters stalled behind a write claim that nobody holds.
    let q = bus
        .queue_builder("pq")
        .slots(4)
        .slot_size(8)
        .open()
        .unwrap();
    let (body, _) = find_channel(&seg, "pq").unwrap();
    // The claim of position 0 as a put makes it: `enqueue_pos` names the
    // claimer, then the cell is tagged.
    let pack = shmbus::queue::state::pack;
    seg.w64(body + 128)
        .store(pack(1, free_tag), Ordering::SeqCst);
    let cell0 = seg.w64(body + shmbus::queue::CTL_SIZE);
    cell0.store(pack(0, free_tag), Ordering::SeqCst);
    q.try_put(b"behind").unwrap();
    let q2 = q.clone();
    let r = within("Queue::get behind a phantom write claim", move || q2.get());
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");

    // Putters stalled behind a read claim that nobody holds.
    let q = bus
        .queue_builder("pq2")
        .slots(4)
        .slot_size(8)
        .open()
        .unwrap();
    for i in 0..4u8 {
        q.try_put(&[i]).unwrap();
    }
    let (body, _) = find_channel(&seg, "pq2").unwrap();
    let cell0 = seg.w64(body + shmbus::queue::CTL_SIZE);
    cell0.store((1 << 16) | u64::from(free_tag), Ordering::SeqCst); // (pos 1, free_tag)
    let q2 = q.clone();
    let r = within("Queue::put behind a phantom read claim", move || {
        q2.put(b"x")
    });
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
    let q2 = q.clone();
    let r = within("Queue::claim behind a phantom read claim", move || {
        q2.claim(1).map(drop)
    });
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
}
