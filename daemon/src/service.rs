//! Running `shmbusd` as a service: its signals and its log.
//!
//! # Signals
//! | signal | effect |
//! |---|---|
//! | `SIGINT`, `SIGTERM` | clean shutdown (the segment is marked `CLOSING`, every sleeper woken, the files removed), exit status 0 |
//! | `SIGHUP` | log one status line ([`crate::StatusHandle::summary`]) and keep serving |
//!
//! `SIGHUP` is what a terminal sends its session when it closes, so a daemon
//! started from a shell (`nohup shmbusd &`, or without `nohup` in a shell
//! that forwards it) survives the terminal. Under systemd,
//! `systemctl kill -s HUP shmbusd` sends it. It is not a reload: nothing is
//! re-read, so the shipped unit has no `ExecReload=`.
//!
//! The handlers are `signal-hook`'s: the handler only records the signal and
//! writes to a self-pipe; a thread reads it and does the work.
//!
//! # systemd
//! With `Type=notify`, [`sd_notify`] tells systemd `READY=1` once the segment
//! and the socket exist (so units ordered after the daemon find the bus),
//! `STATUS=` the status line on `SIGHUP`, and `STOPPING=1` on a stop signal.
//!
//! # Log
//! [`init_logging`] installs `env_logger` for the `shmbusd` binary only:
//! one line per event on stderr, `2026-01-02T03:04:05.678Z INFO  shmbusd[NAME]: ...`,
//! filtered by `RUST_LOG` (default `info`, also when empty; the daemon logs under the target
//! [`LOG_TARGET`](crate::events::LOG_TARGET), so `RUST_LOG=shmbusd=warn` works as well as `RUST_LOG=warn`).
//! When stderr is the systemd journal (`$JOURNAL_STREAM` names it), lines
//! carry a `<N>` syslog priority prefix instead of the timestamp and level,
//! which journald turns into the entry's priority and time.

use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::Error;
use crate::status::StatusHandle;
use crate::stop::StopHandle;

/// Installs the `shmbusd` binary's logger (see the module docs). Does nothing
/// if the process already has a logger.
pub(crate) fn init_logging() {
    let journal = stderr_is_journal();
    let mut b = env_logger::Builder::new();
    // An empty `RUST_LOG` counts as unset (env_logger alone would show only
    // errors then).
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => b.parse_filters(&v),
        _ => b.filter_level(log::LevelFilter::Info),
    };
    b.target(env_logger::Target::Stderr);
    if journal {
        b.format(|buf, r| writeln!(buf, "<{}>{}", syslog_priority(r.level()), r.args()));
    } else {
        b.format(|buf, r| {
            writeln!(
                buf,
                "{} {:<5} {}",
                buf.timestamp_millis(),
                r.level(),
                r.args()
            )
        });
    }
    let _ = b.try_init();
}

/// Prints the error that ended `shmbusd` (not through the logger, so that
/// `RUST_LOG` cannot hide it): `shmbusd: error: ...`, with the journal's
/// "error" priority when stderr is the journal.
pub(crate) fn print_error(e: &Error) {
    let prefix = if stderr_is_journal() { "<3>" } else { "" };
    let _ = writeln!(io::stderr().lock(), "{prefix}shmbusd: error: {e}");
}

/// The syslog priority journald reads from a `<N>` line prefix.
fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether stderr is the systemd journal: systemd sets `$JOURNAL_STREAM` to
/// `DEV:INODE` of the stream it connects; a child that redirected stderr
/// elsewhere still inherits the variable, hence the comparison.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let stderr = io::stderr();
    rustix::fs::fstat(stderr.as_fd()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// Sends `state` (newline-separated `KEY=value` assignments) to systemd's
/// notification socket if `$NOTIFY_SOCKET` names one: a path, or an abstract
/// name written with a leading `@`. Best effort: without systemd, or if the
/// send fails, nothing happens.
pub(crate) fn sd_notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = target.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(&target)),
    };
    if let (Ok(addr), Ok(sock)) = (addr, UnixDatagram::unbound()) {
        let _ = sock.send_to_addr(state.as_bytes(), &addr);
    }
}

/// The signal handlers of [`crate::run()`] and the thread that acts on them.
#[derive(Debug)]
pub(crate) struct SignalWatcher {
    signals: Option<Signals>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalWatcher {
    /// Installs the handlers. Signals that arrive from now on are kept until
    /// [`watch`](Self::watch) acts on them (none is lost while the daemon
    /// starts).
    ///
    /// # Errors
    /// [`Error::Failed`] if a handler cannot be installed.
    pub(crate) fn install() -> Result<Self, Error> {
        let signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| {
            Error::Failed(format!(
                "cannot install the SIGINT/SIGTERM/SIGHUP handlers: {e}"
            ))
        })?;
        Ok(Self {
            handle: signals.handle(),
            signals: Some(signals),
            thread: None,
        })
    }

    /// Starts the thread: `SIGINT`/`SIGTERM` stop the daemon, `SIGHUP` logs
    /// its status.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be started.
    pub(crate) fn watch(&mut self, stop: StopHandle, status: StatusHandle) -> Result<(), Error> {
        let Some(mut signals) = self.signals.take() else {
            return Ok(());
        };
        let thread = std::thread::Builder::new()
            .name("shmbusd-signals".into())
            .spawn(move || {
                // Ends when `Drop` closes the handle.
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        let summary = status.summary();
                        status.info(format_args!("status: {summary}"));
                        sd_notify(&format!("STATUS={summary}"));
                    } else {
                        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                        status.info(format_args!("{name} received"));
                        sd_notify("STOPPING=1");
                        stop.stop();
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the signal thread", e))?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for SignalWatcher {
    /// Ends the thread. The handlers stay installed but do nothing.
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
