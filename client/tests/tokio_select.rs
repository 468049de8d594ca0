//! The `tokio` feature with real processes, a real daemon and a real
//! segment: many tasks on a multi-thread runtime awaiting many channels fed
//! by another process (exactly once, in order), futures dropped mid-wait
//! losing nothing, and an awaiting process that stays asleep while idle.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::time::Duration;

use shmbus_client::Bus;
use support::{Daemon, Proc};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Pipes fed by the child, one task each.
const PIPES: usize = 80;
/// Frames per pipe.
const FRAMES: usize = 40;
/// Items put in the queue, and the tasks taking them.
const ITEMS: usize = 200;
const GETTERS: usize = 20;
/// The value's last store.
const LAST: u64 = 50;

#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "feeder" => feeder(&args[0]),
        "slow_sender" => slow_sender(&args[0]),
        "awaiter" => awaiter(&args[0]),
        "slow_receiver" => slow_receiver(&args[0]),
        "topic_feeder" => topic_feeder(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Once stdin closes, sends `FRAMES` frames on each pipe, `ITEMS` items
/// (and one `end` per getter) on the queue and `1..=LAST` to the value,
/// interleaved, with pauses so that the tasks go back to sleep.
fn feeder(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut txs: Vec<_> = (0..PIPES)
        .map(|i| b.pipe(&format!("p{i}")).unwrap().sender().unwrap())
        .collect();
    let q = b.queue("q").unwrap();
    let v = b.value::<u64>("v").unwrap();
    println!("attached");
    let _ = std::io::stdin().read_line(&mut String::new());
    for k in 0..FRAMES {
        for tx in &mut txs {
            tx.send(format!("{k}").as_bytes()).unwrap();
        }
        for j in 0..ITEMS / FRAMES {
            q.put(format!("{}", k * (ITEMS / FRAMES) + j).as_bytes())
                .unwrap();
        }
        if k < LAST as usize {
            v.store(k as u64 + 1).unwrap();
        }
        if k % 4 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for _ in 0..GETTERS {
        q.put(b"end").unwrap();
    }
    for k in FRAMES as u64..LAST {
        v.store(k + 1).unwrap();
    }
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Sends `FRAMES` frames on pipe `a` and items on queue `q`, slowly.
fn slow_sender(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe("a").unwrap().sender().unwrap();
    let q = b.queue("q").unwrap();
    println!("attached");
    for k in 0..FRAMES {
        std::thread::sleep(Duration::from_millis(1 + (k % 3) as u64));
        tx.send(format!("{k}").as_bytes()).unwrap();
        q.put(format!("{k}").as_bytes()).unwrap();
    }
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Frames (and items) the parent sends against back-pressure, and their
/// size: many times the pipe's and queue's room.
const BIG: usize = 8 * 1024;
const SENDS: usize = 64;

/// Takes `SENDS` frames from pipe `a` and `SENDS` items from queue `q`
/// slowly, checking their order, and says `ok`.
fn slow_receiver(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut rx = b.pipe("a").unwrap().receiver().unwrap();
    let q = b.queue("q").unwrap();
    println!("attached");
    for k in 0..SENDS {
        std::thread::sleep(Duration::from_millis(1 + (k % 3) as u64));
        let f = rx.recv().unwrap();
        assert_eq!(f.len(), BIG);
        assert_eq!(f[..8], (k as u64).to_le_bytes(), "frame {k}");
        assert_eq!(q.get().unwrap(), (k as u64).to_le_bytes(), "item {k}");
    }
    println!("ok");
}

/// Subscribing tasks, and messages published to topic `t`.
const SUBSCRIBERS: usize = 6;

/// Once stdin gives a line, publishes `FRAMES` messages to topic `t`.
fn topic_feeder(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let t = b.topic("t").unwrap().publisher();
    println!("attached");
    let _ = std::io::stdin().read_line(&mut String::new());
    for k in 0..FRAMES {
        if k % 4 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        t.publish(format!("{k}").as_bytes()).unwrap();
    }
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Awaits a frame that never comes on a current-thread runtime.
fn awaiter(bus: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut rx = b.pipe("a").unwrap().receiver().unwrap();
    let q = b.queue("q").unwrap();
    let v = b.value::<u64>("v").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("awaiting");
        tokio::select! {
            r = rx.recv_async() => println!("ended: {r:?}"),
            r = q.get_async() => println!("ended: {r:?}"),
            r = v.changed_async(v.version()) => println!("ended: {r:?}"),
        }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// 101 tasks on 4 workers — one per pipe (80), 20 queue getters and a
/// value watcher — fed by another process: every frame once and in order,
/// every item exactly once, the value's last store seen.
#[test]
fn many_tasks_await_many_channels_fed_by_another_process() {
    let d = Daemon::start_role(DISPATCH, "tokmany", &[]);
    let b = d.connect();
    let rxs: Vec<_> = (0..PIPES)
        .map(|i| b.pipe(&format!("p{i}")).unwrap().receiver().unwrap())
        .collect();
    let q = std::sync::Arc::new(b.queue("q").unwrap());
    let v = b.value::<u64>("v").unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "feeder", &[&d.bus]);
    p.expect_line("attached");
    let rt = runtime();
    let (frames, mut items, last) = rt.block_on(async {
        let pipes: Vec<_> = rxs
            .into_iter()
            .map(|mut rx| {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..FRAMES {
                        got.push(String::from_utf8(rx.recv_async().await.unwrap()).unwrap());
                    }
                    got
                })
            })
            .collect();
        let getters: Vec<_> = (0..GETTERS)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let it = q.get_async().await.unwrap();
                        if it == b"end" {
                            return got;
                        }
                        got.push(String::from_utf8(it).unwrap().parse::<usize>().unwrap());
                    }
                })
            })
            .collect();
        let watcher = tokio::spawn({
            let v = v.clone();
            async move {
                let mut since = v.version();
                loop {
                    since = v.changed_async(since).await.unwrap();
                    if v.load() == LAST {
                        return LAST;
                    }
                }
            }
        });
        // Every task is asleep (or soon will be) before the feeding starts.
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.write_stdin(b"go\n");
        let all = async {
            let mut frames = Vec::new();
            for t in pipes {
                frames.push(t.await.unwrap());
            }
            let mut items = Vec::new();
            for t in getters {
                items.extend(t.await.unwrap());
            }
            (frames, items, watcher.await.unwrap())
        };
        tokio::time::timeout(support::WATCHDOG, all)
            .await
            .expect("watchdog: the tasks never got everything")
    });
    let want: Vec<String> = (0..FRAMES).map(|k| k.to_string()).collect();
    for f in &frames {
        assert_eq!(f, &want, "a pipe's frames were lost, doubled or reordered");
    }
    items.sort_unstable();
    assert_eq!(
        items,
        (0..ITEMS).collect::<Vec<_>>(),
        "queue items not exactly once"
    );
    assert_eq!(last, LAST);
    p.close_stdin();
    p.expect_success();
}

#[test]
fn futures_dropped_mid_wait_lose_nothing() {
    let d = Daemon::start_role(DISPATCH, "tokdrop", &[]);
    let b = d.connect();
    let mut rx = b.pipe("a").unwrap().receiver().unwrap();
    let q = b.queue("q").unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "slow_sender", &[&d.bus]);
    p.expect_line("attached");
    let rt = runtime();
    let (frames, items, dropped) = rt.block_on(async {
        let (mut frames, mut items, mut dropped) = (Vec::new(), Vec::new(), 0u32);
        let run = async {
            let mut n = 0u64;
            while frames.len() < FRAMES || items.len() < FRAMES {
                n += 1;
                // Timeouts shorter than the sender's pauses drop most futures
                // while they wait.
                let t = Duration::from_micros(200 + (n % 7) * 150);
                if frames.len() < FRAMES {
                    match tokio::time::timeout(t, rx.recv_async()).await {
                        Ok(f) => frames.push(String::from_utf8(f.unwrap()).unwrap()),
                        Err(_) => dropped += 1,
                    }
                }
                if items.len() < FRAMES {
                    match tokio::time::timeout(t, q.get_async()).await {
                        Ok(i) => items.push(String::from_utf8(i.unwrap()).unwrap()),
                        Err(_) => dropped += 1,
                    }
                }
            }
        };
        tokio::time::timeout(support::WATCHDOG, run)
            .await
            .expect("watchdog");
        (frames, items, dropped)
    });
    let want: Vec<String> = (0..FRAMES).map(|k| k.to_string()).collect();
    assert_eq!(frames, want);
    assert_eq!(items, want);
    assert!(
        dropped > 0,
        "no future was dropped mid-wait: the test tested nothing"
    );
    p.close_stdin();
    p.expect_success();
}

#[test]
fn an_awaiting_process_wakes_no_one_while_idle() {
    let d = Daemon::start_role(DISPATCH, "tokidle", &[]);
    let mut p = Proc::spawn_role(DISPATCH, "awaiter", &[&d.bus]);
    p.expect_line("awaiting");
    support::idle::assert_silent(&[("awaiter", p.pid()), ("daemon", d.pid())]);
    p.signal(rustix::process::Signal::KILL);
    let _ = p.wait(support::WATCHDOG);
}

#[test]
fn send_and_put_futures_dropped_while_full_lose_and_double_nothing() {
    let d = Daemon::start_role(DISPATCH, "tokfull", &[]);
    let b = d.connect();
    let mut tx = b
        .pipe_with_capacity("a", 8 * BIG as u64)
        .unwrap()
        .sender()
        .unwrap();
    let q = b.queue("q").unwrap();
    let mut p = Proc::spawn_role(DISPATCH, "slow_receiver", &[&d.bus]);
    p.expect_line("attached");
    let rt = runtime();
    let dropped = rt.block_on(async {
        let mut dropped = 0u32;
        let run = async {
            let mut frame = vec![0u8; BIG];
            let (mut sent, mut put) = (0usize, 0usize);
            let mut n = 0u64;
            while sent < SENDS || put < SENDS {
                n += 1;
                let t = Duration::from_micros(200 + (n % 7) * 150);
                if sent < SENDS {
                    frame[..8].copy_from_slice(&(sent as u64).to_le_bytes());
                    match tokio::time::timeout(t, tx.send_async(&frame)).await {
                        Ok(r) => {
                            r.unwrap();
                            sent += 1;
                        }
                        Err(_) => dropped += 1,
                    }
                }
                // The queue's items go one per frame, so the queue fills
                // too: the receiver takes one of each in turn.
                if put < sent {
                    let item = (put as u64).to_le_bytes();
                    match tokio::time::timeout(t, q.put_async(&item)).await {
                        Ok(r) => {
                            r.unwrap();
                            put += 1;
                        }
                        Err(_) => dropped += 1,
                    }
                }
            }
        };
        tokio::time::timeout(support::WATCHDOG, run)
            .await
            .expect("watchdog");
        dropped
    });
    p.expect_line("ok");
    assert!(
        dropped > 0,
        "no future was dropped mid-wait: the test tested nothing"
    );
    p.expect_success();
}

#[test]
fn subscriber_tasks_await_a_topic_fed_by_another_process() {
    let d = Daemon::start_role(DISPATCH, "toktopic", &[]);
    let b = d.connect();
    let t = b.topic("t").unwrap();
    let subs: Vec<_> = (0..SUBSCRIBERS).map(|_| t.subscribe().unwrap()).collect();
    let mut p = Proc::spawn_role(DISPATCH, "topic_feeder", &[&d.bus]);
    p.expect_line("attached");
    let rt = runtime();
    let got = rt.block_on(async {
        let tasks: Vec<_> = subs
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..FRAMES {
                        got.push(String::from_utf8(s.recv_async().await.unwrap()).unwrap());
                    }
                    got
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.write_stdin(b"go\n");
        let all = async {
            let mut v = Vec::new();
            for t in tasks {
                v.push(t.await.unwrap());
            }
            v
        };
        tokio::time::timeout(support::WATCHDOG, all)
            .await
            .expect("watchdog: the subscribers never got everything")
    });
    let want: Vec<String> = (0..FRAMES).map(|k| k.to_string()).collect();
    for g in &got {
        assert_eq!(
            g, &want,
            "a subscriber lost, doubled or reordered a message"
        );
    }
    p.close_stdin();
    p.expect_success();
}
