//! `send` and `recv`: frames through a pipe, a queue or a topic (and `pub`
//! and `sub`, which are `send` and `recv` on a topic).
//!
//! Which channel a name means: an existing queue is used as a queue, an
//! existing topic as a topic, an existing pipe as a pipe. A missing name is where mistakes hide (a typo'd
//! `recv` used to create a pipe and wait on it forever), so `recv` creates
//! nothing unless given `--create`, and `send` creates a pipe and says so on
//! standard error, naming its capacity.

use std::ffi::OsString;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use clap::Args;
use shmbus_client::{Bus, Error, Kind, Pipe, PipeReceiver, PipeSender, Queue, Topic};

use crate::common::{error, parse_seconds, stdout_error, Failure};

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The pipe or queue. A missing name is created as a pipe with the
    /// daemon's default capacity (said on standard error).
    #[arg(value_name = "NAME")]
    pub(crate) name: String,

    /// The frames, one per argument. Without any, each line of standard input
    /// is one frame (without its newline).
    #[arg(value_name = "MESSAGE")]
    pub(crate) messages: Vec<OsString>,

    /// Give up if the pipe or queue stays full this long (seconds; fractions
    /// allowed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// The pipe or queue; it must exist, unless --create is given. With
    /// several names, waits on all of them at once and prefixes each frame
    /// with its channel's name and ": ".
    #[arg(value_name = "NAME", required = true, num_args = 1..)]
    pub(crate) names: Vec<String>,

    /// Create NAME as a pipe (with the daemon's default capacity) if no
    /// channel of that name exists; said on standard error.
    #[arg(long)]
    pub(crate) create: bool,

    /// Stop after this many frames.
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    pub(crate) count: Option<u64>,

    /// Give up if no frame arrives for this long (seconds; fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,

    /// Topics only: first print up to this many messages published before
    /// (those still in the ring).
    #[arg(long, value_name = "K")]
    pub(crate) history: Option<u64>,
}

/// What a name given to `send` or `recv` turned out to be.
pub(crate) enum Channel {
    Pipe(Pipe),
    Queue(Queue),
    Topic(Topic),
}

/// Opens `name` as the pipe or queue it is. If it does not exist: with
/// `create`, creates a pipe and says so on stderr; without, an error that
/// says how to make one.
pub(crate) fn open(bus: &Bus, name: &str, create: bool) -> Result<Channel, Failure> {
    // One OPEN in the common case: try it as a pipe; the daemon's answer
    // says what it is otherwise.
    match bus.open_pipe(name) {
        Ok(p) => Ok(Channel::Pipe(p)),
        Err(Error::KindMismatch {
            found: Some(Kind::Queue),
            ..
        }) => bus.open_queue(name).map(Channel::Queue).map_err(error),
        Err(Error::KindMismatch {
            found: Some(Kind::Topic),
            ..
        }) => bus.open_topic(name).map(Channel::Topic).map_err(error),
        Err(Error::KindMismatch {
            found: Some(kind @ (Kind::Value | Kind::Array)),
            ..
        }) => Err(error(format!(
            "{name} is {}, not a pipe or queue: use `shmbus get {name}`, \
             `shmbus set {name} ...` or `shmbus watch {name}`",
            kind.with_article()
        ))),
        Err(Error::NotFound { .. }) if create => {
            let p = bus.pipe(name).map_err(error)?;
            // Nothing more to do if stderr is gone.
            let _ = writeln!(
                io::stderr().lock(),
                "shmbus: created pipe {name} (capacity {} bytes)",
                p.capacity()
            );
            Ok(Channel::Pipe(p))
        }
        Err(Error::NotFound { .. }) => Err(error(format!(
            "no pipe or queue named {name} on this bus: create one with \
             `shmbus create pipe {name}` or `shmbus create queue {name}`, \
             or use `shmbus recv --create {name}`"
        ))),
        Err(e) => Err(error(e)),
    }
}

/// Calls `each` for every MESSAGE argument, or else for every line of
/// standard input (without its newline).
fn for_each_frame(
    messages: &[OsString],
    mut each: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if !messages.is_empty() {
        return messages.iter().try_for_each(|m| each(m.as_bytes()));
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdin
            .read_until(b'\n', &mut line)
            .map_err(|e| error(format!("reading standard input: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        each(&line)?;
    }
}

pub(crate) fn send(bus: &Bus, a: SendArgs) -> Result<(), Failure> {
    match open(bus, &a.name, true)? {
        Channel::Queue(q) => send_queue(&q, &a),
        Channel::Topic(t) => send_topic(&t, &a),
        Channel::Pipe(pipe) => {
            let mut tx = pipe.sender().map_err(error)?;
            for_each_frame(&a.messages, |m| send_one(&mut tx, m, a.timeout))
        }
    }
}

fn send_one(tx: &mut PipeSender, frame: &[u8], timeout: Option<Duration>) -> Result<(), Failure> {
    let r = match timeout {
        Some(t) => tx.send_timeout(frame, t),
        None => tx.send(frame),
    };
    r.map_err(|e| match e {
        Error::Timeout => Failure::Timeout(format!(
            "pipe {0} stayed full for {1:?}: is its receiver running (`shmbus recv {0}`)?",
            tx.name(),
            timeout.unwrap_or_default()
        )),
        e => error(format!("sending to pipe {}: {e}", tx.name())),
    })
}

fn send_queue(q: &Queue, a: &SendArgs) -> Result<(), Failure> {
    for_each_frame(&a.messages, |m| {
        let r = match a.timeout {
            Some(t) => q.put_timeout(m, t),
            None => q.put(m),
        };
        r.map_err(|e| match e {
            Error::Timeout => Failure::Timeout(format!(
                "queue {0} stayed full for {1:?}: is anything taking from it (`shmbus recv {0}`)?",
                q.name(),
                a.timeout.unwrap_or_default()
            )),
            e => error(format!("sending to queue {}: {e}", q.name())),
        })
    })
}

/// `pub`: `send` to a topic, created with the defaults if missing.
pub(crate) fn publish(bus: &Bus, a: SendArgs) -> Result<(), Failure> {
    send_topic(&topic(bus, &a.name)?, &a)
}

/// `sub`: `recv` from a topic, created with the defaults if missing.
pub(crate) fn subscribe(bus: &Bus, a: RecvArgs) -> Result<(), Failure> {
    if a.names.len() > 1 {
        return Err(error(
            "`shmbus sub` takes one topic; run one per topic".to_owned(),
        ));
    }
    recv_topic(&topic(bus, &a.names[0])?, &a)
}

fn topic(bus: &Bus, name: &str) -> Result<Topic, Failure> {
    bus.topic(name).map_err(|e| match e {
        Error::KindMismatch { found: Some(k), .. } => error(format!(
            "{name} is {}, not a topic: use `shmbus send {name}` or `shmbus recv {name}`",
            k.with_article()
        )),
        e => error(e),
    })
}

fn send_topic(t: &Topic, a: &SendArgs) -> Result<(), Failure> {
    let p = t.publisher();
    for_each_frame(&a.messages, |m| {
        let r = match a.timeout {
            Some(d) => p.publish_timeout(m, d),
            None => p.publish(m),
        };
        r.map_err(|e| match e {
            Error::Timeout => Failure::Timeout(format!(
                "topic {0} stayed full for {1:?}: its slowest subscriber is not keeping up",
                t.name(),
                a.timeout.unwrap_or_default()
            )),
            e => error(format!("publishing to topic {}: {e}", t.name())),
        })
    })
}

/// `recv` on a topic: subscribes, then prints every message until COUNT,
/// the timeout, or the bus closing; a lossy topic's missed messages are
/// counted on standard error.
fn recv_topic(t: &Topic, a: &RecvArgs) -> Result<(), Failure> {
    let s = t
        .subscribe_with_history(a.history.unwrap_or(0))
        .map_err(error)?;
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let print =
        |out: &mut dyn Write, b: &[u8]| out.write_all(b).and_then(|()| out.write_all(b"\n"));
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        let r = match s.try_recv_with(|b| print(&mut out, b)) {
            Err(Error::Empty) => {
                out.flush().map_err(stdout_error)?;
                match a.timeout {
                    Some(d) => s.recv_with_timeout(d, |b| print(&mut out, b)),
                    None => s.recv_with(|b| print(&mut out, b)),
                }
            }
            r => r,
        };
        match r {
            Ok(w) => w.map_err(stdout_error)?,
            Err(Error::Lagged(k)) => {
                out.flush().map_err(stdout_error)?;
                let _ = writeln!(
                    io::stderr().lock(),
                    "shmbus: missed {k} messages on topic {} (lossy; this subscriber fell behind)",
                    t.name()
                );
                continue;
            }
            Err(Error::Timeout) => {
                out.flush().map_err(stdout_error)?;
                return Err(Failure::Timeout(format!(
                    "nothing on topic {0} for {1:?}: is anything publishing (`shmbus pub {0}`)?",
                    t.name(),
                    a.timeout.unwrap_or_default()
                )));
            }
            Err(e) => return Err(error(format!("receiving from topic {}: {e}", t.name()))),
        }
        n += 1;
        if tty {
            out.flush().map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)
}

pub(crate) fn recv(bus: &Bus, a: RecvArgs) -> Result<(), Failure> {
    match open(bus, &a.names[0], a.create)? {
        Channel::Queue(q) => recv_queue(&q, &a),
        Channel::Topic(t) => recv_topic(&t, &a),
        Channel::Pipe(pipe) => recv_pipe(&pipe, &a),
    }
}

/// `recv` on a queue: a queue has no end, so this runs until COUNT items,
/// the timeout, or the bus closing.
fn recv_queue(q: &Queue, a: &RecvArgs) -> Result<(), Failure> {
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let print =
        |out: &mut dyn Write, b: &[u8]| out.write_all(b).and_then(|()| out.write_all(b"\n"));
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        let r = match q.try_get_with(|b| print(&mut out, b)) {
            Err(Error::Empty) => {
                out.flush().map_err(stdout_error)?;
                match a.timeout {
                    Some(t) => q.get_with_timeout(t, |b| print(&mut out, b)),
                    None => q.get_with(|b| print(&mut out, b)),
                }
            }
            r => r,
        };
        match r {
            Ok(w) => w.map_err(stdout_error)?,
            Err(Error::Timeout) => {
                out.flush().map_err(stdout_error)?;
                return Err(Failure::Timeout(format!(
                    "nothing on queue {0} for {1:?}: is anything putting into it (`shmbus send {0}`)?",
                    q.name(),
                    a.timeout.unwrap_or_default()
                )));
            }
            Err(e) => return Err(error(format!("receiving from queue {}: {e}", q.name()))),
        }
        n += 1;
        if tty {
            out.flush().map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)
}

fn recv_pipe(pipe: &Pipe, a: &RecvArgs) -> Result<(), Failure> {
    let mut rx = pipe.receiver().map_err(error)?;
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        if !next_frame(&mut rx, &mut out, a.timeout)? {
            break;
        }
        n += 1;
        if tty {
            out.flush().map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)
}

/// Prints the next frame; false at the end of the pipe. Flushes standard output
/// before it waits, so whatever arrived so far is seen at once.
fn next_frame(
    rx: &mut PipeReceiver,
    out: &mut impl Write,
    timeout: Option<Duration>,
) -> Result<bool, Failure> {
    let print =
        |out: &mut dyn Write, b: &[u8]| out.write_all(b).and_then(|()| out.write_all(b"\n"));
    let r = match rx.try_recv_with(|b| print(out, b)) {
        Ok(w) => Ok(w),
        Err(Error::Empty) => {
            out.flush().map_err(stdout_error)?;
            match timeout {
                Some(t) => rx.recv_with_timeout(t, |b| print(out, b)),
                None => rx.recv_with(|b| print(out, b)),
            }
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(written) => written.map(|()| true).map_err(stdout_error),
        Err(Error::Disconnected) => Ok(false),
        Err(Error::Timeout) => Err(Failure::Timeout(format!(
            "no frame on pipe {0} for {1:?}: is its sender running (`shmbus send {0}`)?",
            rx.name(),
            timeout.unwrap_or_default()
        ))),
        Err(e) => Err(error(format!("receiving from pipe {}: {e}", rx.name()))),
    }
}
