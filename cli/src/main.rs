//! `shmbus`: the command-line client of a shmbus bus.
//!
//! ```text
//! shmbus [--bus NAME] ls
//! shmbus [--bus NAME] top [--interval SECONDS] [-n COUNT]
//! shmbus [--bus NAME] send NAME [MESSAGE...] [--timeout SECONDS]
//! shmbus [--bus NAME] recv NAME [--create] [-n COUNT] [--timeout SECONDS]
//! shmbus [--bus NAME] create pipe NAME [--capacity BYTES]
//! shmbus [--bus NAME] create queue NAME [--slots N] [--slot-size BYTES]
//! shmbus [--bus NAME] create value NAME TYPE
//! shmbus [--bus NAME] create array NAME TYPE LEN
//! shmbus [--bus NAME] create topic NAME [--slots N] [--slot-size BYTES] [--lossy] [--max-subscribers N]
//! shmbus [--bus NAME] pub NAME [MESSAGE...] [--timeout SECONDS]
//! shmbus [--bus NAME] sub NAME [-n COUNT] [--timeout SECONDS] [--history K]
//! shmbus [--bus NAME] get NAME
//! shmbus [--bus NAME] set NAME VALUE...
//! shmbus [--bus NAME] add NAME DELTA
//! shmbus [--bus NAME] watch NAME [-n COUNT] [--timeout SECONDS]
//! shmbus [--bus NAME] rm NAME...
//! ```
//!
//! `send` and `recv` take a pipe, a queue or a topic (whichever NAME is);
//! `pub` and `sub` take a topic, created with the defaults if missing. `recv`
//! never creates a channel unless given `--create`; `send` creates a missing
//! NAME as a pipe and says so on standard error (`shmbus: created pipe NAME
//! (capacity 65536 bytes)`), so that a typo does not leave a silent pipe
//! behind. `top` samples the positions the channels keep anyway (nothing is
//! counted on the fast path) and shows rates from one sample to the next.
//!
//! Each subcommand is one variant of [`Command`] and one function; `send` and
//! `recv` live in [`frames`], `top` in [`top`]. Every failure is one line on
//! stderr starting with `shmbus: `, and a non-zero exit status; a closed
//! standard output (`shmbus recv p | head -1`) ends the program quietly.
//!
//! Exit status: 0 on success (and at the end of a pipe), 1 on an error, 2 for
//! a bad command line, 124 when `--timeout` expires, 130 when `watch` or `top`
//! is stopped by SIGINT (Ctrl-C) or SIGTERM. Other commands die of those
//! signals, which a shell reports as 130 (SIGINT) or 143 (SIGTERM).

mod common;
mod frames;
mod many;
mod top;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmbus::size::parse_size;
use shmbus_client::{Bus, ChannelDetails, ElemType, Error, Table, BUS_ENV, DEFAULT_BUS};

use common::{
    error, parse_seconds, stdout_error, Failure, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TIMEOUT,
};
use frames::{RecvArgs, SendArgs};
use top::TopArgs;

#[derive(Debug, Parser)]
#[command(
    name = "shmbus",
    version,
    about = "Use a shmbus shared-memory message bus from the command line",
    after_help = "Exit status: 0 on success (and at the end of a pipe), 1 on error, \
        2 for a bad command line, 124 when --timeout expires, 130 when `watch` or `top` \
        is stopped by Ctrl-C (SIGINT) or SIGTERM (other commands die of the signal: a \
        shell shows 130 for SIGINT, 143 for SIGTERM)."
)]
struct Cli {
    /// Bus to use: [A-Za-z0-9._-], 1-200 bytes.
    #[arg(long, global = true, value_name = "NAME", env = BUS_ENV, default_value = DEFAULT_BUS)]
    bus: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the bus's channels.
    ///
    /// One line per channel: name, kind, capacity in bytes, bytes waiting to be
    /// read, and the attached ends (sender, receiver). For a topic: slots x
    /// slot size and the mode, how many messages the slowest subscriber is
    /// behind, and the number of subscribers. For a value or array:
    /// its type and length (`f64[16]`), its version (`v42`, the number of
    /// writes), and `writer` while a writer holds its lock. A channel removed
    /// while still open shows as `KIND (removed, N open)`: N connections
    /// still use it, and its space is reused once they are gone.
    Ls,
    /// Show message rates, depth and attached ends of every channel,
    /// refreshed every interval.
    ///
    /// Rates come from the positions the channels keep anyway, read twice,
    /// an interval apart: IN/OUT are bytes/s sent/received for a pipe,
    /// items/s put/taken for a queue, writes/s for a value or array,
    /// messages/s published for a topic. DEPTH is bytes waiting (pipe),
    /// items waiting (queue), the version (value) or the slowest
    /// subscriber's lag (topic).
    /// On a terminal the table is redrawn in place; otherwise each sample is
    /// printed as a plain table after a title line. Ctrl-C stops it (exit
    /// 130).
    Top(TopArgs),
    /// Send frames to a pipe or a queue.
    ///
    /// NAME is used as what it is (a pipe or a queue); a missing NAME is
    /// created as a pipe with the daemon's default capacity, which is said
    /// on standard error. Waits while the pipe or queue is full. When this
    /// command exits, a receiver that was running (or started while this
    /// command ran) sees the end of the pipe once it has read everything.
    Send(SendArgs),
    /// Receive frames from a pipe or a queue and print them, one per line.
    ///
    /// NAME must exist (a pipe or a queue) unless --create is given, which
    /// creates a pipe. A queue has no end: stop with -n or --timeout. Each
    /// frame is written as is, followed by a newline. Stops after COUNT
    /// frames, or at the end of the pipe: once a sender that was attached
    /// while this command ran has gone and every frame was read. Started
    /// while no sender is attached, it prints what an earlier sender left
    /// and then waits for a sender (as a FIFO reader waits for a writer).
    ///
    /// With several names, waits on all of them at once (one sleep, no
    /// polling) and prints `NAME: FRAME` lines; it ends when every pipe
    /// among them has ended (never, if a queue is among them).
    Recv(RecvArgs),
    /// Publish messages on a topic: every subscriber receives each.
    ///
    /// NAME is created as a lossless topic with the defaults if missing.
    /// Without MESSAGE arguments, each line of standard input is one
    /// message. Waits while the slowest subscriber of a lossless topic is a
    /// whole ring behind.
    Pub(SendArgs),
    /// Subscribe to a topic and print every message published from now on,
    /// one per line.
    ///
    /// NAME is created as a lossless topic with the defaults if missing. A
    /// topic has no end: stop with -n or --timeout. --history K first prints
    /// up to K earlier messages still in the ring. On a lossy topic, a
    /// subscriber that falls a ring behind prints the number of messages it
    /// missed on standard error and goes on.
    Sub(RecvArgs),
    /// Create a channel; succeeds if it exists already with the same
    /// parameters.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Print a value, or an array's elements separated by spaces.
    ///
    /// The read takes no lock and is never torn. A missing name is an error.
    Get(NameArg),
    /// Store a value, or all of an array's elements at once.
    ///
    /// Give one VALUE per element, parsed as the entry's type; readers see
    /// the old or the new contents, never a mix.
    Set(SetArgs),
    /// Add DELTA atomically (under the writer lock) and print the new value.
    ///
    /// On an array, DELTA is added to every element.
    Add(AddArgs),
    /// Print the value now, then each time it changes, one line each.
    ///
    /// Sleeps on a futex between changes; several writes in quick succession
    /// may show as one line (the latest value). COUNT counts every line
    /// printed, the first included (`-n 1` prints the current value). Ctrl-C
    /// stops it (exit 130).
    Watch(WatchArgs),
    /// Remove channels, as `rm` removes files.
    ///
    /// The name disappears at once: a new channel of that name (of any kind)
    /// can be created. Programs that have the channel open keep using it
    /// until they drop it; its space is reused after that (`ls` shows it as
    /// removed meanwhile). A removed queue or array comes back empty when it
    /// is created again.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
struct RmArgs {
    /// The channels to remove.
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
}

/// What `create` makes.
#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// A single-producer single-consumer pipe of frames.
    Pipe {
        /// The pipe's name.
        name: String,
        /// Ring capacity: a power of two in bytes, 64 to 1G (K, M, G
        /// suffixes allowed); the largest frame is capacity / 8 [default: the
        /// daemon's, 64K].
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        capacity: Option<u64>,
    },
    /// A multi-producer multi-consumer queue of fixed-size slots.
    Queue {
        /// The queue's name.
        name: String,
        /// Number of slots: a power of two, 2 to 16777216 [default: 1024].
        #[arg(long, value_name = "N")]
        slots: Option<u64>,
        /// Largest message in bytes, 1 to 1M (K, M suffixes allowed)
        /// [default: 256].
        #[arg(long = "slot-size", value_name = "BYTES", value_parser = parse_size)]
        slot_size: Option<u64>,
    },
    /// A topic: publish once, every subscriber receives.
    Topic {
        /// The topic's name.
        name: String,
        /// Number of slots: a power of two, 2 to 16777216 [default: 1024].
        #[arg(long, value_name = "N")]
        slots: Option<u64>,
        /// Largest message in bytes, 1 to 1M (K, M suffixes allowed)
        /// [default: 256].
        #[arg(long = "slot-size", value_name = "BYTES", value_parser = parse_size)]
        slot_size: Option<u64>,
        /// Lossy delivery: publishers never wait; a subscriber that falls a
        /// ring behind is told how many messages it missed [default:
        /// lossless].
        #[arg(long)]
        lossy: bool,
        /// Largest number of subscribers, 1 to 1024 [default: 64].
        #[arg(long = "max-subscribers", value_name = "N")]
        max_subscribers: Option<u64>,
    },
    /// A typed value (one element), initially 0.
    ///
    /// TYPE: i8 u8 i16 u16 i32 u32 i64 u64 f32 f64, or a Python typecode
    /// b B h H i I l L q Q f d.
    Value {
        /// The value's name.
        name: String,
        /// Element type.
        #[arg(value_name = "TYPE", value_parser = parse_type)]
        elem: ElemType,
    },
    /// A typed array of LEN elements, initially all 0.
    ///
    /// TYPE as for `create value`.
    Array {
        /// The array's name.
        name: String,
        /// Element type.
        #[arg(value_name = "TYPE", value_parser = parse_type)]
        elem: ElemType,
        /// Number of elements.
        #[arg(value_name = "LEN")]
        len: usize,
    },
}

#[derive(Debug, Args)]
struct NameArg {
    /// The value or array.
    name: String,
}

#[derive(Debug, Args)]
struct SetArgs {
    /// The value or array.
    name: String,
    /// The new contents: one per element.
    #[arg(value_name = "VALUE", required = true, allow_hyphen_values = true)]
    values: Vec<String>,
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The value or array.
    name: String,
    /// What to add (may be negative).
    #[arg(value_name = "DELTA", allow_hyphen_values = true)]
    delta: String,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// The value or array.
    name: String,

    /// Stop after this many lines (the current value and COUNT - 1
    /// changes).
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    count: Option<u64>,

    /// Give up if nothing changes for this long (seconds; fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

fn parse_type(s: &str) -> Result<ElemType, String> {
    ElemType::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not an element type: use i8 u8 i16 u16 i32 u32 i64 u64 f32 f64, \
             or a Python typecode b B h H i I l L q Q f d"
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Error(m)) => report(&m, EXIT_ERROR),
        Err(Failure::Timeout(m)) => report(&m, EXIT_TIMEOUT),
        Err(Failure::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
    }
}

fn report(message: &str, code: u8) -> ExitCode {
    // Nothing more to do if stderr is gone too.
    let _ = writeln!(io::stderr().lock(), "shmbus: {message}");
    ExitCode::from(code)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let bus = Bus::connect_to(&cli.bus).map_err(error)?;
    match cli.command {
        Command::Ls => ls(&bus),
        Command::Top(a) => top::top(&bus, &a),
        Command::Send(a) => frames::send(&bus, a),
        Command::Recv(a) if a.names.len() > 1 => many::recv_many(&bus, &a),
        Command::Recv(a) => frames::recv(&bus, a),
        Command::Pub(a) => frames::publish(&bus, a),
        Command::Sub(a) => frames::subscribe(&bus, a),
        Command::Create(c) => create(&bus, c),
        Command::Get(a) => get(&bus, &a.name),
        Command::Set(a) => set(&bus, &a),
        Command::Add(a) => add(&bus, &a),
        Command::Watch(a) => watch(&bus, &a),
        Command::Rm(a) => rm(&bus, &a),
    }
}

/// Removes every name; reports each failure and fails at the end if any did.
fn rm(bus: &Bus, a: &RmArgs) -> Result<(), Failure> {
    let mut failed = 0;
    for name in &a.names {
        match bus.remove(name) {
            Ok(0) => {}
            Ok(n) => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "shmbus: removed {name}; {n} connection(s) still have it open, its space \
                     is reused once they close it"
                );
            }
            Err(e) => {
                let _ = writeln!(io::stderr().lock(), "shmbus: cannot remove {name}: {e}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(error(format!(
            "{n} of {} channel(s) not removed",
            a.names.len()
        ))),
    }
}

fn ls(bus: &Bus) -> Result<(), Failure> {
    let mut rows = vec![[
        "NAME".to_owned(),
        "KIND".to_owned(),
        "CAPACITY".to_owned(),
        "WAITING".to_owned(),
        "ATTACHED".to_owned(),
    ]];
    for c in bus.channels() {
        let (capacity, waiting, attached) = match c.details {
            ChannelDetails::Pipe(p) => {
                let ends: Vec<&str> = [p.sender.map(|_| "sender"), p.receiver.map(|_| "receiver")]
                    .into_iter()
                    .flatten()
                    .collect();
                let attached = if ends.is_empty() {
                    "-".to_owned()
                } else {
                    ends.join(",")
                };
                (p.capacity.to_string(), p.waiting.to_string(), attached)
            }
            ChannelDetails::Table(t) => (
                format!("{}[{}]", t.elem, t.len),
                format!("v{}", t.version),
                t.writer
                    .map_or_else(|| "-".to_owned(), |_| "writer".to_owned()),
            ),
            ChannelDetails::Queue(q) => (
                format!("{}x{}", q.slots, q.slot_size),
                q.depth.to_string(),
                "-".to_owned(),
            ),
            ChannelDetails::Topic(t) => (
                format!(
                    "{}x{} {}",
                    t.slots,
                    t.slot_size,
                    if t.lossy { "lossy" } else { "lossless" }
                ),
                t.max_lag.to_string(),
                format!("{} subscribers", t.subscribers),
            ),
            ChannelDetails::Corrupt(what) => ("-".into(), "-".into(), format!("corrupt: {what}")),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let kind = if c.removed {
            format!("{} (removed, {} open)", c.kind, c.holders)
        } else {
            c.kind.to_string()
        };
        rows.push([c.name, kind, capacity, waiting, attached]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = BufWriter::new(io::stdout().lock());
    for r in &rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        writeln!(out, "{}", line.trim_end()).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

fn create(bus: &Bus, c: CreateCommand) -> Result<(), Failure> {
    match c {
        CreateCommand::Pipe { name, capacity } => match capacity {
            Some(c) => bus.pipe_with_capacity(&name, c).map(drop),
            None => bus.pipe(&name).map(drop),
        },
        CreateCommand::Queue {
            name,
            slots,
            slot_size,
        } => {
            let mut b = bus.queue_builder(&name);
            if let Some(n) = slots {
                b = b.slots(n);
            }
            if let Some(z) = slot_size {
                b = b.slot_size(z);
            }
            b.open().map(drop)
        }
        CreateCommand::Topic {
            name,
            slots,
            slot_size,
            lossy,
            max_subscribers,
        } => {
            let mut b = bus.topic_builder(&name);
            if let Some(n) = slots {
                b = b.slots(n);
            }
            if let Some(z) = slot_size {
                b = b.slot_size(z);
            }
            if lossy || max_subscribers.is_some() {
                b = b.lossy(lossy);
            }
            if let Some(n) = max_subscribers {
                b = b.max_subscribers(n);
            }
            b.open().map(drop)
        }
        CreateCommand::Value { name, elem } => bus.create_value(&name, elem).map(drop),
        CreateCommand::Array { name, elem, len } => bus.create_array(&name, elem, len).map(drop),
    }
    .map_err(error)
}

/// Opens an existing value or array, with a message that says how to make one.
fn table(bus: &Bus, name: &str) -> Result<Table, Failure> {
    bus.table(name).map_err(|e| match e {
        Error::NotFound { .. } => error(format!(
            "no value or array named {name} on this bus: create it with \
             `shmbus create value {name} TYPE` or `shmbus create array {name} TYPE LEN`"
        )),
        e => error(e),
    })
}

fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn get(bus: &Bus, name: &str) -> Result<(), Failure> {
    let t = table(bus, name)?;
    print_line(&t.read_strings().join(" "))
}

fn set(bus: &Bus, a: &SetArgs) -> Result<(), Failure> {
    let t = table(bus, &a.name)?;
    t.write_strings(&a.values).map(drop).map_err(|e| match e {
        Error::LengthMismatch {
            expected, found, ..
        } => error(format!(
            "{} {} has {expected} element{}, but {found} value{} given",
            t.kind(),
            a.name,
            if expected == 1 { "" } else { "s" },
            if found == 1 { " was" } else { "s were" }
        )),
        Error::BadParams { message, .. } => error(format!("{} {}: {message}", t.kind(), a.name)),
        e => error(e),
    })
}

fn add(bus: &Bus, a: &AddArgs) -> Result<(), Failure> {
    let t = table(bus, &a.name)?;
    let (now, _) = t.add_string(&a.delta).map_err(|e| match e {
        Error::BadParams { message, .. } => error(format!("{} {}: {message}", t.kind(), a.name)),
        e => error(e),
    })?;
    print_line(&now.join(" "))
}

/// Prints the current value, then each change, asleep on the value's
/// doorbell in between with no periodic wake-up (the daemon's death wakes
/// it, see the client's `liveness` module).
///
/// SIGINT/SIGTERM end it with [`EXIT_INTERRUPTED`] from the handler's
/// thread, while the main thread sleeps. The sleeper count it leaves raised
/// in the doorbell is not lost: the sleep is recorded in our peer slot, and
/// the daemon takes the count back when our connection ends (DESIGN.md §5),
/// as it does for a process killed asleep.
fn watch(bus: &Bus, a: &WatchArgs) -> Result<(), Failure> {
    let t = table(bus, &a.name)?;
    // No explicit flush: the main thread may hold the stdout lock (every
    // line is flushed as printed; `exit` flushes what it can without waiting).
    let _ = ctrlc::set_handler(|| std::process::exit(i32::from(EXIT_INTERRUPTED)));
    let mut since = None;
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        if let Some(since) = since {
            wait_change(&t, a, since)?;
        }
        let (bits, v) = t.read_bits();
        since = Some(v);
        let line: Vec<String> = bits.into_iter().map(|b| t.elem().format_bits(b)).collect();
        print_line(&line.join(" "))?;
        n += 1;
    }
    Ok(())
}

/// Waits until `t`'s version is no longer `since`, for `watch`: one futex
/// sleep with no slice, which a write, `--timeout`, the daemon's death or its
/// shutdown ends (SIGINT/SIGTERM end the process).
fn wait_change(t: &Table, a: &WatchArgs, since: u64) -> Result<(), Failure> {
    let r = match a.timeout {
        Some(d) => t.wait_changed_timeout(since, d),
        None => t.wait_changed(since),
    };
    match r {
        Ok(_) => Ok(()),
        Err(Error::Timeout) => Err(Failure::Timeout(format!(
            "{} {} did not change for {:?}",
            t.kind(),
            a.name,
            a.timeout.unwrap_or_default()
        ))),
        Err(e) => Err(error(e)),
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
    fn parses() {
        let c = Cli::try_parse_from(["shmbus", "--bus", "b", "recv", "p", "-n", "3"]).unwrap();
        assert_eq!(c.bus, "b");
        assert!(matches!(
            c.command,
            Command::Recv(RecvArgs {
                count: Some(3),
                timeout: None,
                create: false,
                ..
            })
        ));
        let c = Cli::try_parse_from(["shmbus", "send", "p", "a", "b", "--timeout", "0.5"]).unwrap();
        match c.command {
            Command::Send(a) => {
                assert_eq!(a.messages, ["a", "b"]);
                assert_eq!(a.timeout, Some(Duration::from_millis(500)));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["shmbus", "recv", "p", "--timeout", "-1"]).is_err());
        let c = Cli::try_parse_from(["shmbus", "recv", "p", "q", "-n", "2"]).unwrap();
        assert!(
            matches!(c.command, Command::Recv(RecvArgs { ref names, .. }) if names == &["p", "q"])
        );
        assert!(Cli::try_parse_from(["shmbus", "recv"]).is_err());
        let c = Cli::try_parse_from(["shmbus", "set", "x", "-5", "2"]).unwrap();
        assert!(
            matches!(c.command, Command::Set(SetArgs { ref values, .. }) if values == &["-5", "2"])
        );
        let c = Cli::try_parse_from(["shmbus", "add", "x", "-1.5"]).unwrap();
        assert!(matches!(c.command, Command::Add(AddArgs { ref delta, .. }) if delta == "-1.5"));
        let c = Cli::try_parse_from(["shmbus", "create", "array", "a", "d", "16"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Create(CreateCommand::Array {
                elem: ElemType::F64,
                len: 16,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["shmbus", "create", "value", "v", "z"]).is_err());
        assert!(Cli::try_parse_from(["shmbus", "set", "x"]).is_err());
        assert!(Cli::try_parse_from(["shmbus", "recv", "p", "--timeout", "x"]).is_err());
        let c = Cli::try_parse_from(["shmbus", "rm", "a", "b"]).unwrap();
        assert!(matches!(c.command, Command::Rm(RmArgs { ref names }) if names == &["a", "b"]));
        assert!(Cli::try_parse_from(["shmbus", "rm"]).is_err());
    }
}
