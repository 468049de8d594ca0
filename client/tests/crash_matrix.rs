//! The crash matrix: SIGKILL a pipe sender, a pipe receiver, a queue producer,
//! a queue consumer, a value writer, a topic publisher and a topic subscriber
//! (their roles are in `crash_matrix/topic.rs`) at random moments under load, many
//! times each, on one daemon and one channel per role; after every kill the
//! survivors must go on, nothing committed may be lost or duplicated, and a
//! replacement process must be able to use the channel.
//!
//! # What is checked, and how a dead process's share is told apart
//! A victim cannot report what it did at the instant it died, so each one
//! records its progress in a small *ack file* (one `pwrite` after every
//! operation that returned, which survives SIGKILL). An operation that
//! completed in the bus but was not yet acked is the one thing a kill may hide,
//! so each check allows exactly that one operation and nothing more. Victims
//! that take items (pipe receivers, queue consumers) also flag in the ack file
//! when they are inside a receive; one killed between receives may hide
//! nothing at all.
//!
//! | role killed | survivors | check after each kill |
//! |---|---|---|
//! | pipe sender | receiver (this process) | the incarnation's frames arrive as `0..k` with no hole, no repeat, valid checksums; `acked <= k <= acked + 1`; the receiver sees end of file |
//! | pipe receiver | sender (this process) | each receiver reports the contiguous range it took; the next one starts where it stopped, or one frame later if it was killed inside a receive (the frame it took but had not acked); the sender sees `Disconnected` and resumes with the next receiver |
//! | queue producer | 2 consumers + 1 producer (threads here) | each victim's messages arrive exactly once as `0..k`, `acked <= k <= acked + 1`; every survivor's and marker's message exactly once; the unfinished count equals the puts |
//! | queue consumer | 2 producers + 1 consumer (threads here) | no message twice (victims' logs plus the survivor's); messages put and never taken by anyone: at most one per victim killed inside a get; the unfinished count equals the puts |
//! | topic publisher | 2 subscribers + 1 publisher (threads here), lossless topic | both subscribers receive the same messages in the same order; each victim's as `0..k`, `acked <= k <= acked + 1`; every survivor's and marker's message exactly once |
//! | topic subscriber | 1 subscriber + 1 publisher (threads here), lossless topic | the victim checks every message it gets and each publisher's run for holes (a failed check is not a SIGKILL death); the publisher, held back by the dead subscriber, goes on once its place is freed; the survivor gets every message once; every dead subscriber's place is freed |
//! | value writer | a reader (thread here) and the next writer | no torn read ever (checksummed array); after the kill the array holds the victim's last acked write or the one after; a new write goes through (the lock is cleared) and reads back. Each victim is SIGSTOPped just before its SIGKILL so that whether it died holding the writer lock can be read and counted |
//!
//! # Wait past the death
//! The parent records the instant of each SIGKILL and the instant a survivor
//! blocked by the death returns (end of file / `Disconnected` for pipes, the
//! first message put after the kill being taken for queues, the next write
//! for the value); the difference is printed per role (median and max) and
//! appended to `target/crash-matrix.txt`. Never asserted: the machine is
//! noisy; watchdogs of [`WATCHDOG`] turn a hang into a failure.
//!
//! # Counts
//! [`DEFAULT_KILLS`] kills per role in CI; `SHMBUS_CRASH_KILLS=N` for more,
//! `SHMBUS_CRASH_SEED=S` to replay a run (the seed is printed). The ignored
//! test `long_crash_matrix` runs every role with 2,000 kills (or
//! `SHMBUS_CRASH_KILLS`):
//! `cargo test -p shmbus-client --release --test crash_matrix -- --ignored --nocapture`.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Signal, WaitId, WaitIdOptions};
use shmbus_client::{Bus, ChannelDetails, Error};
use support::{fnv, Daemon, Proc, Rng};

#[path = "crash_matrix/topic.rs"]
mod topic;

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Kills per role in CI.
const DEFAULT_KILLS: usize = 100;
/// Kills per role in `long_crash_matrix` unless `SHMBUS_CRASH_KILLS` says.
const LONG_KILLS: usize = 2_000;
/// Longest any single wait may take before the test fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(30);
/// Longest random delay between a victim starting its load and its SIGKILL.
const MAX_DELAY_US: u64 = 20_000;

/// Pipe ring: 4 KiB, so frames up to 512 bytes, and it is often full.
const PIPE_CAP: u64 = 4096;
/// Queue: few slots, so it is often full and often empty.
const SLOTS: u64 = 16;
/// Queue message: producer, sequence number, filler, checksum.
const MSG: usize = 64;
/// Producer ids of the survivors' messages and of the parent's markers; victims
/// use their incarnation number.
const STEADY: u64 = 1 << 40;
const MARK: u64 = 2 << 40;
const STOP: u64 = 3 << 40;
/// Flag in an ack word: the victim was inside a receive or get, so it may
/// have taken one item it did not ack.
const INSIDE: u64 = 1 << 63;
/// Array elements: writer id, sequence, filler, checksum.
const ALEN: usize = 8;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "pipe_sender" => pipe_sender(&args[0], args[1].parse().unwrap(), &args[2], &args[3]),
        "pipe_receiver" => pipe_receiver(&args[0], &args[1]),
        "queue_producer" => queue_producer(&args[0], args[1].parse().unwrap(), &args[2]),
        "queue_consumer" => queue_consumer(&args[0], &args[1], &args[2]),
        "value_writer" => value_writer(&args[0], args[1].parse().unwrap(), &args[2]),
        "topic_publisher" => topic::topic_publisher(&args[0], args[1].parse().unwrap(), &args[2]),
        "topic_subscriber" => topic::topic_subscriber(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

// ---- shared pieces ------------------------------------------------------------

/// Kills per role: `SHMBUS_CRASH_KILLS`, else `default`.
fn kills(default: usize) -> usize {
    std::env::var("SHMBUS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's seed: `SHMBUS_CRASH_SEED`, else the clock; printed so that a
/// failure can be replayed (the kill delays, not the scheduling).
fn seed(role: &str) -> u64 {
    let s = std::env::var("SHMBUS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("crash matrix {role}: seed {s} (replay with SHMBUS_CRASH_SEED={s})");
    s
}

/// A file in the temporary directory, removed on drop: a victim's ack file
/// or log.
struct Scratch(PathBuf);

impl Scratch {
    fn new(bus: &str, what: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{bus}-{what}"));
        std::fs::write(&p, [0u8; 16]).unwrap();
        Self(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Resets the file to 16 zero bytes.
    fn reset(&self) {
        std::fs::write(&self.0, [0u8; 16]).unwrap();
    }

    /// The two words at the start.
    fn words(&self) -> (u64, u64) {
        let d = std::fs::read(&self.0).unwrap();
        (
            u64::from_le_bytes(d[..8].try_into().unwrap()),
            u64::from_le_bytes(d[8..16].try_into().unwrap()),
        )
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Victim side of an ack file: one `pwrite` of 16 bytes at offset 0, atomic
/// with respect to the parent's read after the victim is dead.
struct Ack(File);

impl Ack {
    fn open(path: &str) -> Self {
        Self(std::fs::OpenOptions::new().write(true).open(path).unwrap())
    }

    fn put(&self, a: u64, b: u64) {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&a.to_le_bytes());
        rec[8..].copy_from_slice(&b.to_le_bytes());
        self.0.write_all_at(&rec, 0).unwrap();
    }
}

/// Spawns a victim, waits until it has attached and started its load, calls
/// `started`, sleeps a random 0–20 ms, then SIGKILLs it. Returns the kill
/// instant, after checking that the victim died of that SIGKILL (not of a
/// failed check).
fn kill_under_load(rng: &mut Rng, role: &str, args: &[&str], started: impl FnOnce()) -> Instant {
    let mut victim = Proc::spawn_role(DISPATCH, role, args);
    victim.expect_line("started");
    started();
    thread::sleep(Duration::from_micros(rng.below_eq(MAX_DELAY_US)));
    victim.signal(Signal::KILL);
    let killed = Instant::now();
    reap(victim, role);
    killed
}

/// Waits for a killed victim and checks that SIGKILL ended it.
fn reap(victim: Proc, role: &str) {
    // Block until it is dead without reaping it (`Proc::wait` polls every
    // 5 ms, which would add up to 5 ms to the queue and value waits).
    let pid = rustix::process::Pid::from_raw(victim.pid() as i32).unwrap();
    rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .unwrap();
    let o = victim.wait(support::WATCHDOG);
    assert_eq!(
        o.status.signal(),
        Some(Signal::KILL.as_raw()),
        "victim {role} ended with {} before it was killed\nstdout:\n{}\nstderr:\n{}",
        o.status,
        o.stdout_str(),
        o.stderr
    );
}

/// Per-role results, printed and appended to `target/crash-matrix.txt`.
struct Tally {
    role: &'static str,
    seed: u64,
    kills: usize,
    checked: u64,
    waits: Vec<Duration>,
    note: String,
    started: Instant,
}

impl Tally {
    fn new(role: &'static str, seed: u64) -> Self {
        Self {
            role,
            seed,
            kills: 0,
            checked: 0,
            waits: Vec::new(),
            note: String::new(),
            started: Instant::now(),
        }
    }

    fn report(mut self) {
        self.waits.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let median = self
            .waits
            .get(self.waits.len() / 2)
            .copied()
            .unwrap_or_default();
        let max = self.waits.last().copied().unwrap_or_default();
        let p99 = self
            .waits
            .get(self.waits.len() * 99 / 100)
            .copied()
            .unwrap_or_default();
        let over_2s = self
            .waits
            .iter()
            .filter(|w| **w > Duration::from_secs(2))
            .count();
        let line = format!(
            "{:<14} kills {:>5}  messages checked {:>9}  wait after death: median {:>6.2} ms, p99 {:>7.2} ms, max {:>8.2} ms, over 2 s {}  ({}; seed {}, {:.1} s)",
            self.role,
            self.kills,
            self.checked,
            ms(median),
            ms(p99),
            ms(max),
            over_2s,
            self.note,
            self.seed,
            self.started.elapsed().as_secs_f64()
        );
        eprintln!("crash matrix: {line}");
        let top: Vec<String> = self
            .waits
            .iter()
            .rev()
            .take(5)
            .map(|w| format!("{:.1}", ms(*w)))
            .collect();
        eprintln!(
            "crash matrix: {} longest waits (ms): {}",
            self.role,
            top.join(", ")
        );
        // target/<profile>/deps/crash_matrix-HASH -> target
        let exe = std::env::current_exe().unwrap();
        if let Some(target) = exe.ancestors().nth(3) {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(target.join("crash-matrix.txt"))
            {
                let _ = writeln!(f, "unix {stamp}  {line}");
            }
        }
    }
}

/// Frame or message `seq` of `id`, `len` bytes: id, sequence number, filler
/// derived from both, FNV checksum of everything before it.
fn frame(buf: &mut [u8], id: u64, seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&id.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[16..n - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ (id as u8);
    }
    let sum = fnv(&buf[..n - 8]);
    buf[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a frame's checksum and returns `(id, seq)`.
fn parse(buf: &[u8]) -> (u64, u64) {
    let n = buf.len();
    assert!(n >= 24, "frame of {n} bytes: too short");
    let sum = u64::from_le_bytes(buf[n - 8..].try_into().unwrap());
    assert_eq!(sum, fnv(&buf[..n - 8]), "checksum mismatch: torn frame");
    (
        u64::from_le_bytes(buf[..8].try_into().unwrap()),
        u64::from_le_bytes(buf[8..16].try_into().unwrap()),
    )
}

/// Length of a pipe frame: 24 bytes to the pipe's maximum, mostly small.
fn frame_len(rng: &mut Rng, max: usize) -> usize {
    let max = max as u64;
    let len = match rng.next() % 8 {
        0 => rng.below_eq(max),
        _ => rng.below_eq(160),
    };
    len.max(24) as usize
}

fn queue_message(id: u64, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    frame(&mut m, id, seq);
    m
}

/// Runs `f` on a thread; fails the test if it takes longer than [`WATCHDOG`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(e) => panic!("watchdog: {what} did not finish within {WATCHDOG:?} ({e})"),
    }
}

/// Attaches an endpoint, retrying while the previous holder's end is still
/// being released (watchdog: [`WATCHDOG`]).
fn attach<T>(what: &str, mut f: impl FnMut() -> shmbus_client::Result<T>) -> T {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match f() {
            Ok(t) => return t,
            Err(Error::Busy { .. }) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("attaching the {what}: {e}"),
        }
    }
}

// ---- pipe sender --------------------------------------------------------------

/// Victim: attaches as the sender and sends frames `(inc, 0..)` until killed,
/// a third of them through zero-copy claims; acks `seq + 1` after each.
fn pipe_sender(bus: &str, inc: u64, ack: &str, seed: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let pipe = b.pipe("p").unwrap();
    let mut tx = attach("sender", || pipe.sender());
    let ack = Ack::open(ack);
    let max = tx.max_frame();
    let mut rng = Rng::new(seed.parse::<u64>().unwrap() ^ inc);
    let mut buf = vec![0u8; max];
    println!("started");
    for seq in 0.. {
        let len = frame_len(&mut rng, max);
        if seq % 3 == 0 {
            let mut c = tx.claim(len).unwrap();
            frame(&mut c, inc, seq);
            c.commit().unwrap();
        } else {
            frame(&mut buf[..len], inc, seq);
            tx.send(&buf[..len]).unwrap();
        }
        ack.put(seq + 1, 0);
    }
}

/// What the parent's pipe thread reports after each end of file or
/// `Disconnected`: frames/sequence reached, and when it returned.
struct Seen {
    count: u64,
    at: Instant,
}

fn run_pipe_sender_kills(n: usize) {
    let seed = seed("pipe sender");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("pipe sender", seed);
    let d = Daemon::start_role(DISPATCH, "cm-ptx", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let pipe = b.pipe_with_capacity("p", PIPE_CAP).unwrap();
    let mut rx = pipe.receiver().unwrap();
    let ack = Scratch::new(&d.bus, "ack");
    // Receiver: for each incarnation (once told it has attached), takes frames
    // until end of file and reports how many, checking each.
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>();
    let receiver = thread::spawn(move || {
        let mut buf = Vec::new();
        while let Ok(inc) = go_rx.recv() {
            let mut next = 0u64;
            loop {
                match rx.recv_with_timeout(WATCHDOG, |f| {
                    buf.clear();
                    buf.extend_from_slice(f);
                }) {
                    Ok(()) => {
                        let (id, seq) = parse(&buf);
                        assert_eq!(id, inc, "frame of incarnation {id} while {inc} sends");
                        assert_eq!(
                            seq, next,
                            "incarnation {inc}: frame {seq} where {next} was due (hole or repeat)"
                        );
                        next += 1;
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("receiver, incarnation {inc}: {e}"),
                }
            }
            let at = Instant::now();
            seen_tx.send(Seen { count: next, at }).unwrap();
        }
        rx
    });
    let seed_s = seed.to_string();
    for inc in 0..n as u64 {
        ack.reset();
        let inc_s = inc.to_string();
        let killed = kill_under_load(
            &mut rng,
            "pipe_sender",
            &[&d.bus, &inc_s, ack.path(), &seed_s],
            || go_tx.send(inc).unwrap(),
        );
        let seen = seen_rx
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("incarnation {inc}: no end of file after the kill ({e})"));
        let (acked, _) = ack.words();
        assert!(
            acked <= seen.count && seen.count <= acked + 1,
            "incarnation {inc}: {acked} sends returned Ok but the receiver got {} frames",
            seen.count
        );
        tally.kills += 1;
        tally.checked += seen.count;
        tally.waits.push(seen.at.saturating_duration_since(killed));
    }
    drop(go_tx);
    let mut rx = within("the receiver thread", move || receiver.join().unwrap());
    // A replacement sender in this process: the pipe still works.
    let mut tx = attach("replacement sender", || pipe.sender());
    tx.send(b"after the matrix").unwrap();
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), b"after the matrix");
    tally.note = "wait = SIGKILL to the receiver's end of file".into();
    tally.report();
}

#[test]
fn pipe_sender_killed_under_load() {
    run_pipe_sender_kills(kills(DEFAULT_KILLS));
}

// ---- pipe receiver --------------------------------------------------------------

/// Victim: attaches as the receiver and takes frames until killed, checking
/// each and that they are consecutive; after each acks `(first, count)`,
/// and flags [`INSIDE`] while it is in a receive.
fn pipe_receiver(bus: &str, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let pipe = b.pipe("p").unwrap();
    let mut rx = attach("receiver", || pipe.receiver());
    let ack = Ack::open(ack);
    let mut buf = Vec::new();
    let mut first = None;
    let mut count = 0u64;
    println!("started");
    loop {
        // Inside a receive: a kill from here to the ack below may take one
        // frame with it.
        ack.put(first.unwrap_or(0), count | INSIDE);
        if count.is_multiple_of(2) {
            rx.recv_into(&mut buf).unwrap();
        } else {
            rx.recv_with(|f| {
                buf.clear();
                buf.extend_from_slice(f);
            })
            .unwrap();
        }
        let (id, seq) = parse(&buf);
        assert_eq!(id, 0, "unknown sender {id}");
        let first = *first.get_or_insert(seq);
        assert_eq!(
            seq,
            first + count,
            "frame {seq} after {count} frames from {first}"
        );
        count += 1;
        ack.put(first, count);
    }
}

fn run_pipe_receiver_kills(n: usize) {
    let seed = seed("pipe receiver");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("pipe receiver", seed);
    let d = Daemon::start_role(DISPATCH, "cm-prx", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let pipe = b.pipe_with_capacity("p", PIPE_CAP).unwrap();
    let mut tx = pipe.sender().unwrap();
    let ack = Scratch::new(&d.bus, "ack");
    // Sender: once told a receiver is there, frames `(0, seq)` for ever; on
    // `Disconnected` reports, then waits to be told a new receiver is there
    // (or to stop) and resends the frame it could not send.
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>();
    let sender = thread::spawn(move || {
        let mut rng = Rng::new(seed ^ 0xabcd);
        let max = tx.max_frame();
        let mut buf = vec![0u8; max];
        let mut seq = 0u64;
        if !go_rx.recv().unwrap() {
            return seq;
        }
        loop {
            let len = frame_len(&mut rng, max);
            frame(&mut buf[..len], 0, seq);
            loop {
                match tx.send_timeout(&buf[..len], WATCHDOG) {
                    Ok(()) => break,
                    Err(Error::Disconnected) => {
                        let at = Instant::now();
                        seen_tx.send(Seen { count: seq, at }).unwrap();
                        if !go_rx.recv().unwrap() {
                            return seq;
                        }
                    }
                    Err(e) => panic!("sender at frame {seq}: {e}"),
                }
            }
            seq += 1;
        }
    });
    let mut taken = Taken::default();
    for k in 0..n {
        ack.reset();
        let killed = kill_under_load(&mut rng, "pipe_receiver", &[&d.bus, ack.path()], || {
            go_tx.send(true).unwrap()
        });
        // The sender fills the ring, then must see Disconnected.
        let seen = seen_rx
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("kill {k}: the sender never saw Disconnected ({e})"));
        let (first, count) = ack.words();
        taken.next(
            first,
            count & !INSIDE,
            count & INSIDE != 0,
            &format!("receiver {k}"),
        );
        assert!(
            seen.count >= taken.lo,
            "the sender sent {} frames but {} were taken",
            seen.count,
            taken.lo
        );
        tally.kills += 1;
        tally.checked += count & !INSIDE;
        tally.waits.push(seen.at.saturating_duration_since(killed));
    }
    // The replacement receiver here: it takes up where the last one stopped.
    let mut rx = attach("replacement receiver", || pipe.receiver());
    go_tx.send(true).unwrap();
    let mut count = 0u64;
    let mut first = None;
    while count < 1000 {
        let f = rx.recv_timeout(WATCHDOG).unwrap();
        let (id, seq) = parse(&f);
        assert_eq!(id, 0);
        let first = *first.get_or_insert(seq);
        assert_eq!(seq, first + count, "replacement receiver: hole or repeat");
        count += 1;
    }
    taken.next(first.unwrap(), count, false, "the replacement receiver");
    tally.checked += count;
    drop(rx);
    // Stop the sender: it sees Disconnected once the ring is full.
    seen_rx
        .recv_timeout(WATCHDOG)
        .expect("the sender sees the last receiver go");
    go_tx.send(false).unwrap();
    let _ = within("the sender thread", move || sender.join().unwrap());
    tally.note = format!(
        "wait = SIGKILL to the sender's Disconnected (ring full); {} frames taken by receivers that died before acking them",
        taken.unacked
    );
    tally.report();
}

/// The pipe receivers' successive ranges: frames reported taken end at
/// `lo`; up to `slack` more may have been taken by receivers that died
/// inside a receive, before they acked the frame (at most one each).
#[derive(Default)]
struct Taken {
    lo: u64,
    slack: u64,
    unacked: u64,
}

impl Taken {
    /// The next receiver took and acked `count` frames from `first`, and was
    /// killed `inside` a receive or not.
    fn next(&mut self, first: u64, count: u64, inside: bool, who: &str) {
        if count == 0 {
            self.slack += u64::from(inside);
            return;
        }
        assert!(
            self.lo <= first && first <= self.lo + self.slack,
            "{who} started at frame {first}; frames up to {} were taken and acked, \
             at most {} more taken unacked: {}",
            self.lo,
            self.slack,
            if first < self.lo {
                "duplicates"
            } else {
                "frames lost"
            }
        );
        self.unacked += first - self.lo;
        self.lo = first + count;
        self.slack = u64::from(inside);
    }
}

#[test]
fn pipe_receiver_killed_under_load() {
    run_pipe_receiver_kills(kills(DEFAULT_KILLS));
}
// ---- queue producer ------------------------------------------------------------

/// Victim: puts `(id, 0..)` until killed, a third through zero-copy claims;
/// acks `seq + 1` after each put returned.
fn queue_producer(bus: &str, id: u64, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let q = b.queue("q").unwrap();
    let ack = Ack::open(ack);
    println!("started");
    for seq in 0.. {
        let m = queue_message(id, seq);
        if seq % 3 == 0 {
            let mut c = q.claim(MSG).unwrap();
            c.copy_from_slice(&m);
            c.commit().unwrap();
        } else {
            q.put(&m).unwrap();
        }
        ack.put(seq + 1, 0);
    }
}

fn open_queue(b: &Bus) -> shmbus_client::Queue {
    b.queue_builder("q")
        .slots(SLOTS)
        .slot_size(MSG as u64)
        .open()
        .unwrap()
}

/// A survivor consumer thread: takes messages until a STOP, checking each;
/// reports each marker it takes, with the instant, on `marks`. Returns
/// every `(id, seq)` it took.
fn consumer_thread(
    bus: &str,
    marks: mpsc::Sender<(u64, Instant)>,
) -> thread::JoinHandle<Vec<(u64, u64)>> {
    let q = open_queue(&Bus::connect_to(bus).unwrap());
    thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let (id, seq) = match q.get_with_deadline(Instant::now() + WATCHDOG, parse) {
                Ok(m) => m,
                Err(e) => panic!("survivor consumer after {} messages: {e}", got.len()),
            };
            match id {
                STOP => return got,
                MARK => marks.send((seq, Instant::now())).unwrap(),
                _ => {}
            }
            got.push((id, seq));
        }
    })
}

/// A survivor producer thread: puts `(id, 0..)` until told to stop; returns
/// how many puts returned Ok.
fn producer_thread(bus: &str, id: u64, stop: mpsc::Receiver<()>) -> thread::JoinHandle<u64> {
    let q = open_queue(&Bus::connect_to(bus).unwrap());
    thread::spawn(move || {
        let mut seq = 0;
        while stop.try_recv().is_err() {
            match q.put_timeout(&queue_message(id, seq), WATCHDOG) {
                Ok(()) => seq += 1,
                Err(e) => panic!("survivor producer {id} at {seq}: {e}"),
            }
        }
        seq
    })
}

/// After a kill: puts marker `k` and waits until a survivor takes it; the
/// marker sits behind every cell claimed before it, the dead one's included,
/// so this is when the queue flows again. Returns that instant.
fn marker_through(
    q: &shmbus_client::Queue,
    marks: &mpsc::Receiver<(u64, Instant)>,
    k: u64,
) -> Instant {
    q.put_timeout(&queue_message(MARK, k), WATCHDOG)
        .unwrap_or_else(|e| panic!("marker {k}: {e}"));
    let (got, at) = marks
        .recv_timeout(WATCHDOG)
        .unwrap_or_else(|e| panic!("marker {k} never came out of the queue ({e})"));
    assert_eq!(got, k, "markers out of order");
    at
}

/// Counts each `(id, seq)`; panics on any duplicate.
fn count_once(all: impl IntoIterator<Item = (u64, u64)>) -> HashMap<u64, Vec<u64>> {
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    for k in all {
        *seen.entry(k).or_insert(0) += 1;
    }
    let mut by_id: HashMap<u64, Vec<u64>> = HashMap::new();
    for ((id, seq), n) in seen {
        assert_eq!(n, 1, "message ({id:#x}, {seq}) taken {n} times");
        by_id.entry(id).or_default().push(seq);
    }
    for v in by_id.values_mut() {
        v.sort_unstable();
    }
    by_id
}

fn run_queue_producer_kills(n: usize) {
    let seed = seed("queue producer");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("queue producer", seed);
    let d = Daemon::start_role(DISPATCH, "cm-qp", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let q = open_queue(&b);
    let ack = Scratch::new(&d.bus, "ack");
    let (marks_tx, marks) = mpsc::channel();
    let consumers: Vec<_> = (0..2)
        .map(|_| consumer_thread(&d.bus, marks_tx.clone()))
        .collect();
    let (stop_tx, stop_rx) = mpsc::channel();
    let steady = producer_thread(&d.bus, STEADY, stop_rx);
    let mut acked = Vec::new();
    for k in 0..n as u64 {
        ack.reset();
        let killed = kill_under_load(
            &mut rng,
            "queue_producer",
            &[&d.bus, &k.to_string(), ack.path()],
            || {},
        );
        acked.push(ack.words().0);
        let flowing = marker_through(&q, &marks, k);
        tally.kills += 1;
        tally.waits.push(flowing.saturating_duration_since(killed));
    }
    stop_tx.send(()).unwrap();
    let steady_puts = within("the survivor producer", move || steady.join().unwrap());
    let consumers_n = consumers.len();
    for _ in &consumers {
        q.put_timeout(&queue_message(STOP, 0), WATCHDOG).unwrap();
    }
    let all: Vec<(u64, u64)> = consumers
        .into_iter()
        .flat_map(|c| within("a survivor consumer", move || c.join().unwrap()))
        .collect();
    tally.checked = all.len() as u64;
    // Nobody calls task_done here, so the unfinished count must be exactly
    // the items taken (STOPs included): a put the recovery tombstoned must
    // not count. (Before the queue derived the count from `enqueue_pos` and
    // `finished`, a producer killed between its claim and a separate count
    // increment left the count one short; this check caught it.)
    let expected = all.len() as u64 + consumers_n as u64;
    assert_eq!(
        q.unfinished(),
        expected,
        "unfinished count after {n} producer kills, {expected} items put"
    );
    let mut by_id = count_once(all);
    let steady_got = by_id.remove(&STEADY).unwrap_or_default();
    assert_eq!(
        steady_got,
        (0..steady_puts).collect::<Vec<_>>(),
        "the survivor producer's {steady_puts} messages, each once"
    );
    let marks_got = by_id.remove(&MARK).unwrap_or_default();
    assert_eq!(marks_got, (0..n as u64).collect::<Vec<_>>(), "markers");
    let mut in_flight = 0;
    for (k, &a) in acked.iter().enumerate() {
        let got = by_id.remove(&(k as u64)).unwrap_or_default();
        let c = got.len() as u64;
        assert_eq!(
            got,
            (0..c).collect::<Vec<_>>(),
            "victim {k}: not a prefix (hole)"
        );
        assert!(
            a <= c && c <= a + 1,
            "victim {k}: {a} puts returned Ok, {c} messages taken"
        );
        in_flight += c - a;
    }
    assert!(
        by_id.is_empty(),
        "messages from nowhere: {:?}",
        by_id.keys()
    );
    // A replacement producer: this process; the queue is whole.
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), b"after");
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    tally.note = format!(
        "wait = SIGKILL to the survivor consumer taking a marker put after it; \
         {in_flight} puts committed but not yet acked at the kill; unfinished count exact"
    );
    tally.report();
}

#[test]
fn queue_producer_killed_under_load() {
    run_queue_producer_kills(kills(DEFAULT_KILLS));
}

// ---- queue consumer -------------------------------------------------------------

/// Victim: takes messages until killed, checking each, and appends each
/// `(id, seq)` to its log with one unbuffered write after the get returned;
/// flags [`INSIDE`] in its ack file from just before a get to just after
/// the log write.
fn queue_consumer(bus: &str, log: &str, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let q = b.queue("q").unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let ack = Ack::open(ack);
    let mut buf = Vec::new();
    println!("started");
    for n in 0u64.. {
        ack.put(n | INSIDE, 0);
        let (id, seq) = if n % 2 == 0 {
            q.get_with(parse).unwrap()
        } else {
            q.get_into(&mut buf).unwrap();
            parse(&buf)
        };
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&id.to_le_bytes());
        rec[8..].copy_from_slice(&seq.to_le_bytes());
        f.write_all(&rec).unwrap();
        ack.put(n + 1, 0);
    }
}

fn run_queue_consumer_kills(n: usize) {
    let seed = seed("queue consumer");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("queue consumer", seed);
    let d = Daemon::start_role(DISPATCH, "cm-qc", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let q = open_queue(&b);
    let (marks_tx, marks) = mpsc::channel();
    let consumer = consumer_thread(&d.bus, marks_tx);
    let producers: Vec<_> = (0..2)
        .map(|i| {
            let (stop_tx, stop_rx) = mpsc::channel();
            (stop_tx, producer_thread(&d.bus, STEADY + i, stop_rx))
        })
        .collect();
    let mut logged = Vec::new();
    let ack = Scratch::new(&d.bus, "ack");
    let mut inside = 0u64;
    for k in 0..n as u64 {
        let log = Scratch::new(&d.bus, &format!("log-{k}"));
        std::fs::write(&log.0, b"").unwrap();
        ack.reset();
        let killed = kill_under_load(
            &mut rng,
            "queue_consumer",
            &[&d.bus, log.path(), ack.path()],
            || {},
        );
        inside += u64::from(ack.words().0 & INSIDE != 0);
        let flowing = marker_through(&q, &marks, k);
        tally.kills += 1;
        tally.waits.push(flowing.saturating_duration_since(killed));
        let data = log.bytes();
        assert_eq!(data.len() % 16, 0, "victim {k}: torn log record");
        logged.extend(data.chunks_exact(16).map(|r| {
            (
                u64::from_le_bytes(r[..8].try_into().unwrap()),
                u64::from_le_bytes(r[8..].try_into().unwrap()),
            )
        }));
    }
    let mut puts = Vec::new();
    for (stop, p) in producers {
        stop.send(()).unwrap();
        puts.push(within("a survivor producer", move || p.join().unwrap()));
    }
    q.put_timeout(&queue_message(STOP, 0), WATCHDOG).unwrap();
    let survivor = within("the survivor consumer", move || consumer.join().unwrap());
    tally.checked = (survivor.len() + logged.len()) as u64;
    // Nobody calls task_done, and a get leaves the count alone, so it must
    // be every put that returned Ok: the survivors', the markers, the STOP.
    assert_eq!(
        q.unfinished(),
        puts.iter().sum::<u64>() + n as u64 + 1,
        "unfinished count after {n} consumer kills"
    );
    let mut by_id = count_once(survivor.into_iter().chain(logged));
    let marks_got = by_id.remove(&MARK).unwrap_or_default();
    assert_eq!(marks_got, (0..n as u64).collect::<Vec<_>>(), "markers");
    let mut lost = 0u64;
    for (i, &p) in puts.iter().enumerate() {
        let got = by_id.remove(&(STEADY + i as u64)).unwrap_or_default();
        assert!(
            got.last().is_none_or(|&l| l < p),
            "producer {i}: a message it never put"
        );
        lost += p - got.len() as u64;
    }
    assert!(
        by_id.is_empty(),
        "messages from nowhere: {:?}",
        by_id.keys()
    );
    // A victim killed inside a get (claimed the cell, or took the message
    // but had not logged it) may take that one message with it; one killed
    // between gets holds nothing. Nothing else may go.
    assert!(
        lost <= inside,
        "{lost} messages put and never taken, but only {inside} of {n} consumers were killed inside a get"
    );
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), b"after");
    tally.note = format!(
        "wait = SIGKILL to the survivor consumer taking a marker put after it; \
         {lost} messages went with killed consumers ({inside} killed inside a get, 1 allowed each)"
    );
    tally.report();
}

#[test]
fn queue_consumer_killed_under_load() {
    run_queue_consumer_kills(kills(DEFAULT_KILLS));
}

// ---- value writer ---------------------------------------------------------------

/// Array contents for write `seq` of writer `id`.
fn array_of(id: u64, seq: u64) -> [u64; ALEN] {
    let mut a = [0u64; ALEN];
    a[0] = id;
    a[1] = seq;
    for (i, x) in a[2..ALEN - 1].iter_mut().enumerate() {
        *x = seq
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32)
            ^ id;
    }
    a[ALEN - 1] = array_sum(&a);
    a
}

fn array_sum(a: &[u64]) -> u64 {
    let bytes: Vec<u8> = a[..ALEN - 1].iter().flat_map(|x| x.to_le_bytes()).collect();
    fnv(&bytes)
}

/// Checks an array read: never written (all zero) or a whole write. Returns
/// `(id, seq)`, `None` for never written.
fn check_array(a: &[u64]) -> Option<(u64, u64)> {
    if a.iter().all(|&x| x == 0) {
        return None;
    }
    assert_eq!(a[ALEN - 1], array_sum(a), "torn read: {a:?}");
    Some((a[0], a[1]))
}

/// Victim: writes `(id, 1..)` until killed, alternating `write` and a slow
/// `update` (which holds the writer lock for a while, so kills land inside
/// it); acks `seq` after each returned.
fn value_writer(bus: &str, id: u64, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let arr = b.array::<u64>("a", ALEN).unwrap();
    let ack = Ack::open(ack);
    println!("started");
    for seq in 1.. {
        let v = array_of(id, seq);
        if seq % 2 == 0 {
            arr.write(&v).unwrap();
        } else {
            arr.update(|xs| {
                // Write half, linger, then the rest: a kill in between must
                // never show.
                xs[..ALEN / 2].copy_from_slice(&v[..ALEN / 2]);
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                xs[ALEN / 2..].copy_from_slice(&v[ALEN / 2..]);
            })
            .unwrap();
        }
        ack.put(seq, 0);
    }
}

fn run_value_writer_kills(n: usize) {
    let seed = seed("value writer");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("value writer", seed);
    let d = Daemon::start_role(DISPATCH, "cm-val", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let arr = b.array::<u64>("a", ALEN).unwrap();
    let ack = Scratch::new(&d.bus, "ack");
    // A reader under load the whole time: never a torn read.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let reader = {
        let arr = b.open_array::<u64>("a").unwrap();
        thread::spawn(move || {
            let (mut reads, mut changes, mut last) = (0u64, 0u64, None);
            let mut buf = [0u64; ALEN];
            while stop_rx.try_recv().is_err() {
                for _ in 0..64 {
                    arr.read_into(&mut buf).unwrap();
                    let now = check_array(&buf);
                    if now != last {
                        changes += 1;
                        last = now;
                    }
                    reads += 1;
                }
            }
            (reads, changes)
        })
    };
    let mut prev = None;
    let mut held = 0;
    for k in 0..n as u64 {
        ack.reset();
        let id = k + 1;
        let mut victim = Proc::spawn_role(
            DISPATCH,
            "value_writer",
            &[&d.bus, &id.to_string(), ack.path()],
        );
        victim.expect_line("started");
        thread::sleep(Duration::from_micros(rng.below_eq(MAX_DELAY_US)));
        // Stop it first, so that whether it holds the writer lock at the
        // moment of death can be read, then kill it where it stands.
        victim.signal(Signal::STOP);
        wait_stopped(victim.pid());
        if table_writer(&b).is_some() {
            held += 1;
        }
        victim.signal(Signal::KILL);
        let killed = Instant::now();
        reap(victim, "value writer");
        // Nothing published but whole writes: the last acked or the one after.
        let a = ack.words().0;
        let now = check_array(&arr.read());
        let ok = if a == 0 {
            now == prev || now == Some((id, 1))
        } else {
            now == Some((id, a)) || now == Some((id, a + 1))
        };
        assert!(
            ok,
            "victim {id} acked write {a}, before it {prev:?}; array holds {now:?}"
        );
        // The next writer: blocks on the lock if the victim died in it, until
        // the daemon clears it.
        let w = arr.clone();
        within("the next write", move || w.write(&array_of(0, id)).unwrap());
        let wrote = Instant::now();
        assert_eq!(
            check_array(&arr.read()),
            Some((0, id)),
            "the next write did not land"
        );
        prev = Some((0, id));
        tally.kills += 1;
        tally.checked += a;
        tally.waits.push(wrote.saturating_duration_since(killed));
    }
    stop_tx.send(()).unwrap();
    let (reads, changes) = within("the reader", move || reader.join().unwrap());
    assert!(changes > 1, "the reader never saw a write");
    tally.note = format!(
        "checked = victims' acked writes; wait = SIGKILL to the next write returning; {held} victims died holding the writer lock; \
         {reads} reads by a reader under load, none torn, {changes} changes seen"
    );
    tally.report();
}

/// Waits until `pid` is stopped (state `T` in `/proc/PID/stat`).
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if state == Some("T") {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} never stopped");
        thread::sleep(Duration::from_micros(50));
    }
}

/// Who holds the writer lock of array `a`, per the segment.
fn table_writer(b: &Bus) -> Option<shmbus_client::Holder> {
    b.channels()
        .into_iter()
        .find(|c| c.name == "a")
        .and_then(|c| match c.details {
            ChannelDetails::Table(t) => t.writer,
            _ => None,
        })
}

#[test]
fn value_writer_killed_under_load() {
    run_value_writer_kills(kills(DEFAULT_KILLS));
}

// ---- the long run ----------------------------------------------------------------

/// Every role with [`LONG_KILLS`] kills (or `SHMBUS_CRASH_KILLS`); not in CI.
#[test]
#[ignore = "long run: cargo test -p shmbus-client --release --test crash_matrix -- --ignored --nocapture"]
fn long_crash_matrix() {
    let n = kills(LONG_KILLS);
    run_pipe_sender_kills(n);
    run_pipe_receiver_kills(n);
    run_queue_producer_kills(n);
    run_queue_consumer_kills(n);
    run_value_writer_kills(n);
    topic::run_topic_publisher_kills(n);
    topic::run_topic_subscriber_kills(n);
}

#[test]
fn topic_publisher_killed_under_load() {
    topic::run_topic_publisher_kills(kills(DEFAULT_KILLS));
}

#[test]
fn topic_subscriber_killed_under_load() {
    topic::run_topic_subscriber_kills(kills(DEFAULT_KILLS));
}
