//! The daemon's event log.

use std::sync::Arc;

/// The `log` target of every daemon event.
pub(crate) const LOG_TARGET: &str = "shmbusd";

/// The daemon's event log: one line per event, prefixed `shmbusd[NAME]: `,
/// sent to the [`log`] facade under the target [`LOG_TARGET`].
///
/// Whoever runs the daemon picks the logger: the `shmbusd` binary installs
/// `env_logger` (stderr, timestamp and level, `RUST_LOG`); a program that
/// embeds a [`Daemon`](crate::Daemon) gets the events through its own logger, or not at all.
/// Loggers must not panic on a failed write (`env_logger` ignores it), so a
/// closed stderr cannot take the daemon down.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    prefix: Arc<str>,
    quiet: bool,
}

impl Log {
    pub(crate) fn new(bus: &str, quiet: bool) -> Self {
        Self {
            prefix: format!("shmbusd[{bus}]: ").into(),
            quiet,
        }
    }

    /// A notable event, at level info (suppressed by `--quiet`).
    pub(crate) fn info(&self, args: std::fmt::Arguments<'_>) {
        if !self.quiet {
            log::info!(target: LOG_TARGET, "{}{args}", self.prefix);
        }
    }

    /// Something went wrong but the daemon goes on, at level warn (shown even
    /// with `--quiet`).
    pub(crate) fn warn(&self, args: std::fmt::Arguments<'_>) {
        log::warn!(target: LOG_TARGET, "{}{args}", self.prefix);
    }
}
