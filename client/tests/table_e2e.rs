//! End-to-end tests of values and arrays: the library against a real
//! `shmbusd`, and the `shmbus create value|array`, `get`, `set`, `add` and
//! `watch` commands, including type errors and Python typecodes.
//!
//! The tests that drive the `shmbus` command are in `cli/tests/table_e2e.rs`.

use shmbus_test_support as support;

use std::time::{Duration, Instant};

use shmbus_client::{Bus, ElemType, Error, Kind};
use support::{woken, Daemon, WATCHDOG};

#[test]
fn library_values_and_arrays() {
    let d = Daemon::start("tbl-lib", &[]);
    let bus = d.connect();
    let x = bus.value::<f64>("x").unwrap();
    assert_eq!((x.load(), x.version()), (0.0, 0));
    x.store(1.5).unwrap();
    assert_eq!(x.update(|v| v * 2.0).unwrap(), 3.0);
    assert_eq!(x.load_versioned(), (3.0, 2));
    // A second handle (as another process would open it) sees the same.
    assert_eq!(bus.open_value::<f64>("x").unwrap().load(), 3.0);

    let n = bus.value::<i8>("n").unwrap();
    assert_eq!(n.fetch_add(127).unwrap(), 0);
    assert_eq!(n.fetch_add(1).unwrap(), 127);
    assert_eq!(n.load(), -128, "wrapping, as AtomicI8::fetch_add");

    let a = bus.array::<u16>("a", 5).unwrap();
    a.write(&[1, 2, 3, 4, 65535]).unwrap();
    a.update(|xs| xs[0] = 9).unwrap();
    assert_eq!(a.read(), [9, 2, 3, 4, 65535]);
    assert_eq!((a.get(0), a.get(3), a.get(4)), (9, 4, 65535));
    a.set(1, 7).unwrap();
    assert_eq!(a.read(), [9, 7, 3, 4, 65535]);
    a.set(1, 2).unwrap();
    let mut buf = [0u16; 5];
    assert_eq!(a.read_into(&mut buf).unwrap(), 4);
    assert!(matches!(
        a.write(&[1, 2]),
        Err(Error::LengthMismatch {
            expected: 5,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        a.read_into(&mut [0u16; 4]),
        Err(Error::LengthMismatch { .. })
    ));
    assert_eq!(bus.open_array::<u16>("a").unwrap().len(), 5);

    // Another type or length: TypeMismatch naming both.
    match bus.array::<u16>("a", 6) {
        Err(Error::TypeMismatch {
            expected, found, ..
        }) => assert_eq!((expected.as_str(), found.as_str()), ("u16[6]", "u16[5]")),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let e = bus.value::<i32>("x").unwrap_err();
    assert!(
        matches!(&e, Error::TypeMismatch { expected, found, .. }
            if expected == "i32 value" && found == "f64 value"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("f64 value") && e.to_string().contains("i32 value"),
        "{e}"
    );
    assert!(matches!(
        bus.value::<u16>("a"),
        Err(Error::KindMismatch {
            found: Some(Kind::Array),
            ..
        })
    ));
    assert!(matches!(
        bus.open_value::<f64>("nope"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(bus.table("nope"), Err(Error::NotFound { .. })));
    assert!(matches!(
        bus.array::<u8>("z", 0),
        Err(Error::BadParams { .. })
    ));

    let t = bus.table("a").unwrap();
    assert_eq!(
        (t.kind(), t.elem(), t.len()),
        (Kind::Array, ElemType::U16, 5)
    );
    assert_eq!(t.read_strings(), ["9", "2", "3", "4", "65535"]);

    // wait_changed: times out, then sees a store from another thread.
    let v = x.version();
    assert!(matches!(
        x.wait_changed_timeout(v, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let x2 = x.clone();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        x2.store(-1.0).unwrap();
    });
    assert_eq!(x.wait_changed_timeout(v, WATCHDOG).unwrap(), v + 1);
    assert_eq!(x.load(), -1.0);
    h.join().unwrap();
}

/// Every form of `wait_changed` (the crate docs' "Blocking calls") on a
/// value, an array and an untyped table: each returns at once if the version
/// moved since `since`, the timed forms time out if it did not, and a form
/// asleep is woken by a write from another connection.
#[test]
fn wait_changed_every_form() {
    let d = Daemon::start("tbl-forms", &[]);
    let bus = d.connect();
    let writer = Bus::connect_to(&d.bus).unwrap();
    let short = Duration::from_millis(20);
    let soon = || Instant::now() + short;
    let later = || Instant::now() + WATCHDOG;

    let x = bus.value::<u32>("x").unwrap();
    let wx = writer.open_value::<u32>("x").unwrap();
    let v0 = x.version();
    wx.store(1).unwrap();
    // Written since `v0`: every form returns the new version at once.
    assert_eq!(x.wait_changed(v0).unwrap(), v0 + 1);
    assert_eq!(x.wait_changed_timeout(v0, WATCHDOG).unwrap(), v0 + 1);
    assert_eq!(x.wait_changed_deadline(v0, later()).unwrap(), v0 + 1);
    let v1 = v0 + 1;
    assert!(matches!(
        x.wait_changed_timeout(v1, short),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        x.wait_changed_deadline(v1, soon()),
        Err(Error::Timeout)
    ));
    let w = x.clone();
    let got = woken(move || w.wait_changed(v1), || wx.store(2).unwrap());
    assert_eq!(got.unwrap(), v1 + 1);
    let w = x.clone();
    let got = woken(
        move || w.wait_changed_deadline(v1 + 1, later()),
        || wx.store(3).unwrap(),
    );
    assert_eq!(got.unwrap(), v1 + 2);
    assert_eq!(x.load(), 3);

    let a = bus.array::<i16>("a", 3).unwrap();
    let wa = writer.open_array::<i16>("a").unwrap();
    let v = a.version();
    assert!(matches!(
        a.wait_changed_timeout(v, short),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        a.wait_changed_deadline(v, soon()),
        Err(Error::Timeout)
    ));
    let w = a.clone();
    let got = woken(
        move || w.wait_changed_timeout(v, WATCHDOG),
        || wa.write(&[1, 2, 3]).unwrap(),
    );
    assert_eq!(got.unwrap(), v + 1);
    assert_eq!(a.wait_changed(v).unwrap(), v + 1);
    let w = a.clone();
    let got = woken(move || w.wait_changed(v + 1), || wa.set(0, 9).unwrap());
    assert_eq!(got.unwrap(), v + 2);
    assert_eq!(a.read(), [9, 2, 3]);

    let t = bus.table("a").unwrap();
    let v = t.version();
    assert!(matches!(
        t.wait_changed_timeout(v, short),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        t.wait_changed_deadline(v, soon()),
        Err(Error::Timeout)
    ));
    let w = t.clone();
    let got = woken(
        move || w.wait_changed_deadline(v, later()),
        || wa.write(&[4, 5, 6]).unwrap(),
    );
    assert_eq!(got.unwrap(), v + 1);
    assert_eq!(t.wait_changed(v).unwrap(), v + 1);
    assert_eq!(t.wait_changed_timeout(v, WATCHDOG).unwrap(), v + 1);
    assert_eq!(t.read_strings(), ["4", "5", "6"]);
}
