//! Waiting on several channels at once: [`Select`] and the events it waits
//! for ([`Ready`]).
//!
//! Each channel kind adds readiness by implementing one small crate-private
//! trait, [`Source`] (a readiness check that makes no system call, the
//! doorbell that readiness is rung on, and the bus), in its own module, and a
//! method of its handle that returns a [`Ready`] (`PipeReceiver::readable`,
//! `PipeSender::writable`, `Queue::readable` / `writable`,
//! `Table::changed_since` and the typed forms).
//!
//! The sleep is [`shmbus::futex::wait_any`]: announce on every doorbell,
//! re-check every channel, one `futex_waitv` on all of them (its protocol,
//! loom model and fallback beyond 128 channels or before Linux 5.16 are
//! documented there). The bus's death, shutdown or restart ends the wait
//! with [`Error::BusClosed`] as it ends a single-channel call: the sleep is
//! recorded in the peer slot, so the liveness watcher rings it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::futex::{wait_any, Doorbell, WaitError, WaitRecords, Waiter, INTERRUPT_SLICE};

use crate::bus::Inner;
use crate::error::{Error, Result};
use crate::ladder::Until;
use crate::wait::Connection;

#[cfg(feature = "tokio")]
pub(crate) mod aio;
pub(crate) mod fd;

/// What a [`Select`] needs of one event of one channel: implemented once per
/// kind (and direction) beside the handle.
pub(crate) trait Source {
    /// True when the operation the event stands for would not have to wait
    /// (it would succeed, or fail at once: end of file, a corrupt channel).
    /// Must make no system call.
    fn is_ready(&self) -> bool;
    /// The doorbell the channel rings when the event may have become ready.
    fn doorbell(&self) -> &Doorbell;
    /// The bus the channel belongs to.
    fn bus(&self) -> &Arc<Inner>;
}

/// One event a [`Select`] can wait for, borrowed from a channel handle:
/// [`PipeReceiver::readable`](crate::PipeReceiver::readable),
/// [`PipeSender::writable`](crate::PipeSender::writable),
/// [`Queue::readable`](crate::Queue::readable),
/// [`Queue::writable`](crate::Queue::writable),
/// [`Value::changed_since`](crate::Value::changed_since) (also on
/// [`Array`](crate::Array) and [`Table`](crate::Table)),
/// [`Subscriber::readable`](crate::Subscriber::readable).
pub struct Ready<'a>(pub(crate) Box<dyn Source + 'a>);

impl Ready<'_> {
    /// True when the event's operation would not wait right now; no system
    /// call.
    pub fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

impl fmt::Debug for Ready<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready").finish_non_exhaustive()
    }
}

/// Waits until any of several channel events is ready: a frame in one of
/// several pipes, room in a queue, a change of a value, in any mix.
///
/// Readiness is checked without a system call; only when nothing is ready
/// does the select sleep, in one `futex_waitv` on every channel's doorbell.
/// A ready event is a hint, as `poll(2)`'s: another holder (a queue's other
/// consumers) may take the item first, so use the `try_` forms and select
/// again on `Empty` / `Full`.
///
/// A `Select` borrows the handles it watches; build it anew for each wait
/// (it is cheap) so the handles are free in between.
///
/// # Examples
/// ```no_run
/// use shmbus_client::{Bus, Select};
///
/// let bus = Bus::connect()?;
/// let mut commands = bus.pipe("commands")?.receiver()?;
/// let jobs = bus.queue("jobs")?;
/// loop {
///     let ready = Select::new()
///         .with(commands.readable())
///         .with(jobs.readable())
///         .wait()?;
///     if ready.contains(&0) {
///         println!("command: {:?}", commands.try_recv()?);
///     }
///     if ready.contains(&1) {
///         if let Ok(job) = jobs.try_get() {
///             println!("job: {job:?}");
///         }
///     }
/// }
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Select<'a> {
    events: Vec<Ready<'a>>,
}

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event and returns its index (0 for the first).
    pub fn add(&mut self, event: Ready<'a>) -> usize {
        self.events.push(event);
        self.events.len() - 1
    }

    /// [`add`](Self::add), by value, for chaining.
    #[must_use]
    pub fn with(mut self, event: Ready<'a>) -> Self {
        self.add(event);
        self
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if no event was added.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The indices of the events ready now, in order; never blocks, makes no
    /// system call.
    pub fn ready(&self) -> Vec<usize> {
        (0..self.events.len())
            .filter(|&i| self.events[i].is_ready())
            .collect()
    }

    /// Waits until at least one event is ready and returns the indices of
    /// those ready (ascending, never empty).
    ///
    /// # Errors
    /// [`Error::BusClosed`] if a channel's daemon stops, restarts or dies;
    /// [`Error::BadParams`] if the select has no events (it would wait
    /// forever).
    pub fn wait(&self) -> Result<Vec<usize>> {
        self.wait_until(Until::Forever)
    }

    /// As [`wait`](Self::wait), at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing became ready; otherwise as
    /// [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Vec<usize>> {
        self.wait_until(Until::Timeout(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing became ready by `deadline`; otherwise as
    /// [`wait`](Self::wait).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<Vec<usize>> {
        self.wait_until(Until::Deadline(deadline))
    }

    fn wait_until(&self, until: Until) -> Result<Vec<usize>> {
        let Some(first) = self.events.first() else {
            return Err(Error::BadParams {
                channel: String::new(),
                message: "a select with no events would wait forever".into(),
            });
        };
        let mut buses: Vec<&Inner> = vec![first.0.bus()];
        for e in &self.events[1..] {
            let b = &**e.0.bus();
            if !buses.iter().any(|x| std::ptr::eq(*x, b)) {
                buses.push(b);
            }
        }
        for b in &buses {
            b.check_open()?;
        }
        let now = self.ready();
        if !now.is_empty() {
            // `check_open` above: no daemon death explains these.
            return Ok(now);
        }
        let bells: Vec<&Doorbell> = self.events.iter().map(|e| e.0.doorbell()).collect();
        let waiter = SelectWaiter { buses: &buses };
        let r = wait_any(&bells, until.deadline(), Some(&waiter), &mut || {
            let r = self.ready();
            (!r.is_empty()).then_some(r)
        });
        match r {
            // As a single-channel call: the daemon's death is `BusClosed`,
            // though it also makes every event "ready" (its call would fail
            // at once).
            Ok(_) if buses.iter().any(|b| b.daemon_gone()) => Err(Error::BusClosed),
            Ok(r) => Ok(r),
            Err(WaitError::Timeout) => Err(Error::Timeout),
            Err(WaitError::Interrupted) => Err(Error::BusClosed),
        }
    }
}

/// The [`Waiter`] of a select: stops when any of its buses closes; its
/// sleep is recorded in the first bus's peer slot. With channels of one bus
/// (the usual case) it sleeps with no time limit, as a single-channel call;
/// with several buses it looks every [`INTERRUPT_SLICE`], since only the
/// first bus's watcher can find its record.
struct SelectWaiter<'a> {
    buses: &'a [&'a Inner],
}

impl Waiter for SelectWaiter<'_> {
    fn interrupted(&self) -> bool {
        self.buses.iter().any(|b| b.is_closed())
    }

    fn slice(&self) -> Option<Duration> {
        match self.buses {
            [b] if b.watching() => None,
            _ => Some(INTERRUPT_SLICE),
        }
    }

    fn records(&self) -> Option<WaitRecords<'_>> {
        self.buses.first().and_then(|b| b.wait_records())
    }
}
