//! `shmbus`: the command-line client of a shmbus bus.
//!
//! ```text
//! shmbus [--bus NAME] ls
//! shmbus [--bus NAME] send PIPE [MESSAGE...] [--timeout SECONDS]
//! shmbus [--bus NAME] recv PIPE [-n COUNT] [--timeout SECONDS]
//! ```
//!
//! Each subcommand is one variant of [`Command`] and one function; new ones
//! (`create pipe|queue`, `get`, `set`, `add`, `watch`) slot in the same way.
//! Every failure is one line on stderr starting with `shmbus: `, and a non-zero
//! exit status; a closed standard output (`shmbus recv p | head -1`) ends the
//! program quietly.

use std::ffi::OsString;
use std::fmt::Display;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmbus_client::{Bus, ChannelDetails, Error, PipeReceiver, PipeSender, BUS_ENV, DEFAULT_BUS};

/// Exit status for an error.
const EXIT_ERROR: u8 = 1;
/// Exit status when `--timeout` expires (as `timeout(1)`).
const EXIT_TIMEOUT: u8 = 124;

#[derive(Debug, Parser)]
#[command(
    name = "shmbus",
    version,
    about = "Use a shmbus shared-memory message bus from the command line",
    after_help = "Exit status: 0 on success (and at the end of a pipe), 1 on error, \
        2 for a bad command line, 124 when --timeout expires."
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
    /// read, and the attached ends (sender, receiver).
    Ls,
    /// Send frames to a pipe.
    ///
    /// Creates the pipe (with the daemon's default capacity) if it does not
    /// exist, and waits while it is full. When this command exits, a receiver
    /// that has read everything sees the end of the pipe.
    Send(SendArgs),
    /// Receive frames from a pipe and print them, one per line.
    ///
    /// Creates the pipe if it does not exist. Each frame is written as is,
    /// followed by a newline. Stops after COUNT frames, or at the end of the
    /// pipe: once its sender has gone and every frame it sent was read.
    Recv(RecvArgs),
}

#[derive(Debug, Args)]
struct SendArgs {
    /// The pipe.
    pipe: String,

    /// The frames, one per argument. Without any, each line of standard input
    /// is one frame (without its newline).
    #[arg(value_name = "MESSAGE")]
    messages: Vec<OsString>,

    /// Give up if the pipe stays full this long (seconds; fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

#[derive(Debug, Args)]
struct RecvArgs {
    /// The pipe.
    pipe: String,

    /// Stop after this many frames.
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    count: Option<u64>,

    /// Give up if no frame arrives for this long (seconds; fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds (e.g. 2 or 0.5)"))
}

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// Print `shmbus: MESSAGE`, exit [`EXIT_ERROR`].
    Error(String),
    /// Print `shmbus: MESSAGE`, exit [`EXIT_TIMEOUT`].
    Timeout(String),
    /// Standard output was closed by its reader: stop quietly.
    StdoutClosed,
}

fn error(e: impl Display) -> Failure {
    Failure::Error(e.to_string())
}

/// A failure writing standard output.
fn stdout_error(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Error(format!("writing standard output: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Error(m)) => report(&m, EXIT_ERROR),
        Err(Failure::Timeout(m)) => report(&m, EXIT_TIMEOUT),
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
        Command::Send(a) => send(&bus, a),
        Command::Recv(a) => recv(&bus, a),
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
            ChannelDetails::Corrupt(what) => ("-".into(), "-".into(), format!("corrupt: {what}")),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([c.name, c.kind.to_string(), capacity, waiting, attached]);
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

fn send(bus: &Bus, a: SendArgs) -> Result<(), Failure> {
    let pipe = bus.pipe(&a.pipe).map_err(error)?;
    let mut tx = pipe.sender().map_err(error)?;
    if !a.messages.is_empty() {
        for m in &a.messages {
            send_one(&mut tx, m.as_bytes(), a.timeout)?;
        }
        return Ok(());
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
        send_one(&mut tx, &line, a.timeout)?;
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

fn recv(bus: &Bus, a: RecvArgs) -> Result<(), Failure> {
    let pipe = bus.pipe(&a.pipe).map_err(error)?;
    let mut rx = pipe.receiver().map_err(error)?;
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut n: u64 = 0;
    while a.count.map_or(true, |c| n < c) {
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
        assert!(Cli::try_parse_from(["shmbus", "recv", "p", "--timeout", "x"]).is_err());
    }
}
