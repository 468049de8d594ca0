//! [`ErrorKind`]: which [`Error`] variant an error is, without its fields.
//!
//! The one classification of the client's errors that the bindings map from
//! (the C library's status codes, the Python exception classes), so that a
//! new variant is one new kind here and each binding's `match` on kinds is
//! where it must be given its code or class.

use super::Error;

/// The variant of an [`Error`], without its fields: what [`Error::kind`]
/// returns. One kind per variant, named as the variant. Stable: a kind is
/// never renamed or removed, new ones may be added (so a `match` on kinds
/// needs a `_` arm outside this crate).
///
/// # Examples
/// ```
/// use shmbus_client::{Error, ErrorKind};
///
/// assert_eq!(Error::Timeout.kind(), ErrorKind::Timeout);
/// assert_eq!(ErrorKind::Timeout.name(), "Timeout");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`Error::BadName`].
    BadName,
    /// [`Error::DaemonNotRunning`].
    DaemonNotRunning,
    /// [`Error::PermissionDenied`].
    PermissionDenied,
    /// [`Error::NotShmbus`].
    NotShmbus,
    /// [`Error::Truncated`].
    Truncated,
    /// [`Error::SizeMismatch`].
    SizeMismatch,
    /// [`Error::AbiMismatch`].
    AbiMismatch,
    /// [`Error::NotReady`].
    NotReady,
    /// [`Error::CorruptSegment`].
    CorruptSegment,
    /// [`Error::WrongOwner`].
    WrongOwner,
    /// [`Error::UnsafeMode`].
    UnsafeMode,
    /// [`Error::Refused`].
    Refused,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::KindMismatch`].
    KindMismatch,
    /// [`Error::ParamMismatch`].
    ParamMismatch,
    /// [`Error::BadParams`].
    BadParams,
    /// [`Error::NoSpace`].
    NoSpace,
    /// [`Error::TypeMismatch`].
    TypeMismatch,
    /// [`Error::LengthMismatch`].
    LengthMismatch,
    /// [`Error::DirectoryFull`].
    DirectoryFull,
    /// [`Error::Denied`].
    Denied,
    /// [`Error::Busy`].
    Busy,
    /// [`Error::Full`].
    Full,
    /// [`Error::Empty`].
    Empty,
    /// [`Error::Disconnected`].
    Disconnected,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::TaskDone`].
    TaskDone,
    /// [`Error::Lagged`].
    Lagged,
    /// [`Error::TooManySubscribers`].
    TooManySubscribers,
    /// [`Error::BusClosed`].
    BusClosed,
    /// [`Error::Interrupted`].
    Interrupted,
    /// [`Error::Corrupt`].
    Corrupt,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Io`].
    Io,
}

impl ErrorKind {
    /// Every kind, in the order of [`Error`]'s variants: for bindings to
    /// check that each has a code or class of its own.
    pub const ALL: &'static [Self] = &[
        Self::BadName,
        Self::DaemonNotRunning,
        Self::PermissionDenied,
        Self::NotShmbus,
        Self::Truncated,
        Self::SizeMismatch,
        Self::AbiMismatch,
        Self::NotReady,
        Self::CorruptSegment,
        Self::WrongOwner,
        Self::UnsafeMode,
        Self::Refused,
        Self::NotFound,
        Self::KindMismatch,
        Self::ParamMismatch,
        Self::BadParams,
        Self::NoSpace,
        Self::TypeMismatch,
        Self::LengthMismatch,
        Self::DirectoryFull,
        Self::Denied,
        Self::Busy,
        Self::Full,
        Self::Empty,
        Self::Disconnected,
        Self::TooLarge,
        Self::Timeout,
        Self::TaskDone,
        Self::Lagged,
        Self::TooManySubscribers,
        Self::BusClosed,
        Self::Interrupted,
        Self::Corrupt,
        Self::Protocol,
        Self::Io,
    ];

    /// The variant's name, as `Debug` of an [`Error`] prints it after the
    /// message (`"Timeout"`, `"BusClosed"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::BadName => "BadName",
            Self::DaemonNotRunning => "DaemonNotRunning",
            Self::PermissionDenied => "PermissionDenied",
            Self::NotShmbus => "NotShmbus",
            Self::Truncated => "Truncated",
            Self::SizeMismatch => "SizeMismatch",
            Self::AbiMismatch => "AbiMismatch",
            Self::NotReady => "NotReady",
            Self::CorruptSegment => "CorruptSegment",
            Self::WrongOwner => "WrongOwner",
            Self::UnsafeMode => "UnsafeMode",
            Self::Refused => "Refused",
            Self::NotFound => "NotFound",
            Self::KindMismatch => "KindMismatch",
            Self::ParamMismatch => "ParamMismatch",
            Self::BadParams => "BadParams",
            Self::NoSpace => "NoSpace",
            Self::TypeMismatch => "TypeMismatch",
            Self::LengthMismatch => "LengthMismatch",
            Self::DirectoryFull => "DirectoryFull",
            Self::Denied => "Denied",
            Self::Busy => "Busy",
            Self::Full => "Full",
            Self::Empty => "Empty",
            Self::Disconnected => "Disconnected",
            Self::TooLarge => "TooLarge",
            Self::Timeout => "Timeout",
            Self::TaskDone => "TaskDone",
            Self::Lagged => "Lagged",
            Self::TooManySubscribers => "TooManySubscribers",
            Self::BusClosed => "BusClosed",
            Self::Interrupted => "Interrupted",
            Self::Corrupt => "Corrupt",
            Self::Protocol => "Protocol",
            Self::Io => "Io",
        }
    }
}

impl Error {
    /// Which variant this is, without its fields: what the C and Python
    /// bindings map to their status codes and exception classes.
    ///
    /// # Examples
    /// ```
    /// use shmbus_client::{Error, ErrorKind};
    ///
    /// let e = Error::NotFound { channel: "jobs".into() };
    /// assert_eq!(e.kind(), ErrorKind::NotFound);
    /// ```
    #[inline]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadName { .. } => ErrorKind::BadName,
            Self::DaemonNotRunning { .. } => ErrorKind::DaemonNotRunning,
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Self::NotShmbus { .. } => ErrorKind::NotShmbus,
            Self::Truncated { .. } => ErrorKind::Truncated,
            Self::SizeMismatch { .. } => ErrorKind::SizeMismatch,
            Self::AbiMismatch { .. } => ErrorKind::AbiMismatch,
            Self::NotReady { .. } => ErrorKind::NotReady,
            Self::CorruptSegment { .. } => ErrorKind::CorruptSegment,
            Self::WrongOwner { .. } => ErrorKind::WrongOwner,
            Self::UnsafeMode { .. } => ErrorKind::UnsafeMode,
            Self::Refused { .. } => ErrorKind::Refused,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::KindMismatch { .. } => ErrorKind::KindMismatch,
            Self::ParamMismatch { .. } => ErrorKind::ParamMismatch,
            Self::BadParams { .. } => ErrorKind::BadParams,
            Self::NoSpace { .. } => ErrorKind::NoSpace,
            Self::TypeMismatch { .. } => ErrorKind::TypeMismatch,
            Self::LengthMismatch { .. } => ErrorKind::LengthMismatch,
            Self::DirectoryFull { .. } => ErrorKind::DirectoryFull,
            Self::Denied { .. } => ErrorKind::Denied,
            Self::Busy { .. } => ErrorKind::Busy,
            Self::Full => ErrorKind::Full,
            Self::Empty => ErrorKind::Empty,
            Self::Disconnected => ErrorKind::Disconnected,
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::Timeout => ErrorKind::Timeout,
            Self::TaskDone => ErrorKind::TaskDone,
            Self::Lagged(_) => ErrorKind::Lagged,
            Self::TooManySubscribers { .. } => ErrorKind::TooManySubscribers,
            Self::BusClosed => ErrorKind::BusClosed,
            Self::Interrupted => ErrorKind::Interrupted,
            Self::Corrupt(_) => ErrorKind::Corrupt,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::Io { .. } => ErrorKind::Io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_with_its_own_name() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            n,
            "a kind appears twice in ALL, or two share a name"
        );
        // `name` is the variant's name as `Debug` of the kind prints it.
        for k in ErrorKind::ALL {
            assert_eq!(k.name(), format!("{k:?}"));
        }
    }
}
