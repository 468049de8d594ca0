//! The served bus's shared state ([`Bus`]): what every connection thread,
//! the accept loop and shutdown share.
//!
//! The bus's mutable state (directory, arena, peer table) sits behind one
//! mutex: control requests are rare and short, and the data plane never
//! touches it. The one long step, initialising a new channel's body (seconds
//! for a queue of 2^24 cells), runs without it (see `crate::alloc`), so that
//! `HELLO`, other requests and crash recovery never wait behind it.
//!
//! Connections are accepted and admitted by [`crate::admission`] and served,
//! one thread each, by [`crate::connection`]; this module registers the open
//! ones so that shutdown can close them.
//!
//! No thread wakes periodically: an idle daemon makes no system call. Every
//! sleep is a `poll` or condition wait that an event ends (a connection, a
//! request, a pidfd, the stop, which reaches kept slots' threads through
//! [`Bus::begin_shutdown`]'s eventfd).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};
use shmbus::layout::state;
use shmbus::params::ChannelParams;
use shmbus::protocol::{ErrorCode, Response};
use shmbus::sync::Ordering;

use crate::alloc::{AllocError, Channel, Channels};
use crate::arena::align_line;
use crate::config::{ChannelSpec, Spec};
use crate::error::Error;
use crate::events::Log;
use crate::segment::Segment;
use crate::supervisor::Peers;

/// State changed by control requests.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) channels: Channels,
    pub(crate) peers: Peers,
    /// Set at shutdown: no more slots or channels are handed out.
    pub(crate) closing: bool,
    /// Per uid: slots kept for running processes whose connection ended
    /// without `BYE`, at most [`KEPT_PER_UID`](shmbus::protocol::KEPT_PER_UID): such a slot cannot be
    /// recovered while its process runs (see [`crate::supervisor`]), so
    /// without a limit one process that reconnects after each protocol
    /// error, or a fork loop, would fill the peer table for every uid.
    pub(crate) kept: HashMap<u32, u32>,
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
    pub(crate) epoch: u64,
    /// The daemon's effective uid: allowed to connect, with root.
    pub(crate) uid: u32,
    /// Who else may connect ([`Spec::allows`]).
    pub(crate) access: Spec,
    state: Mutex<State>,
    /// Notified (with `state`) when a channel is published or shutdown
    /// begins: `OPEN`s of a channel being created wait on it.
    pub(crate) created: Condvar,
    conns: Mutex<Conns>,
    conns_cv: Condvar,
    /// An eventfd, readable from [`begin_shutdown`](Self::begin_shutdown)
    /// on: the threads of kept slots poll it with their client's pidfd.
    pub(crate) closing_fd: OwnedFd,
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
            ch.kind(),
            ch.name,
            ch.params,
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
    pub(crate) fn create_unlocked(
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
            match c.params {
                ChannelParams::Pipe { .. } => self.seg.pipe(c.offset).wake_all(),
                ChannelParams::Value { .. } | ChannelParams::Array { .. } => {
                    self.seg.seqlock(c.offset).wake_all();
                }
                ChannelParams::Queue { slots, slot_size } => {
                    self.seg.queue(c.offset, slots, slot_size).0.wake_all();
                }
                ChannelParams::Topic {
                    slots,
                    slot_size,
                    mode,
                } => {
                    self.seg
                        .topic(c.offset, slots, slot_size, mode)
                        .0
                        .wake_all();
                }
            }
            n += 1;
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
    pub(crate) fn add_conn(&self, stream: &UnixStream) -> io::Result<u64> {
        let clone = stream.try_clone()?;
        let mut c = self.conns();
        let id = c.next_id;
        c.next_id += 1;
        c.open.insert(id, clone);
        Ok(id)
    }

    /// Whether every peer slot is taken (a hint: the peer table decides
    /// again when a slot is handed out).
    pub(crate) fn peers_full(&self) -> bool {
        self.state().peers.live() >= self.seg.geometry().peers_count as usize
    }

    pub(crate) fn remove_conn(&self, id: u64) {
        self.conns().open.remove(&id);
        self.conns_cv.notify_all();
    }

    /// Logs removed channels whose last holder, client `pid` in `slot`, is
    /// gone.
    pub(crate) fn log_freed(&self, freed: &[Channel], pid: u32, slot: u16) {
        for c in freed {
            self.log.info(format_args!(
                "removed {} {} freed: its last holder (client pid {pid} slot {slot}) is gone; \
                 {} arena bytes at offset {} reusable",
                c.kind(),
                c.name,
                align_line(c.length),
                c.offset
            ));
        }
    }
}

/// An `ERR` response.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

/// Why a channel cannot be created, for a person.
pub(crate) fn alloc_msg(e: AllocError) -> String {
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
