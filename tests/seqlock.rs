//! Threaded stress tests of the value/array seqlock on heap state: no torn
//! reads for every element width (several elements share a word for the
//! narrow types), exact totals from competing read-modify-writes, and
//! `wait_changed` wake-ups.
#![cfg(not(loom))]

use std::sync::Arc;
use std::time::Duration;

use shmbus::seqlock::{Element, HeapSeqlock, Integer};
use shmbus::sync::{AtomicU32, Ordering};

/// Reads per reader thread; shrunk under Miri.
const READS: u64 = if cfg!(miri) { 200 } else { 200_000 };
/// Increments per writer thread.
const INCS: u64 = if cfg!(miri) { 100 } else { 20_000 };

/// One writer stores arrays of 13 equal elements (`k` as `T`) into `copies`
/// copies, two readers check every read is untorn.
fn never_torn<T: Element + From<u8>>(copies: u64) {
    let h = Arc::new(HeapSeqlock::with_copies::<T>(13, copies));
    let stop = Arc::new(AtomicU32::new(0));
    let writer = {
        let (h, stop) = (h.clone(), stop.clone());
        std::thread::spawn(move || {
            // SAFETY: `h` keeps the array alive while this thread uses `s`.
            let s = unsafe { h.handle() };
            let mut k = 0u8;
            while stop.load(Ordering::Relaxed) == 0 {
                k = k.wrapping_add(1);
                let mut w = s.lock(1, None, None).unwrap();
                w.write(&[T::from(k); 13]);
                w.publish();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                // SAFETY: `h` keeps the array alive while this thread uses `s`.
                let s = unsafe { h.handle() };
                let mut buf = [T::default(); 13];
                let mut changes = 0u64;
                let mut last = T::default();
                for _ in 0..READS {
                    s.read_into(&mut buf);
                    assert!(buf.iter().all(|&e| e == buf[0]), "torn: {buf:?}");
                    if buf[0] != last {
                        changes += 1;
                        last = buf[0];
                    }
                }
                changes
            })
        })
        .collect();
    let changes: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    stop.store(1, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(changes > 0, "readers never saw a write");
}

#[test]
fn never_torn_every_width_and_copy_count() {
    // 8 is what `copies` gives 13 elements; 2 rewrites a copy soonest.
    for copies in [2, 4, 8] {
        never_torn::<u8>(copies);
        never_torn::<i16>(copies);
        never_torn::<u32>(copies);
        never_torn::<f32>(copies);
        never_torn::<i64>(copies);
        never_torn::<f64>(copies);
    }
}

fn exact_total<T: Integer + From<u8> + Into<i128>>() {
    let h = Arc::new(HeapSeqlock::new::<T>(3));
    let writers: Vec<_> = (1..=4u16)
        .map(|me| {
            let h = h.clone();
            std::thread::spawn(move || {
                // SAFETY: `h` keeps the array alive while this thread uses `s`.
                let s = unsafe { h.handle() };
                let mut cur = [T::default(); 3];
                for _ in 0..INCS {
                    let mut w = s.lock(me, None, None).unwrap();
                    w.read_into(&mut cur);
                    for c in &mut cur {
                        *c = c.wrapping_add(T::from(1));
                    }
                    w.write(&cur);
                    w.publish();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // SAFETY: `h` outlives `s`.
    let s = unsafe { h.handle() };
    let mut out = [T::default(); 3];
    assert_eq!(s.read_into(&mut out), 4 * INCS);
    let want = (4 * INCS) as i128;
    for o in out {
        let got: i128 = o.into();
        let modulus = 1i128 << (8 * T::TYPE.size());
        assert_eq!(got.rem_euclid(modulus), want % modulus);
    }
}

#[test]
fn competing_writers_lose_nothing() {
    exact_total::<u64>();
    exact_total::<i16>();
    exact_total::<u8>();
}

#[test]
fn wait_changed_wakes_across_threads() {
    let h = Arc::new(HeapSeqlock::new::<f64>(1));
    let waiter = {
        let h = h.clone();
        std::thread::spawn(move || {
            // SAFETY: `h` keeps the value alive while this thread uses `s`.
            let s = unsafe { h.handle() };
            let mut seen = 0;
            while seen < 3 {
                seen = s.wait_changed(seen, None, None).unwrap();
            }
            s.load::<f64>()
        })
    };
    // SAFETY: `h` outlives `s`.
    let s = unsafe { h.handle() };
    for v in 1..=3 {
        std::thread::sleep(Duration::from_millis(20));
        let mut w = s.lock(1, None, None).unwrap();
        w.write(&[f64::from(v)]);
        w.publish();
    }
    assert_eq!(waiter.join().unwrap(), (3.0, 3));
}
