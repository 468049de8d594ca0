//! The bus's files: the lock that makes one daemon per bus
//! ([`acquire_lock`]), the control socket ([`bind_socket`]), and the
//! takeover of a segment or socket that a dead daemon left behind
//! ([`remove_stale`]). The segment file itself is made in `segment`.
//!
//! # Files
//! All three live in `/dev/shm` ([`BusPaths`]):
//!
//! | file | created | removed |
//! |---|---|---|
//! | lock `.shmbus@NAME.lock` (mode 0600 always) | opened (or created) first; holds our pid | last, at shutdown or failed start, while still locked |
//! | segment `NAME` (`--mode`) | after the lock, unnamed (`O_TMPFILE`); linked into place (never replacing a file) once `READY` | at shutdown |
//! | socket `.shmbus@NAME.sock` (`--mode`) | after the segment, bound under a temporary name and renamed into place (never replacing a file) once listening | at shutdown |
//!
//! With `--allow-group`, the segment and the socket belong to the first
//! allowed group (`fchown` / `chown` before they are published); otherwise to
//! the daemon's group. Their mode is always the same.
//!
//! Whoever holds the `flock` owns all three names, so a segment or socket found
//! by a daemon that just got the lock was most likely left by a daemon that
//! died. It is removed and made anew ("taking over stale segment") only if it
//! is provably ours and provably dead: our uid, our magic (segment), nobody
//! listening (socket), and the daemon the header names gone
//! ([`remove_stale`]). Anything else, in particular another user's file, is
//! never removed: start fails with a message naming the file and its owner.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, MetadataExt as _};
use std::os::unix::net::UnixListener;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use shmbus::layout::MAGIC;
use shmbus::name::BusPaths;

use crate::error::Error;
use crate::events::Log;
use crate::process::proc_start_time;

fn open_flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens (creating if needed) and locks the bus's lock file, then writes our
/// pid into it.
///
/// A daemon shutting down unlinks the lock file while it still holds the lock;
/// a daemon that opened the old file just before could then lock an unlinked
/// inode. So after locking we check that the path still names the inode we
/// locked, and start over if not.
pub(crate) fn acquire_lock(bus: &str, paths: &BusPaths) -> Result<OwnedFd, Error> {
    let path = &paths.lock;
    for _ in 0..8 {
        let fd = rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::RDWR | open_flags(),
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(format!("cannot open lock file {}", path.display()), e))?;
        // Another user's file (or not a file) at our lock's path is not ours
        // to lock, write or remove at shutdown.
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::Failed(format!(
                "{} (the lock file) is not a regular file; remove it or pick another bus name",
                path.display()
            )));
        }
        check_ours(path, "the lock file", st.st_uid)?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::AlreadyServed {
                    bus: bus.to_owned(),
                    pid: live_daemon_pid(paths, fd),
                })
            }
            Err(e) => return Err(Error::io(format!("cannot lock {}", path.display()), e)),
        }
        let locked = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.dev() == locked.st_dev && m.ino() == locked.st_ino => {
                let file = File::from(fd);
                let pid = format!("{}\n", std::process::id());
                file.set_len(0)
                    .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                return Ok(file.into());
            }
            // Unlinked or replaced under us: try again with the new file.
            _ => continue,
        }
    }
    Err(Error::Failed(format!(
        "lock file {} keeps changing under us; is another shmbusd starting and stopping?",
        path.display()
    )))
}

/// The pid of the daemon holding the lock: from the segment header if it is a
/// shmbus segment, else from the lock file's contents.
///
/// Never blocks: [`inspect_segment`] opens without blocking, and the lock
/// file is read only if it is a regular file.
fn live_daemon_pid(paths: &BusPaths, lock: OwnedFd) -> Option<u32> {
    if let Ok(Looks::Shmbus { pid: Some(pid), .. }) = inspect_segment(&paths.segment) {
        return Some(pid);
    }
    let st = rustix::fs::fstat(&lock).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut buf = [0u8; 16];
    let n = File::from(lock).read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// What a file at the segment path looks like.
#[derive(Debug)]
enum Looks {
    /// A shmbus segment (our magic), with the pid and start time of the daemon
    /// that made it (if the header got that far).
    Shmbus { pid: Option<u32>, start: u64 },
    /// Empty or zero-filled: not ours (our segments are linked in only
    /// once written).
    Blank,
    /// Something else: not ours to remove.
    Foreign,
}

/// Reads the start of the file at `path` (without mapping it) to tell whether
/// it is a shmbus segment. `pread` copies the bytes in the kernel, so a daemon
/// writing the header concurrently cannot cause a data race here.
///
/// Never blocks on a file we do not control: opened `O_NONBLOCK` (a FIFO
/// would otherwise block `open` until someone writes to it), and anything
/// but a regular file (by `fstat` of what was opened) is `Foreign`, unread.
fn inspect_segment(path: &Path) -> io::Result<Looks> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | open_flags(),
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(Looks::Foreign);
    }
    // Header bytes 0..8: magic; 36..40: daemon_pid; 40..48: daemon_start
    // (pinned by the const asserts in `shmbus::layout`).
    let mut buf = [0u8; 48];
    let n = File::from(fd).read_at(&mut buf, 0)?;
    let word = |r: core::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&buf[r]);
        u64::from_le_bytes(b)
    };
    Ok(match word(0..8) {
        MAGIC if n == buf.len() => Looks::Shmbus {
            pid: u32::try_from(word(36..40)).ok().filter(|&p| p != 0),
            start: word(40..48),
        },
        MAGIC => Looks::Shmbus {
            pid: None,
            start: 0,
        },
        _ if buf[..n].iter().all(|&b| b == 0) => Looks::Blank,
        _ => Looks::Foreign,
    })
}

/// The user name of `uid` from `/etc/passwd`, for messages.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_owned())
    })
}

/// "uid 65534 (nobody)", or "uid 65534".
fn describe_uid(uid: u32) -> String {
    match user_name(uid) {
        Some(n) => format!("uid {uid} ({n})"),
        None => format!("uid {uid}"),
    }
}

/// Refuses `path` unless it belongs to us (our effective uid).
fn check_ours(path: &Path, what: &str, owner: u32) -> Result<(), Error> {
    let me = rustix::process::geteuid().as_raw();
    if owner == me {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "{} ({what}) belongs to {}, not to {} that runs this daemon: not touching another \
         user's file; its owner may remove it, or pick another bus name",
        path.display(),
        describe_uid(owner),
        describe_uid(me)
    )))
}

/// Removes a segment and socket left by a daemon that died. We hold the lock,
/// so no daemon that plays by the rules serves them; still, a file is removed
/// only if it is provably ours and provably dead:
///
/// | file | removed when | otherwise |
/// |---|---|---|
/// | segment | regular file, our uid, our magic, and the daemon its header names is gone | refused, naming the file and its owner |
/// | socket | a socket, our uid, and `connect` is refused (nobody listens) | refused, naming the file and its owner |
///
/// An empty or zero-filled segment is never ours: the daemon creates the
/// segment unnamed (`O_TMPFILE`) and links it into place only once it is
/// `READY` ([`create_segment`](crate::segment::create_segment),
/// [`link_segment`](crate::segment::link_segment)).
pub(crate) fn remove_stale(bus: &str, paths: &BusPaths, log: &Log) -> Result<(), Error> {
    let seg = &paths.segment;
    match std::fs::symlink_metadata(seg) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("cannot stat {}", seg.display()), e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(Error::Failed(format!(
                "{} exists and is not a regular file (owner {}); remove it or pick another \
                 bus name",
                seg.display(),
                describe_uid(m.uid())
            )))
        }
        Ok(m) => {
            check_ours(seg, "a file where the segment goes", m.uid())?;
            let looks = inspect_segment(seg)
                .map_err(|e| Error::io(format!("cannot read {}", seg.display()), e))?;
            let by = match looks {
                Looks::Foreign | Looks::Blank => {
                    let what = if matches!(looks, Looks::Blank) {
                        "is empty or zero-filled: not a shmbus segment (a starting shmbusd \
                         never shows one)"
                    } else {
                        "is not a shmbus segment"
                    };
                    return Err(Error::Failed(format!(
                        "{} {what}; owner {}; if no program of yours uses it, remove it, or \
                         pick another bus name",
                        seg.display(),
                        describe_uid(m.uid())
                    )));
                }
                // Belt and braces: the lock says nobody serves this bus, but if
                // the lock file was deleted by hand while its daemon runs, the
                // header still names a live process (pid and start time match).
                Looks::Shmbus {
                    pid: Some(pid),
                    start,
                } if start != 0 && proc_start_time(pid).ok() == Some(start) => {
                    return Err(Error::AlreadyServed {
                        bus: bus.to_owned(),
                        pid: Some(pid),
                    })
                }
                Looks::Shmbus { pid: Some(pid), .. } => format!(" left by shmbusd pid {pid}"),
                Looks::Shmbus { pid: None, .. } => String::new(),
            };
            log.info(format_args!(
                "taking over stale segment {}{by} (its daemon is gone)",
                seg.display()
            ));
            std::fs::remove_file(seg)
                .map_err(|e| Error::io(format!("cannot remove stale {}", seg.display()), e))?;
        }
    }
    let sock = &paths.socket;
    match std::fs::symlink_metadata(sock) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("cannot stat {}", sock.display()), e)),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(Error::Failed(format!(
                "{} exists and is not a socket (owner {}); remove it or pick another bus name",
                sock.display(),
                describe_uid(m.uid())
            )))
        }
        Ok(m) => {
            check_ours(sock, "a socket where the control socket goes", m.uid())?;
            // Dead only if nobody listens: a live listener (a daemon whose
            // lock file was deleted, or another program) keeps its socket.
            match shmbus::name::connect_socket(sock) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Ok(_) => {
                    return Err(Error::Failed(format!(
                        "{} (owner {}) is in use: something is listening on it, although we \
                         hold the bus's lock; stop that process or pick another bus name",
                        sock.display(),
                        describe_uid(m.uid())
                    )))
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot tell whether {} is in use", sock.display()),
                        e,
                    ))
                }
            }
            log.info(format_args!("removing stale socket {}", sock.display()));
            std::fs::remove_file(sock)
                .map_err(|e| Error::io(format!("cannot remove stale {}", sock.display()), e))?;
        }
    }
    Ok(())
}

/// Binds the control socket under a temporary name, sets its mode, and renames
/// it into place.
///
/// `UnixListener::bind` is `bind` then `listen`: between the two the path
/// exists but refuses connections, and until `chmod` it has the umask's
/// permissions. The rename makes the socket appear at `path` only once it is
/// listening with its final mode, so a client that sees the path can connect.
/// (Changing the process-wide umask instead would race other threads of a
/// process that embeds the daemon.)
pub(crate) fn bind_socket(
    path: &Path,
    mode: u32,
    group: Option<u32>,
    epoch: u64,
) -> Result<UnixListener, Error> {
    let shown = path.display();
    // Short enough for `sun_path` whatever the bus name; unique per start;
    // no bus's file (see `BusPaths`).
    let tmp = shmbus::name::bind_temp_name(std::process::id(), epoch);
    let listener = UnixListener::bind(&tmp)
        .map_err(|e| Error::io(format!("cannot bind control socket {}", tmp.display()), e))?;
    let placed = group
        .map_or(Ok(()), |gid| {
            rustix::fs::chownat(
                rustix::fs::CWD,
                &tmp,
                None,
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::io(format!("cannot give {} to group {gid}", tmp.display()), e))
        })
        .and_then(|()| {
            rustix::fs::chmod(&tmp, Mode::from_raw_mode(mode))
                .map_err(|e| Error::io(format!("cannot set the mode of {}", tmp.display()), e))
        })
        .and_then(|()| {
            // NOREPLACE: a file that appeared at `path` since `remove_stale`
            // is not ours to replace.
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            )
            .map_err(|e| Error::io(format!("cannot move the control socket to {shown}"), e))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}
