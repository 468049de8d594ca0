//! The `icount` role: one operation pair repeated `n` times in one thread,
//! for instruction counts per operation under `valgrind --tool=callgrind`
//! (run it with two values of `n` and divide the difference of the totals by
//! the difference of the `n`s, which removes start-up and set-up). See the
//! README section "Benchmarks".
//!
//! The loops have the shape of the timed rows' loops (the same client calls,
//! the same fixed- or runtime-length frames), so the compiler inlines what it
//! inlines there.

use shmbus_client::{Bus, PipeReceiver, PipeSender, Queue};

use crate::proc::unique;
use crate::shared::ARRAY_LEN;

/// Operations the role knows, as `(name, what one repetition does)`.
pub(crate) const OPS: [(&str, &str); 6] = [
    ("pipe64", "try_send + try_recv_with of a [u8; 64] frame"),
    (
        "pipe64rt",
        "try_send + try_recv_with of a 64-byte Vec frame",
    ),
    (
        "pipe64batch",
        "try_send_batch of 32 + try_recv_batch_with of up to 64, per [u8; 64] frame",
    ),
    ("queue64", "try_put + try_get_with of a 64-byte item"),
    ("value", "Value<u64>::load"),
    ("array16", "Array<u64>(16)::read_into"),
];

/// Repetitions per burst: each side runs this many in its own function
/// (`icount_send`, `icount_recv`, `icount_put`, `icount_get` and the
/// `_batch` forms, whose
/// inclusive counts `callgrind_annotate --inclusive=yes` shows apart).
const BURST: u64 = 64;

/// Runs `op` `n` times (rounded up to a burst) on a fresh channel of the
/// daemon at `bus`.
pub(crate) fn run(bus: &str, op: &str, n: u64) {
    let b = Bus::connect_to(bus).expect("connect");
    let name = unique("icount");
    let bursts = n.div_ceil(BURST);
    match op {
        "pipe64" | "pipe64rt" => {
            let p = b.pipe_with_capacity(&name, 1 << 16).expect("pipe");
            let mut tx = p.sender().expect("sender");
            let mut rx = p.receiver().expect("receiver");
            if op == "pipe64" {
                let mut buf = [0u8; 64];
                for _ in 0..bursts {
                    icount_send(&mut tx, &[1u8; 64]);
                    icount_recv(&mut rx, &mut buf);
                }
                std::hint::black_box(&buf);
            } else {
                let (frame, mut buf) = (vec![1u8; 64], vec![0u8; 64]);
                for _ in 0..bursts {
                    icount_send(&mut tx, &frame);
                    icount_recv(&mut rx, &mut buf);
                }
                std::hint::black_box(&buf);
            }
        }
        "pipe64batch" => {
            let p = b.pipe_with_capacity(&name, 1 << 16).expect("pipe");
            let mut tx = p.sender().expect("sender");
            let mut rx = p.receiver().expect("receiver");
            let mut buf = [0u8; 64];
            for _ in 0..bursts {
                icount_send_batch(&mut tx);
                icount_recv_batch(&mut rx, &mut buf);
            }
            std::hint::black_box(&buf);
        }
        "queue64" => {
            let q = b
                .queue_builder(&name)
                .slots(4096)
                .slot_size(64)
                .open()
                .expect("queue");
            let mut buf = [0u8; 64];
            for _ in 0..bursts {
                icount_put(&q, &[5u8; 64]);
                icount_get(&q, &mut buf);
            }
            std::hint::black_box(&buf);
        }
        "value" => {
            let v = b.value::<u64>(&name).expect("value");
            for _ in 0..bursts * BURST {
                std::hint::black_box(v.load());
            }
        }
        "array16" => {
            let a = b.array::<u64>(&name, ARRAY_LEN).expect("array");
            let mut buf = [0u64; ARRAY_LEN];
            for _ in 0..bursts * BURST {
                a.read_into(&mut buf).expect("read");
                std::hint::black_box(&buf);
            }
        }
        other => panic!("unknown icount op {other} (one of {OPS:?})"),
    }
}

/// The sending loop of the pipe throughput row's sender, `BURST` frames.
#[inline(never)]
fn icount_send<F: AsRef<[u8]>>(tx: &mut PipeSender, frame: &F) {
    for _ in 0..BURST {
        while tx.try_send(frame.as_ref()).is_err() {
            core::hint::spin_loop();
        }
    }
}

/// The receiving loop of the pipe throughput row, `BURST` frames.
#[inline(never)]
fn icount_recv<B: AsMut<[u8]>>(rx: &mut PipeReceiver, buf: &mut B) {
    for _ in 0..BURST {
        while rx
            .try_recv_with(|b| buf.as_mut().copy_from_slice(b))
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
}

/// The batch row's sending loop, `BURST` frames.
#[inline(never)]
fn icount_send_batch(tx: &mut PipeSender) {
    let frames = [[1u8; 64]; crate::pipe::BATCH];
    for _ in 0..BURST as usize / crate::pipe::BATCH {
        let mut rest = &frames[..];
        while !rest.is_empty() {
            match tx.try_send_batch(rest) {
                Ok(k) => rest = &rest[k..],
                Err(_) => core::hint::spin_loop(),
            }
        }
    }
}

/// The batch row's receiving loop, `BURST` frames.
#[inline(never)]
fn icount_recv_batch(rx: &mut PipeReceiver, buf: &mut [u8; 64]) {
    let mut got = 0;
    while got < BURST as usize {
        match rx.try_recv_batch_with(2 * crate::pipe::BATCH, |b| buf.copy_from_slice(b)) {
            Ok(k) => got += k,
            Err(_) => core::hint::spin_loop(),
        }
    }
}

/// The queue producer role's loop, `BURST` items.
#[inline(never)]
fn icount_put(q: &Queue, item: &[u8; 64]) {
    for _ in 0..BURST {
        while q.try_put(item).is_err() {
            core::hint::spin_loop();
        }
    }
}

/// The queue consumer role's loop, `BURST` items.
#[inline(never)]
fn icount_get(q: &Queue, buf: &mut [u8; 64]) {
    for _ in 0..BURST {
        while q
            .try_get_with(|x| buf[..x.len()].copy_from_slice(x))
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
}
