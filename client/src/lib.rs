//! # shmbus client
//!
//! Talk to a [`shmbus`] bus: a daemon, `shmbusd`, owns a shared-memory
//! segment under `/dev/shm`; programs connect to it with this crate and
//! exchange data through the segment directly, without a system call while
//! the other side keeps up.
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
//! ## Pieces
//! | type | what | Python `multiprocessing` |
//! |---|---|---|
//! | [`Bus`] | connection to one bus: control socket + mapped segment | a `Manager` |
//! | [`Pipe`] | a named single-producer single-consumer pipe of byte frames | `Pipe(duplex=False)` |
//! | [`Queue`] | a named multi-producer multi-consumer queue of byte frames; `task_done`/`join` | `JoinableQueue()` |
//! | [`PipeSender`] / [`PipeReceiver`] | its two ends, one holder each on the whole bus | the two `Connection`s |
//! | [`PipeClaim`] | room for one frame, written in place, then committed | — |
//! | [`Value<T>`] | a named typed value; lock-free reads, never torn | `Value('d', 0.0)` |
//! | [`Array<T>`] | a named fixed-length typed array; lock-free reads, never torn | `Array('i', 10)` |
//! | [`Table`] | a value or array of a type learnt at run time | — |
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
//! says what to do.
//!
//! ## The `shmbus` command
//! This crate also builds `shmbus`, a command-line client:
//! `shmbus ls`, `shmbus send PIPE [MESSAGE...]`, `shmbus recv PIPE [-n COUNT]`.
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
