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
//!
//! Blocked calls do not poll for the flag either: after setting it, the
//! watcher runs the hang-up action it was given, which wakes every thread of
//! this process asleep on a doorbell it recorded in the peer slot
//! ([`shmbus::futex::wake_recorded`], whose loom model is
//! `tests/loom_liveness.rs`). So a client blocked on an idle bus makes no
//! system call at all while the daemon lives, and returns `BusClosed` as soon
//! as it dies. If the watcher itself fails (its `poll` returns an error other
//! than `EINTR`), it says so ([`Liveness::watching`] turns false) and runs
//! the action too, so that sleepers go back to checking every
//! [`shmbus::futex::INTERRUPT_SLICE`].

use shmbus::sync::{AtomicU32, Ordering};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;

/// [`Liveness`]'s state: the watcher sleeps in `poll`.
const WATCHING: u32 = 0;
/// The daemon hung up.
const GONE: u32 = 1;
/// The watcher's `poll` failed: it no longer watches.
const FAILED: u32 = 2;

/// The watcher of one control connection; see the module docs. Dropping it
/// stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// [`WATCHING`], [`GONE`] or [`FAILED`]; changes once at most.
    state: Arc<AtomicU32>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Liveness {
    /// Starts watching `stream` (a duplicate of it is kept by the thread
    /// until it stops, which the drop of this value waits for). The thread
    /// runs `on_hang_up` right after it set the flag (or gave up watching),
    /// never when stopped by the drop.
    ///
    /// # Errors
    /// The `dup`, `eventfd` or thread spawn failed (out of descriptors or
    /// threads).
    pub(crate) fn watch(
        stream: &UnixStream,
        on_hang_up: impl FnOnce() + Send + 'static,
    ) -> io::Result<Self> {
        let sock = stream.try_clone()?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC)?;
        let stop_in_thread = stop.try_clone()?;
        let state = Arc::new(AtomicU32::new(WATCHING));
        let flag = state.clone();
        let thread = std::thread::Builder::new()
            .name("shmbus-liveness".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let verdict = match wait_for_hangup(&sock, &stop_in_thread) {
                    Watch::Stopped => return,
                    Watch::HungUp => GONE,
                    Watch::Failed => FAILED,
                };
                // Relaxed: a verdict, nothing is published with it; the
                // sleepers that must see it are ordered by the SeqCst fence
                // in `wake_recorded`, which `on_hang_up` runs next.
                flag.store(verdict, Ordering::Relaxed);
                on_hang_up();
            })?;
        Ok(Self {
            state,
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
        // the report by the time the store takes to become visible (and a
        // sleeper's view is ordered by the fence pair of `wake_recorded`).
        self.gone_state() == GONE
    }

    /// True while the watcher sleeps in `poll`, so that the daemon's death
    /// will wake recorded sleepers; false once it hung up or the watcher
    /// failed (sleepers must then check periodically themselves).
    #[inline]
    pub(crate) fn watching(&self) -> bool {
        self.gone_state() == WATCHING
    }

    #[inline]
    fn gone_state(&self) -> u32 {
        // Relaxed: see `daemon_gone`.
        self.state.load(Ordering::Relaxed)
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

/// How [`wait_for_hangup`] ended.
enum Watch {
    /// The socket's peer hung up.
    HungUp,
    /// `stop` was signalled.
    Stopped,
    /// `poll` failed for a reason other than a signal.
    Failed,
}

/// Sleeps until the socket's peer hangs up, `stop` is signalled or `poll`
/// fails for a reason other than a signal.
fn wait_for_hangup(sock: &UnixStream, stop: &OwnedFd) -> Watch {
    let hangup = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
    loop {
        let mut fds = [
            PollFd::new(sock, PollFlags::RDHUP),
            PollFd::new(stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {
                if !fds[1].revents().is_empty() {
                    return Watch::Stopped;
                }
                if fds[0].revents().intersects(hangup) {
                    return Watch::HungUp;
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return Watch::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sees_the_peer_hang_up_and_runs_the_action() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let l = Liveness::watch(&ours, move || tx.send(()).unwrap()).unwrap();
        assert!(!l.daemon_gone());
        assert!(l.watching());
        drop(theirs);
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the hang-up action never ran");
        assert!(l.daemon_gone(), "the flag is set before the action runs");
        assert!(!l.watching());
    }

    #[test]
    fn data_from_the_peer_is_not_a_hang_up() {
        use std::io::Write;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let l = Liveness::watch(&ours, || {}).unwrap();
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
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let l = Liveness::watch(&ours, move || tx.send(()).unwrap()).unwrap();
        drop(l);
        // Joined without running the action (its sender is gone unsent).
        assert!(rx.recv().is_err());
        drop(ours);
        // With the thread's duplicate closed too, the peer sees EOF.
        let mut b = [0u8; 1];
        assert_eq!(theirs.read(&mut b).unwrap(), 0);
    }
}
