//! iceoryx2's publish–subscribe as the peer of the topic rows (feature
//! `iceoryx2`, off by default): a round trip through a `ping` and a `pong`
//! service with one subscriber each, both sides busy-polling, and one-way
//! throughput from a publisher process to one subscriber, 64-byte payloads.
//!
//! Lossless settings throughout: `enable_safe_overflow(false)` (a full
//! subscriber buffer is never overwritten), publishers with
//! `BackpressureStrategy::RetryUntilDelivered` (`send` waits for room), and
//! subscriber buffers of [`BUFFER`] samples. Every send must reach exactly one
//! subscriber and every sample arrives in order; both are checked.
//!
//! Services get unique names (`shmbus-bench/<tag>/...`); iceoryx2 removes
//! their files when the last port and node drop. Each measuring side first
//! removes what dead nodes of an interrupted earlier run left behind.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ::iceoryx2::port::publisher::Publisher;
use ::iceoryx2::port::subscriber::Subscriber;
use ::iceoryx2::prelude::*;
use ::iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use hdrhistogram::Histogram;

use crate::measure::{Ctx, Measured};
use crate::proc::{spawn, spawn_with, unique};

/// Payload size.
const MSG: usize = 64;
/// Samples each subscriber buffers (the issue asks for at least 256).
const BUFFER: usize = 256;
/// A wait for the other process longer than this is a failure, not a figure.
const WATCHDOG: Duration = Duration::from_secs(120);

type Payload = [u8; MSG];
type Service = PubSub<ipc::Service, Payload, ()>;

fn seq_of(b: &Payload) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// A node of this process; the benchmark's own Ctrl-C handling stays in
/// charge (no iceoryx2 signal handler).
fn node() -> Node<ipc::Service> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

/// Creates or opens the publish–subscribe service `name` with the lossless
/// settings (both sides ask for the same, so opening verifies them).
fn service(node: &Node<ipc::Service>, name: &str) -> Service {
    let name = ServiceName::new(&format!("shmbus-bench/{name}")).expect("service name");
    node.service_builder(&name)
        .publish_subscribe::<Payload>()
        .enable_safe_overflow(false)
        .history_size(0)
        .subscriber_max_buffer_size(BUFFER)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
        .expect("iceoryx2 service")
}

fn publisher(s: &Service) -> Publisher<ipc::Service, Payload, ()> {
    s.publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("iceoryx2 publisher")
}

fn subscriber(s: &Service) -> Subscriber<ipc::Service, Payload, ()> {
    s.subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .expect("iceoryx2 subscriber")
}

/// Sends `msg`, which must reach the one subscriber.
fn send(p: &Publisher<ipc::Service, Payload, ()>, msg: Payload) {
    let got = p.send_copy(msg).expect("iceoryx2 send");
    assert_eq!(
        got,
        1,
        "iceoryx2 sample {} reached {got} subscribers, not 1",
        seq_of(&msg)
    );
}

/// Busy-polls `s` for the next sample.
fn receive(s: &Subscriber<ipc::Service, Payload, ()>) -> Payload {
    let mut spins = 0u32;
    let mut since = None;
    loop {
        if let Some(sample) = s.receive().expect("iceoryx2 receive") {
            return *sample;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 16) {
            let t: &mut Instant = since.get_or_insert_with(Instant::now);
            assert!(t.elapsed() < WATCHDOG, "iceoryx2 sample never came");
        }
        core::hint::spin_loop();
    }
}

/// Waits until `s` has `n` subscribers (`n > 0`: a child joined; `n == 0`:
/// the measuring side is done, so the samples it still had to read were read
/// before this side's publisher and its data segment go away).
fn wait_subscribers(s: &Service, n: usize) {
    let start = Instant::now();
    while s.dynamic_config().number_of_subscribers() != n {
        assert!(
            start.elapsed() < WATCHDOG,
            "iceoryx2 subscriber never came or left"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Removes the files of dead nodes (an interrupted earlier run).
fn cleanup_dead(node: &Node<ipc::Service>) {
    let _ = node.try_cleanup_dead_nodes();
}

/// Round trip of 64-byte samples: send on `ping`, the child (subscribed to
/// `ping`) sends it back on `pong`, to which we are subscribed; both sides
/// busy-poll `receive`, as `shmbus/topic-rt-busy/64` does.
pub(crate) fn round_trip(ctx: &Ctx) -> Measured {
    let n = ctx.counts.busy_round_trips;
    let node = node();
    cleanup_dead(&node);
    let tag = unique("iox-rt");
    let ping = service(&node, &format!("{tag}/ping"));
    let pong = service(&node, &format!("{tag}/pong"));
    let sub = subscriber(&pong);
    let publ = publisher(&ping);
    let kid = spawn("iceoryx2-echo", &[tag, n.to_string()], ctx.placement.child);
    wait_subscribers(&ping, 1);
    let mut msg = [0u8; MSG];
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..n {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        send(&publ, msg);
        let got = seq_of(&receive(&sub));
        h.record(t.elapsed().as_nanos() as u64).expect("record");
        assert_eq!(got, i, "echo out of order");
    }
    drop(sub);
    kid.wait();
    Measured::latency(h)
}

/// The `iceoryx2-echo` role: receive every sample of `ping`, send it on
/// `pong`.
pub(crate) fn echo(tag: &str, n: u64) {
    let node = node();
    let ping = service(&node, &format!("{tag}/ping"));
    let pong = service(&node, &format!("{tag}/pong"));
    let sub = subscriber(&ping);
    let publ = publisher(&pong);
    for i in 0..n {
        let msg = receive(&sub);
        assert_eq!(seq_of(&msg), i, "ping out of order");
        send(&publ, msg);
    }
    wait_subscribers(&pong, 0);
}

/// One-way lossless throughput: this process sends `n` 64-byte samples
/// (`send_copy`, retrying on a full buffer), a subscriber process busy-polls
/// `receive` and times the first to the last; samples per second, median of
/// the runs.
pub(crate) fn throughput(ctx: &Ctx) -> Measured {
    let n = ctx.counts.queue_messages;
    let node = node();
    cleanup_dead(&node);
    let mut rates = Vec::new();
    for _ in 0..ctx.counts.runs {
        let name = unique("iox-t");
        let s = service(&node, &name);
        let publ = publisher(&s);
        let mut kid = spawn_with(
            "iceoryx2-subscriber",
            &[name, n.to_string()],
            ctx.placement.child,
            Stdio::null(),
            Stdio::piped(),
        );
        wait_subscribers(&s, 1);
        let mut msg = [5u8; MSG];
        for i in 0..n {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            send(&publ, msg);
        }
        // The subscriber prints after its last sample: until then this
        // publisher (and the data segment it owns) stays.
        let mut out = String::new();
        kid.stdout()
            .expect("piped")
            .read_to_string(&mut out)
            .expect("subscriber output");
        kid.wait();
        let ns: f64 = out.trim().parse().expect("ns");
        rates.push((n - 1) as f64 / (ns / 1e9));
    }
    Measured::rates(rates)
}

/// The `iceoryx2-subscriber` role: receives `n` samples numbered 0.. in
/// order, prints the ns from the first to the last.
pub(crate) fn subscriber_role(name: &str, n: u64) {
    let node = node();
    let s = service(&node, name);
    let sub = subscriber(&s);
    assert_eq!(seq_of(&receive(&sub)), 0, "first sample");
    let start = Instant::now();
    for i in 1..n {
        assert_eq!(seq_of(&receive(&sub)), i, "sample out of order");
    }
    println!("{}", start.elapsed().as_nanos());
}
