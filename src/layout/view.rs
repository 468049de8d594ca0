//! The checked view of a mapped segment: the one place where an offset
//! becomes a reference or a pointer into the mapping.
//!
//! Shared memory is untrusted input: a channel's offset and length come from
//! a directory entry (or the daemon's reply) and a wait record holds a
//! doorbell's offset, and another process may have written anything there.
//! [`SegmentView`] turns an offset into `&T` only after checking, with checked
//! arithmetic, that the whole `T` lies inside the segment (and, for every
//! offset read from shared memory, inside the arena, so never over the
//! header, the peer table or the directory) and is aligned for `T`; and only
//! for types made of atomics ([`InSegment`]). The client and the daemon both
//! use it; neither turns an offset into an address itself.
//!
//! | accessor | where | offset from |
//! |---|---|---|
//! | [`header`](SegmentView::header) | offset 0 | fixed |
//! | [`peer`](SegmentView::peer), [`entry`](SegmentView::entry) | peer table, directory | an index, checked against the geometry |
//! | [`in_arena`](SegmentView::in_arena), [`doorbell_at`](SegmentView::doorbell_at) | the arena | anyone, untrusted |
//! | [`pipe`](SegmentView::pipe), [`queue`](SegmentView::queue), [`seqlock`](SegmentView::seqlock) | a channel body in the arena | a directory entry, untrusted |
//!
//! The view checks where things are, not what they hold: the kinds' own
//! `check` methods ([`PipeCtl::check`], [`QueueCtl::check`],
//! [`SeqlockCtl::check`]) compare a control block with the directory.

use core::fmt;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use super::{check_regions, DirEntry, Geometry, Header, LayoutError, PeerSlot, LINE};
use crate::futex::{Doorbell, WaitRecords};
use crate::pipe::PipeCtl;
use crate::queue::{Cells, QueueCtl, QueueStats};
use crate::seqlock::{ElemType, SeqlockCtl};
use crate::sync::cell::UnsafeCell;
use crate::sync::{AtomicU32, AtomicU64};
use crate::topic::{Ring, TopicCtl};

/// Types that may be viewed in place inside a segment.
///
/// # Safety
/// Implementors are made only of atomics (`AtomicU32`, `AtomicU64`,
/// [`FutexWord`](crate::sync::FutexWord), and `repr(C)` structs and arrays of
/// them, whose padding is never read as a value), so that every bit pattern,
/// all-zero included, is a valid value, and a shared reference may coexist
/// with atomic writes by other processes. Their alignment is at most
/// [`LINE`].
pub unsafe trait InSegment {}

// SAFETY: `Header` is `repr(C)`; every field is an `AtomicU32`/`AtomicU64` or
// an array of them (layout.rs); align 128.
unsafe impl InSegment for Header {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields and arrays of
// them; align 128.
unsafe impl InSegment for PeerSlot {}
// SAFETY: as for `Header`: only `AtomicU32`/`AtomicU64` fields and arrays of
// them; align 128.
unsafe impl InSegment for DirEntry {}
// SAFETY: `repr(C)`: an `AtomicU32` and a `FutexWord` (a transparent
// `AtomicU32`); align 4.
unsafe impl InSegment for Doorbell {}
// SAFETY: `PipeCtl` is `repr(C)` `Line`s (`repr(C, align(128))`) of `Meta`,
// `AtomicU64`, `Ends` and `Doorbell`, which hold only `AtomicU32`/`AtomicU64`/
// `FutexWord`; the padding of a `Line` is never read as a value.
unsafe impl InSegment for PipeCtl {}
// SAFETY: `QueueCtl` is `repr(C)` `Line`s of `QueueMeta`, `AtomicU64` and
// `Doorbell`: only `AtomicU32`/`AtomicU64`/`FutexWord`, any bits valid.
unsafe impl InSegment for QueueCtl {}
// SAFETY: `SeqlockCtl` is `repr(C)` `Line`s of `seqlock::Meta`, `AtomicU64`
// and `Doorbell`s: only `AtomicU32`/`AtomicU64`/`FutexWord`, any bits valid.
unsafe impl InSegment for SeqlockCtl {}
// SAFETY: `TopicCtl` is `repr(C)` `Line`s of `TopicMeta`, `AtomicU64`,
// `Waiting` (a `Doorbell` and an `AtomicU64`) and `Doorbell`: only
// `AtomicU32`/`AtomicU64`/`FutexWord`, any bits valid.
unsafe impl InSegment for TopicCtl {}
// SAFETY: an atomic integer; any bits valid; align 8.
unsafe impl InSegment for AtomicU64 {}
// SAFETY: an atomic integer; any bits valid; align 4.
unsafe impl InSegment for AtomicU32 {}
// SAFETY: an array of `InSegment` values has no padding between them and the
// element's alignment; every bit pattern of each element is valid.
unsafe impl<T: InSegment, const N: usize> InSegment for [T; N] {}

/// Why an offset was refused. Each is what a hostile or corrupt segment
/// would show; none is ever turned into an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetError {
    /// `offset + length` does not fit in a `u64`.
    Overflow,
    /// Not wholly inside the region it must be in: the segment, or the
    /// arena for anything whose offset is read from shared memory.
    OutOfBounds,
    /// Not a multiple of the alignment the type needs.
    Misaligned,
}

impl OffsetError {
    /// The message, for errors that carry a `&'static str`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Overflow => "offset plus length overflows",
            Self::OutOfBounds => "offset lies outside the arena",
            Self::Misaligned => "offset is misaligned",
        }
    }
}

impl fmt::Display for OffsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for OffsetError {}

impl From<OffsetError> for &'static str {
    fn from(e: OffsetError) -> Self {
        e.as_str()
    }
}

/// A pipe's control block and ring, located inside the arena. What the
/// control block holds is not checked here ([`PipeCtl::check`]).
#[derive(Clone, Copy, Debug)]
pub struct PipeBody<'a> {
    /// The control block.
    pub ctl: &'a PipeCtl,
    /// The first of the ring's `capacity` bytes, 8-byte aligned, inside the
    /// body.
    pub ring: NonNull<UnsafeCell<u64>>,
    /// The ring's capacity in bytes, accepted by
    /// [`check_capacity`](crate::pipe::check_capacity).
    pub capacity: u64,
}

/// A queue's control block and cells, located inside the arena. What the
/// control block holds is not checked here ([`QueueCtl::check`]).
#[derive(Clone, Copy, Debug)]
pub struct QueueBody<'a> {
    /// The control block.
    pub ctl: &'a QueueCtl,
    /// The first cell, 8-byte aligned; `slots` cells of `slot_size` payload
    /// bytes follow it inside the body.
    first: NonNull<u8>,
    slots: u64,
    slot_size: u64,
}

impl QueueBody<'_> {
    /// The cells. [`Cells`] holds no borrow of the mapping, so this is where
    /// the caller vouches for its lifetime.
    ///
    /// # Safety
    /// The mapping stays mapped for as long as the returned cells (or
    /// anything built on them) are used; the view's own contract covers the
    /// rest (atomic access to the state words, the queue protocol for the
    /// payload).
    pub unsafe fn cells(&self) -> Cells {
        // SAFETY:
        // - `first` is 8-aligned and the `slots * cell_stride(slot_size)`
        //   bytes after it lie inside the body, and so inside the mapping
        //   (both checked by `SegmentView::queue`), which stays mapped while
        //   the cells are used (the caller's contract);
        // - the state words there are accessed only atomically and the rest
        //   only through the queue protocol (the contract of
        //   `SegmentView::new`);
        // - `check_params(slots, slot_size)` holds (checked by
        //   `SegmentView::queue`).
        unsafe { Cells::in_segment(self.first, self.slots, self.slot_size) }
    }

    /// Number of cells.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// A snapshot of the queue for listings ([`QueueCtl::stats`]).
    pub fn stats(&self) -> QueueStats {
        self.ctl.stats()
    }
}

/// A topic's control block, subscriber table and slots, located inside the
/// arena. What the control block holds is not checked here
/// ([`TopicCtl::check`]).
#[derive(Clone, Copy, Debug)]
pub struct TopicBody<'a> {
    /// The control block.
    pub ctl: &'a TopicCtl,
    body: NonNull<u8>,
    slots: u64,
    slot_size: u64,
    mode: u64,
}

impl TopicBody<'_> {
    /// The ring. [`Ring`] holds no borrow of the mapping, so this is where
    /// the caller vouches for its lifetime.
    ///
    /// # Safety
    /// The mapping stays mapped for as long as the returned ring (or anything
    /// built on it) is used.
    pub unsafe fn ring(&self) -> Ring {
        // SAFETY: `body` is the 128-aligned start of `body_len(slots,
        // slot_size, mode)` bytes inside the mapping (checked by
        // `SegmentView::topic`, with the parameters), which stays mapped
        // while the ring is used (the caller's contract); everything there is
        // accessed atomically (the contract of `SegmentView::new`).
        unsafe { Ring::in_segment(self.body, self.slots, self.slot_size, self.mode) }
    }
}

/// A value's or array's control block and copies, located inside the
/// arena. What the control block holds is not checked here
/// ([`SeqlockCtl::check`]).
#[derive(Clone, Copy, Debug)]
pub struct SeqlockBody<'a> {
    /// The control block.
    pub ctl: &'a SeqlockCtl,
    /// The first word of copy 0 (8-aligned): copy `i` starts `i * stride`
    /// words after it, and all `copies` copies lie inside the body.
    pub first: NonNull<AtomicU64>,
    /// Words from one copy to the next ([`seqlock::stride`](crate::seqlock::stride) / 8).
    pub stride: usize,
    /// Number of copies ([`seqlock::copies`](crate::seqlock::copies)).
    pub copies: u64,
    /// The element type.
    pub elem: ElemType,
}

/// A mapped segment and its geometry, with every access checked.
///
/// Not `Clone`: references and pointers from it live no longer than the view,
/// and the owner of the mapping keeps the view beside it.
///
/// # Invariants
/// - `base .. base + geometry.total_size` is mapped for as long as `self`
///   lives (the contract of [`new`](Self::new));
/// - `base` is aligned to [`LINE`]; `total_size <= isize::MAX`;
/// - the geometry's regions lie inside the segment, in order, each aligned
///   to [`LINE`] (checked by `new`, by the rule [`validate`](super::validate)
///   applies).
#[derive(Debug)]
pub struct SegmentView {
    base: NonNull<u8>,
    geometry: Geometry,
}

// SAFETY: the view is an address and a copy of the geometry. Everything it
// hands out is either `&T` for `T: InSegment` (atomics only, so `Sync`) or a
// raw pointer whose use is `unsafe` with its own contract; the memory is a
// shared mapping that any thread of the process may access.
unsafe impl Send for SegmentView {}
// SAFETY: as for `Send`: `&self` methods only read `base` and `geometry`.
unsafe impl Sync for SegmentView {}

impl SegmentView {
    /// A view of the segment mapped at `base`, `len` bytes long, laid out as
    /// `geometry` says (the daemon's plan, or what [`validate`](super::validate)
    /// returned).
    ///
    /// # Safety
    /// `base .. base + len` is a mapping (or allocation) that stays valid, at
    /// that address, for as long as the returned view lives; every process
    /// and thread accesses it only through atomics or through the channel
    /// protocols.
    ///
    /// # Errors
    /// [`LayoutError::SizeMismatch`] if `len` is not `geometry.total_size`;
    /// [`LayoutError::BadRegion`] if `base` is not aligned to [`LINE`] or a
    /// region of the geometry lies outside the segment, overlaps another or
    /// is misaligned.
    pub unsafe fn new(base: *mut u8, len: usize, geometry: Geometry) -> Result<Self, LayoutError> {
        let bad_base = LayoutError::BadRegion {
            what: "mapping",
            offset: base as u64,
            len: len as u64,
        };
        let base = NonNull::new(base).ok_or(bad_base)?;
        if !(base.as_ptr() as usize).is_multiple_of(LINE as usize) || isize::try_from(len).is_err()
        {
            return Err(bad_base);
        }
        if len as u64 != geometry.total_size {
            return Err(LayoutError::SizeMismatch {
                header: geometry.total_size,
                file: len as u64,
            });
        }
        check_regions(&geometry)?;
        Ok(Self { base, geometry })
    }

    /// The geometry.
    #[inline]
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The start of the mapping (to compare addresses with, as
    /// [`WaitRecords`] does).
    #[inline]
    pub fn base(&self) -> *const u8 {
        self.base.as_ptr()
    }

    /// Checks `offset .. offset + len` against `lo .. hi` and `offset`
    /// against `align`; returns the end.
    #[inline]
    fn range(offset: u64, len: u64, align: u64, lo: u64, hi: u64) -> Result<u64, OffsetError> {
        let end = offset.checked_add(len).ok_or(OffsetError::Overflow)?;
        if offset < lo || end > hi {
            return Err(OffsetError::OutOfBounds);
        }
        if !offset.is_multiple_of(align) {
            return Err(OffsetError::Misaligned);
        }
        Ok(end)
    }

    /// A pointer to `offset .. offset + len`, checked to lie in `lo .. hi`
    /// (a region the caller takes from the geometry or from an earlier
    /// check; refused unless inside the segment) and to be aligned to
    /// `align`.
    #[inline]
    fn ptr(
        &self,
        offset: u64,
        len: u64,
        align: u64,
        lo: u64,
        hi: u64,
    ) -> Result<NonNull<u8>, OffsetError> {
        Self::range(offset, len, align, lo, hi.min(self.geometry.total_size))?;
        // SAFETY: `offset <= offset + len <= min(hi, total_size)` (checked
        // above), so the result is inside the mapping, or one past its end
        // for an empty range at the end; the mapping's length fits `isize`
        // (an invariant), so `offset` does too.
        Ok(unsafe { self.base.add(offset as usize) })
    }

    /// A `&T` at `offset`, if the whole `T` lies in `lo .. hi` there and is
    /// aligned.
    #[inline]
    fn at<T: InSegment>(&self, offset: u64, lo: u64, hi: u64) -> Result<&T, OffsetError> {
        const { assert!(align_of::<T>() as u64 <= LINE) };
        let p = self.ptr(
            offset,
            size_of::<T>() as u64,
            align_of::<T>() as u64,
            lo,
            hi,
        )?;
        // SAFETY:
        // - `offset .. offset + size_of::<T>()` lies inside the mapping
        //   (checked by `ptr`);
        // - `base` is aligned to `LINE` (an invariant), `align_of::<T>()`
        //   divides `LINE` (both powers of two, the assertion above) and
        //   `offset` is a multiple of `align_of::<T>()` (checked by `ptr`),
        //   so `p` is aligned for `T`;
        // - `T: InSegment`: only atomics, any bits valid, so a shared
        //   reference is sound even while other processes write those words;
        // - the reference borrows `self`, and the mapping lives as long as
        //   the view (the contract of `new`).
        Ok(unsafe { p.cast::<T>().as_ref() })
    }

    /// The end of the arena (`validate` or the plan put it inside the
    /// segment; `check_regions` checked it without overflow).
    #[inline]
    fn arena_end(&self) -> u64 {
        self.geometry.arena_off + self.geometry.arena_len
    }

    /// The segment header.
    #[inline]
    pub fn header(&self) -> &Header {
        // `check_regions` put the peer table at or after 128, so the header
        // lies inside the segment.
        self.at(0, 0, self.geometry.total_size)
            .expect("the header lies inside every checked geometry")
    }

    /// Peer slot `i`, if the peer table has one.
    pub fn peer(&self, i: u32) -> Option<&PeerSlot> {
        let g = &self.geometry;
        if i >= g.peers_count {
            return None;
        }
        // No overflow: `check_regions` put the whole table inside the segment.
        let off = g.peers_off + u64::from(i) * size_of::<PeerSlot>() as u64;
        self.at(off, g.peers_off, g.dir_off).ok()
    }

    /// Directory entry `i`, if the directory has one.
    pub fn entry(&self, i: u32) -> Option<&DirEntry> {
        let g = &self.geometry;
        if i >= g.dir_count {
            return None;
        }
        // No overflow: `check_regions` put the whole directory inside the
        // segment.
        let off = g.dir_off + u64::from(i) * size_of::<DirEntry>() as u64;
        self.at(off, g.dir_off, g.arena_off).ok()
    }

    /// Peer slot `i`'s wait records, for the [`WaitRecords`] protocol.
    pub fn wait_records(&self, i: u32) -> Option<WaitRecords<'_>> {
        let p = self.peer(i)?;
        Some(WaitRecords::new(
            &p.waits,
            self.base(),
            self.geometry.total_size,
        ))
    }

    /// The `T` at `offset` (untrusted), if the whole `T` lies inside the
    /// arena there and `offset` is aligned for it.
    ///
    /// # Errors
    /// [`OffsetError`]: overflow, outside the arena, or misaligned.
    #[inline]
    pub fn in_arena<T: InSegment>(&self, offset: u64) -> Result<&T, OffsetError> {
        self.at(offset, self.geometry.arena_off, self.arena_end())
    }

    /// The doorbell at `offset` (untrusted, for example from a wait record):
    /// [`in_arena`](Self::in_arena) for a [`Doorbell`].
    ///
    /// # Errors
    /// As [`in_arena`](Self::in_arena).
    #[inline]
    pub fn doorbell_at(&self, offset: u64) -> Result<&Doorbell, OffsetError> {
        self.in_arena(offset)
    }

    /// Checks a channel body `offset .. offset + length` (untrusted): inside
    /// the arena, long enough for its control block `C` and aligned for it.
    /// Returns the control block and the body's end.
    fn body<C: InSegment>(&self, offset: u64, length: u64) -> Result<(&C, u64), &'static str> {
        let end = Self::range(
            offset,
            length,
            align_of::<C>() as u64,
            self.geometry.arena_off,
            self.arena_end(),
        )
        .map_err(|e| match e {
            OffsetError::Overflow => "channel body bounds overflow",
            OffsetError::OutOfBounds => "channel body lies outside the arena",
            OffsetError::Misaligned => "channel control block is misaligned",
        })?;
        if length < size_of::<C>() as u64 {
            return Err("channel body is shorter than its control block");
        }
        let ctl = self
            .at(offset, offset, end)
            .map_err(|_| "channel control block out of bounds")?;
        Ok((ctl, end))
    }

    /// The pipe body at `offset .. offset + length` with a ring of
    /// `capacity` bytes, as the daemon or a directory entry describe it
    /// (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: the body must lie in
    /// the arena (checked arithmetic) with its control block 128-aligned,
    /// the capacity be valid, and the ring fit in the body after the control
    /// block.
    pub fn pipe(
        &self,
        offset: u64,
        length: u64,
        capacity: u64,
    ) -> Result<PipeBody<'_>, &'static str> {
        let (ctl, end) = self.body::<PipeCtl>(offset, length)?;
        crate::pipe::check_capacity(capacity).map_err(|_| "pipe capacity out of range")?;
        // `offset + CTL_SIZE <= end` (`body` checked the length).
        let ring_off = offset + crate::pipe::CTL_SIZE;
        let ring = self
            .ptr(ring_off, capacity, 8, ring_off, end)
            .map_err(|e| match e {
                OffsetError::Overflow => "pipe body bounds overflow",
                OffsetError::OutOfBounds => "ring extends past the channel's allocation",
                OffsetError::Misaligned => "ring is not 8-byte aligned",
            })?;
        Ok(PipeBody {
            ctl,
            ring: ring.cast(),
            capacity,
        })
    }

    /// The queue body at `offset .. offset + length` with `slots` cells of
    /// `slot_size` payload bytes, as the daemon or a directory entry
    /// describe it (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: the body must lie in
    /// the arena (checked arithmetic) with its control block 128-aligned,
    /// the parameters be valid, and the cells fit in the body after the
    /// control block.
    pub fn queue(
        &self,
        offset: u64,
        length: u64,
        slots: u64,
        slot_size: u64,
    ) -> Result<QueueBody<'_>, &'static str> {
        let (ctl, end) = self.body::<QueueCtl>(offset, length)?;
        crate::queue::check_params(slots, slot_size)
            .map_err(|_| "queue slots or slot size out of range")?;
        // Cannot overflow: `check_params` bounds both factors (2^24 slots of
        // at most 2^20 + 16 bytes).
        let cells_len = crate::queue::body_len(slots, slot_size) - crate::queue::CTL_SIZE;
        let first_off = offset + crate::queue::CTL_SIZE;
        let first = self
            .ptr(first_off, cells_len, 8, first_off, end)
            .map_err(|_| "cells extend past the channel's allocation")?;
        Ok(QueueBody {
            ctl,
            first,
            slots,
            slot_size,
        })
    }

    /// The topic body at `offset .. offset + length` with the given
    /// parameters, as the daemon or a directory entry describe it
    /// (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: the body must lie in
    /// the arena with its control block 128-aligned, the parameters be
    /// valid, and the table and slots fit in the body.
    pub fn topic(
        &self,
        offset: u64,
        length: u64,
        slots: u64,
        slot_size: u64,
        mode: u64,
    ) -> Result<TopicBody<'_>, &'static str> {
        let (ctl, end) = self.body::<TopicCtl>(offset, length)?;
        crate::topic::check_params(slots, slot_size, mode)
            .map_err(|_| "topic parameters out of range")?;
        // Cannot overflow: `check_params` bounds every factor.
        let len = crate::topic::body_len(slots, slot_size, mode);
        let body = self
            .ptr(offset, len, 128, offset, end)
            .map_err(|_| "slots extend past the channel's allocation")?;
        Ok(TopicBody {
            ctl,
            body,
            slots,
            slot_size,
            mode,
        })
    }

    /// The value or array body at `offset .. offset + length` holding `len`
    /// elements of type code `elem`, as the daemon or a directory entry
    /// describe it (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: the body must lie in
    /// the arena (checked arithmetic) with its control block 128-aligned,
    /// the type and length be valid, and every copy fit in the body after
    /// the control block.
    pub fn seqlock(
        &self,
        offset: u64,
        length: u64,
        elem: u64,
        len: u64,
    ) -> Result<SeqlockBody<'_>, &'static str> {
        let (ctl, end) = self.body::<SeqlockCtl>(offset, length)?;
        let t =
            crate::seqlock::check_params(elem, len).map_err(|_| "bad element type or length")?;
        // Cannot overflow: `check_params` bounds `len`, and so the copies'
        // bytes (at most 4 KiB, or two copies of at most 8 MiB).
        let (stride, copies) = (
            crate::seqlock::stride(t, len),
            crate::seqlock::copies(t, len),
        );
        // The sum is checked by `ptr`'s bounds only after it is formed, so
        // form it checked.
        let off = offset
            .checked_add(crate::seqlock::CTL_SIZE)
            .ok_or("value body bounds overflow")?;
        let first = self
            .ptr(off, copies * stride, 8, offset, end)
            .map_err(|_| "copies extend past the channel's allocation")?;
        Ok(SeqlockBody {
            ctl,
            first: first.cast(),
            stride: (stride / 8) as usize,
            copies,
            elem: t,
        })
    }
}

/// The header at `base`, before any geometry is known: for reading it to
/// [`validate`](super::validate) it, which returns the geometry a
/// [`SegmentView`] is then made with.
///
/// # Safety
/// `base .. base + len` is a mapping that stays valid, at that address, for
/// `'a`, and every process accesses it only through atomics.
///
/// # Errors
/// [`LayoutError::TooShort`] if `len` is smaller than a header;
/// [`LayoutError::BadRegion`] if `base` is null or not aligned to [`LINE`].
pub unsafe fn header_at<'a>(base: *const u8, len: usize) -> Result<&'a Header, LayoutError> {
    if len < size_of::<Header>() {
        return Err(LayoutError::TooShort {
            file_size: len as u64,
        });
    }
    if base.is_null() || !(base as usize).is_multiple_of(LINE as usize) {
        return Err(LayoutError::BadRegion {
            what: "mapping",
            offset: base as u64,
            len: len as u64,
        });
    }
    // SAFETY:
    // - `base` is the start of a live mapping of at least
    //   `size_of::<Header>()` bytes (checked above, and the caller's
    //   contract), aligned to `LINE`, which is `Header`'s alignment (checked
    //   above);
    // - `Header: InSegment`: only atomics, any bits valid, and other
    //   processes access it only atomically, so a shared reference to it is
    //   sound while the mapping lives, which is `'a` (the caller's contract).
    Ok(unsafe { &*base.cast::<Header>() })
}
