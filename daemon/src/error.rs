//! [`Error`]: why the daemon could not start or stopped with a failure.

use std::fmt;
use std::io;

/// Why the daemon could not start or stopped with a failure.
///
/// Every variant's `Display` is one line meant for a person; [`exit_code`]
/// gives the status the binary exits with.
///
/// [`exit_code`]: Error::exit_code
#[derive(Debug)]
pub enum Error {
    /// The command line or config file is wrong (exit status 2).
    Config(String),
    /// Another daemon already serves this bus (exit status 1).
    AlreadyServed {
        /// The bus name.
        bus: String,
        /// The serving daemon's pid, if it could be found out.
        pid: Option<u32>,
    },
    /// A system call failed (exit status 1).
    Io {
        /// What the daemon was doing, naming the file involved.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The daemon could not go on for another reason (exit status 1).
    Failed(String),
}

impl Error {
    /// The exit status for this error: 2 for a usage error, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) | Self::Failed(m) => f.write_str(m),
            Self::AlreadyServed { bus, pid } => {
                write!(f, "bus {bus:?} is already served by a running shmbusd")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, "; stop it first, or pick another bus with --name")
            }
            Self::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
