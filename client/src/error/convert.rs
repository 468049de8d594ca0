//! The `From` impls that wrap the core's errors (those of `shmbus::pipe`,
//! `shmbus::queue` and `shmbus::topic`) into the client's [`Error`], so that
//! `?` works on the core's calls; the core's `Interrupted` becomes
//! [`Error::BusClosed`] unless the process's interrupt check stopped the wait.

use super::{Error, Kind};

impl From<shmbus::pipe::TrySendError> for Error {
    #[inline]
    fn from(e: shmbus::pipe::TrySendError) -> Self {
        match e {
            shmbus::pipe::TrySendError::Full => Self::Full,
            shmbus::pipe::TrySendError::Disconnected => Self::Disconnected,
            shmbus::pipe::TrySendError::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Pipe,
            },
            shmbus::pipe::TrySendError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::pipe::SendError> for Error {
    /// The core's `Interrupted` comes only from the client's closed-bus check,
    /// so it becomes [`Error::BusClosed`].
    #[inline]
    fn from(e: shmbus::pipe::SendError) -> Self {
        match e {
            shmbus::pipe::SendError::Disconnected => Self::Disconnected,
            shmbus::pipe::SendError::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Pipe,
            },
            shmbus::pipe::SendError::Timeout => Self::Timeout,
            shmbus::pipe::SendError::Interrupted => Self::closed_or_interrupted(),
            shmbus::pipe::SendError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::pipe::TryRecvError> for Error {
    #[inline]
    fn from(e: shmbus::pipe::TryRecvError) -> Self {
        match e {
            shmbus::pipe::TryRecvError::Empty => Self::Empty,
            shmbus::pipe::TryRecvError::Disconnected => Self::Disconnected,
            shmbus::pipe::TryRecvError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::pipe::RecvError> for Error {
    /// The core's `Interrupted` comes only from the client's closed-bus check,
    /// so it becomes [`Error::BusClosed`].
    #[inline]
    fn from(e: shmbus::pipe::RecvError) -> Self {
        match e {
            shmbus::pipe::RecvError::Disconnected => Self::Disconnected,
            shmbus::pipe::RecvError::Timeout => Self::Timeout,
            shmbus::pipe::RecvError::Interrupted => Self::closed_or_interrupted(),
            shmbus::pipe::RecvError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::queue::TryPutError> for Error {
    #[inline]
    fn from(e: shmbus::queue::TryPutError) -> Self {
        use shmbus::queue::TryPutError as E;
        match e {
            E::Full => Self::Full,
            E::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Queue,
            },
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::queue::PutError> for Error {
    /// `Interrupted` comes only from the closed-bus check: [`Error::BusClosed`].
    #[inline]
    fn from(e: shmbus::queue::PutError) -> Self {
        use shmbus::queue::PutError as E;
        match e {
            E::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Queue,
            },
            E::Timeout => Self::Timeout,
            E::Interrupted => Self::closed_or_interrupted(),
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::queue::TryGetError> for Error {
    #[inline]
    fn from(e: shmbus::queue::TryGetError) -> Self {
        match e {
            shmbus::queue::TryGetError::Empty => Self::Empty,
            shmbus::queue::TryGetError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::queue::GetError> for Error {
    /// `Interrupted` comes only from the closed-bus check: [`Error::BusClosed`].
    #[inline]
    fn from(e: shmbus::queue::GetError) -> Self {
        match e {
            shmbus::queue::GetError::Timeout => Self::Timeout,
            shmbus::queue::GetError::Interrupted => Self::closed_or_interrupted(),
            shmbus::queue::GetError::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::topic::TryPublishError> for Error {
    #[inline]
    fn from(e: shmbus::topic::TryPublishError) -> Self {
        use shmbus::topic::TryPublishError as E;
        match e {
            E::Full => Self::Full,
            E::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Topic,
            },
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::topic::PublishError> for Error {
    #[inline]
    fn from(e: shmbus::topic::PublishError) -> Self {
        use shmbus::topic::PublishError as E;
        match e {
            E::TooLarge { len, max } => Self::TooLarge {
                len,
                max,
                kind: Kind::Topic,
            },
            E::Timeout => Self::Timeout,
            E::Interrupted => Self::closed_or_interrupted(),
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::topic::TryRecvError> for Error {
    #[inline]
    fn from(e: shmbus::topic::TryRecvError) -> Self {
        use shmbus::topic::TryRecvError as E;
        match e {
            E::Empty => Self::Empty,
            E::Lagged(n) => Self::Lagged(n),
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::topic::RecvError> for Error {
    #[inline]
    fn from(e: shmbus::topic::RecvError) -> Self {
        use shmbus::topic::RecvError as E;
        match e {
            E::Lagged(n) => Self::Lagged(n),
            E::Timeout => Self::Timeout,
            E::Interrupted => Self::closed_or_interrupted(),
            E::Corrupt(w) => Self::Corrupt(w),
        }
    }
}

impl From<shmbus::queue::TaskDoneError> for Error {
    #[inline]
    fn from(_: shmbus::queue::TaskDoneError) -> Self {
        Self::TaskDone
    }
}
