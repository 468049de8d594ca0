//! Topics: a bounded ring that every subscriber reads (publish once, every
//! subscriber receives).
//!
//! A topic is a ring of `slots` fixed-size slots (a power of two), any number
//! of publishers and up to `max_subscribers` subscribers. Positions count
//! messages from 0; the message of position `pos` lives in slot `pos %
//! slots`. Publishers claim positions in order, as the queue's producers do
//! (a CAS on the slot's state word, then the shared `tail` hint is advanced by
//! the claimer or any helper), so every subscriber sees the same order. Each
//! subscriber keeps its own cursor: nothing is taken out of the ring.
//!
//! ```text
//! publish at pos: slot[pos % slots]: CAS (pos+1-slots, 0|TOMB) -> (pos, me); tail: CAS pos -> pos+1
//!                 write len + payload (Relaxed word stores); store (pos+1, 0) [Release]; ring not_empty
//! receive at c:   slot[c % slots] is (c+1, 0): read; (c+1, TOMB): skip; older: empty
//!                 lossless: store cursor c+1 [Release]; ring not_full
//! ```
//!
//! The slot state words are the queue's ([`crate::queue::state`]: a 48-bit
//! sequence number and a 16-bit owner tag). For the slot of position `pos`:
//!
//! | seq | owner | meaning |
//! |---|---|---|
//! | `pos` | `k` | peer `k - 1` writes the message of `pos`; recovery: `(pos+1, TOMB)` |
//! | `pos+1` | 0 | holds the message of `pos` |
//! | `pos+1` | `TOMB` | a publish that never finished: subscribers skip it |
//!
//! Slot `i` starts as `(i+1-slots, 0)`: "holds the message of position
//! `i - slots`", which no subscriber reads.
//!
//! # Two modes
//! - **lossless** (default): a publisher may claim `pos` only when every
//!   registered subscriber's cursor is above `pos - slots` (the *gate*). Each
//!   publisher handle caches the last gate it computed (the minimum of the
//!   cursors and of `tail`), and scans the subscriber table again only when
//!   the cached gate would stop it, so a scan costs one pass per lap at most
//!   while subscribers keep up. Since nothing overwrites a slot before every
//!   subscriber is past it, receives read in place.
//! - **lossy**: publishers never look at subscribers. A subscriber copies the
//!   message out with atomic loads and checks afterwards that the slot still
//!   holds the same position (the seqlock check of [`crate::seqlock`]); if it
//!   was overwritten, or the slot already holds a later lap, the subscriber is
//!   told how many positions it missed (`Lagged(n)`) and continues at the
//!   oldest position that can still be in the ring.
//!
//! # Joining
//! A subscriber claims a free entry of the subscriber table (CAS owner 0 ->
//! me), raises `subs_hwm`, then reads `tail` with an RMW (`fetch_add(0)`) and
//! starts there. A publisher's scan also reads `tail` with an RMW before it
//! reads the table. Both RMWs are ordered in `tail`'s modification order: if
//! the publisher's comes first, its gate is at most the `tail` it read, which
//! is at most the subscriber's start, so its cached gate cannot let it
//! overwrite the subscriber's first message; if the subscriber's comes first,
//! it synchronizes with the publisher's (every write of `tail` is an RMW, so
//! the release sequence is unbroken) and the scan sees the entry.
//!
//! History (the last `K` messages at subscribe time) is read like the lossy
//! mode reads, in both modes: the gate protects only positions from the start
//! on, so older messages may be overwritten while they are read; those are
//! skipped (history is "up to K messages still in the ring").
//!
//! # Payload words
//! Every payload word is an `AtomicU64` written with Relaxed stores and read
//! with Relaxed loads (Boehm 2012: racing plain reads would be undefined
//! behaviour even when discarded), so lossy readers and history readers may
//! race a writer. In lossless mode, a receive from the start position on reads
//! the slot in place as `&[u8]`, since no writer can touch it until the
//! subscriber's cursor passes it.
//!
//! # Recovery
//! The daemon's [`TopicCtl::recover_owner`] turns a dead publisher's claim
//! into a tombstone and frees a dead subscriber's table entry, so neither
//! stalls the others.
//!
//! # Files
//! | file | what |
//! |---|---|
//! | `mod.rs` | parameters, the mode word, [`HeapTopic`] |
//! | `ctl.rs` | the control block [`TopicCtl`], subscriber entries, recovery |
//! | `ring.rs` | where the slots and entries are ([`Ring`]), copies in and out |
//! | `publisher.rs` | [`Publisher`]: claim, publish, [`TopicClaim`] |
//! | `subscriber.rs` | [`Subscriber`]: join, history, receive, lag |
//! | `error.rs` | one error type per operation |

mod ctl;
mod error;
mod publisher;
mod ring;
mod subscriber;

pub use ctl::{SubEntry, TopicCtl, TopicMeta, TopicRecovery, TopicStats};
pub use error::{PublishError, RecvError, SubscribeError, TryPublishError, TryRecvError};
pub use publisher::{Publisher, TopicClaim};
pub use ring::Ring;
pub use subscriber::Subscriber;

use crate::queue::state::pack;
use crate::sync::AtomicU64;
use crate::util::{round8, Line};

/// `b"TOPC"` as a little-endian `u32`.
pub const TOPIC_MAGIC: u32 = u32::from_le_bytes(*b"TOPC");
/// Size of the control block that precedes the subscriber table.
pub const CTL_SIZE: u64 = 4 * 128;
/// Bytes of one subscriber entry (its own line: each subscriber writes its
/// cursor there).
pub const ENTRY_SIZE: u64 = 128;
/// Fewest slots.
pub const MIN_SLOTS: u64 = 2;
/// Most slots.
pub const MAX_SLOTS: u64 = 1 << 24;
/// Largest slot payload in bytes (1 MiB).
pub const MAX_SLOT_SIZE: u64 = 1 << 20;
/// Default number of slots.
pub const DEFAULT_SLOTS: u64 = 1024;
/// Default slot payload size in bytes.
pub const DEFAULT_SLOT_SIZE: u64 = 256;
/// Default largest number of subscribers.
pub const DEFAULT_MAX_SUBSCRIBERS: u64 = 64;
/// Most subscribers a topic can be made for.
pub const MAX_SUBSCRIBERS: u64 = 1024;
/// Bytes of a slot before its payload: the state word and the length word.
pub const SLOT_HEADER: u64 = 16;
/// Slots start on boundaries of this many bytes.
pub const SLOT_ALIGN: u64 = 64;
/// Bit of the mode word (and of [`TopicMeta::flags`]): lossy delivery.
pub const LOSSY: u64 = 1 << 32;

/// The mode word, the third parameter word of a topic: `max_subscribers`
/// in the low 32 bits, [`LOSSY`] for lossy delivery.
///
/// # Examples
/// ```
/// use shmbus::topic::{mode_word, split_mode};
/// assert_eq!(split_mode(mode_word(true, 8)), (true, 8));
/// ```
pub const fn mode_word(lossy: bool, max_subscribers: u64) -> u64 {
    (max_subscribers & 0xFFFF_FFFF) | if lossy { LOSSY } else { 0 }
}

/// `(lossy, max_subscribers)` of a mode word (unchecked: see
/// [`check_params`]).
pub const fn split_mode(w: u64) -> (bool, u64) {
    (w & LOSSY != 0, w & 0xFFFF_FFFF)
}

/// Bytes of one slot: state word, length word, payload rounded up to 8.
pub const fn slot_stride(slot_size: u64) -> u64 {
    (SLOT_HEADER + round8(slot_size) + SLOT_ALIGN - 1) & !(SLOT_ALIGN - 1)
}

/// Offset of the first slot from the start of the body.
pub const fn slots_off(max_subscribers: u64) -> u64 {
    CTL_SIZE + max_subscribers * ENTRY_SIZE
}

/// Bytes a topic takes in the arena. Call it only with parameters
/// [`check_params`] accepted.
pub const fn body_len(slots: u64, slot_size: u64, mode: u64) -> u64 {
    slots_off(split_mode(mode).1) + slots * slot_stride(slot_size)
}

/// Checks the parameters requested for a new topic.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_params(slots: u64, slot_size: u64, mode: u64) -> Result<(), String> {
    if !slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
        return Err(format!(
            "topic slots {slots} must be a power of two from {MIN_SLOTS} to {MAX_SLOTS}"
        ));
    }
    if !(1..=MAX_SLOT_SIZE).contains(&slot_size) {
        return Err(format!(
            "topic slot size {slot_size} must be from 1 to {MAX_SLOT_SIZE} bytes"
        ));
    }
    if mode & !(LOSSY | 0xFFFF_FFFF) != 0 {
        return Err(format!("topic mode word {mode:#x} has unknown bits"));
    }
    let subs = split_mode(mode).1;
    if !(1..=MAX_SUBSCRIBERS).contains(&subs) {
        return Err(format!(
            "topic max subscribers {subs} must be from 1 to {MAX_SUBSCRIBERS}"
        ));
    }
    Ok(())
}

/// A topic whose control block, subscriber table and slots live on the heap:
/// for tests, benchmarks and loom models (construct it inside `loom::model`).
///
/// # Examples
/// ```
/// use shmbus::topic::{mode_word, HeapTopic};
///
/// let t = HeapTopic::new(4, 16, mode_word(false, 2));
/// // SAFETY: `t` outlives both handles.
/// let (p, s) = unsafe { (t.publisher(1), t.subscriber(2, 0).unwrap()) };
/// p.try_publish(b"hi").unwrap();
/// assert_eq!(s.try_recv_with(|b| b.to_vec()).unwrap(), b"hi");
/// ```
#[derive(Debug)]
pub struct HeapTopic {
    ctl: Box<TopicCtl>,
    entries: Box<[Line<SubEntry>]>,
    states: Box<[AtomicU64]>,
    words: Box<[AtomicU64]>,
    slots: u64,
    slot_size: u64,
    mode: u64,
}

impl HeapTopic {
    /// A fresh topic.
    ///
    /// # Panics
    /// If [`check_params`] refuses the parameters.
    pub fn new(slots: u64, slot_size: u64, mode: u64) -> Self {
        if let Err(e) = check_params(slots, slot_size, mode) {
            panic!("{e}");
        }
        let ctl = Box::<TopicCtl>::default();
        ctl.init(slots, slot_size, mode);
        let subs = split_mode(mode).1;
        let entries = (0..subs).map(|_| Line::default()).collect();
        let states = (0..slots)
            .map(|i| AtomicU64::new(pack(i.wrapping_add(1).wrapping_sub(slots), 0)))
            .collect();
        let per_slot = 1 + slot_size.div_ceil(8);
        let words = (0..slots * per_slot).map(|_| AtomicU64::new(0)).collect();
        Self {
            ctl,
            entries,
            states,
            words,
            slots,
            slot_size,
            mode,
        }
    }

    /// The control block.
    pub fn ctl(&self) -> &TopicCtl {
        &self.ctl
    }

    /// Where the slots and entries are. Valid while `self` lives.
    pub fn ring(&self) -> Ring {
        let per_slot = 1 + self.slot_size.div_ceil(8) as usize;
        Ring::on_heap(
            &self.entries,
            &self.states,
            &self.words,
            per_slot,
            self.slots,
            self.slot_size,
            self.mode,
        )
    }

    /// A publisher with owner tag `me`.
    ///
    /// # Safety
    /// `self` must outlive the handle.
    pub unsafe fn publisher(&self, me: u16) -> Publisher {
        // SAFETY: `init` ran with the ring's parameters; the caller keeps
        // `self` alive as long as the handle.
        unsafe { Publisher::attach(core::ptr::NonNull::from(&*self.ctl), self.ring(), me) }
    }

    /// A subscriber with owner tag `me`, asking for up to `history` earlier
    /// messages.
    ///
    /// # Safety
    /// `self` must outlive the handle.
    ///
    /// # Errors
    /// As [`Subscriber::attach`].
    pub unsafe fn subscriber(&self, me: u16, history: u64) -> Result<Subscriber, SubscribeError> {
        // SAFETY: as in `publisher`.
        unsafe {
            Subscriber::attach(
                core::ptr::NonNull::from(&*self.ctl),
                self.ring(),
                me,
                history,
            )
        }
    }

    /// Runs the daemon's recovery for `owner`.
    pub fn recover_owner(&self, owner: u16) -> TopicRecovery {
        self.ctl.recover_owner(&self.ring(), owner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
