//! A client process, held by a pidfd: the daemon's proof of life and death.
//!
//! A pid alone does not identify a process (it is reused after the process is
//! reaped); a pidfd does: it refers to one process for as long as it is open,
//! and becomes readable (`POLLIN`) when that process exits, whether or not it
//! has been reaped. The daemon takes one per connection, race-free:
//!
//! 1. `SO_PEERPIDFD` (Linux 6.5+) on the accepted socket: the kernel hands out a
//!    pidfd of the process that called `connect`, with no pid in between. It
//!    works whatever pid namespace the client is in.
//! 2. Else `pidfd_open(pid)` with the pid from `SO_PEERCRED`, confirmed by the
//!    process's start time (`/proc/PID/stat` field 22) read before and after:
//!    if the pid had been reused in between, the start times would differ or
//!    the first read would fail. (A reuse before the first read is not caught
//!    on these old kernels; the pid and the start time are then both the
//!    impostor's, which the peer table records.) This needs the pid to be
//!    visible from the daemon's pid namespace: a client in a sibling or
//!    parent namespace is refused on such a kernel, since its death could not
//!    be detected.
//!
//! # Pid namespaces
//! `SO_PEERCRED` gives the pid as seen from the daemon's pid namespace, and 0
//! when the client's process is not visible from it (the client is in a
//! sibling or an ancestor namespace). A pid of 0 means "not visible from
//! here", not an error: identity and death detection rest on the pidfd and on
//! the uid/gid/groups of the socket (which cross namespaces). `/proc` is read
//! only for a visible pid, and only if `/proc` belongs to our pid namespace
//! (a daemon started with `unshare --pid` without `--mount-proc` sees the
//! parent's `/proc`, where our pids name other processes).
//!
//! The start time is read after the pidfd exists and is only trusted if the
//! pidfd still says "running" afterwards: while a process runs, its pid cannot
//! be reused, so what `/proc/PID` said belonged to it. The same check confirms
//! the `NSpid` chain read from `/proc/PID/status`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

/// `SO_PEERPIDFD` from `<asm-generic/socket.h>` (not exported by `libc` for
/// every target yet). Same value on x86, x86-64, arm and aarch64.
const SO_PEERPIDFD: libc::c_int = 77;

/// `SO_PEERGROUPS` from `<asm-generic/socket.h>` (Linux 4.13+), same value on
/// x86, x86-64, arm and aarch64.
const SO_PEERGROUPS: libc::c_int = 59;

/// Who is at the other end of a connection, from `SO_PEERCRED`, as seen
/// from the daemon's namespaces (a pid of 0: not visible from here).
pub(crate) use shmbus::peer::{peer_cred, PeerCred};

/// `SO_PEERGROUPS` on `stream`: the supplementary groups the peer had when it
/// called `connect`, as seen from the daemon's user namespace. Crosses pid
/// namespaces (no `/proc` involved).
///
/// # Errors
/// If `getsockopt` fails.
pub(crate) fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    // NGROUPS_MAX is 65536; start small, grow once to what the kernel asks.
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * 4).map_err(io::Error::other)?;
        // SAFETY: `stream` is an open socket for the whole call; `groups` has
        // `len` writable bytes, live for the call, and the kernel writes at most
        // `len` bytes (or fails with ERANGE and stores the length it needs).
        let r = unsafe {
            libc::getsockopt(
                stream.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                std::ptr::addr_of_mut!(len),
            )
        };
        let need = len as usize / 4;
        if r == 0 {
            groups.truncate(need.min(groups.len()));
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && need > groups.len() && need <= 65536 {
            groups.resize(need, 0);
            continue;
        }
        return Err(e);
    }
}

/// Whether `/proc` shows our own pid namespace: `/proc/self` names our pid.
/// Checked once per process.
pub(crate) fn proc_is_ours() -> bool {
    static OURS: OnceLock<bool> = OnceLock::new();
    *OURS.get_or_init(|| {
        std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str()?.parse::<u32>().ok())
            == Some(std::process::id())
    })
}

/// `pid` if it names a process we can look at in `/proc` (nonzero, and
/// `/proc` is our pid namespace's).
fn visible(pid: u32) -> Option<u32> {
    (pid != 0 && proc_is_ours()).then_some(pid)
}

/// How the pidfd was obtained (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `SO_PEERPIDFD`.
    PeerPidfd,
    /// `pidfd_open` confirmed by the start time.
    PidfdOpen,
}

/// A connected client's process.
#[derive(Debug)]
pub(crate) struct ClientProc {
    pidfd: OwnedFd,
    /// As in [`PeerCred::pid`], or 0 if `/proc` cannot tell us about it.
    pid: u32,
    /// 0 if the pid is not visible.
    start_time: u64,
    source: Source,
}

impl ClientProc {
    /// The process at the other end of `stream`, whose `SO_PEERCRED` pid is
    /// `pid` (0: not visible from our pid namespace).
    ///
    /// # Errors
    /// If no pidfd can be had (in particular: a kernel before 6.5, without
    /// `SO_PEERPIDFD`, and a pid not visible from here), or the process exited
    /// already (`ESRCH`), or its start time cannot be read or changed under us
    /// (pid reused).
    pub(crate) fn of_peer(stream: &UnixStream, pid: u32) -> io::Result<Self> {
        Self::from_peer_pidfd(peer_pidfd(stream), pid)
    }

    /// [`of_peer`](Self::of_peer) given what `SO_PEERPIDFD` returned.
    fn from_peer_pidfd(peer: Result<OwnedFd, Errno>, pid: u32) -> io::Result<Self> {
        let pid = visible(pid).unwrap_or(0);
        let (pidfd, source) = match peer {
            Ok(fd) => (fd, Source::PeerPidfd),
            // ENOPROTOOPT: a kernel before 6.5. EINVAL: the socket has no
            // peer pid recorded.
            Err(Errno::NOPROTOOPT | Errno::INVAL) if pid == 0 => {
                return Err(io::Error::other(
                    "the client's process is not visible from the daemon's pid namespace and \
                     this kernel has no SO_PEERPIDFD (Linux 6.5+), so its death could not be \
                     detected; run the client in the daemon's pid namespace or a child of it, \
                     or use Linux 6.5 or later",
                ))
            }
            Err(Errno::NOPROTOOPT | Errno::INVAL) => {
                let before = proc_start_time(pid)?;
                let raw = Pid::from_raw(i32::try_from(pid).map_err(io::Error::other)?)
                    .ok_or_else(|| io::Error::other("SO_PEERCRED gave pid 0"))?;
                let fd = rustix::process::pidfd_open(raw, PidfdFlags::empty())?;
                let after = proc_start_time(pid)?;
                if before != after {
                    return Err(io::Error::other(format!(
                        "pid {pid} was reused while the daemon looked at it"
                    )));
                }
                (fd, Source::PidfdOpen)
            }
            Err(e) => return Err(e.into()),
        };
        let mut p = Self {
            pidfd,
            pid,
            start_time: 0,
            source,
        };
        let start = if pid == 0 { 0 } else { proc_start_time(pid)? };
        if p.exited(Some(Duration::ZERO)) {
            return Err(io::Error::other(format!(
                "process {} already exited",
                p.who()
            )));
        }
        p.start_time = start;
        Ok(p)
    }

    /// The pid (from `SO_PEERCRED`); 0 if not visible from here.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `pid N`, or a note that the pid is not visible, for messages.
    pub(crate) fn who(&self) -> String {
        if self.pid == 0 {
            "(pid not visible from the daemon's pid namespace)".to_owned()
        } else {
            format!("pid {}", self.pid)
        }
    }

    /// Its start time in clock ticks since boot (confirmed by the pidfd); 0
    /// if the pid is not visible.
    pub(crate) fn start_time(&self) -> u64 {
        self.start_time
    }

    /// How the pidfd was obtained.
    pub(crate) fn source(&self) -> Source {
        self.source
    }

    /// The pidfd, to poll with other descriptors (readable once it exited).
    pub(crate) fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// Waits up to `timeout` (`None`: forever) for the process to exit; true
    /// if it has. A stopped (SIGSTOP) process has not exited.
    pub(crate) fn exited(&self, timeout: Option<Duration>) -> bool {
        let ts = timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        loop {
            let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(0) => return false,
                Ok(_) => return !fds[0].revents().is_empty(),
                // A signal: go round again (the timeout restarts; callers
                // use short ones or none).
                Err(Errno::INTR) => {}
                // Cannot happen for a valid pidfd; treat it as not exited, so
                // nothing is recovered on a doubt.
                Err(_) => return false,
            }
        }
    }

    /// Whether `claimed`, the pid a client says it has (`HELLO`), fits this
    /// process: `None` if that cannot be told from here (pid not visible), else
    /// whether `claimed` is its pid in one of the pid namespaces it is in (the
    /// `NSpid` chain of `/proc/PID/status`: ours first, its own last),
    /// confirmed by the pidfd (the answer counts only if the process still
    /// runs after the read).
    pub(crate) fn pid_matches(&self, claimed: u32) -> Option<bool> {
        if self.pid == 0 {
            return None;
        }
        if claimed == self.pid {
            return Some(true);
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let chain = parse_nspid(&status);
        if self.exited(Some(Duration::ZERO)) {
            return None;
        }
        Some(chain.last() == Some(&claimed))
    }
}
/// `SO_PEERPIDFD` on `stream`.
fn peer_pidfd(stream: &UnixStream) -> Result<OwnedFd, Errno> {
    let mut fd: libc::c_int = -1;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `stream` is an open socket for the whole call; `fd` and `len`
    // are valid, writable and live for the call, and `len` is `fd`'s size, so
    // the kernel writes at most `size_of::<c_int>()` bytes into `fd`.
    let r = unsafe {
        libc::getsockopt(
            stream.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            std::ptr::addr_of_mut!(fd).cast(),
            std::ptr::addr_of_mut!(len),
        )
    };
    if r != 0 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    if fd < 0 || len as usize != core::mem::size_of::<libc::c_int>() {
        return Err(Errno::IO);
    }
    // SAFETY: on success `SO_PEERPIDFD` installs a new descriptor (close-on-
    // exec) in our table and returns it; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `NSpid:` line of a `/proc/PID/status` text: the process's pid in each
/// pid namespace it is in, from the reader's (`/proc`'s) outward in.
fn parse_nspid(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|g| {
            g.split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Start time of process `pid` in clock ticks since boot: field 22 of
/// `/proc/PID/stat`. Together with the pid it identifies a process (a pid
/// alone may be reused).
pub(crate) fn proc_start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

/// Field 22 of a `/proc/PID/stat` line. Field 2, the command name, is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`; the field after it is field 3.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn start_time_parsing() {
        let line = "123 (a) b) c) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time("1 (x) S 1"), None);
        assert!(proc_start_time(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn nspid_line() {
        let s = "Name:\tx\nNgid:\t0\nPid:\t41\nNSpid:\t41\t7\t1\nNSpgid:\t41\n";
        assert_eq!(parse_nspid(s), [41, 7, 1]);
        assert_eq!(parse_nspid("NSpid:\t5\n"), [5]);
        assert_eq!(parse_nspid("Name: y\n"), Vec::<u32>::new());
    }

    #[test]
    fn own_credentials_and_groups() {
        let path = std::env::temp_dir().join(format!("shmbusd-cred-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        let _ = std::fs::remove_file(&path);
        let c = peer_cred(&s).unwrap();
        assert_eq!(c.pid, std::process::id());
        assert_eq!(c.uid, rustix::process::geteuid().as_raw());
        assert_eq!(c.gid, rustix::process::getegid().as_raw());
        let mut want: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut got = peer_groups(&s).unwrap();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        assert!(proc_is_ours());
        let p = ClientProc::of_peer(&s, c.pid).unwrap();
        assert_eq!(p.pid_matches(std::process::id()), Some(true));
        assert_eq!(p.pid_matches(1), Some(false));
        // A pid of 0 (not visible from here) still gets a pidfd, and no
        // pid check.
        let p = ClientProc::of_peer(&s, 0).unwrap();
        assert_eq!((p.pid(), p.start_time()), (0, 0));
        assert_eq!(p.pid_matches(1), None);
        assert!(!p.exited(Some(Duration::ZERO)));
        // Without SO_PEERPIDFD an invisible pid cannot be watched: refused,
        // saying why.
        let e = ClientProc::from_peer_pidfd(Err(Errno::NOPROTOOPT), 0).unwrap_err();
        assert!(e.to_string().contains("SO_PEERPIDFD"), "{e}");
    }

    #[test]
    fn own_process_via_a_socket() {
        let path = std::env::temp_dir().join(format!("shmbusd-proc-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let c = UnixStream::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        let _ = std::fs::remove_file(&path);
        let p = ClientProc::of_peer(&s, std::process::id()).unwrap();
        assert_eq!(p.pid(), std::process::id());
        assert_eq!(p.start_time(), proc_start_time(std::process::id()).unwrap());
        assert_eq!(p.source(), Source::PeerPidfd);
        assert!(!p.exited(Some(Duration::from_millis(10))));
        drop(c);
    }

    /// The `pidfd_open` fallback (kernels before 6.5) on a real child: a
    /// stopped process has not exited, a killed one has.
    #[test]
    fn fallback_pidfd_stopped_and_killed() {
        use rustix::process::{kill_process, Signal};
        struct Reap(std::process::Child);
        impl Drop for Reap {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Reap(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        let p = ClientProc::from_peer_pidfd(Err(Errno::NOPROTOOPT), pid).unwrap();
        assert_eq!(p.source(), Source::PidfdOpen);
        assert_eq!(p.start_time(), proc_start_time(pid).unwrap());
        let raw = Pid::from_raw(pid as i32).unwrap();
        kill_process(raw, Signal::STOP).unwrap();
        assert!(
            !p.exited(Some(Duration::from_millis(300))),
            "stopped is not exited"
        );
        kill_process(raw, Signal::KILL).unwrap();
        // Readable once it exited, reaped or not (watchdog, not a time limit).
        assert!(
            p.exited(Some(Duration::from_secs(30))),
            "killed but not exited"
        );
        let _ = child.0.wait();
        assert!(p.exited(Some(Duration::ZERO)));
        // Other errors are not papered over.
        assert!(ClientProc::from_peer_pidfd(Err(Errno::BADF), pid).is_err());
        // A pid that is gone cannot be watched.
        assert!(ClientProc::from_peer_pidfd(Err(Errno::NOPROTOOPT), pid).is_err());
    }
}
