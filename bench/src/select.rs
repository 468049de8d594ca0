//! Select rows: the sleeping pipe round trip with the answer awaited by a
//! `Select` over 1 or 16 pipes instead of a single `recv_with`.

use std::time::Instant;

use hdrhistogram::Histogram;
use rustix::event::{poll, PollFd, PollFlags};
use shmbus_client::{Bus, Select, SelectFd};

use crate::measure::{Ctx, Measured};
use crate::pipe::seq_of;
use crate::proc::{spawn, unique};

/// As `pipe::round_trip` with `Wait::Sleeping`, but the answer is awaited by
/// a select over the pong pipe and `k - 1` idle pipes (the pong pipe last,
/// so the select announces on every other doorbell first), then taken with
/// `try_recv_with`. The echo side is the same `pipe-echo` role.
pub(crate) fn round_trip(ctx: &Ctx, k: usize) -> Measured {
    round_trip_with(ctx, k, Via::Select)
}

/// As [`round_trip`] over one pipe, the answer awaited through a
/// [`SelectFd`] and `poll(2)`, as an event loop would (driver thread,
/// eventfd, poll).
pub(crate) fn fd_round_trip(ctx: &Ctx) -> Measured {
    round_trip_with(ctx, 1, Via::Fd)
}

/// As [`round_trip`] over one pipe, the answer awaited by
/// `PipeReceiver::recv_async` on a current-thread tokio runtime.
#[cfg(feature = "tokio")]
pub(crate) fn tokio_round_trip(ctx: &Ctx) -> Measured {
    round_trip_with(ctx, 1, Via::Tokio)
}

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Select,
    Fd,
    #[cfg(feature = "tokio")]
    Tokio,
}

fn round_trip_with(ctx: &Ctx, k: usize, via: Via) -> Measured {
    let n = ctx.counts.sleeping_round_trips;
    let bus = Bus::connect_to(ctx.bus()).expect("connect");
    let tag = unique("sel");
    let mut tx = bus
        .pipe(&format!("{tag}-ping"))
        .expect("ping pipe")
        .sender()
        .expect("ping sender");
    let idle: Vec<_> = (1..k)
        .map(|i| {
            bus.pipe_with_capacity(&format!("{tag}-idle{i}"), 4096)
                .expect("idle pipe")
                .receiver()
                .expect("idle receiver")
        })
        .collect();
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
            "64".into(),
            "true".into(),
        ],
        ctx.placement.child,
    );
    let fd = SelectFd::new().expect("select fd");
    #[cfg(feature = "tokio")]
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    let mut frame = vec![0u8; 64];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..n {
        frame[..8].copy_from_slice(&i.to_le_bytes());
        crate::floor::idle_gap();
        let t = Instant::now();
        tx.send(&frame).expect("send");
        #[cfg(feature = "tokio")]
        if via == Via::Tokio {
            let got = rt.block_on(rx.recv_async()).expect("recv");
            h.record(t.elapsed().as_nanos() as u64).expect("record");
            assert_eq!(seq_of(&got), i, "echo out of order");
            continue;
        }
        loop {
            let mut s = Select::new();
            for r in &idle {
                s.add(r.readable());
            }
            s.add(rx.readable());
            if via == Via::Select {
                s.wait().expect("select");
                break;
            }
            if !fd.arm(&s).expect("arm").is_empty() {
                break;
            }
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            poll(&mut fds, None).expect("poll");
            fd.clear();
        }
        let got = rx.try_recv_with(seq_of).expect("recv");
        h.record(t.elapsed().as_nanos() as u64).expect("record");
        assert_eq!(got, i, "echo out of order");
    }
    drop(tx);
    kid.wait();
    Measured::latency(h)
}
