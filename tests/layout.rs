//! ABI snapshot of the segment: sizes, alignments and field offsets of every
//! shared struct, the magic numbers, planned geometries, and open-time
//! validation, where each inconsistency has its own error; and the checked
//! view of a mapped segment, fed hostile offsets.
//!
//! A failure here means the segment layout changed: bump
//! [`layout::ABI_VERSION`] and update the snapshot in the same change.
#![cfg(not(loom))]

use core::mem::{align_of, offset_of, size_of};

use shmbus::futex::Doorbell;
use shmbus::layout::{
    self, state, DirEntry, Geometry, Header, LayoutError, OffsetError, PeerSlot, PlanError,
    SegmentView, ABI_VERSION, LINE, MAGIC, MAX_CHANNELS, MAX_PEERS, PAGE,
};
use shmbus::pipe::{self, Ends, Meta, PipeCtl};
use shmbus::sync::{AtomicU32, AtomicU64, FutexWord, Ordering};
use shmbus::util::Line;

#[test]
fn constants() {
    assert_eq!(MAGIC, 0x0100_5355_424D_4853);
    assert_eq!(MAGIC.to_le_bytes(), *b"SHMBUS\0\x01");
    assert_eq!(ABI_VERSION, 7);
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
        [1, 2, 3, 4, 5].map(|k| layout::Kind::from_u32(k).map(layout::Kind::as_str)),
        [
            Some("pipe"),
            Some("queue"),
            Some("value"),
            Some("array"),
            Some("topic")
        ]
    );
    assert_eq!(layout::Kind::from_u32(0), None);
    assert_eq!(layout::Kind::from_u32(6), None);
}

/// The topic's control block and entries: the offsets the clients, the
/// daemon and the hostile test rely on.
#[test]
fn topic_ctl() {
    use shmbus::topic::{self, SubEntry, TopicCtl, TopicMeta};
    assert_eq!((size_of::<TopicCtl>(), align_of::<TopicCtl>()), (512, 128));
    assert_eq!(topic::TOPIC_MAGIC.to_le_bytes(), *b"TOPC");
    assert_eq!(
        [
            offset_of!(TopicCtl, tail),
            offset_of!(TopicCtl, not_empty),
            offset_of!(TopicCtl, not_full),
        ],
        [128, 256, 384]
    );
    assert_eq!(
        [
            offset_of!(TopicMeta, flags),
            offset_of!(TopicMeta, slots),
            offset_of!(TopicMeta, slot_size),
            offset_of!(TopicMeta, max_subscribers),
        ],
        [4, 8, 16, 24]
    );
    assert_eq!(offset_of!(SubEntry, cursor), 8);
    assert_eq!(size_of::<Line<SubEntry>>() as u64, topic::ENTRY_SIZE);
    assert_eq!(topic::slot_stride(24), 64);
    assert_eq!(topic::slots_off(4), 512 + 4 * 128);
    assert_eq!(
        topic::body_len(4, 24, topic::mode_word(false, 4)),
        512 + 4 * 128 + 4 * 64
    );
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
fn seqlock_ctl() {
    use shmbus::seqlock::{self, ElemType, SeqlockCtl};
    assert_eq!(
        (size_of::<SeqlockCtl>(), align_of::<SeqlockCtl>()),
        (512, 128)
    );
    assert_eq!(size_of::<SeqlockCtl>() as u64, seqlock::CTL_SIZE);
    assert_eq!(
        [
            offset_of!(SeqlockCtl, meta),
            offset_of!(SeqlockCtl, state),
            offset_of!(SeqlockCtl, changed),
            offset_of!(SeqlockCtl, unlocked),
        ],
        [0, 128, 256, 384]
    );
    type M = seqlock::Meta;
    assert_eq!((size_of::<M>(), align_of::<M>()), (32, 8));
    assert_eq!(
        [
            offset_of!(M, magic),
            offset_of!(M, elem),
            offset_of!(M, len),
            offset_of!(M, stride),
            offset_of!(M, copies)
        ],
        [0, 4, 8, 16, 24]
    );
    // Copies: as many 128-byte-aligned copies as fit in 4 KiB, 2 to 8.
    assert_eq!(seqlock::copies(ElemType::U64, 1), 8);
    assert_eq!(seqlock::body_len(ElemType::U64, 16), 512 + 8 * 128);
    assert_eq!(seqlock::body_len(ElemType::U64, 100), 512 + 4 * 896);
    assert_eq!(seqlock::body_len(ElemType::U8, 3000), 512 + 2 * 3072);
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

// ---- The checked view (`layout::SegmentView`): every offset that becomes a
// reference or a pointer, hostile ones included.

/// Runs `f` with a view of a zeroed, page-aligned heap "segment" of `size`
/// bytes planned for `peers` and `channels`.
fn with_view(size: u64, peers: u32, channels: u32, f: impl FnOnce(&SegmentView, Geometry)) {
    #[repr(C, align(4096))]
    struct Page([u8; PAGE as usize]);
    let g = Geometry::plan(size, peers, channels).unwrap();
    let mut pages: Vec<Page> = (0..g.total_size / PAGE)
        .map(|_| Page([0; PAGE as usize]))
        .collect();
    // SAFETY: `pages` is `total_size` bytes, outlives the view (dropped at
    // the end of this function), and is accessed only through the view.
    let view =
        unsafe { SegmentView::new(pages.as_mut_ptr().cast(), g.total_size as usize, g) }.unwrap();
    f(&view, g);
}

const VIEW_SIZE: u64 = 256 * 1024;

/// The byte offset of `p` from the view's base.
fn off_of<T>(v: &SegmentView, p: *const T) -> u64 {
    (p as usize - v.base() as usize) as u64
}

#[test]
fn view_refuses_bad_mappings_and_geometries() {
    #[repr(C, align(4096))]
    struct Page([u8; PAGE as usize]);
    let g = Geometry::plan(VIEW_SIZE, 4, 8).unwrap();
    let mut pages: Vec<Page> = (0..VIEW_SIZE / PAGE)
        .map(|_| Page([0; PAGE as usize]))
        .collect();
    let base: *mut u8 = pages.as_mut_ptr().cast();
    let len = VIEW_SIZE as usize;
    // SAFETY (every call below): `base .. base + len` is `pages`, alive until
    // the end of the test; the views are dropped at once.
    let view = |base: *mut u8, len: usize, g: Geometry| unsafe { SegmentView::new(base, len, g) };
    assert!(view(base, len, g).is_ok());
    assert_eq!(
        view(base, len - PAGE as usize, g).unwrap_err(),
        LayoutError::SizeMismatch {
            header: VIEW_SIZE,
            file: VIEW_SIZE - PAGE
        }
    );
    for (what, b) in [
        ("null", core::ptr::null_mut()),
        ("misaligned", base.wrapping_add(8)),
    ] {
        assert!(
            matches!(
                view(b, len, g),
                Err(LayoutError::BadRegion {
                    what: "mapping",
                    ..
                })
            ),
            "{what} base"
        );
    }
    type Bend = fn(&mut Geometry);
    let cases: [(&str, &str, Bend); 9] = [
        ("peers over the header", "peer table", |g| g.peers_off = 0),
        ("peers misaligned", "peer table", |g| g.peers_off += 8),
        ("no peers", "peer table", |g| g.peers_count = 0),
        ("peers over the directory", "directory", |g| {
            g.peers_count = (g.dir_off - g.peers_off) as u32 / 128 + 1
        }),
        ("directory over the arena", "arena", |g| {
            g.dir_count = (g.arena_off - g.dir_off) as u32 / 256 + 1
        }),
        ("directory past the end", "directory", |g| {
            g.dir_off = u64::MAX - 64
        }),
        ("arena past the end", "arena", |g| g.arena_len += PAGE),
        ("arena end overflows", "arena", |g| g.arena_len = u64::MAX),
        ("arena misaligned", "arena", |g| g.arena_off += 8),
    ];
    for (name, region, bend) in cases {
        let mut bad = g;
        bend(&mut bad);
        match view(base, len, bad) {
            Err(LayoutError::BadRegion { what, .. }) => assert_eq!(what, region, "{name}"),
            r => panic!("{name}: {r:?}"),
        }
    }
}

#[test]
fn view_tables_by_index() {
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        assert_eq!(v.geometry(), &g);
        assert_eq!(off_of(v, v.header()), 0);
        for i in 0..g.peers_count {
            let p = v.peer(i).unwrap();
            assert_eq!(off_of(v, p), g.peers_off + u64::from(i) * 128);
            assert!(v.wait_records(i).is_some());
        }
        for i in 0..g.dir_count {
            assert_eq!(
                off_of(v, v.entry(i).unwrap()),
                g.dir_off + u64::from(i) * 256
            );
        }
        for i in [g.peers_count, g.peers_count + 1, u32::MAX] {
            assert!(v.peer(i).is_none(), "peer {i}");
            assert!(v.wait_records(i).is_none(), "records {i}");
        }
        for i in [g.dir_count, u32::MAX] {
            assert!(v.entry(i).is_none(), "entry {i}");
        }
        // The wait records name doorbells by their offset from this base.
        let bell = v.doorbell_at(g.arena_off + 8).unwrap();
        assert_eq!(
            v.wait_records(0).unwrap().offset_of(bell),
            Some(g.arena_off + 8)
        );
    });
}

#[test]
fn view_in_arena_hostile_offsets() {
    use OffsetError::{Misaligned, OutOfBounds, Overflow};
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        let end = g.arena_off + g.arena_len;
        let ctl = size_of::<PipeCtl>() as u64;
        // Accepted: the first and the last place a whole one fits.
        for off in [g.arena_off, end - ctl] {
            assert_eq!(off_of(v, v.in_arena::<PipeCtl>(off).unwrap()), off);
        }
        for off in [g.arena_off, end - 8] {
            assert_eq!(off_of(v, v.in_arena::<AtomicU64>(off).unwrap()), off);
            assert_eq!(off_of(v, v.doorbell_at(off).unwrap()), off);
        }
        let cases: [(&str, u64, OffsetError); 9] = [
            ("the header", 0, OutOfBounds),
            ("the peer table", g.peers_off, OutOfBounds),
            ("the directory", g.dir_off, OutOfBounds),
            ("just before the arena", g.arena_off - LINE, OutOfBounds),
            ("running past the end", end - LINE, OutOfBounds),
            ("past the end", end, OutOfBounds),
            ("misaligned", g.arena_off + 8, Misaligned),
            ("overflowing", u64::MAX - LINE + 1, Overflow),
            ("overflowing by one", u64::MAX - ctl + 2, Overflow),
        ];
        for (what, off, want) in cases {
            assert_eq!(v.in_arena::<PipeCtl>(off).unwrap_err(), want, "{what}");
        }
        assert_eq!(v.doorbell_at(g.arena_off + 2).unwrap_err(), Misaligned);
        assert_eq!(v.doorbell_at(end - 4).unwrap_err(), OutOfBounds);
        assert_eq!(v.doorbell_at(u64::MAX - 3).unwrap_err(), Overflow);
        assert_eq!(v.doorbell_at(g.dir_off).unwrap_err(), OutOfBounds);
        assert_eq!(
            v.in_arena::<AtomicU64>(g.arena_off + 4).unwrap_err(),
            Misaligned
        );
        // Every error has a message.
        for e in [Overflow, OutOfBounds, Misaligned] {
            assert!(!e.to_string().is_empty());
            assert_eq!(<&str>::from(e), e.as_str());
        }
    });
}

#[test]
fn view_pipe_bodies() {
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        let cap = pipe::MIN_CAPACITY * 4;
        let len = pipe::body_len(cap);
        let end = g.arena_off + g.arena_len;
        let b = v.pipe(g.arena_off, len, cap).unwrap();
        assert_eq!(off_of(v, b.ctl), g.arena_off);
        assert_eq!(off_of(v, b.ring.as_ptr()), g.arena_off + pipe::CTL_SIZE);
        assert_eq!(b.capacity, cap);
        // The last place it fits; a longer allocation is fine.
        assert!(v.pipe(end - len, len, cap).is_ok());
        assert!(v.pipe(g.arena_off, len + LINE, cap).is_ok());
        let bad: [(&str, u64, u64, u64); 11] = [
            ("over the header", 0, len, cap),
            ("over the directory", g.dir_off, len, cap),
            ("misaligned", g.arena_off + 8, len, cap),
            ("past the end", end - len + LINE, len, cap),
            ("offset overflows", u64::MAX - 10, 100, cap),
            ("length overflows", g.arena_off, u64::MAX, cap),
            (
                "shorter than its control block",
                g.arena_off,
                pipe::CTL_SIZE - 8,
                cap,
            ),
            ("ring past the body", g.arena_off, len - 8, cap),
            ("capacity not a power of two", g.arena_off, len, cap - 8),
            (
                "capacity too small",
                g.arena_off,
                len,
                pipe::MIN_CAPACITY / 2,
            ),
            (
                "capacity too large",
                g.arena_off,
                len,
                pipe::MAX_CAPACITY * 2,
            ),
        ];
        for (what, off, len, cap) in bad {
            assert!(v.pipe(off, len, cap).is_err(), "{what}");
        }
    });
}

#[test]
fn view_queue_bodies() {
    use shmbus::queue;
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        let (slots, size) = (queue::MIN_SLOTS * 4, 64);
        let len = queue::body_len(slots, size);
        let end = g.arena_off + g.arena_len;
        let b = v.queue(g.arena_off, len, slots, size).unwrap();
        assert_eq!(off_of(v, b.ctl), g.arena_off);
        assert_eq!(b.slots(), slots);
        // SAFETY: `with_view`'s buffer outlives these cells.
        assert_eq!(unsafe { b.cells() }.slots(), slots);
        assert!(v.queue(end - len, len, slots, size).is_ok());
        let bad: [(&str, u64, u64, u64, u64); 8] = [
            ("over the directory", g.dir_off, len, slots, size),
            ("misaligned", g.arena_off + 8, len, slots, size),
            ("past the end", end - len + LINE, len, slots, size),
            ("length overflows", g.arena_off, u64::MAX, slots, size),
            ("cells past the body", g.arena_off, len - 8, slots, size),
            (
                "slots not a power of two",
                g.arena_off,
                len,
                slots - 1,
                size,
            ),
            ("slot size 0", g.arena_off, len, slots, 0),
            (
                "slots beyond the maximum",
                g.arena_off,
                len,
                queue::MAX_SLOTS * 2,
                size,
            ),
        ];
        for (what, off, len, slots, size) in bad {
            assert!(v.queue(off, len, slots, size).is_err(), "{what}");
        }
    });
}

#[test]
fn view_seqlock_bodies() {
    use shmbus::seqlock::{self, ElemType};
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        let (t, n) = (ElemType::U64, 40);
        let code = t as u64;
        let len = seqlock::body_len(t, n);
        let stride = seqlock::stride(t, n);
        let end = g.arena_off + g.arena_len;
        let b = v.seqlock(g.arena_off, len, code, n).unwrap();
        assert_eq!(off_of(v, b.ctl), g.arena_off);
        assert_eq!(b.elem, t);
        assert_eq!(off_of(v, b.first.as_ptr()), g.arena_off + seqlock::CTL_SIZE);
        assert_eq!(b.stride as u64 * 8, stride);
        assert_eq!(b.copies, seqlock::copies(t, n));
        assert_eq!(len, seqlock::CTL_SIZE + b.copies * stride);
        assert!(v.seqlock(end - len, len, code, n).is_ok());
        let bad: [(&str, u64, u64, u64, u64); 7] = [
            ("over the peer table", g.peers_off, len, code, n),
            ("misaligned", g.arena_off + 64, len, code, n),
            ("past the end", end - len + LINE, len, code, n),
            ("offset overflows", u64::MAX - LINE + 1, len, code, n),
            ("last copy past the body", g.arena_off, len - 8, code, n),
            ("unknown type", g.arena_off, len, 0, n),
            ("length 0", g.arena_off, len, code, 0),
        ];
        for (what, off, len, code, n) in bad {
            assert!(v.seqlock(off, len, code, n).is_err(), "{what}");
        }
    });
}

/// Random offsets and lengths, biased towards the edges: whatever the view
/// accepts lies wholly inside the arena and is aligned.
#[test]
fn view_random_offsets_stay_in_the_arena() {
    with_view(VIEW_SIZE, 4, 8, |v, g| {
        let end = g.arena_off + g.arena_len;
        let edges = [0, g.peers_off, g.dir_off, g.arena_off, end, u64::MAX];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..100_000 {
            let r = next();
            let jitter = (next() % 512).wrapping_sub(256);
            let off = match r % 3 {
                0 => edges[(r >> 8) as usize % edges.len()].wrapping_add(jitter),
                1 => g.arena_off + next() % (g.arena_len + 1),
                _ => next(),
            };
            let len = match next() % 3 {
                0 => pipe::body_len(pipe::MIN_CAPACITY),
                1 => next() % (g.arena_len + 1),
                _ => next(),
            };
            if let Ok(c) = v.in_arena::<PipeCtl>(off) {
                let o = off_of(v, c);
                assert!(o >= g.arena_off && o + size_of::<PipeCtl>() as u64 <= end);
                assert_eq!(o % LINE, 0);
                accepted += 1;
            }
            if let Ok(b) = v.doorbell_at(off) {
                let o = off_of(v, b);
                assert!(o >= g.arena_off && o + size_of::<Doorbell>() as u64 <= end);
                assert_eq!(o % align_of::<Doorbell>() as u64, 0);
            }
            if let Ok(b) = v.pipe(off, len, pipe::MIN_CAPACITY) {
                let ring = off_of(v, b.ring.as_ptr());
                assert!(off >= g.arena_off && off + len <= end && off % LINE == 0);
                assert!(ring + pipe::MIN_CAPACITY <= off + len);
                accepted += 1;
            }
        }
        // The edges and the in-arena draws make some accepted.
        assert!(accepted > 0);
    });
}

#[test]
fn header_at_before_validation() {
    let h = zeroed();
    let p: *const u8 = (&*h as *const Header).cast();
    let n = size_of::<Header>();
    // SAFETY: `p` is a live `Header`, `n` bytes, for the whole test.
    assert!(unsafe { layout::header_at(p, n) }.is_ok());
    assert_eq!(
        // SAFETY: as above; a shorter length is refused before any access.
        unsafe { layout::header_at(p, n - 1) }.unwrap_err(),
        LayoutError::TooShort {
            file_size: n as u64 - 1
        }
    );
    assert!(matches!(
        // SAFETY: inside the same `Header`; refused for its alignment.
        unsafe { layout::header_at(p.wrapping_add(8), n) },
        Err(LayoutError::BadRegion { .. })
    ));
}
