//! Serving one admitted control connection, on its own thread: its
//! requests, and the recovery of its peer slot when it ends (the protocol is
//! in `shmbus::protocol`).
//!
//! # A connection
//! # A connection
//! 1. At accept, before a byte is read, the peer's uid, gid and groups
//!    (`SO_PEERCRED`, `SO_PEERGROUPS`) must be allowed by the bus's policy
//!    ([`Spec::allows`](crate::config::Spec::allows): the daemon's uid, root, `--allow-uid`,
//!    `--allow-group`), and a pidfd for its process must be had
//!    (`SO_PEERPIDFD`, or `pidfd_open` confirmed by the start time; see
//!    [`crate::process`]). Otherwise it gets `ERR` and is closed.
//! 2. The first line must be `HELLO <abi> <pid>` within
//!    [`HELLO_TIMEOUT`](crate::admission::HELLO_TIMEOUT) of the accept: the
//!    ABI must be ours, the pid the client's (where it is visible). Then the
//!    client gets a peer slot, a thread, and `WELCOME` (see
//!    [`crate::admission`] for the budget of connections waiting for
//!    `HELLO`).
//! 3. Then any number of `OPEN` and `REMOVE` requests, each answered by
//!    `CHANNEL` / `REMOVED` or `ERR`, and `CLOSE`s (no answer; see
//!    [`removal`]), and at most one `BYE` (no answer), after which the client
//!    closes.
//! 4. A malformed line, a line over `MAX_LINE` bytes, a second `HELLO`, a
//!    failed `HELLO` or a request after `BYE` gets `ERR` and the connection is
//!    closed.
//! 5. While it waits for a request, the thread polls the socket and the
//!    pidfd together. When the connection ends, the slot is recovered at once
//!    if the client said `BYE` or its process has exited; a live process
//!    without `BYE` keeps its slot until its pidfd says it exited (see
//!    [`crate::supervisor`] for the whole policy), at most [`KEPT_PER_UID`](shmbus::protocol::KEPT_PER_UID)
//!    such slots per uid.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{MutexGuard, PoisonError};
use std::time::Duration;

use shmbus::layout::Kind;
use shmbus::name;
use shmbus::params::OpenParams;
use shmbus::protocol::{ErrorCode, Request, Response, MAX_LINE};

use crate::alloc::{AllocError, Channel};
use crate::arena::align_line;
use crate::process::ClientProc;
use crate::server::{alloc_msg, error, Bus, State};
use crate::supervisor;

mod removal;

/// How long an EOF without `BYE` waits for the pidfd before the client is
/// taken to be alive. A dying process closes its files before the kernel marks
/// it exited (`exit_files` comes before `exit_notify` in `do_exit`), so the
/// EOF of a SIGKILLed client arrives a moment before its pidfd turns readable.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// While an `OPEN` or `REMOVE` waits for another client's creation of the
/// same channel, how often it looks at whether its own client exited.
const WATCH_SLICE: Duration = Duration::from_millis(200);

/// A connection that was admitted: handed to its own thread.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) stream: UnixStream,
    pub(crate) process: ClientProc,
    pub(crate) slot: u16,
    /// The `WELCOME` to send first.
    pub(crate) welcome: Response,
}

/// How a connection ended, for the log.
enum End {
    /// The client closed it.
    Eof,
    /// We closed it after an `ERR` (protocol violation or refused `HELLO`).
    Refused,
    /// A read or write failed (a client killed mid-write, a timeout, shutdown).
    Io(io::Error),
    /// The client's process exited while the connection was still open: a
    /// process it forked inherited the socket.
    Exited,
}

/// What woke a connection thread waiting for a request.
enum Input {
    /// The socket has bytes or EOF.
    Ready,
    /// The pidfd: the client's process exited.
    Exited,
    /// Nothing within the timeout.
    TimedOut,
}

/// Why a line could not be read.
enum LineError {
    /// Over [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// The connection ended in the middle of a line.
    Truncated,
    Io(io::Error),
}

/// Reads one line (newline included) of at most [`MAX_LINE`] bytes into `buf`.
/// `Ok(false)` at a clean end of stream.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, LineError> {
    buf.clear();
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if avail.is_empty() {
            return if buf.is_empty() {
                Ok(false)
            } else {
                Err(LineError::Truncated)
            };
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&avail[..take.min(room)]);
        r.consume(take);
        if buf.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
        if done {
            return Ok(true);
        }
    }
}

/// One client connection.
struct Conn<'a> {
    bus: &'a Bus,
    stream: &'a UnixStream,
    pid: u32,
    /// The client's process.
    process: &'a ClientProc,
    /// Set once `HELLO` succeeded.
    slot: Option<u16>,
    /// Set when the client said `BYE`.
    bye: bool,
}

/// Serves an admitted client until its connection ends, then recovers its
/// slot (see the module docs).
pub(crate) fn serve(bus: &Bus, admitted: Admitted) {
    let Admitted {
        stream,
        process,
        slot,
        welcome,
    } = admitted;
    let pid = process.pid();
    let mut conn = Conn {
        bus,
        stream: &stream,
        pid,
        process: &process,
        slot: Some(slot),
        bye: false,
    };
    let end = match conn.send(&welcome) {
        Ok(()) => conn.run(),
        Err(e) => End::Io(e),
    };
    let Some(slot) = conn.slot else { return };
    let how = match &end {
        End::Eof => "closed its connection".to_owned(),
        End::Refused => "was disconnected after a protocol error".to_owned(),
        End::Io(e) => format!("lost its connection ({e})"),
        End::Exited => "exited".to_owned(),
    };
    let why = if conn.bye {
        "said BYE".to_owned()
    } else if let End::Exited = end {
        // A process it forked holds the socket; that child must connect its
        // own `Bus`. Closing the connection tells it so.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        "exited while its connection stayed open (inherited by a child?); connection closed"
            .to_owned()
    } else {
        // Whatever ended it, the connection is over for the client too (it
        // may still hold it open after our `ERR`): close it before waiting.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        match watch_until_exit(bus, &process, slot, &how) {
            Watched::Exited(false) => format!("{how} and exited"),
            Watched::Exited(true) => format!("{how} earlier and has now exited"),
            Watched::Closing => format!("{how}; the daemon is shutting down"),
        }
    };
    let (r, freed) = {
        let mut st = bus.state();
        let st = &mut *st;
        let r = supervisor::recover(&mut st.peers, &st.channels, &bus.seg, slot);
        // After the recovery above repaired what the peer held in them.
        (r, st.channels.release_peer(&bus.seg, slot))
    };
    bus.log_freed(&freed, pid, slot);
    bus.log.info(format_args!(
        "client {} slot {slot} {why}; slot freed, {} pipe ends released, \
         {} value locks cleared, {} queue cells repaired, \
         {} sleeper counts cleared ({} wait records ignored)",
        process.who(),
        r.released_ends,
        r.cleared_locks,
        r.repaired_cells,
        r.cleared_waits,
        r.ignored_waits
    ));
}

/// How [`watch_until_exit`] ended.
enum Watched {
    /// The process exited; `true` if it was seen alive first.
    Exited(bool),
    /// The daemon is shutting down: recover now, whatever the process does.
    Closing,
}

/// After an end of connection without `BYE`: waits for the client's process
/// to exit. A live process keeps its slot and channel ends (it may still be
/// using them, e.g. after something closed its socket under it or it
/// exec'd); it is logged once and watched until its pidfd says it exited.
///
/// It sleeps in one `poll` of the pidfd and [`Bus::closing_fd`], with no
/// timeout, while the slot counts towards its uid's [`KEPT_PER_UID`](shmbus::protocol::KEPT_PER_UID).
fn watch_until_exit(bus: &Bus, process: &ClientProc, slot: u16, how: &str) -> Watched {
    if bus.state().closing {
        return Watched::Closing;
    }
    if process.exited(Some(EXIT_GRACE)) {
        return Watched::Exited(false);
    }
    let uid = {
        let mut st = bus.state();
        let Some(uid) = st.peers.get(slot).map(|p| p.uid) else {
            // Not ours to keep (cannot happen: the slot is freed by us).
            return Watched::Exited(false);
        };
        *st.kept.entry(uid).or_default() += 1;
        uid
    };
    bus.log.info(format_args!(
        "client pid {} uid {uid} slot {slot} {how} without BYE but is still running: its \
         slot and channel ends are kept until it exits",
        process.pid()
    ));
    let watched = loop {
        match wait_exit_or_closing(process, &bus.closing_fd) {
            Ok(true) => break Watched::Exited(true),
            Ok(false) if bus.state().closing => break Watched::Closing,
            // The eventfd is only written at shutdown.
            Ok(false) => {}
            // `poll` failed (out of memory): fall back to looking up
            // from the pidfd every [`WATCH_SLICE`].
            Err(_) if process.exited(Some(WATCH_SLICE)) => break Watched::Exited(true),
            Err(_) if bus.state().closing => break Watched::Closing,
            Err(_) => {}
        }
    };
    let mut st = bus.state();
    if let Some(n) = st.kept.get_mut(&uid) {
        *n -= 1;
        if *n == 0 {
            st.kept.remove(&uid);
        }
    }
    watched
}

/// Sleeps until `process` exits (true) or `closing` turns readable (false).
fn wait_exit_or_closing(process: &ClientProc, closing: &OwnedFd) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let mut fds = [
            PollFd::new(process.pidfd(), PollFlags::IN),
            PollFd::new(closing, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) if !fds[0].revents().is_empty() => return Ok(true),
            Ok(_) if !fds[1].revents().is_empty() => return Ok(false),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Conn<'_> {
    /// Waits until the socket is readable or the client's process exits (or
    /// `timeout` passes).
    fn wait_input(&self, timeout: Option<Duration>) -> io::Result<Input> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let ts = timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        loop {
            let mut fds = [
                PollFd::new(self.stream, PollFlags::IN),
                PollFd::new(self.process.pidfd(), PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(0) => return Ok(Input::TimedOut),
                // The socket first: bytes (a BYE, say) sent before the process
                // exited are read, and its EOF handled, before the pidfd.
                Ok(_) if !fds[0].revents().is_empty() => return Ok(Input::Ready),
                Ok(_) => return Ok(Input::Exited),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn run(&mut self) -> End {
        let mut reader = BufReader::new(self.stream);
        let mut line = Vec::with_capacity(256);
        loop {
            if reader.buffer().is_empty() {
                match self.wait_input(None) {
                    Ok(Input::Ready) => {}
                    Ok(Input::Exited) => return End::Exited,
                    Ok(Input::TimedOut) => continue,
                    Err(e) => return End::Io(e),
                }
            }
            match read_line(&mut reader, &mut line) {
                Ok(true) => {}
                Ok(false) => return End::Eof,
                Err(LineError::TooLong) => {
                    let e = error(
                        ErrorCode::Protocol,
                        format!("line longer than {MAX_LINE} bytes"),
                    );
                    return self.refuse(e);
                }
                Err(LineError::Truncated) => return End::Eof,
                Err(LineError::Io(e)) => return End::Io(e),
            }
            let req = match std::str::from_utf8(&line)
                .map_err(|_| "line is not UTF-8".to_owned())
                .and_then(|l| Request::decode(l).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(m) => return self.refuse(error(ErrorCode::Protocol, m)),
            };
            if self.bye {
                return self.refuse(error(ErrorCode::Protocol, "a request after BYE"));
            }
            let resp = match (req, self.slot) {
                (Request::Bye, Some(_)) => {
                    self.bye = true;
                    continue;
                }
                (Request::Bye, None) => {
                    return self.refuse(error(
                        ErrorCode::Protocol,
                        "the first message must be HELLO",
                    ))
                }
                // HELLO was read and answered by `crate::admission`.
                (Request::Hello { .. }, _) => {
                    return self.refuse(error(ErrorCode::Protocol, "HELLO sent twice"))
                }
                (Request::Open { .. }, None) => {
                    return self.refuse(error(
                        ErrorCode::Protocol,
                        "the first message must be HELLO",
                    ))
                }
                (
                    Request::Open {
                        kind,
                        name,
                        create,
                        params,
                    },
                    Some(slot),
                ) => self.open(slot, kind, &name, create, params),
                (Request::Remove { name }, Some(slot)) => self.remove(slot, &name),
                (Request::Close { index, generation }, Some(slot)) => {
                    self.close(slot, index, generation);
                    continue;
                }
                (Request::Remove { .. } | Request::Close { .. }, None) => {
                    return self.refuse(error(
                        ErrorCode::Protocol,
                        "the first message must be HELLO",
                    ))
                }
            };
            if let Err(e) = self.send(&resp) {
                return End::Io(e);
            }
        }
    }

    fn send(&self, r: &Response) -> io::Result<()> {
        let mut s = self.stream;
        s.write_all(r.encode().as_bytes())
    }

    /// Sends a final `ERR` and ends the connection.
    fn refuse(&self, r: Response) -> End {
        match self.send(&r) {
            Ok(()) => End::Refused,
            Err(e) => End::Io(e),
        }
    }

    /// The daemon's state, locked, for a request about channel `cname`
    /// (`OPEN`, `REMOVE`): the name is valid, nobody else is creating the
    /// channel (see [`state_once_created`](Self::state_once_created)), and
    /// the daemon is not shutting down; otherwise the `ERR` to answer.
    fn state_for(&self, cname: &str) -> Result<MutexGuard<'_, State>, Response> {
        if let Err(e) = name::validate_channel(cname) {
            return Err(error(
                ErrorCode::BadName,
                format!("bad channel name {cname:?}: {e}"),
            ));
        }
        let st = self.state_once_created(cname)?;
        if st.closing {
            return Err(error(ErrorCode::Closing, "the daemon is shutting down"));
        }
        Ok(st)
    }

    /// The daemon's state, locked, once channel `cname` is not being
    /// created by another client: waits until it is published (without the
    /// lock: `created` releases it), watching our own process so that its
    /// death is never stuck behind the creation. `OPEN` and `REMOVE` of a
    /// name go through here.
    fn state_once_created(&self, cname: &str) -> Result<MutexGuard<'_, State>, Response> {
        let bus = self.bus;
        let mut st = bus.state();
        while !st.closing && st.channels.creating(cname) {
            st = bus
                .created
                .wait_timeout(st, WATCH_SLICE)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if self.process.exited(Some(Duration::ZERO)) {
                return Err(error(ErrorCode::Closing, "the client exited"));
            }
        }
        Ok(st)
    }

    fn open(
        &self,
        slot: u16,
        kind: Kind,
        cname: &str,
        create: bool,
        params: [Option<u64>; 3],
    ) -> Response {
        let bus = self.bus;
        let mut st = match self.state_for(cname) {
            Ok(st) => st,
            Err(r) => return r,
        };
        if let Some((index, ch)) = st.channels.get(cname) {
            return match check_existing(ch, kind, params) {
                Ok(()) => {
                    let r = channel_response(index, ch);
                    st.channels.hold(&bus.seg, index, slot);
                    r
                }
                Err(r) => r,
            };
        }
        if !create {
            return error(
                ErrorCode::NotFound,
                format!("no channel named {cname} on bus {}", bus.name),
            );
        }
        let p = match OpenParams::from_words(kind, params).and_then(|w| w.resolve()) {
            Ok(p) => p,
            Err(m) => return error(ErrorCode::BadParams, m),
        };
        match bus.create_unlocked(st, cname, p, slot) {
            Ok((index, ch, free, count)) => {
                bus.log.info(format_args!(
                    "created {kind} {cname} ({}) at offset {} for client pid {} slot {slot} \
                     ({} channels, {} arena bytes left)",
                    ch.params,
                    ch.offset,
                    self.pid,
                    count + 1,
                    free - align_line(ch.length),
                ));
                channel_response(index, &ch)
            }
            Err(e @ AllocError::Full { .. }) => error(ErrorCode::Full, alloc_msg(e)),
            Err(e @ AllocError::NoSpace { .. }) => error(
                ErrorCode::NoSpace,
                format!("{kind} {cname}: {}", alloc_msg(e)),
            ),
        }
    }
}

/// Checks an `OPEN` of an existing channel against what it is.
fn check_existing(ch: &Channel, kind: Kind, want: [Option<u64>; 3]) -> Result<(), Response> {
    if ch.kind() != kind {
        return Err(error(
            ErrorCode::KindMismatch,
            format!(
                "channel {} is {}, not {}",
                ch.name,
                ch.kind().with_article(),
                kind.with_article()
            ),
        ));
    }
    match ch.params.mismatch(want) {
        None => Ok(()),
        Some(m) => Err(error(
            ErrorCode::ParamMismatch,
            format!("{} {} has {m}", ch.kind(), ch.name),
        )),
    }
}

fn channel_response(index: u32, ch: &Channel) -> Response {
    Response::Channel {
        index,
        generation: ch.generation,
        kind: ch.kind(),
        offset: ch.offset,
        length: ch.length,
        params: ch.params.words(),
    }
}

#[cfg(test)]
mod tests {
    use shmbus::params::ChannelParams;

    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<String, &'static str>> {
        let mut r = BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut r, &mut buf) {
                Ok(true) => out.push(Ok(String::from_utf8(buf.clone()).unwrap())),
                Ok(false) => return out,
                Err(LineError::TooLong) => {
                    out.push(Err("too long"));
                    return out;
                }
                Err(LineError::Truncated) => {
                    out.push(Err("truncated"));
                    return out;
                }
                Err(LineError::Io(_)) => unreachable!(),
            }
        }
    }

    #[test]
    fn line_reader() {
        assert_eq!(
            lines(b"HELLO 1 2\nOPEN pipe a 1 - - -\n"),
            [
                Ok("HELLO 1 2\n".to_owned()),
                Ok("OPEN pipe a 1 - - -\n".to_owned())
            ]
        );
        assert_eq!(lines(b"abc"), [Err("truncated")]);
        let mut max = vec![b'x'; MAX_LINE - 1];
        max.push(b'\n');
        assert_eq!(lines(&max).len(), 1);
        assert!(lines(&max)[0].is_ok());
        let mut over = vec![b'x'; MAX_LINE];
        over.push(b'\n');
        assert_eq!(lines(&over), [Err("too long")]);
        assert_eq!(lines(&vec![b'x'; 3 * MAX_LINE]), [Err("too long")]);
    }

    #[test]
    fn existing_checks() {
        let ch = Channel {
            name: "x".into(),
            generation: 1,
            offset: 8192,
            length: 768 + 4096,
            params: ChannelParams::Pipe { capacity: 4096 },
        };
        assert!(check_existing(&ch, Kind::Pipe, [None; 3]).is_ok());
        assert!(check_existing(&ch, Kind::Pipe, [Some(4096), None, Some(0)]).is_ok());
        let Err(Response::Error { code, message }) = check_existing(&ch, Kind::Queue, [None; 3])
        else {
            panic!()
        };
        assert_eq!(code, ErrorCode::KindMismatch);
        assert!(
            message.contains("pipe") && message.contains("queue"),
            "{message}"
        );
        let Err(Response::Error { code, message }) =
            check_existing(&ch, Kind::Pipe, [Some(8192), None, None])
        else {
            panic!()
        };
        assert_eq!(code, ErrorCode::ParamMismatch);
        assert!(
            message.contains("4096") && message.contains("8192"),
            "{message}"
        );
    }
}
