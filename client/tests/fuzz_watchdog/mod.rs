//! The hostile fuzz child's watchdog (see `client/tests/hostile.rs`): one call at a
//! time is marked running with [`Op`]; a thread aborts the process, naming the
//! call and the case's seed, when the call has run or slept for over its
//! limit.
//!
//! # Load does not count
//! The limit is on the time the calling thread spent on a CPU or asleep, not
//! on the time it spent runnable and waiting for a CPU: the kernel keeps both
//! per thread (`/proc/self/task/<tid>/schedstat`: time on a CPU, time waiting
//! on a run queue). A call that loops or sleeps for good still passes the
//! limit, but on a busy 2-core machine a call that needs 50 ms of CPU may
//! take seconds of wall time, and that is the machine's doing, not a hang
//! (issue #10: a `try_put` that burned 2^20 steps, 50 ms on an idle machine,
//! was reported as a 10 s hang under a load average of 5). A call that waits
//! over [`WALL_FACTOR`] times its limit on the wall clock is reported all the
//! same, and so is every call where the kernel gives no `schedstat`.
//!
//! Every report and every traced call (`SHMBUS_FUZZ_TRACE`) gives the three
//! figures, so a replay on an idle machine shows a costly call by its CPU
//! time even when it no longer takes long on the wall clock.
#![allow(dead_code)]

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shmbus::sync::{AtomicU64, Ordering};

/// A watched call may take this many times its limit on the wall clock,
/// waiting for a CPU included, before it is reported anyway.
pub const WALL_FACTOR: u32 = 6;

/// Seed of the running case, for reports.
pub static CASE_SEED: AtomicU64 = AtomicU64::new(0);

/// The call being watched.
struct Running {
    name: &'static str,
    limit: Duration,
    started: Instant,
    tid: Option<u32>,
    base: Option<Sched>,
    /// The calling thread's CPU clock at the start (exact, unlike the
    /// scheduler statistics, which the kernel updates at ticks and switches).
    cpu0: Duration,
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// A thread's scheduler times so far.
#[derive(Clone, Copy, Debug)]
pub struct Sched {
    /// On a CPU.
    pub cpu: Duration,
    /// Runnable, waiting on a run queue.
    pub waited: Duration,
}

/// The calling thread's id (`/proc/thread-self` is `<pid>/task/<tid>`).
pub fn gettid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Thread `tid`'s scheduler times, if the kernel keeps them.
pub fn sched(tid: u32) -> Option<Sched> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut f = s.split_whitespace().map(str::parse::<u64>);
    let cpu = f.next()?.ok()?;
    let waited = f.next()?.ok()?;
    Some(Sched {
        cpu: Duration::from_nanos(cpu),
        waited: Duration::from_nanos(waited),
    })
}

/// What one call cost: wall time, and if known the time on a CPU and the
/// time spent waiting for one.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Wall-clock time.
    pub wall: Duration,
    /// Scheduler times during the call.
    pub sched: Option<Sched>,
}

impl Usage {
    /// Time that counts against the limit: the wall time less the time spent
    /// waiting for a CPU.
    pub fn counted(&self) -> Duration {
        self.wall
            .saturating_sub(self.sched.map_or(Duration::ZERO, |s| s.waited))
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sched {
            Some(s) => write!(
                f,
                "{:.1?} wall, {:.1?} on a CPU, {:.1?} waiting for one",
                self.wall, s.cpu, s.waited
            ),
            None => write!(f, "{:.1?} wall (no schedstat)", self.wall),
        }
    }
}

fn usage(r: &Running) -> Usage {
    let wall = r.started.elapsed();
    let sched = match (r.tid.and_then(sched), r.base) {
        (Some(now), Some(base)) => Some(Sched {
            cpu: now.cpu.saturating_sub(base.cpu),
            waited: now.waited.saturating_sub(base.waited),
        }),
        _ => None,
    };
    Usage { wall, sched }
}

/// Marks one call as running on this thread until dropped (or [`Op::end`]).
pub struct Op(());

impl Op {
    /// Starts watching `name`, which may run or sleep for `limit`.
    pub fn begin(name: &'static str, limit: Duration) -> Self {
        let tid = gettid();
        let base = tid.and_then(sched);
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
            name,
            limit,
            started: Instant::now(),
            tid,
            base,
            cpu0: thread_cpu(),
        });
        Op(())
    }

    /// Stops watching; returns what the call cost (its time on a CPU from
    /// the thread's CPU clock, so exact).
    pub fn end(self) -> Option<Usage> {
        let cpu = thread_cpu();
        let r = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let mut u = usage(&r);
        if let Some(s) = u.sched.as_mut() {
            s.cpu = cpu.saturating_sub(r.cpu0);
        }
        Some(u)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Starts the watchdog thread: it aborts the process when the running call
/// passes its limit (see the module docs), printing the call, the case's seed
/// and the call's [`Usage`] on both stdout (for the parent) and stderr.
pub fn start() {
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_millis(100));
        let guard = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = guard.as_ref() else { continue };
        let u = usage(r);
        let wall_cap = r.limit * WALL_FACTOR;
        if u.counted() <= r.limit && u.wall <= wall_cap {
            continue;
        }
        let seed = CASE_SEED.load(Ordering::SeqCst);
        let why = if u.counted() > r.limit {
            format!("ran over {:?} not counting waits for a CPU", r.limit)
        } else {
            format!("took over {wall_cap:?} of wall time")
        };
        let msg = format!(
            "HANG: `{}` {why} in the case with seed {seed:#x} ({u}); replay with \
             SHMBUS_FUZZ_TRACE=1 SHMBUS_FUZZ_SEED={seed:#x}",
            r.name
        );
        eprintln!("{msg}");
        println!("{msg}");
        let _ = std::io::stdout().flush();
        std::process::abort();
    });
}

/// Reports a failed check of the running case and exits.
pub fn fail(msg: String) -> ! {
    let seed = CASE_SEED.load(Ordering::SeqCst);
    eprintln!("FAIL in the case with seed {seed:#x}: {msg}");
    println!("FAIL seed {seed:#x}: {msg}");
    let _ = std::io::stdout().flush();
    std::process::exit(3);
}
