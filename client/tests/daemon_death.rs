//! Clients that never block must learn of the daemon's death too, and must
//! never mistake it for a clean end of stream.
//!
//! Blocked clients notice a dead daemon in their wait loop (see `e2e.rs`,
//! `blocked_clients_see_bus_closed_*`). These tests drive clients at full
//! speed with the `try_` calls only, so nothing but the per-connection
//! liveness watcher can tell them; the daemon is SIGKILLed mid-stream and
//! every client must stop with `BusClosed` (never `Disconnected`, which a
//! receiver would take for end of file). The delay from the kill to each
//! report is printed (median and max over the rounds), never asserted: the
//! watchdog catches a client that never notices.
//!
//! `SHMBUS_DEATH_ROUNDS` sets the number of kills (default 5; the figure in
//! the README comes from 20).

use shmbus_test_support as support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::Error;
use support::{within, Daemon};

/// Long enough never to fire on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(60);

fn rounds() -> usize {
    std::env::var("SHMBUS_DEATH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// What one streaming client saw: the error that stopped it, when, and how
/// many operations succeeded before.
type Outcome = (Error, Instant, u64);

fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

fn report(what: &str, delays: Vec<Duration>) {
    let n = delays.len();
    let (med, max) = median_max(delays);
    eprintln!(
        "{what}: noticed the SIGKILLed daemon {:.2} ms after the kill (median), {:.2} ms max, over {n} kills",
        med.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

/// Runs `body` (which owns its handle, on its own connection) in a thread until it returns an error
/// other than the ones `busy` says mean "try again".
fn streamer<F>(start: Arc<Barrier>, mut body: F) -> std::thread::JoinHandle<Outcome>
where
    F: FnMut() -> Result<bool, Error> + Send + 'static,
{
    std::thread::spawn(move || {
        start.wait();
        let mut ok = 0u64;
        loop {
            match body() {
                Ok(true) => ok += 1,
                Ok(false) => std::hint::spin_loop(),
                Err(e) => return (e, Instant::now(), ok),
            }
        }
    })
}

#[test]
fn streaming_pipe_ends_see_bus_closed_not_end_of_file() {
    let (mut tx_delays, mut rx_delays) = (Vec::new(), Vec::new());
    for round in 0..rounds() {
        let mut d = Daemon::start("death-pipe", &["--pipe", "p:65536"]);
        let start = Arc::new(Barrier::new(3));
        let mut tx = d.connect().pipe("p").unwrap().sender().unwrap();
        let tx_thread = streamer(start.clone(), move || match tx.try_send(&[7u8; 64]) {
            Ok(()) => Ok(true),
            Err(Error::Full) => Ok(false),
            Err(e) => Err(e),
        });
        let mut rx = d.connect().pipe("p").unwrap().receiver().unwrap();
        let rx_thread = streamer(start.clone(), move || match rx.try_recv_with(|f| f.len()) {
            Ok(_) => Ok(true),
            Err(Error::Empty) => Ok(false),
            Err(e) => Err(e),
        });
        start.wait();
        // Let the stream run at full speed first.
        std::thread::sleep(Duration::from_millis(100));
        d.signal(Signal::KILL);
        let killed = Instant::now();
        let (tx_err, tx_at, sent) = within(LONG, "the streaming sender", move || {
            tx_thread.join().unwrap()
        });
        let (rx_err, rx_at, got) = within(LONG, "the streaming receiver", move || {
            rx_thread.join().unwrap()
        });
        assert!(
            matches!(tx_err, Error::BusClosed),
            "round {round}: the sender reported {tx_err:?} ({tx_err}) after {sent} frames"
        );
        assert!(
            matches!(rx_err, Error::BusClosed),
            "round {round}: the receiver reported {rx_err:?} ({rx_err}) after {got} frames"
        );
        assert!(sent > 0 && got > 0, "round {round}: nothing streamed");
        tx_delays.push(tx_at.saturating_duration_since(killed));
        rx_delays.push(rx_at.saturating_duration_since(killed));
        d.wait();
    }
    report("pipe sender (try_send)", tx_delays);
    report("pipe receiver (try_recv_with)", rx_delays);
}

#[test]
fn streaming_queue_and_value_clients_see_bus_closed() {
    let mut d = Daemon::start("death-queue", &["--queue", "q:1024:64", "--value", "v:u64"]);
    let start = Arc::new(Barrier::new(4));
    let q = d.connect().queue("q").unwrap();
    let producer = streamer(start.clone(), move || match q.try_put(&[1u8; 64]) {
        Ok(()) => Ok(true),
        Err(Error::Full) => Ok(false),
        Err(e) => Err(e),
    });
    let q = d.connect().queue("q").unwrap();
    let consumer = streamer(start.clone(), move || {
        match q.try_get_with(|item| item.len()) {
            Ok(_) => Ok(true),
            Err(Error::Empty) => Ok(false),
            Err(e) => Err(e),
        }
    });
    let v = d.connect().value::<u64>("v").unwrap();
    let writer = streamer(start.clone(), move || v.fetch_add(1).map(|_| true));
    start.wait();
    std::thread::sleep(Duration::from_millis(100));
    d.signal(Signal::KILL);
    let killed = Instant::now();
    for (what, t) in [
        ("queue producer", producer),
        ("queue consumer", consumer),
        ("value writer", writer),
    ] {
        let (e, at, ops) = within(LONG, what, move || t.join().unwrap());
        assert!(
            matches!(e, Error::BusClosed),
            "{what}: {e:?} ({e}) after {ops} operations"
        );
        report(what, vec![at.saturating_duration_since(killed)]);
    }
    d.wait();
}
