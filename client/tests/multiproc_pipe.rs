//! Pipes between real processes through a real daemon and a real `/dev/shm`
//! segment: bulk transfer with checksums, futex wake-ups across processes, and
//! what the other side sees when a process is killed.
#![cfg(not(loom))]

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{Bus, Error};
use support::{fnv, Daemon, Proc, Rng};

/// The test that child processes run (see `support::Proc::spawn_role`).
const DISPATCH: &str = "child_role";

/// Frames in the bulk transfer.
const FRAMES: u64 = 1_000_000;
/// Ring capacity for the bulk transfer: 64 KiB, so frames up to 8 KiB.
const BULK_CAPACITY: u64 = 1 << 16;
const SEED: u64 = 0x5eed_cafe;

/// Entry point of every child process; a no-op in the parent test run.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        "bulk_sender" => bulk_sender(&args[0], &args[1]),
        "bulk_receiver" => bulk_receiver(&args[0], &args[1]),
        "batch_sender" => batch_sender(&args[0], &args[1]),
        "batch_receiver" => batch_receiver(&args[0], &args[1]),
        "wait_one" => wait_one(&args[0], &args[1]),
        "send_then_hang" => send_then_hang(&args[0], &args[1], args[2].parse().unwrap()),
        "attach_receiver_then_hang" => attach_receiver_then_hang(&args[0], &args[1]),
        "send_and_exit" => send_and_exit(&args[0], &args[1], args[2].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
}

/// Length of frame `seq`: mostly small, sometimes up to the pipe's limit, so
/// records wrap around the ring at every possible offset.
fn frame_len(rng: &mut Rng, max: u64) -> usize {
    let r = rng.next();
    let len = match r % 16 {
        0 => rng.below_eq(max),
        1..=3 => rng.below_eq(1024),
        _ => rng.below_eq(160),
    };
    len.max(16) as usize
}

/// Fills `buf` with frame `seq`: sequence number, bytes derived from it, and
/// an FNV checksum of everything before it in the last 8 bytes.
fn fill(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..n - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let sum = fnv(&buf[..n - 8]);
    buf[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

fn check(buf: &[u8], seq: u64, len: usize) {
    assert_eq!(buf.len(), len, "frame {seq}: wrong length");
    let got = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(got, seq, "frame out of order: expected {seq}, got {got}");
    let sum = u64::from_le_bytes(buf[len - 8..].try_into().unwrap());
    assert_eq!(sum, fnv(&buf[..len - 8]), "frame {seq}: checksum mismatch");
}

fn bulk_sender(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe(pipe).unwrap().sender().unwrap();
    let max = tx.max_frame() as u64;
    let mut rng = Rng::new(SEED);
    let mut buf = vec![0u8; max as usize];
    for seq in 0..FRAMES {
        let len = frame_len(&mut rng, max);
        if seq % 3 == 0 {
            // Zero-copy: claim, write in place, commit.
            let mut claim = tx.claim(len).unwrap();
            fill(&mut claim, seq);
            claim.commit().unwrap();
        } else {
            fill(&mut buf[..len], seq);
            tx.send(&buf[..len]).unwrap();
        }
    }
}

fn bulk_receiver(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut rx = b.pipe(pipe).unwrap().receiver().unwrap();
    let max = rx.max_frame() as u64;
    let mut rng = Rng::new(SEED);
    let mut buf = Vec::new();
    for seq in 0..FRAMES {
        let len = frame_len(&mut rng, max);
        if seq % 2 == 0 {
            rx.recv_with(|f| check(f, seq, len)).unwrap();
        } else {
            rx.recv_into(&mut buf).unwrap();
            check(&buf, seq, len);
        }
    }
    // Nothing more: the sender has gone, so this is end of file, not a hang.
    match rx.recv_timeout(Duration::from_secs(60)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected end of file after {FRAMES} frames, got {other:?}"),
    }
    println!("received {FRAMES} frames");
}

#[test]
fn million_frames_between_two_processes() {
    let d = Daemon::start_role(DISPATCH, "bulk", &[]);
    let pipe = "bulk";
    Bus::connect_to(&d.bus)
        .unwrap()
        .pipe_with_capacity(pipe, BULK_CAPACITY)
        .unwrap();
    let rx = Proc::spawn_role(DISPATCH, "bulk_receiver", &[&d.bus, pipe]);
    let tx = Proc::spawn_role(DISPATCH, "bulk_sender", &[&d.bus, pipe]);
    tx.expect_success();
    let out = rx.expect_success();
    assert!(out.contains(&format!("received {FRAMES} frames")), "{out}");
}

/// Frames of the batch test.
const BATCH_FRAMES: u64 = FRAMES / 10;

/// Sends `BATCH_FRAMES` frames with `try_send_batch`, 1 to 16 at a time.
fn batch_sender(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe(pipe).unwrap().sender().unwrap();
    let max = tx.max_frame() as u64;
    let mut rng = Rng::new(SEED);
    let mut seq = 0;
    while seq < BATCH_FRAMES {
        let k = (1 + seq % 16).min(BATCH_FRAMES - seq);
        let frames: Vec<Vec<u8>> = (seq..seq + k)
            .map(|s| {
                let mut f = vec![0u8; frame_len(&mut rng, max)];
                fill(&mut f, s);
                f
            })
            .collect();
        let mut rest = &frames[..];
        while !rest.is_empty() {
            match tx.try_send_batch(rest) {
                Ok(n) => rest = &rest[n..],
                Err(Error::Full) => std::thread::yield_now(),
                Err(e) => panic!("try_send_batch at {seq}: {e}"),
            }
        }
        seq += k;
    }
}

/// Receives them with `try_recv_batch_with`, at most 1 to 20 at a time.
fn batch_receiver(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut rx = b.pipe(pipe).unwrap().receiver().unwrap();
    let max = rx.max_frame() as u64;
    let mut rng = Rng::new(SEED);
    let mut seq = 0;
    while seq < BATCH_FRAMES {
        let most = 1 + (seq % 20) as usize;
        let r = rx.try_recv_batch_with(most, |f| {
            check(f, seq, frame_len(&mut rng, max));
            seq += 1;
        });
        match r {
            Ok(n) => assert!((1..=most).contains(&n), "batch of {n}, at most {most}"),
            Err(Error::Empty) => std::thread::yield_now(),
            Err(e) => panic!("try_recv_batch_with at {seq}: {e}"),
        }
    }
    match rx.recv_timeout(Duration::from_secs(60)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected end of file after {BATCH_FRAMES} frames, got {other:?}"),
    }
    println!("received {BATCH_FRAMES} frames");
}

#[test]
fn batches_between_two_processes() {
    let d = Daemon::start_role(DISPATCH, "batch", &[]);
    let pipe = "batch";
    Bus::connect_to(&d.bus)
        .unwrap()
        .pipe_with_capacity(pipe, BULK_CAPACITY)
        .unwrap();
    let rx = Proc::spawn_role(DISPATCH, "batch_receiver", &[&d.bus, pipe]);
    let tx = Proc::spawn_role(DISPATCH, "batch_sender", &[&d.bus, pipe]);
    tx.expect_success();
    let out = rx.expect_success();
    assert!(
        out.contains(&format!("received {BATCH_FRAMES} frames")),
        "{out}"
    );
}

fn wait_one(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let mut rx = b.pipe(pipe).unwrap().receiver().unwrap();
    let got = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(got, b"wake up");
}

#[test]
fn blocked_receiver_in_another_process_is_woken_by_a_send() {
    let d = Daemon::start_role(DISPATCH, "wake", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let pipe = b.pipe("bell").unwrap();
    let rx = Proc::spawn_role(DISPATCH, "wait_one", &[&d.bus, "bell"]);
    // Wait until the receiver really sleeps in the kernel on the shared futex.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !support::sleeps_in_futex(rx.pid()) {
        assert!(Instant::now() < deadline, "receiver never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    pipe.sender().unwrap().send(b"wake up").unwrap();
    rx.expect_success();
}

fn send_then_hang(bus: &str, pipe: &str, n: u64) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe(pipe).unwrap().sender().unwrap();
    for i in 0..n {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    println!("sent");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn receiver_sees_end_of_file_when_the_sender_is_killed() {
    let d = Daemon::start_role(DISPATCH, "kill-tx", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let mut rx = b.pipe("p").unwrap().receiver().unwrap();
    let mut tx = Proc::spawn_role(DISPATCH, "send_then_hang", &[&d.bus, "p", "1000"]);
    tx.expect_line("sent");
    for i in 0u64..1000 {
        let f = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(f, i.to_le_bytes());
    }
    tx.signal(Signal::KILL);
    // The daemon sees the dead client's connection close and releases its end.
    match rx.recv_timeout(Duration::from_secs(60)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected end of file after the sender was killed, got {other:?}"),
    }
    drop(tx);
    // A new sender can attach to the same pipe afterwards.
    let mut tx2 = b.pipe("p").unwrap().sender().unwrap();
    tx2.send(b"again").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), b"again");
}

fn send_and_exit(bus: &str, pipe: &str, n: u64) {
    let b = Bus::connect_to(bus).unwrap();
    let mut tx = b.pipe(pipe).unwrap().sender().unwrap();
    for i in 0..n {
        tx.send(&i.to_le_bytes()).unwrap();
    }
}

/// A pair made together (`multiprocessing.Pipe()`): the mark is taken
/// first, a sender process sends and leaves — cleanly, or killed — before
/// the receiver is claimed, and the receiver still gets every frame and
/// then end of file. A receiver claimed without the mark would wait for the
/// next sender instead (checked too, with a deadline).
#[test]
fn a_receiver_claimed_since_a_mark_ends_after_a_sender_that_came_and_went() {
    let d = Daemon::start_role(DISPATCH, "mark", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    for (name, kill) in [("clean", false), ("killed", true)] {
        let pipe = b.pipe(name).unwrap();
        let mark = pipe.mark().unwrap();
        let _killed = if kill {
            let mut tx = Proc::spawn_role(DISPATCH, "send_then_hang", &[&d.bus, name, "1000"]);
            tx.expect_line("sent");
            tx.signal(Signal::KILL);
            Some(tx)
        } else {
            Proc::spawn_role(DISPATCH, "send_and_exit", &[&d.bus, name, "1000"]).expect_success();
            None
        };
        // Without the mark: the frames, then a wait for the next sender.
        {
            let mut plain = pipe.receiver().unwrap();
            assert_eq!(plain.recv().unwrap(), 0u64.to_le_bytes());
            drop(plain);
        }
        // With it: the rest, then end of file (for the killed sender, once
        // the daemon has released its end).
        let mut rx = pipe.receiver_since(mark).unwrap();
        for i in 1u64..1000 {
            let f = rx.recv_timeout(Duration::from_secs(60)).unwrap();
            assert_eq!(f, i.to_le_bytes(), "{name}");
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Err(Error::Disconnected) => {}
            other => panic!("{name}: expected end of file, got {other:?}"),
        }
        drop(rx);
        let mut plain = pipe.receiver().unwrap();
        match plain.recv_timeout(Duration::from_millis(200)) {
            Err(Error::Timeout) => {}
            other => panic!("{name}: a receiver without the mark should wait, got {other:?}"),
        }
    }
}

fn attach_receiver_then_hang(bus: &str, pipe: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let _rx = b.pipe(pipe).unwrap().receiver().unwrap();
    println!("attached");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn blocked_sender_sees_disconnected_when_the_receiver_is_killed() {
    let d = Daemon::start_role(DISPATCH, "kill-rx", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let pipe = b.pipe_with_capacity("p", 4096).unwrap();
    let mut rx = Proc::spawn_role(DISPATCH, "attach_receiver_then_hang", &[&d.bus, "p"]);
    rx.expect_line("attached");
    let mut tx = pipe.sender().unwrap();
    let frame = [7u8; 64];
    let mut sent = 0;
    while tx.try_send(&frame).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    rx.signal(Signal::KILL);
    match tx.send_timeout(&frame, Duration::from_secs(60)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected after the receiver was killed, got {other:?}"),
    }
    drop(rx);
}
