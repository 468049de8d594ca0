//! Broken buses for the status test, each refused by `shmbus_connect` with
//! one code: copies of a live segment with one header word changed, live
//! daemons whose segment was tampered with or whose peer table is full, a
//! socket where the segment should be; and a pipe whose control block was
//! scribbled on.
//!
//! Offsets come from the core crate's layout types, never hard-coded.

use std::fs;
use std::mem::offset_of;
use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::path::Path;

use shmbus::layout::{self, DirEntry, Header};
use shmbus::name::BusPaths;
use shmbus::pipe::{Meta, PipeCtl};
use shmbus_client::Bus;
use shmbus_test_support::{self as support, Daemon, ShmFile};

/// `nobody`: the owner given to a segment to make it the wrong one.
pub const NOBODY: u32 = 65534;

/// Everything a broken bus needs to stay broken until the test ends (its
/// daemon, a connection that fills its peer table, its forged file), with the
/// `CODE=BUS` argument of the C program.
pub struct Broken {
    /// `SHMBUS_X=BUS`.
    pub arg: String,
    _daemon: Option<Daemon>,
    _held: Option<Bus>,
    _file: Option<ShmFile>,
}

impl Broken {
    fn new(code: &str, bus: &str) -> Self {
        Self {
            arg: format!("{code}={bus}"),
            _daemon: None,
            _held: None,
            _file: None,
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A copy of the live segment `live` under a fresh bus name, with `edit`
/// applied to its bytes, and no daemon: refused with `code` while the header
/// is read, before any daemon is asked.
fn header_copy(live: &Path, code: &str, edit: impl FnOnce(&mut Vec<u8>)) -> Broken {
    let mut bytes = fs::read(live).expect("read the live segment");
    edit(&mut bytes);
    let file = ShmFile::new("capi-forged", &bytes);
    Broken {
        arg: format!("{code}={}", file.bus),
        _file: Some(file),
        ..Broken::new(code, "")
    }
}

/// The broken buses, made from the live segment of `live` (a daemon's
/// segment path). `root`: whether this process may chown files (then a bus
/// with the wrong owner is among them).
pub fn broken_buses(live: &Path, root: bool) -> Vec<Broken> {
    let abi = offset_of!(Header, abi_version);
    let state = offset_of!(Header, state);
    let total = offset_of!(Header, total_size);
    let mut v = vec![
        header_copy(live, "SHMBUS_ABI_MISMATCH", |b| {
            set_u32(b, abi, layout::ABI_VERSION + 1)
        }),
        // The header claims a page more than the file holds.
        header_copy(live, "SHMBUS_SIZE_MISMATCH", |b| {
            let t = u64_at(b, total);
            set_u64(b, total, t + 4096)
        }),
        // Still being set up: the client waits a moment, then gives up.
        header_copy(live, "SHMBUS_NOT_READY", |b| {
            set_u32(b, state, layout::state::INITIALIZING)
        }),
        // A state no daemon writes.
        header_copy(live, "SHMBUS_CORRUPT_SEGMENT", |b| {
            set_u32(b, state, u32::MAX)
        }),
    ];
    // A Unix socket where the segment should be: opening it fails with ENXIO,
    // which no other code describes.
    let io_bus = support::unique_bus("capi-io");
    let path = BusPaths::new(&io_bus).segment;
    let listener =
        std::os::unix::net::UnixListener::bind(&path).expect("bind a socket in /dev/shm");
    drop(listener);
    v.push(Broken {
        _file: Some(ShmFile {
            bus: io_bus.clone(),
            path,
        }),
        ..Broken::new("SHMBUS_IO", &io_bus)
    });
    // The daemon's peer table (one slot) is full: it turns the client away.
    let d = Daemon::start("capi-refuse", &["--max-peers", "1"]);
    let held = d.connect();
    v.push(
        Broken {
            _held: Some(held),
            ..Broken::new("SHMBUS_REFUSED", &d.bus)
        }
        .daemon(d),
    );
    // A segment with more permission bits than the daemon's mode (0600).
    let d = Daemon::start("capi-mode", &[]);
    fs::set_permissions(&d.paths.segment, fs::Permissions::from_mode(0o640)).expect("chmod");
    v.push(Broken::new("SHMBUS_UNSAFE_MODE", &d.bus).daemon(d));
    // The segment replaced by a copy from "another daemon start" (another
    // epoch): the daemon that answers is not the one that made the segment,
    // on every attempt.
    let d = Daemon::start("capi-epoch", &[]);
    let mut bytes = fs::read(&d.paths.segment).expect("read the segment");
    let epoch = offset_of!(Header, epoch);
    let e = u64_at(&bytes, epoch);
    set_u64(&mut bytes, epoch, e ^ 1);
    let tmp = d.paths.segment.with_extension("forged");
    fs::write(&tmp, &bytes).expect("write the forged segment");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::rename(&tmp, &d.paths.segment).expect("replace the segment");
    v.push(Broken::new("SHMBUS_PROTOCOL", &d.bus).daemon(d));
    if root {
        let d = Daemon::start("capi-owner", &[]);
        std::os::unix::fs::chown(&d.paths.segment, Some(NOBODY), Some(NOBODY)).expect("chown");
        v.push(Broken::new("SHMBUS_WRONG_OWNER", &d.bus).daemon(d));
    }
    v
}

impl Broken {
    fn daemon(mut self, d: Daemon) -> Self {
        self._daemon = Some(d);
        self
    }
}

/// Creates pipe `name` with `capacity` bytes on `d`'s bus and flips a bit of
/// the magic number in its control block, so that opening it fails with
/// `Corrupt`.
pub fn scribble_pipe(d: &Daemon, name: &str, capacity: u64) {
    drop(
        d.connect()
            .pipe_with_capacity(name, capacity)
            .expect("create the pipe"),
    );
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&d.paths.segment)
        .expect("open the segment");
    let bytes = fs::read(&d.paths.segment).expect("read the segment");
    let dir = u64_at(&bytes, offset_of!(Header, dir_off)) as usize;
    let count = u32_at(&bytes, offset_of!(Header, dir_count)) as usize;
    let size = size_of::<DirEntry>();
    let entry = (0..count)
        .map(|i| dir + i * size)
        .find(|&e| {
            let len = u32_at(&bytes, e + offset_of!(DirEntry, name_len)) as usize;
            let at = e + offset_of!(DirEntry, name);
            bytes[at..at + len] == *name.as_bytes()
        })
        .expect("the pipe's directory entry");
    let body = u64_at(&bytes, entry + offset_of!(DirEntry, offset));
    let magic = body + (offset_of!(PipeCtl, meta) + offset_of!(Meta, magic)) as u64;
    let old = u32_at(&bytes, magic as usize);
    f.write_all_at(&(old ^ 1).to_le_bytes(), magic)
        .expect("scribble the pipe's magic");
}
