//! Error types of the topic operations, one small enum per operation.
//!
//! All are `Copy`. A topic has no `Disconnected`: it outlives any one
//! publisher or subscriber.

use core::fmt;

/// Error of a non-blocking publish ([`super::Publisher::try_publish`],
/// `try_claim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryPublishError {
    /// Lossless: the slowest subscriber is a whole ring behind. Either mode:
    /// the publisher of the previous lap of this slot has not finished.
    Full,
    /// The message can never fit: `len` is over the topic's slot `max`.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Slot payload size of this topic.
        max: usize,
    },
    /// The shared state is inconsistent (another process scribbled on it).
    Corrupt(&'static str),
}

impl fmt::Display for TryPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "topic is full: the slowest subscriber is a ring behind"),
            Self::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes is larger than this topic's slot size of {max} bytes; \
                 create the topic with a larger slot size"
            ),
            Self::Corrupt(what) => write!(f, "corrupt topic: {what}"),
        }
    }
}

impl std::error::Error for TryPublishError {}

/// Error of a blocking publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Message over the slot size.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Slot payload size of this topic.
        max: usize,
    },
    /// The deadline passed first.
    Timeout,
    /// The caller's interrupt check said stop.
    Interrupted,
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => TryPublishError::TooLarge {
                len: *len,
                max: *max,
            }
            .fmt(f),
            Self::Timeout => write!(f, "timed out waiting for room in the topic"),
            Self::Interrupted => write!(f, "interrupted while waiting for room in the topic"),
            Self::Corrupt(what) => write!(f, "corrupt topic: {what}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Error of a non-blocking receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No new message yet.
    Empty,
    /// Lossy mode: this many messages were overwritten before this
    /// subscriber read them; the next receive continues with the oldest
    /// message still in the ring.
    Lagged(u64),
    /// The shared state is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "no new message in the topic"),
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} messages missed"),
            Self::Corrupt(what) => write!(f, "corrupt topic: {what}"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// Error of a blocking receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Lossy mode: messages missed (see [`TryRecvError::Lagged`]).
    Lagged(u64),
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
            Self::Lagged(n) => TryRecvError::Lagged(*n).fmt(f),
            Self::Timeout => write!(f, "timed out waiting for a message on the topic"),
            Self::Interrupted => write!(f, "interrupted while waiting for a message"),
            Self::Corrupt(what) => write!(f, "corrupt topic: {what}"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Error of joining a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// Every entry of the subscriber table is taken.
    TooManySubscribers {
        /// The topic's largest number of subscribers.
        max: u64,
    },
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManySubscribers { max } => write!(
                f,
                "the topic has its largest number of subscribers ({max}); \
                 create it with a larger --max-subscribers"
            ),
        }
    }
}

impl std::error::Error for SubscribeError {}
