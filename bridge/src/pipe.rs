//! Pipes: frames out of a local pipe, over zenoh, into a remote pipe, in
//! order, with backpressure and without loss while both bridges live.
//!
//! The exporter takes each frame from its local pipe, numbers it (`seq`,
//! from 1, within an `epoch` that is new each time the bridge starts) and
//! publishes `epoch seq base frame` on `KEY/data` (reliable, blocking
//! congestion control), where `base` is the oldest frame not yet
//! acknowledged. It keeps every frame until the importer acknowledges it, and
//! takes no new frame while `window` are unacknowledged: a full pipe on the
//! importing side stops the acknowledgements, then the exporter, then the
//! local sender (backpressure, not drops).
//!
//! The importer delivers frame `last + 1` only, drops what it has delivered
//! already (counted as `dropped`), and on a gap asks for a resend. It
//! acknowledges on `KEY/ack` (`epoch seq flag`) as it delivers, and every
//! 100 ms whatever happens (a heartbeat). The exporter sends its
//! unacknowledged frames again when asked, when a new importer says hello
//! or an importer acknowledges another epoch (the exporter restarted), and
//! when an importer is heard after a second of silence (a cut link).
//! So across a cut link or a restarted importer nothing is lost; what can be
//! duplicated is a frame the importer delivered but whose acknowledgement
//! died with it. Frames an exporter held when it was killed (at most
//! `window`) are lost.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmbus_client::{Bus, Error, Kind};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::stats::Counters;
use crate::{u64_at, Ctx};

/// Acknowledgement flag: frames up to `seq` delivered.
const ACK: u8 = 0;
/// Flag: a gap, send again from the first unacknowledged frame.
const RESEND: u8 = 1;
/// Flag: a new importer that has seen no frame yet.
const HELLO: u8 = 2;

/// An importer silent this long is taken for gone (or cut off): when heard
/// again, it gets the unacknowledged frames again.
const SILENCE: Duration = Duration::from_secs(1);
/// Period of the importer's heartbeat.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// Resends no more often than this, but for a hello.
const RESEND_GAP: Duration = Duration::from_millis(200);
/// How long the workers block before they look at acknowledgements or
/// `stop` again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

fn ack_bytes(epoch: u64, seq: u64, flag: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.extend_from_slice(&epoch.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.push(flag);
    v
}

/// Exports the local pipe `ctx.chan.name` (its receiving end).
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn export(ctx: &Ctx, bus: &Bus) -> Result<(), String> {
    ctx.counters.set_kind(Kind::Pipe);
    let pipe = bus.pipe(&ctx.chan.name).map_err(|e| e.to_string())?;
    let mut rx = pipe.receiver().map_err(|e| e.to_string())?;
    let meta = format!("pipe {}", pipe.capacity());
    export_frames(ctx, meta, || match rx.recv_timeout(POLL) {
        Ok(frame) => Ok(Some(frame)),
        Err(Error::Timeout) => Ok(None),
        // No local sender right now: wait for one.
        Err(Error::Disconnected) => {
            std::thread::sleep(POLL);
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    })
}

/// The exporting side of the window protocol: serves `meta`, then sends
/// what `next` takes from the local channel (`None`: nothing within
/// [`POLL`]) until the bridge stops.
///
/// # Errors
/// `next`'s, or zenoh's, as text.
pub(crate) fn export_frames(
    ctx: &Ctx,
    meta: String,
    mut next: impl FnMut() -> Result<Option<Vec<u8>>, String>,
) -> Result<(), String> {
    let c = &ctx.counters;
    let _meta = crate::serve_meta(&ctx.session, &ctx.key, meta)?;
    let epoch = crate::new_epoch();
    let publisher = ctx
        .session
        .declare_publisher(format!("{}/data", ctx.key))
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| format!("zenoh publisher: {e}"))?;
    let (ack_tx, ack_rx) = mpsc::channel::<(u64, u64, u8)>();
    let _acks = ctx
        .session
        .declare_subscriber(format!("{}/ack", ctx.key))
        .callback(move |s| {
            let b = s.payload().to_bytes();
            if let (Some(e), Some(q), Some(&f)) = (u64_at(&b, 0), u64_at(&b, 8), b.get(16)) {
                let _ = ack_tx.send((e, q, f));
            }
        })
        .wait()
        .map_err(|e| format!("zenoh subscriber: {e}"))?;

    let mut unacked: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut next_seq = 1u64;
    let mut heard = Instant::now()
        .checked_sub(SILENCE * 2)
        .unwrap_or_else(Instant::now);
    let mut resent_at = heard;
    let mut msg = Vec::new();
    let send = |seq: u64, base: u64, frame: &[u8], msg: &mut Vec<u8>| -> Result<(), String> {
        msg.clear();
        msg.extend_from_slice(&epoch.to_le_bytes());
        msg.extend_from_slice(&seq.to_le_bytes());
        msg.extend_from_slice(&base.to_le_bytes());
        msg.extend_from_slice(frame);
        publisher
            .put(msg.as_slice())
            .wait()
            .map_err(|e| format!("zenoh put: {e}"))
    };
    while !ctx.stopping() {
        // Acknowledgements first: they free room in the window.
        let first = if unacked.len() >= ctx.window {
            ack_rx.recv_timeout(POLL).ok()
        } else {
            ack_rx.try_recv().ok()
        };
        let mut resend = false;
        for (e, seq, flag) in first.into_iter().chain(ack_rx.try_iter()) {
            if flag == HELLO || e != epoch {
                // A new importer, or one that has seen no frame of this run
                // of the exporter yet (it acknowledges an earlier run's):
                // it gets the unacknowledged frames again.
                resend |= resent_at.elapsed() >= RESEND_GAP;
                heard = Instant::now();
                continue;
            }
            if heard.elapsed() >= SILENCE {
                resend = true;
            }
            heard = Instant::now();
            let mut n = 0;
            while unacked.front().is_some_and(|(s, _)| *s <= seq) {
                unacked.pop_front();
                n += 1;
            }
            Counters::add(&c.forwarded, n);
            if flag == RESEND && resent_at.elapsed() >= RESEND_GAP {
                resend = true;
            }
        }
        if resend && !unacked.is_empty() {
            resent_at = Instant::now();
            let base = unacked.front().map_or(next_seq, |(s, _)| *s);
            for (seq, frame) in &unacked {
                send(*seq, base, frame, &mut msg)?;
            }
            Counters::add(&c.resent, unacked.len() as u64);
        }
        c.set_in_flight(unacked.len());
        if unacked.len() >= ctx.window {
            continue;
        }
        if let Some(frame) = next()? {
            let base = unacked.front().map_or(next_seq, |(s, _)| *s);
            send(next_seq, base, &frame, &mut msg)?;
            unacked.push_back((next_seq, frame));
            next_seq += 1;
        }
    }
    Ok(())
}

/// What the importer has delivered: the exporter's epoch (0: none seen yet)
/// and the last frame delivered.
#[derive(Clone, Copy, Default)]
struct Position {
    epoch: u64,
    last: u64,
}

/// Imports into the local pipe `ctx.chan.name` (its sending end).
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
/// A missing local pipe is created with the exporter's capacity (`meta` is
/// `pipe CAPACITY`).
pub fn import(ctx: &Ctx, bus: &Bus, meta: &str) -> Result<(), String> {
    ctx.counters.set_kind(Kind::Pipe);
    let capacity = meta.split(' ').nth(1).and_then(|s| s.parse::<u64>().ok());
    let pipe = match capacity {
        Some(cap) if crate::describe(bus, &ctx.chan.name).is_none() => {
            bus.pipe_with_capacity(&ctx.chan.name, cap)
        }
        _ => bus.pipe(&ctx.chan.name),
    }
    .map_err(|e| e.to_string())?;
    let mut tx = pipe.sender().map_err(|e| e.to_string())?;
    import_frames(ctx, |frame| tx.send_timeout(frame, POLL))
}

/// The importing side of the window protocol: hands each frame, in order,
/// to `put` (which waits at most [`POLL`]) until the bridge stops. `put`
/// failing with `Timeout`, `Full` or `Disconnected` is tried again with the
/// same frame (backpressure: no acknowledgement goes out meanwhile);
/// `TooLarge` skips the frame, counted as dropped.
///
/// # Errors
/// `put`'s other errors, or zenoh's, as text.
pub(crate) fn import_frames(
    ctx: &Ctx,
    put: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), String> {
    let c = &ctx.counters;
    let (data_tx, data_rx) = mpsc::channel::<Vec<u8>>();
    let _data = ctx
        .session
        .declare_subscriber(format!("{}/data", ctx.key))
        .callback(move |s| {
            let _ = data_tx.send(s.payload().to_bytes().into_owned());
        })
        .wait()
        .map_err(|e| format!("zenoh subscriber: {e}"))?;
    let ack_key = format!("{}/ack", ctx.key);
    let acker = ctx
        .session
        .declare_publisher(ack_key)
        .wait()
        .map_err(|e| format!("zenoh publisher: {e}"))?;
    let pos = Arc::new(Mutex::new(Position::default()));
    // The heartbeat: says where this importer is (or hello) every 100 ms,
    // also while a full local pipe holds the delivering thread.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hb = {
        let pos = Arc::clone(&pos);
        let done = Arc::clone(&done);
        let stop = Arc::clone(&ctx.stop);
        let session = ctx.session.clone();
        let key = format!("{}/ack", ctx.key);
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering::Relaxed;
            while !done.load(Relaxed) && !stop.load(Relaxed) {
                let p = *pos.lock().unwrap_or_else(|e| e.into_inner());
                let flag = if p.epoch == 0 { HELLO } else { ACK };
                let _ = session.put(&key, ack_bytes(p.epoch, p.last, flag)).wait();
                std::thread::sleep(HEARTBEAT);
            }
        })
    };
    let r = deliver(ctx, put, &data_rx, &acker, &pos, c);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = hb.join();
    r
}

fn deliver(
    ctx: &Ctx,
    mut put: impl FnMut(&[u8]) -> Result<(), Error>,
    data_rx: &mpsc::Receiver<Vec<u8>>,
    acker: &zenoh::pubsub::Publisher<'_>,
    pos: &Mutex<Position>,
    c: &Counters,
) -> Result<(), String> {
    let mut p = Position::default();
    let mut acked = 0u64;
    let mut asked_at: Option<Instant> = None;
    let every = (ctx.window as u64 / 4).max(1);
    let ack = |p: Position, flag: u8| -> Result<(), String> {
        acker
            .put(ack_bytes(p.epoch, p.last, flag))
            .wait()
            .map_err(|e| format!("zenoh put: {e}"))
    };
    let mut pending: Option<Vec<u8>> = None;
    while !ctx.stopping() {
        let msg = match pending.take() {
            Some(m) => m,
            None => match data_rx.recv_timeout(POLL) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("zenoh subscriber gone".into())
                }
            },
        };
        let (Some(epoch), Some(seq), Some(base)) =
            (u64_at(&msg, 0), u64_at(&msg, 8), u64_at(&msg, 16))
        else {
            Counters::inc(&c.dropped);
            continue;
        };
        if epoch != p.epoch {
            // A new exporter (or our first frame): its window starts at base.
            if p.epoch != 0 {
                Counters::inc(&c.restarts);
            }
            p = Position {
                epoch,
                last: base.saturating_sub(1),
            };
            acked = p.last;
        }
        if seq <= p.last {
            Counters::inc(&c.dropped);
            continue;
        }
        if seq > p.last + 1 {
            // A gap: ask again (not more often than a resend can answer).
            if asked_at.is_none_or(|t| t.elapsed() >= RESEND_GAP) {
                ack(p, RESEND)?;
                asked_at = Some(Instant::now());
            }
            Counters::inc(&c.dropped);
            continue;
        }
        c.set_in_flight(1);
        let frame = &msg[24..];
        loop {
            match put(frame) {
                Ok(()) => {
                    Counters::inc(&c.forwarded);
                    break;
                }
                Err(e @ Error::TooLarge { .. }) => {
                    // Larger than the local channel takes: skipped, and
                    // counted.
                    eprintln!("shmbus-bridge: {}: frame {seq} dropped: {e}", ctx.chan.name);
                    Counters::inc(&c.dropped);
                    break;
                }
                Err(Error::Timeout | Error::Full | Error::Disconnected) if !ctx.stopping() => {
                    // Full (backpressure: no acknowledgement goes out) or no
                    // receiver yet: keep the frame and wait.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        c.set_in_flight(0);
        p.last = seq;
        *pos.lock().unwrap_or_else(|e| e.into_inner()) = p;
        asked_at = None;
        // Acknowledge every `window / 4` frames, and whenever nothing more
        // has arrived.
        pending = data_rx.try_recv().ok();
        if p.last - acked >= every || pending.is_none() {
            ack(p, ACK)?;
            acked = p.last;
        }
    }
    Ok(())
}
