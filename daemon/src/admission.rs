//! Admission: one thread accepts connections, reads their `HELLO` and admits
//! them ([`admit`]: a peer slot, and a thread of their own that
//! [`crate::connection`] runs).
//!
//! The control socket is open to every local user who can reach it, so
//! nothing a not-yet-admitted connection does may cost admitted clients
//! anything (issue #12; DESIGN.md §6). This thread polls the listener and every
//! connection that has not said `HELLO` yet, and a connection gets its own
//! thread ([`connection::serve`]) only once it is admitted:
//!
//! 1. At accept, before a byte is read: the peer's uid, gid and groups
//!    (`SO_PEERCRED`, `SO_PEERGROUPS`) against the bus's policy
//!    ([`Spec::allows`](crate::config::Spec::allows)), and a uid with no
//!    mapping in the daemon's user namespace (the overflow uid) is refused
//!    whatever the policy. A refused peer gets one `ERR denied` line, sent
//!    without waiting, and is closed: it holds nothing afterwards.
//! 2. Then a pidfd of its process ([`ClientProc`]); without one it is refused
//!    (its death could not be detected).
//! 3. It waits for `HELLO` in the pending set, which has its own budget,
//!    [`PENDING_MAX`], apart from admitted clients (whose budget is the peer
//!    table). When the set is full, a new connection evicts the oldest
//!    pending connection of the uid that has the most (after one last look
//!    at whether its `HELLO` has arrived): a flood from one uid evicts its own
//!    connections first, and a client that sends `HELLO` as soon as it
//!    connects (as the library does) is read before
//!    [`PENDING_MAX`] newer connections could push it out.
//! 4. `HELLO` must be complete within [`HELLO_TIMEOUT`] of the accept: an
//!    absolute deadline, which bytes trickling in do not extend.
//! 5. `HELLO <abi> <pid>`: the ABI must be ours and the pid the client's in one
//!    of its pid namespaces ([`ClientProc::pid_matches`]; not checked where its
//!    pid is not visible). Then it gets a peer slot and a thread, which sends
//!    `WELCOME`.
//!
//! Each turn reads every pending connection that has bytes before it
//! accepts at most [`ACCEPT_BATCH`] new ones. Out of file descriptors
//! (`EMFILE`, `ENFILE`) at accept, it stops accepting for [`ACCEPT_PAUSE`]
//! (still serving pending connections) instead of spinning, and logs it.
//! Refusals are logged at most once per [`LOG_EVERY`] per kind, with a count
//! of those not logged.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};
use shmbus::layout::ABI_VERSION;
use shmbus::protocol::{ErrorCode, Request, Response, KEPT_PER_UID, MAX_LINE};

use crate::connection::{self, Admitted};
use crate::process::{self, ClientProc, PeerCred, Source};
use crate::server::{error, Bus};
use crate::stop::StopHandle;
use crate::supervisor;

/// How long a new connection may take to send `HELLO`, from accept.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections accepted and allowed that have not completed `HELLO` yet.
pub(crate) const PENDING_MAX: usize = 64;

/// New connections accepted per turn, after the pending ones were read.
const ACCEPT_BATCH: usize = 8;

/// How long accepting stops when the daemon is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// At most one log line per kind of refusal this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How often a `HELLO` that found every peer slot taken is tried again.
const SLOT_RETRY: Duration = Duration::from_millis(5);

/// How long a `HELLO` that found every peer slot taken waits for one before
/// it is refused. A client that drops its last handle says `BYE` and closes;
/// its connection thread frees the slot a moment later, and a client that
/// connects right after it (as a program that reconnects does) should get it.
const SLOT_GRACE: Duration = Duration::from_millis(200);

/// A connection waiting for its `HELLO`.
#[derive(Debug)]
struct Pending {
    stream: UnixStream,
    cred: PeerCred,
    process: ClientProc,
    deadline: Instant,
    /// What arrived of the `HELLO` line so far.
    line: Vec<u8>,
    /// Set when the line was complete but every peer slot was taken:
    /// admission is retried every [`SLOT_RETRY`] until then (a client that
    /// just said `BYE` may be about to free its slot), and refused after.
    awaiting_slot: Option<Instant>,
}

/// What reading a pending connection gave.
enum Step {
    /// Not a whole line yet.
    Wait,
    /// A whole line (newline included) is in `line`.
    Line,
    /// The connection is over (EOF, error, or a line too long: the answer
    /// to send, if any).
    Over(Option<Response>),
}

/// Rate limit for one kind of log line.
#[derive(Debug, Default)]
struct Throttle {
    next: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(" (N more not logged)")` if a line may be logged now.
    fn allow(&mut self) -> Option<String> {
        let now = Instant::now();
        if self.next.is_some_and(|t| now < t) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(match std::mem::take(&mut self.suppressed) {
            0 => String::new(),
            n => format!(
                " ({n} more like this in the last {} s not logged)",
                LOG_EVERY.as_secs()
            ),
        })
    }
}

/// The throttles of the accept thread, one per kind of event.
#[derive(Debug, Default)]
struct Logs {
    denied: Throttle,
    no_pidfd: Throttle,
    evicted: Throttle,
    timed_out: Throttle,
    bad_hello: Throttle,
    accept: Throttle,
    resources: Throttle,
}

/// The accept thread: accepts connections and admits them until `stop` is
/// requested. A fatal accept or poll error stops the daemon.
pub(crate) fn accept_loop(bus: &Arc<Bus>, listener: &UnixListener, stop: &StopHandle) {
    if let Err(e) = listener.set_nonblocking(true) {
        stop.fail(format!("cannot make the control socket non-blocking: {e}"));
        return;
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut paused_until: Option<Instant> = None;
    let mut logs = Logs::default();
    loop {
        if stop.is_stopped() {
            return;
        }
        let now = Instant::now();
        if paused_until.is_some_and(|t| t <= now) {
            paused_until = None;
        }
        let listen = paused_until.is_none();
        // `pending` is in accept order, so the first deadline is the first.
        let retry = pending.iter().any(|p| p.awaiting_slot.is_some());
        // No periodic wake-up: an idle daemon sleeps here until a connection
        // or a stop. A stop wakes the poll through the listener, which
        // `Daemon::serve` shuts down for reading (it then polls readable); a
        // paused listener is not polled, but the pause has a deadline.
        let wake = [
            retry.then(|| now + SLOT_RETRY),
            pending.first().map(|p| p.deadline),
            paused_until,
        ]
        .into_iter()
        .flatten()
        .min();
        let ready = match poll(
            listener,
            listen,
            &pending,
            wake.map(|w| w.saturating_duration_since(now)),
        ) {
            Ok(r) => r,
            Err(Errno::INTR) => continue,
            Err(e) => {
                stop.fail(format!("polling the control socket failed: {e}"));
                return;
            }
        };
        let listener_ready = listen && ready[0];

        // Pending connections with bytes first.
        let before = std::mem::take(&mut pending);
        for (mut p, r) in before.into_iter().zip(&ready[usize::from(listen)..]) {
            if p.awaiting_slot.is_some() {
                hello(bus, p, &mut pending, &mut logs);
                continue;
            }
            if !*r {
                pending.push(p);
                continue;
            }
            match read_hello(&mut p) {
                Step::Wait => pending.push(p),
                Step::Line => hello(bus, p, &mut pending, &mut logs),
                Step::Over(answer) => {
                    if let Some(a) = answer {
                        send_final(&p.stream, &a);
                    }
                }
            }
        }

        // Then deadlines.
        let now = Instant::now();
        let expired = pending.iter().take_while(|p| p.deadline <= now).count();
        for p in pending.drain(..expired) {
            let secs = HELLO_TIMEOUT.as_secs();
            if let Some(more) = logs.timed_out.allow() {
                bus.log.info(format_args!(
                    "closed a connection of uid {} {}: no HELLO within {secs} s of connecting{more}",
                    p.cred.uid,
                    p.process.who()
                ));
            }
            send_final(
                &p.stream,
                &error(
                    ErrorCode::Protocol,
                    format!("no HELLO within {secs} s of connecting"),
                ),
            );
        }

        // Then new connections.
        if !listener_ready {
            continue;
        }
        for _ in 0..ACCEPT_BATCH {
            match listener.accept() {
                Ok((s, _)) => accepted(bus, s, &mut pending, &mut logs),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => match Errno::from_io_error(&e) {
                    Some(Errno::INTR | Errno::CONNABORTED | Errno::PROTO) => {}
                    Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                        if let Some(more) = logs.accept.allow() {
                            bus.log.warn(format_args!(
                                "accept: {e} ({} connections waiting for HELLO); not accepting \
                                 for {} ms{more}",
                                pending.len(),
                                ACCEPT_PAUSE.as_millis()
                            ));
                        }
                        paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        break;
                    }
                    _ => {
                        if !stop.is_stopped() {
                            stop.fail(format!("accepting on the control socket failed: {e}"));
                        }
                        return;
                    }
                },
            }
        }
    }
}

/// Polls the listener (if `listen`) and the pending connections for up to
/// `timeout` (`None`: no limit); returns which are ready, in that order.
fn poll(
    listener: &UnixListener,
    listen: bool,
    pending: &[Pending],
    timeout: Option<Duration>,
) -> Result<Vec<bool>, Errno> {
    let mut fds = Vec::with_capacity(pending.len() + 1);
    if listen {
        fds.push(PollFd::new(listener, PollFlags::IN));
    }
    // A connection whose line is complete is not read again (it would stay
    // readable if the client sent more): polled for nothing.
    fds.extend(pending.iter().map(|p| {
        let want = if p.awaiting_slot.is_some() {
            PollFlags::empty()
        } else {
            PollFlags::IN
        };
        PollFd::new(&p.stream, want)
    }));
    let ts = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    rustix::event::poll(&mut fds, ts.as_ref())?;
    Ok(fds.iter().map(|f| !f.revents().is_empty()).collect())
}

/// Sends a last answer without waiting (a refused peer may not read it), and
/// closes the connection (by dropping it, at the caller).
fn send_final(stream: &UnixStream, r: &Response) {
    let _ = rustix::net::send(
        stream,
        r.encode().as_bytes(),
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    );
}

/// The overflow uid if it has no mapping in our user namespace: a peer with
/// that uid is then one whose real uid cannot be told from here. `None` if
/// the overflow uid is a real, mapped uid (the initial user namespace maps
/// every uid).
fn unmapped_uid() -> Option<u32> {
    static UNMAPPED: OnceLock<Option<u32>> = OnceLock::new();
    *UNMAPPED.get_or_init(|| {
        let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(65534);
        let map = std::fs::read_to_string("/proc/self/uid_map").ok()?;
        let mapped = map.lines().any(|l| {
            let f: Vec<u64> = l
                .split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            f.len() == 3 && (f[0]..f[0] + f[2]).contains(&u64::from(overflow))
        });
        (!mapped).then_some(overflow)
    })
}

/// Why a peer with `cred` may not use the bus, if it may not.
fn refusal(bus: &Bus, stream: &UnixStream, cred: PeerCred) -> Option<String> {
    if Some(cred.uid) == unmapped_uid() {
        return Some(format!(
            "uid {} is the overflow uid: the client's uid has no mapping in the user namespace \
             of the daemon of bus {}, so the daemon cannot tell who it is; run the client as a \
             user that is mapped into the daemon's user namespace",
            cred.uid, bus.name
        ));
    }
    let allowed = bus.access.allows(cred.uid, cred.gid, bus.uid, |want| {
        process::peer_groups(stream).is_ok_and(|g| g.iter().any(|x| want.contains(x)))
    });
    if allowed {
        return None;
    }
    let who = bus.access.describe_access(bus.uid);
    Some(format!(
        "uid {} may not use bus {}: only {who} may; start shmbusd with --allow-uid {} or \
         --allow-group GID (and a --mode that lets it open the bus) to let it in",
        cred.uid, bus.name, cred.uid
    ))
}

/// A new connection: checked before a byte is read, then added to the
/// pending set (evicting one if it is full).
fn accepted(bus: &Arc<Bus>, stream: UnixStream, pending: &mut Vec<Pending>, logs: &mut Logs) {
    let cred = match process::peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => {
            if let Some(more) = logs.resources.allow() {
                bus.log.warn(format_args!(
                    "SO_PEERCRED failed on a new connection: {e}{more}"
                ));
            }
            return;
        }
    };
    if let Some(m) = refusal(bus, &stream, cred) {
        if let Some(more) = logs.denied.allow() {
            bus.log.info(format_args!(
                "refused a connection of uid {} gid {} at accept: {m}{more}",
                cred.uid, cred.gid
            ));
        }
        send_final(&stream, &error(ErrorCode::Denied, m));
        return;
    }
    let process = match ClientProc::of_peer(&stream, cred.pid) {
        Ok(p) => p,
        Err(e) => {
            let pid = if cred.pid == 0 {
                "(pid not visible)".to_owned()
            } else {
                format!("pid {}", cred.pid)
            };
            if let Some(more) = logs.no_pidfd.allow() {
                bus.log.warn(format_args!(
                    "no pidfd for the process {pid} of a new connection of uid {}, closing \
                     it: {e}{more}",
                    cred.uid
                ));
            }
            let out_of_fds = matches!(
                Errno::from_io_error(&e),
                Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM)
            );
            let r = if out_of_fds {
                error(
                    ErrorCode::Full,
                    format!(
                        "the daemon of bus {} is out of file descriptors ({e}); try again later",
                        bus.name
                    ),
                )
            } else {
                error(
                    ErrorCode::Protocol,
                    format!("the daemon cannot watch this client's process {pid}: {e}"),
                )
            };
            send_final(&stream, &r);
            return;
        }
    };
    if pending.len() >= PENDING_MAX {
        evict(bus, pending, logs);
    }
    pending.push(Pending {
        stream,
        cred,
        process,
        deadline: Instant::now() + HELLO_TIMEOUT,
        line: Vec::new(),
        awaiting_slot: None,
    });
}

/// Makes room in a full pending set: the oldest connection of the uid with
/// the most pending ones goes, unless its `HELLO` has arrived meanwhile (then
/// it is admitted, or refused, and the next candidate is looked at).
fn evict(bus: &Arc<Bus>, pending: &mut Vec<Pending>, logs: &mut Logs) {
    while pending.len() >= PENDING_MAX {
        let mut counts: std::collections::HashMap<u32, usize> = Default::default();
        for p in pending.iter() {
            *counts.entry(p.cred.uid).or_default() += 1;
        }
        // The uid with the most; among equals, the one whose oldest is
        // oldest. `pending` is in accept order, so the first connection of
        // such a uid is both.
        let most = counts.values().copied().max().unwrap_or(0);
        let Some(i) = pending.iter().position(|p| counts[&p.cred.uid] == most) else {
            return;
        };
        let uid = pending[i].cred.uid;
        let mut p = pending.remove(i);
        let step = if p.awaiting_slot.is_some() {
            Step::Line
        } else {
            read_hello(&mut p)
        };
        match step {
            Step::Line => {
                // Admitted or refused now: no more waiting for a slot.
                p.deadline = Instant::now();
                let mut none = Vec::new();
                hello(bus, p, &mut none, logs);
                continue;
            }
            Step::Over(answer) => {
                if let Some(a) = answer {
                    send_final(&p.stream, &a);
                }
                continue;
            }
            Step::Wait => {}
        }
        if let Some(more) = logs.evicted.allow() {
            bus.log.info(format_args!(
                "closed a connection of uid {} {} that had not said HELLO: {} connections \
                 were waiting for HELLO, {} of them from uid {uid}{more}",
                p.cred.uid,
                p.process.who(),
                PENDING_MAX,
                counts[&uid]
            ));
        }
        send_final(
            &p.stream,
            &error(
                ErrorCode::Full,
                format!(
                    "closed before HELLO: too many connections ({PENDING_MAX}) are waiting \
                     for HELLO on bus {}",
                    bus.name
                ),
            ),
        );
        return;
    }
}

/// Reads what has arrived of `p`'s `HELLO` line without blocking, never past
/// its newline (the client may send its next request right behind it).
fn read_hello(p: &mut Pending) -> Step {
    let mut buf = [0u8; MAX_LINE + 1];
    let room = (MAX_LINE + 1).saturating_sub(p.line.len()).min(buf.len());
    let flags = RecvFlags::DONTWAIT;
    let n = match rustix::net::recv(&p.stream, &mut buf[..room], flags | RecvFlags::PEEK) {
        Ok((0, _)) => return Step::Over(None),
        Ok((n, _)) => n,
        Err(Errno::AGAIN | Errno::INTR) => return Step::Wait,
        Err(_) => return Step::Over(None),
    };
    let (take, done) = match buf[..n].iter().position(|&b| b == b'\n') {
        Some(i) => (i + 1, true),
        None => (n, false),
    };
    // Consumes exactly what was peeked (only this thread reads the socket).
    match rustix::net::recv(&p.stream, &mut buf[..take], flags) {
        Ok((got, _)) if got == take => {}
        _ => return Step::Over(None),
    }
    p.line.extend_from_slice(&buf[..take]);
    if done {
        Step::Line
    } else if p.line.len() > MAX_LINE {
        Step::Over(Some(error(
            ErrorCode::Protocol,
            format!("line longer than {MAX_LINE} bytes"),
        )))
    } else {
        Step::Wait
    }
}

/// A whole first line arrived: admits the client or refuses it, or, if every
/// peer slot is taken, puts it back in `pending` for up to [`SLOT_GRACE`].
fn hello(bus: &Arc<Bus>, mut p: Pending, pending: &mut Vec<Pending>, logs: &mut Logs) {
    let req = std::str::from_utf8(&p.line)
        .map_err(|_| "line is not UTF-8".to_owned())
        .and_then(|l| Request::decode(l).map_err(|e| e.to_string()));
    let checked = match req {
        Ok(Request::Hello { abi, pid }) => check_hello(&p, abi, pid),
        Ok(_) => Err(error(
            ErrorCode::Protocol,
            "the first message must be HELLO",
        )),
        Err(m) => Err(error(ErrorCode::Protocol, m)),
    };
    if checked.is_ok() && bus.peers_full() {
        let now = Instant::now();
        let until = *p.awaiting_slot.get_or_insert(now + SLOT_GRACE);
        if now < until.min(p.deadline) {
            pending.push(p);
            return;
        }
    }
    let (uid, who) = (p.cred.uid, p.process.who());
    let (stream, r) = match checked {
        Ok(()) => match admit(bus, p.stream, p.cred, p.process) {
            Ok(()) => return,
            Err(refused) => refused,
        },
        Err(r) => (p.stream, r),
    };
    if let (Some(more), Response::Error { code, message }) = (logs.bad_hello.allow(), &r) {
        bus.log.info(format_args!(
            "refused client uid {uid} {who} at HELLO ({code}): {message}{more}"
        ));
    }
    send_final(&stream, &r);
}

/// Checks `HELLO <abi> <pid>`: our ABI, and the client's own pid (where the
/// daemon can tell).
fn check_hello(p: &Pending, abi: u32, pid: u32) -> Result<(), Response> {
    if abi != ABI_VERSION {
        let m = format!(
            "client speaks ABI version {abi}, this daemon speaks {ABI_VERSION}: use a client and \
             daemon from the same shmbus release"
        );
        return Err(error(ErrorCode::Abi, m));
    }
    if p.process.pid_matches(pid) == Some(false) {
        let m = format!(
            "HELLO says pid {pid} but the connection belongs to pid {} (in no pid namespace \
             is that its pid)",
            p.process.pid()
        );
        return Err(error(ErrorCode::Denied, m));
    }
    Ok(())
}

/// For the log: how a client's pidfd was obtained.
fn source_name(s: Source) -> &'static str {
    match s {
        Source::PeerPidfd => "SO_PEERPIDFD",
        Source::PidfdOpen => "pidfd_open",
    }
}

/// Admits a client whose `HELLO` passed the checks: registers the
/// connection, gives it a peer slot and starts its thread, which sends
/// `WELCOME` first. On refusal (the daemon is closing, the peer table is
/// full, no file descriptor left) gives the connection back with the
/// `ERR` to send.
fn admit(
    bus: &Arc<Bus>,
    stream: UnixStream,
    cred: PeerCred,
    process: ClientProc,
) -> Result<(), (UnixStream, Response)> {
    let id = match bus.add_conn(&stream) {
        Ok(id) => id,
        Err(e) => {
            bus.log.warn(format_args!(
                "cannot admit client uid {} {}: {e} (out of file descriptors?)",
                cred.uid,
                process.who()
            ));
            let r = error(
                ErrorCode::Full,
                format!(
                    "the daemon of bus {} is out of resources ({e}); try again later",
                    bus.name
                ),
            );
            return Err((stream, r));
        }
    };
    let mut st = bus.state();
    if st.closing {
        drop(st);
        bus.remove_conn(id);
        let r = error(ErrorCode::Closing, "the daemon is shutting down");
        return Err((stream, r));
    }
    let kept = st.kept.get(&cred.uid).copied().unwrap_or(0);
    if kept >= KEPT_PER_UID {
        drop(st);
        bus.remove_conn(id);
        bus.log.warn(format_args!(
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
                cred.uid, bus.name
            ),
        );
        return Err((stream, r));
    }
    let (slot, generation) =
        match st
            .peers
            .register(&bus.seg, process.pid(), cred.uid, process.start_time())
        {
            Ok(x) => x,
            Err(f) => {
                drop(st);
                bus.remove_conn(id);
                let r = error(
                    ErrorCode::Full,
                    format!(
                        "all {} peer slots of bus {} are taken; restart the daemon with a \
                         larger --max-peers",
                        f.slots, bus.name
                    ),
                );
                return Err((stream, r));
            }
        };
    let live = st.peers.live();
    drop(st);
    bus.log.info(format_args!(
        "client {} uid {} connected: slot {slot} generation {generation} \
         ({live} connected; watched by a pidfd from {})",
        process.who(),
        cred.uid,
        source_name(process.source())
    ));
    let welcome = Response::Welcome {
        slot,
        generation,
        epoch: bus.epoch,
        segment_size: bus.seg.geometry().total_size,
    };
    let admitted = Admitted {
        stream,
        process,
        slot,
        welcome,
    };
    let b = Arc::clone(bus);
    let spawned = std::thread::Builder::new()
        .name(format!("shmbusd-conn-{id}"))
        .spawn(move || {
            connection::serve(&b, admitted);
            b.remove_conn(id);
        });
    if let Err(e) = spawned {
        // The closure, and the connection with it, is gone: the client
        // sees EOF. Nothing of the slot was used yet.
        bus.log.warn(format_args!(
            "cannot start a connection thread for slot {slot}: {e}; slot freed"
        ));
        bus.remove_conn(id);
        let mut st = bus.state();
        let st = &mut *st;
        supervisor::recover(&mut st.peers, &st.channels, &bus.seg, slot);
    }
    Ok(())
}
