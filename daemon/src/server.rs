//! Accepting and serving control connections (the protocol is in
//! `shmbus::protocol`).
//!
//! One thread accepts connections and reads their `HELLO` ([`crate::admission`]);
//! each admitted connection gets its own thread, which holds the client's peer
//! slot for as long as the connection is open. The bus's mutable
//! state (directory, arena, peer table) sits behind one mutex: control requests
//! are rare and short, and the data plane never touches it. The one long step,
//! initialising a new channel's body (seconds for a queue of 2^24 cells), runs
//! without it (see `crate::alloc`), so that `HELLO`, other requests and crash
//! recovery never wait behind it.
//!
//! # A connection
//! 1. At accept, before a byte is read, the peer's uid, gid and groups
//!    (`SO_PEERCRED`, `SO_PEERGROUPS`) must be allowed by the bus's policy
//!    ([`Spec::allows`]: the daemon's uid, root, `--allow-uid`,
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
//!    [`crate::supervisor`] for the whole policy), at most [`KEPT_PER_UID`]
//!    such slots per uid.
//!
//! No thread wakes periodically: an idle daemon makes no system call. Every
//! sleep is a `poll` or condition wait that an event ends (a connection, a
//! request, a pidfd, the stop, which reaches kept slots' threads through
//! [`Bus::begin_shutdown`]'s eventfd).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};
use shmbus::layout::{state, Kind};
use shmbus::name;
use shmbus::pipe;
use shmbus::protocol::{ErrorCode, Request, Response, KEPT_PER_UID, MAX_LINE};
use shmbus::seqlock;
use shmbus::sync::Ordering;

use crate::admission::{source_name, Admitted};
use crate::alloc::{AllocError, Channel, Channels};
use crate::config::Spec;
use crate::config::{ChannelParams, ChannelSpec, DEFAULT_PIPE_CAPACITY};
use crate::process::{ClientProc, PeerCred};
use crate::run::{Log, Segment};
use crate::supervisor::{self, Peers};
use crate::Error;

mod removal;

/// How long an EOF without `BYE` waits for the pidfd before the client is
/// taken to be alive. A dying process closes its files before the kernel marks
/// it exited (`exit_files` comes before `exit_notify` in `do_exit`), so the
/// EOF of a SIGKILLed client arrives a moment before its pidfd turns readable.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// While an `OPEN` or `REMOVE` waits for another client's creation of the
/// same channel, how often it looks at whether its own client exited.
const WATCH_SLICE: Duration = Duration::from_millis(200);

/// State changed by control requests.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) channels: Channels,
    pub(crate) peers: Peers,
    /// Set at shutdown: no more slots or channels are handed out.
    pub(crate) closing: bool,
    /// Per uid: slots kept for running processes whose connection ended
    /// without `BYE`, at most [`KEPT_PER_UID`]: such a slot cannot be
    /// recovered while its process runs (see [`crate::supervisor`]), so
    /// without a limit one process that reconnects after each protocol
    /// error, or a fork loop, would fill the peer table for every uid.
    kept: HashMap<u32, u32>,
}

/// Open connections of admitted clients, so shutdown can close them.
#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, UnixStream>,
}

/// Everything the connection threads share.
#[derive(Debug)]
pub(crate) struct Bus {
    pub(crate) seg: Segment,
    pub(crate) log: Log,
    pub(crate) name: String,
    epoch: u64,
    /// The daemon's effective uid: allowed to connect, with root.
    pub(crate) uid: u32,
    /// Who else may connect ([`Spec::allows`]).
    pub(crate) access: Spec,
    state: Mutex<State>,
    /// Notified (with `state`) when a channel is published or shutdown
    /// begins: `OPEN`s of a channel being created wait on it.
    created: Condvar,
    conns: Mutex<Conns>,
    conns_cv: Condvar,
    /// An eventfd, readable from [`begin_shutdown`](Self::begin_shutdown)
    /// on: the threads of kept slots poll it with their client's pidfd.
    closing_fd: OwnedFd,
}

impl Bus {
    /// # Errors
    /// The eventfd could not be made (out of file descriptors).
    pub(crate) fn new(seg: Segment, access: Spec, epoch: u64, log: Log) -> io::Result<Self> {
        let g = *seg.geometry();
        let closing_fd = eventfd(0, EventfdFlags::CLOEXEC)?;
        Ok(Self {
            state: Mutex::new(State {
                channels: Channels::new(&g),
                peers: Peers::new(g.peers_count),
                closing: false,
                kept: HashMap::new(),
            }),
            closing_fd,
            created: Condvar::new(),
            conns: Mutex::default(),
            conns_cv: Condvar::new(),
            uid: rustix::process::geteuid().as_raw(),
            name: access.name().to_owned(),
            access,
            seg,
            log,
            epoch,
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not take the bus down with it;
        // the state is only changed in complete steps under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a channel declared on the command line or in the config file,
    /// before the segment is published.
    ///
    /// # Errors
    /// [`Error::Failed`] if it does not fit (config validation makes that
    /// unlikely) or is declared twice.
    pub(crate) fn create_declared(&self, c: &ChannelSpec) -> Result<(), Error> {
        let mut st = self.state();
        if st.channels.get(&c.name).is_some() {
            return Err(Error::Failed(format!(
                "channel {:?} declared twice",
                c.name
            )));
        }
        let (_, ch) = st
            .channels
            .create(&self.seg, &c.name, c.params)
            .map_err(|e| Error::Failed(format!("cannot create {:?}: {}", c.name, alloc_msg(e))))?;
        self.log.info(format_args!(
            "created {} {} ({}) at offset {}",
            ch.kind,
            ch.name,
            describe(ch),
            ch.offset
        ));
        Ok(())
    }

    /// Creates channel `name` for the client in peer slot `holder`: reserves
    /// it under the lock `st` (which this releases), initialises its body
    /// without the lock, and publishes it under the lock again (see
    /// `crate::alloc`), counting the client's hold in the same critical
    /// section so that a `REMOVE` can never free it under the client.
    /// Returns the channel, the arena bytes that were free and the number of
    /// channels before it.
    fn create_unlocked(
        &self,
        mut st: MutexGuard<'_, State>,
        name: &str,
        params: ChannelParams,
        holder: u16,
    ) -> Result<(u32, Channel, u64, usize), AllocError> {
        let free = st.channels.arena_free();
        let count = st.channels.len();
        let pending = st.channels.reserve(&self.seg, name, params)?;
        drop(st);
        // NB: a queue of 2^24 cells took 3.7 s here with the lock held,
        // stalling every HELLO, OPEN and crash recovery (issue #12).
        pending.init_body(&self.seg);
        let mut st = self.state();
        let (index, ch) = st.channels.publish(&self.seg, &pending);
        let ch = ch.clone();
        st.channels.hold(&self.seg, index, holder);
        drop(st);
        self.created.notify_all();
        Ok((index, ch, free, count))
    }

    /// First step of shutdown: stop handing out slots and channels, mark the
    /// segment `CLOSING`, wake every sleeper on every channel. Returns the
    /// number of channels woken.
    pub(crate) fn begin_shutdown(&self) -> usize {
        let mut st = self.state();
        st.closing = true;
        // `OPEN`s waiting for a channel being created answer `Closing`.
        self.created.notify_all();
        // Threads of kept slots stop waiting for their process (after
        // `closing` is set, which they check under the lock when woken). A
        // failed write cannot happen (the counter is far from overflowing).
        let _ = rustix::io::write(&self.closing_fd, &1u64.to_ne_bytes());
        // Release: pairs with clients' Acquire loads of the state (their
        // bus-closed checks, `layout::validate`): a woken sleeper that re-checks
        // sees CLOSING.
        self.seg
            .header()
            .state
            .store(state::CLOSING, Ordering::Release);
        let mut n = 0;
        for c in st.channels.iter() {
            if c.kind == Kind::Pipe {
                self.seg.pipe(c.offset).wake_all();
                n += 1;
            }
            if matches!(c.kind, Kind::Value | Kind::Array) {
                self.seg.seqlock(c.offset).wake_all();
                n += 1;
            }
            if c.kind == Kind::Queue {
                self.seg
                    .queue(c.offset, c.params[0], c.params[1])
                    .0
                    .wake_all();
                n += 1;
            }
        }
        n
    }

    /// Closes every client connection (they see EOF) and waits up to `grace`
    /// for their threads to finish recovery.
    pub(crate) fn disconnect_all(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut conns = self.conns();
        for s in conns.open.values() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        while !conns.open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.log.warn(format_args!(
                    "{} connection threads still running at exit",
                    conns.open.len()
                ));
                break;
            }
            conns = self
                .conns_cv
                .wait_timeout(conns, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Registers an admitted connection (the registry holds a clone of it).
    ///
    /// # Errors
    /// If it cannot be cloned (out of file descriptors).
    fn add_conn(&self, stream: &UnixStream) -> io::Result<u64> {
        let clone = stream.try_clone()?;
        let mut c = self.conns();
        let id = c.next_id;
        c.next_id += 1;
        c.open.insert(id, clone);
        Ok(id)
    }

    /// Admits a client whose `HELLO` passed the checks: registers the
    /// connection, gives it a peer slot and starts its thread, which sends
    /// `WELCOME` first. On refusal (the daemon is closing, the peer table is
    /// full, no file descriptor left) gives the connection back with the
    /// `ERR` to send.
    pub(crate) fn admit(
        self: &Arc<Self>,
        stream: UnixStream,
        cred: PeerCred,
        process: ClientProc,
    ) -> Result<(), (UnixStream, Response)> {
        let id = match self.add_conn(&stream) {
            Ok(id) => id,
            Err(e) => {
                self.log.warn(format_args!(
                    "cannot admit client uid {} {}: {e} (out of file descriptors?)",
                    cred.uid,
                    process.who()
                ));
                let r = error(
                    ErrorCode::Full,
                    format!(
                        "the daemon of bus {} is out of resources ({e}); try again later",
                        self.name
                    ),
                );
                return Err((stream, r));
            }
        };
        let mut st = self.state();
        if st.closing {
            drop(st);
            self.remove_conn(id);
            let r = error(ErrorCode::Closing, "the daemon is shutting down");
            return Err((stream, r));
        }
        let kept = st.kept.get(&cred.uid).copied().unwrap_or(0);
        if kept >= KEPT_PER_UID {
            drop(st);
            self.remove_conn(id);
            self.log.warn(format_args!(
                "refused client uid {} {}: the uid already has {kept} peer slots kept for \
                 running processes whose connection ended without BYE",
                cred.uid,
                process.who()
            ));
            let r = error(
                ErrorCode::Full,
                format!(
                    "uid {} has {kept} peer slots of bus {} kept for running processes whose \
                     connection ended without BYE (protocol errors?); they are freed when \
                     those processes exit",
                    cred.uid, self.name
                ),
            );
            return Err((stream, r));
        }
        let (slot, generation) =
            match st
                .peers
                .register(&self.seg, process.pid(), cred.uid, process.start_time())
            {
                Ok(x) => x,
                Err(f) => {
                    drop(st);
                    self.remove_conn(id);
                    let r = error(
                        ErrorCode::Full,
                        format!(
                            "all {} peer slots of bus {} are taken; restart the daemon with a \
                             larger --max-peers",
                            f.slots, self.name
                        ),
                    );
                    return Err((stream, r));
                }
            };
        let live = st.peers.live();
        drop(st);
        self.log.info(format_args!(
            "client {} uid {} connected: slot {slot} generation {generation} \
             ({live} connected; watched by a pidfd from {})",
            process.who(),
            cred.uid,
            source_name(process.source())
        ));
        let welcome = Response::Welcome {
            slot,
            generation,
            epoch: self.epoch,
            segment_size: self.seg.geometry().total_size,
        };
        let admitted = Admitted {
            stream,
            process,
            slot,
            welcome,
        };
        let b = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("shmbusd-conn-{id}"))
            .spawn(move || {
                serve_conn(&b, admitted);
                b.remove_conn(id);
            });
        if let Err(e) = spawned {
            // The closure, and the connection with it, is gone: the client
            // sees EOF. Nothing of the slot was used yet.
            self.log.warn(format_args!(
                "cannot start a connection thread for slot {slot}: {e}; slot freed"
            ));
            self.remove_conn(id);
            let mut st = self.state();
            let st = &mut *st;
            supervisor::recover(&mut st.peers, &st.channels, &self.seg, slot);
        }
        Ok(())
    }

    /// Whether every peer slot is taken (a hint: the peer table decides
    /// again when a slot is handed out).
    pub(crate) fn peers_full(&self) -> bool {
        self.state().peers.live() >= self.seg.geometry().peers_count as usize
    }

    fn remove_conn(&self, id: u64) {
        self.conns().open.remove(&id);
        self.conns_cv.notify_all();
    }
}

pub(crate) use crate::admission::accept_loop;

pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
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
fn serve_conn(bus: &Bus, admitted: Admitted) {
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
    removal::log_freed(bus, &freed, pid, slot);
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
/// timeout, while the slot counts towards its uid's [`KEPT_PER_UID`].
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

    /// The daemon's state, locked, once channel `cname` is not being
    /// created by another client: waits until it is published (without the
    /// lock: `created` releases it), watching our own process so that its
    /// death is never stuck behind the creation. `OPEN` and `REMOVE` of a
    /// name go through here.
    pub(super) fn state_once_created(
        &self,
        cname: &str,
    ) -> Result<MutexGuard<'_, State>, Response> {
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
        if let Err(e) = name::validate_channel(cname) {
            return error(
                ErrorCode::BadName,
                format!("bad channel name {cname:?}: {e}"),
            );
        }
        let mut st = match self.state_once_created(cname) {
            Ok(st) => st,
            Err(r) => return r,
        };
        if st.closing {
            return error(ErrorCode::Closing, "the daemon is shutting down");
        }
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
        if matches!(kind, Kind::Value | Kind::Array | Kind::Queue) {
            if !create {
                return error(
                    ErrorCode::NotFound,
                    format!("no channel named {cname} on bus {}", bus.name),
                );
            }
            let p = match if kind == Kind::Queue {
                queue_params(params)
            } else {
                table_params(kind, params)
            } {
                Ok(p) => p,
                Err(m) => return error(ErrorCode::BadParams, m),
            };
            return match bus.create_unlocked(st, cname, p, slot) {
                Ok((index, ch, free, _)) => {
                    bus.log.info(format_args!(
                        "created {kind} {cname} ({}) at offset {} for client pid {} slot {slot} \
                         ({} arena bytes left)",
                        describe(&ch),
                        ch.offset,
                        self.pid,
                        free - crate::config::align_line(ch.length),
                    ));
                    channel_response(index, &ch)
                }
                Err(e @ AllocError::Full { .. }) => error(ErrorCode::Full, alloc_msg(e)),
                Err(e @ AllocError::NoSpace { .. }) => error(
                    ErrorCode::NoSpace,
                    format!("{kind} {cname}: {}", alloc_msg(e)),
                ),
            };
        }
        if kind != Kind::Pipe {
            return error(
                ErrorCode::BadParams,
                format!("{kind} channels are not supported yet by this daemon (only pipes)"),
            );
        }
        if !create {
            return error(
                ErrorCode::NotFound,
                format!("no channel named {cname} on bus {}", bus.name),
            );
        }
        if params[1..].iter().any(|p| p.is_some_and(|v| v != 0)) {
            return error(
                ErrorCode::BadParams,
                "a pipe takes one parameter, its capacity: p1 and p2 must be - or 0",
            );
        }
        let capacity = params[0].unwrap_or(DEFAULT_PIPE_CAPACITY);
        if let Err(m) = pipe::check_capacity(capacity) {
            return error(ErrorCode::BadParams, m);
        }
        match bus.create_unlocked(st, cname, ChannelParams::Pipe { capacity }, slot) {
            Ok((index, ch, free, count)) => {
                bus.log.info(format_args!(
                    "created {kind} {cname} ({}) at offset {} for client pid {} slot {slot} \
                     ({} channels, {} arena bytes left)",
                    describe(&ch),
                    ch.offset,
                    self.pid,
                    count + 1,
                    free - crate::config::align_line(ch.length),
                ));
                channel_response(index, &ch)
            }
            Err(e @ AllocError::Full { .. }) => error(ErrorCode::Full, alloc_msg(e)),
            Err(e @ AllocError::NoSpace { .. }) => error(
                ErrorCode::NoSpace,
                format!("pipe {cname}: {}", alloc_msg(e)),
            ),
        }
    }
}

/// The parameters of a value or array to create: `p0` the element type code
/// (required), `p1` the length (a value: `-` or 1; an array: required), `p2`
/// `-` or 0.
fn table_params(kind: Kind, params: [Option<u64>; 3]) -> Result<ChannelParams, String> {
    let elem =
        params[0].ok_or_else(|| format!("{} needs an element type (p0)", kind.with_article()))?;
    let len = match (kind, params[1]) {
        (Kind::Value, None | Some(1)) => 1,
        (Kind::Value, Some(n)) => return Err(format!("a value has one element, not {n}")),
        (_, Some(n)) => n,
        (_, None) => return Err("an array needs a length (p1)".to_owned()),
    };
    if params[2].is_some_and(|v| v != 0) {
        return Err(format!(
            "{} takes two parameters: p2 must be - or 0",
            kind.with_article()
        ));
    }
    let elem = seqlock::check_params(elem, len)?;
    Ok(ChannelParams::Table { kind, elem, len })
}

/// The parameters of a queue to create: `p0` the number of slots, `p1` the
/// slot payload size (`-` for the defaults), `p2` `-` or 0.
fn queue_params(params: [Option<u64>; 3]) -> Result<ChannelParams, String> {
    if params[2].is_some_and(|v| v != 0) {
        return Err("a queue takes two parameters, slots and slot size: p2 must be - or 0".into());
    }
    let slots = params[0].unwrap_or(crate::config::DEFAULT_QUEUE_SLOTS);
    let slot_size = params[1].unwrap_or(crate::config::DEFAULT_QUEUE_SLOT_SIZE);
    shmbus::queue::check_params(slots, slot_size)?;
    Ok(ChannelParams::Queue { slots, slot_size })
}

/// Checks an `OPEN` of an existing channel against what it is.
fn check_existing(ch: &Channel, kind: Kind, params: [Option<u64>; 3]) -> Result<(), Response> {
    if ch.kind != kind {
        return Err(error(
            ErrorCode::KindMismatch,
            format!(
                "channel {} is {}, not {}",
                ch.name,
                ch.kind.with_article(),
                kind.with_article()
            ),
        ));
    }
    for (i, (want, have)) in params.iter().zip(ch.params).enumerate() {
        match want {
            Some(w) if *w != have => {
                let what = match (ch.kind, i) {
                    (Kind::Pipe, 0) => "capacity".to_owned(),
                    (Kind::Queue, 0) => "slots".to_owned(),
                    (Kind::Queue, 1) => "slot size".to_owned(),
                    (Kind::Value | Kind::Array, 0) => "element type code".to_owned(),
                    (Kind::Value | Kind::Array, 1) => "length".to_owned(),
                    _ => format!("parameter p{i}"),
                };
                return Err(error(
                    ErrorCode::ParamMismatch,
                    format!("{} {} has {what} {have}, not {w}", ch.kind, ch.name),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn channel_response(index: u32, ch: &Channel) -> Response {
    Response::Channel {
        index,
        generation: ch.generation,
        kind: ch.kind,
        offset: ch.offset,
        length: ch.length,
        params: ch.params,
    }
}

fn describe(ch: &Channel) -> String {
    match ch.kind {
        Kind::Pipe => format!("capacity {}", ch.params[0]),
        Kind::Queue => format!("{} slots of {} bytes", ch.params[0], ch.params[1]),
        Kind::Value | Kind::Array => match seqlock::ElemType::from_code(ch.params[0]) {
            Some(t) => format!("{t} x {}", ch.params[1]),
            None => format!("params {:?}", ch.params),
        },
    }
}

fn alloc_msg(e: AllocError) -> String {
    match e {
        AllocError::Full { entries } => format!(
            "the directory is full ({entries} channels); restart the daemon with a larger \
             --max-channels"
        ),
        AllocError::NoSpace {
            need,
            free,
            largest,
        } if largest < free => format!(
            "needs {need} bytes but the arena's largest free block has {largest} \
             ({free} free in all, fragmented); remove channels (shmbus rm) or restart the \
             daemon with a larger --size"
        ),
        AllocError::NoSpace { need, free, .. } => format!(
            "needs {need} bytes but the arena has {free} free; remove channels (shmbus rm) or \
             restart the daemon with a larger --size"
        ),
    }
}

#[cfg(test)]
mod tests {
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
            kind: Kind::Pipe,
            generation: 1,
            offset: 8192,
            length: 768 + 4096,
            params: [4096, 0, 0],
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
