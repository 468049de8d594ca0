//! Error types of the pipe operations, one small enum per operation.
//!
//! All are `Copy`, and every `Display` says what happened and what to do.

use core::fmt;

/// Why an endpoint could not be attached to a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Another peer holds this end. `owner` is its peer slot + 1.
    Busy {
        /// Owner tag of the current holder.
        owner: u16,
    },
    /// The channel's control block failed validation.
    Corrupt(&'static str),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy { owner } => write!(
                f,
                "this end of the pipe is already attached by peer slot {}",
                owner - 1
            ),
            Self::Corrupt(what) => write!(f, "corrupt pipe: {what}"),
        }
    }
}

impl std::error::Error for AttachError {}

/// Error of a non-blocking send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// No room now; try again after the receiver has read.
    Full,
    /// The pipe is full and its receiver has gone (Python: `BrokenPipeError`).
    Disconnected,
    /// The frame can never fit: `len` is over the pipe's `max` frame size.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest frame this pipe takes.
        max: usize,
    },
    /// The shared state is inconsistent (another process scribbled on it).
    Corrupt(&'static str),
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "pipe is full"),
            Self::Disconnected => write!(f, "pipe is full and its receiver has gone"),
            Self::TooLarge { len, max } => write!(
                f,
                "frame of {len} bytes is larger than this pipe's limit of {max} bytes \
                 (capacity / 8); create the pipe with a larger capacity"
            ),
            Self::Corrupt(what) => write!(f, "corrupt pipe: {what}"),
        }
    }
}

impl std::error::Error for TrySendError {}

/// Error of a blocking send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The receiver has gone and the pipe is full.
    Disconnected,
    /// Frame over the pipe's limit.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest frame this pipe takes.
        max: usize,
    },
    /// The deadline passed first.
    Timeout,
    /// The caller's interrupt check said stop (the client uses it for a closed bus).
    Interrupted,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => write!(f, "pipe is full and its receiver has gone"),
            Self::TooLarge { len, max } => TrySendError::TooLarge {
                len: *len,
                max: *max,
            }
            .fmt(f),
            Self::Timeout => write!(f, "timed out waiting for room in the pipe"),
            Self::Interrupted => write!(f, "wait interrupted"),
            Self::Corrupt(what) => write!(f, "corrupt pipe: {what}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Error of a non-blocking receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to read now.
    Empty,
    /// The sender has gone and everything it sent has been read (end of file).
    Disconnected,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "pipe is empty"),
            Self::Disconnected => write!(f, "end of pipe: the sender has gone"),
            Self::Corrupt(what) => write!(f, "corrupt pipe: {what}"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// Error of a blocking receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The sender has gone and everything it sent has been read (end of file).
    Disconnected,
    /// The deadline passed first.
    Timeout,
    /// The caller's interrupt check said stop.
    Interrupted,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => write!(f, "end of pipe: the sender has gone"),
            Self::Timeout => write!(f, "timed out waiting for a frame"),
            Self::Interrupted => write!(f, "wait interrupted"),
            Self::Corrupt(what) => write!(f, "corrupt pipe: {what}"),
        }
    }
}

impl std::error::Error for RecvError {}
