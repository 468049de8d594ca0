//! Typed values and arrays shared between processes: Python's
//! `multiprocessing.Value('d', 0.0)` and `Array('i', 10)`, without the lock on
//! the read side and without torn reads.
//!
//! [`Value<T>`] holds one element, [`Array<T>`] a fixed number; `T` is one of
//! `i8 u8 i16 u16 i32 u32 i64 u64 f32 f64` ([`Element`]). [`Table`] is the
//! untyped form, for tools that learn the type from the bus (the `shmbus`
//! command). The algorithm is the core's [`shmbus::seqlock`], a seqlock over
//! 2 to 8 copies of the data ([`shmbus::seqlock::copies`]: as many as fit in
//! 4 KiB): a read copies the last published copy with atomic loads and
//! retries only if a writer started on that same copy meanwhile (with `N`
//! copies, after `N - 2` publishes); it never waits for a writer. Writers serialize on a lock word in
//! the segment that records the owner, so the daemon clears it if the holder
//! dies (the half-written copy is never published).
//!
//! # Cost
//! A read is one Acquire load, the copy's loads, a fence and one more load: no
//! system call, no store. A write takes the writer lock (one CAS), stores the
//! copy and publishes with one store; it makes a system call only if another
//! writer holds the lock for long or someone sleeps in `wait_changed`.
//!
//! | Python | shmbus |
//! |---|---|
//! | `v = Value('d', 0.0)` | `let v = bus.value::<f64>("v")?;` |
//! | `v.value` | `v.load()` |
//! | `v.value = 1.5` | `v.store(1.5)?` |
//! | `with v.get_lock(): v.value += 1` | `v.update(\|x\| x + 1.0)?` or, for integers, `v.fetch_add(1)?` |
//! | `a = Array('i', 10)` | `let a = bus.array::<i32>("a", 10)?;` |
//! | `a[i]`, `a[i] = v` | `a.get(i)`, `a.set(i, v)?` |
//! | `a[:]` | `a.read()` / `a.read_into(&mut buf)?` |
//! | `a[:] = xs` | `a.write(&xs)?` |

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::futex::WaitError;
use shmbus::layout::Kind;
use shmbus::name::validate_channel;
use shmbus::params::{ChannelParams, OpenParams};
use shmbus::seqlock::{self, ElemType, Seqlock, WriteGuard};
use shmbus::sync::{AtomicU32, Ordering};

use crate::bus::removal::Hold;
use crate::bus::{Bus, Inner};
use crate::channels::{ChannelDetails, ChannelInfo};
use crate::error::{Error, Result};
use crate::ladder::Until;
use crate::select::{Ready, Source};
use crate::wait::PhantomWatch;

pub(crate) mod typed;

/// An opened value or array of any element type: what the `shmbus` command
/// uses, since it learns the type from the bus. Programs use
/// [`Value`](crate::Value) and [`Array`](crate::Array).
///
/// Cheap to clone; `Send + Sync`; keeps the bus connection alive.
///
/// # Examples
/// ```no_run
/// let t = shmbus_client::Bus::connect()?.table("prices")?;
/// println!("{} {}[{}] = {:?}", t.name(), t.elem(), t.len(), t.read_strings());
/// # Ok::<(), shmbus_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Table {
    lock: Seqlock,
    kind: Kind,
    name: Arc<str>,
    /// 1 while a caller's `update` closure runs under this channel's writer
    /// lock in this process (see [`phantom_lock`]); written only by the lock
    /// holder.
    user_code: Arc<AtomicU32>,
    // Owns the mapping that `lock` points into.
    bus: Arc<Inner>,
    // Last: its drop tells the daemon we are done with the channel.
    _hold: Arc<Hold>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("elem", &self.lock.elem())
            .field("len", &self.lock.len())
            .finish_non_exhaustive()
    }
}

fn wait_error(e: WaitError) -> Error {
    match e {
        WaitError::Timeout => Error::Timeout,
        WaitError::Interrupted => Error::closed_or_interrupted(),
    }
}

impl Table {
    /// A table over `lock`, a checked body inside `bus`'s mapping.
    pub(crate) fn new(
        bus: Arc<Inner>,
        name: Arc<str>,
        kind: Kind,
        lock: Seqlock,
        hold: Arc<Hold>,
    ) -> Self {
        let user_code = bus.user_code_flag(std::ptr::from_ref(lock.ctl()) as usize);
        Self {
            lock,
            kind,
            name,
            user_code,
            bus,
            _hold: hold,
        }
    }

    /// Runs a caller's `update` closure while this process holds the writer
    /// lock, with [`Table::user_code`] set (cleared again if it panics).
    /// Plain stores: only the lock holder writes the flag, and the lock
    /// orders one holder after the other.
    fn run_user_code<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Clear<'a>(&'a AtomicU32);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                // Relaxed: read by `phantom_lock` over seconds, not to order
                // data.
                self.0.store(0, Ordering::Relaxed);
            }
        }
        // Relaxed: as above.
        self.user_code.store(1, Ordering::Relaxed);
        let _clear = Clear(&self.user_code);
        f()
    }

    /// The channel's name.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// assert_eq!(t.name(), "x");
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`Kind::Value`] or [`Kind::Array`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::Kind;
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// assert!(matches!(t.kind(), Kind::Value | Kind::Array));
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The element type.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// println!("{}", t.elem());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn elem(&self) -> ElemType {
        self.lock.elem()
    }

    /// Number of elements (1 for a value).
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// assert!(t.len() >= 1);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock.len()
    }

    /// The version: bumped by every write (0 = never written).
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// println!("written {} times", t.version());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    #[inline]
    pub fn version(&self) -> u64 {
        self.lock.version()
    }

    /// Reads every element's bits (zero-extended), never torn. Returns them
    /// and the version read.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// let (bits, version) = t.read_bits();
    /// assert_eq!(bits.len(), t.len());
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn read_bits(&self) -> (Vec<u64>, u64) {
        let mut words = vec![0; self.lock.words()];
        let g = self.lock.read_words(&mut words);
        (unpack_bits(self.elem(), &words, self.len()), g)
    }

    /// Reads every element formatted in decimal, never torn.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// println!("{}", t.read_strings().join(" "));
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn read_strings(&self) -> Vec<String> {
        let t = self.elem();
        self.read_bits()
            .0
            .into_iter()
            .map(|b| t.format_bits(b))
            .collect()
    }

    /// Parses `values` as this table's element type and stores them all,
    /// atomically for readers. Returns the new version.
    ///
    /// # Errors
    /// [`Error::BadParams`] naming the first value that does not parse;
    /// `LengthMismatch` unless there is one value per element; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// t.write_strings(&["1.5"])?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn write_strings<S: AsRef<str>>(&self, values: &[S]) -> Result<u64> {
        let bits = self.parse(values)?;
        if bits.len() != self.len() {
            return Err(Error::LengthMismatch {
                channel: self.name.to_string(),
                expected: self.len(),
                found: bits.len(),
            });
        }
        let mut g = self.lock_write(None)?;
        g.write_words(&pack_bits(self.elem(), &bits, self.lock.words()));
        Ok(g.publish())
    }

    /// Adds `delta` (parsed as the element type) to every element, under
    /// the writer lock (wrapping for integers). Returns the new elements,
    /// formatted, and the new version.
    ///
    /// # Errors
    /// [`Error::BadParams`] if `delta` does not parse; `BusClosed`.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("counter")?;
    /// let (now, _) = t.add_string("1")?;
    /// println!("{}", now[0]);
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn add_string(&self, delta: &str) -> Result<(Vec<String>, u64)> {
        let t = self.elem();
        let d = self.parse(&[delta])?[0];
        let mut g = self.lock_write(None)?;
        let mut words = vec![0; self.lock.words()];
        g.read_words(&mut words);
        let bits: Vec<u64> = unpack_bits(t, &words, self.len())
            .into_iter()
            .map(|b| t.add_bits(b, d))
            .collect();
        g.write_words(&pack_bits(t, &bits, self.lock.words()));
        let v = g.publish();
        Ok((bits.into_iter().map(|b| t.format_bits(b)).collect(), v))
    }

    fn parse<S: AsRef<str>>(&self, values: &[S]) -> Result<Vec<u64>> {
        let t = self.elem();
        let bits = values
            .iter()
            .map(|v| t.parse_value(v.as_ref()))
            .collect::<Result<Vec<u64>, String>>()
            .map_err(|message| Error::BadParams {
                channel: self.name.to_string(),
                message,
            })?;
        Ok(bits)
    }

    /// Blocks until the version differs from `since` (sleeping on a futex),
    /// and returns the new version: at once if it differs already. Its
    /// non-blocking form is the question `version() != since`.
    ///
    /// # Errors
    /// `BusClosed` if the daemon goes away meanwhile.
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// let mut seen = t.version();
    /// loop {
    ///     seen = t.wait_changed(seen)?;
    ///     println!("{:?}", t.read_strings());
    /// }
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed(&self, since: u64) -> Result<u64> {
        self.wait_changed_until(since, Until::Forever)
    }

    /// As [`Table::wait_changed`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`]; `BusClosed` if the daemon goes away meanwhile.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// let v = t.wait_changed_timeout(t.version(), Duration::from_secs(1))?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_timeout(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.wait_changed_until(since, Until::Timeout(timeout))
    }

    /// As [`Table::wait_changed`], waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Table::wait_changed_timeout`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// let d = Instant::now() + Duration::from_secs(1);
    /// let v = t.wait_changed_deadline(t.version(), d)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn wait_changed_deadline(&self, since: u64, deadline: Instant) -> Result<u64> {
        self.wait_changed_until(since, Until::Deadline(deadline))
    }

    /// One implementation for the waits: no clock and no system call if the
    /// version differs already.
    fn wait_changed_until(&self, since: u64, until: Until) -> Result<u64> {
        let bus = &*self.bus;
        bus.check_open()?;
        let now = self.version();
        if now != since {
            return Ok(now);
        }
        let interrupt = bus.waiter();
        self.lock
            .wait_changed(since, until.deadline(), Some(&interrupt))
            .map_err(wait_error)
    }

    /// Takes the writer lock (spin, then sleep), stopping if the bus closes
    /// or the lock turns out to be held by nobody (see [`phantom_lock`]).
    #[inline]
    fn lock_write(&self, deadline: Option<Instant>) -> Result<WriteGuard<'_>> {
        // Every write goes through here: a writer at full speed learns of
        // the daemon's death without a system call (see `Inner::check_open`).
        self.bus.check_open()?;
        let me = self.bus.owner();
        if let Some(g) = self.lock.try_lock(me) {
            return Ok(g);
        }
        self.lock_write_slow(me, deadline)
    }

    #[cold]
    #[inline(never)]
    fn lock_write_slow(&self, me: u16, deadline: Option<Instant>) -> Result<WriteGuard<'_>> {
        let bus = &*self.bus;
        let watch = PhantomWatch::default();
        let check = || {
            let (phantom, patience) = phantom_lock(bus, &self.lock, &self.user_code, me);
            watch.check_for(phantom, patience)
        };
        let interrupt = bus.waiter_with(&check, &watch);
        let r = self.lock.lock(me, deadline, Some(&interrupt));
        watch.result(
            r.map_err(wait_error),
            "the value's writer lock is held by no connected process (its state word was overwritten)",
        )
    }
}

/// How long a writer lock held under our own owner tag, with the same state
/// word and no `update` closure of this process running, is waited for
/// before it is reported as phantom (see [`phantom_lock`]).
const OWN_TAG_PATIENCE: Duration = Duration::from_secs(2);

/// The lock's state word if it is *phantom* (see [`PhantomWatch`]), and how
/// long it must stay so before a waiter gives up on it.
///
/// - Busy under an owner tag that no live writer can have (0, a tag past the
///   peer table, the tag of a FREE peer slot): only a scribbled state word
///   does that. A writer sets busy with its own tag, and the daemon clears a
///   dead peer's lock before it frees the slot, so a real holder's slot is
///   LIVE or RECOVERING while it holds. Reported on the second look.
/// - Busy under our own tag: another of our threads may hold it. Its holds
///   are bounded copies, except the closure of an `update`, which is
///   counted; so with no closure running, the same word for
///   [`OWN_TAG_PATIENCE`] means a scribble. (A thread of ours descheduled
///   for that long inside a copy would be taken for one.) Counting every
///   hold in a thread-local instead cost a quarter to a half of uncontended
///   write throughput, and a process-wide atomic counter around `update`
///   closures a quarter of `update` throughput; the flag's two plain stores
///   cost `update` about 5 % (all measured with the former
///   `cargo bench --bench table`, now `shmbus-bench --preset table`).
fn phantom_lock(
    bus: &Inner,
    lock: &Seqlock,
    user_code: &AtomicU32,
    me: u16,
) -> (Option<u64>, Duration) {
    // Relaxed: `PhantomWatch` looks twice.
    let s = lock.ctl().state.load(Ordering::Relaxed);
    let tag = seqlock::state::owner(s);
    if !seqlock::state::busy(s) {
        return (None, Duration::ZERO);
    }
    if tag != me {
        return ((!bus.peer_connected(tag)).then_some(s), Duration::ZERO);
    }
    // Relaxed: a closure that started since the first look holds a word
    // that changed since (a new generation), so the streak restarts anyway.
    let closure = user_code.load(Ordering::Relaxed) != 0;
    ((!closure).then_some(s), OWN_TAG_PATIENCE)
}

/// Element bits from packed words.
fn unpack_bits(t: ElemType, words: &[u64], len: usize) -> Vec<u64> {
    let per = t.per_word() as usize;
    let bits = 64 / per;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    (0..len)
        .map(|i| (words[i / per] >> ((i % per) * bits)) & mask)
        .collect()
}

/// Packed words from element bits.
fn pack_bits(t: ElemType, elems: &[u64], words: usize) -> Vec<u64> {
    let per = t.per_word() as usize;
    let bits = 64 / per;
    let mut out = vec![0u64; words];
    for (i, b) in elems.iter().enumerate() {
        let b = if bits == 64 {
            *b
        } else {
            b & ((1u64 << bits) - 1)
        };
        out[i / per] |= b << ((i % per) * bits);
    }
    out
}

impl Bus {
    /// Creates (or opens, if it exists with the same type) a value of element
    /// type `elem`, untyped: for tools such as the `shmbus` command.
    ///
    /// # Errors
    /// As [`Bus::value`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::ElemType;
    /// let t = shmbus_client::Bus::connect()?.create_value("x", ElemType::F64)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn create_value(&self, name: &str, elem: ElemType) -> Result<Table> {
        self.table_impl(Kind::Value, name, true, Some(elem), Some(1))
    }

    /// Creates (or opens, if it exists with the same type and length) an
    /// array, untyped.
    ///
    /// # Errors
    /// As [`Bus::array`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmbus_client::ElemType;
    /// let t = shmbus_client::Bus::connect()?.create_array("a", ElemType::I32, 10)?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn create_array(&self, name: &str, elem: ElemType, len: usize) -> Result<Table> {
        self.table_impl(Kind::Array, name, true, Some(elem), Some(len as u64))
    }

    /// Opens the existing value or array `name`, whatever its element type and
    /// length; never creates.
    ///
    /// # Errors
    /// [`Error::NotFound`]; `KindMismatch` if `name` is a pipe or a queue;
    /// otherwise as [`Bus::pipe`].
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("x")?;
    /// println!("{}", t.read_strings().join(" "));
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn table(&self, name: &str) -> Result<Table> {
        validate_channel(name).map_err(|error| Error::BadName {
            what: "channel",
            name: name.to_owned(),
            error,
        })?;
        match self.kind_of(name) {
            None => Err(Error::NotFound {
                channel: name.to_owned(),
            }),
            Some(kind @ (Kind::Value | Kind::Array)) => {
                self.table_impl(kind, name, false, None, None)
            }
            Some(found) => Err(Error::KindMismatch {
                channel: name.to_owned(),
                expected: Kind::Value,
                found: Some(found),
            }),
        }
    }

    fn table_impl(
        &self,
        kind: Kind,
        name: &str,
        create: bool,
        elem: Option<ElemType>,
        len: Option<u64>,
    ) -> Result<Table> {
        if let (Some(t), Some(n)) = (elem, len) {
            if let Err(message) = shmbus::seqlock::check_params(u64::from(t.code()), n) {
                return Err(Error::BadParams {
                    channel: name.to_owned(),
                    message,
                });
            }
        }
        let params = match kind {
            Kind::Value => OpenParams::Value { elem },
            _ => OpenParams::Array { elem, len },
        };
        let g = match self.open(name, create, params) {
            Err(Error::ParamMismatch { .. }) => {
                return Err(Error::TypeMismatch {
                    channel: name.to_owned(),
                    expected: describe_table(kind, elem, len),
                    found: self.describe_entry(name),
                })
            }
            r => r?,
        };
        let hold = Hold::new(Arc::clone(&self.inner), g.index, g.generation);
        let (granted, n) = match g.params {
            ChannelParams::Value { elem } => (elem, 1),
            ChannelParams::Array { elem, len } => (elem, len),
            _ => unreachable!("`open` checked the kind"),
        };
        let body = self
            .inner
            .map()
            .seqlock(g.offset, g.length, u64::from(granted.code()), n)
            .map_err(Error::Corrupt)?;
        if elem.is_some_and(|t| t != body.elem) || len.is_some_and(|want| want != n) {
            return Err(Error::Protocol(format!(
                "asked for {}, the daemon granted {}",
                describe_table(kind, elem, len),
                describe_table(kind, Some(body.elem), Some(n))
            )));
        }
        // SAFETY:
        // - `body.ctl` passed `SeqlockCtl::check` for this type and length, and
        //   `body.first` starts its `body.copies` copies (the number the
        //   control block holds, checked by `check`), `body.stride` words
        //   apart, each `words(len)` atomic words, 8-aligned, inside the arena
        //   (`Mapping::seqlock` checked all this);
        // - the mapping stays alive as long as the handle: it is stored in a
        //   `Table` together with the `Arc<Inner>` that owns the mapping.
        let lock = unsafe {
            Seqlock::new(
                std::ptr::NonNull::from(body.ctl),
                body.first,
                body.stride,
                body.copies,
                body.elem,
                n,
            )
        };
        Ok(Table::new(
            Arc::clone(&self.inner),
            name.into(),
            kind,
            lock,
            hold,
        ))
    }

    /// What the directory says channel `name` holds, for `TypeMismatch`.
    fn describe_entry(&self, name: &str) -> String {
        match self
            .channels()
            .into_iter()
            .find(|c| c.name == name && !c.removed)
        {
            Some(ChannelInfo {
                kind,
                details: ChannelDetails::Table(t),
                ..
            }) => describe_table(kind, Some(t.elem), Some(t.len)),
            Some(c) => c.kind.with_article().to_owned(),
            None => "something else".to_owned(),
        }
    }
}

/// `f64 value`, `i32[10]`, `i32 array`.
fn describe_table(kind: Kind, elem: Option<ElemType>, len: Option<u64>) -> String {
    let t = elem.map_or("any", ElemType::name);
    match (kind, len) {
        (Kind::Value, _) => format!("{t} value"),
        (_, Some(n)) => format!("{t}[{n}]"),
        (_, None) => format!("{t} array"),
    }
}

/// [`Table::changed_since`]'s event.
struct Changed<'a> {
    t: &'a Table,
    since: u64,
}

impl Source for Changed<'_> {
    fn is_ready(&self) -> bool {
        self.t.version() != self.since || self.t.bus.daemon_gone()
    }

    fn doorbell(&self) -> &shmbus::futex::Doorbell {
        &self.t.lock.ctl().changed
    }

    fn bus(&self) -> &Arc<Inner> {
        &self.t.bus
    }
}

impl Table {
    /// The event "the version is no longer `since`" (what
    /// [`wait_changed`](Self::wait_changed) waits for), for a
    /// [`Select`](crate::Select).
    ///
    /// # Examples
    /// ```no_run
    /// let t = shmbus_client::Bus::connect()?.table("speed")?;
    /// let v = t.version();
    /// shmbus_client::Select::new().with(t.changed_since(v)).wait()?;
    /// # Ok::<(), shmbus_client::Error>(())
    /// ```
    pub fn changed_since(&self, since: u64) -> Ready<'_> {
        Ready(Box::new(Changed { t: self, since }))
    }

    /// `Err(BusClosed)` once the bus is gone (for the async waits).
    #[cfg(feature = "tokio")]
    pub(crate) fn check_open(&self) -> Result<()> {
        self.bus.check_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_and_unpack() {
        let t = ElemType::I16;
        let elems = [0xFFFF, 1, 0x8000, 7, 9];
        let words = pack_bits(t, &elems, t.words(5) as usize);
        assert_eq!(words.len(), 2);
        assert_eq!(unpack_bits(t, &words, 5), elems);
        let t = ElemType::F64;
        let e = [1.5f64.to_bits(), (-2.0f64).to_bits()];
        assert_eq!(unpack_bits(t, &pack_bits(t, &e, 2), 2), e);
    }
}
