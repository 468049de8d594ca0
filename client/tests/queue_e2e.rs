//! End-to-end tests of queues: the client library and the `shmbus` command
//! against a real `shmbusd` and real processes.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/queue_e2e.rs`.

use shmbus_test_support as support;

use std::process::Command;
use std::time::{Duration, Instant};

use shmbus_client::{Bus, ChannelDetails, Error, Kind};
use support::{woken, Daemon, WATCHDOG};

#[test]
fn library_queue_api() {
    let d = Daemon::start("q-lib", &[]);
    let bus = d.connect();
    let q = bus.queue("work").unwrap();
    assert_eq!((q.slots(), q.slot_size()), (1024, 256));
    assert!(q.is_empty() && !q.is_full());
    q.put(b"one").unwrap();
    q.try_put(b"two").unwrap();
    let mut c = q.try_claim(5).unwrap();
    c.copy_from_slice(b"three");
    c.commit().unwrap();
    drop(q.try_claim(3).unwrap()); // abandoned: a tombstone, skipped
    assert_eq!(q.len(), 4);
    assert!(matches!(
        q.try_put(&[0; 257]),
        Err(Error::TooLarge {
            len: 257,
            max: 256,
            kind: Kind::Queue
        })
    ));
    // Another handle (another connection) sees the same queue.
    let other = Bus::connect_to(&d.bus).unwrap().open_queue("work").unwrap();
    assert_eq!(other.get().unwrap(), b"one");
    assert_eq!(other.try_get_with(<[u8]>::len).unwrap(), 3);
    let mut buf = Vec::new();
    assert_eq!(other.get_into(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"three");
    assert!(matches!(other.try_get(), Err(Error::Empty)));
    assert!(matches!(
        other.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    // join waits for task_done of all three items.
    assert!(matches!(
        q.join_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    for _ in 0..3 {
        other.task_done().unwrap();
    }
    assert!(matches!(other.task_done(), Err(Error::TaskDone)));
    q.join_timeout(Duration::from_secs(10)).unwrap();
    // Listing.
    let info = bus
        .channels()
        .into_iter()
        .find(|c| c.name == "work")
        .unwrap();
    assert_eq!(info.kind, Kind::Queue);
    match info.details {
        ChannelDetails::Queue(i) => assert_eq!((i.slots, i.slot_size, i.depth), (1024, 256, 0)),
        other => panic!("{other:?}"),
    }
    // Kind mismatch both ways, bad parameters, missing queue.
    let pipe = bus.pipe("p").unwrap();
    assert!(matches!(
        bus.queue("p"),
        Err(Error::KindMismatch {
            expected: Kind::Queue,
            found: Some(Kind::Pipe),
            ..
        })
    ));
    assert!(matches!(
        bus.pipe("work"),
        Err(Error::KindMismatch {
            expected: Kind::Pipe,
            found: Some(Kind::Queue),
            ..
        })
    ));
    for slots in [0, 3, 1 << 30] {
        assert!(
            matches!(
                bus.queue_builder("x").slots(slots).open(),
                Err(Error::BadParams { .. })
            ),
            "slots {slots}"
        );
    }
    assert!(matches!(
        bus.queue_builder("x").slot_size(0).open(),
        Err(Error::BadParams { .. })
    ));
    assert!(matches!(
        bus.queue_builder("work").slots(8).open(),
        Err(Error::ParamMismatch { .. })
    ));
    assert!(matches!(
        bus.open_queue("nope"),
        Err(Error::NotFound { .. })
    ));
    drop(pipe);
}

#[test]
fn daemon_queue_flags_and_config() {
    let bad = Command::new(support::shmbusd())
        .args(["--name", &support::unique_bus("q-bad"), "--queue", "a:3"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--queue a:3") && err.contains("power of two"),
        "{err}"
    );

    let dir = std::env::temp_dir().join(support::unique_bus("q-conf"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bus.toml");
    std::fs::write(
        &conf,
        "[[queue]]\nname = \"a\"\nslots = 16\nslot_size = \"1K\"\n[[queue]]\nname = \"b\"\n",
    )
    .unwrap();
    let d = Daemon::start(
        "q-conf",
        &["--config", conf.to_str().unwrap(), "--queue", "c:4"],
    );
    let bus = d.connect();
    let a = bus.open_queue("a").unwrap();
    assert_eq!((a.slots(), a.slot_size()), (16, 1024));
    let b = bus.open_queue("b").unwrap();
    assert_eq!((b.slots(), b.slot_size()), (1024, 256));
    let c = bus.open_queue("c").unwrap();
    assert_eq!((c.slots(), c.slot_size()), (4, 256));
    let _ = std::fs::remove_dir_all(&dir);
}

/// How long the timed forms are given when they are meant to run out.
const SHORT: Duration = Duration::from_millis(20);

/// Every form of every waiting queue call (the crate docs' "Blocking
/// calls"): each takes or puts when it can, the `try_` forms say `Full` or
/// `Empty` when they cannot and the timed forms `Timeout`, and the waiting
/// forms, asleep, are woken by another connection's put, get or `task_done`.
#[test]
fn queue_every_form_of_every_waiting_call() {
    let d = Daemon::start("q-forms", &[]);
    let bus = d.connect();
    let q = bus
        .queue_builder("forms")
        .slots(2)
        .slot_size(8)
        .open()
        .unwrap();
    let other = Bus::connect_to(&d.bus)
        .unwrap()
        .open_queue("forms")
        .unwrap();
    let later = || Instant::now() + WATCHDOG;
    let soon = || Instant::now() + SHORT;

    // Puts and claims with room, then on a full queue.
    q.put_timeout(b"a", WATCHDOG).unwrap();
    q.put_deadline(b"b", later()).unwrap();
    assert!(q.is_full());
    assert!(matches!(q.try_put(b"x"), Err(Error::Full)));
    assert!(matches!(q.try_claim(1), Err(Error::Full)));
    assert!(matches!(q.put_timeout(b"x", SHORT), Err(Error::Timeout)));
    assert!(matches!(q.put_deadline(b"x", soon()), Err(Error::Timeout)));
    assert!(matches!(q.claim_timeout(1, SHORT), Err(Error::Timeout)));
    assert!(matches!(q.claim_deadline(1, soon()), Err(Error::Timeout)));
    assert_eq!(other.get_deadline(later()).unwrap(), b"a");
    assert_eq!(
        other.get_with_timeout(WATCHDOG, <[u8]>::to_vec).unwrap(),
        b"b"
    );
    let mut c = q.claim_deadline(3, later()).unwrap();
    c.copy_from_slice(b"c-1");
    c.commit().unwrap();
    let mut c = q.claim_timeout(3, WATCHDOG).unwrap();
    c.copy_from_slice(b"c-2");
    c.commit().unwrap();

    // Gets into a buffer, with items and without.
    let mut buf = b"old contents".to_vec();
    assert_eq!(other.try_get_into(&mut buf).unwrap(), 3);
    assert_eq!(buf, b"c-1");
    assert_eq!(other.get_into_timeout(&mut buf, WATCHDOG).unwrap(), 3);
    assert_eq!(buf, b"c-2");
    q.put(b"d").unwrap();
    q.put(b"e").unwrap();
    assert_eq!(other.get_into_deadline(&mut buf, later()).unwrap(), 1);
    assert_eq!(buf, b"d");
    assert_eq!(
        other.get_with_deadline(later(), <[u8]>::to_vec).unwrap(),
        b"e"
    );
    assert!(q.is_empty());
    assert!(matches!(other.try_get(), Err(Error::Empty)));
    assert!(matches!(other.try_get_into(&mut buf), Err(Error::Empty)));
    assert!(matches!(other.try_get_with(<[u8]>::len), Err(Error::Empty)));
    assert!(matches!(other.get_timeout(SHORT), Err(Error::Timeout)));
    assert!(matches!(other.get_deadline(soon()), Err(Error::Timeout)));
    assert!(matches!(
        other.get_into_timeout(&mut buf, SHORT),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        other.get_into_deadline(&mut buf, soon()),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        other.get_with_timeout(SHORT, <[u8]>::len),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        other.get_with_deadline(soon(), <[u8]>::len),
        Err(Error::Timeout)
    ));
    assert_eq!(buf, b"d", "a get that took nothing left the buffer alone");

    // Asleep on an empty queue, each get form is woken by a put.
    let o = other.clone();
    let got = woken(move || o.get(), || q.put(b"f").unwrap());
    assert_eq!(got.unwrap(), b"f");
    let o = other.clone();
    let got = woken(
        move || {
            let mut buf = Vec::new();
            o.get_into_deadline(&mut buf, later()).map(|_| buf)
        },
        || q.put(b"g").unwrap(),
    );
    assert_eq!(got.unwrap(), b"g");
    let o = other.clone();
    let got = woken(
        move || o.get_with_timeout(WATCHDOG, <[u8]>::to_vec),
        || q.put(b"h").unwrap(),
    );
    assert_eq!(got.unwrap(), b"h");

    // Asleep on a full queue, each put form is woken by a get.
    q.put(b"i").unwrap();
    q.put(b"j").unwrap();
    let p = q.clone();
    let r = woken(
        move || p.put_deadline(b"k", later()),
        || assert_eq!(other.get().unwrap(), b"i"),
    );
    r.unwrap();
    let p = q.clone();
    let r = woken(
        move || {
            let mut c = p.claim_timeout(1, WATCHDOG)?;
            c.copy_from_slice(b"l");
            c.commit()
        },
        || assert_eq!(other.get().unwrap(), b"j"),
    );
    r.unwrap();
    assert_eq!(other.get().unwrap(), b"k");
    assert_eq!(other.get().unwrap(), b"l");

    // join: 13 items put ("a" to "l", with "c-1" and "c-2"), none done yet.
    let items = q.unfinished();
    assert_eq!(items, 13);
    assert!(matches!(q.join_timeout(SHORT), Err(Error::Timeout)));
    assert!(matches!(q.join_deadline(soon()), Err(Error::Timeout)));
    for _ in 1..items {
        other.task_done().unwrap();
    }
    assert_eq!(q.unfinished(), 1);
    let p = q.clone();
    let r = woken(
        move || p.join_deadline(later()),
        || other.task_done().unwrap(),
    );
    r.unwrap();
    q.join().unwrap();
    q.join_timeout(SHORT).unwrap();
    q.join_deadline(soon()).unwrap();
}
