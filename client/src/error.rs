//! The client's error type: [`Error`], one enum for every operation.
//!
//! One type, so that `?` works across connecting, opening, attaching, sending
//! and receiving, as Python code catches exceptions. Each variant says which
//! operations return it; every `Display` is one line that says what went wrong
//! and what to do. The core's errors (those of `shmbus::pipe` and
//! `shmbus::queue`) are wrapped into it by the `From` impls in `error/convert.rs`; the core's `Interrupted` (a blocking call stopped by the
//! client's liveness check) becomes [`Error::BusClosed`].
//!
//! | operation | variants it can return |
//! |---|---|
//! | [`Bus::connect`](crate::Bus::connect) | `BadName`, `DaemonNotRunning`, `PermissionDenied`, `NotShmbus`, `Truncated`, `SizeMismatch`, `AbiMismatch`, `NotReady`, `CorruptSegment`, `WrongOwner`, `UnsafeMode`, `BusClosed`, `Refused`, `Protocol`, `Io` |
//! | [`Bus::pipe`](crate::Bus::pipe) and friends | `BadName`, `NotFound`, `KindMismatch`, `ParamMismatch`, `BadParams`, `NoSpace`, `DirectoryFull`, `Denied`, `BusClosed`, `Corrupt`, `Protocol`, `Io` |
//! | [`Bus::value`](crate::Bus::value), [`Bus::array`](crate::Bus::array) and friends | as `Bus::pipe`, and `TypeMismatch` |
//! | [`Bus::remove`](crate::Bus::remove) | `BadName`, `NotFound`, `BusClosed`, `Protocol`, `Io` |
//! | value and array writes (`store`, `write`, `set`, `update`, `fetch_add`) | `LengthMismatch` (arrays), `BusClosed`, `Corrupt` |
//! | `wait_changed` and its `_timeout`/`_deadline` forms | `Timeout`, `BusClosed` |
//! | [`Pipe::sender`](crate::Pipe::sender) / [`receiver`](crate::Pipe::receiver) | `Busy`, `Corrupt` |
//! | pipe `try_send`, `try_claim` | `Full`, `Disconnected`, `TooLarge`, `BusClosed`, `Corrupt` |
//! | pipe `send`, `claim` and their `_timeout`/`_deadline` forms | `Disconnected`, `TooLarge`, `Timeout`, `BusClosed`, `Corrupt` |
//! | `try_recv`, `try_recv_into`, `try_recv_with` | `Empty`, `Disconnected`, `BusClosed`, `Corrupt` |
//! | `recv`, `recv_into`, `recv_with` and their `_timeout`/`_deadline` forms | `Disconnected`, `Timeout`, `BusClosed`, `Corrupt` |
//! | queue `try_put`, `try_claim` | `Full`, `TooLarge`, `BusClosed`, `Corrupt` |
//! | queue `put`, `claim` and their `_timeout`/`_deadline` forms | `TooLarge`, `Timeout`, `BusClosed`, `Corrupt` |
//! | `try_get`, `try_get_into`, `try_get_with` | `Empty`, `BusClosed`, `Corrupt` |
//! | `get`, `get_into`, `get_with` and their `_timeout`/`_deadline` forms | `Timeout`, `BusClosed`, `Corrupt` |
//! | `task_done` | `TaskDone`, `BusClosed` |
//! | `join` and its `_timeout`/`_deadline` forms | `Timeout`, `BusClosed` |
//! | [`Topic::subscribe`](crate::Topic::subscribe) | `TooManySubscribers`, `BusClosed` |
//! | topic `try_publish`, `try_claim` | `Full` (lossless), `TooLarge`, `BusClosed`, `Corrupt` |
//! | topic `publish`, `claim` and their `_timeout`/`_deadline` forms | `TooLarge`, `Timeout`, `BusClosed`, `Corrupt` |
//! | subscriber `try_recv`, `try_recv_into`, `try_recv_with` | `Empty`, `Lagged` (lossy), `BusClosed`, `Corrupt` |
//! | subscriber `recv`, `recv_into`, `recv_with` and their `_timeout`/`_deadline` forms | `Lagged` (lossy), `Timeout`, `BusClosed`, `Corrupt` |
//!
//! `Timeout` comes only from the `_timeout` and `_deadline` forms.

use std::fmt;
use std::io;
use std::path::PathBuf;

use shmbus::layout::{Kind, LayoutError};
use shmbus::name::NameError;
use shmbus::protocol::ErrorCode;

/// `Result` with the client's [`Error`].
///
/// # Examples
/// ```no_run
/// fn hello() -> shmbus_client::Result<()> {
///     let mut tx = shmbus_client::Bus::connect()?.pipe("greetings")?.sender()?;
///     tx.send(b"hello")
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One end of a pipe, as named in [`Error::Busy`].
///
/// # Examples
/// ```
/// assert_eq!(shmbus_client::End::Sender.to_string(), "sender");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// The sending (producer) end.
    Sender,
    /// The receiving (consumer) end.
    Receiver,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sender => "sender",
            Self::Receiver => "receiver",
        })
    }
}

/// Everything that can go wrong in the client; see the [module docs](self) for
/// which operation returns which variant.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use shmbus_client::{Bus, Error};
///
/// let bus = match Bus::connect_to("prices") {
///     Ok(bus) => bus,
///     Err(e @ Error::DaemonNotRunning { .. }) => {
///         eprintln!("{e}"); // "no shmbusd serves bus prices: start it with ..."
///         std::process::exit(1);
///     }
///     Err(e) => return Err(e),
/// };
/// let mut rx = bus.pipe("ticks")?.receiver()?;
/// loop {
///     match rx.recv_timeout(Duration::from_secs(1)) {
///         Ok(frame) => println!("{} bytes", frame.len()),
///         Err(Error::Timeout) => println!("quiet second"),
///         Err(Error::Disconnected) => break, // the sender is done
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), Error>(())
/// ```
///
/// # `Debug` prints the message
/// `Debug` prints the same one-line message as `Display`, followed by the
/// variant's name in parentheses, so a `main` that returns
/// `Result<(), Error>` (Rust prints its error with `Debug`) and `unwrap()`
/// show the advice rather than a struct dump:
///
/// ```text
/// Error: no shmbusd serves bus nodaemon: start it with `shmbusd --name nodaemon` (DaemonNotRunning)
/// ```
///
/// The fields are all public: match on the variant to use them.
///
/// ```no_run
/// fn main() -> Result<(), shmbus_client::Error> {
///     let bus = shmbus_client::Bus::connect()?;
///     bus.value::<u64>("hits")?.fetch_add(1)?;
///     Ok(())
/// }
/// ```
#[non_exhaustive]
pub enum Error {
    // ---- connecting -------------------------------------------------------
    /// A bus or channel name is not valid (`[A-Za-z0-9._-]`, not `.`/`..`).
    BadName {
        /// `"bus"` or `"channel"`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        error: NameError,
    },
    /// No daemon serves this bus: there is no segment or socket, or the socket
    /// refuses connections (left behind by a daemon that died).
    DaemonNotRunning {
        /// The bus name.
        bus: String,
        /// True if a socket left behind by a dead daemon was found.
        stale: bool,
    },
    /// The segment or the socket exists, but this user may not open it.
    PermissionDenied {
        /// The file concerned.
        path: PathBuf,
        /// The error from the system.
        source: io::Error,
    },
    /// `/dev/shm/NAME` exists but is not a shmbus segment: another program's
    /// file, a symbolic link, a directory, or a bad magic number.
    NotShmbus {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The segment file is smaller than a segment header.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The segment's size disagrees with the size its header records.
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size recorded in the header.
        header: u64,
        /// Size of the file.
        file: u64,
    },
    /// The segment was laid out by a different ABI version of shmbus.
    AbiMismatch {
        /// Version found in the segment.
        found: u32,
        /// Version this library speaks.
        expected: u32,
    },
    /// The daemon has not finished setting the segment up; try again shortly.
    NotReady {
        /// The bus name.
        bus: String,
    },
    /// The segment's header is inconsistent: unknown state, or a region out
    /// of bounds or misaligned.
    CorruptSegment {
        /// The file.
        path: PathBuf,
        /// The first inconsistency found.
        error: LayoutError,
    },
    /// The segment file is not owned by the daemon's user (`SO_PEERCRED` of
    /// the control connection): someone else made or took it. Not mapped.
    WrongOwner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The daemon's uid.
        daemon: u32,
    },
    /// The segment file has permission bits the daemon does not set (the
    /// daemon gives the segment the mode of its socket). Not mapped.
    UnsafeMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The bits the daemon set on its socket.
        allowed: u32,
    },
    /// The daemon refused to register this client (peer table full, not
    /// allowed, other ABI).
    Refused {
        /// The daemon's reason code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
    },

    // ---- opening channels -------------------------------------------------
    /// No channel of that name exists (and it was not to be created).
    NotFound {
        /// The channel name.
        channel: String,
    },
    /// A channel of that name exists with another kind.
    KindMismatch {
        /// The channel name.
        channel: String,
        /// The kind asked for.
        expected: Kind,
        /// The kind it has, if the directory says.
        found: Option<Kind>,
    },
    /// A channel of that name exists with other parameters (e.g. another
    /// capacity).
    ParamMismatch {
        /// The channel name.
        channel: String,
        /// The daemon's explanation.
        message: String,
    },
    /// Parameters out of range (e.g. a capacity that is not a power of two).
    BadParams {
        /// The channel name.
        channel: String,
        /// What is wrong.
        message: String,
    },
    /// The segment has no room left for the channel.
    NoSpace {
        /// The channel name.
        channel: String,
        /// The daemon's explanation.
        message: String,
    },
    /// A value or array of that name exists with another element type or
    /// length (`Bus::value`, `Bus::array` and their `open_` forms).
    TypeMismatch {
        /// The channel name.
        channel: String,
        /// What was asked for, e.g. `f64[16]` or `i32 value`.
        expected: String,
        /// What the channel holds.
        found: String,
    },
    /// A slice passed to an array operation has the wrong number of
    /// elements.
    LengthMismatch {
        /// The channel name.
        channel: String,
        /// The array's length.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The bus's directory has no free entry for another channel.
    DirectoryFull {
        /// The channel name.
        channel: String,
        /// The daemon's explanation.
        message: String,
    },
    /// This client may not open the channel.
    Denied {
        /// The channel name.
        channel: String,
        /// The daemon's explanation.
        message: String,
    },

    // ---- attaching --------------------------------------------------------
    /// Another handle already holds this end of the pipe; each end has one
    /// holder at a time on the whole bus.
    Busy {
        /// The channel name.
        channel: String,
        /// Which end.
        end: End,
        /// Peer slot of the holder.
        slot: u16,
        /// pid of the holder, if the peer table says.
        pid: Option<u32>,
        /// True if the holder is this very connection.
        this_connection: bool,
    },

    // ---- data plane -------------------------------------------------------
    /// `try_send`: no room now; try again once the receiver has read.
    Full,
    /// `try_recv`: nothing to read now.
    Empty,
    /// Receiving: end of file (Python's `EOFError`): a sender attached since
    /// the receiver was claimed has gone, none is attached, and everything
    /// was read (see [`PipeReceiver`](crate::PipeReceiver)'s "End of file").
    /// Sending: the receiver has gone and the pipe is full (Python's
    /// `BrokenPipeError`).
    Disconnected,
    /// The frame can never fit in this pipe or queue.
    TooLarge {
        /// Its length.
        len: usize,
        /// The largest frame the channel takes: a pipe's `capacity / 8`, a
        /// queue's slot size.
        max: usize,
        /// The channel's kind, [`Kind::Pipe`] or [`Kind::Queue`].
        kind: Kind,
    },
    /// A `_timeout` or `_deadline` call ran out of time.
    Timeout,
    /// `Queue::task_done` was called more times than items were put
    /// (Python's `ValueError` from `JoinableQueue.task_done`).
    TaskDone,
    /// A lossy topic's subscriber fell more than a ring behind: this many
    /// messages were overwritten before it read them. The next receive
    /// continues with the oldest message still in the ring (tokio's
    /// `broadcast::error::RecvError::Lagged`).
    Lagged(u64),
    /// The topic already has its largest number of subscribers.
    TooManySubscribers {
        /// The topic's name.
        topic: String,
        /// Its largest number of subscribers.
        max: u64,
    },
    /// The daemon is shutting down, exited, was killed or was replaced: this
    /// connection is over. Reconnect once a daemon serves the bus again.
    BusClosed,
    /// A waiting call was stopped by the process's interrupt check
    /// ([`set_interrupt_check`](crate::set_interrupt_check)), typically
    /// because a signal arrived; nothing was sent or taken.
    Interrupted,
    /// A channel's shared state is inconsistent (another process scribbled on
    /// the segment, or the daemon pointed outside it).
    Corrupt(&'static str),

    // ---- anything else ----------------------------------------------------
    /// The daemon answered something this client does not understand, or the
    /// daemon and the segment disagree.
    Protocol(String),
    /// An I/O error talking to the daemon or opening the segment.
    Io {
        /// What the client was doing.
        doing: &'static str,
        /// The error from the system.
        source: io::Error,
    },
}

const RESTART_HINT: &str = "restart shmbusd to recreate the bus";

impl Error {
    /// What the core's `Interrupted` means: the process's interrupt check
    /// stopped the wait ([`Error::Interrupted`]), else the closed-bus check
    /// did ([`Error::BusClosed`]).
    #[cold]
    pub(crate) fn closed_or_interrupted() -> Self {
        if crate::interrupt::take_stopped() {
            Self::Interrupted
        } else {
            Self::BusClosed
        }
    }
}

/// The `Display` message and the variant's name (see [`Error`]): what `main`
/// prints when it returns an `Err`, and what `unwrap()` panics with.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({})", self.kind().name())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName { what, name, error } => write!(f, "bad {what} name {name:?}: {error}"),
            Self::DaemonNotRunning { bus, stale } => {
                write!(f, "no shmbusd serves bus {bus}")?;
                if *stale {
                    write!(f, " (its socket was left behind by a daemon that died)")?;
                }
                write!(f, ": start it with `shmbusd --name {bus}`")
            }
            Self::PermissionDenied { path, source } => write!(
                f,
                "cannot open {}: {source}; run as the user that started shmbusd, \
                 or start it with a wider --mode",
                path.display()
            ),
            Self::NotShmbus { path, reason } => write!(
                f,
                "{} is not a shmbus segment ({reason}); if it belongs to another program \
                 pick another bus name (--bus / $SHMBUS_BUS), otherwise remove it",
                path.display()
            ),
            Self::Truncated { path, size } => write!(
                f,
                "{} is only {size} bytes, too small for a shmbus segment: it is not a bus \
                 or was truncated (shmbusd never shows a half-made segment); if it belongs \
                 to another program pick another bus name, otherwise remove it and restart \
                 shmbusd",
                path.display()
            ),
            Self::SizeMismatch { path, header, file } => write!(
                f,
                "{} is {file} bytes but its header says {header}: the file was truncated \
                 or extended by someone else; {RESTART_HINT}",
                path.display()
            ),
            Self::AbiMismatch { found, expected } => write!(
                f,
                "the bus uses shmbus ABI version {found}, this program speaks version \
                 {expected}: use a client and a daemon from the same shmbus release"
            ),
            Self::NotReady { bus } => write!(
                f,
                "shmbusd is still setting up bus {bus}; try again in a moment"
            ),
            Self::CorruptSegment { path, error } => {
                write!(f, "{}: {error}; {RESTART_HINT}", path.display())
            }
            Self::WrongOwner {
                path,
                owner,
                daemon,
            } => write!(
                f,
                "{} belongs to uid {owner}, but shmbusd runs as uid {daemon}: the segment \
                 was replaced or given away; not mapping it; {RESTART_HINT}",
                path.display()
            ),
            Self::UnsafeMode {
                path,
                mode,
                allowed,
            } => write!(
                f,
                "{} has mode {mode:04o}, which allows more than shmbusd's mode {allowed:04o} \
                 (that of its socket): someone changed it; not mapping it; {RESTART_HINT}",
                path.display()
            ),
            Self::Refused { code, message } => {
                write!(f, "shmbusd refused this client ({code}): {message}")
            }
            Self::NotFound { channel } => write!(
                f,
                "no channel named {channel} on this bus: create it first \
                 (e.g. `Bus::pipe` or `shmbus send {channel}`)"
            ),
            Self::KindMismatch {
                channel,
                expected,
                found: Some(found),
            } => write!(
                f,
                "channel {channel} is {}, not {}: open it as {} or use another name",
                found.with_article(),
                expected.with_article(),
                found.with_article()
            ),
            Self::KindMismatch {
                channel,
                expected,
                found: None,
            } => write!(
                f,
                "channel {channel} exists but is not {}: use another name",
                expected.with_article()
            ),
            Self::ParamMismatch { channel, message } => write!(
                f,
                "channel {channel} exists with other parameters ({message}): \
                 open it without parameters or use another name"
            ),
            Self::TypeMismatch {
                channel,
                expected,
                found,
            } => write!(
                f,
                "channel {channel} holds {found}, not {expected}: open it with its own \
                 element type and length, or use another name"
            ),
            Self::LengthMismatch {
                channel,
                expected,
                found,
            } => write!(
                f,
                "array {channel} has {expected} elements, but {found} were given"
            ),
            Self::BadParams { channel, message } => {
                write!(f, "bad parameters for channel {channel}: {message}")
            }
            Self::NoSpace { channel, message } => write!(
                f,
                "no room in the bus for channel {channel} ({message}): use a smaller \
                 capacity or restart shmbusd with a larger --size"
            ),
            Self::DirectoryFull { channel, message } => write!(
                f,
                "cannot add channel {channel}: the bus's directory is full ({message}); \
                 restart shmbusd with a larger --max-channels"
            ),
            Self::Denied { channel, message } => {
                write!(f, "not allowed to open channel {channel}: {message}")
            }
            Self::Busy {
                channel,
                end,
                slot,
                pid,
                this_connection,
            } => {
                write!(f, "pipe {channel} already has a {end}")?;
                if *this_connection {
                    return write!(f, " held by this program: drop the other handle first");
                }
                match pid {
                    Some(pid) => write!(f, " (process {pid}, peer slot {slot})")?,
                    None => write!(f, " (peer slot {slot})")?,
                }
                write!(
                    f,
                    "; a pipe has one {end} at a time: stop that one or use another pipe"
                )
            }
            Self::Full => write!(
                f,
                "pipe or queue is full: the receivers are not keeping up; retry, or use a blocking send"
            ),
            Self::Empty => write!(f, "pipe or queue is empty: nothing new has been sent"),
            Self::Disconnected => write!(
                f,
                "pipe disconnected: its other end has gone (end of file when receiving; \
                 nobody left to read when sending)"
            ),
            Self::TooLarge {
                len,
                max,
                kind: Kind::Queue,
            } => write!(
                f,
                "item of {len} bytes is larger than this queue's slot size of {max} bytes: \
                 create the queue with a larger slot size"
            ),
            Self::TooLarge {
                len,
                max,
                kind: Kind::Topic,
            } => write!(
                f,
                "message of {len} bytes is larger than this topic's slot size of {max} bytes: \
                 create the topic with a larger slot size"
            ),
            Self::TooLarge { len, max, kind } => write!(
                f,
                "frame of {len} bytes is larger than this {kind}'s limit of {max} bytes \
                 (its capacity / 8): create the {kind} with a larger capacity"
            ),
            Self::Timeout => write!(f, "timed out"),
            Self::TaskDone => write!(
                f,
                "task_done() called more times than items were put in the queue"
            ),
            Self::Lagged(n) => write!(
                f,
                "subscriber lagged behind a lossy topic: {n} messages were overwritten before \
                 it read them; the next receive continues with the oldest one still there"
            ),
            Self::TooManySubscribers { topic, max } => write!(
                f,
                "topic {topic:?} already has its largest number of subscribers ({max}): \
                 create it with a larger max_subscribers"
            ),
            Self::Interrupted => f.write_str(
                "the wait was interrupted (the process's interrupt check, typically a signal); \
                 nothing was sent or taken: call again to keep waiting",
            ),
            Self::BusClosed => write!(
                f,
                "the bus was closed: shmbusd stopped or restarted; reconnect once it runs again"
            ),
            Self::Corrupt(what) => write!(
                f,
                "corrupt channel: {what}; another process wrote into the segment; {RESTART_HINT}"
            ),
            Self::Protocol(message) => write!(
                f,
                "unexpected answer from shmbusd: {message}; \
                 are the client and the daemon from the same shmbus release?"
            ),
            Self::Io { doing, source } => write!(f, "{doing}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadName { error, .. } => Some(error),
            Self::PermissionDenied { source, .. } | Self::Io { source, .. } => Some(source),
            Self::CorruptSegment { error, .. } => Some(error),
            _ => None,
        }
    }
}

mod convert;
pub(crate) mod kind;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_interrupted_is_bus_closed() {
        assert!(matches!(
            Error::from(shmbus::pipe::SendError::Interrupted),
            Error::BusClosed
        ));
        assert!(matches!(
            Error::from(shmbus::pipe::RecvError::Interrupted),
            Error::BusClosed
        ));
        assert!(matches!(
            Error::from(shmbus::pipe::TrySendError::Full),
            Error::Full
        ));
        assert!(matches!(
            Error::from(shmbus::pipe::TryRecvError::Empty),
            Error::Empty
        ));
    }

    #[test]
    fn messages_are_one_line() {
        let errs = [
            Error::DaemonNotRunning {
                bus: "b".into(),
                stale: true,
            },
            Error::NotFound {
                channel: "c".into(),
            },
            Error::Busy {
                channel: "c".into(),
                end: End::Sender,
                slot: 3,
                pid: Some(42),
                this_connection: false,
            },
            Error::TooLarge {
                len: 9,
                max: 8,
                kind: Kind::Pipe,
            },
            Error::TooLarge {
                len: 9,
                max: 8,
                kind: Kind::Queue,
            },
            Error::BusClosed,
            Error::Io {
                doing: "x",
                source: io::Error::other("y"),
            },
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
        }
        let s = Error::DaemonNotRunning {
            bus: "b".into(),
            stale: false,
        }
        .to_string();
        assert_eq!(
            s,
            "no shmbusd serves bus b: start it with `shmbusd --name b`"
        );
    }

    /// `fn main() -> Result<(), Error>` prints `Error: {:?}`: the message must
    /// be there, not a struct dump.
    #[test]
    fn debug_is_the_message_and_the_variant() {
        let e = Error::DaemonNotRunning {
            bus: "nodaemon".into(),
            stale: false,
        };
        assert_eq!(
            format!("{e:?}"),
            "no shmbusd serves bus nodaemon: start it with `shmbusd --name nodaemon` \
             (DaemonNotRunning)"
        );
        assert_eq!(format!("{e:#?}"), format!("{e:?}"));
        let e = Error::Corrupt("bad record");
        assert_eq!(format!("{e:?}"), format!("{e} (Corrupt)"));
        let e = Error::Io {
            doing: "connecting",
            source: io::Error::other("boom"),
        };
        assert_eq!(format!("{e:?}"), "connecting: boom (Io)");
        assert_eq!(format!("{:?}", Error::Timeout), "timed out (Timeout)");
    }
}
