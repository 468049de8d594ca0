//! Bridges killed with SIGKILL and restarted mid-stream, and a link cut
//! (the importing bridge stopped past zenoh's lease, so that the session
//! closes and reconnects): the flow resumes, and the tests print what was
//! lost or duplicated, within the bounds the guarantee table states.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{check_frame, daemon, frame, free_port, wait_for, Bridge};
use rustix::process::Signal;
use shmbus_client::{Bus, Error};
use shmbus_test_support as support;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        other => panic!("unknown role {other}"),
    }
}

/// The pipe window the tests give the exporter.
const WINDOW: u64 = 64;
/// Marks the end of a stream.
const END: u64 = u64::MAX;

/// Sends frames 0, 1, ... on pipe `p` of `bus` until `stop`, then [`END`];
/// waits out a missing receiver (the exporting bridge killed).
fn stream_sender(bus: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let bus = Bus::connect_to(&bus).unwrap();
        let mut tx = bus.pipe("p").unwrap().sender().unwrap();
        let mut i = 0;
        loop {
            let n = if stop.load(Ordering::Relaxed) { END } else { i };
            match tx.send_timeout(&frame(n, 64), Duration::from_millis(100)) {
                Ok(()) if n == END => return i,
                Ok(()) => i += 1,
                Err(Error::Timeout | Error::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
}

/// Receives frames on pipe `p` of `bus` until [`END`]; counts them in
/// `count`; waits out a missing sender (the importing bridge killed).
fn stream_receiver(bus: String, count: Arc<AtomicU64>) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let bus = Bus::connect_to(&bus).unwrap();
        let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
        let mut got = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(f) => {
                    let n = check_frame(&f);
                    if n == END {
                        return got;
                    }
                    got.push(n);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Err(Error::Timeout | Error::Disconnected) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
}

/// Lost and duplicated frames of a stream of `sent` frames received as
/// `got`; fails if a new frame arrived before an older one.
fn tally(sent: u64, got: &[u64]) -> (u64, u64) {
    let mut seen = HashSet::new();
    let mut max = None;
    let mut dup = 0;
    for &n in got {
        if !seen.insert(n) {
            dup += 1;
            continue;
        }
        assert!(
            max.is_none_or(|m| n > m),
            "frame {n} after {max:?}: reordered"
        );
        max = Some(n);
    }
    ((0..sent).filter(|n| !seen.contains(n)).count() as u64, dup)
}

/// Something done to the two bridges (exporting, importing) mid-stream.
type Fault<'a> = &'a dyn Fn(&mut Bridge, &mut Bridge);

/// Runs a stream from A to B through two bridges, calling `fault` with the
/// bridges once `at` frames arrived, for each `at` in `faults`; returns
/// (sent, lost, duplicated).
fn stream_with_faults(tag: &str, faults: &[(u64, Fault<'_>)]) -> (u64, u64, u64) {
    let (a, b) = (daemon(&format!("{tag}-a")), daemon(&format!("{tag}-b")));
    let (bus_a, bus_b) = (a.connect(), b.connect());
    bus_a.pipe_with_capacity("p", 1 << 14).unwrap();
    bus_b.pipe_with_capacity("p", 1 << 14).unwrap();
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    let window = WINDOW.to_string();
    let mut ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "p", "--window", &window,
    ]);
    let mut bb = Bridge::start(&["--bus", &b.bus, "--connect", &listen, "--import", "p"]);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let rx = stream_receiver(b.bus.clone(), Arc::clone(&count));
    let tx = stream_sender(a.bus.clone(), Arc::clone(&stop));
    for (at, fault) in faults {
        wait_for("the stream flows", || count.load(Ordering::Relaxed) >= *at);
        fault(&mut ba, &mut bb);
    }
    let resumed = count.load(Ordering::Relaxed) + 2000;
    wait_for("the stream resumes", || {
        count.load(Ordering::Relaxed) >= resumed
    });
    stop.store(true, Ordering::Relaxed);
    let sent = tx.join().unwrap();
    let got = rx.join().unwrap();
    let (lost, dup) = tally(sent, &got);
    drop((bus_a, bus_b));
    (sent, lost, dup)
}

#[test]
fn each_bridge_killed_and_restarted_mid_stream() {
    let kill_importer = |_: &mut Bridge, b: &mut Bridge| b.restart();
    let kill_exporter = |a: &mut Bridge, _: &mut Bridge| a.restart();
    let (sent, lost, dup) =
        stream_with_faults("brk", &[(2000, &kill_importer), (6000, &kill_exporter)]);
    println!(
        "SIGKILL + restart of the importing, then the exporting bridge: {sent} frames sent, {lost} lost, {dup} duplicated (window {WINDOW})"
    );
    // The importer's death can duplicate what it delivered unacknowledged;
    // the exporter's loses what it held unacknowledged: each at most a
    // window.
    assert!(lost <= WINDOW, "{lost} frames lost");
    assert!(dup <= WINDOW, "{dup} frames duplicated");
}

#[test]
fn a_link_cut_past_the_lease_loses_and_duplicates_nothing() {
    let cut = |_: &mut Bridge, b: &mut Bridge| {
        // Stopped longer than zenoh's lease (10 s): the exporter's side
        // closes the session; once it runs again the importer finds its
        // link dead and reconnects.
        b.signal(Signal::STOP);
        std::thread::sleep(Duration::from_secs(12));
        b.signal(Signal::CONT);
    };
    let (sent, lost, dup) = stream_with_faults("brc", &[(2000, &cut)]);
    println!("link cut for 12 s: {sent} frames sent, {lost} lost, {dup} duplicated");
    assert_eq!((lost, dup), (0, 0), "lost, duplicated");
}

#[test]
fn queue_items_in_flight_when_bridges_die() {
    let (a, b) = (daemon("brkq-a"), daemon("brkq-b"));
    let bus_a = a.connect();
    let q = Arc::new(
        bus_a
            .queue_builder("q")
            .slots(256)
            .slot_size(64)
            .open()
            .unwrap(),
    );
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    let mut ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "q", "--stats", "0.5",
    ]);
    let mut bb = Bridge::start(&["--bus", &b.bus, "--connect", &listen, "--import", "q"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (q2, stop2) = (Arc::clone(&q), Arc::clone(&stop));
    // Every item goes through the bridge: B has the only consumer.
    let producer = std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            q2.put(format!("{i}").as_bytes()).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_micros(300));
        }
        q2.put(b"end").unwrap();
        i
    });
    let got = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (g2, bus_b) = (Arc::clone(&got), b.bus.clone());
    let consumer = std::thread::spawn(move || {
        let bus = Bus::connect_to(&bus_b).unwrap();
        let mut q = None;
        wait_for("the queue on B", || {
            q = bus.open_queue("q").ok();
            q.is_some()
        });
        let q = q.unwrap();
        loop {
            match q.get_timeout(Duration::from_millis(100)) {
                Ok(item) if item == b"end" => return,
                Ok(item) => g2
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(item).unwrap().parse().unwrap()),
                Err(Error::Timeout) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    let n = |got: &Arc<Mutex<Vec<u64>>>| got.lock().unwrap().len() as u64;
    wait_for("items flow", || n(&got) >= 1000);
    bb.restart();
    wait_for("items flow again", || n(&got) >= 2000);
    // The item in flight at the importer's death goes back after the
    // lease; the exporter must live that long to put it back.
    std::thread::sleep(shmbus_bridge::queue::LEASE + Duration::from_secs(1));
    ba.restart();
    wait_for("items flow after the exporter's restart", || {
        n(&got) >= 3000
    });
    // Longer than the lease, so that an item in flight at the importer's
    // death is back in A's queue before "end".
    std::thread::sleep(shmbus_bridge::queue::LEASE + Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let put = producer.join().unwrap();
    consumer.join().unwrap();
    let got = got.lock().unwrap();
    let unique: HashSet<u64> = got.iter().copied().collect();
    let lost = put - unique.len() as u64;
    let dup = got.len() as u64 - unique.len() as u64;
    let out = ba.stop();
    println!(
        "queue, importer then exporter killed: {put} items put, {lost} lost, {dup} taken twice; exporter after restart: {}",
        out.lines().rfind(|l| l.starts_with("stats")).unwrap_or("")
    );
    // One importer: at most one item in flight at each death.
    assert!(lost <= 1, "{lost} items lost");
    assert!(dup <= 1, "{dup} items taken twice");
}
