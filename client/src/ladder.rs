//! What the rungs of every blocking family share: [`Until`], the one
//! argument of each family's `_until` implementation, and [`copy_into`], the
//! closure of the `_into` forms.
//!
//! Each blocking call comes in a plain, a `_timeout` and a `_deadline` form
//! (see the crate docs' "Blocking calls"). All three are one-line wrappers of
//! one private `_until(…, Until)` per family, so that the forms cannot drift
//! apart. A timeout is turned into a deadline only once the call has to wait:
//! a call that finds room or a frame at once reads no clock.
//!
//! # Cost
//! Each `_until` is `#[inline(always)]` and sends its waiting half to an
//! `#[inline(never)]` slow path, so that a plain or timed call that need not
//! wait costs what the `try_` call costs. Left to the compiler (`#[inline]`),
//! `send_until` and `put_until` stayed out of line, which added about 30
//! instructions to every `send` and `put` (callgrind, 64-byte frames).

use std::time::{Duration, Instant};

/// How long a blocking call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    /// No limit: the plain form.
    Forever,
    /// At most this long from when the call starts to wait: `_timeout`.
    Timeout(Duration),
    /// Until this instant: `_deadline`.
    Deadline(Instant),
}

impl Until {
    /// The deadline to wait until, `None` for no limit (also for a timeout
    /// too long for `Instant` to represent). Reads the clock for a timeout.
    #[inline]
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Self::Forever => None,
            Self::Timeout(t) => Instant::now().checked_add(t),
            Self::Deadline(d) => Some(d),
        }
    }
}

/// The closure of the `_into` forms (`recv_into`, `get_into` and their
/// rungs): replaces `buf`'s contents with the frame, reusing its allocation,
/// and returns the frame's length.
#[inline]
pub(crate) fn copy_into(buf: &mut Vec<u8>) -> impl FnOnce(&[u8]) -> usize + '_ {
    move |b| {
        buf.clear();
        buf.extend_from_slice(b);
        b.len()
    }
}
