//! The status summary: one line about a running bus (peers, channels, arena
//! use), logged on `SIGHUP` by the `shmbusd` binary and available to programs
//! that embed a [`crate::Daemon`] through a [`StatusHandle`].

use std::fmt::Write as _;
use std::sync::Arc;

use shmbus::layout::Kind;

use crate::server::Bus;

/// Reads the state of a running [`Daemon`](crate::Daemon) from any thread;
/// cheap to clone. Get one with [`Daemon::status_handle`](crate::Daemon::status_handle).
///
/// # Examples
/// ```no_run
/// use shmbus_daemon::{Cli, Daemon, Spec, StopHandle};
/// let cli = Cli::parse_args(["shmbusd", "--name", "demo", "--pipe", "ticks:4096"])?;
/// let daemon = Daemon::start(Spec::from_cli(cli)?, StopHandle::new())?;
/// let status = daemon.status_handle();
/// assert!(status.summary().contains("1/256 channels (pipes 1,"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct StatusHandle {
    bus: Arc<Bus>,
}

impl StatusHandle {
    pub(crate) fn new(bus: Arc<Bus>) -> Self {
        Self { bus }
    }

    /// One line: whether the bus serves or is closing, registered clients out
    /// of the peer slots, channels by kind out of the directory entries, and
    /// arena bytes handed out, e.g.
    /// `serving; peers 2/128; channels 3/256 (pipes 2, queues 1, values 0,
    /// arrays 0, topics 0); arena 139264/33275904 bytes used (0.4%)`.
    pub fn summary(&self) -> String {
        let g = *self.bus.seg.geometry();
        let st = self.bus.state();
        let mut by_kind = [0usize; 5];
        for c in st.channels.iter() {
            by_kind[match c.kind() {
                Kind::Pipe => 0,
                Kind::Queue => 1,
                Kind::Value => 2,
                Kind::Array => 3,
                Kind::Topic => 4,
            }] += 1;
        }
        let used = g.arena_len - st.channels.arena_free();
        let mut s = String::new();
        let _ = write!(
            s,
            "{}; peers {}/{}; channels {}/{} (pipes {}, queues {}, values {}, arrays {}, topics {}); \
             arena {used}/{} bytes used ({:.1}%)",
            if st.closing { "closing" } else { "serving" },
            st.peers.live(),
            g.peers_count,
            st.channels.len(),
            g.dir_count,
            by_kind[0],
            by_kind[1],
            by_kind[2],
            by_kind[3],
            by_kind[4],
            g.arena_len,
            // Display only: the f64 rounding of byte counts does not matter.
            if g.arena_len == 0 {
                0.0
            } else {
                used as f64 * 100.0 / g.arena_len as f64
            },
        );
        s
    }

    /// Logs one event line at level info (as the daemon's own events).
    pub(crate) fn info(&self, args: std::fmt::Arguments<'_>) {
        self.bus.log.info(args);
    }

    /// Logs `status: ` and the [`summary`](Self::summary) at level info
    /// (not shown with `--quiet`).
    pub fn log(&self) {
        self.bus
            .log
            .info(format_args!("status: {}", self.summary()));
    }
}
