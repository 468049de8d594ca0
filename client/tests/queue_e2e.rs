//! End-to-end tests of queues: the client library and the `shmbus` command
//! against a real `shmbusd` and real processes.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/queue_e2e.rs`.

use shmbus_test_support as support;

use std::process::Command;
use std::time::Duration;

use shmbus_client::{Bus, ChannelDetails, Error, Kind};
use support::Daemon;

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
