//! Mapping a bus's segment, and checking it before anything in it is trusted.
//!
//! The segment is `/dev/shm/NAME`, written by the daemon (metadata) and by
//! clients (inside the channels they opened). This module opens it with
//! `O_NOFOLLOW`, maps it with [`memmap2::MmapRaw`] (a raw pointer, never a
//! `&[u8]`: other processes write it), validates the header with
//! [`shmbus::layout::validate`] and keeps a [`SegmentView`] of the validated
//! [`Geometry`]. Every later access goes through that view, which checks
//! bounds and alignment (the daemon uses the same one): the header, directory
//! entries, peer slots and channel bodies, each only as `&T` where `T` is made
//! of atomics; this module adds the control blocks' own checks.
//!
//! Opening is in three steps ([`SegmentFile`]): open and `fstat` it, map and
//! check the header alone; check its owner and mode once the daemon's uid is
//! known (from the control connection); only then map all of it.
//!
//! A process that truncates the file after we mapped it would make later
//! accesses fault (SIGBUS); only the daemon and its clients write the segment,
//! and the daemon `fallocate`s it whole, so that is out of scope.

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use shmbus::futex::{Doorbell, WaitRecords};
use shmbus::layout::{
    self, DirEntry, Geometry, Header, LayoutError, PeerSlot, PipeBody, QueueBody, SegmentView,
    SeqlockBody, TopicBody,
};

use crate::error::Error;

/// A mapped, validated segment. Unmapped on drop; shared through the bus's
/// `Arc` so that every endpoint keeps it mapped while it lives.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// Owned for its `Drop`, which unmaps the segment; reached only through
    /// `view`. Nothing can borrow the view while the `Mapping` is dropped.
    #[expect(dead_code, reason = "owned for its Drop, which unmaps the segment")]
    map: MmapRaw,
    /// The checked view of `map`.
    view: SegmentView,
}

/// The segment file, opened and checked but not yet mapped beyond its
/// header: [`SegmentFile::open`] (before talking to the daemon), then
/// [`SegmentFile::check_owner`] (once the daemon's uid is known), then
/// [`SegmentFile::map`].
#[derive(Debug)]
pub(crate) struct SegmentFile {
    file: File,
    path: PathBuf,
    /// Size from `fstat`, at least a header, equal to the header's total size.
    size: u64,
    /// Owner uid from `fstat`.
    owner: u32,
    /// Permission bits from `fstat` (`st_mode & 0o7777`).
    mode: u32,
}

/// How long [`SegmentFile::open_waiting`] waits for a segment that looks
/// half-made to become ready.
pub(crate) const START_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The reason given for a segment whose magic number is 0.
const NO_HEADER: &str = "it has no shmbus header: its magic number is 0";

impl SegmentFile {
    /// As [`open`](Self::open), but a segment that looks like a daemon is
    /// still creating it (empty, all-zero header, or state `INITIALIZING`)
    /// is retried for up to [`START_WAIT`] before its error is returned.
    ///
    /// Today's shmbusd links its segment into place only once it is ready,
    /// so this is seen only with files made otherwise (or by an older
    /// shmbusd); a client racing a daemon start must not be told to delete
    /// a bus that is about to serve.
    ///
    /// # Errors
    /// As [`open`](Self::open); `NotShmbus` and `Truncated` then say that
    /// the wait was in vain.
    pub(crate) fn open_waiting(bus: &str, path: &Path) -> Result<Self, Error> {
        let deadline = std::time::Instant::now() + START_WAIT;
        loop {
            let e = match Self::open(bus, path) {
                Ok(f) => return Ok(f),
                Err(e) => e,
            };
            let unfinished = match &e {
                Error::NotReady { .. } | Error::Truncated { size: 0, .. } => true,
                Error::NotShmbus { reason, .. } => reason == NO_HEADER,
                _ => false,
            };
            if !unfinished {
                return Err(e);
            }
            if std::time::Instant::now() >= deadline {
                let waited = START_WAIT.as_secs();
                return Err(match e {
                    Error::NotShmbus { path, .. } => Error::NotShmbus {
                        path,
                        reason: format!(
                            "{NO_HEADER}, and no shmbusd finished it within {waited} s"
                        ),
                    },
                    e => e,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Opens the segment at `path` for bus `bus` with `O_NOFOLLOW`, checks
    /// with `fstat` that it is a regular file at least a header long, maps
    /// the header alone and validates it against the file size
    /// ([`layout::validate`]).
    ///
    /// # Errors
    /// - `DaemonNotRunning` if the file does not exist;
    /// - `PermissionDenied`;
    /// - `NotShmbus` for a symbolic link, a non-regular file, or a bad magic;
    /// - `Truncated` if smaller than a header;
    /// - one variant per [`LayoutError`] (see [`layout_error`]), among them
    ///   `SizeMismatch` if the header's total size is not the file's;
    /// - `Io` for anything else.
    pub(crate) fn open(bus: &str, path: &Path) -> Result<Self, Error> {
        let io = |doing, e: io::Error| Error::Io { doing, source: e };
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::DaemonNotRunning {
                bus: bus.to_owned(),
                stale: false,
            },
            Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
                path: path.to_owned(),
                source: e.into(),
            },
            Errno::LOOP => Error::NotShmbus {
                path: path.to_owned(),
                reason: "it is a symbolic link".into(),
            },
            // O_RDWR on a directory.
            Errno::ISDIR => Error::NotShmbus {
                path: path.to_owned(),
                reason: "it is a directory".into(),
            },
            e => io("opening the segment", e.into()),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io("examining the segment", e.into()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            return Err(Error::NotShmbus {
                path: path.to_owned(),
                reason: format!("it is a {ft:?}, not a regular file"),
            });
        }
        // A negative size cannot happen for a regular file; treat it as empty.
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size < size_of::<Header>() as u64 {
            return Err(Error::Truncated {
                path: path.to_owned(),
                size,
            });
        }
        let file = File::from(fd);
        // The header alone: nothing beyond it is mapped before the header's
        // total size has been checked against the file's.
        let head = MmapOptions::new()
            .len(size_of::<Header>())
            .map_raw(&file)
            .map_err(|e| io("mapping the segment header", e))?;
        // SAFETY: `head` maps `size_of::<Header>()` bytes of the file, which
        // holds at least that many (checked above), shared with the daemon
        // and its clients, which access it only atomically; `head` outlives
        // the header's use here.
        unsafe { layout::header_at(head.as_ptr(), head.len()) }
            .and_then(|h| layout::validate(h, size))
            .map_err(|e| layout_error(bus, path, e))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            size,
            owner: st.st_uid,
            mode: st.st_mode & 0o7777,
        })
    }

    /// Checks that the daemon made this file: its owner is the daemon's uid
    /// (`SO_PEERCRED` of the control connection), and it has no permission
    /// bit the daemon would not set: the daemon gives the segment and its
    /// socket one mode, so the segment's bits must be among the socket's
    /// (`socket_mode`; `0o600`, the default, if unknown).
    ///
    /// # Errors
    /// `WrongOwner`, `UnsafeMode`.
    pub(crate) fn check_owner(
        &self,
        daemon_uid: u32,
        socket_mode: Option<u32>,
    ) -> Result<(), Error> {
        if self.owner != daemon_uid {
            return Err(Error::WrongOwner {
                path: self.path.clone(),
                owner: self.owner,
                daemon: daemon_uid,
            });
        }
        let allowed = socket_mode.unwrap_or(0o600) & 0o777;
        if self.mode & !allowed != 0 {
            return Err(Error::UnsafeMode {
                path: self.path.clone(),
                mode: self.mode,
                allowed,
            });
        }
        Ok(())
    }

    /// Maps the whole file and validates the header again (it may have been
    /// replaced by a restarted daemon since [`open`](Self::open)).
    ///
    /// # Errors
    /// As [`open`](Self::open) for the header; `Io` if mapping fails.
    pub(crate) fn map(self, bus: &str) -> Result<Mapping, Error> {
        let io = |doing, e: io::Error| Error::Io { doing, source: e };
        let len = usize::try_from(self.size).map_err(|_| Error::SizeMismatch {
            path: self.path.clone(),
            header: 0,
            file: self.size,
        })?;
        // Exactly `size` bytes, shared and writable (the file is O_RDWR).
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&self.file)
            .map_err(|e| io("mapping the segment", e))?;
        // The mapping stays valid after the file is closed.
        drop(self.file);
        // SAFETY: `map` is `size >= size_of::<Header>()` bytes long (checked
        // by `open`), shared with the daemon and its clients, which access
        // the header only atomically; `map` outlives the header's use here.
        let geometry = unsafe { layout::header_at(map.as_ptr(), map.len()) }
            .and_then(|h| layout::validate(h, self.size))
            .map_err(|e| layout_error(bus, &self.path, e))?;
        // SAFETY: `map` is a shared mapping of the segment, `len` bytes long;
        // it goes into the `Mapping` beside the view and is unmapped only when
        // the `Mapping` (and so the view) is dropped; the daemon and its
        // clients access it only atomically or through the channel protocols.
        let view = unsafe { SegmentView::new(map.as_mut_ptr(), map.len(), geometry) }
            .map_err(|e| layout_error(bus, &self.path, e))?;
        Ok(Mapping { map, view })
    }
}

impl Mapping {
    /// Opens, maps and validates the segment at `path` for bus `bus`, without
    /// the owner check (which needs the daemon): [`SegmentFile::open`] then
    /// [`SegmentFile::map`].
    ///
    /// # Errors
    /// As those two.
    #[cfg(test)]
    pub(crate) fn open(bus: &str, path: &Path) -> Result<Self, Error> {
        SegmentFile::open(bus, path)?.map(bus)
    }

    /// The validated geometry.
    pub(crate) fn geometry(&self) -> &Geometry {
        self.view.geometry()
    }

    /// The segment header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.view.header()
    }

    /// Directory entry `index`, if the directory has one.
    pub(crate) fn entry(&self, index: u32) -> Option<&DirEntry> {
        self.view.entry(index)
    }

    /// Peer slot `slot`, if the peer table has one.
    pub(crate) fn peer(&self, slot: u16) -> Option<&PeerSlot> {
        self.view.peer(u32::from(slot))
    }

    /// Peer slot `slot`'s wait records, for the [`WaitRecords`] protocol
    /// (the slot must be this process's own).
    pub(crate) fn wait_records(&self, slot: u16) -> Option<WaitRecords<'_>> {
        self.view.wait_records(u32::from(slot))
    }

    /// The doorbell at `offset`, if a whole one lies in the arena there and is
    /// aligned: for [`shmbus::futex::wake_recorded`], whose offsets come from
    /// this process's wait records in shared memory (untrusted).
    pub(crate) fn doorbell_at(&self, offset: u64) -> Option<&Doorbell> {
        self.view.doorbell_at(offset).ok()
    }

    /// The pipe body at `offset .. offset + length` with ring `capacity`, as
    /// the daemon or the directory describe it (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: where the body is
    /// ([`SegmentView::pipe`]: in the arena, aligned, long enough), then
    /// what its control block holds ([`shmbus::pipe::PipeCtl::check`]).
    pub(crate) fn pipe(
        &self,
        offset: u64,
        length: u64,
        capacity: u64,
    ) -> Result<PipeBody<'_>, &'static str> {
        let body = self.view.pipe(offset, length, capacity)?;
        body.ctl.check(capacity, length)?;
        Ok(body)
    }

    /// The queue body at `offset .. offset + length` with `slots` cells of
    /// `slot_size` payload bytes, as the daemon or the directory describe it
    /// (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: where the body is
    /// ([`SegmentView::queue`]), then what its control block holds
    /// ([`shmbus::queue::QueueCtl::check`]).
    pub(crate) fn queue(
        &self,
        offset: u64,
        length: u64,
        slots: u64,
        slot_size: u64,
    ) -> Result<QueueBody<'_>, &'static str> {
        let body = self.view.queue(offset, length, slots, slot_size)?;
        body.ctl.check(slots, slot_size, length)?;
        Ok(body)
    }

    /// The topic body at `offset .. offset + length` with the given
    /// parameters, as the daemon or the directory describe it (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: where the body is
    /// ([`SegmentView::topic`]), then what its control block holds
    /// ([`shmbus::topic::TopicCtl::check`]).
    pub(crate) fn topic(
        &self,
        offset: u64,
        length: u64,
        slots: u64,
        slot_size: u64,
        mode: u64,
    ) -> Result<TopicBody<'_>, &'static str> {
        let body = self.view.topic(offset, length, slots, slot_size, mode)?;
        body.ctl.check(slots, slot_size, mode, length)?;
        Ok(body)
    }

    /// The value or array body at `offset .. offset + length` holding `len`
    /// elements of type code `elem`, as the daemon or the directory describe
    /// it (untrusted).
    ///
    /// # Errors
    /// A message naming the first check that failed: where the body is
    /// ([`SegmentView::seqlock`]), then what its control block holds
    /// ([`shmbus::seqlock::SeqlockCtl::check`]).
    pub(crate) fn seqlock(
        &self,
        offset: u64,
        length: u64,
        elem: u64,
        len: u64,
    ) -> Result<SeqlockBody<'_>, &'static str> {
        let body = self.view.seqlock(offset, length, elem, len)?;
        body.ctl.check(elem, len, length)?;
        Ok(body)
    }
}

/// The client error for a header that failed [`layout::validate`]: each
/// [`LayoutError`] variant has its own [`Error`] variant, except the two forms
/// of corruption (unknown state, bad region), which share `CorruptSegment` and
/// keep the `LayoutError` to tell them apart. `Closing` is `BusClosed`, as for
/// a bus that closes later.
pub(crate) fn layout_error(bus: &str, path: &Path, e: LayoutError) -> Error {
    let path = path.to_owned();
    match e {
        LayoutError::TooShort { file_size } => Error::Truncated {
            path,
            size: file_size,
        },
        LayoutError::BadMagic { found: 0 } => Error::NotShmbus {
            path,
            reason: NO_HEADER.to_owned(),
        },
        LayoutError::BadMagic { found } => Error::NotShmbus {
            path,
            reason: format!("its magic number is {found:#018x}"),
        },
        LayoutError::AbiMismatch { found, expected } => Error::AbiMismatch { found, expected },
        LayoutError::NotReady => Error::NotReady {
            bus: bus.to_owned(),
        },
        LayoutError::Closing => Error::BusClosed,
        LayoutError::SizeMismatch { header, file } => Error::SizeMismatch { path, header, file },
        e @ (LayoutError::BadState(_) | LayoutError::BadRegion { .. }) => {
            Error::CorruptSegment { path, error: e }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Validation of hand-made segments; no daemon needed.

    use super::*;
    use shmbus::layout::{entry_state, Kind};
    use shmbus::pipe::{PipeCtl, CTL_SIZE};
    use shmbus::sync::Ordering;
    use std::io::Write;

    /// A file under /dev/shm removed on drop.
    struct TempShm(PathBuf);

    impl TempShm {
        fn new(tag: &str, bytes: &[u8]) -> Self {
            let p = PathBuf::from(format!(
                "/dev/shm/shmbus-client-unit-{}-{tag}",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&p);
            let mut f = File::create(&p).unwrap();
            f.write_all(bytes).unwrap();
            Self(p)
        }
    }

    impl Drop for TempShm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const SIZE: u64 = 256 * 1024;

    /// A valid segment image: header for 4 peers and 8 channels, one pipe of
    /// 4096 bytes at the arena's start in directory entry 0.
    fn image() -> Vec<u8> {
        let g = Geometry::plan(SIZE, 4, 8).unwrap();
        // A page-aligned heap buffer, so the segment types are aligned in it.
        #[repr(C, align(4096))]
        struct Page([u8; 4096]);
        let mut pages: Vec<Page> = (0..SIZE / 4096).map(|_| Page([0; 4096])).collect();
        let p = pages.as_mut_ptr().cast::<u8>();
        // SAFETY: `p` is 4096-aligned and the buffer is SIZE bytes; Header,
        // DirEntry and PipeCtl are all atomics over zeroed memory.
        unsafe {
            let h = &*p.cast::<Header>();
            layout::init(h, &g, 77, 1, 2);
            let e = &*p.add(g.dir_off as usize).cast::<DirEntry>();
            layout::write_name(e, b"p");
            e.kind.store(Kind::Pipe as u32, Ordering::Relaxed);
            e.offset.store(g.arena_off, Ordering::Relaxed);
            e.length.store(CTL_SIZE + 4096, Ordering::Relaxed);
            e.params[0].store(4096, Ordering::Relaxed);
            e.state.store(entry_state::LIVE, Ordering::Release);
            let c = &*p.add(g.arena_off as usize).cast::<PipeCtl>();
            c.init(4096);
            layout::publish(h);
        }
        // SAFETY: `pages` is SIZE initialised bytes.
        unsafe { std::slice::from_raw_parts(p, SIZE as usize) }.to_vec()
    }

    fn open(bytes: &[u8], tag: &str) -> Result<Mapping, Error> {
        let f = TempShm::new(tag, bytes);
        Mapping::open("b", &f.0)
    }

    #[test]
    fn valid_image_opens_and_pipe_checks() {
        let m = open(&image(), "valid").unwrap();
        let g = *m.geometry();
        assert_eq!(g.total_size, SIZE);
        let e = m.entry(0).unwrap();
        assert_eq!(layout::read_name(e).unwrap(), b"p");
        assert!(m.entry(8).is_none());
        assert!(m.peer(3).is_some());
        assert!(m.peer(4).is_none());
        let body = m.pipe(g.arena_off, CTL_SIZE + 4096, 4096).unwrap();
        assert_eq!(body.capacity, 4096);
        // Out of the arena, misaligned, overflowing, wrong capacity, too short.
        assert!(m.pipe(0, CTL_SIZE + 4096, 4096).is_err());
        assert!(m.pipe(g.arena_off + 8, CTL_SIZE + 4096, 4096).is_err());
        assert!(m.pipe(u64::MAX - 10, 100, 4096).is_err());
        assert!(m.pipe(g.arena_off, u64::MAX, 4096).is_err());
        assert!(m.pipe(g.arena_off, CTL_SIZE + 4096, 2048).is_err());
        assert!(m.pipe(g.arena_off, CTL_SIZE + 100, 4096).is_err());
        assert!(m.pipe(g.arena_off, CTL_SIZE + 4096, 3000).is_err());
        assert!(m.pipe(SIZE - 128, CTL_SIZE + 4096, 4096).is_err());
    }

    #[test]
    fn random_bytes_are_not_shmbus() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let e = open(&bytes, "random").unwrap_err();
        assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
        assert!(e.to_string().contains("not a shmbus segment"), "{e}");
    }

    #[test]
    fn wrong_magic_is_not_shmbus() {
        let mut img = image();
        img[0] ^= 0xFF;
        let e = open(&img, "magic").unwrap_err();
        assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
    }

    #[test]
    fn wrong_abi_version() {
        let mut img = image();
        img[8..12].copy_from_slice(&99u32.to_le_bytes());
        let e = open(&img, "abi").unwrap_err();
        assert!(
            matches!(e, Error::AbiMismatch { found: 99, expected } if expected == layout::ABI_VERSION),
            "{e:?}"
        );
    }

    #[test]
    fn truncated_files() {
        let img = image();
        let e = open(&img[..100], "short").unwrap_err();
        assert!(matches!(e, Error::Truncated { size: 100, .. }), "{e:?}");
        let e = open(&[], "empty").unwrap_err();
        assert!(matches!(e, Error::Truncated { size: 0, .. }), "{e:?}");
        let e = open(&img[..4096 * 3], "cut").unwrap_err();
        assert!(
            matches!(e, Error::SizeMismatch { header: SIZE, file, .. } if file == 4096 * 3),
            "{e:?}"
        );
    }

    #[test]
    fn states() {
        for (st, want) in [
            (layout::state::INITIALIZING, "NotReady"),
            (layout::state::UNINIT, "NotReady"),
            (layout::state::CLOSING, "BusClosed"),
            (9, "CorruptSegment"),
        ] {
            let mut img = image();
            img[32..36].copy_from_slice(&st.to_le_bytes());
            let e = open(&img, "state").unwrap_err();
            // `Debug` ends with the variant's name in parentheses.
            assert!(
                format!("{e:?}").ends_with(&format!("({want})")),
                "{st}: {e:?}"
            );
        }
    }

    #[test]
    fn bad_region() {
        let mut img = image();
        // Directory offset past the end of the file.
        img[64..72].copy_from_slice(&(SIZE * 2).to_le_bytes());
        let e = open(&img, "region").unwrap_err();
        assert!(
            matches!(
                e,
                Error::CorruptSegment {
                    error: LayoutError::BadRegion { .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn missing_symlink_and_directory() {
        let e = Mapping::open("b", Path::new("/dev/shm/shmbus-client-unit-none")).unwrap_err();
        assert!(matches!(e, Error::DaemonNotRunning { .. }), "{e:?}");

        let f = TempShm::new("target", &image());
        let link = PathBuf::from(format!(
            "/dev/shm/shmbus-client-unit-{}-link",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&f.0, &link).unwrap();
        let e = Mapping::open("b", &link).unwrap_err();
        let _ = std::fs::remove_file(&link);
        assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");

        let dir = PathBuf::from(format!(
            "/dev/shm/shmbus-client-unit-{}-dir",
            std::process::id()
        ));
        let _ = std::fs::create_dir(&dir);
        let e = Mapping::open("b", &dir).unwrap_err();
        let _ = std::fs::remove_dir(&dir);
        assert!(matches!(e, Error::NotShmbus { .. }), "{e:?}");
    }
}
