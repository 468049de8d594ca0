//! A shared counter and a shared array, as Python's `multiprocessing.Value`
//! and `Array`: WORKERS copies of this program each add 1 to the value
//! `example-hits` ROUNDS times and count their own adds in their element of
//! the array `example-per-worker`, while this process reads both without a
//! lock and prints them.
//!
//! ```sh
//! cargo run --release -p shmbus-daemon                    # terminal 1 (bus "shmbus")
//! cargo run -p shmbus-client --example counter            # terminal 2
//! cargo run -p shmbus-client --example counter -- 100000  # 100000 rounds per worker
//! ```
//!
//! Uses the bus in `$SHMBUS_BUS`, else `shmbus`; the workers inherit it.

use std::process::{Child, Command};
use std::time::Duration;

use shmbus_client::{Array, Bus, Error, Value};

const HITS: &str = "example-hits";
const PER_WORKER: &str = "example-per-worker";
/// Worker processes; also the array's length.
const WORKERS: usize = 4;
/// Set in a worker's environment: its index in the array.
const ROLE: &str = "SHMBUS_EXAMPLE_WORKER";

fn main() -> Result<(), Error> {
    let rounds = match std::env::args().nth(1) {
        None => 10_000,
        Some(s) => s.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("usage: counter [ROUNDS]  (a number, not {s:?})");
            std::process::exit(2)
        }),
    };
    // Without a daemon this returns `DaemonNotRunning`, and `main` prints
    // "Error: no shmbusd serves bus shmbus: start it with ...".
    let bus = Bus::connect()?;
    let hits = bus.value::<u64>(HITS)?; // created as 0 if absent
    let per = bus.array::<u64>(PER_WORKER, WORKERS)?; // all 0 if absent
    if let Some(i) = std::env::var(ROLE)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        assert!(i < WORKERS, "{ROLE}={i} is not below {WORKERS}");
        return worker(i, rounds, &hits, &per);
    }

    hits.store(0)?;
    per.write(&[0; WORKERS])?;
    let exe = std::env::current_exe().expect("path of this program");
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|i| {
            Command::new(&exe)
                .arg(rounds.to_string())
                .env(ROLE, i.to_string())
                .spawn()
        })
        .collect::<std::io::Result<_>>()
        .expect("start a worker process");

    // Watch while they run: lock-free reads, never torn, never blocking the
    // writers. `wait_changed` sleeps until the next write (or the timeout).
    let mut seen = hits.version();
    let mut failed = false;
    while !workers.is_empty() {
        match hits.wait_changed_timeout(seen, Duration::from_millis(100)) {
            Ok(v) => seen = v,
            Err(Error::Timeout) => {}
            Err(e) => return Err(e),
        }
        println!("hits {:>8}  per worker {:?}", hits.load(), per.read());
        std::thread::sleep(Duration::from_millis(100));
        workers.retain_mut(|w| match w.try_wait().expect("wait for a worker") {
            Some(status) => {
                failed |= !status.success();
                false
            }
            None => true,
        });
    }

    let want = rounds * WORKERS as u64;
    let (got, counts) = (hits.load(), per.read());
    println!("hits {got} = {WORKERS} workers x {rounds} rounds; per worker {counts:?}");
    if failed || got != want || counts.iter().sum::<u64>() != want {
        eprintln!("counter: expected {want} hits in all, got {got} and {counts:?}");
        std::process::exit(1);
    }
    Ok(())
}

/// A worker: `rounds` atomic adds to the value, each counted in element `i`.
fn worker(i: usize, rounds: u64, hits: &Value<u64>, per: &Array<u64>) -> Result<(), Error> {
    for _ in 0..rounds {
        hits.fetch_add(1)?; // `with v.get_lock(): v.value += 1`
        per.update(|xs| xs[i] += 1)?; // read-modify-write of the whole array
    }
    Ok(())
}
