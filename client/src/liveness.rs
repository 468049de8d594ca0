//! Noticing the daemon's death without a system call on the fast path.
//!
//! A client that streams at full speed never blocks, so the check that
//! blocking calls make between futex sleeps (one `recv(MSG_PEEK)` on the
//! control connection, see [`Control::peer_gone`](crate::control::Control))
//! never runs for it; measured before this module existed, such clients went
//! on exchanging frames through the deleted segment for a median 3.1 s (up to
//! 10.4 s) after the daemon was SIGKILLed.
//!
//! Instead, each connection has one watcher thread, asleep in `poll(2)` on the
//! control socket for a hang-up (`POLLRDHUP`; the daemon sends nothing unasked,
//! and `POLLIN` is not asked for, so answers to our own requests do not wake
//! it) and on an eventfd that says "stop". The kernel wakes it when the daemon's
//! end of the connection closes, which its death does at once; it then sets a
//! process-local flag that every channel operation reads with one relaxed load
//! of a line nobody writes until then. The idle thread costs no CPU: it makes
//! no system call until the daemon dies or the connection is dropped.

use shmbus::sync::{AtomicU32, Ordering};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;

/// The watcher of one control connection; see the module docs. Dropping it
/// stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Liveness {
    gone: Arc<AtomicU32>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Liveness {
    /// Starts watching `stream` (a duplicate of it is kept by the thread
    /// until it stops, which the drop of this value waits for).
    ///
    /// # Errors
    /// The `dup`, `eventfd` or thread spawn failed (out of descriptors or
    /// threads).
    pub(crate) fn watch(stream: &UnixStream) -> io::Result<Self> {
        let sock = stream.try_clone()?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC)?;
        let stop_in_thread = stop.try_clone()?;
        let gone = Arc::new(AtomicU32::new(0));
        let flag = gone.clone();
        let thread = std::thread::Builder::new()
            .name("shmbus-liveness".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                if wait_for_hangup(&sock, &stop_in_thread) {
                    // Release: no Acquire partner is needed (relaxed readers);
                    // nothing is published with it: the flag is a verdict.
                    flag.store(1, Ordering::Release);
                }
            })?;
        Ok(Self {
            gone,
            stop,
            thread: Some(thread),
        })
    }

    /// True once the daemon's end of the connection has closed (it exited or
    /// was killed). One relaxed load of a process-local flag: cheap enough for
    /// every channel operation. The flag only ever goes from false to true.
    #[inline]
    pub(crate) fn daemon_gone(&self) -> bool {
        // Relaxed: a verdict, not a publication; a late view only delays
        // the report by the time the store takes to become visible.
        self.gone.load(Ordering::Relaxed) != 0
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        // Any nonzero write makes the eventfd readable; if the write failed
        // (it cannot, short of a full counter) the thread would be left
        // asleep, so only join when the write went through.
        let woken = rustix::io::write(&self.stop, &1u64.to_ne_bytes()).is_ok();
        if let Some(t) = self.thread.take() {
            if woken {
                let _ = t.join();
            }
        }
    }
}

/// Sleeps until the socket's peer hangs up (true) or `stop` is signalled or
/// `poll` fails for a reason other than a signal (false).
fn wait_for_hangup(sock: &UnixStream, stop: &OwnedFd) -> bool {
    let hangup = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
    loop {
        let mut fds = [
            PollFd::new(sock, PollFlags::RDHUP),
            PollFd::new(stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {
                if !fds[1].revents().is_empty() {
                    return false;
                }
                if fds[0].revents().intersects(hangup) {
                    return true;
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_until(f: impl Fn() -> bool) -> bool {
        // A generous watchdog, not a timing assertion.
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn sees_the_peer_hang_up() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let l = Liveness::watch(&ours).unwrap();
        assert!(!l.daemon_gone());
        drop(theirs);
        assert!(wait_until(|| l.daemon_gone()), "hang-up never seen");
    }

    #[test]
    fn data_from_the_peer_is_not_a_hang_up() {
        use std::io::Write;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let l = Liveness::watch(&ours).unwrap();
        theirs.write_all(b"OK\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!l.daemon_gone());
        drop(l); // stops and joins while the peer is still there
        drop(theirs);
    }

    #[test]
    fn drop_stops_the_thread_and_releases_the_socket() {
        use std::io::Read;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let l = Liveness::watch(&ours).unwrap();
        drop(l);
        drop(ours);
        // With the thread's duplicate closed too, the peer sees EOF.
        let mut b = [0u8; 1];
        assert_eq!(theirs.read(&mut b).unwrap(), 0);
    }
}
