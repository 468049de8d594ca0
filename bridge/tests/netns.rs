//! Two hosts that really are separate networks: two network namespaces
//! joined by a veth pair, each with its own daemon and bridge. A pipe, a
//! value and a queue cross; then the link is cut (the veth taken down) for
//! a few seconds and the stream resumes. Needs root and `ip netns`;
//! elsewhere it prints why it is skipped and passes.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{check_frame, daemon, frame, wait_for, Bridge};
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

/// Runs `ip ARGS...`; returns its error output if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces and the veth pair between them, deleted on drop (even
/// when the test fails).
struct Hosts {
    ns: [String; 2],
    addr: [String; 2],
    veth: [String; 2],
}

impl Hosts {
    fn new() -> Result<Self, String> {
        let id = std::process::id();
        let h = Self {
            ns: [format!("shmbus-{id}-a"), format!("shmbus-{id}-b")],
            // A /30 of its own per test run, from the pid.
            addr: {
                let (x, y) = ((id >> 6) % 250, (id % 64) * 4);
                [
                    format!("10.{}.{x}.{}", 200 + (id % 50), y + 1),
                    format!("10.{}.{x}.{}", 200 + (id % 50), y + 2),
                ]
            },
            veth: [
                format!("sba{}", id % 1_000_000),
                format!("sbb{}", id % 1_000_000),
            ],
        };
        for ns in &h.ns {
            ip(&["netns", "add", ns])?;
        }
        ip(&[
            "link", "add", &h.veth[0], "type", "veth", "peer", "name", &h.veth[1],
        ])?;
        for i in 0..2 {
            ip(&["link", "set", &h.veth[i], "netns", &h.ns[i]])?;
            ip(&[
                "-n",
                &h.ns[i],
                "addr",
                "add",
                &format!("{}/30", h.addr[i]),
                "dev",
                &h.veth[i],
            ])?;
            ip(&["-n", &h.ns[i], "link", "set", &h.veth[i], "up"])?;
            ip(&["-n", &h.ns[i], "link", "set", "lo", "up"])?;
        }
        Ok(h)
    }

    fn link(&self, up: bool) {
        ip(&[
            "-n",
            &self.ns[1],
            "link",
            "set",
            &self.veth[1],
            if up { "up" } else { "down" },
        ])
        .expect("set the veth");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the
        // pair.
        for ns in &self.ns {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.veth[0]]);
    }
}

#[test]
fn two_namespaces_over_a_veth_pair_and_a_cut_link() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root to create network namespaces");
        return;
    }
    let hosts = match Hosts::new() {
        Ok(h) => h,
        Err(e) => {
            println!("skipped: network namespaces unavailable: {e}");
            return;
        }
    };
    let (a, b) = (daemon("brn-a"), daemon("brn-b"));
    let (bus_a, bus_b) = (a.connect(), b.connect());
    bus_a.pipe_with_capacity("p", 1 << 14).unwrap();
    let v = bus_a.value::<i64>("v").unwrap();
    v.store(-42).unwrap();
    let q = bus_a
        .queue_builder("q")
        .slots(256)
        .slot_size(32)
        .open()
        .unwrap();
    for i in 0..100 {
        q.put(format!("{i}").as_bytes()).unwrap();
    }
    let listen = format!("tcp/{}:7447", hosts.addr[0]);
    let exec = |i: usize| {
        ["ip", "netns", "exec"]
            .map(str::to_owned)
            .into_iter()
            .chain([hosts.ns[i].clone()])
            .collect::<Vec<_>>()
    };
    let (ea, eb) = (exec(0), exec(1));
    let ea: Vec<&str> = ea.iter().map(String::as_str).collect();
    let eb: Vec<&str> = eb.iter().map(String::as_str).collect();
    let _ba = Bridge::start_wrapped(
        &ea,
        &[
            "--bus", &a.bus, "--listen", &listen, "--export", "p", "--export", "v", "--export", "q",
        ],
    );
    let _bb = Bridge::start_wrapped(
        &eb,
        &[
            "--bus",
            &b.bus,
            "--connect",
            &listen,
            "--import",
            "p",
            "--import",
            "v",
            "--import",
            "q",
        ],
    );
    // The value, and the queue drained on B alone.
    wait_for("v on B", || {
        bus_b.table("v").is_ok_and(|t| t.read_strings() == ["-42"])
    });
    let mut qb = None;
    wait_for("q on B", || {
        qb = bus_b.open_queue("q").ok();
        qb.is_some()
    });
    let qb = qb.unwrap();
    let mut items = HashSet::new();
    while items.len() < 100 {
        let item = qb.get_timeout(support::WATCHDOG).expect("an item on B");
        assert!(items.insert(item), "an item taken twice");
    }
    // A stream across a cut link.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (bus, s2) = (a.bus.clone(), Arc::clone(&stop));
    let tx = std::thread::spawn(move || {
        let bus = Bus::connect_to(&bus).unwrap();
        let mut tx = bus.pipe("p").unwrap().sender().unwrap();
        let mut i = 0;
        while !s2.load(Ordering::Relaxed) {
            tx.send(&frame(i, 100)).unwrap();
            i += 1;
        }
        tx.send(&frame(u64::MAX, 100)).unwrap();
        i
    });
    let (bus, c2) = (b.bus.clone(), Arc::clone(&count));
    let rx = std::thread::spawn(move || {
        let bus = Bus::connect_to(&bus).unwrap();
        let mut rx = None;
        wait_for("p on B", || {
            rx = bus.pipe("p").ok().and_then(|p| p.receiver().ok());
            rx.is_some()
        });
        let mut rx = rx.unwrap();
        let mut got = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(f) => match check_frame(&f) {
                    u64::MAX => return got,
                    n => {
                        got.push(n);
                        c2.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(Error::Timeout) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    wait_for("the stream flows", || count.load(Ordering::Relaxed) >= 2000);
    hosts.link(false);
    std::thread::sleep(Duration::from_secs(3));
    let during = count.load(Ordering::Relaxed);
    hosts.link(true);
    wait_for("the stream resumes", || {
        count.load(Ordering::Relaxed) >= during + 2000
    });
    stop.store(true, Ordering::Relaxed);
    let sent = tx.join().unwrap();
    let got = rx.join().unwrap();
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "a frame lost, duplicated or reordered"
    );
    assert_eq!(got.len() as u64, sent, "frames lost");
    v.store(7).unwrap();
    wait_for("v = 7 on B", || {
        bus_b.table("v").is_ok_and(|t| t.read_strings() == ["7"])
    });
    println!("veth cut for 3 s: {sent} frames, none lost or duplicated");
    drop(hosts);
}
