//! # shmbusd
//!
//! The daemon that owns a shmbus bus (DESIGN.md §1): it creates the shared
//! segment `/dev/shm/NAME`, is the only writer of its metadata (header, peer
//! table, directory, arena), serves the control socket, and runs recovery when
//! a client's connection ends.
//!
//! | module | what |
//! |---|---|
//! | `cli` | the command line ([`Cli`]) |
//! | [`config`] | command line + TOML file → a validated [`Spec`] |
//! | `run` | starting, serving and stopping a bus ([`Daemon`]) |
//! | `files` | the lock file, the control socket, taking over a dead daemon's files |
//! | `admission` | accepting connections and reading `HELLO`: who may connect, budgets, deadlines; admitting a client |
//! | `server` | the served bus's shared state ([`Daemon`]'s `Bus`): directory, arena, peers, open connections |
//! | `connection` | serving one admitted connection: `OPEN`, `REMOVE`, `CLOSE`, `BYE`, and the end of it |
//! | `alloc` | the directory, and where channel bodies go in the arena |
//! | `arena` | the arena's free space: first-fit free list with coalescing |
//! | `supervisor` | peer slots, and recovery when a client goes away |
//! | `process` | a client's process held by a pidfd: alive, exited, groups |
//! | `segment` | the segment file, and the daemon's checked view of its mapping |
//! | `events` | the event log |
//! | `status` | the one-line status summary ([`StatusHandle`]) |
//! | `stop` | [`StopHandle`] |
//! | `service` | the binary's signals (`SIGHUP` logs the status) and logger |
//! | `error` | [`Error`] |
//!
//! Each module imports only from modules before it in the order `error`,
//! `cli`, `arena`, `config`, `segment`, `events`, `stop`, `process`, `files`, `alloc`,
//! `supervisor`, `server`, `connection`, `admission`, `status`, `service`,
//! `run`, so none imports from one that imports it back.
//!
//! ## Life of a daemon
//! 1. Take `flock(LOCK_EX | LOCK_NB)` on the bus's lock file: one daemon per bus.
//!    If another daemon holds it, refuse ([`Error::AlreadyServed`]).
//! 2. A segment or socket left behind by a daemon that died is removed, but
//!    only if it is provably ours and provably dead (our uid, our magic, its
//!    daemon gone, nobody listening); anything else makes the start fail.
//! 3. Create the segment unnamed (`O_TMPFILE`, `fchmod`, `ftruncate`,
//!    `fallocate` so a full `/dev/shm` fails now with `ENOSPC`, not later with
//!    `SIGBUS`), map it, write the layout, create the declared channels,
//!    publish, and only then link it into place (`linkat`, never replacing a
//!    file).
//! 4. Bind the control socket (under a temporary name, renamed into place
//!    once listening) and serve: a thread per connection.
//! 5. On SIGINT/SIGTERM (or [`StopHandle::stop`]): mark the segment `CLOSING`,
//!    wake every sleeper, remove the segment, socket and lock file. SIGHUP
//!    only logs a status line ([`StatusHandle::summary`]).
//!
//! ## Logging
//! Events go to the [`log`](https://docs.rs/log) facade (target `shmbusd`,
//! levels info and warn). [`main_with_args`] installs `env_logger` (stderr,
//! timestamp and level, `RUST_LOG`, default `info`); [`run()`] and [`Daemon`]
//! install no logger, so a program embedding the daemon keeps its own.
//!
//! ## Using it from Rust
//! [`main_with_args`] is the whole `shmbusd` binary (parse, [`run()`], print the
//! error, return the exit status); a test binary that re-executes itself as a
//! daemon can call it, or [`run()`] with a parsed [`Cli`]. To run a daemon inside a process that
//! has other work (or several daemons, or no signal handler), use [`Daemon`]:
//! ```no_run
//! use shmbus_daemon::{Cli, Daemon, Spec, StopHandle};
//! let spec = Spec::from_cli(Cli::parse_args(["shmbusd", "--name", "demo"]).unwrap()).unwrap();
//! let stop = StopHandle::new();
//! let daemon = Daemon::start(spec, stop.clone()).unwrap(); // segment and socket exist now
//! let server = std::thread::spawn(move || daemon.serve());
//! // ... use the bus ...
//! stop.stop();
//! server.join().unwrap().unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]

mod admission;
mod alloc;
mod arena;
mod cli;
pub mod config;
mod connection;
mod error;
mod events;
mod files;
mod process;
mod run;
mod segment;
mod server;
mod service;
mod status;
mod stop;
mod supervisor;

use std::ffi::OsString;

pub use cli::Cli;
pub use config::Spec;
pub use error::Error;
pub use run::Daemon;
pub use status::StatusHandle;
pub use stop::StopHandle;

/// Serves the bus that `cli` describes until SIGINT or SIGTERM, then removes
/// its files: what the `shmbusd` binary does after parsing its arguments.
/// SIGHUP logs a status line and serving goes on. Under systemd
/// (`Type=notify`, `$NOTIFY_SOCKET`) it reports `READY=1` once the bus
/// serves, the status line as `STATUS=` on SIGHUP, and `STOPPING=1`.
///
/// Installs process-wide SIGINT/SIGTERM/SIGHUP handlers (which stay
/// installed, doing nothing, after it returns), so call it at most once per
/// process; use [`Daemon`] directly to manage shutdown yourself. Installs no
/// logger: events go to the process's `log` logger, if any.
///
/// # Errors
/// [`Error::Config`] for a bad command line or config file;
/// [`Error::AlreadyServed`] if another daemon serves the bus; [`Error::Io`] or
/// [`Error::Failed`] if the segment or socket cannot be created or serving
/// fails. Files created before the failure are removed.
///
/// # Examples
/// A test binary that re-executes itself as a daemon (the role check is the
/// caller's):
/// ```no_run
/// if std::env::var_os("MY_TEST_ROLE").is_some_and(|r| r == "daemon") {
///     let cli = shmbus_daemon::Cli::parse_args(["shmbusd", "--name", "t-1", "--quiet"]).unwrap();
///     let code = match shmbus_daemon::run(cli) {
///         Ok(()) => 0,
///         Err(e) => {
///             eprintln!("shmbusd: error: {e}");
///             i32::from(e.exit_code())
///         }
///     };
///     std::process::exit(code);
/// }
/// ```
pub fn run(cli: Cli) -> Result<(), Error> {
    let spec = Spec::from_cli(cli)?;
    raise_fd_limit();
    let stop = StopHandle::new();
    // Before `start`: a signal that arrives while the segment is being made
    // is kept and acted on once the watcher runs.
    let mut signals = service::SignalWatcher::install()?;
    let daemon = Daemon::start(spec, stop.clone())?;
    let status = daemon.status_handle();
    signals.watch(stop, status.clone())?;
    service::sd_notify(&format!("READY=1\nSTATUS={}", status.summary()));
    let served = daemon.serve();
    drop(signals);
    served
}

/// Raises the soft limit on open files to the hard limit: each admitted client
/// costs the daemon three descriptors (socket, its registry clone, pidfd) and
/// each connection waiting for `HELLO` two, and the default soft limit (often
/// 1024) is far below what the kernel allows. Best-effort: on failure the
/// daemon runs with the limit it has (and logs `EMFILE` when it hits it).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// The whole `shmbusd` program: parses `args` (the first item is the program
/// name), installs the logger (`env_logger` on stderr, `RUST_LOG`, default
/// `info`), runs the daemon until SIGINT/SIGTERM, prints any error as one line
/// on stderr, and returns the exit status: 0 after a clean shutdown (or for
/// `--help` / `--version`), 1 if the bus could not be served, 2 for a bad
/// command line or configuration.
///
/// Like [`run()`], it installs process-wide signal handlers, and a global
/// logger: call it once per process, typically as
/// `std::process::exit(main_with_args(...))`.
///
/// # Examples
/// ```no_run
/// let argv = ["shmbusd", "--name", "t-1", "--pipe", "a:4096"];
/// std::process::exit(shmbus_daemon::main_with_args(argv));
/// ```
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::parse_args(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors go to stderr, --help and --version to stdout.
            let _ = e.print();
            return e.exit_code();
        }
    };
    service::init_logging();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            service::print_error(&e);
            i32::from(e.exit_code())
        }
    }
}
