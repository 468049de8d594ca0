//! The daemon's mapping of the segment ([`Segment`]): typed views of the
//! header, peer table, directory and channel bodies at offsets the daemon
//! computed itself.

use memmap2::MmapRaw;
use shmbus::layout::{DirEntry, Geometry, Header, PeerSlot};
use shmbus::pipe::PipeCtl;
use shmbus::queue::{Cells, QueueCtl};
use shmbus::seqlock::SeqlockCtl;

use crate::error::Error;

/// Structs that may be viewed in place inside the segment.
///
/// # Safety
/// Implementors consist only of atomics (so a shared reference may coexist with
/// writes from other processes) and every bit pattern, all-zero included, is a
/// valid value.
unsafe trait InSegment {}

// SAFETY: `Header` is `#[repr(C)]` and all its fields are `AtomicU32`/`AtomicU64`
// (layout.rs); any bits are a valid atomic integer.
unsafe impl InSegment for Header {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields.
unsafe impl InSegment for PeerSlot {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields and arrays of them.
unsafe impl InSegment for DirEntry {}
// SAFETY: `PipeCtl` is `#[repr(C)]` `Line`s of `Meta`, `AtomicU64`, `Ends` and
// `Doorbell`, which hold only `AtomicU32`/`AtomicU64`/`FutexWord` (a transparent
// `AtomicU32`); padding bytes of `Line` are never read as values.
unsafe impl InSegment for PipeCtl {}
// SAFETY: `SeqlockCtl` is `#[repr(C)]` `Line`s of `seqlock::Meta`, `AtomicU64`
// and `Doorbell`s: only `AtomicU32`/`AtomicU64`/`FutexWord`, any bits valid.
unsafe impl InSegment for SeqlockCtl {}
// SAFETY: `QueueCtl` is `#[repr(C)]` `Line`s of `QueueMeta`, `AtomicU64` and
// `Doorbell`, which hold only `AtomicU32`/`AtomicU64`/`FutexWord`.
unsafe impl InSegment for QueueCtl {}
// SAFETY: an array of `AtomicU64`: only atomics, any bits valid.
unsafe impl InSegment for [shmbus::sync::AtomicU64; 16] {}

/// The daemon's mapping of the segment.
///
/// # Invariants
/// - `map` is a shared, read-write mapping of exactly `geometry.total_size`
///   bytes, page-aligned (mmap returns page-aligned addresses), alive as long as
///   `self`;
/// - `geometry` came from `Geometry::plan` for that size, so the peer table, the
///   directory and the arena lie inside the mapping, 128-byte aligned.
#[derive(Debug)]
pub(crate) struct Segment {
    map: MmapRaw,
    geometry: Geometry,
}

impl Segment {
    /// Wraps a mapping of `geometry.total_size` bytes.
    ///
    /// # Errors
    /// If the mapping's length is not the planned size.
    pub(crate) fn new(map: MmapRaw, geometry: Geometry) -> Result<Self, Error> {
        if map.len() as u64 != geometry.total_size {
            return Err(Error::Failed(format!(
                "mapping has {} bytes, expected {}",
                map.len(),
                geometry.total_size
            )));
        }
        Ok(Self { map, geometry })
    }

    /// The validated layout of this segment.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// A shared reference to the `T` at byte `off`.
    ///
    /// # Panics
    /// If `T` would not lie wholly inside the mapping or `off` is misaligned
    /// for `T`; callers pass offsets computed from the geometry, so a panic is
    /// a bug in the daemon.
    fn at<T: InSegment>(&self, off: u64) -> &T {
        let size = core::mem::size_of::<T>() as u64;
        let align = core::mem::align_of::<T>() as u64;
        assert!(
            off.checked_add(size)
                .is_some_and(|end| end <= self.map.len() as u64)
                && off.is_multiple_of(align),
            "segment access out of bounds or misaligned: offset {off}, size {size}"
        );
        // SAFETY:
        // - `off + size_of::<T>() <= len` (asserted), so the pointer and the
        //   whole `T` are inside the mapping; `off` fits `usize` because it is
        //   below the mapping's length;
        // - the base is page-aligned and `off` is a multiple of `align_of::<T>()`
        //   (asserted, and `align_of` is at most 128 here), so the `T` is aligned;
        // - `T: InSegment`: only atomics, any bits valid, so a shared reference is
        //   sound even while other processes write those words;
        // - the reference borrows `self`, and the mapping lives as long as `self`.
        unsafe { &*self.map.as_mut_ptr().add(off as usize).cast::<T>() }
    }

    /// The header, at offset 0.
    pub(crate) fn header(&self) -> &Header {
        self.at(0)
    }

    /// Peer slot `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned peer count.
    pub(crate) fn peer(&self, i: u32) -> &PeerSlot {
        assert!(i < self.geometry.peers_count, "peer slot {i} out of range");
        self.at(self.geometry.peers_off + u64::from(i) * 128)
    }

    /// Directory entry `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned channel count.
    pub(crate) fn entry(&self, i: u32) -> &DirEntry {
        assert!(
            i < self.geometry.dir_count,
            "directory entry {i} out of range"
        );
        self.at(self.geometry.dir_off + u64::from(i) * 256)
    }

    /// The control block of the value or array whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena (a daemon bug).
    pub(crate) fn seqlock(&self, offset: u64) -> &SeqlockCtl {
        assert!(
            offset >= self.geometry.arena_off,
            "value body before the arena"
        );
        self.at(offset)
    }

    /// The control block and cells of the queue whose body starts at
    /// `offset`, created with `slots` and `slot_size` (from the daemon's
    /// mirror, never read back from the segment).
    ///
    /// # Panics
    /// If the body is not inside the arena (a daemon bug).
    pub(crate) fn queue(&self, offset: u64, slots: u64, slot_size: u64) -> (&QueueCtl, Cells) {
        assert!(
            offset >= self.geometry.arena_off
                && shmbus::queue::check_params(slots, slot_size).is_ok()
                && offset + shmbus::queue::body_len(slots, slot_size) <= self.map.len() as u64,
            "queue body outside the arena"
        );
        let ctl = self.at::<QueueCtl>(offset);
        let first = offset + shmbus::queue::CTL_SIZE;
        // SAFETY: `first .. offset + body_len` lies inside the mapping
        // (asserted), is 8-aligned (`offset` is 128-aligned, `CTL_SIZE` a
        // multiple of 128), and the mapping lives as long as `self`, which
        // the returned `Cells` are only used under; `check_params` holds.
        let cells = unsafe {
            let p = self.map.as_mut_ptr().add(first as usize);
            Cells::in_segment(core::ptr::NonNull::new_unchecked(p), slots, slot_size)
        };
        (ctl, cells)
    }

    /// Zeroes the `len` bytes at `offset` (whole 128-byte lines inside the
    /// arena) with Relaxed atomic stores: the body of a removed channel that
    /// nobody holds any more. Atomic, so that even a client that scribbles
    /// there against the protocol races no plain access; Relaxed, because
    /// the next channel placed here is published by the Release store of its
    /// entry's state, which comes after these stores in this thread.
    ///
    /// # Panics
    /// If the range is not whole lines inside the arena (a daemon bug).
    pub(crate) fn zero(&self, offset: u64, len: u64) {
        let line = shmbus::layout::LINE;
        assert!(
            offset >= self.geometry.arena_off
                && offset.is_multiple_of(line)
                && len.is_multiple_of(line),
            "zeroing {len} bytes at {offset}: not whole lines of the arena"
        );
        for off in (offset..offset + len).step_by(line as usize) {
            for w in self.at::<[shmbus::sync::AtomicU64; 16]>(off) {
                w.store(0, shmbus::sync::Ordering::Relaxed);
            }
        }
    }

    /// The control block of the pipe whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena (a daemon bug).
    pub(crate) fn pipe(&self, offset: u64) -> &PipeCtl {
        assert!(
            offset >= self.geometry.arena_off,
            "pipe body before the arena"
        );
        self.at(offset)
    }
}
