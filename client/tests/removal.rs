//! Removing channels (`Bus::remove`, `shmbus rm`) against a real `shmbusd`
//! and real processes: `unlink` semantics (the name goes at once, holders
//! keep working, the space is reused once the last holder is gone, dead
//! holders included), and the cases of issue #10 (a typo, a pipe where a
//! queue was meant, a queue's leftovers making `join()` hang).
//!
//! The tests that drive the `shmbus` command are in `cli/tests/removal.rs`.

use shmbus_test_support as support;

use shmbus_client::{ElemType, Error};
use support::Daemon;

#[test]
fn space_is_reused_across_many_create_remove_cycles() {
    // 1 MiB arena, 8 directory entries: 600 cycles of mixed kinds and sizes
    // (about 100 MiB in all) fit only if entries and space are reused.
    let d = Daemon::start("rm-cycles", &["--max-channels", "8"]);
    let bus = d.connect();
    let mut bytes = 0u64;
    for n in 0..600u64 {
        let name = format!("c{}", n % 5);
        match n % 4 {
            0 => {
                let p = bus.pipe_with_capacity(&name, 1 << 19).unwrap();
                let (mut tx, mut rx) = (p.sender().unwrap(), p.receiver().unwrap());
                tx.send(&n.to_le_bytes()).unwrap();
                assert_eq!(rx.recv().unwrap(), n.to_le_bytes());
                bytes += 1 << 19;
            }
            1 => {
                let q = bus
                    .queue_builder(&name)
                    .slots(256)
                    .slot_size(512)
                    .open()
                    .unwrap();
                q.put(b"left over").unwrap();
                bytes += 256 * 512;
            }
            2 => {
                let t = bus.create_array(&name, ElemType::U64, 4096).unwrap();
                assert!(t.read_strings().iter().all(|s| s == "0"), "not zeroed");
                t.write_strings(&["7"; 4096]).unwrap();
                bytes += 2 * 8 * 4096;
            }
            _ => {
                let p = bus.pipe_with_capacity(&name, 64).unwrap();
                drop(p.sender().unwrap());
            }
        }
        // The handle is dropped: nobody holds it, so it is freed at once.
        assert_eq!(bus.remove(&name).unwrap(), 0, "cycle {n}");
    }
    assert!(bytes > 64 << 20, "{bytes}");
    assert!(bus.channels().is_empty(), "{:?}", bus.channels());

    // Space held by a removed channel is reused only when its holder goes.
    let big = bus.pipe_with_capacity("big", 1 << 19).unwrap();
    bus.remove("big").unwrap();
    assert!(matches!(
        bus.pipe_with_capacity("big2", 1 << 19),
        Err(Error::NoSpace { .. })
    ));
    drop(big);
    bus.pipe_with_capacity("big2", 1 << 19).unwrap();
}
