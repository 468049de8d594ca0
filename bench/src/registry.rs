//! The registry: every measurement, in running order, with what it is
//! compared with, and the presets that select the rows a question needs.

use crate::measure::{self, Ctx, Goal, Group, Kind, Measured, Spec};
use crate::peers::Transport;
use crate::pipe::Len;
use crate::shared::AloneOp;
use crate::{floor, peers, pipe, python, python_shmbus, queue, shared, topic, SIZES};

fn s(v: &str) -> String {
    v.to_owned()
}

/// Every measurement, in running order. To add a row, push a `Spec` here.
pub(crate) fn registry() -> Vec<Spec> {
    let mut v = Vec::new();
    let mut add = |name: String,
                   kind: Kind,
                   size: usize,
                   group: Group,
                   about: &str,
                   run: Option<measure::RunFn>| {
        v.push(Spec {
            name,
            kind,
            size,
            group,
            needs_bus: group == Group::Shmbus,
            floor: None,
            alts: Vec::new(),
            goal: None,
            about: about.to_owned(),
            run,
        });
        v.len() - 1
    };
    use Group::*;
    use Kind::*;

    // ---- floors
    add(
        s("floor/cacheline-rt/64"),
        RoundTrip,
        64,
        Floor,
        "raw shared-memory cache-line ping-pong between two processes (Release store, Acquire spin)",
        Some(Box::new(|c: &Ctx| {
            Ok(Measured::latency(floor::cacheline_round_trip(c, c.counts.busy_round_trips)))
        })),
    );
    for (name, commit, about) in [
        (
            "floor/ring-rt/64",
            floor::Commit::Position,
            "raw ring ping-pong of pipe records (8-byte header + 64 bytes) published by a position word, as the pipe's tail: the pipe's memory traffic with no shmbus code",
        ),
        (
            "floor/ring-rt-header/64",
            floor::Commit::Header,
            "as ring-rt/64, each record committed by its header word (written last, polled by the reader) instead of a position word",
        ),
    ] {
        add(
            s(name),
            RoundTrip,
            64,
            Floor,
            about,
            Some(Box::new(move |c: &Ctx| {
                Ok(Measured::latency(floor::ring_round_trip(
                    c,
                    c.counts.busy_round_trips,
                    commit,
                )))
            })),
        );
    }
    // ---- shmbus
    let rt_alts = vec![
        s("alt/uds-rt/64"),
        s("alt/pipe2-rt/64"),
        s("python/mp-pipe-rt/64"),
    ];
    let i = add(
        s("shmbus/pipe-rt-busy/64"),
        RoundTrip,
        64,
        Shmbus,
        "pipe round trip (ping and pong pipes), both sides busy-polling try_send/try_recv_with",
        Some(Box::new(|c: &Ctx| {
            Ok(pipe::round_trip(c, 64, pipe::Wait::Busy))
        })),
    );
    let ibb = add(
        s("shmbus/pipe-rt-send-recv/64"),
        RoundTrip,
        64,
        Shmbus,
        "pipe round trip with send/recv_with back to back (their spin phase usually catches the answer)",
        Some(Box::new(|c: &Ctx| Ok(pipe::round_trip(c, 64, pipe::Wait::BackToBack)))),
    );
    add(
        s("floor/futex-rt/4"),
        RoundTrip,
        4,
        Floor,
        "shared-futex ping-pong, both sides asleep in FUTEX_WAIT, 200 µs idle before each (the blocking floor)",
        Some(Box::new(|c: &Ctx| {
            Ok(Measured::latency(floor::futex_round_trip(c, c.counts.sleeping_round_trips)))
        })),
    );

    let ib = add(
        s("shmbus/pipe-rt-blocking/64"),
        RoundTrip,
        64,
        Shmbus,
        "pipe round trip with send/recv_with after 200 µs idle, so both sides sleep in the futex",
        Some(Box::new(|c: &Ctx| {
            Ok(pipe::round_trip(c, 64, pipe::Wait::Sleeping))
        })),
    );
    let mut select16 = 0;
    for k in [1, 16] {
        select16 = add(
            s(&format!("shmbus/select-rt-blocking/{k}")),
            RoundTrip,
            64,
            Shmbus,
            "as pipe-rt-blocking/64, the answer awaited by a Select over this many pipes (one futex_waitv)",
            Some(Box::new(move |c: &Ctx| Ok(crate::select::round_trip(c, k)))),
        );
    }
    add(
        s("shmbus/select-fd-rt-blocking/1"),
        RoundTrip,
        64,
        Shmbus,
        "as select-rt-blocking/1, the answer awaited through a SelectFd and poll(2) (driver thread + eventfd)",
        Some(Box::new(|c: &Ctx| Ok(crate::select::fd_round_trip(c)))),
    );
    let select_tokio = add(
        s("shmbus/select-fd-rt-tokio/1"),
        RoundTrip,
        64,
        Shmbus,
        "as select-rt-blocking/1, the answer awaited by recv_async on a current-thread tokio runtime (needs --features tokio)",
        Some(Box::new(|c: &Ctx| {
            #[cfg(feature = "tokio")]
            return Ok(crate::select::tokio_round_trip(c));
            #[cfg(not(feature = "tokio"))]
            {
                let _ = c;
                Err("built without --features tokio".into())
            }
        })),
    );
    add(
        s("alt/tokio-unixstream-rt/64"),
        RoundTrip,
        64,
        Alternative,
        "the async peer of select-fd-rt-tokio/1: a tokio UnixStream (socketpair) on a current-thread runtime, same idle gap, echoed by a blocking read/write child (needs --features tokio)",
        Some(Box::new(|c: &Ctx| {
            #[cfg(feature = "tokio")]
            return Ok(peers::tokio_uds_round_trip(c));
            #[cfg(not(feature = "tokio"))]
            {
                let _ = c;
                Err("built without --features tokio".into())
            }
        })),
    );
    add(
        s("floor/ring-tput/64"),
        Throughput,
        64,
        Floor,
        "raw SPSC ring of 64-byte slots in /dev/shm, one publish per message",
        Some(Box::new(|c: &Ctx| Ok(floor::ring_throughput::<64>(c)))),
    );
    add(
        s("floor/ring-tput-record/64"),
        Throughput,
        64,
        Floor,
        "as ring-tput/64 with 72-byte slots laid out as the pipe's records of 64-byte frames (8-byte header + frame, back to back): the pipe's memory traffic with no shmbus code",
        Some(Box::new(|c: &Ctx| {
            Ok(floor::ring_throughput::<{ floor::RECORD }>(c))
        })),
    );
    add(
        s("floor/mpmc-ring-tput/64"),
        Throughput,
        64,
        Floor,
        "raw MPMC queue of 64-byte items in /dev/shm (Vyukov's bounded queue: a sequence word per cell, one CAS on a shared position per claim), one producer and one consumer process busy-polling: the queue's class, without owner tags, checks or recovery",
        Some(Box::new(|c: &Ctx| Ok(floor::mpmc_throughput(c)))),
    );
    let mut tput = Vec::new();
    for size in SIZES {
        tput.push((
            size,
            add(
                format!("shmbus/pipe-tput/{size}"),
                Throughput,
                size,
                Shmbus,
                "pipe one-way throughput, busy try_send of a [u8; N] in the child, copy-out try_recv_with into a [u8; N] here",
                Some(Box::new(move |c: &Ctx| Ok(pipe::throughput(c, size, Len::Fixed)))),
            ),
        ));
    }
    add(
        s("shmbus/pipe-tput-runtime-len/64"),
        Throughput,
        64,
        Shmbus,
        "as pipe-tput/64 with the frame length known only at run time (Vec<u8>): try_send is not inlined",
        Some(Box::new(|c: &Ctx| Ok(pipe::throughput(c, 64, Len::Runtime)))),
    );
    add(
        s("shmbus/pipe-tput-batch/64"),
        Throughput,
        64,
        Shmbus,
        "as pipe-tput/64 through the batch forms: try_send_batch of 32 frames, try_recv_batch_with of up to 64 (one publish and one release per batch)",
        Some(Box::new(|c: &Ctx| Ok(pipe::throughput(c, 64, Len::Batch)))),
    );
    add(
        s("shmbus/pipe-tput-oneline/56"),
        Throughput,
        56,
        Shmbus,
        "as pipe-tput/64 with 56-byte frames, whose records (8-byte header + payload) fill exactly one 64-byte line: beside pipe-tput/64 (72-byte records, every other line shared by two records), the cost of records straddling lines",
        Some(Box::new(|c: &Ctx| Ok(pipe::throughput(c, 56, Len::Fixed)))),
    );
    let queue_rt = add(
        s("shmbus/queue-rt-busy/64"),
        RoundTrip,
        64,
        Shmbus,
        "queue round trip (ping and pong queues of 64 slots), both sides busy-polling try_put/try_get_with",
        Some(Box::new(|c: &Ctx| Ok(queue::round_trip(c, false)))),
    );
    let queue_rtb = add(
        s("shmbus/queue-rt-put-get/64"),
        RoundTrip,
        64,
        Shmbus,
        "queue round trip with put/get_with back to back (their spin phase usually catches the answer)",
        Some(Box::new(|c: &Ctx| Ok(queue::round_trip(c, true)))),
    );
    let mut queues = Vec::new();
    for (p, name, wait) in [
        (1u64, "1p1c-busy", queue::Wait::Busy),
        (1, "1p1c-busy-backoff", queue::Wait::Backoff),
        (1, "1p1c", queue::Wait::Blocking),
        (2, "2p2c", queue::Wait::Blocking),
        (4, "4p4c", queue::Wait::Blocking),
    ] {
        let how = match wait {
            queue::Wait::Busy => "busy-polling try_put/try_get_with".to_owned(),
            queue::Wait::Backoff => format!(
                "busy-polling try_put/try_get_with, the consumer spinning {} times after an empty try",
                queue::BACKOFF_SPINS
            ),
            queue::Wait::Blocking => "put/get_with".to_owned(),
        };
        queues.push(add(
            format!("shmbus/queue-tput-{name}/64"),
            Throughput,
            64,
            Shmbus,
            &format!("MPMC queue, {p} producer and {p} consumer processes, 64-byte items, {how}"),
            Some(Box::new(move |c: &Ctx| {
                Ok(queue::throughput(c, p, p, wait))
            })),
        ));
    }
    let topic_rt = add(
        s("shmbus/topic-rt-busy/64"),
        RoundTrip,
        64,
        Shmbus,
        "topic round trip (ping and pong topics of 64 slots, one subscriber each), both sides busy-polling try_publish/try_recv_with",
        Some(Box::new(|c: &Ctx| Ok(topic::round_trip(c, false)))),
    );
    let topic_rtb = add(
        s("shmbus/topic-rt-publish-recv/64"),
        RoundTrip,
        64,
        Shmbus,
        "topic round trip with publish/recv_with back to back (their spin phase usually catches the answer)",
        Some(Box::new(|c: &Ctx| Ok(topic::round_trip(c, true)))),
    );
    let mut topic_tput1 = 0;
    for subs in [1u64, 2, 4] {
        let idx = add(
            format!("shmbus/topic-tput-{subs}sub/64"),
            Throughput,
            64,
            Shmbus,
            &format!(
                "lossless topic one-way throughput, one publisher process (publish) and {subs} \
                 subscriber process(es) (recv_with), 64-byte messages, every subscriber gets every one"
            ),
            Some(Box::new(move |c: &Ctx| Ok(topic::throughput(c, subs)))),
        );
        if subs == 1 {
            topic_tput1 = idx;
        }
    }
    let value_read = add(
        s("shmbus/value-read/8"),
        Read,
        8,
        Shmbus,
        "u64 value reads per second while another process writes it",
        Some(Box::new(|c: &Ctx| {
            Ok(shared::table_rate(c, false, false, 0))
        })),
    );
    let value_write = add(
        s("shmbus/value-write/8"),
        Write,
        8,
        Shmbus,
        "u64 value writes per second while another process reads it",
        Some(Box::new(|c: &Ctx| {
            Ok(shared::table_rate(c, false, true, 0))
        })),
    );
    let array_read = add(
        s("shmbus/array16-read/128"),
        Read,
        128,
        Shmbus,
        "16 x u64 array reads per second while another process writes it (checked untorn)",
        Some(Box::new(|c: &Ctx| {
            Ok(shared::table_rate(c, true, false, 0))
        })),
    );
    let array_write = add(
        s("shmbus/array16-write/128"),
        Write,
        128,
        Shmbus,
        "16 x u64 array writes per second while another process reads it",
        Some(Box::new(|c: &Ctx| Ok(shared::table_rate(c, true, true, 0)))),
    );
    add(
        s("shmbus/array16-read-paced/128"),
        Read,
        128,
        Shmbus,
        "16 x u64 array reads per second while another process writes 1 M arrays/s (checked untorn)",
        Some(Box::new(|c: &Ctx| Ok(shared::table_rate(c, true, false, 1_000_000)))),
    );
    for (name, kind, size, op, about) in [
        (
            "value-read-alone/8",
            Read,
            8,
            AloneOp::ValueRead,
            "u64 value reads per second, no other process",
        ),
        (
            "value-write-alone/8",
            Write,
            8,
            AloneOp::ValueWrite,
            "u64 value writes per second, no other process",
        ),
        (
            "value-update-alone/8",
            Write,
            8,
            AloneOp::ValueUpdate,
            "u64 value update(|x| x + 1) per second, no other process",
        ),
        (
            "array16-read-alone/128",
            Read,
            128,
            AloneOp::ArrayRead,
            "16 x u64 array reads per second, no other process",
        ),
        (
            "array16-write-alone/128",
            Write,
            128,
            AloneOp::ArrayWrite,
            "16 x u64 array writes per second, no other process",
        ),
    ] {
        add(
            format!("shmbus/{name}"),
            kind,
            size,
            Shmbus,
            about,
            Some(Box::new(move |c: &Ctx| Ok(shared::table_alone(c, op)))),
        );
    }

    // ---- alternatives
    for (t, tag) in [(Transport::Uds, "uds"), (Transport::Pipe, "pipe2")] {
        let what = if t == Transport::Uds {
            "Unix domain socket (socketpair SOCK_STREAM)"
        } else {
            "pipe(2), one per direction"
        };
        add(
            format!("alt/{tag}-rt/64"),
            RoundTrip,
            64,
            Alternative,
            &format!("{what} round trip, one write and one read per message"),
            Some(Box::new(move |c: &Ctx| Ok(peers::round_trip(c, t, 64)))),
        );
        for size in SIZES {
            add(
                format!("alt/{tag}-tput/{size}"),
                Throughput,
                size,
                Alternative,
                &format!("{what} one-way throughput, one write and one read per message"),
                Some(Box::new(move |c: &Ctx| Ok(peers::throughput(c, t, size)))),
            );
        }
    }
    // The topic's peer: iceoryx2 publish–subscribe (optional feature).
    add(
        s("peer/iceoryx2-rt/64"),
        RoundTrip,
        64,
        Alternative,
        "iceoryx2 publish-subscribe round trip (ping and pong services, 1 subscriber each, lossless: no safe overflow, RetryUntilDelivered, buffer 256), both sides busy-polling send_copy/receive (needs --features iceoryx2)",
        Some(Box::new(|c: &Ctx| {
            #[cfg(feature = "iceoryx2")]
            return Ok(crate::iceoryx2::round_trip(c));
            #[cfg(not(feature = "iceoryx2"))]
            {
                let _ = c;
                Err("built without --features iceoryx2".into())
            }
        })),
    );
    add(
        s("peer/iceoryx2-tput/64"),
        Throughput,
        64,
        Alternative,
        "iceoryx2 publish-subscribe one-way throughput to 1 subscriber process (lossless as peer/iceoryx2-rt), send_copy here, busy-polling receive in the subscriber (needs --features iceoryx2)",
        Some(Box::new(|c: &Ctx| {
            #[cfg(feature = "iceoryx2")]
            return Ok(crate::iceoryx2::throughput(c));
            #[cfg(not(feature = "iceoryx2"))]
            {
                let _ = c;
                Err("built without --features iceoryx2".into())
            }
        })),
    );
    add(
        s("ref/crossbeam-rt/64"),
        RoundTrip,
        64,
        Reference,
        "crossbeam-channel bounded(1) round trip between two threads (in-process reference)",
        Some(Box::new(|c: &Ctx| Ok(peers::crossbeam_round_trip(c)))),
    );
    add(
        s("ref/crossbeam-tput/64"),
        Throughput,
        64,
        Reference,
        "crossbeam-channel bounded(4096) one-way throughput between two threads",
        Some(Box::new(|c: &Ctx| Ok(peers::crossbeam_throughput(c)))),
    );

    // ---- Python multiprocessing
    add(
        s("python/mp-pipe-rt/64"),
        RoundTrip,
        64,
        Python,
        "multiprocessing.Pipe round trip (send_bytes/recv_bytes)",
        Some(Box::new(|c: &Ctx| python::pipe_round_trip(c, 64))),
    );
    add(
        s("python/mp-pipe-tput/64"),
        Throughput,
        64,
        Python,
        "multiprocessing.Pipe one-way throughput",
        Some(Box::new(|c: &Ctx| python::throughput(c, 64, false))),
    );
    add(
        s("python/mp-queue-tput/64"),
        Throughput,
        64,
        Python,
        "multiprocessing.Queue one-way throughput",
        Some(Box::new(|c: &Ctx| python::throughput(c, 64, true))),
    );
    for (name, what, kind, size, writes, about) in [
        (
            "mp-value-read/8",
            "value",
            Read,
            8,
            false,
            "Value('q') (locked) reads while another process writes",
        ),
        (
            "mp-value-write/8",
            "value",
            Write,
            8,
            true,
            "Value('q') (locked) writes while another process reads",
        ),
        (
            "mp-array16-read/128",
            "array",
            Read,
            128,
            false,
            "Array('q', 16) (locked) whole-array reads while another process writes",
        ),
        (
            "mp-array16-write/128",
            "array",
            Write,
            128,
            true,
            "Array('q', 16) (locked) whole-array writes while another process reads",
        ),
        (
            "mp-rawarray16-read/128",
            "rawarray",
            Read,
            128,
            false,
            "Array('q', 16, lock=False) reads while another process writes: torn-read percentage",
        ),
    ] {
        add(
            format!("python/{name}"),
            kind,
            size,
            Python,
            about,
            Some(Box::new(move |c: &Ctx| python::shared(c, what, writes))),
        );
    }

    // ---- the shmbus Python package, beside the multiprocessing rows
    type PyRow = (
        &'static str,
        Kind,
        usize,
        &'static str,
        measure::RunFn,
        Vec<&'static str>,
        Option<Goal>,
    );
    let py_rows: Vec<PyRow> = vec![
        (
            "python/shmbus-pipe-rt/64",
            RoundTrip,
            64,
            "shmbus.Pipe round trip (send_bytes/recv_bytes) through an echo process",
            Box::new(|c: &Ctx| python_shmbus::pipe_round_trip(c, 64)),
            vec!["python/mp-pipe-rt/64"],
            None,
        ),
        (
            "python/shmbus-queue-tput/64",
            Throughput,
            64,
            "shmbus.Queue one-way throughput, 64-byte bytes (put_bytes/get_bytes)",
            Box::new(|c: &Ctx| python_shmbus::queue_throughput(c, "shmbus", "bytes", 64)),
            vec!["python/mp-queue-tput/64"],
            Some(Goal::MinVs("python/mp-queue-tput/64", 10.0)),
        ),
        (
            "python/mp-queue-tput-dict/64",
            Throughput,
            64,
            "multiprocessing.Queue one-way throughput, a small dict (4 keys) pickled",
            Box::new(|c: &Ctx| python_shmbus::queue_throughput(c, "mp", "dict", 64)),
            vec![],
            None,
        ),
        (
            "python/shmbus-queue-tput-dict/64",
            Throughput,
            64,
            "shmbus.Queue one-way throughput, a small dict (4 keys) pickled (put/get)",
            Box::new(|c: &Ctx| python_shmbus::queue_throughput(c, "shmbus", "dict", 64)),
            vec!["python/mp-queue-tput-dict/64"],
            Some(Goal::MinVs("python/mp-queue-tput-dict/64", 3.0)),
        ),
        (
            "python/shmbus-value-read/8",
            Read,
            8,
            "shmbus.Value('q') reads (.value, no lock) while another process writes",
            Box::new(|c: &Ctx| python_shmbus::shared(c, "value", false)),
            vec!["python/mp-value-read/8"],
            Some(Goal::MinVs("python/mp-value-read/8", 5.0)),
        ),
        (
            "python/shmbus-value-write/8",
            Write,
            8,
            "shmbus.Value('q') writes while another process reads",
            Box::new(|c: &Ctx| python_shmbus::shared(c, "value", true)),
            vec!["python/mp-value-write/8"],
            None,
        ),
        (
            "python/shmbus-array16-read/128",
            Read,
            128,
            "shmbus.Array('q', 16) whole-array reads (a[:]) while another process writes: torn-read percentage",
            Box::new(|c: &Ctx| python_shmbus::shared(c, "array", false)),
            vec!["python/mp-array16-read/128", "python/mp-rawarray16-read/128"],
            None,
        ),
    ];
    let mut py_links = Vec::new();
    for (name, kind, size, about, run, alts, goal) in py_rows {
        let idx = add(s(name), kind, size, Python, about, Some(run));
        py_links.push((idx, name.starts_with("python/shmbus-"), alts, goal));
    }

    // ---- comparisons and goals
    for (idx, needs_bus, alts, goal) in py_links {
        v[idx].needs_bus = needs_bus;
        v[idx].alts = alts.into_iter().map(s).collect();
        v[idx].goal = goal;
    }
    v[i].floor = Some(s("probe"));
    v[i].alts = rt_alts.clone();
    v[i].alts
        .splice(0..0, [s("floor/ring-rt/64"), s("floor/ring-rt-header/64")]);
    v[i].goal = Some(Goal::MaxVsFloor(1.5));
    v[ib].floor = Some(s("floor/futex-rt/4"));
    v[ib].alts = rt_alts.clone();
    v[ibb].floor = Some(s("probe"));
    v[ibb].alts = rt_alts;
    v[ib].goal = Some(Goal::MaxVsFloor(1.1));
    v[select16].alts = vec![s("shmbus/pipe-rt-blocking/64")];
    v[select16].goal = Some(Goal::MaxVs("shmbus/pipe-rt-blocking/64", 1.2));
    v[select_tokio].alts = vec![s("alt/tokio-unixstream-rt/64")];
    v[select_tokio].goal = Some(Goal::MaxVs("alt/tokio-unixstream-rt/64", 1.0));
    v[topic_rt].floor = Some(s("probe"));
    v[topic_rt].alts = vec![
        s("peer/iceoryx2-rt/64"),
        s("alt/uds-rt/64"),
        s("alt/pipe2-rt/64"),
    ];
    v[topic_rt].goal = Some(Goal::All(vec![
        Goal::MaxVs("peer/iceoryx2-rt/64", 0.5),
        Goal::MaxVs("shmbus/pipe-rt-busy/64", 1.2),
    ]));
    v[topic_rtb].floor = Some(s("probe"));
    v[topic_rtb].alts = vec![
        s("peer/iceoryx2-rt/64"),
        s("alt/uds-rt/64"),
        s("alt/pipe2-rt/64"),
    ];
    v[topic_rtb].goal = Some(Goal::MaxVs("shmbus/pipe-rt-send-recv/64", 1.2));
    v[topic_tput1].alts = vec![s("peer/iceoryx2-tput/64")];
    v[topic_tput1].goal = Some(Goal::MinVs("peer/iceoryx2-tput/64", 10.0));
    for (size, idx) in tput {
        v[idx].alts = vec![
            format!("alt/uds-tput/{size}"),
            format!("alt/pipe2-tput/{size}"),
        ];
        if size == 64 {
            v[idx].floor = Some(s("floor/ring-tput/64"));
            v[idx].alts.insert(0, s("floor/ring-tput-record/64"));
            v[idx].alts.push(s("python/mp-pipe-tput/64"));
            v[idx].alts.push(s("python/mp-queue-tput/64"));
            // Issue #17 added the ring floor and the 256-byte rate.
            v[idx].goal = Some(Goal::All(vec![
                Goal::MinVs("floor/ring-tput/64", 0.5),
                Goal::MinVs("shmbus/pipe-tput/256", 1.0),
                Goal::MinRate(35e6, Some(("python/mp-pipe-tput/64", 100.0))),
            ]));
        }
    }
    for idx in [queue_rt, queue_rtb] {
        v[idx].floor = Some(s("probe"));
        v[idx].alts = vec![s("alt/uds-rt/64"), s("alt/pipe2-rt/64")];
    }
    for &idx in &queues {
        v[idx].floor = Some(s("floor/ring-tput/64"));
        v[idx].alts = vec![
            s("alt/uds-tput/64"),
            s("alt/pipe2-tput/64"),
            s("python/mp-queue-tput/64"),
        ];
    }
    // Issue #17: 1P/1C at least half the pipe's one-way rate, both
    // busy-polling the non-blocking calls.
    v[queues[0]].goal = Some(Goal::MinVs("shmbus/pipe-tput/64", 0.5));
    v[queues[0]].alts.push(s("floor/mpmc-ring-tput/64"));
    for (idx, py) in [
        (value_read, "python/mp-value-read/8"),
        (value_write, "python/mp-value-write/8"),
        (array_read, "python/mp-array16-read/128"),
        (array_write, "python/mp-array16-write/128"),
    ] {
        v[idx].alts = vec![s(py)];
        if v[idx].kind == Read {
            v[idx].goal = Some(Goal::MinVs(
                if idx == value_read {
                    "python/mp-value-read/8"
                } else {
                    "python/mp-array16-read/128"
                },
                50.0,
            ));
        }
    }
    v
}

/// Named selections (`--preset`): each is a list of `--filter` substrings
/// that together answer one question about one primitive, beside its floor.
pub(crate) const PRESETS: &[(&str, &str, &[&str])] = &[
    (
        "pipe",
        "pipe round trips (busy, back to back, sleeping) and 64-byte one-way throughput, beside their floors",
        &[
            "floor/cacheline-rt/",
            "floor/ring-rt",
            "shmbus/pipe-rt-",
            "floor/futex-rt/",
            "floor/ring-tput",
            "shmbus/pipe-tput/64",
            "shmbus/pipe-tput-runtime-len/",
            "shmbus/pipe-tput-batch/",
            "shmbus/pipe-tput-oneline/",
        ],
    ),
    (
        "queue",
        "queue round trips and 1P/1C, 2P/2C, 4P/4C throughput, beside the floors and the pipe",
        &[
            "floor/cacheline-rt/",
            "shmbus/queue-",
            "floor/ring-tput/",
            "floor/mpmc-ring-tput/",
            "shmbus/pipe-tput/64",
        ],
    ),
    (
        "python",
        "the shmbus Python package beside Python's multiprocessing (set $SHMBUS_BENCH_PYTHON to a python with the package)",
        &["python/"],
    ),
    (
        "select",
        "sleeping round trip awaited by a Select over 1 and 16 pipes, a SelectFd and tokio, beside the single-pipe recv, tokio's UnixStream and the futex floor",
        &[
            "floor/futex-rt/",
            "shmbus/pipe-rt-blocking/",
            "shmbus/select-rt-blocking/",
            "shmbus/select-fd-rt-",
            "alt/tokio-unixstream-rt/",
        ],
    ),
    (
        "table",
        "value and array reads and writes, alone and beside another process, beside Python's multiprocessing",
        &[
            "shmbus/value-",
            "shmbus/array16-",
            "python/mp-value-",
            "python/mp-array16-",
            "python/mp-rawarray16-",
        ],
    ),
    (
        "topic",
        "topic round trips (busy, back to back) and one-way throughput to 1, 2 and 4 subscribers, beside the floors, the pipe and iceoryx2 (--features iceoryx2)",
        &[
            "floor/cacheline-rt/",
            "shmbus/pipe-rt-busy/",
            "shmbus/pipe-rt-send-recv/",
            "shmbus/topic-",
            "peer/iceoryx2-",
            "floor/ring-tput/",
            "shmbus/pipe-tput/64",
        ],
    ),
];

/// The filters of the named presets; `Err` names an unknown one.
pub(crate) fn preset_filters(names: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for n in names {
        let (_, _, f) = PRESETS.iter().find(|(p, _, _)| p == n).ok_or_else(|| {
            let known: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            format!("no preset {n:?} (presets: {})", known.join(", "))
        })?;
        out.extend(f.iter().map(|x| x.to_string()));
    }
    Ok(out)
}
