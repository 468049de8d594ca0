//! async/await over the [`SelectFd`] (the `tokio` feature): each method
//! tries its `try_` form, and only when that would wait arms a [`SelectFd`]
//! registered with tokio's reactor ([`AsyncFd`]) and awaits its
//! readability. An idle task costs nothing: no polling, no thread of its
//! own; the process's one select driver thread sleeps for every armed fd.
//!
//! # Cancellation safety
//! Every method is cancellation safe: the item is taken, or the frame
//! written, in one synchronous `try_` call that either completes inside the
//! poll that returns `Ready` or does not happen. A future dropped while it
//! waits has taken nothing and holds no claim; its armed fd is withdrawn
//! from the driver (the drop of the [`SelectFd`]).
//!
//! Cost: the first wait of a call that has to wait makes an eventfd and
//! registers it with the reactor (a few system calls); a call whose item is
//! there already makes none.

use std::io;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::fd::SelectFd;
use super::{Ready, Select};
use crate::error::{Error, Result};
use crate::{Array, Element, PipeReceiver, PipeSender, Queue, Table, Value};

/// Tries `attempt` until it gives `Some`, sleeping on `ready(h, arg)`
/// through a [`SelectFd`] in between.
pub(crate) async fn drive<H: ?Sized, T>(
    h: &mut H,
    arg: u64,
    ready: for<'a> fn(&'a H, u64) -> Ready<'a>,
    mut attempt: impl FnMut(&mut H) -> Result<Option<T>>,
) -> Result<T> {
    let mut fd: Option<AsyncFd<SelectFd>> = None;
    loop {
        if let Some(t) = attempt(h)? {
            return Ok(t);
        }
        let fd = match &mut fd {
            Some(f) => f,
            None => {
                let sfd = SelectFd::new()?;
                // SAFETY: the `SelectFd` owns its eventfd for its whole life
                // and `as_raw_fd` always returns that one descriptor.
                let r = unsafe { AsyncFd::register_with_interest(sfd, Interest::READABLE) };
                fd.insert(r.map_err(|e| io_err(e.into()))?)
            }
        };
        // The select borrows `h`; it is gone before the await.
        let now = fd.get_ref().arm(&Select::new().with(ready(h, arg)))?;
        if !now.is_empty() {
            continue;
        }
        let mut guard = fd.readable().await.map_err(io_err)?;
        guard.get_inner().clear();
        guard.clear_ready();
    }
}

fn io_err(source: io::Error) -> Error {
    Error::Io {
        doing: "waiting on the select's eventfd",
        source,
    }
}

/// `Err(Empty)` / `Err(Full)` mean "wait"; anything else is the answer.
pub(crate) fn pending<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(Error::Empty | Error::Full) => Ok(None),
        Err(e) => Err(e),
    }
}

impl PipeReceiver {
    /// The next frame, awaiting one (`tokio` feature): [`recv`](Self::recv)
    /// for async code. Cancellation safe: a dropped future took no frame.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), but never `Empty`.
    pub async fn recv_async(&mut self) -> Result<Vec<u8>> {
        drive(self, 0, |r, _| r.readable(), |r| pending(r.try_recv())).await
    }
}

impl PipeSender {
    /// Sends `frame`, awaiting room (`tokio` feature): [`send`](Self::send)
    /// for async code. Cancellation safe: a dropped future sent nothing and
    /// holds no claim.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), but never `Full`.
    pub async fn send_async(&mut self, frame: &[u8]) -> Result<()> {
        drive(
            self,
            frame.len() as u64,
            |s, len| s.writable(len as usize),
            |s| pending(s.try_send(frame)),
        )
        .await
    }
}

impl Queue {
    /// The next item, awaiting one (`tokio` feature): [`get`](Self::get) for
    /// async code. Cancellation safe: a dropped future took no item.
    ///
    /// # Errors
    /// As [`try_get`](Self::try_get), but never `Empty`.
    pub async fn get_async(&self) -> Result<Vec<u8>> {
        let mut q = self;
        drive(&mut q, 0, |q, _| q.readable(), |q| pending(q.try_get())).await
    }

    /// Puts `item`, awaiting room (`tokio` feature): [`put`](Self::put) for
    /// async code. Cancellation safe: a dropped future put nothing and
    /// holds no claim.
    ///
    /// # Errors
    /// As [`try_put`](Self::try_put), but never `Full`.
    pub async fn put_async(&self, item: &[u8]) -> Result<()> {
        let mut q = self;
        drive(&mut q, 0, |q, _| q.writable(), |q| pending(q.try_put(item))).await
    }
}

impl Table {
    /// Awaits a version other than `since` and returns it (`tokio`
    /// feature): at once if it differs already. Cancellation safe (it
    /// reads only).
    ///
    /// # Errors
    /// `BusClosed`.
    pub async fn changed_async(&self, since: u64) -> Result<u64> {
        let mut t = self;
        drive(
            &mut t,
            since,
            |t, since| t.changed_since(since),
            |t| {
                t.check_open()?;
                let v = t.version();
                Ok((v != since).then_some(v))
            },
        )
        .await
    }
}

impl<T: Element> Value<T> {
    /// [`Table::changed_async`] of the value (`tokio` feature).
    ///
    /// # Errors
    /// `BusClosed`.
    pub async fn changed_async(&self, since: u64) -> Result<u64> {
        self.table().changed_async(since).await
    }
}

impl<T: Element> Array<T> {
    /// [`Table::changed_async`] of the array (`tokio` feature).
    ///
    /// # Errors
    /// `BusClosed`.
    pub async fn changed_async(&self, since: u64) -> Result<u64> {
        self.table().changed_async(since).await
    }
}
