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
//! | [`set_interrupt_check`] | a process-wide check that stops waiting calls ([`Error::Interrupted`]), for runtimes that handle signals themselves | — |
//! | [`End`] | sender or receiver, as named in [`Error::Busy`] | — |
//! | [`DEFAULT_BUS`], [`BUS_ENV`], [`default_bus_name`] | the bus used when none is named: `$SHMBUS_BUS`, else `shmbus` | — |
//!
//! ## Blocking calls: four forms each
//! Every call that can wait comes in four forms, which run the same code:
//! - `try_…` never blocks: it returns [`Error::Full`] or [`Error::Empty`]
//!   instead of waiting;
//! - the plain form waits as long as it must;
//! - `…_timeout(…, Duration)` and `…_deadline(…, Instant)` wait at most so
//!   long, then return [`Error::Timeout`]. The clock is read only once a
//!   call has to wait (but for [`PipeSender::claim_timeout`], which says
//!   why).
//!
//! The operation's own arguments come first, then the timeout or deadline,
//! then a closure if it takes one. Every waiting form returns
//! [`Error::BusClosed`] if the daemon stops, restarts or is killed while it
//! waits.
//!
//! | handle | never blocks | waits | at most `timeout` | until `deadline` |
//! |---|---|---|---|---|
//! | [`PipeSender`] | [`try_send`](PipeSender::try_send) | [`send`](PipeSender::send) | [`send_timeout`](PipeSender::send_timeout) | [`send_deadline`](PipeSender::send_deadline) |
//! | | [`try_claim`](PipeSender::try_claim) | [`claim`](PipeSender::claim) | [`claim_timeout`](PipeSender::claim_timeout) | [`claim_deadline`](PipeSender::claim_deadline) |
//! | [`PipeReceiver`] | [`try_recv`](PipeReceiver::try_recv) | [`recv`](PipeReceiver::recv) | [`recv_timeout`](PipeReceiver::recv_timeout) | [`recv_deadline`](PipeReceiver::recv_deadline) |
//! | | [`try_recv_into`](PipeReceiver::try_recv_into) | [`recv_into`](PipeReceiver::recv_into) | [`recv_into_timeout`](PipeReceiver::recv_into_timeout) | [`recv_into_deadline`](PipeReceiver::recv_into_deadline) |
//! | | [`try_recv_with`](PipeReceiver::try_recv_with) | [`recv_with`](PipeReceiver::recv_with) | [`recv_with_timeout`](PipeReceiver::recv_with_timeout) | [`recv_with_deadline`](PipeReceiver::recv_with_deadline) |
//! | [`Queue`] | [`try_put`](Queue::try_put) | [`put`](Queue::put) | [`put_timeout`](Queue::put_timeout) | [`put_deadline`](Queue::put_deadline) |
//! | | [`try_claim`](Queue::try_claim) | [`claim`](Queue::claim) | [`claim_timeout`](Queue::claim_timeout) | [`claim_deadline`](Queue::claim_deadline) |
//! | | [`try_get`](Queue::try_get) | [`get`](Queue::get) | [`get_timeout`](Queue::get_timeout) | [`get_deadline`](Queue::get_deadline) |
//! | | [`try_get_into`](Queue::try_get_into) | [`get_into`](Queue::get_into) | [`get_into_timeout`](Queue::get_into_timeout) | [`get_into_deadline`](Queue::get_into_deadline) |
//! | | [`try_get_with`](Queue::try_get_with) | [`get_with`](Queue::get_with) | [`get_with_timeout`](Queue::get_with_timeout) | [`get_with_deadline`](Queue::get_with_deadline) |
//! | | `unfinished() == 0` | [`join`](Queue::join) | [`join_timeout`](Queue::join_timeout) | [`join_deadline`](Queue::join_deadline) |
//! | [`Value`], [`Array`], [`Table`] | `version() != since` | [`wait_changed`](Value::wait_changed) | [`wait_changed_timeout`](Value::wait_changed_timeout) | [`wait_changed_deadline`](Value::wait_changed_deadline) |
//!
//! `join` and `wait_changed` have no `try_` form: the questions in the table
//! are theirs. The writes of a [`Value`] or [`Array`] (`store`, `write`,
//! `set`, `update`, `fetch_add`) wait for the writer lock without a limit and
//! have no other forms: another writer holds that lock for one copy of the
//! data, or for one `update` closure.
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

// Each module imports only from those before it in this order (checked by
// `.ci/import-cycles`): interrupt (the process's interrupt check), error, segment, control, liveness, ladder; wait (how
// blocking calls wait), channels (the listing); bus (the connection, and
// `remove` in bus/removal.rs); select (the trait each kind implements to
// be waited on with others); then each kind with its `Bus` openers: pipe
// (with pipe/sender.rs, pipe/receiver.rs), queue (openers and QueueBuilder
// in queue/open.rs), table (with table/typed.rs), topic (openers and
// TopicBuilder in topic/open.rs, topic/publisher.rs, topic/subscriber.rs).
mod bus;
mod channels;
mod control;
pub mod error;
mod interrupt;
mod ladder;
mod liveness;
mod pipe;
mod queue;
mod segment;
mod select;
mod table;
mod topic;
mod wait;

pub use bus::{default_bus_name, Bus, BUS_ENV, DEFAULT_BUS};
pub use channels::{
    ChannelDetails, ChannelInfo, Holder, PipeInfo, QueueInfo, TableInfo, TopicInfo,
};
pub use error::kind::ErrorKind;
pub use error::{End, Error, Result};
pub use interrupt::set_interrupt_check;
pub use pipe::receiver::{PipeMark, PipeReceiver};
pub use pipe::sender::{PipeClaim, PipeSender};
pub use pipe::Pipe;
pub use queue::open::QueueBuilder;
pub use queue::{Queue, QueueClaim};
pub use select::fd::SelectFd;
pub use select::{Ready, Select};
pub use shmbus::layout::Kind;
pub use shmbus::seqlock::{ElemType, Element, Integer};
pub use table::typed::{Array, Value};
pub use table::Table;
pub use topic::open::TopicBuilder;
pub use topic::publisher::{Publisher, TopicClaim};
pub use topic::subscriber::Subscriber;
pub use topic::Topic;

// The README's library snippets, compiled by `cargo test` (`rust,no_run`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
