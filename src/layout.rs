//! The segment ABI: header, peer table, directory and arena.
//!
//! # Layout
//! ```text
//! 0                      header (128 B)
//! peers_off   (4 KiB)    peer table: peers_count × PeerSlot (128 B each)
//! dir_off                directory: dir_count × DirEntry (256 B each)
//! arena_off   (4 KiB al) arena: channel bodies, allocated by the daemon
//! total_size             = file size
//! ```
//! Every field is a fixed-width atomic (`AtomicU32`/`AtomicU64`), because other
//! processes may write the segment at any time: a client only ever forms
//! `&AtomicXX` references into it, never `&u64` or `&[u8]`. Offsets are from the
//! segment base. The daemon is the only writer of everything in this module
//! except the wait records of a peer slot ([`PeerSlot::waits`]), which the
//! slot's holder writes; clients read the rest, and [`validate`] checks it
//! before anything is trusted.
//! Both reach into a mapped segment only through [`SegmentView`], which
//! checks every offset (bounds, alignment, region) before it becomes a
//! reference.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

// Not under loom: loom's atomics are not plain words, so nothing can be
// viewed in place.
#[cfg(not(loom))]
mod view;
#[cfg(not(loom))]
pub use view::{
    header_at, InSegment, OffsetError, PipeBody, QueueBody, SegmentView, SeqlockBody, TopicBody,
};

/// `b"SHMBUS\0\x01"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0\x01");
/// Version of this layout and of the control protocol. Bumped on any change.
/// 2: peer slots carry wait records (`PeerSlot::waits`); line 5 of a queue's
/// control block counts finished positions (`QueueCtl::finished`) instead of
/// unfinished items.
/// 3: channels can be removed: directory entries have the state
/// [`entry_state::REMOVED`] and a holder count (`DirEntry::holders`); the
/// protocol has `REMOVE` and `CLOSE`.
/// 4: topics ([`Kind::Topic`], [`crate::topic`]).
/// 5: values and arrays keep 2 to 8 copies ([`crate::seqlock::copies`],
/// recorded in `seqlock::Meta::copies`) instead of two.
/// 6: a queue's `enqueue_pos` could lag behind the last write claim.
/// 7: a queue's `enqueue_pos` is the exact put frontier and its last
/// claimer, packed as a cell state word; a put claims by CAS of it, then
/// tags its cell ([`crate::queue::QueueCtl::enqueue_pos`]); a queue cell has
/// a claim note after its state word (`CELL_HEADER` 24).
pub const ABI_VERSION: u32 = 7;
/// Alignment of every region and of every word written by a different party.
pub const LINE: u64 = 128;
/// Page size used to align the peer table and the arena.
pub const PAGE: u64 = 4096;
/// Maximum number of peer slots (owner tags are 16 bits; 0 means "none").
pub const MAX_PEERS: u32 = 4096;
/// Maximum number of directory entries.
pub const MAX_CHANNELS: u32 = 65_536;
/// Wait records per peer slot ([`PeerSlot::waits`]): how many threads of one
/// process can be asleep on doorbells at once with the daemon able to undo
/// their count should the process die. A thread beyond that sleeps unrecorded
/// (see [`crate::futex::WaitRecords`]).
pub const WAIT_RECORDS: usize = 12;

/// Values of [`Header::state`].
///
/// | value | name | meaning |
/// |---|---|---|
/// | 0 | `UNINIT` | file exists, nothing written yet |
/// | 1 | `INITIALIZING` | daemon is writing the layout |
/// | 2 | `READY` | layout complete; clients may map and use it |
/// | 3 | `CLOSING` | daemon is shutting down; waits return `BusClosed` |
pub mod state {
    /// File exists, nothing written yet.
    pub const UNINIT: u32 = 0;
    /// The daemon is writing the layout.
    pub const INITIALIZING: u32 = 1;
    /// Layout complete.
    pub const READY: u32 = 2;
    /// The daemon is shutting down.
    pub const CLOSING: u32 = 3;
}

/// Segment header, at offset 0.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`ABI_VERSION`].
    pub abi_version: AtomicU32,
    /// `size_of::<Header>()`, as a sanity check.
    pub header_size: AtomicU32,
    /// Size of the whole segment in bytes; must equal the file size.
    pub total_size: AtomicU64,
    /// Random number chosen by each daemon start; a change means a new daemon.
    pub epoch: AtomicU64,
    /// One of [`state`]; written with Release by the daemon, read with Acquire.
    pub state: AtomicU32,
    /// pid of the daemon serving the segment.
    pub daemon_pid: AtomicU32,
    /// Start time of the daemon (clock ticks since boot, from `/proc/PID/stat`).
    pub daemon_start: AtomicU64,
    /// Offset of the peer table.
    pub peers_off: AtomicU64,
    /// Number of peer slots.
    pub peers_count: AtomicU32,
    /// `size_of::<PeerSlot>()`.
    pub peer_size: AtomicU32,
    /// Offset of the directory.
    pub dir_off: AtomicU64,
    /// Number of directory entries.
    pub dir_count: AtomicU32,
    /// `size_of::<DirEntry>()`.
    pub dir_entry_size: AtomicU32,
    /// Offset of the arena.
    pub arena_off: AtomicU64,
    /// Length of the arena.
    pub arena_len: AtomicU64,
    /// Bytes of the arena that channel bodies take now, removed ones still
    /// held included (informational).
    pub arena_used: AtomicU64,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 3],
}

/// Values of [`PeerSlot::state`].
pub mod peer_state {
    /// Unused.
    pub const FREE: u32 = 0;
    /// Held by a connected client.
    pub const LIVE: u32 = 1;
    /// Its client went away; the daemon is releasing what it held.
    pub const RECOVERING: u32 = 2;
}

/// One peer slot. Owner tags in channels are `slot index + 1` (0 = nobody).
///
/// The daemon writes every field except [`waits`](Self::waits), which the
/// slot's holder writes (the one exception to "clients never write
/// metadata"; the daemon never trusts what it reads there, see
/// [`crate::futex::recover_records`]).
#[derive(Debug)]
#[repr(C, align(128))]
pub struct PeerSlot {
    /// One of [`peer_state`].
    pub state: AtomicU32,
    /// Bumped each time the slot is handed out.
    pub generation: AtomicU32,
    /// pid of the holder.
    pub pid: AtomicU32,
    /// uid of the holder (from `SO_PEERCRED`).
    pub uid: AtomicU32,
    /// Start time of the holder (clock ticks since boot).
    pub start_time: AtomicU64,
    /// The holder's wait records: which doorbells its threads are counted in
    /// as sleepers, so that the daemon can take the counts back if it dies
    /// asleep (DESIGN.md §5 "clear its waiting flags").
    ///
    /// | value | meaning |
    /// |---|---|
    /// | 0 | free |
    /// | `off != 0` | one thread of the holder is counted in the `waiters` of the [`crate::futex::Doorbell`] at segment offset `off` |
    ///
    /// Claimed by CAS (0 → `off`) and cleared by the holder's threads in
    /// `Doorbell::wait`; cleared by the daemon at registration and, after
    /// the holder's death, by [`crate::futex::recover_records`].
    pub waits: [AtomicU64; WAIT_RECORDS],
    /// Reserved, zero.
    pub reserved: [AtomicU64; 1],
}

/// Values of [`DirEntry::state`].
pub mod entry_state {
    /// Unused.
    pub const FREE: u32 = 0;
    /// The daemon is initialising the channel body.
    pub const INITIALIZING: u32 = 1;
    /// Usable. Every other field was written before this (Release).
    pub const LIVE: u32 = 2;
    /// Removed (`shmbus rm`) while holders still have it open: its name is
    /// free for a new channel and `OPEN` no longer finds it, but its body
    /// stays where it is, untouched by the daemon, until the last holder
    /// closes it; then the entry becomes `FREE`. Listings show it as
    /// pending removal.
    pub const REMOVED: u32 = 3;
}

/// Channel kinds, as stored in [`DirEntry::kind`] and named in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// Single-producer single-consumer byte-frame pipe.
    Pipe = 1,
    /// Multi-producer multi-consumer queue of fixed-size slots.
    Queue = 2,
    /// One typed value.
    Value = 3,
    /// Fixed-length typed array.
    Array = 4,
    /// Publish–subscribe ring: every subscriber receives every message.
    Topic = 5,
}

impl Kind {
    /// The kind stored as `v`, if any.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Pipe),
            2 => Some(Self::Queue),
            3 => Some(Self::Value),
            4 => Some(Self::Array),
            5 => Some(Self::Topic),
            _ => None,
        }
    }

    /// Lower-case name, as used by the protocol and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pipe => "pipe",
            Self::Queue => "queue",
            Self::Value => "value",
            Self::Array => "array",
            Self::Topic => "topic",
        }
    }

    /// The name with its indefinite article, for messages: "a pipe",
    /// "an array".
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Pipe => "a pipe",
            Self::Queue => "a queue",
            Self::Value => "a value",
            Self::Array => "an array",
            Self::Topic => "a topic",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pipe" => Some(Self::Pipe),
            "queue" => Some(Self::Queue),
            "value" => Some(Self::Value),
            "array" => Some(Self::Array),
            "topic" => Some(Self::Topic),
            _ => None,
        }
    }
}

impl core::fmt::Display for Kind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest channel name in bytes (the directory stores it in 16 words).
pub const MAX_CHANNEL_NAME: usize = 128;

/// One directory entry: a named channel and where its body lives.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct DirEntry {
    /// One of [`entry_state`]; Release-stored last by the daemon.
    pub state: AtomicU32,
    /// A [`Kind`] as `u32`.
    pub kind: AtomicU32,
    /// Bumped each time the entry is (re)used.
    pub generation: AtomicU32,
    /// Length of the name in bytes.
    pub name_len: AtomicU32,
    /// Offset of the channel body from the segment base.
    pub offset: AtomicU64,
    /// Length of the channel body in bytes.
    pub length: AtomicU64,
    /// Kind-specific parameters (pipe: `[capacity, 0, 0, 0]`; queue:
    /// `[slots, slot_size, 0, 0]`; value and array: `[element type code,
    /// length, 0, 0]`; topic: `[slots, slot_size, mode word, 0]`).
    pub params: [AtomicU64; 4],
    /// The name, packed little-endian into words.
    pub name: [AtomicU64; 16],
    /// Number of client connections that have the channel open (each `OPEN`
    /// counts until its `CLOSE` or the end of the connection). Informational,
    /// for listings; written by the daemon with Relaxed stores.
    pub holders: AtomicU64,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 7],
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == 128 && align_of::<Header>() == 128);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, abi_version) == 8);
    assert!(offset_of!(Header, total_size) == 16);
    assert!(offset_of!(Header, epoch) == 24);
    assert!(offset_of!(Header, state) == 32);
    assert!(offset_of!(Header, daemon_pid) == 36);
    assert!(offset_of!(Header, daemon_start) == 40);
    assert!(offset_of!(Header, peers_off) == 48);
    assert!(offset_of!(Header, dir_off) == 64);
    assert!(offset_of!(Header, arena_off) == 80);
    assert!(offset_of!(Header, arena_used) == 96);
    assert!(size_of::<PeerSlot>() == 128 && align_of::<PeerSlot>() == 128);
    assert!(offset_of!(PeerSlot, start_time) == 16);
    assert!(offset_of!(PeerSlot, waits) == 24 && WAIT_RECORDS == 12);
    assert!(offset_of!(PeerSlot, reserved) == 120);
    assert!(size_of::<DirEntry>() == 256 && align_of::<DirEntry>() == 128);
    assert!(offset_of!(DirEntry, offset) == 16);
    assert!(offset_of!(DirEntry, params) == 32);
    assert!(offset_of!(DirEntry, name) == 64);
    assert!(offset_of!(DirEntry, holders) == 192);
    assert!(offset_of!(DirEntry, reserved) == 200);
};

/// Sizes of the regions, computed once by the daemon and checked by clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the whole segment.
    pub total_size: u64,
    /// Offset of the peer table.
    pub peers_off: u64,
    /// Number of peer slots.
    pub peers_count: u32,
    /// Offset of the directory.
    pub dir_off: u64,
    /// Number of directory entries.
    pub dir_count: u32,
    /// Offset of the arena.
    pub arena_off: u64,
    /// Length of the arena.
    pub arena_len: u64,
}

const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

/// Why a geometry cannot be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Peer or channel count out of range.
    BadCount,
    /// `total_size` leaves less than `min_arena` bytes for the arena.
    TooSmall {
        /// The smallest total size that would do.
        needed: u64,
    },
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadCount => write!(
                f,
                "peer count must be 1..={MAX_PEERS} and channel count 1..={MAX_CHANNELS}"
            ),
            Self::TooSmall { needed } => {
                write!(f, "segment too small: needs at least {needed} bytes")
            }
        }
    }
}

impl std::error::Error for PlanError {}

impl Geometry {
    /// Lays out a segment of `total_size` bytes with the given table sizes.
    ///
    /// # Errors
    /// [`PlanError`] when a count is out of range or the arena would be smaller
    /// than one page.
    pub fn plan(total_size: u64, peers: u32, channels: u32) -> Result<Self, PlanError> {
        if peers == 0 || peers > MAX_PEERS || channels == 0 || channels > MAX_CHANNELS {
            return Err(PlanError::BadCount);
        }
        let peers_off = PAGE;
        let dir_off = align_up(peers_off + u64::from(peers) * 128, LINE);
        let arena_off = align_up(dir_off + u64::from(channels) * 256, PAGE);
        let needed = arena_off + PAGE;
        if total_size < needed {
            return Err(PlanError::TooSmall { needed });
        }
        let total_size = total_size & !(PAGE - 1);
        Ok(Self {
            total_size,
            peers_off,
            peers_count: peers,
            dir_off,
            dir_count: channels,
            arena_off,
            arena_len: total_size - arena_off,
        })
    }
}

/// Why a segment is refused at open time. Each variant says what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The file is smaller than a header.
    TooShort {
        /// File size.
        file_size: u64,
    },
    /// The magic number is not shmbus's: this is some other file.
    BadMagic {
        /// What was found.
        found: u64,
    },
    /// Written by a different ABI version of shmbus.
    AbiMismatch {
        /// Version in the segment.
        found: u32,
        /// Version this library speaks.
        expected: u32,
    },
    /// The daemon has not finished initialising the segment.
    NotReady,
    /// The daemon is shutting down.
    Closing,
    /// The state word holds no known state.
    BadState(u32),
    /// Header's size does not match the file's.
    SizeMismatch {
        /// Size in the header.
        header: u64,
        /// Size from `fstat`.
        file: u64,
    },
    /// A region lies outside the segment, overlaps another or is misaligned.
    BadRegion {
        /// Which region.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooShort { file_size } => write!(
                f,
                "file is {file_size} bytes, smaller than a shmbus header: not a shmbus segment"
            ),
            Self::BadMagic { found } => write!(
                f,
                "bad magic number {found:#018x}: not a shmbus segment (another program's file?)"
            ),
            Self::AbiMismatch { found, expected } => write!(
                f,
                "segment has ABI version {found}, this library speaks {expected}: \
                 use a client and daemon from the same shmbus release"
            ),
            Self::NotReady => write!(f, "the daemon has not finished initialising the segment"),
            Self::Closing => write!(f, "the daemon is shutting the bus down"),
            Self::BadState(s) => write!(f, "corrupt segment: unknown state {s}"),
            Self::SizeMismatch { header, file } => write!(
                f,
                "corrupt segment: header says {header} bytes but the file has {file}"
            ),
            Self::BadRegion { what, offset, len } => write!(
                f,
                "corrupt segment: {what} at offset {offset} length {len} is out of bounds or misaligned"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

fn region(
    what: &'static str,
    off: u64,
    len: Option<u64>,
    lo: u64,
    hi: u64,
) -> Result<u64, LayoutError> {
    let bad = LayoutError::BadRegion {
        what,
        offset: off,
        len: len.unwrap_or(u64::MAX),
    };
    let len = len.ok_or(bad)?;
    let end = off.checked_add(len).ok_or(bad)?;
    if off < lo || end > hi || !off.is_multiple_of(LINE) {
        return Err(bad);
    }
    Ok(end)
}

/// Reads and checks the header of a segment whose file is `file_size` bytes.
///
/// Each shared word is read once; the returned [`Geometry`] is the validated
/// copy that callers use from then on.
///
/// # Errors
/// A [`LayoutError`] naming the first thing that is wrong.
pub fn validate(h: &Header, file_size: u64) -> Result<Geometry, LayoutError> {
    // Acquire: pairs with the daemon's Release store of READY in `publish`, so
    // every field below was written before we read it.
    let st = h.state.load(Ordering::Acquire);
    let magic = h.magic.load(Ordering::Relaxed);
    if magic != MAGIC {
        return Err(LayoutError::BadMagic { found: magic });
    }
    let abi = h.abi_version.load(Ordering::Relaxed);
    if abi != ABI_VERSION {
        return Err(LayoutError::AbiMismatch {
            found: abi,
            expected: ABI_VERSION,
        });
    }
    match st {
        state::READY => {}
        state::UNINIT | state::INITIALIZING => return Err(LayoutError::NotReady),
        state::CLOSING => return Err(LayoutError::Closing),
        other => return Err(LayoutError::BadState(other)),
    }
    let total = h.total_size.load(Ordering::Relaxed);
    if total != file_size {
        return Err(LayoutError::SizeMismatch {
            header: total,
            file: file_size,
        });
    }
    let hs = h.header_size.load(Ordering::Relaxed);
    if hs != 128 {
        return Err(LayoutError::BadRegion {
            what: "header",
            offset: 0,
            len: u64::from(hs),
        });
    }
    let peers_off = h.peers_off.load(Ordering::Relaxed);
    let peers_count = h.peers_count.load(Ordering::Relaxed);
    let peer_size = h.peer_size.load(Ordering::Relaxed);
    let dir_off = h.dir_off.load(Ordering::Relaxed);
    let dir_count = h.dir_count.load(Ordering::Relaxed);
    let dir_entry_size = h.dir_entry_size.load(Ordering::Relaxed);
    let arena_off = h.arena_off.load(Ordering::Relaxed);
    let arena_len = h.arena_len.load(Ordering::Relaxed);
    if peer_size != 128 || peers_count == 0 || peers_count > MAX_PEERS {
        return Err(LayoutError::BadRegion {
            what: "peer table",
            offset: peers_off,
            len: u64::from(peers_count) * u64::from(peer_size),
        });
    }
    if dir_entry_size != 256 || dir_count == 0 || dir_count > MAX_CHANNELS {
        return Err(LayoutError::BadRegion {
            what: "directory",
            offset: dir_off,
            len: u64::from(dir_count) * u64::from(dir_entry_size),
        });
    }
    let g = Geometry {
        total_size: total,
        peers_off,
        peers_count,
        dir_off,
        dir_count,
        arena_off,
        arena_len,
    };
    check_regions(&g)?;
    Ok(g)
}

/// Checks that the regions of `g` lie inside the segment, in order (header,
/// peer table, directory, arena), without overlap and each aligned to
/// [`LINE`], with checked arithmetic: the rule [`validate`] applies to a
/// header and [`SegmentView::new`] to any geometry it is given.
///
/// # Errors
/// [`LayoutError::BadRegion`] naming the first region that is wrong.
fn check_regions(g: &Geometry) -> Result<(), LayoutError> {
    // Literal sizes (the const asserts above pin them), so that this also
    // holds under loom, whose atomics are larger.
    let total = g.total_size;
    let count = |n: u32, max: u32| (1..=max).contains(&n).then_some(u64::from(n));
    let end = region(
        "peer table",
        g.peers_off,
        count(g.peers_count, MAX_PEERS).map(|n| n * 128),
        128,
        total,
    )?;
    let end = region(
        "directory",
        g.dir_off,
        count(g.dir_count, MAX_CHANNELS).map(|n| n * 256),
        end,
        total,
    )?;
    region("arena", g.arena_off, Some(g.arena_len), end, total)?;
    Ok(())
}

/// Writes the layout of a freshly zeroed segment (daemon only), leaving the
/// state at `INITIALIZING`; call [`publish`] when the channels declared at
/// start are in place.
pub fn init(h: &Header, g: &Geometry, epoch: u64, daemon_pid: u32, daemon_start: u64) {
    // Relaxed: nobody may read these until `publish` stores READY with Release.
    h.state.store(state::INITIALIZING, Ordering::Relaxed);
    h.magic.store(MAGIC, Ordering::Relaxed);
    h.abi_version.store(ABI_VERSION, Ordering::Relaxed);
    h.header_size.store(128, Ordering::Relaxed);
    h.total_size.store(g.total_size, Ordering::Relaxed);
    h.epoch.store(epoch, Ordering::Relaxed);
    h.daemon_pid.store(daemon_pid, Ordering::Relaxed);
    h.daemon_start.store(daemon_start, Ordering::Relaxed);
    h.peers_off.store(g.peers_off, Ordering::Relaxed);
    h.peers_count.store(g.peers_count, Ordering::Relaxed);
    h.peer_size.store(128, Ordering::Relaxed);
    h.dir_off.store(g.dir_off, Ordering::Relaxed);
    h.dir_count.store(g.dir_count, Ordering::Relaxed);
    h.dir_entry_size.store(256, Ordering::Relaxed);
    h.arena_off.store(g.arena_off, Ordering::Relaxed);
    h.arena_len.store(g.arena_len, Ordering::Relaxed);
    h.arena_used.store(0, Ordering::Relaxed);
}

/// Marks the segment ready for clients.
pub fn publish(h: &Header) {
    // Release: publishes the layout; pairs with the Acquire load in `validate`.
    h.state.store(state::READY, Ordering::Release);
}

/// Packs `name` into the directory entry's name words (daemon only).
///
/// # Panics
/// If `name` is longer than [`MAX_CHANNEL_NAME`]; validate names first.
pub fn write_name(e: &DirEntry, name: &[u8]) {
    assert!(name.len() <= MAX_CHANNEL_NAME);
    for (i, w) in e.name.iter().enumerate() {
        let mut b = [0u8; 8];
        let start = (i * 8).min(name.len());
        let end = (i * 8 + 8).min(name.len());
        b[..end - start].copy_from_slice(&name[start..end]);
        // Relaxed: published by the Release store of the entry's state.
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
    e.name_len.store(name.len() as u32, Ordering::Relaxed);
}

/// Reads an entry's name, or `None` if its length is out of range.
pub fn read_name(e: &DirEntry) -> Option<Vec<u8>> {
    let len = e.name_len.load(Ordering::Relaxed) as usize;
    if len == 0 || len > MAX_CHANNEL_NAME {
        return None;
    }
    let mut out = Vec::with_capacity(MAX_CHANNEL_NAME);
    for w in &e.name {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    Some(out)
}
