//! # shmbus core
//!
//! The algorithms and the shared-memory ABI of shmbus, a lock-free message bus
//! for processes on one Linux host. A daemon (`shmbusd`) owns a named segment
//! under `/dev/shm`; clients map it and exchange data through it with loads,
//! stores and CAS, sleeping on shared futexes only when they must wait.
//!
//! This crate does no I/O apart from the futex system call, so that every
//! protocol in it can be model-checked by loom (`RUSTFLAGS="--cfg loom"`), with
//! state on the heap instead of in a segment.
//!
//! | module | what |
//! |---|---|
//! | [`layout`] | the segment ABI: header, peer table, directory; open-time validation; the checked view of a mapped segment |
//! | [`pipe`] | single-producer single-consumer ring of byte frames |
//! | [`queue`] | bounded multi-producer multi-consumer queue of byte frames (Vyukov, owner-tagged cells) |
//! | [`topic`] | publish–subscribe ring: every subscriber receives every message (lossless or lossy) |
//! | [`seqlock`] | typed values and arrays: seqlock over 2 to 8 copies |
//! | [`futex`] | shared futex and the [`futex::Doorbell`] sleep/wake handshake |
//! | [`protocol`] | control-plane messages between clients and the daemon |
//! | [`params`] | channel parameters (per kind) and their protocol words |
//! | [`name`] | bus and channel names, the default bus, and where a bus's files live |
//! | [`size`] | byte counts as people write them (`64M`) |
//! | [`sync`] | the only switch between real atomics and loom's |
//!
//! ## Glossary
//! - **frame**: one message on a pipe: a length and that many bytes.
//! - **record**: a frame as stored in the ring: 8-byte header, payload, padding.
//! - **owner tag**: a peer slot index + 1 (0 = nobody), stored where a process
//!   claims something so the daemon can release it if that process dies.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]

pub mod futex;
pub mod layout;
pub mod name;
pub mod params;
#[cfg(not(loom))]
pub mod peer;
pub mod pipe;
pub mod protocol;
pub mod queue;
pub mod seqlock;
pub mod size;
pub mod sync;
pub mod topic;
pub mod util;
