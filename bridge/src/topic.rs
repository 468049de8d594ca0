//! Topics: every message published on a local topic, over zenoh, into a
//! remote topic, in order, with the window of [`pipe`](crate::pipe).
//!
//! The exporter subscribes to its local topic and sends what it receives as
//! numbered frames, acknowledged by the importer, exactly as a pipe's: the
//! same guarantees hold between the exporter's subscription and the
//! importing topic. The importer publishes each frame into its local topic;
//! a full lossless topic there holds it (and so the acknowledgements, the
//! exporter, whose subscription then holds the publishers of a lossless
//! topic on its side). Messages a lossy topic overwrote before the
//! exporter read them (`Lagged`) are counted as `dropped` on the exporting
//! side.

use shmbus_client::{Bus, Error, Kind};

use crate::pipe::{export_frames, import_frames, POLL};
use crate::stats::Counters;
use crate::Ctx;

/// Exports the local topic `ctx.chan.name` (through a subscription of its
/// own, from the moment the bridge joins).
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn export(ctx: &Ctx, bus: &Bus) -> Result<(), String> {
    let c = &ctx.counters;
    c.set_kind(Kind::Topic);
    let topic = bus.topic(&ctx.chan.name).map_err(|e| e.to_string())?;
    let sub = topic.subscribe().map_err(|e| e.to_string())?;
    let meta = crate::describe(bus, &ctx.chan.name)
        .map(|(_, m)| m)
        .ok_or_else(|| format!("topic {} went away", ctx.chan.name))?;
    export_frames(ctx, meta, || match sub.recv_timeout(POLL) {
        Ok(m) => Ok(Some(m)),
        Err(Error::Timeout) => Ok(None),
        Err(Error::Lagged(n)) => {
            Counters::add(&c.dropped, n);
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    })
}

/// Imports into the local topic `ctx.chan.name` (as one more publisher).
/// A missing local topic is created with the exporter's parameters (`meta`
/// is `topic SLOTS SLOT_SIZE LOSSY MAX_SUBSCRIBERS`, as
/// [`describe`](crate::describe) gives them).
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn import(ctx: &Ctx, bus: &Bus, meta: &str) -> Result<(), String> {
    ctx.counters.set_kind(Kind::Topic);
    let p: Vec<u64> = meta
        .split(' ')
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let topic = match p[..] {
        [slots, slot_size, lossy, max_subs] if crate::describe(bus, &ctx.chan.name).is_none() => {
            bus.topic_builder(&ctx.chan.name)
                .slots(slots)
                .slot_size(slot_size)
                .lossy(lossy != 0)
                .max_subscribers(max_subs)
                .open()
        }
        _ => bus.topic(&ctx.chan.name),
    }
    .map_err(|e| e.to_string())?;
    let publisher = topic.publisher();
    import_frames(ctx, |m| publisher.publish_timeout(m, POLL))
}
