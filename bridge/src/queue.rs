//! Queues: each item goes to exactly one consumer across all hosts.
//!
//! Importers pull: an importing bridge whose local queue is empty sends a
//! query on `KEY/take`; the exporting bridge answers it with one `get` from
//! its local queue (waiting up to 200 ms for an item), so an item is taken
//! once, by a local consumer or by one remote bridge, and a slow host, whose
//! local queue stays full, asks for fewer. The reply carries `1 epoch seq
//! item`, or `0` for none.
//!
//! In flight: from the exporter's `get` until the importer's acknowledgement
//! on `KEY/done` (sent once its local `put` returned), the exporter keeps
//! the item. Unacknowledged after [`LEASE`] (importer killed, link cut), it
//! is put back into the exporter's local queue and counted `redelivered`:
//! an item in flight is redelivered, not lost. If the importer had put it
//! after all (killed between its `put` and the acknowledgement, or the
//! acknowledgement delayed past the lease), the item is taken twice; a late
//! acknowledgement counts it as `duplicated`. An exporting bridge killed
//! with items in flight (at most one per importer) loses them: they left
//! the shared queue and lived only in that process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmbus_client::{Bus, Error, Kind, Queue};
use zenoh::Wait;

use crate::stats::Counters;
use crate::{u64_at, Ctx};

/// An item unacknowledged this long goes back into the exporter's queue.
pub const LEASE: Duration = Duration::from_secs(3);
/// How long the exporter waits for an item before it answers "none".
const LONG_POLL: Duration = Duration::from_millis(200);

#[derive(Default)]
struct InFlight {
    items: HashMap<u64, (Vec<u8>, Instant)>,
    redelivered: HashSet<u64>,
}

/// Exports the local queue `ctx.chan.name`.
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn export(ctx: &Ctx, bus: &Bus) -> Result<(), String> {
    let c = Arc::clone(&ctx.counters);
    c.set_kind(Kind::Queue);
    let q = Arc::new(
        if ctx.chan.kind.is_some() {
            bus.queue(&ctx.chan.name)
        } else {
            bus.open_queue(&ctx.chan.name)
        }
        .map_err(|e| e.to_string())?,
    );
    let meta = format!("queue {} {}", q.slots(), q.slot_size());
    let _meta = crate::serve_meta(&ctx.session, &ctx.key, meta)?;
    let epoch = crate::new_epoch();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let flight = Arc::new(Mutex::new(InFlight::default()));
    let take_key = format!("{}/take", ctx.key);
    let (qtx, qrx) = std::sync::mpsc::channel::<zenoh::query::Query>();
    let _take = ctx
        .session
        .declare_queryable(&take_key)
        .callback(move |query| {
            let _ = qtx.send(query);
        })
        .wait()
        .map_err(|e| format!("zenoh queryable: {e}"))?;
    let f2 = Arc::clone(&flight);
    let c2 = Arc::clone(&c);
    let _done = ctx
        .session
        .declare_subscriber(format!("{}/done", ctx.key))
        .callback(move |s| {
            let b = s.payload().to_bytes();
            let (Some(e), Some(seq)) = (u64_at(&b, 0), u64_at(&b, 8)) else {
                return;
            };
            if e != epoch {
                return;
            }
            let mut f = f2.lock().unwrap_or_else(|e| e.into_inner());
            if f.items.remove(&seq).is_some() {
                Counters::inc(&c2.forwarded);
            } else if f.redelivered.remove(&seq) {
                Counters::inc(&c2.duplicated);
            }
            c2.set_in_flight(f.items.len());
        })
        .wait()
        .map_err(|e| format!("zenoh subscriber: {e}"))?;
    // Each query is answered on a thread of its own: one importer's long
    // poll does not hold up another's.
    let mut workers: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !ctx.stopping() {
        workers.retain(|w| !w.is_finished());
        match qrx.recv_timeout(Duration::from_millis(100)) {
            Ok(query) => {
                let (q, flight, next, c, key) = (
                    Arc::clone(&q),
                    Arc::clone(&flight),
                    Arc::clone(&next),
                    Arc::clone(&c),
                    take_key.clone(),
                );
                workers.push(std::thread::spawn(move || {
                    answer(&query, &key, &q, &flight, &next, &c, epoch);
                }));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => return Err("zenoh queryable gone".into()),
        }
        // Items whose lease ran out go back into the local queue.
        let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
        let expired: Vec<u64> = f
            .items
            .iter()
            .filter(|(_, (_, t))| t.elapsed() >= LEASE)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            let item = &f.items[&seq].0;
            match q.try_put(item) {
                Ok(()) => {
                    f.items.remove(&seq);
                    f.redelivered.insert(seq);
                    Counters::inc(&c.redelivered);
                }
                Err(Error::Full) => break, // again at the next round
                Err(e) => return Err(e.to_string()),
            }
        }
        c.set_in_flight(f.items.len());
    }
    Ok(())
}

fn answer(
    query: &zenoh::query::Query,
    key: &str,
    q: &Queue,
    flight: &Mutex<InFlight>,
    next: &std::sync::atomic::AtomicU64,
    c: &Counters,
    epoch: u64,
) {
    let reply = match q.get_timeout(LONG_POLL) {
        Ok(item) => {
            let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut r = Vec::with_capacity(17 + item.len());
            r.push(1);
            r.extend_from_slice(&epoch.to_le_bytes());
            r.extend_from_slice(&seq.to_le_bytes());
            r.extend_from_slice(&item);
            let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
            f.items.insert(seq, (item, Instant::now()));
            c.set_in_flight(f.items.len());
            // The queue's own accounting: the item left it; whether it was
            // processed is the importing host's `task_done`.
            let _ = q.task_done();
            r
        }
        Err(_) => vec![0],
    };
    let _ = query.reply(key, reply).wait();
}

/// Imports into the local queue `ctx.chan.name` (created with the
/// exporter's slot count and size if missing; `meta` is `queue SLOTS SIZE`).
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn import(ctx: &Ctx, bus: &Bus, meta: &str) -> Result<(), String> {
    let c = &ctx.counters;
    c.set_kind(Kind::Queue);
    let mut m = meta.split(' ').skip(1).map(str::parse::<u64>);
    let q = match (m.next(), m.next()) {
        (Some(Ok(slots)), Some(Ok(size))) => bus
            .queue_builder(&ctx.chan.name)
            .slots(slots)
            .slot_size(size)
            .open(),
        _ => bus.queue(&ctx.chan.name),
    }
    .map_err(|e| e.to_string())?;
    let take = format!("{}/take", ctx.key);
    let done = ctx
        .session
        .declare_publisher(format!("{}/done", ctx.key))
        .wait()
        .map_err(|e| format!("zenoh publisher: {e}"))?;
    while !ctx.stopping() {
        // Pull only while the local consumers keep up.
        if !q.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let replies = ctx
            .session
            .get(&take)
            .consolidation(zenoh::query::ConsolidationMode::None)
            .timeout(Duration::from_secs(5))
            .wait()
            .map_err(|e| format!("zenoh get: {e}"))?;
        let mut got = false;
        while let Ok(r) = replies.recv() {
            let Ok(s) = r.result() else { continue };
            got = true;
            let b = s.payload().to_bytes();
            if b.first() != Some(&1) {
                continue;
            }
            let (Some(epoch), Some(seq)) = (u64_at(&b, 1), u64_at(&b, 9)) else {
                Counters::inc(&c.dropped);
                continue;
            };
            c.set_in_flight(1);
            q.put(&b[17..]).map_err(|e| e.to_string())?;
            let mut ack = Vec::with_capacity(16);
            ack.extend_from_slice(&epoch.to_le_bytes());
            ack.extend_from_slice(&seq.to_le_bytes());
            done.put(ack)
                .wait()
                .map_err(|e| format!("zenoh put: {e}"))?;
            c.set_in_flight(0);
            Counters::inc(&c.forwarded);
        }
        if !got {
            // No exporter answered (not up yet, or the link is cut).
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}
