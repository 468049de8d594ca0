//! Who is at the other end of a Unix socket: `SO_PEERCRED`, read the same way
//! by the daemon (of each client) and the client (of the daemon).
//!
//! Unlike `rustix`'s `socket_peercred`, a pid of 0 is accepted: it means the
//! peer's process is not visible from our pid namespace (a client in a
//! container, a daemon in a sibling namespace), not an error.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::net::UnixStream;

/// The credentials a socket's peer had when it called `connect` (or, for the
/// connecting side, when the listener was made), as seen from our
/// namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The pid in our pid namespace; 0 if the process is not visible from it.
    pub pid: u32,
    /// The uid in our user namespace (the overflow uid, normally 65534, if it
    /// has no mapping there).
    pub uid: u32,
    /// The gid, likewise.
    pub gid: u32,
}

/// `SO_PEERCRED` on `stream`.
///
/// # Errors
/// If `getsockopt` fails (not a connected Unix socket).
pub fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `stream` is an open socket for the whole call; `c` and `len` are
    // valid, writable and live for the call, and `len` is `c`'s size, so the
    // kernel writes at most `size_of::<ucred>()` bytes into `c` (plain
    // integers: any bits are valid).
    let r = unsafe {
        libc::getsockopt(
            stream.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(c).cast(),
            std::ptr::addr_of_mut!(len),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: u32::try_from(c.pid).unwrap_or(0),
        uid: c.uid,
        gid: c.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_sees_our_own_credentials() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid, std::process::id());
        assert_eq!(c.uid, rustix::process::geteuid().as_raw());
        assert_eq!(c.gid, rustix::process::getegid().as_raw());
    }
}
