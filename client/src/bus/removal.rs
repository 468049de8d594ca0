//! Removing channels ([`Bus::remove`]) and telling the daemon when this
//! process is done with one ([`Hold`]).
//!
//! The daemon frees a removed channel's space only once no connection has it
//! open. It counts each `OPEN` it answered; a [`Hold`] made from that answer
//! is shared by every handle made from it (the [`Pipe`](crate::Pipe) and its
//! ends, a [`Queue`](crate::Queue) and its clones, a
//! [`Table`](crate::Table), [`Value`](crate::Value) or
//! [`Array`](crate::Array) and their clones), and its drop, after the last
//! of them released whatever it held in the channel, sends `CLOSE`.

use std::sync::Arc;

use shmbus::name::validate_channel;
use shmbus::protocol::{ErrorCode, Request, Response};

use super::{Bus, Inner};
use crate::control::RequestError;
use crate::error::{Error, Result};

/// One `OPEN` the daemon granted: sends `CLOSE` when the last handle made
/// from it is dropped. Handles declare it after whatever touches the
/// channel's body, so that it drops last.
#[derive(Debug)]
pub(crate) struct Hold {
    bus: Arc<Inner>,
    index: u32,
    generation: u32,
}

impl Hold {
    pub(crate) fn new(bus: Arc<Inner>, index: u32, generation: u32) -> Arc<Self> {
        Arc::new(Self {
            bus,
            index,
            generation,
        })
    }
}

impl Drop for Hold {
    /// Never blocks on the daemon (see `Control::notify`).
    fn drop(&mut self) {
        self.bus.control.notify(&Request::Close {
            index: self.index,
            generation: self.generation,
        });
    }
}

impl Bus {
    /// Removes channel `name`, with the semantics of `unlink`: the name is
    /// gone at once, so a new channel of that name (of any kind) can be
    /// created, and opening it finds the new one or nothing. Handles that
    /// already have the channel open, in any process, keep working as
    /// before: a pipe's receiver still gets what its sender sends, and end of
    /// file once the sender is gone; a receiver blocked on it is not woken.
    /// The channel's arena space is reused once the last of them is dropped
    /// (a process that dies holding it counts as gone once the daemon has
    /// recovered it). Until then listings show it as pending removal
    /// ([`ChannelInfo::removed`](crate::ChannelInfo::removed)).
    ///
    /// Returns the number of connections that still have it open (0: its
    /// space was freed at once). This `Bus`'s own open handles count.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no channel of that name (a removed one
    /// included); [`Error::BadName`]; `BusClosed`, `Protocol`, `Io`.
    ///
    /// # Examples
    /// ```no_run
    /// let bus = shmbus_client::Bus::connect()?;
    /// // A pipe was created where a queue was meant.
    /// bus.remove("jobsq")?;
    /// let q = bus.queue("jobsq")?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn remove(&self, name: &str) -> Result<u64> {
        validate_channel(name).map_err(|error| Error::BadName {
            what: "channel",
            name: name.to_owned(),
            error,
        })?;
        let req = Request::Remove {
            name: name.to_owned(),
        };
        match self.inner.control.request(&req) {
            Ok(Response::Removed { holders, .. }) => Ok(holders),
            Ok(Response::Error {
                code: ErrorCode::NotFound,
                ..
            }) => Err(Error::NotFound {
                channel: name.to_owned(),
            }),
            Ok(Response::Error {
                code: ErrorCode::Closing,
                ..
            }) => Err(Error::BusClosed),
            Ok(Response::Error { code, message }) => Err(Error::Protocol(format!(
                "shmbusd answered {code}: {message}"
            ))),
            Ok(other) => Err(Error::Protocol(format!(
                "expected REMOVED, got {}",
                other.encode().trim_end()
            ))),
            Err(RequestError::Closed) => Err(Error::BusClosed),
            Err(RequestError::Protocol(message)) => Err(Error::Protocol(message)),
            Err(RequestError::Io(source)) => Err(Error::Io {
                doing: "talking to shmbusd",
                source,
            }),
        }
    }
}
