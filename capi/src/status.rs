//! Status codes: one per variant of the client's `Error`, and the few that
//! only a C caller can cause (a null pointer, a bad length, a panic).
//!
//! The mapping from the client's error kinds (`shmbus_client::ErrorKind`,
//! the classification the Python binding maps from too) lives here, in one
//! match. The numbers are part of the ABI: never renumber, only add.

use shmbus_client::{Error, ErrorKind};

/// What every call returns. `SHMBUS_OK` (0) is success; every other code
/// names one kind of failure, and `shmbus_last_error()` gives the full
/// message of the latest one on the calling thread.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_status {
    /// Success.
    SHMBUS_OK = 0,

    // ---- data plane ----
    /// A call with a positive timeout ran out of time.
    SHMBUS_TIMEOUT = 1,
    /// A call with timeout 0 found the pipe or queue empty.
    SHMBUS_EMPTY = 2,
    /// A call with timeout 0 found the pipe or queue full.
    SHMBUS_FULL = 3,
    /// The pipe's other end has gone (end of file when receiving).
    SHMBUS_DISCONNECTED = 4,
    /// The daemon stopped, restarted or was killed: reconnect.
    SHMBUS_BUS_CLOSED = 5,
    /// The frame or item can never fit in this pipe or queue.
    SHMBUS_TOO_LARGE = 6,
    /// `shmbus_queue_task_done` called more times than items were put.
    SHMBUS_TASK_DONE = 7,
    /// A channel's shared state is inconsistent.
    SHMBUS_CORRUPT = 8,

    // ---- connecting ----
    /// A bus or channel name is not valid (`[A-Za-z0-9._-]`, 1-200 bytes).
    SHMBUS_BAD_NAME = 10,
    /// No daemon serves the bus: start `shmbusd --name BUS`.
    SHMBUS_DAEMON_NOT_RUNNING = 11,
    /// The segment file may not be opened by this user.
    SHMBUS_PERMISSION_DENIED = 12,
    /// The file under the bus's name is not a shmbus segment.
    SHMBUS_NOT_SHMBUS = 13,
    /// The segment file is too small to be a segment.
    SHMBUS_TRUNCATED = 14,
    /// The segment's size disagrees with its header.
    SHMBUS_SIZE_MISMATCH = 15,
    /// The segment was laid out by another ABI version of shmbus.
    SHMBUS_ABI_MISMATCH = 16,
    /// The daemon is still setting the segment up: try again shortly.
    SHMBUS_NOT_READY = 17,
    /// The segment's header is inconsistent.
    SHMBUS_CORRUPT_SEGMENT = 18,
    /// The segment file is not owned by the daemon's user.
    SHMBUS_WRONG_OWNER = 19,
    /// The segment file has permission bits the daemon does not set.
    SHMBUS_UNSAFE_MODE = 20,
    /// The daemon refused to register this client.
    SHMBUS_REFUSED = 21,

    // ---- opening channels ----
    /// No channel of that name exists (`shmbus_remove`; the openers create
    /// a missing channel).
    SHMBUS_NOT_FOUND = 30,
    /// A channel of that name exists with another kind.
    SHMBUS_KIND_MISMATCH = 31,
    /// A channel of that name exists with other parameters.
    SHMBUS_PARAM_MISMATCH = 32,
    /// Parameters out of range (e.g. a capacity that is not a power of two).
    SHMBUS_BAD_PARAMS = 33,
    /// The segment has no room left for the channel.
    SHMBUS_NO_SPACE = 34,
    /// A value or array exists with another element type or length, or a
    /// typed call was made on a handle of another element type.
    SHMBUS_TYPE_MISMATCH = 35,
    /// An array call was given a length other than the array's.
    SHMBUS_LENGTH_MISMATCH = 36,
    /// The bus's directory has no free entry for another channel.
    SHMBUS_DIRECTORY_FULL = 37,
    /// shmbusd answered a channel request with "denied". Today's shmbusd
    /// never does: it checks who may use the bus when a client connects
    /// (`SHMBUS_REFUSED`), not per channel; the code is kept for a daemon
    /// that does, so the tests cannot provoke it.
    SHMBUS_DENIED = 38,
    /// Another handle already holds this end of the pipe.
    SHMBUS_BUSY = 39,

    // ---- anything else from the client ----
    /// The daemon answered something this library does not understand.
    SHMBUS_PROTOCOL = 40,
    /// An I/O error talking to the daemon or opening the segment.
    SHMBUS_IO = 41,

    // ---- only from C ----
    /// A pointer argument that must not be NULL was NULL.
    SHMBUS_NULL_POINTER = 50,
    /// A pointer argument is not aligned for its type.
    SHMBUS_MISALIGNED = 51,
    /// An argument is out of range: a timeout below -1, a length too large,
    /// a name that is not UTF-8.
    SHMBUS_INVALID_ARGUMENT = 52,
    /// The caller's buffer is smaller than the frame; the needed size was
    /// stored in `*len` (see `shmbus_pipe_recv` and `shmbus_queue_get`).
    SHMBUS_BUFFER_TOO_SMALL = 53,
    /// The call does not fit the handle's state: a send or claim while a
    /// claim is open, a commit without one.
    SHMBUS_BAD_STATE = 54,
    /// The library panicked; the panic was caught at the boundary. A bug:
    /// please report it with `shmbus_last_error()`. No call can be made to
    /// panic on purpose, so only a unit test of the boundary provokes it.
    SHMBUS_PANIC = 55,
    /// An error this build of the library has no code for;
    /// `shmbus_last_error()` has its message. Never returned by this build:
    /// every error of its client library has a code, but the client's
    /// "interrupted" (a wait stopped by an interrupt check, which this
    /// library never installs). Kept for a build whose client library has
    /// errors newer than its codes.
    SHMBUS_UNKNOWN = 56,

    // ---- topics ----
    /// A lossy topic's subscriber fell a ring behind: the number of messages
    /// it missed is stored in `*missed`; the next receive continues with the
    /// oldest message still in the ring.
    SHMBUS_LAGGED = 60,
    /// The topic already has its largest number of subscribers.
    SHMBUS_TOO_MANY_SUBSCRIBERS = 61,
}

use shmbus_status as S;

/// Every code, in the order of the header.
#[cfg(test)]
pub(crate) const ALL: &[shmbus_status] = &[
    S::SHMBUS_OK,
    S::SHMBUS_TIMEOUT,
    S::SHMBUS_EMPTY,
    S::SHMBUS_FULL,
    S::SHMBUS_DISCONNECTED,
    S::SHMBUS_BUS_CLOSED,
    S::SHMBUS_TOO_LARGE,
    S::SHMBUS_TASK_DONE,
    S::SHMBUS_CORRUPT,
    S::SHMBUS_BAD_NAME,
    S::SHMBUS_DAEMON_NOT_RUNNING,
    S::SHMBUS_PERMISSION_DENIED,
    S::SHMBUS_NOT_SHMBUS,
    S::SHMBUS_TRUNCATED,
    S::SHMBUS_SIZE_MISMATCH,
    S::SHMBUS_ABI_MISMATCH,
    S::SHMBUS_NOT_READY,
    S::SHMBUS_CORRUPT_SEGMENT,
    S::SHMBUS_WRONG_OWNER,
    S::SHMBUS_UNSAFE_MODE,
    S::SHMBUS_REFUSED,
    S::SHMBUS_NOT_FOUND,
    S::SHMBUS_KIND_MISMATCH,
    S::SHMBUS_PARAM_MISMATCH,
    S::SHMBUS_BAD_PARAMS,
    S::SHMBUS_NO_SPACE,
    S::SHMBUS_TYPE_MISMATCH,
    S::SHMBUS_LENGTH_MISMATCH,
    S::SHMBUS_DIRECTORY_FULL,
    S::SHMBUS_DENIED,
    S::SHMBUS_BUSY,
    S::SHMBUS_PROTOCOL,
    S::SHMBUS_IO,
    S::SHMBUS_NULL_POINTER,
    S::SHMBUS_MISALIGNED,
    S::SHMBUS_INVALID_ARGUMENT,
    S::SHMBUS_BUFFER_TOO_SMALL,
    S::SHMBUS_BAD_STATE,
    S::SHMBUS_PANIC,
    S::SHMBUS_UNKNOWN,
    S::SHMBUS_LAGGED,
    S::SHMBUS_TOO_MANY_SUBSCRIBERS,
];

/// The code for a client error.
#[inline]
pub(crate) fn code(e: &Error) -> shmbus_status {
    of_kind(e.kind())
}

/// The code for a kind of client error: one code per kind, but
/// `Interrupted` (which needs an interrupt check, and this library installs
/// none) and kinds newer than this build get `SHMBUS_UNKNOWN`.
#[inline]
pub(crate) fn of_kind(k: ErrorKind) -> shmbus_status {
    use ErrorKind as K;
    match k {
        K::Timeout => S::SHMBUS_TIMEOUT,
        K::Empty => S::SHMBUS_EMPTY,
        K::Full => S::SHMBUS_FULL,
        K::Disconnected => S::SHMBUS_DISCONNECTED,
        K::BusClosed => S::SHMBUS_BUS_CLOSED,
        K::TooLarge => S::SHMBUS_TOO_LARGE,
        K::TaskDone => S::SHMBUS_TASK_DONE,
        K::Corrupt => S::SHMBUS_CORRUPT,
        K::BadName => S::SHMBUS_BAD_NAME,
        K::DaemonNotRunning => S::SHMBUS_DAEMON_NOT_RUNNING,
        K::PermissionDenied => S::SHMBUS_PERMISSION_DENIED,
        K::NotShmbus => S::SHMBUS_NOT_SHMBUS,
        K::Truncated => S::SHMBUS_TRUNCATED,
        K::SizeMismatch => S::SHMBUS_SIZE_MISMATCH,
        K::AbiMismatch => S::SHMBUS_ABI_MISMATCH,
        K::NotReady => S::SHMBUS_NOT_READY,
        K::CorruptSegment => S::SHMBUS_CORRUPT_SEGMENT,
        K::WrongOwner => S::SHMBUS_WRONG_OWNER,
        K::UnsafeMode => S::SHMBUS_UNSAFE_MODE,
        K::Refused => S::SHMBUS_REFUSED,
        K::NotFound => S::SHMBUS_NOT_FOUND,
        K::KindMismatch => S::SHMBUS_KIND_MISMATCH,
        K::ParamMismatch => S::SHMBUS_PARAM_MISMATCH,
        K::BadParams => S::SHMBUS_BAD_PARAMS,
        K::NoSpace => S::SHMBUS_NO_SPACE,
        K::TypeMismatch => S::SHMBUS_TYPE_MISMATCH,
        K::LengthMismatch => S::SHMBUS_LENGTH_MISMATCH,
        K::DirectoryFull => S::SHMBUS_DIRECTORY_FULL,
        K::Denied => S::SHMBUS_DENIED,
        K::Busy => S::SHMBUS_BUSY,
        K::Protocol => S::SHMBUS_PROTOCOL,
        K::Io => S::SHMBUS_IO,
        K::Lagged => S::SHMBUS_LAGGED,
        K::TooManySubscribers => S::SHMBUS_TOO_MANY_SUBSCRIBERS,
        K::Interrupted => S::SHMBUS_UNKNOWN,
        _ => S::SHMBUS_UNKNOWN,
    }
}

/// The fixed one-line description of a code (`shmbus_strerror`), NUL
/// terminated; `None` for a number that is no code.
pub(crate) fn describe(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "success\0",
        1 => "timed out\0",
        2 => "empty: nothing to receive now\0",
        3 => "full: no room now\0",
        4 => "disconnected: the pipe's other end has gone\0",
        5 => "the bus was closed: shmbusd stopped or restarted\0",
        6 => "too large for this pipe or queue\0",
        7 => "task_done called more times than items were put\0",
        8 => "corrupt channel\0",
        10 => "bad bus or channel name\0",
        11 => "no shmbusd serves this bus\0",
        12 => "permission denied opening the segment\0",
        13 => "not a shmbus segment\0",
        14 => "segment file truncated\0",
        15 => "segment size disagrees with its header\0",
        16 => "shmbus ABI version mismatch\0",
        17 => "shmbusd is still setting up the bus\0",
        18 => "corrupt segment header\0",
        19 => "segment owned by another user\0",
        20 => "segment has unsafe permission bits\0",
        21 => "shmbusd refused this client\0",
        30 => "no such channel\0",
        31 => "channel exists with another kind\0",
        32 => "channel exists with other parameters\0",
        33 => "bad channel parameters\0",
        34 => "no room in the bus for the channel\0",
        35 => "element type or length mismatch\0",
        36 => "array length mismatch\0",
        37 => "the bus's directory is full\0",
        38 => "not allowed to open the channel\0",
        39 => "pipe end already held\0",
        40 => "unexpected answer from shmbusd\0",
        41 => "I/O error\0",
        50 => "NULL pointer argument\0",
        51 => "misaligned pointer argument\0",
        52 => "invalid argument\0",
        53 => "buffer too small: the needed size is in *len\0",
        54 => "call does not fit the handle's state\0",
        55 => "internal panic caught (a bug in libshmbus)\0",
        56 => "error unknown to this build of libshmbus\0",
        60 => "lagged: messages were overwritten before this subscriber read them\0",
        61 => "the topic has its largest number of subscribers\0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_every_code_once() {
        let mut codes: Vec<i32> = ALL.iter().map(|&s| s as i32).collect();
        for &c in &codes {
            assert!(describe(c).is_some(), "code {c} has no description");
        }
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code appears twice in ALL");
        let described = (-1000..1000).filter(|&c| describe(c).is_some()).count();
        assert_eq!(described, n, "a described code is missing from ALL");
    }

    /// Every kind of client error but `Interrupted` has a code of its own.
    #[test]
    fn every_error_kind_has_its_own_code() {
        let mut codes: Vec<i32> = ErrorKind::ALL
            .iter()
            .filter(|&&k| k != ErrorKind::Interrupted)
            .map(|&k| {
                let c = of_kind(k);
                assert_ne!(c, S::SHMBUS_UNKNOWN, "{k:?} has no code");
                c as i32
            })
            .collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "two kinds share a code");
        assert_eq!(of_kind(ErrorKind::Interrupted), S::SHMBUS_UNKNOWN);
    }
}
