//! Command line + TOML file → a validated [`Spec`].
//!
//! Everything a user can get wrong is checked here, before any file is touched:
//! the bus and channel names, sizes, the mode, pipe capacities, and whether the
//! declared channels fit the segment. A [`Spec`] is therefore always servable
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
//! ```
//! Unknown keys are errors, so a typo cannot silently fall back to a default.
//! Each channel kind has its own array of tables (`[[pipe]]`, `[[queue]]`,
//! `[[value]]`, `[[array]]`): a new kind adds one field to `FileConfig`, one
//! variant to [`ChannelParams`] and one loop in [`Spec::from_cli`]. Values and
//! arrays take `type` as a Rust name (`f64`) or a Python typecode (`d`), and
//! share the [`ChannelParams::Table`] variant.
//!
//! # Precedence
//! A command-line flag beats the file, which beats `$SHMBUS_BUS` (bus name
//! only), which beats the default. `--pipe NAME` adds a pipe, or, if the file
//! declares `NAME` too, overrides its capacity when the flag gives one.
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

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use shmbus::layout::{Geometry, Kind, LINE};
use shmbus::name::{self, BusPaths};
use shmbus::pipe;
use shmbus::queue;
use shmbus::seqlock::{self, ElemType};

use crate::cli::Cli;
use crate::Error;

/// Bus served when neither `--name`, the config file nor `$SHMBUS_BUS` names one.
pub const DEFAULT_BUS: &str = "shmbus";
/// Environment variable naming the default bus (shared with the clients).
pub const BUS_ENV: &str = "SHMBUS_BUS";
/// Default segment size: 32 MiB.
pub const DEFAULT_SIZE: u64 = 32 << 20;
/// Default number of peer slots.
pub const DEFAULT_MAX_PEERS: u32 = 128;
/// Default number of directory entries.
pub const DEFAULT_MAX_CHANNELS: u32 = 256;
/// Default permissions of the segment and the socket.
pub const DEFAULT_MODE: u32 = 0o600;
/// Default pipe ring capacity in bytes.
pub const DEFAULT_PIPE_CAPACITY: u64 = 65_536;
/// Default number of queue slots.
pub const DEFAULT_QUEUE_SLOTS: u64 = queue::DEFAULT_SLOTS;
/// Default queue slot payload size in bytes.
pub const DEFAULT_QUEUE_SLOT_SIZE: u64 = queue::DEFAULT_SLOT_SIZE;

/// Kind-specific parameters of a channel to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelParams {
    /// A pipe with a ring of `capacity` bytes (checked by [`pipe::check_capacity`]).
    Pipe {
        /// Ring capacity in bytes.
        capacity: u64,
    },
    /// An MPMC queue (checked by [`queue::check_params`]).
    Queue {
        /// Number of slots (a power of two).
        slots: u64,
        /// Largest message in bytes.
        slot_size: u64,
    },
    /// A typed value (one element) or array (`len` elements), a seqlock.
    Table {
        /// `value` or `array`.
        kind: Kind,
        /// Element type.
        elem: ElemType,
        /// Number of elements (1 for a value; checked by [`seqlock::check_params`]).
        len: u64,
    },
}

impl ChannelParams {
    /// The channel kind these parameters create.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Pipe { .. } => Kind::Pipe,
            Self::Queue { .. } => Kind::Queue,
            Self::Table { kind, .. } => *kind,
        }
    }

    /// Bytes the channel's body takes in the arena (before alignment).
    pub fn body_len(&self) -> u64 {
        match *self {
            Self::Pipe { capacity } => pipe::body_len(capacity),
            Self::Queue { slots, slot_size } => queue::body_len(slots, slot_size),
            Self::Table { elem, len, .. } => seqlock::body_len(elem, len),
        }
    }

    /// The parameters as stored in `DirEntry::params` and sent in `CHANNEL`.
    pub fn words(&self) -> [u64; 3] {
        match *self {
            Self::Pipe { capacity } => [capacity, 0, 0],
            Self::Queue { slots, slot_size } => [slots, slot_size, 0],
            Self::Table { elem, len, .. } => [u64::from(elem.code()), len, 0],
        }
    }
}

/// A channel declared at start (`--pipe` or `[[pipe]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Its (validated) name.
    pub name: String,
    /// What to create.
    pub params: ChannelParams,
}

/// Everything the daemon needs to serve a bus, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    name: String,
    paths: BusPaths,
    geometry: Geometry,
    mode: u32,
    allow_uids: Vec<u32>,
    allow_groups: Vec<u32>,
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
        let env = std::env::var(BUS_ENV).ok().filter(|s| !s.is_empty());
        Self::merge(cli, file, env)
    }

    fn merge(cli: Cli, file: FileConfig, env_bus: Option<String>) -> Result<Self, Error> {
        let name = cli
            .name
            .or(file.name)
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
        let allow_uids = if cli.allow_uids.is_empty() {
            file.allow_uids.unwrap_or_default()
        } else {
            cli.allow_uids
        };
        let allow_groups = if cli.allow_groups.is_empty() {
            file.allow_groups.unwrap_or_default()
        } else {
            cli.allow_groups
        };
        check_access(
            mode,
            &allow_uids,
            &allow_groups,
            rustix::process::geteuid().as_raw(),
        )
        .map_err(Error::Config)?;
        let quiet = cli.quiet || file.quiet.unwrap_or(false);

        // Channels: the file's first, in order, then the command line's.
        let mut channels: Vec<ChannelSpec> = Vec::new();
        for p in &file.pipe {
            let capacity = match &p.capacity {
                Some(v) => value_size(v).map_err(|e| {
                    Error::Config(format!("config [[pipe]] {:?}: capacity: {e}", p.name))
                })?,
                None => DEFAULT_PIPE_CAPACITY,
            };
            let c = channel("config [[pipe]]", &p.name, capacity)?;
            if channels.iter().any(|x| x.name == c.name) {
                return Err(Error::Config(format!(
                    "config file declares channel {:?} twice",
                    c.name
                )));
            }
            channels.push(c);
        }
        let from_file = channels.len();
        for arg in &cli.pipes {
            let (pname, cap) = match arg.split_once(':') {
                Some((n, c)) => (
                    n,
                    Some(
                        parse_size(c)
                            .map_err(|e| Error::Config(format!("--pipe {arg}: capacity: {e}")))?,
                    ),
                ),
                None => (arg.as_str(), None),
            };
            let c = channel(
                &format!("--pipe {arg}"),
                pname,
                cap.unwrap_or(DEFAULT_PIPE_CAPACITY),
            )?;
            match channels.iter().position(|x| x.name == c.name) {
                Some(i) if i >= from_file => {
                    return Err(Error::Config(format!(
                        "--pipe {arg}: channel {pname:?} is declared twice on the command line"
                    )))
                }
                // The flag overrides the file's capacity only if it gives one.
                Some(i) => {
                    if cap.is_some() {
                        channels[i] = c;
                    }
                }
                None => channels.push(c),
            }
        }

        // Values and arrays: the file's, then the command line's; a name may
        // be declared once in all.
        let mut tables: Vec<(String, ChannelSpec)> = Vec::new();
        for v in &file.value {
            let what = format!("config [[value]] {:?}", v.name);
            tables.push((what.clone(), table(&what, &v.name, Kind::Value, &v.ty, 1)?));
        }
        for a in &file.array {
            let what = format!("config [[array]] {:?}", a.name);
            tables.push((
                what.clone(),
                table(&what, &a.name, Kind::Array, &a.ty, a.len)?,
            ));
        }
        for arg in &cli.values {
            let what = format!("--value {arg}");
            let (vname, ty) = arg.split_once(':').ok_or_else(|| {
                Error::Config(format!(
                    "{what}: expected NAME:TYPE, e.g. counter:i64 or x:d"
                ))
            })?;
            tables.push((what.clone(), table(&what, vname, Kind::Value, ty, 1)?));
        }
        for arg in &cli.arrays {
            let what = format!("--array {arg}");
            let mut it = arg.splitn(3, ':');
            let (aname, ty, len) = match (it.next(), it.next(), it.next()) {
                (Some(n), Some(t), Some(l)) => (n, t, l),
                _ => {
                    return Err(Error::Config(format!(
                        "{what}: expected NAME:TYPE:LEN, e.g. prices:f64:16"
                    )))
                }
            };
            let len: u64 = len.parse().map_err(|_| {
                Error::Config(format!("{what}: length {len:?} is not a whole number"))
            })?;
            tables.push((what.clone(), table(&what, aname, Kind::Array, ty, len)?));
        }
        // Queues: the file's, then the command line's.
        for q in &file.queue {
            let what = format!("config [[queue]] {:?}", q.name);
            let size = match &q.slot_size {
                Some(v) => Some(
                    value_size(v).map_err(|e| Error::Config(format!("{what}: slot_size: {e}")))?,
                ),
                None => None,
            };
            tables.push((what.clone(), queue_spec(&what, &q.name, q.slots, size)?));
        }
        for arg in &cli.queues {
            let what = format!("--queue {arg}");
            let mut it = arg.splitn(3, ':');
            let qname = it.next().unwrap_or("");
            let slots = match it.next() {
                Some(n) => Some(n.parse::<u64>().map_err(|_| {
                    Error::Config(format!("{what}: slots {n:?} is not a whole number"))
                })?),
                None => None,
            };
            let size = match it.next() {
                Some(z) => Some(
                    parse_size(z).map_err(|e| Error::Config(format!("{what}: slot size: {e}")))?,
                ),
                None => None,
            };
            tables.push((what.clone(), queue_spec(&what, qname, slots, size)?));
        }
        for (what, c) in tables {
            if channels.iter().any(|x| x.name == c.name) {
                return Err(Error::Config(format!(
                    "{what}: channel {:?} is declared twice",
                    c.name
                )));
            }
            channels.push(c);
        }

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
            allow_uids,
            allow_groups,
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
        &self.allow_uids
    }

    /// Groups whose members (primary or supplementary) are accepted; the
    /// first is the group of the segment and the socket.
    pub fn allow_groups(&self) -> &[u32] {
        &self.allow_groups
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
        uid == daemon_uid
            || uid == 0
            || self.allow_uids.contains(&uid)
            || (!self.allow_groups.is_empty()
                && (self.allow_groups.contains(&gid) || in_groups(&self.allow_groups)))
    }

    /// Who may use the bus, for a refusal message: "uid 0 (root), uid 1000
    /// (the daemon's), uid 7 and members of group 100".
    pub fn describe_access(&self, daemon_uid: u32) -> String {
        let mut who = vec!["uid 0 (root)".to_owned()];
        if daemon_uid != 0 {
            who.push(format!("uid {daemon_uid} (the daemon's)"));
        }
        for u in &self.allow_uids {
            who.push(format!("uid {u}"));
        }
        for g in &self.allow_groups {
            who.push(format!("members of group {g}"));
        }
        match who.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => who.join(""),
        }
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

/// Rounds an arena allocation up to a whole line.
pub(crate) fn align_line(v: u64) -> u64 {
    v.saturating_add(LINE - 1) & !(LINE - 1)
}

fn channel(what: &str, cname: &str, capacity: u64) -> Result<ChannelSpec, Error> {
    name::validate_channel(cname)
        .map_err(|e| Error::Config(format!("{what}: bad channel name {cname:?}: {e}")))?;
    pipe::check_capacity(capacity).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    Ok(ChannelSpec {
        name: cname.to_owned(),
        params: ChannelParams::Pipe { capacity },
    })
}

/// A queue declaration; `None` takes the default.
fn queue_spec(
    what: &str,
    cname: &str,
    slots: Option<u64>,
    slot_size: Option<u64>,
) -> Result<ChannelSpec, Error> {
    name::validate_channel(cname)
        .map_err(|e| Error::Config(format!("{what}: bad channel name {cname:?}: {e}")))?;
    let slots = slots.unwrap_or(DEFAULT_QUEUE_SLOTS);
    let slot_size = slot_size.unwrap_or(DEFAULT_QUEUE_SLOT_SIZE);
    queue::check_params(slots, slot_size).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    Ok(ChannelSpec {
        name: cname.to_owned(),
        params: ChannelParams::Queue { slots, slot_size },
    })
}

/// A value or array declaration: `ty` is a Rust name (`f64`) or a Python
/// typecode (`d`).
fn table(what: &str, cname: &str, kind: Kind, ty: &str, len: u64) -> Result<ChannelSpec, Error> {
    name::validate_channel(cname)
        .map_err(|e| Error::Config(format!("{what}: bad channel name {cname:?}: {e}")))?;
    let elem = ElemType::parse(ty).ok_or_else(|| {
        Error::Config(format!(
            "{what}: unknown element type {ty:?}: use i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 \
             or a Python typecode b B h H i I l L q Q f d"
        ))
    })?;
    seqlock::check_params(u64::from(elem.code()), len)
        .map_err(|e| Error::Config(format!("{what}: {e}")))?;
    Ok(ChannelSpec {
        name: cname.to_owned(),
        params: ChannelParams::Table { kind, elem, len },
    })
}

/// The config file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    name: Option<String>,
    size: Option<toml::Value>,
    max_peers: Option<u32>,
    max_channels: Option<u32>,
    mode: Option<toml::Value>,
    allow_uids: Option<Vec<u32>>,
    allow_groups: Option<Vec<u32>>,
    quiet: Option<bool>,
    #[serde(default)]
    pipe: Vec<PipeDecl>,
    #[serde(default)]
    queue: Vec<QueueDecl>,
    #[serde(default)]
    value: Vec<ValueDecl>,
    #[serde(default)]
    array: Vec<ArrayDecl>,
}

/// One `[[queue]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueDecl {
    name: String,
    slots: Option<u64>,
    slot_size: Option<toml::Value>,
}

/// One `[[value]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueDecl {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// One `[[array]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArrayDecl {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    len: u64,
}

/// One `[[pipe]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipeDecl {
    name: String,
    capacity: Option<toml::Value>,
}

fn load_file(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
    parse_file(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
}

fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " | "))
}

/// Parses a byte count with an optional binary suffix: `4096`, `64K`, `32M`,
/// `1G`, `1T` (also `KiB`, `MiB`, ..., any case; `B` alone means bytes).
///
/// # Errors
/// A message saying what is wrong.
///
/// # Examples
/// ```
/// use shmbus_daemon::config::parse_size;
/// assert_eq!(parse_size("64M"), Ok(64 << 20));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("12Q").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "{s:?} is not a size: expected a number of bytes like 4096 or 64M"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is too large for a size"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?} has an unknown suffix {suffix:?}: use K, M, G or T (powers of 1024)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large for a size"))
}

/// Parses a permission mode in octal (`600`, `0640`, `0o660`).
///
/// # Errors
/// A message if it is not octal, has bits beyond `0o777`, or does not give the
/// owner read and write (the daemon's own clients need both).
///
/// # Examples
/// ```
/// use shmbus_daemon::config::parse_mode;
/// assert_eq!(parse_mode("0640"), Ok(0o640));
/// assert!(parse_mode("0400").is_err());
/// ```
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(format!(
            "{s:?} is not an octal permission mode like 0600 or 0660"
        ));
    }
    let m = u32::from_str_radix(digits, 8).map_err(|e| format!("{s:?}: {e}"))?;
    check_mode(m)
}

fn check_mode(m: u32) -> Result<u32, String> {
    if m > 0o777 {
        return Err(format!(
            "{m:#o} has bits beyond 0777 (setuid, setgid and sticky make no sense here)"
        ));
    }
    if m & 0o600 != 0o600 {
        return Err(format!(
            "{m:04o} does not give the owner read and write permission"
        ));
    }
    Ok(m)
}

/// Checks that `mode` lets every allowed client open the segment and the
/// socket (see the module docs, "Access").
fn check_access(mode: u32, uids: &[u32], groups: &[u32], daemon_uid: u32) -> Result<(), String> {
    if let Some(u) = uids.iter().find(|&&u| u != daemon_uid && u != 0) {
        if mode & 0o006 != 0o006 {
            return Err(format!(
                "--allow-uid {u} needs a mode that lets other users read and write the \
                 segment and the socket, e.g. --mode 0666 (the mode is {mode:04o})"
            ));
        }
    }
    if let Some(g) = groups.first() {
        if mode & 0o060 != 0o060 {
            return Err(format!(
                "--allow-group {g} needs a mode that lets the group read and write the \
                 segment and the socket, e.g. --mode 0660 (the mode is {mode:04o})"
            ));
        }
    }
    if let Some(g) = groups.get(1) {
        if mode & 0o006 != 0o006 {
            return Err(format!(
                "--allow-group {g}: the segment and the socket belong to one group (the \
                 first allowed, {}), so other allowed groups need the \"other\" read and \
                 write bits, e.g. --mode 0666 (the mode is {mode:04o})",
                groups[0]
            ));
        }
    }
    Ok(())
}

fn value_size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("{i} is negative: sizes are byte counts"))
        }
        toml::Value::String(s) => parse_size(s),
        other => Err(format!(
            "expected an integer or a string like \"64M\", found {}",
            other.type_str()
        )),
    }
}

fn value_mode(v: &toml::Value) -> Result<u32, String> {
    match v {
        toml::Value::Integer(i) => {
            let m = u32::try_from(*i).map_err(|_| format!("{i} is not a permission mode"))?;
            check_mode(m).map_err(|e| {
                format!(
                    "{e}; note that a TOML integer like 640 is decimal: \
                     write 0o640 or the string \"0640\""
                )
            })
        }
        toml::Value::String(s) => parse_mode(s),
        other => Err(format!(
            "expected a string like \"0640\" or an octal integer like 0o640, found {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
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
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("12B"), Ok(12));
        for bad in [
            "",
            "M",
            "-1",
            "1.5M",
            "12Q",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
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
                        capacity: DEFAULT_PIPE_CAPACITY
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
