//! A pool of worker processes fed by one queue, as Python's
//! `multiprocessing.JoinableQueue`: this process puts jobs on the queue
//! `example-jobs`, starts WORKERS copies of itself that take jobs, add each
//! job's square to the shared value `example-sum` and mark the job done, and
//! `join`s the queue until every job is done.
//!
//! ```sh
//! cargo run --release -p shmbus-daemon                        # terminal 1 (bus "shmbus")
//! cargo run -p shmbus-client --example worker_pool            # terminal 2
//! cargo run -p shmbus-client --example worker_pool -- 1000 4  # 1000 jobs, 4 workers
//! ```
//!
//! Uses the bus in `$SHMBUS_BUS`, else `shmbus`; the workers inherit it.

use std::process::{Child, Command};
use std::time::Duration;

use shmbus_client::{Bus, Error, Queue, Value};

const JOBS: &str = "example-jobs";
const SUM: &str = "example-sum";
/// Set in a worker's environment: this process is a worker.
const ROLE: &str = "SHMBUS_EXAMPLE_ROLE";

fn main() -> Result<(), Error> {
    // Without a daemon this returns `DaemonNotRunning`, and `main` prints
    // "Error: no shmbusd serves bus shmbus: start it with ...".
    let bus = Bus::connect()?;
    let jobs = bus.queue(JOBS)?; // 1024 slots of 256 bytes if absent
    let sum = bus.value::<u64>(SUM)?;
    if std::env::var_os(ROLE).is_some() {
        return worker(&jobs, &sum);
    }

    let mut args = std::env::args().skip(1).map(|a| {
        a.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("usage: worker_pool [JOBS [WORKERS]]  (numbers, not {a:?})");
            std::process::exit(2)
        })
    });
    let n_jobs = args.next().unwrap_or(100);
    let n_workers = args.next().unwrap_or(3).max(1);
    forget_earlier_run(&jobs)?;
    sum.store(0)?;

    let exe = std::env::current_exe().expect("path of this program");
    let mut workers: Vec<Child> = (0..n_workers)
        .map(|_| Command::new(&exe).env(ROLE, "worker").spawn())
        .collect::<std::io::Result<_>>()
        .expect("start a worker process");
    for job in 1..=n_jobs {
        jobs.put(&job.to_le_bytes())?; // waits while the queue is full
    }
    // Sleeps until every job put has been marked done by some worker.
    jobs.join()?;
    let want: u64 = (1..=n_jobs).map(|j| j * j).sum();
    let got = sum.load();
    println!("{n_jobs} jobs done by {n_workers} worker processes: sum of squares {got}");

    // One empty item per worker tells it to stop.
    for _ in &workers {
        jobs.put(b"")?;
    }
    let mut failed = false;
    for w in &mut workers {
        let status = w.wait().expect("wait for a worker");
        failed |= !status.success();
    }
    if failed || got != want {
        eprintln!("worker_pool: expected sum {want}, got {got}; workers failed: {failed}");
        std::process::exit(1);
    }
    Ok(())
}

/// A worker: takes jobs until it gets an empty item.
fn worker(jobs: &Queue, sum: &Value<u64>) -> Result<(), Error> {
    let mut done = 0u64;
    loop {
        // Reads the item in place; sleeps while the queue is empty.
        let job = jobs.get_with(|item| <[u8; 8]>::try_from(item).map(u64::from_le_bytes))?;
        let Ok(n) = job else {
            jobs.task_done()?;
            break;
        };
        std::thread::sleep(Duration::from_millis(1)); // the "work"
        sum.fetch_add(n * n)?; // atomic across processes, like `with v.get_lock()`
        jobs.task_done()?;
        done += 1;
    }
    println!("worker {}: {done} jobs", std::process::id());
    Ok(())
}

/// Takes out what an interrupted earlier run left in the queue (items, and
/// jobs its workers took but never marked done), so that `join` waits only
/// for this run's jobs.
fn forget_earlier_run(jobs: &Queue) -> Result<(), Error> {
    while jobs.try_get().is_ok() {
        jobs.task_done()?;
    }
    let stale = jobs.unfinished();
    if stale > 0 {
        println!("forgetting {stale} unfinished jobs of an earlier run");
        for _ in 0..stale {
            jobs.task_done()?;
        }
    }
    Ok(())
}
