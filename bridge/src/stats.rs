//! Counters per channel, printed as one line each by `--stats SECS`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shmbus_client::Kind;

/// Which way a channel goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Local channel out to zenoh.
    Export,
    /// zenoh into a local channel.
    Import,
}

/// One channel's counters. Relaxed: counters, read for display only.
#[derive(Debug)]
pub struct Counters {
    /// Channel name.
    pub name: String,
    /// Direction.
    pub dir: Dir,
    /// Kind, once known.
    pub kind: AtomicU64,
    /// Frames, items or states carried (exported: acknowledged by the
    /// importer, or published for values; imported: written locally).
    pub forwarded: AtomicU64,
    /// Taken from the local channel, not yet acknowledged (exported), or
    /// received and not yet written locally (imported).
    pub in_flight: AtomicU64,
    /// Received and not written (imported): pipe frames already delivered
    /// or after a gap (both sent again), frames too large for the local
    /// pipe (lost), malformed messages; exported topics: messages a lossy
    /// local topic overwrote before the bridge read them (`Lagged`).
    pub dropped: AtomicU64,
    /// Pipe or topic frames sent again after a silence, a gap or a new importer
    /// (exported).
    pub resent: AtomicU64,
    /// Queue items put back into the local queue because no importer
    /// acknowledged them in time (exported).
    pub redelivered: AtomicU64,
    /// Queue items acknowledged after they had been put back: taken twice
    /// (exported).
    pub duplicated: AtomicU64,
    /// Times the other side's bridge was seen to start anew (a new epoch).
    pub restarts: AtomicU64,
}

impl Counters {
    /// Fresh counters.
    pub fn new(name: &str, dir: Dir) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            dir,
            kind: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        })
    }

    /// Records the channel's kind.
    pub fn set_kind(&self, k: Kind) {
        self.kind.store(k as u64, Ordering::Relaxed);
    }

    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `c`.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the in-flight gauge.
    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Ordering::Relaxed);
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let kind = u32::try_from(g(&self.kind))
            .ok()
            .and_then(Kind::from_u32)
            .map_or("?", Kind::as_str);
        let dir = match self.dir {
            Dir::Export => "export",
            Dir::Import => "import",
        };
        write!(
            f,
            "stats {dir} {kind} {} forwarded={} in_flight={} dropped={} resent={} redelivered={} duplicated={} restarts={}",
            self.name,
            g(&self.forwarded),
            g(&self.in_flight),
            g(&self.dropped),
            g(&self.resent),
            g(&self.redelivered),
            g(&self.duplicated),
            g(&self.restarts),
        )
    }
}
