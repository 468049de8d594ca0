//! Error types of the queue operations, one small enum per operation.
//!
//! All are `Copy`. A queue has no `Disconnected`: like Python's
//! `multiprocessing.Queue`, it outlives any one producer or consumer.

use core::fmt;

/// Error of a non-blocking put ([`super::Queue::try_put`], `try_claim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryPutError {
    /// Every slot is taken; try again after a consumer has taken one.
    Full,
    /// The frame can never fit: `len` is over the queue's slot `max`.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Slot payload size of this queue.
        max: usize,
    },
    /// The shared state is inconsistent (another process scribbled on it).
    Corrupt(&'static str),
}

impl fmt::Display for TryPutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "queue is full"),
            Self::TooLarge { len, max } => write!(
                f,
                "frame of {len} bytes is larger than this queue's slot size of {max} bytes; \
                 create the queue with a larger slot size"
            ),
            Self::Corrupt(what) => write!(f, "corrupt queue: {what}"),
        }
    }
}

impl std::error::Error for TryPutError {}

/// Error of a blocking put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutError {
    /// Frame over the slot size.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Slot payload size of this queue.
        max: usize,
    },
    /// The deadline passed first.
    Timeout,
    /// The caller's interrupt check said stop (the client uses it for a closed bus).
    Interrupted,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => TryPutError::TooLarge {
                len: *len,
                max: *max,
            }
            .fmt(f),
            Self::Timeout => write!(f, "timed out waiting for a free slot in the queue"),
            Self::Interrupted => write!(f, "wait interrupted"),
            Self::Corrupt(what) => write!(f, "corrupt queue: {what}"),
        }
    }
}

impl std::error::Error for PutError {}

/// Error of a non-blocking get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryGetError {
    /// Nothing to take now.
    Empty,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "queue is empty"),
            Self::Corrupt(what) => write!(f, "corrupt queue: {what}"),
        }
    }
}

impl std::error::Error for TryGetError {}

/// Error of a blocking get, or of [`super::Queue::join_until`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetError {
    /// The deadline passed first.
    Timeout,
    /// The caller's interrupt check said stop.
    Interrupted,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => write!(f, "timed out waiting on the queue"),
            Self::Interrupted => write!(f, "wait interrupted"),
            Self::Corrupt(what) => write!(f, "corrupt queue: {what}"),
        }
    }
}

impl std::error::Error for GetError {}

/// `task_done` was called more times than items were put (Python raises
/// `ValueError` here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task_done() called more times than there were items put")
    }
}

impl std::error::Error for TaskDoneError {}
