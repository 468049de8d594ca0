//! A client process, held by a pidfd: the daemon's proof of life and death.
//!
//! A pid alone does not identify a process (it is reused after the process is
//! reaped); a pidfd does: it refers to one process for as long as it is open,
//! and becomes readable (`POLLIN`) when that process exits, whether or not it
//! has been reaped. The daemon takes one per connection, race-free:
//!
//! 1. `SO_PEERPIDFD` (Linux 6.5+) on the accepted socket: the kernel hands out a
//!    pidfd of the process that called `connect`, with no pid in between.
//! 2. Else `pidfd_open(pid)` with the pid from `SO_PEERCRED`, confirmed by the
//!    process's start time (`/proc/PID/stat` field 22) read before and after:
//!    if the pid had been reused in between, the start times would differ or
//!    the first read would fail. (A reuse before the first read is not caught
//!    on these old kernels; the pid and the start time are then both the
//!    impostor's, which the peer table records.)
//!
//! The start time is read after the pidfd exists and is only trusted if the
//! pidfd still says "running" afterwards: while a process runs, its pid cannot
//! be reused, so what `/proc/PID` said belonged to it. The same check confirms
//! the supplementary groups read from `/proc/PID/status`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use crate::run::proc_start_time;

/// `SO_PEERPIDFD` from `<asm-generic/socket.h>` (not exported by `libc` for
/// every target yet). Same value on x86, x86-64, arm and aarch64.
const SO_PEERPIDFD: libc::c_int = 77;

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
    pid: u32,
    start_time: u64,
    source: Source,
}

impl ClientProc {
    /// The process at the other end of `stream`, whose `SO_PEERCRED` pid is
    /// `pid`.
    ///
    /// # Errors
    /// If no pidfd can be had, or the process exited already (`ESRCH`), or
    /// its start time cannot be read or changed under us (pid reused).
    pub(crate) fn of_peer(stream: &UnixStream, pid: u32) -> io::Result<Self> {
        Self::from_peer_pidfd(peer_pidfd(stream), pid)
    }

    /// [`of_peer`](Self::of_peer) given what `SO_PEERPIDFD` returned.
    fn from_peer_pidfd(peer: Result<OwnedFd, Errno>, pid: u32) -> io::Result<Self> {
        let (pidfd, source) = match peer {
            Ok(fd) => (fd, Source::PeerPidfd),
            // ENOPROTOOPT: a kernel before 6.5. EINVAL: the socket has no
            // peer pid recorded.
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
        let start = proc_start_time(pid)?;
        if p.exited(Some(Duration::ZERO)) {
            return Err(io::Error::other(format!("process {pid} already exited")));
        }
        p.start_time = start;
        Ok(p)
    }

    /// The pid (from `SO_PEERCRED`).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Its start time in clock ticks since boot (confirmed by the pidfd).
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

    /// Whether the process belongs to group `gid` through its supplementary
    /// groups (`Groups:` in `/proc/PID/status`), confirmed by the pidfd: the
    /// answer counts only if the process still runs after the read.
    pub(crate) fn in_supplementary_group(&self, gid: &[u32]) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return false;
        };
        let groups = parse_groups(&status);
        groups.iter().any(|g| gid.contains(g)) && !self.exited(Some(Duration::ZERO))
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

/// The supplementary groups in a `/proc/PID/status` text.
fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn groups_line() {
        let s = "Name:\tx\nUid:\t0 0 0 0\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(parse_groups(s), [4, 24, 27]);
        assert_eq!(parse_groups("Groups:\n"), Vec::<u32>::new());
        assert_eq!(parse_groups("Name: y\n"), Vec::<u32>::new());
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
