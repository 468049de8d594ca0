//! The `shmbusd` command line.
//!
//! Flags are only parsed here; [`crate::config`] merges them with the optional
//! TOML file and checks every value. Sizes and capacities are kept as strings so
//! that both places accept the same suffixes (`64K`, `32M`, `1G`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Command-line arguments of `shmbusd`.
///
/// Precedence, highest first: these flags, the `--config` file, `$SHMBUS_BUS`
/// (bus name only), the built-in defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(
    name = "shmbusd",
    version,
    about = "Serve a shmbus shared-memory message bus",
    long_about = "Serve a shmbus shared-memory message bus.\n\n\
        Creates the segment /dev/shm/NAME and a control socket beside it, serves \
        clients until SIGINT or SIGTERM, then removes both. SIGHUP logs a status \
        line (peers, channels, arena use) and serving goes on. Without --name (or a \
        name in the config file) the bus is $SHMBUS_BUS, else \"shmbus\".\n\n\
        Log: one line per event on stderr with a timestamp and level; RUST_LOG \
        filters it (default info; e.g. RUST_LOG=warn).\n\n\
        Access: a client is accepted if its uid (SO_PEERCRED) is the daemon's, root, \
        one given with --allow-uid, or if one of its groups is given with \
        --allow-group; others get a clear refusal. The segment and socket share one \
        --mode, which must let every allowed client open them.",
    after_help = "Exit status: 0 after a clean shutdown, 1 if the bus could not be \
        served (another daemon serves it, /dev/shm is full, ...), 2 for a bad \
        command line or configuration."
)]
pub struct Cli {
    /// Bus name: [A-Za-z0-9._-], 1-200 bytes [default: $SHMBUS_BUS, else "shmbus"].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Segment size in bytes; K, M, G, T suffixes are powers of 1024 [default: 32M].
    #[arg(long, value_name = "BYTES")]
    pub size: Option<String>,

    /// Number of peer slots: at most this many clients at once [default: 128].
    #[arg(long, value_name = "N")]
    pub max_peers: Option<u32>,

    /// Number of directory entries: at most this many channels [default: 256].
    #[arg(long, value_name = "N")]
    pub max_channels: Option<u32>,

    /// Permissions of the segment and the socket, in octal [default: 0600].
    /// Must let the users and groups allowed below open both (read and
    /// write): --allow-uid needs the "other" bits (e.g. 0666), --allow-group
    /// the group bits (e.g. 0660).
    #[arg(long, value_name = "OCTAL")]
    pub mode: Option<String>,

    /// Also accept clients of this uid (besides the daemon's own uid and
    /// root, which are always accepted). Repeatable; replaces the config
    /// file's `allow_uids`.
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uids: Vec<u32>,

    /// Also accept clients whose primary or supplementary group is GID; the
    /// segment and socket get the first such group. Repeatable; replaces the
    /// config file's `allow_groups`.
    #[arg(long = "allow-group", value_name = "GID")]
    pub allow_groups: Vec<u32>,

    /// Create a pipe at start; CAPACITY is a power of two in bytes [default: 64K].
    /// Repeatable. Overrides a pipe NAME of the config file (a CAPACITY left
    /// out keeps the file's), as --queue, --value and --array do for theirs.
    #[arg(long = "pipe", value_name = "NAME[:CAPACITY]")]
    pub pipes: Vec<String>,

    /// Create an MPMC queue at start: SLOTS a power of two [default: 1024],
    /// SLOT_BYTES the largest message [default: 256]; an empty SLOTS
    /// (NAME::SLOT_BYTES) takes the default, or the config file's. Repeatable.
    #[arg(long = "queue", value_name = "NAME[:SLOTS[:SLOT_BYTES]]")]
    pub queues: Vec<String>,

    /// Create a topic at start (publish once, every subscriber receives):
    /// SLOTS a power of two [default: 1024], SLOT_BYTES the largest message
    /// [default: 256], `:lossy` for lossy delivery [default: lossless, up to
    /// 64 subscribers]; an empty SLOTS (NAME::SLOT_BYTES) takes the default,
    /// or the config file's. Repeatable.
    #[arg(long = "topic", value_name = "NAME[:SLOTS[:SLOT_BYTES]][:lossy]")]
    pub topics: Vec<String>,

    /// Create a typed value at start. TYPE: i8 u8 i16 u16 i32 u32 i64 u64 f32
    /// f64, or a Python typecode b B h H i I l L q Q f d. Repeatable.
    #[arg(long = "value", value_name = "NAME:TYPE")]
    pub values: Vec<String>,

    /// Create a typed array of LEN elements at start (TYPE as for --value).
    /// Repeatable.
    #[arg(long = "array", value_name = "NAME:TYPE:LEN")]
    pub arrays: Vec<String>,

    /// TOML file with the same settings; flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log only warnings and errors, not notable events (info level).
    #[arg(long, short)]
    pub quiet: bool,
}

impl Cli {
    /// Parses `args` (the first item is the program name), as `main` does with
    /// the process's own arguments.
    ///
    /// # Errors
    /// A [`clap::Error`] for a bad command line, or for `--help` / `--version`
    /// (whose [`clap::Error::exit_code`] is 0); `print()` it.
    ///
    /// # Examples
    /// ```
    /// let cli = shmbus_daemon::Cli::parse_args(["shmbusd", "--name", "demo"]).unwrap();
    /// assert_eq!(cli.name.as_deref(), Some("demo"));
    /// ```
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_every_flag() {
        let c = Cli::parse_args([
            "shmbusd",
            "--name",
            "b",
            "--size",
            "64M",
            "--max-peers",
            "8",
            "--max-channels",
            "9",
            "--mode",
            "0640",
            "--allow-uid",
            "65534",
            "--allow-uid",
            "7",
            "--allow-group",
            "100",
            "--pipe",
            "a",
            "--pipe",
            "c:4096",
            "--config",
            "x.toml",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("b"));
        assert_eq!(c.size.as_deref(), Some("64M"));
        assert_eq!(c.max_peers, Some(8));
        assert_eq!(c.max_channels, Some(9));
        assert_eq!(c.mode.as_deref(), Some("0640"));
        assert_eq!(c.allow_uids, [65534, 7]);
        assert_eq!(c.allow_groups, [100]);
        assert_eq!(c.pipes, ["a", "c:4096"]);
        assert_eq!(c.config, Some(PathBuf::from("x.toml")));
        assert!(c.quiet);
    }
}
