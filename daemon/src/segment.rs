//! The segment file and the daemon's mapping of it.
//!
//! [`create_segment`] makes the file unnamed (`O_TMPFILE`), sized, allocated
//! and mapped; [`link_segment`] gives it its name once it is `READY`.
//! [`Segment`] is the daemon's view of the mapping: every access goes through
//! [`shmbus::layout::SegmentView`], the same checked accessor the client
//! uses. The daemon only ever passes offsets from its own plan and its own
//! mirror of the directory, so a refused offset is a bug in the daemon and
//! panics here; offsets a client wrote (wait records) are never turned into
//! addresses at all (see `supervisor::recover`).

use std::os::fd::OwnedFd;
use std::path::Path;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, Mode, OFlags};
use rustix::io::Errno;
use shmbus::layout::{DirEntry, Geometry, Header, PeerSlot, SegmentView, LINE};
use shmbus::pipe::PipeCtl;
use shmbus::queue::{Cells, QueueCtl};
use shmbus::seqlock::SeqlockCtl;
use shmbus::sync::{AtomicU64, Ordering};
use shmbus::topic::{Ring, TopicCtl};

use crate::error::Error;

/// The daemon's mapping of the segment.
///
/// # Invariants
/// `view` is a view of `map`, a shared, read-write mapping of exactly
/// `geometry.total_size` bytes that lives as long as `self`; the geometry
/// came from `Geometry::plan` for that size.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Owned for its `Drop`, which unmaps the segment; reached only through
    /// `view`.
    #[expect(dead_code, reason = "owned for its Drop, which unmaps the segment")]
    map: MmapRaw,
    view: SegmentView,
}

impl Segment {
    /// Wraps a mapping of `geometry.total_size` bytes.
    ///
    /// # Errors
    /// If the mapping's length is not the planned size, or the geometry does
    /// not fit in it.
    pub(crate) fn new(map: MmapRaw, geometry: Geometry) -> Result<Self, Error> {
        // SAFETY: `map` is a shared mapping of `map.len()` bytes, kept in
        // `self` beside the view and unmapped only when `self` (and so the
        // view) is dropped; the daemon and its clients access it only through
        // atomics or the channel protocols.
        let view = unsafe { SegmentView::new(map.as_mut_ptr(), map.len(), geometry) }
            .map_err(|e| Error::Failed(format!("cannot view the new segment: {e}")))?;
        Ok(Self { map, view })
    }

    /// The planned layout of this segment.
    pub(crate) fn geometry(&self) -> &Geometry {
        self.view.geometry()
    }

    /// The header, at offset 0.
    pub(crate) fn header(&self) -> &Header {
        self.view.header()
    }

    /// Peer slot `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned peer count.
    pub(crate) fn peer(&self, i: u32) -> &PeerSlot {
        self.view
            .peer(i)
            .unwrap_or_else(|| panic!("peer slot {i} out of range"))
    }

    /// Directory entry `i`.
    ///
    /// # Panics
    /// If `i` is not below the planned channel count.
    pub(crate) fn entry(&self, i: u32) -> &DirEntry {
        self.view
            .entry(i)
            .unwrap_or_else(|| panic!("directory entry {i} out of range"))
    }

    /// The control block of the value or array whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena or misaligned (a daemon
    /// bug).
    pub(crate) fn seqlock(&self, offset: u64) -> &SeqlockCtl {
        self.view
            .in_arena(offset)
            .unwrap_or_else(|e| panic!("value body at {offset}: {e}"))
    }

    /// The control block of the pipe whose body starts at `offset`.
    ///
    /// # Panics
    /// If the control block is not inside the arena or misaligned (a daemon
    /// bug).
    pub(crate) fn pipe(&self, offset: u64) -> &PipeCtl {
        self.view
            .in_arena(offset)
            .unwrap_or_else(|e| panic!("pipe body at {offset}: {e}"))
    }

    /// The control block and cells of the queue whose body starts at
    /// `offset`, created with `slots` and `slot_size` (from the daemon's
    /// mirror, never read back from the segment). The cells hold no borrow:
    /// callers use them only while they borrow `self` (every caller uses
    /// them within the function that asked), so the mapping outlives them.
    ///
    /// # Panics
    /// If the parameters are out of range or the body is not inside the
    /// arena (a daemon bug).
    pub(crate) fn queue(&self, offset: u64, slots: u64, slot_size: u64) -> (&QueueCtl, Cells) {
        if let Err(e) = shmbus::queue::check_params(slots, slot_size) {
            panic!("queue body at {offset}: {e}");
        }
        let len = shmbus::queue::body_len(slots, slot_size);
        let body = self
            .view
            .queue(offset, len, slots, slot_size)
            .unwrap_or_else(|e| panic!("queue body at {offset}: {e}"));
        // SAFETY: the mapping lives as long as `self`, and the cells are used
        // only while `self` is borrowed (see above: `init_body`, `recover` and
        // the tests use them at once and keep them nowhere).
        (body.ctl, unsafe { body.cells() })
    }

    /// The control block and ring of the topic whose body starts at
    /// `offset`, created with `params` (from the daemon's mirror). The ring
    /// holds no borrow: as for [`queue`](Self::queue), callers use it only
    /// while they borrow `self`.
    ///
    /// # Panics
    /// If the parameters are out of range or the body is not inside the
    /// arena (a daemon bug).
    pub(crate) fn topic(
        &self,
        offset: u64,
        slots: u64,
        slot_size: u64,
        mode: u64,
    ) -> (&TopicCtl, Ring) {
        if let Err(e) = shmbus::topic::check_params(slots, slot_size, mode) {
            panic!("topic body at {offset}: {e}");
        }
        let len = shmbus::topic::body_len(slots, slot_size, mode);
        let body = self
            .view
            .topic(offset, len, slots, slot_size, mode)
            .unwrap_or_else(|e| panic!("topic body at {offset}: {e}"));
        // SAFETY: the mapping lives as long as `self`, and the ring is used
        // only while `self` is borrowed (see above).
        (body.ctl, unsafe { body.ring() })
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
        assert!(
            offset.is_multiple_of(LINE) && len.is_multiple_of(LINE),
            "zeroing {len} bytes at {offset}: not whole lines"
        );
        for off in (offset..offset + len).step_by(LINE as usize) {
            let line: &[AtomicU64; 16] = self
                .view
                .in_arena(off)
                .unwrap_or_else(|e| panic!("zeroing {len} bytes at {offset}: {e}"));
            for w in line {
                w.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Creates the segment as an unnamed file in `path`'s directory
/// (`O_TMPFILE`), sized, fully allocated and mapped. It gets its name only
/// from [`link_segment`], once it is `READY`: no client and no other daemon
/// ever sees a half-made segment, and a crash before that leaves nothing
/// behind. Returns the mapping and the file.
pub(crate) fn create_segment(
    path: &Path,
    size: u64,
    mode: u32,
    group: Option<u32>,
) -> Result<(MmapRaw, OwnedFd), Error> {
    let shown = path.display();
    let dir = path.parent().unwrap_or(Path::new(shmbus::name::SHM_DIR));
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| {
        Error::io(
            format!(
                "cannot create segment {shown} (O_TMPFILE in {})",
                dir.display()
            ),
            e,
        )
    })?;
    if let Some(gid) = group {
        // Before fchmod: chown may clear set-id bits, and the group bits of
        // the mode are meant for this group.
        rustix::fs::fchown(&fd, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| Error::io(format!("cannot give {shown} to group {gid}"), e))?;
    }
    // fchmod: the mode asked for, whatever the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        .map_err(|e| Error::io(format!("cannot set the mode of {shown}"), e))?;
    rustix::fs::ftruncate(&fd, size)
        .map_err(|e| Error::io(format!("cannot size {shown} to {size} bytes"), e))?;
    // tmpfs allocates pages on first touch; a full /dev/shm would then kill
    // whichever process touched a page with SIGBUS. Allocate everything now.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, size) {
        Ok(()) => {}
        Err(e @ (Errno::NOSPC | Errno::FBIG | Errno::NOMEM)) => {
            return Err(Error::io(
                format!(
                    "no room for a segment of {size} bytes in {} (fallocate failed); free \
                     space there or use a smaller --size",
                    dir.display()
                ),
                e,
            ))
        }
        Err(e) => return Err(Error::io(format!("cannot allocate {shown}"), e)),
    }
    let len = usize::try_from(size)
        .map_err(|_| Error::Failed(format!("segment size {size} does not fit in memory")))?;
    let map = MmapOptions::new()
        .len(len)
        .map_raw(&fd)
        .map_err(|e| Error::io(format!("cannot map {shown}"), e))?;
    Ok((map, fd))
}

/// Gives the unnamed segment `fd` its name `path` (`linkat` of
/// `/proc/self/fd/N`, which needs no privilege, unlike `AT_EMPTY_PATH`).
/// Never replaces a file: if one appeared at `path` since the stale files
/// were removed (`files::remove_stale`), start fails.
pub(crate) fn link_segment(fd: &OwnedFd, path: &Path) -> Result<(), Error> {
    use std::os::fd::AsRawFd as _;
    let me = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        &me,
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(|e| {
        let hint = if e == Errno::EXIST {
            ": a file appeared there while this daemon was starting"
        } else {
            ""
        };
        Error::io(format!("cannot create segment {}{hint}", path.display()), e)
    })
}
