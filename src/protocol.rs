//! Control-plane messages between clients and the daemon.
//!
//! The control connection is a Unix stream socket. Each message is one line of
//! ASCII text ending in `\n`, at most [`MAX_LINE`] bytes, words separated by one
//! space. Names are validated (no spaces), so no quoting is needed; an error's
//! message is the rest of its line. Text keeps the protocol debuggable with
//! `socat` and costs nothing that matters: it is used only to attach, never on
//! the data plane.
//!
//! | request | response |
//! |---|---|
//! | `HELLO <abi> <pid>` | `WELCOME <slot> <generation> <epoch> <segment_size>` |
//! | `OPEN <kind> <name> <create:0/1> <p0> <p1> <p2>` | `CHANNEL <index> <generation> <kind> <offset> <length> <p0> <p1> <p2>` |
//! | `REMOVE <name>` | `REMOVED <index> <generation> <holders>` |
//! | `CLOSE <index> <generation>` | none |
//! | `BYE` | none: the client closes the connection next |
//! | any | `ERR <code> <message…>` |
//!
//! `p0 p1 p2` are the channel's parameter words, whose meaning per kind is
//! defined once in [`crate::params`] ([`OpenParams`] for `OPEN`,
//! [`ChannelParams`] for `CHANNEL`). In `OPEN`, a parameter is a number or `-`
//! (default, or "any" when opening an existing channel). This module only
//! carries the words; their shape and ranges are checked by the side that
//! uses them, so that a bad parameter is answered with `bad-params`, not
//! taken for a malformed line.
//!
//! `REMOVE` works as `unlink`: the name is gone at once (a new channel of that
//! name can be created), connections that have the channel open keep using
//! it, and its arena space is freed when the last of them closes it. The
//! answer says which entry was removed and how many connections (`holders`)
//! still have it open; 0 means its space was freed at once.
//!
//! The daemon counts, per connection, the `OPEN`s it answered with `CHANNEL`.
//! `CLOSE` gives one back: the client sends it when it dropped every handle
//! it made from that grant (and released the channel's ends). It has no
//! answer, so that a handle's drop never waits for the daemon; a `CLOSE`
//! that matches no open is ignored (and logged). Whatever is still counted
//! is given back when the connection's peer slot is recovered.
//!
//! `BYE` is a clean goodbye: the client sends it when its last handle is
//! dropped, after it released every channel end, and then closes the socket.
//! The daemon recovers the client's peer slot at the EOF that follows. An EOF
//! without `BYE` is not taken as death on its own: the daemon first asks the
//! client's pidfd whether the process exited (see the daemon's `supervisor`).

use core::fmt;

use crate::layout::Kind;
#[cfg(doc)]
use crate::params::ChannelParams;
use crate::params::OpenParams;

/// Longest line either side sends or accepts, newline included.
pub const MAX_LINE: usize = 4096;

/// Most peer slots the daemon keeps for one uid's running processes whose
/// connection ended without `BYE` (a protocol error, a socket closed under
/// them, an `exec`). Such a slot is kept until its process exits, since the
/// process may still be using its channel ends; past this many, the uid's
/// `HELLO`s are refused with `ERR full` until one of them exits.
pub const KEPT_PER_UID: u32 = 4;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// First message: the client's ABI version and pid.
    Hello {
        /// [`crate::layout::ABI_VERSION`] of the client.
        abi: u32,
        /// The client's pid in its own pid namespace. The daemon checks it
        /// against the `NSpid` chain of the `SO_PEERCRED` pid where that pid
        /// is visible to it (not across sibling pid namespaces).
        pid: u32,
    },
    /// Open a channel, creating it if absent and `create` is set.
    Open {
        /// Expected kind.
        kind: Kind,
        /// Channel name (validated by both sides).
        name: String,
        /// Create with `params` (defaults for `None`) if it does not exist.
        create: bool,
        /// The parameter words ([`OpenParams::words`]); `None` = default / any.
        params: [Option<u64>; 3],
    },
    /// Remove channel `name` (as `unlink`): answered by `REMOVED`.
    Remove {
        /// Channel name (validated by both sides).
        name: String,
    },
    /// Give back one `OPEN` of directory entry `index` of `generation`: the
    /// client dropped every handle it made from it. No answer.
    Close {
        /// Directory index, from `CHANNEL`.
        index: u32,
        /// Directory entry generation, from `CHANNEL`.
        generation: u32,
    },
    /// Clean goodbye: the client released everything and closes the
    /// connection next. No answer.
    Bye,
}

/// Error codes of `ERR` responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No channel of that name.
    NotFound,
    /// A channel of that name exists with another kind.
    KindMismatch,
    /// A channel of that name exists with other parameters.
    ParamMismatch,
    /// The name is not valid.
    BadName,
    /// Parameters out of range (e.g. a capacity that is not a power of two).
    BadParams,
    /// The arena has no room for the channel.
    NoSpace,
    /// The directory or the peer table is full.
    Full,
    /// The client speaks another ABI version.
    Abi,
    /// The peer is not allowed on this bus.
    Denied,
    /// The daemon is shutting down.
    Closing,
    /// A malformed or unexpected message.
    Protocol,
}

impl ErrorCode {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::KindMismatch => "kind-mismatch",
            Self::ParamMismatch => "param-mismatch",
            Self::BadName => "bad-name",
            Self::BadParams => "bad-params",
            Self::NoSpace => "no-space",
            Self::Full => "full",
            Self::Abi => "abi",
            Self::Denied => "denied",
            Self::Closing => "closing",
            Self::Protocol => "protocol",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "not-found" => Self::NotFound,
            "kind-mismatch" => Self::KindMismatch,
            "param-mismatch" => Self::ParamMismatch,
            "bad-name" => Self::BadName,
            "bad-params" => Self::BadParams,
            "no-space" => Self::NoSpace,
            "full" => Self::Full,
            "abi" => Self::Abi,
            "denied" => Self::Denied,
            "closing" => Self::Closing,
            "protocol" => Self::Protocol,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response from the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Registered: the client's peer slot.
    Welcome {
        /// Peer slot index; owner tags are `slot + 1`.
        slot: u16,
        /// The slot's generation.
        generation: u32,
        /// The segment's epoch (changes with each daemon start).
        epoch: u64,
        /// Size of the segment in bytes.
        segment_size: u64,
    },
    /// Where an opened channel lives.
    Channel {
        /// Directory index.
        index: u32,
        /// Directory entry generation.
        generation: u32,
        /// Its kind.
        kind: Kind,
        /// Offset of its body from the segment base.
        offset: u64,
        /// Length of its body.
        length: u64,
        /// Its parameter words ([`ChannelParams::words`]).
        params: [u64; 3],
    },
    /// A channel was removed.
    Removed {
        /// Its directory index.
        index: u32,
        /// Its directory entry generation.
        generation: u32,
        /// Connections that still have it open; 0 = its space is free again.
        holders: u64,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A message for a person.
        message: String,
    },
}

/// A line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed control message: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn bad(line: &str) -> ProtocolError {
    let mut s: String = line.chars().take(80).collect();
    if line.len() > 80 {
        s.push('…');
    }
    ProtocolError(format!("{s:?}"))
}

fn num<T: core::str::FromStr>(w: Option<&str>, line: &str) -> Result<T, ProtocolError> {
    w.and_then(|w| w.parse().ok()).ok_or_else(|| bad(line))
}

fn opt(w: Option<&str>, line: &str) -> Result<Option<u64>, ProtocolError> {
    match w {
        Some("-") => Ok(None),
        w => num(w, line).map(Some),
    }
}

fn fmt_opt(p: Option<u64>) -> String {
    p.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Request {
    /// `OPEN` of channel `name` with `params` (whose kind it asks for).
    ///
    /// # Examples
    /// ```
    /// use shmbus::params::OpenParams;
    /// use shmbus::protocol::Request;
    /// let r = Request::open("ticks", true, OpenParams::Pipe { capacity: Some(4096) });
    /// assert_eq!(r.encode(), "OPEN pipe ticks 1 4096 - -\n");
    /// ```
    pub fn open(name: &str, create: bool, params: OpenParams) -> Self {
        Self::Open {
            kind: params.kind(),
            name: name.to_owned(),
            create,
            params: params.words(),
        }
    }

    /// The request as one line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Self::Hello { abi, pid } => format!("HELLO {abi} {pid}\n"),
            Self::Open {
                kind,
                name,
                create,
                params,
            } => format!(
                "OPEN {kind} {name} {} {} {} {}\n",
                u8::from(*create),
                fmt_opt(params[0]),
                fmt_opt(params[1]),
                fmt_opt(params[2])
            ),
            Self::Remove { name } => format!("REMOVE {name}\n"),
            Self::Close { index, generation } => format!("CLOSE {index} {generation}\n"),
            Self::Bye => "BYE\n".to_owned(),
        }
    }

    /// Parses one line (with or without its newline).
    ///
    /// # Errors
    /// [`ProtocolError`] if the line is not a well-formed request.
    pub fn decode(line: &str) -> Result<Self, ProtocolError> {
        let t = line.strip_suffix('\n').unwrap_or(line);
        let mut w = t.split(' ');
        let r = match w.next() {
            Some("HELLO") => Self::Hello {
                abi: num(w.next(), line)?,
                pid: num(w.next(), line)?,
            },
            Some("OPEN") => {
                let kind = w.next().and_then(Kind::parse).ok_or_else(|| bad(line))?;
                let name = w.next().ok_or_else(|| bad(line))?.to_owned();
                let create = match w.next() {
                    Some("0") => false,
                    Some("1") => true,
                    _ => return Err(bad(line)),
                };
                let params = [
                    opt(w.next(), line)?,
                    opt(w.next(), line)?,
                    opt(w.next(), line)?,
                ];
                Self::Open {
                    kind,
                    name,
                    create,
                    params,
                }
            }
            Some("REMOVE") => Self::Remove {
                name: w.next().ok_or_else(|| bad(line))?.to_owned(),
            },
            Some("CLOSE") => Self::Close {
                index: num(w.next(), line)?,
                generation: num(w.next(), line)?,
            },
            Some("BYE") => Self::Bye,
            _ => return Err(bad(line)),
        };
        if w.next().is_some() {
            return Err(bad(line));
        }
        Ok(r)
    }
}

impl Response {
    /// The response as one line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Self::Welcome {
                slot,
                generation,
                epoch,
                segment_size,
            } => format!("WELCOME {slot} {generation} {epoch} {segment_size}\n"),
            Self::Channel {
                index,
                generation,
                kind,
                offset,
                length,
                params,
            } => format!(
                "CHANNEL {index} {generation} {kind} {offset} {length} {} {} {}\n",
                params[0], params[1], params[2]
            ),
            Self::Removed {
                index,
                generation,
                holders,
            } => format!("REMOVED {index} {generation} {holders}\n"),
            Self::Error { code, message } => {
                let m: String = message
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(MAX_LINE / 2)
                    .collect();
                format!("ERR {code} {m}\n")
            }
        }
    }

    /// Parses one line (with or without its newline).
    ///
    /// # Errors
    /// [`ProtocolError`] if the line is not a well-formed response.
    pub fn decode(line: &str) -> Result<Self, ProtocolError> {
        let t = line.strip_suffix('\n').unwrap_or(line);
        if let Some(rest) = t.strip_prefix("ERR ") {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = ErrorCode::parse(code).ok_or_else(|| bad(line))?;
            return Ok(Self::Error {
                code,
                message: message.to_owned(),
            });
        }
        let mut w = t.split(' ');
        let r = match w.next() {
            Some("WELCOME") => Self::Welcome {
                slot: num(w.next(), line)?,
                generation: num(w.next(), line)?,
                epoch: num(w.next(), line)?,
                segment_size: num(w.next(), line)?,
            },
            Some("CHANNEL") => Self::Channel {
                index: num(w.next(), line)?,
                generation: num(w.next(), line)?,
                kind: w.next().and_then(Kind::parse).ok_or_else(|| bad(line))?,
                offset: num(w.next(), line)?,
                length: num(w.next(), line)?,
                params: [
                    num(w.next(), line)?,
                    num(w.next(), line)?,
                    num(w.next(), line)?,
                ],
            },
            Some("REMOVED") => Self::Removed {
                index: num(w.next(), line)?,
                generation: num(w.next(), line)?,
                holders: num(w.next(), line)?,
            },
            _ => return Err(bad(line)),
        };
        if w.next().is_some() {
            return Err(bad(line));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let reqs = [
            Request::Hello { abi: 1, pid: 42 },
            Request::Open {
                kind: Kind::Pipe,
                name: "a.b-c_d".into(),
                create: true,
                params: [Some(4096), None, None],
            },
            Request::Remove {
                name: "jobsq".into(),
            },
            Request::Close {
                index: 3,
                generation: u32::MAX,
            },
            Request::Bye,
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        let resps = [
            Response::Welcome {
                slot: 3,
                generation: 9,
                epoch: u64::MAX,
                segment_size: 1 << 20,
            },
            Response::Channel {
                index: 1,
                generation: 2,
                kind: Kind::Pipe,
                offset: 8192,
                length: 4096 + 768,
                params: [4096, 0, 0],
            },
            Response::Removed {
                index: 0,
                generation: 7,
                holders: 2,
            },
            Response::Error {
                code: ErrorCode::NotFound,
                message: "no channel named x".into(),
            },
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn rejects_garbage() {
        for l in [
            "",
            "HELLO",
            "HELLO x 1",
            "HELLO 1 2 3",
            "OPEN pipe",
            "OPEN tube a 0 - - -",
            "BYE now",
            "REMOVE",
            "REMOVE a b",
            "CLOSE 1",
            "CLOSE 1 x",
            "CLOSE -1 2",
            "REMOVED 1 2",
            "ERR nope x",
        ] {
            assert!(
                Request::decode(l).is_err() || Response::decode(l).is_err(),
                "{l}"
            );
        }
    }
}
