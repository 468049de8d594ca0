//! # shmbus client
//!
//! Talk to a [`shmbus`] bus: a daemon, `shmbusd`, owns a shared-memory
//! segment under `/dev/shm`; programs connect to it with this crate and
//! exchange data through the segment directly, without a system call while
//! the other side keeps up.
//!
//! ## The daemon must be running
//! Every handle comes from a [`Bus`], and [`Bus::connect`] needs a `shmbusd`
//! serving the bus (`$SHMBUS_BUS`, else `shmbus`). Start one first, from the
//! workspace or wherever `shmbusd` is installed:
//!
//! ```sh
//! cargo run --release -p shmbus-daemon                  # serves bus "shmbus"
//! cargo run --release -p shmbus-daemon -- --name prices  # serves bus "prices"
//! shmbusd --name prices                                  # the same, installed
//! ```
//!
//! Without one, `connect` returns [`Error::DaemonNotRunning`], whose message
//! says the command to run.
//!
//! ```no_run
//! use shmbus_client::Bus;
//!
//! // Process A
//! let bus = Bus::connect()?; // bus $SHMBUS_BUS, else "shmbus"
//! let mut tx = bus.pipe("greetings")?.sender()?;
//! tx.send(b"hello")?;
//!
//! // Process B
//! let bus = Bus::connect()?;
//! let mut rx = bus.pipe("greetings")?.receiver()?;
//! assert_eq!(rx.recv()?, b"hello");
//! # Ok::<(), shmbus_client::Error>(())
//! ```
//!
//! ## Examples
//! `client/examples/` holds whole programs; with a daemon running:
//!
//! | command | what it shows |
//! |---|---|
//! | `cargo run -p shmbus-client --example pipe_consumer`, then `cargo run -p shmbus-client --example pipe_producer` in another terminal | a pipe between two programs, zero-copy `claim`/`commit`, end of file |
//! | `cargo run -p shmbus-client --example worker_pool` | worker processes fed by a [`Queue`], `task_done`/`join` |
//! | `cargo run -p shmbus-client --example counter` | a [`Value`] and an [`Array`] updated by several processes, read without a lock |
//!
//! ## Every public item
//! | item | what | Python `multiprocessing` |
//! |---|---|---|
//! | [`Bus`] | connection to one bus: control socket + mapped segment; opens every channel | a `Manager` |
//! | [`Pipe`] | a named single-producer single-consumer pipe of byte frames | `Pipe(duplex=False)` |
//! | [`PipeSender`] / [`PipeReceiver`] | its two ends, one holder each on the whole bus | the two `Connection`s |
//! | [`PipeClaim`] | room for one frame in a pipe, written in place, then committed | — |
//! | [`Queue`] | a named multi-producer multi-consumer queue of byte frames; `task_done`/`join` | `JoinableQueue()` |
//! | [`QueueBuilder`] | opens a queue with chosen slot count and size ([`Bus::queue_builder`]) | `JoinableQueue(maxsize)` |
//! | [`QueueClaim`] | a queue slot, written in place, then committed | — |
//! | [`Value<T>`] | a named typed value; lock-free reads, never torn | `Value('d', 0.0)` |
//! | [`Array<T>`] | a named fixed-length typed array; lock-free reads, never torn | `Array('i', 10)` |
//! | [`Table`] | a value or array of a type learnt at run time (as the `shmbus` command uses it) | — |
//! | [`Element`] / [`Integer`] | the element types of values and arrays; integers also have `fetch_add` | typecodes |
//! | [`ElemType`] | an element type named at run time (`"f64"`, or Python's `"d"`) | a typecode |
//! | [`ChannelInfo`] | one channel as listed by [`Bus::channels`]: name, [`Kind`], [`ChannelDetails`] | — |
//! | [`Kind`] | pipe, queue, value or array | — |
//! | [`ChannelDetails`] | the kind-specific part of a listing: [`PipeInfo`], [`QueueInfo`] or [`TableInfo`] | — |
//! | [`Holder`] | who holds a pipe end: peer slot and process id | — |
//! | [`Error`] / [`Result`] | the one error type of every operation, and `Result` with it; the [`error`] module says which operation returns which variant | the exceptions |
//! | [`End`] | sender or receiver, as named in [`Error::Busy`] | — |
//! | [`DEFAULT_BUS`], [`BUS_ENV`], [`default_bus_name`] | the bus used when none is named: `$SHMBUS_BUS`, else `shmbus` | — |
//!
//! Each operation has a ladder: `try_` never blocks; the plain form blocks;
//! `_timeout` and `_deadline` block at most so long. Blocking calls return
//! `BusClosed` if the daemon stops, restarts or is killed while they wait.
//!
//! ## Lifetimes across processes
//! The connection to the daemon is held as long as any [`Bus`], [`Pipe`] or
//! endpoint made from it lives, and it is the daemon's liveness signal: when
//! this process exits, even by `SIGKILL`, the daemon releases the pipe ends
//! it held, and their peers see end of file (`Disconnected`).
//!
//! ## Errors
//! One type, [`Error`], for every operation, so `?` works throughout; its
//! [module](error) lists which operation returns which variant. Every message
//! says what to do, and `Debug` prints the message too, so that
//! `fn main() -> Result<(), shmbus_client::Error>` shows it when it fails.
//!
//! ## The `shmbus` command
//! The command-line client, `shmbus ls`, `shmbus send PIPE [MESSAGE...]`,
//! `shmbus recv PIPE [-n COUNT]` and so on, is the crate `shmbus-cli` (built
//! on this library); depending on this crate does not build it.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]

mod bus;
mod control;
pub mod error;
mod liveness;
mod pipe;
mod queue;
mod segment;
mod table;

pub use bus::{
    default_bus_name, Bus, ChannelDetails, ChannelInfo, Holder, PipeInfo, QueueBuilder, QueueInfo,
    TableInfo, BUS_ENV, DEFAULT_BUS,
};
pub use error::{End, Error, Result};
pub use pipe::{Pipe, PipeClaim, PipeReceiver, PipeSender};
pub use queue::{Queue, QueueClaim};
pub use shmbus::layout::Kind;
pub use shmbus::seqlock::{ElemType, Element, Integer};
pub use table::{Array, Table, Value};

// The README's library snippets, compiled by `cargo test` (`rust,no_run`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
