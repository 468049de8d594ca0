//! What the subcommands share: how a command fails ([`Failure`]) and the
//! exit status each failure gives, and the parser of `--timeout` seconds.

use std::fmt::Display;
use std::io;
use std::time::Duration;

/// Exit status for an error.
pub(crate) const EXIT_ERROR: u8 = 1;
/// Exit status when `--timeout` expires (as `timeout(1)`).
pub(crate) const EXIT_TIMEOUT: u8 = 124;
/// Exit status of `watch` and `top` after SIGINT/SIGTERM (128 + SIGINT, as
/// a shell reports a command that SIGINT ended).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds (e.g. 2 or 0.5)"))
}

/// How a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Print `shmbus: MESSAGE`, exit [`EXIT_ERROR`].
    Error(String),
    /// Print `shmbus: MESSAGE`, exit [`EXIT_TIMEOUT`].
    Timeout(String),
    /// Standard output was closed by its reader: stop quietly.
    StdoutClosed,
    /// SIGINT or SIGTERM arrived (`top`): exit [`EXIT_INTERRUPTED`].
    Interrupted,
}

pub(crate) fn error(e: impl Display) -> Failure {
    Failure::Error(e.to_string())
}

/// A failure writing standard output.
pub(crate) fn stdout_error(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Error(format!("writing standard output: {e}"))
    }
}
