//! shmbus value and array rows, through the client's public API only.

use std::time::{Duration, Instant};

use shmbus_client::Bus;

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, unique};

/// Number of elements of the array rows.
pub(crate) const ARRAY_LEN: usize = 16;

/// Value (`array == false`) or 16-element array reads (`writes == false`)
/// or writes per second in this process, while a child process writes (or
/// reads) the same table as fast as it can, or a writer stores `pace` times
/// a second (0: flat out). Array reads are checked untorn (the writer stores
/// 16 equal elements).
pub(crate) fn table_rate(ctx: &Ctx, array: bool, writes: bool, pace: u64) -> Measured {
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let mut rates = Vec::new();
    let (mut torn, mut total) = (0u64, 0u64);
    for _ in 0..ctx.counts.runs {
        let name = unique(if array { "arr" } else { "val" });
        let stop_name = format!("{name}-stop");
        let stop = bus.value::<u64>(&stop_name).expect("stop value");
        let value = (!array).then(|| bus.value::<u64>(&name).expect("value"));
        let arr = array.then(|| bus.array::<u64>(&name, ARRAY_LEN).expect("array"));
        let role = if writes {
            "table-reader"
        } else {
            "table-writer"
        };
        let kid = spawn(
            role,
            &[
                ctx.bus().to_owned(),
                name.clone(),
                stop_name,
                array.to_string(),
                pace.to_string(),
            ],
            ctx.placement.child,
        );
        // Wait until the peer runs: the writer's first store, or the
        // reader's "ready" mark in the stop value.
        let ready = || {
            if writes {
                stop.load() == 1
            } else if let Some(v) = &value {
                v.load() != 0
            } else {
                arr.as_ref().unwrap().read()[0] != 0
            }
        };
        while !ready() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let secs = ctx.counts.shared_secs;
        let mut buf = [0u64; ARRAY_LEN];
        let mut ops = 0u64;
        let mut i = 0u64;
        let t = Instant::now();
        loop {
            for _ in 0..1024 {
                match (&value, &arr, writes) {
                    (Some(v), _, false) => {
                        std::hint::black_box(v.load());
                    }
                    (Some(v), _, true) => {
                        i += 1;
                        v.store(i).expect("store");
                    }
                    (_, Some(a), false) => {
                        a.read_into(&mut buf).expect("read");
                        if buf.iter().any(|&x| x != buf[0]) {
                            torn += 1;
                        }
                        total += 1;
                    }
                    (_, Some(a), true) => {
                        i += 1;
                        a.write(&[i; ARRAY_LEN]).expect("write");
                    }
                    _ => unreachable!(),
                }
            }
            ops += 1024;
            if t.elapsed().as_secs_f64() >= secs {
                break;
            }
        }
        let el = t.elapsed().as_secs_f64();
        stop.store(2).expect("stop");
        kid.wait();
        rates.push(ops as f64 / el);
    }
    let mut m = Measured::rates(rates);
    if array && !writes {
        m.torn_pct = Some(100.0 * torn as f64 / total.max(1) as f64);
        m.note = format!("{torn} torn of {total} reads");
    }
    m
}

/// The `table-writer` role: stores 1, 2, 3… (in every element) until the
/// stop value is 2, as fast as it can (`pace` 0) or `pace` times a second.
pub(crate) fn table_writer(bus: &str, name: &str, stop: &str, array: bool, pace: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.value::<u64>(stop).expect("stop");
    let a = array.then(|| b.array::<u64>(name, ARRAY_LEN).expect("array"));
    let v = (!array).then(|| b.value::<u64>(name).expect("value"));
    let start = Instant::now();
    let mut i = 0u64;
    while stop.load() != 2 {
        for _ in 0..256 {
            i += 1;
            match (&a, &v) {
                (Some(a), _) => a.write(&[i; ARRAY_LEN]).expect("write"),
                (_, Some(v)) => v.store(i).expect("store"),
                _ => unreachable!(),
            }
            if let Some(ns) = (i * 1_000_000_000).checked_div(pace) {
                let due = start + Duration::from_nanos(ns);
                while Instant::now() < due {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

/// One operation of the uncontended rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AloneOp {
    ValueRead,
    ValueWrite,
    /// `Value::update(|x| x + 1)` (writer lock, read, store).
    ValueUpdate,
    ArrayRead,
    ArrayWrite,
}

/// Operations per second on a value or a 16-element array that no other
/// process touches: the cost of the operation itself.
pub(crate) fn table_alone(ctx: &Ctx, op: AloneOp) -> Measured {
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let name = unique("alone");
        let v = bus.value::<u64>(&format!("{name}-v")).expect("value");
        let a = bus
            .array::<u64>(&format!("{name}-a"), ARRAY_LEN)
            .expect("array");
        let mut buf = [0u64; ARRAY_LEN];
        let row = [1u64; ARRAY_LEN];
        let (mut ops, mut i) = (0u64, 0u64);
        let t = Instant::now();
        loop {
            for _ in 0..1024 {
                match op {
                    AloneOp::ValueRead => {
                        std::hint::black_box(v.load());
                    }
                    AloneOp::ValueWrite => {
                        i += 1;
                        v.store(i).expect("store");
                    }
                    AloneOp::ValueUpdate => {
                        v.update(|x| x.wrapping_add(1)).expect("update");
                    }
                    AloneOp::ArrayRead => {
                        a.read_into(&mut buf).expect("read");
                        std::hint::black_box(&buf);
                    }
                    AloneOp::ArrayWrite => a.write(&row).expect("write"),
                }
            }
            ops += 1024;
            if t.elapsed().as_secs_f64() >= ctx.counts.shared_secs {
                break;
            }
        }
        rates.push(ops as f64 / t.elapsed().as_secs_f64());
    }
    Measured::rates(rates)
}

/// The `table-reader` role: reads until the stop value is 2, after setting it
/// to 1 ("ready"); panics (fails the row) on a torn array read.
pub(crate) fn table_reader(bus: &str, name: &str, stop: &str, array: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let stop = b.value::<u64>(stop).expect("stop");
    let mut buf = [0u64; ARRAY_LEN];
    let a = array.then(|| b.array::<u64>(name, ARRAY_LEN).expect("array"));
    let v = (!array).then(|| b.value::<u64>(name).expect("value"));
    stop.store(1).expect("ready");
    while stop.load() != 2 {
        for _ in 0..256 {
            if let Some(a) = &a {
                a.read_into(&mut buf).expect("read");
                assert!(buf.iter().all(|&x| x == buf[0]), "torn read {buf:?}");
            } else if let Some(v) = &v {
                std::hint::black_box(v.load());
            }
        }
    }
}
