//! Bus and channel names: `[A-Za-z0-9._-]`, not `.` or `..`.

use core::fmt;

/// Longest bus name in bytes.
pub const MAX_BUS_NAME: usize = 200;
pub use crate::layout::MAX_CHANNEL_NAME;

/// Why a name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// Longer than the limit.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A byte outside `[A-Za-z0-9._-]` (a `/` among them).
    BadByte {
        /// The byte.
        byte: u8,
        /// Where it is.
        at: usize,
    },
    /// `.` or `..`.
    Dots,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "name is empty"),
            Self::TooLong { len, max } => write!(f, "name is {len} bytes, longer than {max}"),
            Self::BadByte { byte, at } => write!(
                f,
                "name has {:?} at byte {at}; names use only letters, digits, '.', '_' and '-'",
                char::from(byte)
            ),
            Self::Dots => write!(f, "name may not be '.' or '..'"),
        }
    }
}

impl std::error::Error for NameError {}

fn check(name: &str, max: usize) -> Result<(), NameError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(NameError::Empty);
    }
    if b.len() > max {
        return Err(NameError::TooLong { len: b.len(), max });
    }
    if let Some(at) = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-'))
    {
        return Err(NameError::BadByte { byte: b[at], at });
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    Ok(())
}

/// Checks a bus name (the file name under `/dev/shm`).
///
/// # Errors
/// [`NameError`] saying what is wrong.
///
/// # Examples
/// ```
/// assert!(shmbus::name::validate_bus("prices-1").is_ok());
/// assert!(shmbus::name::validate_bus("../etc").is_err());
/// ```
pub fn validate_bus(name: &str) -> Result<(), NameError> {
    check(name, MAX_BUS_NAME)
}

/// Checks a channel name.
///
/// # Errors
/// [`NameError`] saying what is wrong.
///
/// # Examples
/// ```
/// assert!(shmbus::name::validate_channel("orders").is_ok());
/// assert!(shmbus::name::validate_channel("a/b").is_err());
/// ```
pub fn validate_channel(name: &str) -> Result<(), NameError> {
    check(name, MAX_CHANNEL_NAME)
}

/// Where the files of bus `name` live. All are under `/dev/shm`:
/// the segment itself, the daemon's control socket and its lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusPaths {
    /// `/dev/shm/NAME`: the shared segment.
    pub segment: std::path::PathBuf,
    /// The control socket. `sun_path` holds 107 bytes, so a long bus name is
    /// replaced by its 64-bit FNV-1a hash in hex.
    pub socket: std::path::PathBuf,
    /// `/dev/shm/.shmbus-NAME.lock`: held with `flock` by the serving daemon.
    pub lock: std::path::PathBuf,
}

/// The directory that holds segments, sockets and lock files.
pub const SHM_DIR: &str = "/dev/shm";

impl BusPaths {
    /// Paths for a (validated) bus name.
    pub fn new(name: &str) -> Self {
        let dir = std::path::Path::new(SHM_DIR);
        let sock = format!(".shmbus-{name}.sock");
        let sock = if SHM_DIR.len() + 1 + sock.len() <= 107 {
            sock
        } else {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in name.as_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!(".shmbus-{h:016x}.sock")
        };
        Self {
            segment: dir.join(name),
            socket: dir.join(sock),
            lock: dir.join(format!(".shmbus-{name}.lock")),
        }
    }
}
