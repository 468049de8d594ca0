//! The channels of a bus as listed by [`Bus::channels`](crate::Bus::channels):
//! [`ChannelInfo`] and its kind-specific [`ChannelDetails`], read from the
//! segment's directory.

use std::fmt;

use shmbus::layout::{entry_state, peer_state, Kind};
use shmbus::params::ChannelParams;
use shmbus::seqlock::ElemType;
use shmbus::sync::{fence, Ordering};

use crate::segment::Mapping;

/// Every channel in `map`'s directory, skipping entries that are free or
/// change while they are read (see [`Bus::channels`](crate::Bus::channels)).
pub(crate) fn list(map: &Mapping) -> Vec<ChannelInfo> {
    let n = map.geometry().dir_count;
    (0..n).filter_map(|i| read_entry(map, i)).collect()
}

fn read_entry(m: &Mapping, index: u32) -> Option<ChannelInfo> {
    let e = m.entry(index)?;
    // Acquire: pairs with the daemon's Release store of LIVE, made after
    // it wrote every other field of the entry (REMOVED is stored later
    // still, and changes nothing else).
    let state = e.state.load(Ordering::Acquire);
    if state != entry_state::LIVE && state != entry_state::REMOVED {
        return None;
    }
    // Relaxed, all: ordered after the Acquire above, and re-validated by
    // the second look below.
    let generation = e.generation.load(Ordering::Relaxed);
    let kind = e.kind.load(Ordering::Relaxed);
    let name = shmbus::layout::read_name(e)?;
    let offset = e.offset.load(Ordering::Relaxed);
    let length = e.length.load(Ordering::Relaxed);
    let params = [
        e.params[0].load(Ordering::Relaxed),
        e.params[1].load(Ordering::Relaxed),
        e.params[2].load(Ordering::Relaxed),
    ];
    let holders = e.holders.load(Ordering::Relaxed);
    // Acquire fence: keeps the loads above before the second look, as a
    // seqlock reader does; if the daemon freed or reused the entry
    // meanwhile, the state or generation differ and we skip it.
    fence(Ordering::Acquire);
    if e.state.load(Ordering::Relaxed) != state
        || e.generation.load(Ordering::Relaxed) != generation
    {
        return None;
    }
    let name = String::from_utf8(name).ok()?;
    let kind = Kind::from_u32(kind)?;
    let details = match ChannelParams::from_words(kind, params) {
        Err(_) => ChannelDetails::Corrupt("bad channel parameters in the directory"),
        Ok(ChannelParams::Pipe { capacity }) => match m.pipe(offset, length, capacity) {
            Ok(body) => {
                let s = body.ctl.stats();
                ChannelDetails::Pipe(PipeInfo {
                    capacity: s.capacity,
                    waiting: s.used.min(s.capacity),
                    sender: holder(m, s.producer),
                    receiver: holder(m, s.consumer),
                    written: s.tail,
                    read: s.head,
                })
            }
            Err(what) => ChannelDetails::Corrupt(what),
        },
        Ok(ChannelParams::Queue { slots, slot_size }) => {
            match m.queue(offset, length, slots, slot_size) {
                Ok(body) => {
                    let s = body.stats();
                    ChannelDetails::Queue(QueueInfo {
                        slots: s.slots,
                        slot_size: s.slot_size,
                        depth: s.depth,
                        unfinished: s.unfinished,
                        put: s.enqueue_pos,
                        taken: s.dequeue_pos,
                    })
                }
                Err(what) => ChannelDetails::Corrupt(what),
            }
        }
        Ok(ChannelParams::Topic {
            slots,
            slot_size,
            mode,
        }) => match m.topic(offset, length, slots, slot_size, mode) {
            Ok(body) => {
                // SAFETY: the ring is used only within this call, while
                // `m` (the mapping) is borrowed.
                let ring = unsafe { body.ring() };
                let s = body.ctl.stats(&ring);
                ChannelDetails::Topic(TopicInfo {
                    slots: s.slots,
                    slot_size: s.slot_size,
                    lossy: s.lossy,
                    max_subscribers: s.max_subscribers,
                    subscribers: s.subscribers,
                    published: s.tail,
                    max_lag: s.max_lag,
                })
            }
            Err(what) => ChannelDetails::Corrupt(what),
        },
        Ok(p @ (ChannelParams::Value { elem } | ChannelParams::Array { elem, .. })) => {
            let len = p.table_len().unwrap_or(1);
            match m.seqlock(offset, length, u64::from(elem.code()), len) {
                Ok(body) => ChannelDetails::Table(TableInfo {
                    elem: body.elem,
                    len,
                    version: body.ctl.generation(),
                    writer: holder(m, body.ctl.writer()),
                }),
                Err(what) => ChannelDetails::Corrupt(what),
            }
        }
    };
    Some(ChannelInfo {
        name,
        kind,
        details,
        removed: state == entry_state::REMOVED,
        holders,
    })
}

fn holder(m: &Mapping, owner: u16) -> Option<Holder> {
    let slot = owner.checked_sub(1)?;
    Some(Holder {
        slot,
        pid: peer_pid(m, slot),
    })
}

/// The pid holding peer slot `slot`, if the peer table says.
pub(crate) fn peer_pid(map: &Mapping, slot: u16) -> Option<u32> {
    let p = map.peer(slot)?;
    // Acquire: pairs with the daemon's Release store of LIVE after it
    // wrote the pid.
    if p.state.load(Ordering::Acquire) != peer_state::LIVE {
        return None;
    }
    // Relaxed: ordered by the Acquire above; informational anyway. 0: the
    // daemon could not see its pid (another pid namespace).
    Some(p.pid.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
}

/// One channel of a bus, as listed by [`Bus::channels`](crate::Bus::channels).
///
/// # Examples
/// ```no_run
/// for c in shmbus_client::Bus::connect()?.channels() {
///     println!("{} ({})", c.name, c.kind);
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Kind-specific state.
    pub details: ChannelDetails,
    /// Removed ([`Bus::remove`](crate::Bus::remove)) while still open somewhere: its name is
    /// free (another channel may have it), and its space is reused once the
    /// holders below are gone.
    pub removed: bool,
    /// Connections that have the channel open (approximate: read while
    /// others open and close it).
    pub holders: u64,
}

/// Kind-specific part of a [`ChannelInfo`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     match c.details {
///         ChannelDetails::Pipe(p) => println!("{}: {} bytes waiting", c.name, p.waiting),
///         ChannelDetails::Corrupt(what) => println!("{}: corrupt: {what}", c.name),
///         _ => println!("{}", c.name),
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelDetails {
    /// A pipe's state.
    Pipe(PipeInfo),
    /// A queue's state.
    Queue(QueueInfo),
    /// A value's or array's type and state.
    Table(TableInfo),
    /// A topic's parameters and state.
    Topic(TopicInfo),
    /// A kind this version does not inspect; its raw parameters.
    Other {
        /// The directory's parameters.
        params: [u64; 3],
    },
    /// The channel's body failed validation.
    Corrupt(&'static str),
}

/// A snapshot of a value or array, in [`ChannelDetails::Table`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Table(t) = c.details {
///         println!("{}: {}[{}], written {} times", c.name, t.elem, t.len, t.version);
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Element type.
    pub elem: ElemType,
    /// Number of elements (1 for a value).
    pub len: u64,
    /// Writes so far.
    pub version: u64,
    /// Who holds the writer lock right now, if anyone.
    pub writer: Option<Holder>,
}

/// A snapshot of a queue, in [`ChannelDetails::Queue`] (approximate).
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Queue(q) = c.details {
///         println!("{}: {} of {} slots in use", c.name, q.depth, q.slots);
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// Number of slots.
    pub slots: u64,
    /// Largest item in bytes.
    pub slot_size: u64,
    /// Items waiting.
    pub depth: u64,
    /// Items put and not yet marked done.
    pub unfinished: u64,
    /// Items ever put (the queue's enqueue position, puts in progress
    /// included): two snapshots give a rate (`shmbus top`).
    pub put: u64,
    /// Items ever taken (the dequeue position, gets in progress included).
    pub taken: u64,
}

/// A snapshot of a topic, in [`ChannelDetails::Topic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Number of slots.
    pub slots: u64,
    /// Largest message in bytes.
    pub slot_size: u64,
    /// Lossy (true) or lossless.
    pub lossy: bool,
    /// Largest number of subscribers.
    pub max_subscribers: u64,
    /// Subscribers now.
    pub subscribers: u64,
    /// Messages ever published (publishes in progress and tombstones
    /// included): two snapshots give a rate.
    pub published: u64,
    /// How many messages the slowest subscriber is behind (0 with none).
    pub max_lag: u64,
}

/// A snapshot of a pipe, in [`ChannelDetails::Pipe`].
///
/// # Examples
/// ```no_run
/// use shmbus_client::ChannelDetails;
///
/// for c in shmbus_client::Bus::connect()?.channels() {
///     if let ChannelDetails::Pipe(p) = c.details {
///         let busy = p.sender.is_some() && p.receiver.is_some();
///         println!("{}: {}", c.name, if busy { "in use" } else { "waiting for an end" });
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeInfo {
    /// Ring capacity in bytes.
    pub capacity: u64,
    /// Bytes waiting to be read, record headers and padding included.
    pub waiting: u64,
    /// Who holds the sending end, if anyone.
    pub sender: Option<Holder>,
    /// Who holds the receiving end, if anyone.
    pub receiver: Option<Holder>,
    /// Bytes ever sent (the sender's position), record headers and padding
    /// included: two snapshots give a rate (`shmbus top`).
    pub written: u64,
    /// Bytes ever received (the receiver's position), likewise.
    pub read: u64,
}

/// The holder of a pipe end: a peer slot, and its process if the peer table
/// says.
///
/// # Examples
/// ```
/// let h = shmbus_client::Holder { slot: 2, pid: Some(4242) };
/// assert_eq!(h.to_string(), "pid 4242");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Peer slot.
    pub slot: u16,
    /// pid of the process in that slot.
    pub pid: Option<u32>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}"),
            None => write!(f, "slot {}", self.slot),
        }
    }
}
