//! Command line + TOML file → a validated [`Spec`].
//!
//! Everything a user can get wrong is checked here, before any file is touched:
//! the bus and channel names, sizes, the mode, every channel's parameters, and
//! whether the declared channels fit the segment. A [`Spec`] is therefore always servable
//! except for what only the system can refuse (a held lock, a full `/dev/shm`).
//!
//! # The config file
//! ```toml
//! name = "prices"          # bus name
//! size = "64M"             # or an integer number of bytes
//! max_peers = 128
//! max_channels = 256
//! mode = "0640"            # a string in octal, or a TOML octal integer 0o640
//! allow_uids = [1001]      # more uids to accept (needs "other" rw bits in mode)
//! allow_groups = [100]     # more groups to accept (needs group rw bits in mode)
//! quiet = false
//!
//! [[pipe]]
//! name = "ticks"
//! capacity = 4096          # or "4K"; default 64K
//!
//! [[queue]]
//! name = "jobs"
//! slots = 1024             # a power of two; default 1024
//! slot_size = 256          # largest message in bytes, or "1K"; default 256
//!
//! [[value]]
//! name = "counter"
//! type = "i64"             # or a Python typecode: "q"
//!
//! [[array]]
//! name = "prices"
//! type = "d"               # f64
//! len = 16
//!
//! [[topic]]
//! name = "quotes"
//! slots = 1024             # a power of two; default 1024
//! slot_size = 256          # largest message in bytes, or "1K"; default 256
//! lossy = false            # default false: publishers wait for the slowest subscriber
//! max_subscribers = 64     # default 64
//! ```
//! Unknown keys are errors, so a typo cannot silently fall back to a default.
//! Each channel kind has its own array of tables (`[[pipe]]`, `[[queue]]`,
//! `[[value]]`, `[[array]]`) and its own flag; what a channel is made with is
//! [`shmbus::params::ChannelParams`], shared with the protocol and the
//! clients. A new kind adds one field to `FileConfig` (`file.rs`), a file and
//! a flag collector in `channels.rs`, and its variant in the core. Values and
//! arrays take `type` as a Rust name (`f64`) or a Python typecode (`d`).
//! Sizes take the suffixes of [`shmbus::size::parse_size`].
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Spec`]: merging the settings, the checks that the channels fit |
//! | `file.rs` | the file as written, and its size and mode values |
//! | `channels.rs` | the declared channels: one collector per kind, one override rule |
//! | `access.rs` | the mode, the allowed uids and groups, and their check |
//!
//! # Precedence
//! A command-line flag beats the file, which beats `$SHMBUS_BUS` (bus name
//! only), which beats the default. `--pipe`, `--queue`, `--value` and
//! `--array` add a channel, or, if the file declares that name with the same
//! kind, override it: each parameter the flag gives replaces the file's, each
//! it leaves out is kept (`--pipe ticks` keeps the file's capacity,
//! `--queue jobs::1K` its slots). A name declared twice in the file or on the
//! command line, or by a flag of another kind than the file's, is an error.
//! `--allow-uid` / `--allow-group`, when given, replace the file's lists.
//!
//! # Access
//! The daemon accepts a client whose uid (`SO_PEERCRED`) is its own effective
//! uid, root, or in `allow_uids`, or whose primary or supplementary group is in
//! `allow_groups`; see [`Spec::allows`]. The segment and the socket share one
//! mode, and the first allowed group becomes their group. A mode that would
//! keep an allowed client out is refused at start, never widened behind the
//! user's back: an allowed uid other than the daemon's and root's needs the
//! "other" read and write bits (`0o006`), an allowed group the group bits
//! (`0o060`), and a second allowed group the "other" bits as well (a file has
//! one group). A wider mode than needed is allowed: the daemon's uid check
//! still refuses everyone else at `HELLO`, but they can map the segment.

mod access;
mod channels;
mod file;

use std::fmt::Write as _;

use shmbus::layout::Geometry;
use shmbus::name::{self, BusPaths, DEFAULT_BUS};
use shmbus::size::parse_size;

use self::access::{check_access, Access};
use self::file::{load_file, value_mode, value_size, FileConfig};
use crate::arena::align_line;
use crate::cli::Cli;
use crate::error::Error;

pub use self::access::parse_mode;
pub use self::channels::ChannelSpec;

/// Default segment size: 32 MiB.
pub const DEFAULT_SIZE: u64 = 32 << 20;
/// Default number of peer slots.
pub const DEFAULT_MAX_PEERS: u32 = 128;
/// Default number of directory entries.
pub const DEFAULT_MAX_CHANNELS: u32 = 256;
/// Default permissions of the segment and the socket.
pub const DEFAULT_MODE: u32 = 0o600;

/// Everything the daemon needs to serve a bus, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    name: String,
    paths: BusPaths,
    geometry: Geometry,
    mode: u32,
    access: Access,
    quiet: bool,
    channels: Vec<ChannelSpec>,
}

impl Spec {
    /// Merges the command line with its `--config` file (if any) and the
    /// environment, and checks the result.
    ///
    /// # Errors
    /// [`Error::Config`] with a message naming the bad value and the rule it
    /// breaks (the binary exits with status 2).
    ///
    /// # Examples
    /// ```
    /// use shmbus_daemon::{Cli, Spec};
    /// let cli = Cli::parse_args(["shmbusd", "--name", "demo", "--pipe", "a:4096"]).unwrap();
    /// let spec = Spec::from_cli(cli).unwrap();
    /// assert_eq!(spec.name(), "demo");
    /// assert_eq!(spec.channels().len(), 1);
    /// assert!(Spec::from_cli(Cli::parse_args(["shmbusd", "--name", "a/b"]).unwrap()).is_err());
    /// ```
    pub fn from_cli(cli: Cli) -> Result<Self, Error> {
        let file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file, name::env_bus_name())
    }

    fn merge(cli: Cli, file: FileConfig, env_bus: Option<String>) -> Result<Self, Error> {
        let name = cli
            .name
            .clone()
            .or_else(|| file.name.clone())
            .or(env_bus)
            .unwrap_or_else(|| DEFAULT_BUS.to_owned());
        name::validate_bus(&name)
            .map_err(|e| Error::Config(format!("bad bus name {name:?}: {e}")))?;

        let size = match (&cli.size, &file.size) {
            (Some(s), _) => parse_size(s).map_err(|e| Error::Config(format!("--size: {e}")))?,
            (None, Some(v)) => {
                value_size(v).map_err(|e| Error::Config(format!("config `size`: {e}")))?
            }
            (None, None) => DEFAULT_SIZE,
        };
        let peers = cli
            .max_peers
            .or(file.max_peers)
            .unwrap_or(DEFAULT_MAX_PEERS);
        let channels_max = cli
            .max_channels
            .or(file.max_channels)
            .unwrap_or(DEFAULT_MAX_CHANNELS);
        let mode = match (&cli.mode, &file.mode) {
            (Some(s), _) => parse_mode(s).map_err(|e| Error::Config(format!("--mode: {e}")))?,
            (None, Some(v)) => {
                value_mode(v).map_err(|e| Error::Config(format!("config `mode`: {e}")))?
            }
            (None, None) => DEFAULT_MODE,
        };
        // Flags, when given, replace the file's lists.
        let pick = |flags: &Vec<u32>, file: &Option<Vec<u32>>| {
            if flags.is_empty() {
                file.clone().unwrap_or_default()
            } else {
                flags.clone()
            }
        };
        let access = Access {
            uids: pick(&cli.allow_uids, &file.allow_uids),
            groups: pick(&cli.allow_groups, &file.allow_groups),
        };
        check_access(
            mode,
            &access.uids,
            &access.groups,
            rustix::process::geteuid().as_raw(),
        )
        .map_err(Error::Config)?;
        let quiet = cli.quiet || file.quiet.unwrap_or(false);

        let channels = channels::collect(&cli, &file)?;

        let geometry = Geometry::plan(size, peers, channels_max).map_err(|e| {
            Error::Config(format!(
                "cannot lay out a segment of {size} bytes with {peers} peers and \
                 {channels_max} channels: {e}"
            ))
        })?;
        if channels.len() > channels_max as usize {
            return Err(Error::Config(format!(
                "{} channels are declared but --max-channels is {channels_max}",
                channels.len()
            )));
        }
        let mut need: u64 = 0;
        for c in &channels {
            need = need.saturating_add(align_line(c.params.body_len()));
        }
        if need > geometry.arena_len {
            let mut list = String::new();
            for c in &channels {
                let _ = write!(list, " {}", c.name);
            }
            return Err(Error::Config(format!(
                "the declared channels ({}) need {need} bytes of arena, but a segment of \
                 {size} bytes leaves only {}; raise --size",
                list.trim_start(),
                geometry.arena_len
            )));
        }

        Ok(Self {
            paths: BusPaths::new(&name),
            name,
            geometry,
            mode,
            access,
            quiet,
            channels,
        })
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the bus's segment, socket and lock file live.
    pub fn paths(&self) -> &BusPaths {
        &self.paths
    }

    /// The planned layout; `geometry().total_size` is the segment size (the
    /// requested size rounded down to a whole page).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Permissions of the segment and the socket (`0o600` by default).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Uids accepted besides the daemon's effective uid and root.
    pub fn allow_uids(&self) -> &[u32] {
        &self.access.uids
    }

    /// Groups whose members (primary or supplementary) are accepted; the
    /// first is the group of the segment and the socket.
    pub fn allow_groups(&self) -> &[u32] {
        &self.access.groups
    }

    /// Whether a client of `uid` and primary group `gid` may use the bus,
    /// given the daemon's effective uid `daemon_uid`. `in_groups` is asked
    /// (only if needed) whether the client's supplementary groups meet the
    /// given list.
    ///
    /// # Examples
    /// ```
    /// use shmbus_daemon::{Cli, Spec};
    /// let cli = Cli::parse_args(["shmbusd", "--name", "d", "--mode", "0666", "--allow-uid", "7"]);
    /// let spec = Spec::from_cli(cli.unwrap()).unwrap();
    /// assert!(spec.allows(7, 7, 1000, |_| false));
    /// assert!(spec.allows(1000, 1000, 1000, |_| false));
    /// assert!(spec.allows(0, 0, 1000, |_| false));
    /// assert!(!spec.allows(8, 8, 1000, |_| false));
    /// ```
    pub fn allows(
        &self,
        uid: u32,
        gid: u32,
        daemon_uid: u32,
        in_groups: impl FnOnce(&[u32]) -> bool,
    ) -> bool {
        self.access.allows(uid, gid, daemon_uid, in_groups)
    }

    /// Who may use the bus, for a refusal message: "uid 0 (root), uid 1000
    /// (the daemon's), uid 7 and members of group 100".
    pub fn describe_access(&self, daemon_uid: u32) -> String {
        self.access.describe(daemon_uid)
    }

    /// Whether to log only errors.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Channels to create before the bus is published.
    pub fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }
}

#[cfg(test)]
mod tests {
    use shmbus::layout::Kind;
    use shmbus::params::ChannelParams;
    use shmbus::pipe::DEFAULT_CAPACITY;

    use super::file::parse_file;
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["shmbusd"];
        v.extend_from_slice(args);
        Cli::parse_args(v).unwrap()
    }

    fn spec(args: &[&str], file: &str, env: Option<&str>) -> Result<Spec, String> {
        let f = parse_file(file)?;
        Spec::merge(cli(args), f, env.map(str::to_owned)).map_err(|e| e.to_string())
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o660"), Ok(0o660));
        assert_eq!(parse_mode("0777"), Ok(0o777));
        for bad in ["", "0800", "rw", "04600", "0400", "0066", "12345"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults() {
        let s = spec(&[], "", None).unwrap();
        assert_eq!(s.name(), DEFAULT_BUS);
        assert_eq!(s.geometry().total_size, DEFAULT_SIZE);
        assert_eq!(s.geometry().peers_count, DEFAULT_MAX_PEERS);
        assert_eq!(s.geometry().dir_count, DEFAULT_MAX_CHANNELS);
        assert_eq!(s.mode(), 0o600);
        assert!(!s.quiet());
        assert!(s.channels().is_empty());
        assert_eq!(s.paths().segment, std::path::Path::new("/dev/shm/shmbus"));
    }

    #[test]
    fn name_precedence() {
        assert_eq!(spec(&[], "", Some("e")).unwrap().name(), "e");
        assert_eq!(spec(&[], "name = \"f\"", Some("e")).unwrap().name(), "f");
        assert_eq!(
            spec(&["--name", "c"], "name = \"f\"", Some("e"))
                .unwrap()
                .name(),
            "c"
        );
        let e = spec(&["--name", "a/b"], "", None).unwrap_err();
        assert!(e.contains("a/b") && e.contains("'/'"), "{e}");
        assert!(spec(&["--name", ".."], "", None).is_err());
        assert!(spec(&[], "", Some("x y")).is_err());
    }

    #[test]
    fn file_settings() {
        let s = spec(
            &[],
            "name = \"x\"\nsize = \"4M\"\nmax_peers = 4\nmax_channels = 8\nmode = 0o640\n\
             quiet = true\n[[pipe]]\nname = \"a\"\ncapacity = 4096\n[[pipe]]\nname = \"b\"\n",
            None,
        )
        .unwrap();
        assert_eq!(s.geometry().total_size, 4 << 20);
        assert_eq!(s.geometry().peers_count, 4);
        assert_eq!(s.geometry().dir_count, 8);
        assert_eq!(s.mode(), 0o640);
        assert!(s.quiet());
        assert_eq!(
            s.channels(),
            [
                ChannelSpec {
                    name: "a".into(),
                    params: ChannelParams::Pipe { capacity: 4096 }
                },
                ChannelSpec {
                    name: "b".into(),
                    params: ChannelParams::Pipe {
                        capacity: DEFAULT_CAPACITY
                    }
                },
            ]
        );
        assert_eq!(spec(&[], "mode = \"0660\"", None).unwrap().mode(), 0o660);
        assert_eq!(
            spec(&[], "size = 8388608", None)
                .unwrap()
                .geometry()
                .total_size,
            8 << 20
        );
    }

    #[test]
    fn file_errors() {
        for (bad, needle) in [
            ("nmae = \"x\"", "nmae"),
            ("size = -1", "negative"),
            ("size = true", "boolean"),
            ("mode = 640", "decimal"),
            ("[[pipe]]\nname = \"a\"\ncapacity = 100", "power of two"),
            ("[[pipe]]\nname = \"a/b\"", "bad channel name"),
            ("[[pipe]]\nname = \"a\"\n[[pipe]]\nname = \"a\"", "twice"),
            ("[[pipe]]\nname = \"a\"\ncolour = 1", "colour"),
            ("[[queue]]\nname = \"a\"\nslots = 3", "power of two"),
            ("[[queue]]\nname = \"a\"\nslot_size = 0", "slot size"),
            ("[[queue]]\nname = \"a\"\ncolour = 1", "colour"),
            ("name = ", ""),
        ] {
            let e = spec(&[], bad, None).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn flags_override_and_add() {
        let file = "size = \"4M\"\nmode = \"0600\"\n[[pipe]]\nname = \"a\"\ncapacity = 4096\n";
        let s = spec(
            &[
                "--size", "8M", "--mode", "0660", "--pipe", "b:1K", "--pipe", "a:8192",
            ],
            file,
            None,
        )
        .unwrap();
        assert_eq!(s.geometry().total_size, 8 << 20);
        assert_eq!(s.mode(), 0o660);
        let caps: Vec<_> = s
            .channels()
            .iter()
            .map(|c| (c.name.as_str(), c.params.words()[0]))
            .collect();
        assert_eq!(caps, [("a", 8192), ("b", 1024)]);
        // A flag without a capacity keeps the file's.
        let s = spec(&["--pipe", "a"], file, None).unwrap();
        assert_eq!(s.channels()[0].params.words()[0], 4096);
        // The same pipe twice on the command line is an error.
        assert!(spec(&["--pipe", "c", "--pipe", "c:128"], "", None).is_err());
    }

    /// `[[topic]]` and `--topic NAME[:SLOTS[:SLOT_BYTES]][:lossy]`: the mode
    /// word carries the lossy bit and the largest number of subscribers; a
    /// flag overrides the file's topic as the other kinds' flags do.
    #[test]
    fn topics_from_the_file_and_the_flags() {
        use shmbus::topic::{mode_word, DEFAULT_MAX_SUBSCRIBERS as SUBS};
        let file = "[[topic]]\nname = \"t\"\nslots = 8\nslot_size = \"1K\"\n\
                    max_subscribers = 4\n";
        let words = |s: &Spec| -> Vec<(String, [u64; 3])> {
            s.channels()
                .iter()
                .map(|c| (c.name.clone(), c.params.words()))
                .collect()
        };
        let s = spec(&[], file, None).unwrap();
        assert_eq!(
            words(&s),
            [("t".to_owned(), [8, 1024, mode_word(false, 4)])]
        );
        let s = spec(&["--topic", "t:16", "--topic", "u::64:lossy"], file, None).unwrap();
        let dq = shmbus::topic::DEFAULT_SLOTS;
        assert_eq!(
            words(&s),
            [
                ("t".to_owned(), [16, 1024, mode_word(false, 4)]),
                ("u".to_owned(), [dq, 64, mode_word(true, SUBS)]),
            ]
        );
        let e = spec(&["--topic", "v:3"], "", None).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        let e = spec(&["--topic", "v:x"], "", None).unwrap_err();
        assert!(e.contains("not a whole number"), "{e}");
        let e = spec(&[], "[[topic]]\nname = \"t\"\nmax_subscribers = 0\n", None).unwrap_err();
        assert!(e.contains("max subscribers"), "{e}");
    }

    /// A `--queue`, `--value` or `--array` that names a channel of the file
    /// overrides it as `--pipe` does: what the flag gives replaces the
    /// file's, what it leaves out is kept, and the channel keeps its place.
    #[test]
    fn every_kind_of_flag_overrides_the_file() {
        let file = "[[pipe]]\nname = \"p\"\ncapacity = 4096\n\
                    [[queue]]\nname = \"q\"\nslots = 8\nslot_size = 64\n\
                    [[value]]\nname = \"v\"\ntype = \"i32\"\n\
                    [[array]]\nname = \"a\"\ntype = \"d\"\nlen = 4\n";
        let f64c = u64::from(shmbus::seqlock::ElemType::F64.code());
        let i32c = u64::from(shmbus::seqlock::ElemType::I32.code());
        let u8c = u64::from(shmbus::seqlock::ElemType::U8.code());
        let words = |s: &Spec| -> Vec<(String, Kind, [u64; 3])> {
            s.channels()
                .iter()
                .map(|c| (c.name.clone(), c.params.kind(), c.params.words()))
                .collect()
        };
        let w = |n: &str, k, p| (n.to_owned(), k, p);
        // The file alone.
        let s = spec(&[], file, None).unwrap();
        assert_eq!(
            words(&s),
            [
                w("p", Kind::Pipe, [4096, 0, 0]),
                w("q", Kind::Queue, [8, 64, 0]),
                w("v", Kind::Value, [i32c, 1, 0]),
                w("a", Kind::Array, [f64c, 4, 0]),
            ]
        );
        // Each flag overrides its channel of the file.
        let s = spec(
            &[
                "--pipe", "p:8K", "--queue", "q:16:128", "--value", "v:f64", "--array", "a:u8:32",
                "--queue", "new",
            ],
            file,
            None,
        )
        .unwrap();
        let dq = shmbus::queue::DEFAULT_SLOTS;
        let dz = shmbus::queue::DEFAULT_SLOT_SIZE;
        assert_eq!(
            words(&s),
            [
                w("p", Kind::Pipe, [8192, 0, 0]),
                w("q", Kind::Queue, [16, 128, 0]),
                w("v", Kind::Value, [f64c, 1, 0]),
                w("a", Kind::Array, [u8c, 32, 0]),
                w("new", Kind::Queue, [dq, dz, 0]),
            ]
        );
        // What a flag leaves out, the file's declaration keeps.
        for (args, want) in [
            (&["--pipe", "p"][..], w("p", Kind::Pipe, [4096, 0, 0])),
            (&["--queue", "q"][..], w("q", Kind::Queue, [8, 64, 0])),
            (&["--queue", "q:32"][..], w("q", Kind::Queue, [32, 64, 0])),
            (&["--queue", "q::1K"][..], w("q", Kind::Queue, [8, 1024, 0])),
        ] {
            let s = spec(args, file, None).unwrap();
            let got = words(&s);
            assert_eq!(got.len(), 4, "{args:?}: {got:?}");
            assert!(got.contains(&want), "{args:?}: {got:?}");
        }
        // A flag must keep the kind; twice on the command line is an error,
        // also after an override; a bad override is reported with its flag.
        for (args, needle) in [
            (&["--queue", "p:8"][..], "is a pipe in the config file"),
            (&["--value", "a:d"][..], "is an array in the config file"),
            (&["--array", "v:i32:1"][..], "is a value in the config file"),
            (&["--pipe", "q"][..], "is a queue in the config file"),
            (
                &["--queue", "q:16", "--queue", "q:32"][..],
                "twice on the command line",
            ),
            (
                &["--value", "v:d", "--value", "v:d"][..],
                "twice on the command line",
            ),
            (
                &["--array", "n:d:2", "--array", "n:d:2"][..],
                "twice on the command line",
            ),
            (&["--queue", "q:3"][..], "--queue q:3: queue slots 3"),
            (&["--array", "a:d:0"][..], "--array a:d:0: array length 0"),
        ] {
            let e = spec(args, file, None).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn access_lists_and_modes() {
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 4242 { 4243 } else { 4242 };
        // The default: only the daemon's uid and root.
        let s = spec(&[], "", None).unwrap();
        assert!(s.allow_uids().is_empty() && s.allow_groups().is_empty());
        assert!(s.allows(me, 0, me, |_| panic!("groups not needed")));
        assert!(s.allows(0, 0, me, |_| panic!("groups not needed")));
        assert!(!s.allows(other, other, me, |_| true));
        // --allow-uid needs the "other" bits.
        let o = other.to_string();
        let e = spec(&["--allow-uid", &o], "", None).unwrap_err();
        assert!(e.contains("--mode 0666") && e.contains("0600"), "{e}");
        let s = spec(&["--allow-uid", &o, "--mode", "0666"], "", None).unwrap();
        assert!(s.allows(other, other, me, |_| false));
        // Allowing oneself or root needs nothing.
        assert!(spec(&["--allow-uid", "0"], "", None).is_ok());
        // --allow-group: the group bits; a second group: the other bits too.
        let e = spec(&["--allow-group", "100"], "", None).unwrap_err();
        assert!(e.contains("0660"), "{e}");
        let s = spec(&["--allow-group", "100", "--mode", "0660"], "", None).unwrap();
        assert!(s.allows(other, 100, me, |_| false), "primary group");
        assert!(
            s.allows(other, 5, me, |g| g == [100]),
            "supplementary group"
        );
        assert!(!s.allows(other, 5, me, |_| false));
        let e = spec(
            &[
                "--allow-group",
                "100",
                "--allow-group",
                "200",
                "--mode",
                "0660",
            ],
            "",
            None,
        )
        .unwrap_err();
        assert!(e.contains("one group"), "{e}");
        // From the file; flags replace the file's list.
        let f = format!("mode = \"0666\"\nallow_uids = [{other}]\nallow_groups = [7]\n");
        let s = spec(&[], &f, None).unwrap();
        assert_eq!((s.allow_uids(), s.allow_groups()), (&[other][..], &[7][..]));
        let s = spec(&["--allow-uid", "9"], &f, None).unwrap();
        assert_eq!(s.allow_uids(), [9]);
        assert_eq!(
            s.describe_access(1000),
            "uid 0 (root), uid 1000 (the daemon's), uid 9 and members of group 7"
        );
        assert_eq!(
            spec(&[], "", None).unwrap().describe_access(0),
            "uid 0 (root)"
        );
    }

    #[test]
    fn pipe_flag_errors() {
        let e = spec(&["--pipe", "a:100"], "", None).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        let e = spec(&["--pipe", "a:xyz"], "", None).unwrap_err();
        assert!(e.contains("--pipe a:xyz"), "{e}");
        let e = spec(&["--pipe", "a b"], "", None).unwrap_err();
        assert!(e.contains("bad channel name"), "{e}");
        let e = spec(&["--pipe", ":64"], "", None).unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn values_and_arrays() {
        let s = spec(
            &["--value", "n:q", "--array", "v:f64:16"],
            "[[value]]\nname = \"x\"\ntype = \"d\"\n[[array]]\nname = \"a\"\ntype = \"i\"\nlen = 10\n",
            None,
        )
        .unwrap();
        let got: Vec<_> = s
            .channels()
            .iter()
            .map(|c| (c.name.as_str(), c.params.kind(), c.params.words()))
            .collect();
        assert_eq!(
            got,
            [
                ("x", Kind::Value, [10, 1, 0]),
                ("a", Kind::Array, [5, 10, 0]),
                ("n", Kind::Value, [7, 1, 0]),
                ("v", Kind::Array, [10, 16, 0]),
            ]
        );
        for (args, needle) in [
            (&["--value", "n"][..], "NAME:TYPE"),
            (&["--value", "n:z"][..], "unknown element type"),
            (&["--array", "a:i32"][..], "NAME:TYPE:LEN"),
            (&["--array", "a:i32:0"][..], "from 1"),
            (&["--array", "a:i32:x"][..], "whole number"),
            (&["--value", "a:d", "--array", "a:d:2"][..], "twice"),
        ] {
            let e = spec(args, "", None).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let e = spec(&[], "[[value]]\nname = \"x\"", None).unwrap_err();
        assert!(e.contains("type"), "{e}");
    }

    #[test]
    fn capacity_checks() {
        let e = spec(&["--size", "1K"], "", None).unwrap_err();
        assert!(e.contains("too small"), "{e}");
        let e = spec(&["--max-peers", "0"], "", None).unwrap_err();
        assert!(e.contains("peer count"), "{e}");
        let e = spec(
            &["--max-channels", "1", "--pipe", "a", "--pipe", "b"],
            "",
            None,
        )
        .unwrap_err();
        assert!(e.contains("--max-channels"), "{e}");
        let e = spec(&["--size", "1M", "--pipe", "big:1M"], "", None).unwrap_err();
        assert!(e.contains("raise --size"), "{e}");
    }
}
