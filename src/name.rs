//! Bus and channel names: `[A-Za-z0-9._-]`, not `.` or `..`.

use core::fmt;

/// Longest bus name in bytes.
pub const MAX_BUS_NAME: usize = 200;

/// Bus used when none is named and [`BUS_ENV`] is unset or empty: by the
/// daemon without `--name`, by `Bus::connect` and by the `shmbus` command.
///
/// # Examples
/// ```
/// assert_eq!(shmbus::name::DEFAULT_BUS, "shmbus");
/// ```
pub const DEFAULT_BUS: &str = "shmbus";

/// Environment variable naming the default bus, read by the daemon (after
/// `--name` and its config file), `Bus::connect` and the `shmbus` command.
pub const BUS_ENV: &str = "SHMBUS_BUS";

/// The bus named by [`BUS_ENV`], if it is set and not empty (a value that
/// is not UTF-8 is converted lossily, so that it fails validation with a
/// message instead of being ignored).
///
/// # Examples
/// ```
/// std::env::set_var(shmbus::name::BUS_ENV, "");
/// assert_eq!(shmbus::name::env_bus_name(), None);
/// ```
pub fn env_bus_name() -> Option<String> {
    std::env::var_os(BUS_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}

/// The bus used when none is named: [`env_bus_name`], else [`DEFAULT_BUS`].
///
/// # Examples
/// ```
/// std::env::remove_var(shmbus::name::BUS_ENV);
/// assert_eq!(shmbus::name::default_bus_name(), "shmbus");
/// ```
pub fn default_bus_name() -> String {
    env_bus_name().unwrap_or_else(|| DEFAULT_BUS.to_owned())
}
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
    /// A character outside `[A-Za-z0-9._-]` (a `/` among them).
    BadChar {
        /// The character (all of it, also when it takes several bytes).
        ch: char,
        /// Its byte offset in the name.
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
            Self::BadChar { ch, at } => {
                write!(f, "name has {ch:?}")?;
                if !ch.is_ascii() {
                    write!(f, " (U+{:04X})", u32::from(ch))?;
                }
                write!(
                    f,
                    " at byte {at}; names use only ASCII letters, digits, '.', '_' and '-'"
                )
            }
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
        // `at` is the first byte of a character: every byte of a multi-byte
        // UTF-8 sequence is non-ASCII, so its lead byte is found first.
        let ch = name[at..]
            .chars()
            .next()
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        return Err(NameError::BadChar { ch, at });
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

/// Where the files of bus `name` live. All are under [`SHM_DIR`]:
///
/// | file | path |
/// |---|---|
/// | segment | `/dev/shm/NAME` |
/// | lock | `/dev/shm/.shmbus@NAME.lock` |
/// | control socket | `/dev/shm/.shmbus@NAME.sock` |
///
/// # The mapping is injective
/// Two different (valid) bus names never share a file, and no file of one
/// bus is a file of another:
/// - a segment's file name is the bus name, made only of `[A-Za-z0-9._-]`;
///   every lock and socket file name contains `@`, which no name may, so a
///   segment is never another bus's lock or socket;
/// - lock and socket names are a fixed prefix, the whole name, and a fixed
///   suffix that differs between them (`.lock` / `.sock`), so stripping the
///   prefix and suffix gives back the name;
/// - nothing is hashed or shortened: a socket path longer than `sun_path`
///   (107 bytes) is reached through an `O_PATH` descriptor instead
///   ([`connect_socket`]); the daemon binds it under a short temporary name
///   ([`bind_temp_name`], which has `+` in place of `@`, so it is no bus's
///   file either) and renames it into place.
///
/// The unit tests check all of this on names built to collide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusPaths {
    /// `/dev/shm/NAME`: the shared segment.
    pub segment: std::path::PathBuf,
    /// `/dev/shm/.shmbus@NAME.sock`: the control socket. It may be longer
    /// than `sun_path`; connect with [`connect_socket`].
    pub socket: std::path::PathBuf,
    /// `/dev/shm/.shmbus@NAME.lock`: held with `flock` by the serving daemon.
    pub lock: std::path::PathBuf,
}

/// The directory that holds segments, sockets and lock files.
pub const SHM_DIR: &str = "/dev/shm";

/// Prefix of lock and socket file names; `@` is not allowed in bus names.
const FILE_PREFIX: &str = ".shmbus@";

impl BusPaths {
    /// Paths for a (validated) bus name.
    ///
    /// # Examples
    /// ```
    /// let p = shmbus::name::BusPaths::new("prices");
    /// assert_eq!(p.segment.to_str(), Some("/dev/shm/prices"));
    /// assert_eq!(p.socket.to_str(), Some("/dev/shm/.shmbus@prices.sock"));
    /// assert_eq!(p.lock.to_str(), Some("/dev/shm/.shmbus@prices.lock"));
    /// ```
    pub fn new(name: &str) -> Self {
        debug_assert!(validate_bus(name).is_ok(), "unvalidated bus name {name:?}");
        let dir = std::path::Path::new(SHM_DIR);
        Self {
            segment: dir.join(name),
            socket: dir.join(format!("{FILE_PREFIX}{name}.sock")),
            lock: dir.join(format!("{FILE_PREFIX}{name}.lock")),
        }
    }
}

/// A file name in [`SHM_DIR`] for binding a control socket before it is
/// renamed to [`BusPaths::socket`]: short enough for `sun_path` whatever the
/// bus name, unique per process and `tag`, and never the file of any bus (it
/// contains `+`, which names may not, and does not start with the `@` prefix).
///
/// # Examples
/// ```
/// let t = shmbus::name::bind_temp_name(42, 7);
/// assert_eq!(t.to_str(), Some("/dev/shm/.shmbus+42-0000000000000007.tmp"));
/// ```
pub fn bind_temp_name(pid: u32, tag: u64) -> std::path::PathBuf {
    std::path::Path::new(SHM_DIR).join(format!(".shmbus+{pid}-{tag:016x}.tmp"))
}

/// Longest path `connect` and `bind` take in `sun_path` (108 bytes with the
/// terminating NUL).
pub const SUN_PATH_MAX: usize = 107;

/// Connects to the Unix stream socket at `path`, however long the path.
///
/// A path that fits `sun_path` is connected to directly. A longer one is
/// opened with `O_PATH | O_NOFOLLOW` and connected to as
/// `/proc/self/fd/N`: the kernel follows that link to the socket's inode
/// (needs `/proc`). Client and daemon (which probes stale sockets) both
/// reach a bus's socket through this function.
///
/// # Errors
/// The `connect` error (`NotFound`, `ConnectionRefused`, `PermissionDenied`,
/// ...), or the `open` error for a long path.
///
/// # Examples
/// ```no_run
/// let p = shmbus::name::BusPaths::new("prices");
/// let stream = shmbus::name::connect_socket(&p.socket)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect_socket(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::UnixStream;
    if path.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
        return UnixStream::connect(path);
    }
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    use std::os::fd::AsRawFd as _;
    UnixStream::connect(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// The old scheme's hash: the socket of a long name was
    /// `.shmbus-<this in hex>.sock`, the socket of the bus named by the hex.
    fn fnv1a(name: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in name.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    #[test]
    fn no_two_names_share_a_file() {
        let long = "L".repeat(MAX_BUS_NAME);
        let mut names = vec![
            "a".to_owned(),
            "A".to_owned(),
            "a.lock".to_owned(),
            "a.sock".to_owned(),
            ".shmbus-a.lock".to_owned(),
            ".shmbus-a.sock".to_owned(),
            "shmbus".to_owned(),
            format!("{:016x}", fnv1a(&long)),
            long.clone(),
            "L".repeat(MAX_BUS_NAME - 1),
            "x".repeat(98),
            "x".repeat(99),
            "x".repeat(100),
        ];
        for n in names.clone() {
            names.push(format!("{n}.lock"));
            names.push(format!("{n}.sock"));
            names.push(format!(".{n}"));
        }
        names.retain(|n| validate_bus(n).is_ok());
        names.sort();
        names.dedup();
        let mut owner: HashMap<PathBuf, (&str, &str)> = HashMap::new();
        for n in &names {
            let p = BusPaths::new(n);
            for (what, f) in [
                ("segment", p.segment),
                ("socket", p.socket),
                ("lock", p.lock),
            ] {
                if let Some(prev) = owner.insert(f.clone(), (n, what)) {
                    panic!(
                        "{} is the {what} of {n:?} and the {} of {:?}",
                        f.display(),
                        prev.1,
                        prev.0
                    );
                }
            }
        }
        // Temporary bind names are nobody's file.
        assert!(!owner.contains_key(&bind_temp_name(1, 2)));
        assert!(names.len() > 30, "{names:?}");
    }

    #[test]
    fn names_come_back_from_their_files() {
        for n in ["a", ".a", "a.sock", &"z".repeat(MAX_BUS_NAME)] {
            let p = BusPaths::new(n);
            let file = |f: &PathBuf| f.file_name().unwrap().to_str().unwrap().to_owned();
            assert_eq!(file(&p.segment), n);
            let sock = file(&p.socket);
            let lock = file(&p.lock);
            assert_eq!(
                sock.strip_prefix(FILE_PREFIX)
                    .and_then(|s| s.strip_suffix(".sock")),
                Some(n)
            );
            assert_eq!(
                lock.strip_prefix(FILE_PREFIX)
                    .and_then(|s| s.strip_suffix(".lock")),
                Some(n)
            );
            // `@` marks every non-segment file, and no name has it.
            assert!(sock.contains('@') && lock.contains('@') && validate_bus(&sock).is_err());
            assert!(validate_bus(&lock).is_err());
        }
        let t = bind_temp_name(u32::MAX, u64::MAX);
        assert!(t.as_os_str().len() <= SUN_PATH_MAX);
        assert!(validate_bus(t.file_name().unwrap().to_str().unwrap()).is_err());
    }

    #[test]
    fn bad_characters_are_shown_whole() {
        let e = validate_bus("caf\u{e9}").unwrap_err();
        assert_eq!(
            e,
            NameError::BadChar {
                ch: '\u{e9}',
                at: 3
            }
        );
        assert_eq!(
            e.to_string(),
            "name has '\u{e9}' (U+00E9) at byte 3; names use only ASCII letters, digits, '.', '_' and '-'"
        );
        let e = validate_bus("a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "name has '/' at byte 1; names use only ASCII letters, digits, '.', '_' and '-'"
        );
        assert!(validate_bus("a\nb")
            .unwrap_err()
            .to_string()
            .starts_with("name has '\\n' at byte 1"));
        assert_eq!(
            validate_bus("a@b").unwrap_err(),
            NameError::BadChar { ch: '@', at: 1 }
        );
    }
}
