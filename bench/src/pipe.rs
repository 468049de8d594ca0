//! shmbus pipe rows, through the client's public API only.

use std::time::Instant;

use hdrhistogram::Histogram;
use shmbus_client::{Bus, PipeReceiver, PipeSender};

use crate::measure::{Counts, Ctx, Measured};
use crate::proc::{spawn, unique};

/// Ring capacity of the throughput pipes (largest frame: 128 KiB).
const TPUT_CAPACITY: u64 = 1 << 20;

pub(crate) fn seq_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// How the round trip waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Both sides busy-poll `try_send`/`try_recv_with`.
    Busy,
    /// `send`/`recv_with` (spin briefly, then sleep on the shared futex),
    /// round trips back to back: the spin phase usually catches the answer.
    BackToBack,
    /// `send`/`recv_with` after an idle gap (`floor::GAP`, not timed) before
    /// each round trip, so both sides really sleep in the futex.
    Sleeping,
}

/// Pipe round trip with `size`-byte frames through a `ping` and a `pong`
/// pipe.
pub(crate) fn round_trip(ctx: &Ctx, size: usize, wait: Wait) -> Measured {
    let n = match wait {
        Wait::Busy => ctx.counts.busy_round_trips,
        Wait::BackToBack => ctx.counts.kernel_round_trips,
        Wait::Sleeping => ctx.counts.sleeping_round_trips,
    };
    let blocking = wait != Wait::Busy;
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let tag = unique(if blocking { "rtb" } else { "rt" });
    let mut tx = bus
        .pipe(&format!("{tag}-ping"))
        .expect("ping pipe")
        .sender()
        .expect("ping sender");
    let mut rx = bus
        .pipe(&format!("{tag}-pong"))
        .expect("pong pipe")
        .receiver()
        .expect("pong receiver");
    let kid = spawn(
        "pipe-echo",
        &[
            ctx.bus().to_owned(),
            tag,
            n.to_string(),
            size.to_string(),
            blocking.to_string(),
        ],
        ctx.placement.child,
    );
    let mut frame = vec![0u8; size.max(8)];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..n {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        if wait == Wait::Sleeping {
            crate::floor::idle_gap();
        }
        let t = Instant::now();
        let got = if blocking {
            tx.send(&frame).expect("send");
            rx.recv_with(seq_of).expect("recv")
        } else {
            while tx.try_send(&frame).is_err() {
                core::hint::spin_loop();
            }
            loop {
                if let Ok(v) = rx.try_recv_with(seq_of) {
                    break v;
                }
                core::hint::spin_loop();
            }
        };
        h.record(t.elapsed().as_nanos() as u64).expect("record");
        assert_eq!(got, i, "echo out of order");
    }
    drop(tx);
    kid.wait();
    Measured::latency(h)
}

/// The `pipe-echo` role: bounce every frame back.
pub(crate) fn echo(bus: &str, tag: &str, n: u64, size: usize, blocking: bool) {
    let b = Bus::connect_to(bus).expect("connect");
    let mut rx = b
        .pipe(&format!("{tag}-ping"))
        .expect("ping pipe")
        .receiver()
        .expect("ping receiver");
    let mut tx = b
        .pipe(&format!("{tag}-pong"))
        .expect("pong pipe")
        .sender()
        .expect("pong sender");
    let mut frame = vec![0u8; size.max(8)];
    for _ in 0..n {
        if blocking {
            rx.recv_with(|b| frame.copy_from_slice(b)).expect("recv");
            tx.send(&frame).expect("send");
        } else {
            while rx.try_recv_with(|b| frame.copy_from_slice(b)).is_err() {
                core::hint::spin_loop();
            }
            while tx.try_send(&frame).is_err() {
                core::hint::spin_loop();
            }
        }
    }
}

/// Calls `$f::<N>($args)` for the `N` equal to `$size`, one of the sizes of
/// [`crate::SIZES`] or 56 (the one-line record row; a panic otherwise).
macro_rules! by_size {
    ($size:expr, $f:ident, ($($arg:expr),*)) => {
        match $size {
            8 => $f::<8>($($arg),*),
            56 => $f::<56>($($arg),*),
            64 => $f::<64>($($arg),*),
            256 => $f::<256>($($arg),*),
            1024 => $f::<1024>($($arg),*),
            4096 => $f::<4096>($($arg),*),
            16384 => $f::<16384>($($arg),*),
            65536 => $f::<65536>($($arg),*),
            other => panic!("no fixed-length frame of {other} bytes"),
        }
    };
}

/// How the throughput rows give the frame length to `try_send` and
/// `try_recv_with`.
///
/// With a length known at compile time (a fixed-size array, as a program
/// sending one struct has) the compiler inlines `try_send` into the sending
/// loop, folds its length checks and copies the frame with a few vector
/// moves. With a length known only at run time (a `Vec`) it keeps
/// `Producer::try_send` out of line and copies through libc's `memcpy`:
/// about 110 instructions per 64-byte frame on the sending side instead of
/// about 67 (callgrind), and the sender is what limits one-way throughput.
/// This is why this suite (runtime length until then) and the former
/// `cargo bench --bench pipe` (`[u8; 64]`) disagreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Len {
    /// `[u8; N]` on both sides (only for the sizes of [`crate::SIZES`]).
    Fixed,
    /// A `Vec<u8>` of the size given at run time.
    Runtime,
    /// `[u8; 64]` frames through the batch forms: `try_send_batch` of
    /// [`BATCH`] frames, `try_recv_batch_with` of up to `2 * BATCH`.
    Batch,
}

/// Frames per `try_send_batch` of the batch row.
pub(crate) const BATCH: usize = 32;

/// One-way pipe throughput of `size`-byte frames: a child process sends with
/// `try_send` as fast as it can; this process copies each frame out with
/// `try_recv_with` (as `read(2)` copies into a buffer). Messages per second
/// from the first frame received to the last, one entry per run.
pub(crate) fn throughput(ctx: &Ctx, size: usize, len: Len) -> Measured {
    let n = Counts::scaled(ctx.counts.shm_messages, size);
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let name = unique("tput");
        let mut rx = bus
            .pipe_with_capacity(&name, TPUT_CAPACITY)
            .expect("pipe")
            .receiver()
            .expect("receiver");
        let kid = spawn(
            "pipe-sender",
            &[
                ctx.bus().to_owned(),
                name,
                n.to_string(),
                size.to_string(),
                format!("{len:?}"),
            ],
            ctx.placement.child,
        );
        let secs = match len {
            Len::Fixed => by_size!(size, drain_fixed, (&mut rx, n)),
            Len::Runtime => drain(&mut rx, n, vec![0u8; size]),
            Len::Batch => drain_batch(&mut rx, n),
        };
        kid.wait();
        rates.push((n - 1) as f64 / secs);
    }
    Measured::rates(rates)
}

fn drain_fixed<const N: usize>(rx: &mut PipeReceiver, n: u64) -> f64 {
    drain(rx, n, [0u8; N])
}

/// Receives `n` frames, copying each into `buf`; seconds from the first to
/// the last.
#[inline(always)]
fn drain<B: AsMut<[u8]>>(rx: &mut PipeReceiver, n: u64, mut buf: B) -> f64 {
    let (mut got, mut start) = (0u64, None);
    while got < n {
        match rx.try_recv_with(|b| buf.as_mut().copy_from_slice(b)) {
            Ok(()) => {
                if got == 0 {
                    start = Some(Instant::now());
                }
                got += 1;
            }
            Err(_) => core::hint::spin_loop(),
        }
    }
    let secs = start.expect("started").elapsed().as_secs_f64();
    std::hint::black_box(buf.as_mut());
    secs
}

/// Receives `n` 64-byte frames in batches, as [`drain`].
fn drain_batch(rx: &mut PipeReceiver, n: u64) -> f64 {
    let (mut got, mut start) = (0u64, None);
    let mut buf = [0u8; 64];
    while got < n {
        match rx.try_recv_batch_with(2 * BATCH, |b| buf.copy_from_slice(b)) {
            Ok(k) => {
                if got == 0 {
                    start = Some(Instant::now());
                }
                got += k as u64;
            }
            Err(_) => core::hint::spin_loop(),
        }
    }
    let secs = start.expect("started").elapsed().as_secs_f64();
    std::hint::black_box(&buf);
    secs
}

/// The `pipe-sender` role; `len` is a [`Len`] in `Debug` form.
pub(crate) fn sender(bus: &str, name: &str, n: u64, size: usize, len: &str) {
    let b = Bus::connect_to(bus).expect("connect");
    let mut tx = b.pipe(name).expect("pipe").sender().expect("sender");
    match len {
        "Fixed" => by_size!(size, send_fixed, (&mut tx, n)),
        "Runtime" => send(&mut tx, n, &vec![1u8; size]),
        "Batch" => send_batch(&mut tx, n),
        other => panic!("unknown frame length form {other}"),
    }
}

/// Sends `n` 64-byte frames, [`BATCH`] per `try_send_batch`.
fn send_batch(tx: &mut PipeSender, n: u64) {
    let frames = [[1u8; 64]; BATCH];
    let mut left = n as usize;
    while left > 0 {
        let mut rest = &frames[..left.min(BATCH)];
        while !rest.is_empty() {
            match tx.try_send_batch(rest) {
                Ok(k) => {
                    rest = &rest[k..];
                    left -= k;
                }
                Err(_) => core::hint::spin_loop(),
            }
        }
    }
}

fn send_fixed<const N: usize>(tx: &mut PipeSender, n: u64) {
    send(tx, n, &[1u8; N]);
}

#[inline(always)]
fn send(tx: &mut PipeSender, n: u64, frame: &[u8]) {
    for _ in 0..n {
        while tx.try_send(frame).is_err() {
            core::hint::spin_loop();
        }
    }
}
