//! What users would pick instead: a Unix domain socket and `pipe(2)` between
//! two processes, and crossbeam-channel between two threads (the in-process
//! reference). The shared-futex floor is in `floor.rs`.
//!
//! Socket and pipe messages are one `write(2)` and one `read(2)` (via
//! `write_all`/`read_exact`) per message on each side, as a program that
//! sends discrete messages does; nothing is batched.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::measure::{Counts, Ctx, Measured};
use crate::proc::{pin, spawn_with};

/// Which kernel transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `socketpair(AF_UNIX, SOCK_STREAM)`.
    Uds,
    /// Two `pipe(2)`s (one per direction).
    Pipe,
}

/// The child's ends and the parent's ends of a two-way channel.
struct Duplex {
    /// Parent reads here.
    parent_rx: Box<dyn Read>,
    /// Parent writes here.
    parent_tx: Box<dyn Write>,
    /// Child's stdin (it reads here).
    child_in: Stdio,
    /// Child's stdout (it writes here).
    child_out: Stdio,
}

fn duplex(t: Transport) -> Duplex {
    match t {
        Transport::Uds => {
            let (mine, theirs) = UnixStream::pair().expect("socketpair");
            let mine2 = mine.try_clone().expect("dup");
            let theirs2 = theirs.try_clone().expect("dup");
            Duplex {
                parent_rx: Box::new(mine),
                parent_tx: Box::new(mine2),
                child_in: Stdio::from(OwnedFd::from(theirs)),
                child_out: Stdio::from(OwnedFd::from(theirs2)),
            }
        }
        Transport::Pipe => {
            let (ping_r, ping_w) =
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
            let (pong_r, pong_w) =
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
            Duplex {
                parent_rx: Box::new(std::fs::File::from(pong_r)),
                parent_tx: Box::new(std::fs::File::from(ping_w)),
                child_in: Stdio::from(ping_r),
                child_out: Stdio::from(pong_w),
            }
        }
    }
}

/// The child's stdin and stdout as owned files.
fn child_ends() -> (std::fs::File, std::fs::File) {
    let i = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("dup stdin");
    let o = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .expect("dup stdout");
    (std::fs::File::from(i), std::fs::File::from(o))
}

/// Round trip of `size`-byte messages over `t`; both sides block in `read`.
pub(crate) fn round_trip(ctx: &Ctx, t: Transport, size: usize) -> Measured {
    let n = ctx.counts.kernel_round_trips;
    let d = duplex(t);
    let (mut rx, mut tx) = (d.parent_rx, d.parent_tx);
    let kid = spawn_with(
        "kernel-echo",
        &[n.to_string(), size.to_string()],
        ctx.placement.child,
        d.child_in,
        d.child_out,
    );
    let mut msg = vec![7u8; size];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..n {
        let t0 = Instant::now();
        tx.write_all(&msg).expect("write");
        rx.read_exact(&mut msg).expect("read");
        h.record(t0.elapsed().as_nanos() as u64).expect("record");
    }
    drop(tx);
    kid.wait();
    Measured::latency(h)
}

/// Round trip of 64-byte messages over a `socketpair` whose parent end is a
/// tokio `UnixStream` on a current-thread runtime: the async peer of
/// `shmbus/select-fd-rt-tokio/1`, with the same idle gap before each
/// message. The child is the `kernel-echo` role, blocking in `read`, as that
/// row's echo blocks in `recv`.
#[cfg(feature = "tokio")]
pub(crate) fn tokio_uds_round_trip(ctx: &Ctx) -> Measured {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = ctx.counts.sleeping_round_trips;
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let theirs2 = theirs.try_clone().expect("dup");
    let kid = spawn_with(
        "kernel-echo",
        &[n.to_string(), "64".into()],
        ctx.placement.child,
        Stdio::from(OwnedFd::from(theirs)),
        Stdio::from(OwnedFd::from(theirs2)),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    rt.block_on(async {
        // Only this end: the child's is another open file description.
        mine.set_nonblocking(true).expect("O_NONBLOCK");
        let mut s = tokio::net::UnixStream::from_std(mine).expect("tokio UnixStream");
        let mut msg = [7u8; 64];
        for _ in 0..n {
            crate::floor::idle_gap();
            let t0 = Instant::now();
            s.write_all(&msg).await.expect("write");
            s.read_exact(&mut msg).await.expect("read");
            h.record(t0.elapsed().as_nanos() as u64).expect("record");
        }
    });
    kid.wait();
    Measured::latency(h)
}

/// The `kernel-echo` role: stdin → stdout, one message at a time.
pub(crate) fn echo(n: u64, size: usize) {
    let (mut i, mut o) = child_ends();
    let mut msg = vec![0u8; size];
    for _ in 0..n {
        i.read_exact(&mut msg).expect("read");
        o.write_all(&msg).expect("write");
    }
}

/// One-way throughput of `size`-byte messages over `t`: the child writes,
/// this process reads; messages per second of each run.
pub(crate) fn throughput(ctx: &Ctx, t: Transport, size: usize) -> Measured {
    let n = Counts::scaled(ctx.counts.kernel_messages, size);
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let d = duplex(t);
        let mut rx = d.parent_rx;
        drop(d.parent_tx);
        let kid = spawn_with(
            "kernel-sender",
            &[n.to_string(), size.to_string()],
            ctx.placement.child,
            d.child_in,
            d.child_out,
        );
        let mut msg = vec![0u8; size];
        rx.read_exact(&mut msg).expect("read");
        let start = Instant::now();
        for _ in 1..n {
            rx.read_exact(&mut msg).expect("read");
        }
        let secs = start.elapsed().as_secs_f64();
        kid.wait();
        rates.push((n - 1) as f64 / secs);
    }
    Measured::rates(rates)
}

/// The `kernel-sender` role: `n` messages to stdout.
pub(crate) fn sender(n: u64, size: usize) {
    let (_i, mut o) = child_ends();
    let msg = vec![1u8; size];
    for _ in 0..n {
        o.write_all(&msg).expect("write");
    }
}

/// crossbeam-channel round trip between two pinned threads of this process,
/// with blocking `send`/`recv` (they spin briefly, then park).
pub(crate) fn crossbeam_round_trip(ctx: &Ctx) -> Measured {
    let n = ctx.counts.busy_round_trips;
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<[u8; 64]>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<[u8; 64]>(1);
    let cpu = ctx.placement.child;
    let echo = std::thread::spawn(move || {
        pin(cpu);
        for _ in 0..n {
            let m = ping_rx.recv().expect("recv");
            pong_tx.send(m).expect("send");
        }
    });
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let msg = [3u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        ping_tx.send(msg).expect("send");
        std::hint::black_box(pong_rx.recv().expect("recv"));
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    echo.join().expect("echo thread");
    Measured::latency(h)
}

/// crossbeam-channel one-way throughput of 64-byte messages through a
/// bounded(4096) channel between two pinned threads.
pub(crate) fn crossbeam_throughput(ctx: &Ctx) -> Measured {
    let n = ctx.counts.shm_messages;
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let (tx, rx) = crossbeam_channel::bounded::<[u8; 64]>(4096);
        let cpu = ctx.placement.child;
        let sender = std::thread::spawn(move || {
            pin(cpu);
            for _ in 0..n {
                tx.send([1u8; 64]).expect("send");
            }
        });
        let mut sum = 0u64;
        sum += rx.recv().expect("recv")[0] as u64;
        let start = Instant::now();
        for _ in 1..n {
            sum += rx.recv().expect("recv")[0] as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        sender.join().expect("sender thread");
        rates.push((n - 1) as f64 / secs);
    }
    Measured::rates(rates)
}
