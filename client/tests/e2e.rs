//! End-to-end tests of the client library against a
//! real `shmbusd` (from `target/<profile>/shmbusd`) and real processes.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/e2e.rs`.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_client::{Bus, Error, Kind};
use support::{within, woken, Daemon, ShmFile};

/// Long enough never to fire on a loaded 2-core machine, short enough that a
/// hang fails the test instead of the CI run.
const LONG: Duration = Duration::from_secs(30);

// ---- connecting -------------------------------------------------------------

// ---- foreign and corrupt segments -------------------------------------------

#[test]
fn symlink_and_directory_at_the_segment_path() {
    let target = ShmFile::new("target", b"x");
    let bus = support::unique_bus("link");
    let link = shmbus::name::BusPaths::new(&bus).segment;
    std::os::unix::fs::symlink(&target.path, &link).unwrap();
    let e = Bus::connect_to(&bus).unwrap_err();
    let _ = std::fs::remove_file(&link);
    assert!(
        matches!(e, Error::NotShmbus { ref reason, .. } if reason.contains("symbolic link")),
        "{e:?}"
    );

    let bus = support::unique_bus("dir");
    let dir = shmbus::name::BusPaths::new(&bus).segment;
    std::fs::create_dir(&dir).unwrap();
    let e = Bus::connect_to(&bus).unwrap_err();
    let _ = std::fs::remove_dir(&dir);
    assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
}

// ---- opening pipes ----------------------------------------------------------

#[test]
fn open_create_and_parameters() {
    let d = Daemon::start("open", &[]);
    let bus = d.connect();
    match bus.open_pipe("absent") {
        Err(Error::NotFound { channel }) => assert_eq!(channel, "absent"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let p = bus.pipe_with_capacity("p", 4096).unwrap();
    assert_eq!((p.name(), p.capacity(), p.max_frame()), ("p", 4096, 512));
    // Open again: any capacity, the same capacity, another capacity.
    assert_eq!(bus.open_pipe("p").unwrap().capacity(), 4096);
    assert_eq!(bus.pipe("p").unwrap().capacity(), 4096);
    assert_eq!(bus.pipe_with_capacity("p", 4096).unwrap().capacity(), 4096);
    match bus.pipe_with_capacity("p", 8192) {
        Err(Error::ParamMismatch { channel, message }) => {
            assert_eq!(channel, "p");
            assert!(message.contains("4096"), "{message}");
        }
        other => panic!("expected ParamMismatch, got {other:?}"),
    }
    // Refused locally, before asking the daemon.
    assert!(matches!(
        bus.pipe_with_capacity("q", 1000),
        Err(Error::BadParams { .. })
    ));
    assert!(matches!(
        bus.pipe("a b"),
        Err(Error::BadName {
            what: "channel",
            ..
        })
    ));
    // A default pipe.
    let q = bus.pipe("q").unwrap();
    assert!(q.capacity().is_power_of_two());
}

#[test]
fn no_space_in_the_arena() {
    let d = Daemon::start("nospace", &[]);
    let bus = d.connect();
    // The segment is 1 MiB: a 1 MiB ring cannot fit.
    match bus.pipe_with_capacity("big", 1 << 20) {
        Err(e @ Error::NoSpace { .. }) => assert!(e.to_string().contains("--size"), "{e}"),
        other => panic!("expected NoSpace, got {other:?}"),
    }
}

// ---- the library across processes ------------------------------------------

#[test]
fn send_and_recv_in_process_through_the_daemon() {
    let d = Daemon::start("inproc", &[]);
    let bus = d.connect();
    let pipe = bus.pipe_with_capacity("p", 4096).unwrap();
    let mut tx = pipe.sender().unwrap();
    let mut rx = pipe.receiver().unwrap();
    assert_eq!(tx.max_frame(), 512);
    assert_eq!(rx.max_frame(), 512);

    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    tx.try_send(b"one").unwrap();
    tx.send(b"two").unwrap();
    tx.send_timeout(b"three", LONG).unwrap();
    tx.send_deadline(b"", Instant::now() + LONG).unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"one");
    assert_eq!(rx.recv().unwrap(), b"two");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"three");
    assert_eq!(rx.recv_deadline(Instant::now() + LONG).unwrap(), b"");

    // Zero-copy both ways; a dropped claim publishes nothing.
    {
        let mut c = tx.try_claim(5).unwrap();
        assert_eq!(c.len(), 5);
        c.copy_from_slice(b"never");
    }
    let mut c = tx.claim(6).unwrap();
    c.copy_from_slice(b"claim1");
    assert_eq!(&c[..], b"claim1");
    c.commit().unwrap();
    let mut c = tx.claim_timeout(6, LONG).unwrap();
    c.copy_from_slice(b"claim2");
    c.commit().unwrap();
    let mut c = tx.claim_deadline(6, Instant::now() + LONG).unwrap();
    c.copy_from_slice(b"claim3");
    c.commit().unwrap();
    assert_eq!(rx.try_recv_with(|b| b.to_vec()).unwrap(), b"claim1");
    assert_eq!(rx.recv_with(|b| b.len()).unwrap(), 6);
    let mut buf = Vec::with_capacity(16);
    assert_eq!(rx.recv_into(&mut buf).unwrap(), 6);
    assert_eq!(buf, b"claim3");
    assert!(matches!(rx.try_recv_into(&mut buf), Err(Error::Empty)));

    // Timeouts on an empty and on a full pipe.
    let t = Instant::now();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        rx.recv_with_timeout(Duration::ZERO, |b| b.len()),
        Err(Error::Timeout)
    ));
    while tx.try_send(&[1u8; 100]).is_ok() {}
    assert!(matches!(tx.try_send(&[1u8; 100]), Err(Error::Full)));
    assert!(matches!(
        tx.send_timeout(&[1u8; 100], Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        tx.claim_timeout(100, Duration::from_millis(10)),
        Err(Error::Timeout)
    ));

    // Too large, however empty the pipe.
    while rx.try_recv().is_ok() {}
    match tx.send(&[0u8; 513]) {
        Err(Error::TooLarge {
            len: 513,
            max: 512,
            kind: Kind::Pipe,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(tx.try_claim(513), Err(Error::TooLarge { .. })));
    assert!(matches!(tx.claim(10_000), Err(Error::TooLarge { .. })));
    tx.send(&[0u8; 512]).unwrap();
    assert_eq!(rx.recv().unwrap().len(), 512);

    // Sender gone: end of file once drained.
    tx.send(b"last").unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"last");
    assert!(matches!(rx.recv_timeout(LONG), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

/// Every form of every waiting pipe call (the crate docs' "Blocking calls")
/// on the receiving side, where `recv_into` was missing its timed forms:
/// each reads a frame when there is one, times out on an empty pipe, is
/// woken from its sleep by a send, and sees end of file once the sender has
/// gone.
#[test]
fn receive_every_form_of_every_waiting_call() {
    let d = Daemon::start("rx-forms", &[]);
    let bus = d.connect();
    let pipe = bus.pipe_with_capacity("p", 4096).unwrap();
    let mut tx = pipe.sender().unwrap();
    let mut rx = pipe.receiver().unwrap();
    let short = Duration::from_millis(20);
    let soon = || Instant::now() + short;

    for f in [&b"a"[..], b"b", b"c", b"d", b"e", b"f"] {
        tx.send(f).unwrap();
    }
    let mut buf = b"old contents".to_vec();
    assert_eq!(rx.recv_into_timeout(&mut buf, LONG).unwrap(), 1);
    assert_eq!(buf, b"a");
    assert_eq!(
        rx.recv_into_deadline(&mut buf, Instant::now() + LONG)
            .unwrap(),
        1
    );
    assert_eq!(buf, b"b");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"c");
    assert_eq!(rx.recv_deadline(Instant::now() + LONG).unwrap(), b"d");
    assert_eq!(rx.recv_with_timeout(LONG, <[u8]>::to_vec).unwrap(), b"e");
    assert_eq!(
        rx.recv_with_deadline(Instant::now() + LONG, <[u8]>::to_vec)
            .unwrap(),
        b"f"
    );

    // Empty: every timed form times out, and no form touches the buffer.
    assert!(matches!(rx.try_recv_into(&mut buf), Err(Error::Empty)));
    assert!(matches!(
        rx.recv_into_timeout(&mut buf, short),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        rx.recv_into_deadline(&mut buf, soon()),
        Err(Error::Timeout)
    ));
    assert!(matches!(rx.recv_timeout(short), Err(Error::Timeout)));
    assert!(matches!(rx.recv_deadline(soon()), Err(Error::Timeout)));
    assert!(matches!(
        rx.recv_with_timeout(short, <[u8]>::len),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        rx.recv_with_deadline(soon(), <[u8]>::len),
        Err(Error::Timeout)
    ));
    assert_eq!(buf, b"b");

    // Asleep on the empty pipe, the `_into` forms are woken by a send.
    let (rx2, got) = woken(
        move || {
            let mut buf = Vec::new();
            let r = rx.recv_into_timeout(&mut buf, LONG);
            (rx, r.map(|_| buf))
        },
        || tx.send(b"late").unwrap(),
    );
    rx = rx2;
    assert_eq!(got.unwrap(), b"late");
    let (rx2, got) = woken(
        move || {
            let mut buf = Vec::new();
            let r = rx.recv_into_deadline(&mut buf, Instant::now() + LONG);
            (rx, r.map(|_| buf))
        },
        || tx.send(b"later").unwrap(),
    );
    rx = rx2;
    assert_eq!(got.unwrap(), b"later");

    // The sender gone and everything read: end of file from every form.
    drop(tx);
    assert!(matches!(
        rx.recv_into_timeout(&mut buf, LONG),
        Err(Error::Disconnected)
    ));
    assert!(matches!(
        rx.recv_into_deadline(&mut buf, Instant::now() + LONG),
        Err(Error::Disconnected)
    ));
    assert!(matches!(rx.recv_into(&mut buf), Err(Error::Disconnected)));
    assert!(matches!(
        rx.try_recv_into(&mut buf),
        Err(Error::Disconnected)
    ));
}

// ---- the CLI ----------------------------------------------------------------

// ---- the daemon going away ----------------------------------------------------

#[test]
fn blocked_sender_sees_bus_closed_when_the_daemon_dies() {
    let mut d = Daemon::start("closed-tx", &[]);
    let bus = d.connect();
    let pipe = bus.pipe_with_capacity("p", 4096).unwrap();
    let _rx = pipe.receiver().unwrap();
    let mut tx = pipe.sender().unwrap();
    while tx.try_send(&[0u8; 64]).is_ok() {}
    let waiter = std::thread::spawn(move || tx.send_timeout(&[0u8; 64], LONG));
    std::thread::sleep(Duration::from_millis(200));
    d.signal(Signal::KILL);
    let r = within(LONG, "the blocked send", move || waiter.join().unwrap());
    assert!(matches!(r, Err(Error::BusClosed)), "{r:?}");
    d.wait();
}

#[test]
fn a_restarted_daemon_closes_old_handles_and_serves_new_ones() {
    let mut d1 = Daemon::start("restart", &[]);
    let bus = d1.bus.clone();
    let old = d1.connect();
    let mut rx = old.pipe("p").unwrap().receiver().unwrap();
    d1.signal(Signal::KILL);
    d1.wait();
    // A new daemon takes the name over (and removes the old files).
    let d2 = Daemon::start_named(bus.clone(), &[]);
    assert!(old.is_closed());
    assert!(matches!(rx.recv_timeout(LONG), Err(Error::BusClosed)));
    assert!(matches!(old.pipe("p"), Err(Error::BusClosed)));
    // New connections see the new bus: a fresh, empty pipe with no receiver.
    let new = d2.connect();
    let pipe = new.pipe("p").unwrap();
    let mut rx2 = pipe.receiver().unwrap();
    pipe.sender().unwrap().send(b"new").unwrap();
    assert_eq!(rx2.recv_timeout(LONG).unwrap(), b"new");
    // Locals drop in reverse order: `d2` stops before `d1`'s guard removes
    // the bus's files.
}

#[test]
fn a_full_peer_table_refuses_the_next_client() {
    let d = Daemon::start("peers", &["--max-peers", "1"]);
    let first = d.connect();
    match Bus::connect_to(&d.bus) {
        Err(e @ Error::Refused { .. }) => {
            let Error::Refused { code, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*code, shmbus::protocol::ErrorCode::Full);
            assert!(
                e.to_string()
                    .starts_with("shmbusd refused this client (full)"),
                "{e}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    // The slot comes back when the first client goes.
    drop(first);
    let deadline = Instant::now() + LONG;
    while Bus::connect_to(&d.bus).is_err() {
        assert!(Instant::now() < deadline, "the peer slot was never freed");
        std::thread::sleep(Duration::from_millis(10));
    }
}
