//! # shmbus-bridge
//!
//! Carries shmbus channels between hosts over [zenoh]: one bridge per host
//! connects to its local bus as an ordinary client and to a zenoh session
//! (a peer, TCP endpoints, multicast scouting off unless asked). Exported
//! channels go out under the keys `PREFIX/<channel>/...`; imported ones come
//! in from there. See the README's "Across hosts" section for the delivery
//! guarantees per kind.
//!
//! Keys under `PREFIX/<channel>`:
//! - `meta`: queryable of the exporter, answering `KIND PARAMS` so that an
//!   importer can create the local channel alike;
//! - `data` / `ack`: pipe frames (`epoch seq base frame`) and the importer's
//!   acknowledgements (`epoch seq flag`), see [`pipe`]; topic messages
//!   travel the same way, see [`topic`];
//! - `state`: a value's or array's elements, published on change and every
//!   second, and the exporter's queryable of the latest, see [`table`];
//! - `take` / `done`: queue items pulled by query, and their
//!   acknowledgements, see [`queue`].
//!
//! [zenoh]: https://zenoh.io
#![warn(missing_docs, missing_debug_implementations)]

pub mod config;
pub mod pipe;
pub mod queue;
pub mod stats;
pub mod table;
pub mod topic;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus_client::{Bus, ChannelDetails, Kind};
use zenoh::{Session, Wait};

use config::{Channel, Config};
use stats::{Counters, Dir};

/// How long a worker waits before it tries again after an error (the local
/// daemon gone, a pipe end held by someone else, no exporter yet).
pub const RETRY: Duration = Duration::from_millis(500);

/// What a channel worker needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The zenoh session.
    pub session: Session,
    /// The local bus name.
    pub bus: String,
    /// `PREFIX/<channel>`.
    pub key: String,
    /// The channel.
    pub chan: Channel,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Pipe window.
    pub window: usize,
    /// Set when the bridge stops.
    pub stop: Arc<AtomicBool>,
}

impl Ctx {
    /// True once the bridge is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Connects to the local bus.
    ///
    /// # Errors
    /// The client's error, as text.
    pub fn connect(&self) -> Result<Bus, String> {
        Bus::connect_to(&self.bus).map_err(|e| format!("bus {}: {e}", self.bus))
    }
}

/// A number that differs between two runs of a bridge (the clock's
/// nanoseconds and the pid), never 0.
pub fn new_epoch() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)).max(1)
}

/// `u64` at `b[i..i + 8]`, little-endian.
pub fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// Kind and parameters of a local channel, as the `meta` key answers them.
pub fn describe(bus: &Bus, name: &str) -> Option<(Kind, String)> {
    let c = bus
        .channels()
        .into_iter()
        .find(|c| c.name == name && !c.removed)?;
    let params = match c.details {
        ChannelDetails::Pipe(p) => format!("{}", p.capacity),
        ChannelDetails::Queue(q) => format!("{} {}", q.slots, q.slot_size),
        ChannelDetails::Table(t) => format!("{} {}", t.elem, t.len),
        ChannelDetails::Topic(t) => format!(
            "{} {} {} {}",
            t.slots,
            t.slot_size,
            u8::from(t.lossy),
            t.max_subscribers
        ),
        _ => String::new(),
    };
    Some((c.kind, format!("{} {params}", c.kind.as_str())))
}

/// Serves `key/meta` with `meta` while the returned queryable lives.
///
/// # Errors
/// zenoh's error, as text.
pub fn serve_meta(
    s: &Session,
    key: &str,
    meta: String,
) -> Result<zenoh::query::Queryable<()>, String> {
    let k = format!("{key}/meta");
    let k2 = k.clone();
    s.declare_queryable(&k)
        .callback(move |q| {
            let _ = q.reply(&k2, meta.as_bytes()).wait();
        })
        .wait()
        .map_err(|e| format!("zenoh queryable {k}: {e}"))
}

/// Asks the exporter of `key` for its channel's `KIND PARAMS` (waits up to
/// 2 s for an answer).
pub fn ask_meta(s: &Session, key: &str) -> Option<String> {
    let replies = s
        .get(format!("{key}/meta"))
        .timeout(Duration::from_secs(2))
        .wait()
        .ok()?;
    while let Ok(r) = replies.recv() {
        if let Ok(sample) = r.result() {
            return String::from_utf8(sample.payload().to_bytes().into_owned()).ok();
        }
    }
    None
}

/// Runs `body` again after [`RETRY`] whenever it fails, until the bridge
/// stops; reports each failure once per distinct message.
fn supervise(ctx: Ctx, body: fn(&Ctx) -> Result<(), String>) {
    let mut last = String::new();
    while !ctx.stopping() {
        if let Err(e) = body(&ctx) {
            if e != last {
                eprintln!("shmbus-bridge: {}: {e} (retrying)", ctx.chan.name);
                last = e;
            }
        }
        std::thread::sleep(RETRY);
    }
}

/// Finds the kind of an exported channel: given, else the local bus's.
///
/// # Errors
/// If neither says.
pub fn export_kind(ctx: &Ctx, bus: &Bus) -> Result<Kind, String> {
    if let Some(k) = ctx.chan.kind {
        return Ok(k);
    }
    describe(bus, &ctx.chan.name)
        .map(|(k, _)| k)
        .ok_or_else(|| {
            format!(
                "not on bus {}: create it, or name its kind (KIND:NAME)",
                ctx.bus
            )
        })
}

fn export(ctx: &Ctx) -> Result<(), String> {
    let bus = ctx.connect()?;
    match export_kind(ctx, &bus)? {
        Kind::Pipe => pipe::export(ctx, &bus),
        Kind::Queue => queue::export(ctx, &bus),
        Kind::Value | Kind::Array => table::export(ctx, &bus),
        Kind::Topic => topic::export(ctx, &bus),
    }
}

fn import(ctx: &Ctx) -> Result<(), String> {
    let bus = ctx.connect()?;
    // The kind: given, else the local channel's, else the exporter's.
    let meta = describe(&bus, &ctx.chan.name).map(|(_, m)| m);
    let meta = match meta {
        Some(m) => m,
        None => ask_meta(&ctx.session, &ctx.key)
            .ok_or_else(|| format!("not on bus {} and no exporter answers yet", ctx.bus))?,
    };
    let kind = match ctx.chan.kind {
        Some(k) => k,
        None => config::parse_channel(&format!(
            "{}:{}",
            meta.split(' ').next().unwrap_or(""),
            ctx.chan.name
        ))?
        .kind
        .ok_or("no kind")?,
    };
    match kind {
        Kind::Pipe => pipe::import(ctx, &bus, &meta),
        Kind::Queue => queue::import(ctx, &bus, &meta),
        Kind::Value | Kind::Array => table::import(ctx, &bus),
        Kind::Topic => topic::import(ctx, &bus, &meta),
    }
}

/// Opens the zenoh session and carries every channel of `cfg` until `stop`
/// is set; prints `stats` lines every `cfg.stats` seconds.
///
/// # Errors
/// If zenoh refuses the configuration or cannot open (e.g. a listen address
/// in use).
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<(), String> {
    let session = zenoh::open(cfg.zenoh()?)
        .wait()
        .map_err(|e| format!("zenoh: {e}"))?;
    let mut all = Vec::new();
    let mut threads = Vec::new();
    for (chans, dir) in [(&cfg.export, Dir::Export), (&cfg.import, Dir::Import)] {
        for chan in chans {
            let counters = Counters::new(&chan.name, dir);
            if let Some(k) = chan.kind {
                counters.set_kind(k);
            }
            all.push(Arc::clone(&counters));
            let ctx = Ctx {
                session: session.clone(),
                bus: cfg.bus.clone(),
                key: format!("{}/{}", cfg.prefix, chan.name),
                chan: chan.clone(),
                counters,
                window: cfg.window,
                stop: Arc::clone(&stop),
            };
            let body = if dir == Dir::Export { export } else { import };
            threads.push(std::thread::spawn(move || supervise(ctx, body)));
        }
    }
    println!(
        "shmbus-bridge: bus {} zenoh {} ready",
        cfg.bus,
        session.zid()
    );
    let period = cfg.stats.map(Duration::from_secs_f64);
    let mut next = period.map(|p| Instant::now() + p);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if let (Some(p), Some(n)) = (period, next) {
            if Instant::now() >= n {
                for c in &all {
                    println!("{c}");
                }
                next = Some(n + p);
            }
        }
    }
    for c in &all {
        println!("{c}");
    }
    // Workers notice `stop` within a poll period; the process exits anyway.
    drop(threads);
    let _ = session.close().wait();
    Ok(())
}
