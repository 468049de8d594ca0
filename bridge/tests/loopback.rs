//! Two daemons (two buses) and two bridges over loopback TCP: pipes and
//! topics arrive in order and push back, values reach late bridges, queue items are taken
//! exactly once across both buses.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{check_frame, daemon, frame, free_port, stat, wait_for, Bridge};
use shmbus_client::{ChannelDetails, ElemType, Error};
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

/// Bytes waiting in pipe `name` of `bus`.
fn waiting(bus: &shmbus_client::Bus, name: &str) -> u64 {
    bus.channels()
        .into_iter()
        .find(|c| c.name == name)
        .and_then(|c| match c.details {
            ChannelDetails::Pipe(p) => Some(p.waiting),
            _ => None,
        })
        .unwrap_or(0)
}

#[test]
fn pipe_frames_arrive_in_order_and_a_full_pipe_slows_the_sender() {
    let (a, b) = (daemon("brp-a"), daemon("brp-b"));
    let (bus_a, bus_b) = (a.connect(), b.connect());
    // Small rings on both sides, so that backpressure shows soon.
    let cap = 1 << 14;
    bus_a.pipe_with_capacity("p", cap).unwrap();
    bus_b.pipe_with_capacity("p", cap).unwrap();
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "p", "--window", "16", "--stats", "0.2",
    ]);
    let bb = Bridge::start(&[
        "--bus",
        &b.bus,
        "--connect",
        &listen,
        "--import",
        "p",
        "--stats",
        "0.2",
    ]);
    const N: u64 = 3000;
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&sent);
    let bus = a.bus.clone();
    let sender = std::thread::spawn(move || {
        let bus = shmbus_client::Bus::connect_to(&bus).unwrap();
        let mut tx = bus.pipe("p").unwrap().sender().unwrap();
        for i in 0..N {
            tx.send(&frame(i, 8 + (i as usize * 7) % 600)).unwrap();
            s2.store(i + 1, Ordering::Relaxed);
        }
    });
    // Nobody reads on B: its ring fills, then the exporter's window, then
    // A's ring, and the sender stops.
    wait_for("B's pipe fills", || waiting(&bus_b, "p") > cap / 2);
    wait_for("A's pipe fills", || waiting(&bus_a, "p") > cap / 2);
    std::thread::sleep(Duration::from_millis(500));
    let before = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    let after = sent.load(Ordering::Relaxed);
    assert!(
        before == after && after < N,
        "the sender went on while B's pipe was full: {before} then {after} of {N}"
    );
    let mut rx = bus_b.pipe("p").unwrap().receiver().unwrap();
    for want in 0..N {
        let got = rx.recv_timeout(support::WATCHDOG).expect("a frame from B");
        assert_eq!(check_frame(&got), want, "out of order or lost");
    }
    sender.join().unwrap();
    assert!(matches!(rx.try_recv(), Err(Error::Empty)), "an extra frame");
    let (mut ba, mut bb) = (ba, bb);
    ba.expect_line(&format!("p forwarded={N} in_flight=0"));
    bb.expect_line(&format!("p forwarded={N} in_flight=0"));
    let (oa, ob) = (ba.stop(), bb.stop());
    assert_eq!(stat(&oa, "p", "forwarded"), N, "{oa}");
    assert_eq!(stat(&ob, "p", "forwarded"), N, "{ob}");
    println!("sender stalled at {before} of {N} frames while B was full");
}

/// The topic `name` of `bus`, if it is one.
fn topic_info(bus: &shmbus_client::Bus, name: &str) -> Option<shmbus_client::TopicInfo> {
    bus.channels()
        .into_iter()
        .find(|c| c.name == name && !c.removed)
        .and_then(|c| match c.details {
            ChannelDetails::Topic(t) => Some(t),
            _ => None,
        })
}

#[test]
fn topic_messages_reach_two_subscribers_on_b_in_order_and_a_full_topic_slows_the_publisher() {
    let (a, b) = (daemon("brt-a"), daemon("brt-b"));
    let (bus_a, bus_b) = (a.connect(), b.connect());
    // Small lossless ring on A; B learns its parameters from the exporter.
    let slots = 16;
    let slot_size = 256;
    let topic_a = bus_a
        .topic_builder("t")
        .slots(slots)
        .slot_size(slot_size)
        .max_subscribers(8)
        .open()
        .unwrap();
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "t", "--window", "16", "--stats", "0.2",
    ]);
    let bb = Bridge::start(&[
        "--bus",
        &b.bus,
        "--connect",
        &listen,
        "--import",
        "t",
        "--stats",
        "0.2",
    ]);
    wait_for("the topic on B", || topic_info(&bus_b, "t").is_some());
    let info_b = topic_info(&bus_b, "t").unwrap();
    assert_eq!(
        (
            info_b.slots,
            info_b.slot_size,
            info_b.lossy,
            info_b.max_subscribers
        ),
        (slots, slot_size, false, 8),
        "B's topic was not made like A's"
    );
    let subs: Vec<_> = (0..2)
        .map(|_| bus_b.open_topic("t").unwrap().subscribe().unwrap())
        .collect();
    // Published before the exporter joins A's topic would not be carried.
    wait_for("the exporter subscribed on A", || {
        topic_info(&bus_a, "t").is_some_and(|t| t.subscribers >= 1)
    });
    const N: u64 = 2000;
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&sent);
    let publisher = topic_a.publisher();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            publisher
                .publish(&frame(i, 8 + (i as usize * 7) % (slot_size as usize - 8)))
                .unwrap();
            s2.store(i + 1, Ordering::Relaxed);
        }
    });
    // Nobody reads on B: its topic fills, then the exporter's window, then
    // A's topic, and the publisher stops.
    wait_for("B's topic fills", || {
        topic_info(&bus_b, "t").is_some_and(|t| t.max_lag >= slots)
    });
    wait_for("A's topic fills", || {
        topic_info(&bus_a, "t").is_some_and(|t| t.max_lag >= slots)
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    let after = sent.load(Ordering::Relaxed);
    assert!(
        before == after && after < N,
        "the publisher went on while B's topic was full: {before} then {after} of {N}"
    );
    let readers: Vec<_> = subs
        .into_iter()
        .map(|sub| {
            std::thread::spawn(move || {
                for want in 0..N {
                    let got = sub.recv_timeout(support::WATCHDOG).expect("a message on B");
                    assert_eq!(check_frame(&got), want, "out of order or lost");
                }
                assert!(
                    matches!(sub.try_recv(), Err(Error::Empty)),
                    "an extra message"
                );
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    sender.join().unwrap();
    let (mut ba, mut bb) = (ba, bb);
    ba.expect_line(&format!("t forwarded={N} in_flight=0"));
    bb.expect_line(&format!("t forwarded={N} in_flight=0"));
    let (oa, ob) = (ba.stop(), bb.stop());
    assert_eq!(stat(&oa, "t", "forwarded"), N, "{oa}");
    assert_eq!(stat(&ob, "t", "forwarded"), N, "{ob}");
    assert_eq!(stat(&oa, "t", "dropped"), 0, "{oa}");
    assert!(oa.contains("stats export topic t "), "{oa}");
    println!("publisher stalled at {before} of {N} messages while B was full");
}

#[test]
fn a_value_and_an_array_reach_b_and_a_bridge_started_after_the_set() {
    let (a, b, c) = (daemon("brv-a"), daemon("brv-b"), daemon("brv-c"));
    let bus_a = a.connect();
    let v = bus_a.value::<f64>("v").unwrap();
    v.store(2.5).unwrap();
    let arr = bus_a.array::<i32>("arr", 4).unwrap();
    arr.write(&[1, -2, 3, -4]).unwrap();
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let _ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "v", "--export", "arr",
    ]);
    let _bb = Bridge::start(&[
        "--bus",
        &b.bus,
        "--connect",
        &listen,
        "--import",
        "v",
        "--import",
        "arr",
    ]);
    let bus_b = b.connect();
    let read = |bus: &shmbus_client::Bus, name: &str| {
        bus.table(name).ok().map(|t| t.read_strings().join(" "))
    };
    wait_for("v = 2.5 on B", || {
        read(&bus_b, "v").as_deref() == Some("2.5")
    });
    wait_for("arr on B", || {
        read(&bus_b, "arr").as_deref() == Some("1 -2 3 -4")
    });
    v.store(7.25).unwrap();
    arr.set(2, 30).unwrap();
    wait_for("v = 7.25 on B", || {
        read(&bus_b, "v").as_deref() == Some("7.25")
    });
    wait_for("arr[2] = 30 on B", || {
        read(&bus_b, "arr").as_deref() == Some("1 -2 30 -4")
    });
    // Typed on B as on A.
    assert_eq!(bus_b.table("v").unwrap().elem(), ElemType::F64);
    // A third bus whose bridge starts now gets the current state, not a
    // later change.
    let _bc = Bridge::start(&["--bus", &c.bus, "--connect", &listen, "--import", "v"]);
    let bus_c = c.connect();
    wait_for("v = 7.25 on C", || {
        read(&bus_c, "v").as_deref() == Some("7.25")
    });
}

#[test]
fn a_queue_is_drained_from_both_buses_and_each_item_is_taken_once() {
    let (a, b) = (daemon("brq-a"), daemon("brq-b"));
    let bus_a = a.connect();
    let q = bus_a
        .queue_builder("q")
        .slots(1024)
        .slot_size(64)
        .open()
        .unwrap();
    const N: u64 = 600;
    for i in 0..N {
        q.put(format!("item-{i}").as_bytes()).unwrap();
    }
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "q", "--stats", "0.2",
    ]);
    let bb = Bridge::start(&[
        "--bus",
        &b.bus,
        "--connect",
        &listen,
        "--import",
        "q",
        "--stats",
        "1",
    ]);
    let taken = Arc::new(Mutex::new((Vec::<String>::new(), Vec::<String>::new())));
    let total = Arc::new(AtomicU64::new(0));
    let consumer = |bus: String, side: usize, pause: Duration| {
        let (taken, total) = (Arc::clone(&taken), Arc::clone(&total));
        std::thread::spawn(move || {
            let bus = shmbus_client::Bus::connect_to(&bus).unwrap();
            let mut q = None;
            wait_for("the queue exists", || {
                q = bus.open_queue("q").ok();
                q.is_some()
            });
            let q = q.unwrap();
            while total.load(Ordering::SeqCst) < N {
                match q.get_timeout(Duration::from_millis(50)) {
                    Ok(item) => {
                        let s = String::from_utf8(item).unwrap();
                        let mut t = taken.lock().unwrap();
                        if side == 0 {
                            t.0.push(s)
                        } else {
                            t.1.push(s)
                        }
                        total.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(pause);
                    }
                    Err(Error::Timeout) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    // A's own consumer is slow, so that B's bridge gets a share.
    let ca = consumer(a.bus.clone(), 0, Duration::from_millis(3));
    let cb = consumer(b.bus.clone(), 1, Duration::ZERO);
    ca.join().unwrap();
    cb.join().unwrap();
    let t = taken.lock().unwrap();
    let all: Vec<&String> = t.0.iter().chain(t.1.iter()).collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len() as u64, N, "items taken");
    assert_eq!(unique.len() as u64, N, "an item was taken twice");
    assert!(
        !t.1.is_empty(),
        "B's consumer got nothing through the bridge"
    );
    println!("consumer on A took {}, on B {}", t.0.len(), t.1.len());
    let mut ba = ba;
    ba.expect_line(&format!("q forwarded={} in_flight=0", t.1.len()));
    let (oa, ob) = (ba.stop(), bb.stop());
    assert_eq!(stat(&oa, "q", "forwarded"), t.1.len() as u64, "{oa}");
    assert_eq!(stat(&ob, "q", "forwarded"), t.1.len() as u64, "{ob}");
    assert_eq!(stat(&oa, "q", "redelivered"), 0, "{oa}");
}

#[test]
fn a_lossy_topic_overwritten_under_the_exporter_counts_what_it_lost_as_dropped() {
    let (a, b) = (daemon("brl-a"), daemon("brl-b"));
    let (bus_a, bus_b) = (a.connect(), b.connect());
    let slots = 16;
    // Lossy on A (the publisher never waits), lossless on B, where nobody
    // reads at first: the importer stalls, then the exporter, whose
    // subscription on A falls behind.
    let topic_a = bus_a
        .topic_builder("t")
        .slots(slots)
        .slot_size(64)
        .lossy(true)
        .open()
        .unwrap();
    let topic_b = bus_b
        .topic_builder("t")
        .slots(slots)
        .slot_size(64)
        .lossy(false)
        .open()
        .unwrap();
    let sub = topic_b.subscribe().unwrap();
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let ba = Bridge::start(&[
        "--bus", &a.bus, "--listen", &listen, "--export", "t", "--window", "16", "--stats", "0.2",
    ]);
    let bb = Bridge::start(&[
        "--bus",
        &b.bus,
        "--connect",
        &listen,
        "--import",
        "t",
        "--stats",
        "0.2",
    ]);
    wait_for("the exporter subscribed on A", || {
        topic_info(&bus_a, "t").is_some_and(|t| t.subscribers >= 1)
    });
    let p = topic_a.publisher();
    // Enough to fill B, the window and A's ring, and more.
    let n = slots * 8;
    let mut i = 0;
    wait_for("B's topic fills", || {
        for _ in 0..slots {
            p.publish(&frame(i, 16)).unwrap();
            i += 1;
        }
        topic_info(&bus_b, "t").is_some_and(|t| t.max_lag >= slots)
    });
    let end = n.max(i + slots * 4);
    while i < end {
        p.publish(&frame(i, 16)).unwrap();
        i += 1;
    }
    let last = i - 1;
    // B's subscriber reads: increasing numbers, the last one included.
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let m = sub.recv_timeout(support::WATCHDOG).expect("a message on B");
        got.push(check_frame(&m));
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    assert!(
        (got.len() as u64) < i,
        "nothing was overwritten under the exporter"
    );
    let (mut ba, mut bb) = (ba, bb);
    let carried = got.len() as u64;
    ba.expect_line(&format!("t forwarded={carried} in_flight=0"));
    bb.expect_line(&format!("t forwarded={carried} in_flight=0"));
    let (oa, ob) = (ba.stop(), bb.stop());
    assert_eq!(
        stat(&oa, "t", "forwarded") + stat(&oa, "t", "dropped"),
        i,
        "carried and dropped should be all that was published: {oa}"
    );
    // (B's own `dropped` may count a frame received after a gap and sent
    // again: not a loss.)
    assert_eq!(stat(&ob, "t", "forwarded"), carried, "{ob}");
    println!("{i} published on A, {carried} carried to B");
}
