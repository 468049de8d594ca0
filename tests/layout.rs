//! ABI snapshot of the segment: sizes, alignments and field offsets of every
//! shared struct, the magic numbers, planned geometries, and open-time
//! validation, where each inconsistency has its own error.
//!
//! A failure here means the segment layout changed: bump
//! [`layout::ABI_VERSION`] and update the snapshot in the same change.
#![cfg(not(loom))]

use core::mem::{align_of, offset_of, size_of};

use shmbus::futex::Doorbell;
use shmbus::layout::{
    self, state, DirEntry, Geometry, Header, LayoutError, PeerSlot, PlanError, ABI_VERSION, LINE,
    MAGIC, MAX_CHANNELS, MAX_PEERS, PAGE,
};
use shmbus::pipe::{self, Ends, Meta, PipeCtl};
use shmbus::sync::{AtomicU32, AtomicU64, FutexWord, Ordering};
use shmbus::util::Line;

#[test]
fn constants() {
    assert_eq!(MAGIC, 0x0100_5355_424D_4853);
    assert_eq!(MAGIC.to_le_bytes(), *b"SHMBUS\0\x01");
    assert_eq!(ABI_VERSION, 3);
    assert_eq!(layout::WAIT_RECORDS, 12);
    assert_eq!((LINE, PAGE), (128, 4096));
    assert_eq!((MAX_PEERS, MAX_CHANNELS), (4096, 65_536));
    assert_eq!(
        (
            state::UNINIT,
            state::INITIALIZING,
            state::READY,
            state::CLOSING
        ),
        (0, 1, 2, 3)
    );
    assert_eq!(pipe::PIPE_MAGIC, 0x4550_4950);
    assert_eq!(pipe::PIPE_MAGIC.to_le_bytes(), *b"PIPE");
    assert_eq!((pipe::KIND_DATA, pipe::KIND_PAD), (1, 2));
    assert_eq!(pipe::HEADER, 8);
    assert_eq!((pipe::MIN_CAPACITY, pipe::MAX_CAPACITY), (64, 1 << 30));
    assert_eq!(pipe::CTL_SIZE, 768);
    assert_eq!(
        (pipe::end::OWNER_MASK, pipe::end::ATTACH_ONE),
        (0xFFFF, 1 << 16)
    );
}

#[test]
fn word_types() {
    assert_eq!((size_of::<AtomicU32>(), align_of::<AtomicU32>()), (4, 4));
    assert_eq!((size_of::<AtomicU64>(), align_of::<AtomicU64>()), (8, 8));
    assert_eq!((size_of::<FutexWord>(), align_of::<FutexWord>()), (4, 4));
    assert_eq!(size_of::<Line<u8>>(), 128);
    assert_eq!(align_of::<Line<u8>>(), 128);
    assert_eq!(size_of::<Line<[u8; 129]>>(), 256);
}

#[test]
fn header() {
    assert_eq!((size_of::<Header>(), align_of::<Header>()), (128, 128));
    let offsets = [
        offset_of!(Header, magic),
        offset_of!(Header, abi_version),
        offset_of!(Header, header_size),
        offset_of!(Header, total_size),
        offset_of!(Header, epoch),
        offset_of!(Header, state),
        offset_of!(Header, daemon_pid),
        offset_of!(Header, daemon_start),
        offset_of!(Header, peers_off),
        offset_of!(Header, peers_count),
        offset_of!(Header, peer_size),
        offset_of!(Header, dir_off),
        offset_of!(Header, dir_count),
        offset_of!(Header, dir_entry_size),
        offset_of!(Header, arena_off),
        offset_of!(Header, arena_len),
        offset_of!(Header, arena_used),
        offset_of!(Header, reserved),
    ];
    assert_eq!(
        offsets,
        [0, 8, 12, 16, 24, 32, 36, 40, 48, 56, 60, 64, 72, 76, 80, 88, 96, 104]
    );
}

#[test]
fn peer_slot() {
    assert_eq!((size_of::<PeerSlot>(), align_of::<PeerSlot>()), (128, 128));
    let offsets = [
        offset_of!(PeerSlot, state),
        offset_of!(PeerSlot, generation),
        offset_of!(PeerSlot, pid),
        offset_of!(PeerSlot, uid),
        offset_of!(PeerSlot, start_time),
        offset_of!(PeerSlot, waits),
        offset_of!(PeerSlot, reserved),
    ];
    assert_eq!(offsets, [0, 4, 8, 12, 16, 24, 120]);
}

#[test]
fn dir_entry() {
    assert_eq!((size_of::<DirEntry>(), align_of::<DirEntry>()), (256, 128));
    let offsets = [
        offset_of!(DirEntry, state),
        offset_of!(DirEntry, kind),
        offset_of!(DirEntry, generation),
        offset_of!(DirEntry, name_len),
        offset_of!(DirEntry, offset),
        offset_of!(DirEntry, length),
        offset_of!(DirEntry, params),
        offset_of!(DirEntry, name),
        offset_of!(DirEntry, holders),
        offset_of!(DirEntry, reserved),
    ];
    assert_eq!(offsets, [0, 4, 8, 12, 16, 24, 32, 64, 192, 200]);
    assert_eq!(layout::MAX_CHANNEL_NAME, 16 * 8);
    assert_eq!(
        [1, 2, 3, 4].map(|k| layout::Kind::from_u32(k).map(layout::Kind::as_str)),
        [Some("pipe"), Some("queue"), Some("value"), Some("array")]
    );
    assert_eq!(layout::Kind::from_u32(0), None);
}

#[test]
fn pipe_ctl() {
    assert_eq!((size_of::<PipeCtl>(), align_of::<PipeCtl>()), (768, 128));
    assert_eq!(size_of::<PipeCtl>() as u64, pipe::CTL_SIZE);
    let offsets = [
        offset_of!(PipeCtl, meta),
        offset_of!(PipeCtl, tail),
        offset_of!(PipeCtl, head),
        offset_of!(PipeCtl, ends),
        offset_of!(PipeCtl, readable),
        offset_of!(PipeCtl, writable),
    ];
    assert_eq!(offsets, [0, 128, 256, 384, 512, 640]);
    assert_eq!((size_of::<Meta>(), align_of::<Meta>()), (16, 8));
    assert_eq!(
        [
            offset_of!(Meta, magic),
            offset_of!(Meta, flags),
            offset_of!(Meta, capacity)
        ],
        [0, 4, 8]
    );
    assert_eq!((size_of::<Ends>(), align_of::<Ends>()), (16, 8));
    assert_eq!(
        [offset_of!(Ends, producer), offset_of!(Ends, consumer)],
        [0, 8]
    );
    assert_eq!(pipe::body_len(4096), 768 + 4096);
    assert_eq!(pipe::max_frame(4096), 512);
}

#[test]
fn doorbell() {
    assert_eq!((size_of::<Doorbell>(), align_of::<Doorbell>()), (8, 4));
    assert_eq!(
        [offset_of!(Doorbell, waiters), offset_of!(Doorbell, bell)],
        [0, 4]
    );
}

#[test]
fn pipe_capacity_rules() {
    for ok in [64, 128, 4096, 1 << 30] {
        assert!(pipe::check_capacity(ok).is_ok(), "{ok}");
    }
    for bad in [0, 32, 63, 65, 100, 3 << 10, 1 << 31, u64::MAX] {
        assert!(pipe::check_capacity(bad).is_err(), "{bad}");
    }
}

#[test]
fn plan() {
    let g = Geometry::plan(1 << 20, 64, 256).unwrap();
    assert_eq!(
        g,
        Geometry {
            total_size: 1 << 20,
            peers_off: 4096,
            peers_count: 64,
            dir_off: 12_288,
            dir_count: 256,
            arena_off: 77_824,
            arena_len: (1 << 20) - 77_824,
        }
    );
    // The size is rounded down to whole pages.
    let g = Geometry::plan(1_000_000, 64, 256).unwrap();
    assert_eq!(
        (g.total_size, g.arena_off, g.arena_len),
        (999_424, 77_824, 921_600)
    );
    // Smallest: one peer, one channel, one page of arena.
    let g = Geometry::plan(12_288, 1, 1).unwrap();
    assert_eq!(
        (g.peers_off, g.dir_off, g.arena_off, g.arena_len),
        (4096, 4224, 8192, 4096)
    );
    assert_eq!(
        Geometry::plan(12_287, 1, 1),
        Err(PlanError::TooSmall { needed: 12_288 })
    );
    // Largest tables.
    let g = Geometry::plan(1 << 30, MAX_PEERS, MAX_CHANNELS).unwrap();
    assert_eq!((g.dir_off, g.arena_off), (528_384, 17_305_600));
    assert_eq!(
        Geometry::plan(16 << 20, MAX_PEERS, MAX_CHANNELS),
        Err(PlanError::TooSmall { needed: 17_309_696 })
    );
    for (peers, channels) in [(0, 1), (MAX_PEERS + 1, 1), (1, 0), (1, MAX_CHANNELS + 1)] {
        assert_eq!(
            Geometry::plan(1 << 30, peers, channels),
            Err(PlanError::BadCount),
            "{peers} peers, {channels} channels"
        );
    }
}

/// An all-zero header on the heap (128-byte aligned, as in a segment).
fn zeroed() -> Box<Header> {
    let w32 = || AtomicU32::new(0);
    let w64 = || AtomicU64::new(0);
    Box::new(Header {
        magic: w64(),
        abi_version: w32(),
        header_size: w32(),
        total_size: w64(),
        epoch: w64(),
        state: w32(),
        daemon_pid: w32(),
        daemon_start: w64(),
        peers_off: w64(),
        peers_count: w32(),
        peer_size: w32(),
        dir_off: w64(),
        dir_count: w32(),
        dir_entry_size: w32(),
        arena_off: w64(),
        arena_len: w64(),
        arena_used: w64(),
        reserved: [w64(), w64(), w64()],
    })
}

const SIZE: u64 = 1 << 20;

/// A header as the daemon leaves it after `init` and `publish`.
fn ready() -> (Box<Header>, Geometry) {
    let g = Geometry::plan(SIZE, 64, 256).unwrap();
    let h = zeroed();
    layout::init(&h, &g, 0xE90C, 4242, 99);
    layout::publish(&h);
    (h, g)
}

fn set32(w: &AtomicU32, v: u32) {
    w.store(v, Ordering::Relaxed);
}

fn set64(w: &AtomicU64, v: u64) {
    w.store(v, Ordering::Relaxed);
}

#[test]
fn validate_accepts_what_init_wrote() {
    let (h, g) = ready();
    assert_eq!(layout::validate(&h, SIZE), Ok(g));
    assert_eq!(h.epoch.load(Ordering::Relaxed), 0xE90C);
    assert_eq!(h.daemon_pid.load(Ordering::Relaxed), 4242);
    assert_eq!(h.daemon_start.load(Ordering::Relaxed), 99);
}

#[test]
fn validate_each_error() {
    let (h, _) = ready();
    set64(&h.magic, 0xDEAD);
    assert_eq!(
        layout::validate(&h, SIZE),
        Err(LayoutError::BadMagic { found: 0xDEAD })
    );

    let (h, _) = ready();
    set32(&h.abi_version, ABI_VERSION + 1);
    assert_eq!(
        layout::validate(&h, SIZE),
        Err(LayoutError::AbiMismatch {
            found: ABI_VERSION + 1,
            expected: ABI_VERSION
        })
    );

    for st in [state::UNINIT, state::INITIALIZING] {
        let (h, _) = ready();
        set32(&h.state, st);
        assert_eq!(layout::validate(&h, SIZE), Err(LayoutError::NotReady));
    }
    // As `init` leaves it, before `publish`.
    let h = zeroed();
    layout::init(&h, &Geometry::plan(SIZE, 64, 256).unwrap(), 1, 1, 1);
    assert_eq!(layout::validate(&h, SIZE), Err(LayoutError::NotReady));

    let (h, _) = ready();
    set32(&h.state, state::CLOSING);
    assert_eq!(layout::validate(&h, SIZE), Err(LayoutError::Closing));

    let (h, _) = ready();
    set32(&h.state, 9);
    assert_eq!(layout::validate(&h, SIZE), Err(LayoutError::BadState(9)));

    let (h, _) = ready();
    assert_eq!(
        layout::validate(&h, SIZE - PAGE),
        Err(LayoutError::SizeMismatch {
            header: SIZE,
            file: SIZE - PAGE
        })
    );
}

/// Every region check: each returns `BadRegion` naming the region.
#[test]
fn validate_bad_regions() {
    type Poke = fn(&Header, &Geometry);
    let cases: [(&str, &str, Poke); 13] = [
        ("header size", "header", |h, _| set32(&h.header_size, 64)),
        ("peer size", "peer table", |h, _| set32(&h.peer_size, 64)),
        ("no peers", "peer table", |h, _| set32(&h.peers_count, 0)),
        ("too many peers", "peer table", |h, _| {
            set32(&h.peers_count, MAX_PEERS + 1)
        }),
        ("entry size", "directory", |h, _| {
            set32(&h.dir_entry_size, 128)
        }),
        ("no entries", "directory", |h, _| set32(&h.dir_count, 0)),
        ("too many entries", "directory", |h, _| {
            set32(&h.dir_count, MAX_CHANNELS + 1)
        }),
        ("peers over the header", "peer table", |h, _| {
            set64(&h.peers_off, 0)
        }),
        ("peers misaligned", "peer table", |h, g| {
            set64(&h.peers_off, g.peers_off + 8)
        }),
        ("directory over peers", "directory", |h, g| {
            set64(&h.dir_off, g.peers_off)
        }),
        ("arena past the end", "arena", |h, g| {
            set64(&h.arena_len, g.arena_len + PAGE)
        }),
        ("arena length overflows", "arena", |h, _| {
            set64(&h.arena_len, u64::MAX)
        }),
        ("arena misaligned", "arena", |h, g| {
            set64(&h.arena_off, g.arena_off + 64);
            set64(&h.arena_len, g.arena_len - PAGE);
        }),
    ];
    for (case, region, poke) in cases {
        let (h, g) = ready();
        poke(&h, &g);
        match layout::validate(&h, SIZE) {
            Err(LayoutError::BadRegion { what, .. }) => assert_eq!(what, region, "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }
}

/// Every error has a message a person can act on (non-empty, no `Debug`).
#[test]
fn errors_display() {
    let errors = [
        LayoutError::TooShort { file_size: 3 },
        LayoutError::BadMagic { found: 1 },
        LayoutError::AbiMismatch {
            found: 2,
            expected: 1,
        },
        LayoutError::NotReady,
        LayoutError::Closing,
        LayoutError::BadState(7),
        LayoutError::SizeMismatch { header: 1, file: 2 },
        LayoutError::BadRegion {
            what: "arena",
            offset: 1,
            len: 2,
        },
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains("{"), "{e:?}: {msg}");
    }
}

#[test]
fn directory_names_round_trip() {
    let e = DirEntry {
        state: AtomicU32::new(0),
        kind: AtomicU32::new(0),
        generation: AtomicU32::new(0),
        name_len: AtomicU32::new(0),
        offset: AtomicU64::new(0),
        length: AtomicU64::new(0),
        params: core::array::from_fn(|_| AtomicU64::new(0)),
        name: core::array::from_fn(|_| AtomicU64::new(0)),
        holders: AtomicU64::new(0),
        reserved: core::array::from_fn(|_| AtomicU64::new(0)),
    };
    assert_eq!(layout::read_name(&e), None, "empty name");
    for name in [&b"a"[..], b"exactly8", b"jobs.in-0_1", &[b'x'; 128]] {
        layout::write_name(&e, name);
        assert_eq!(layout::read_name(&e).as_deref(), Some(name));
    }
    set32(&e.name_len, 129);
    assert_eq!(layout::read_name(&e), None, "length out of range");
}
