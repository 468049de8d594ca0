//! The control block: parameters, the `tail` hint, doorbells, the subscriber
//! entries, and the daemon's recovery of a dead peer.

use super::{check_params, split_mode, Ring, LOSSY, TOPIC_MAGIC};
use crate::futex::Doorbell;
use crate::queue::state::{diff, owner, pack, seq, TOMB};
use crate::sync::{light_barrier, AtomicU32, AtomicU64, Ordering};
use crate::util::Line;

/// Immutable parameters, written by the daemon at creation.
#[derive(Debug, Default)]
#[repr(C)]
pub struct TopicMeta {
    /// [`TOPIC_MAGIC`].
    pub magic: AtomicU32,
    /// 1 for lossy delivery, 0 for lossless.
    pub flags: AtomicU32,
    /// Number of slots (a power of two).
    pub slots: AtomicU64,
    /// Largest message, in bytes.
    pub slot_size: AtomicU64,
    /// Entries in the subscriber table.
    pub max_subscribers: AtomicU64,
}

/// A topic's control block; the subscriber table follows at
/// [`CTL_SIZE`](super::CTL_SIZE) (`max_subscribers` entries of
/// [`ENTRY_SIZE`](super::ENTRY_SIZE) bytes), then the slots, each
/// [`slot_stride`](super::slot_stride) bytes: state word, length word, payload.
///
/// # Layout
/// | line | contents | written by |
/// |---|---|---|
/// | 0 | [`TopicMeta`] | the daemon, at creation |
/// | 1 | `tail`: next position to publish at (a hint) | publishers (and helpers, RMWs only) |
/// | 2 | `not_empty`: [`Doorbell`] subscribers sleep on; `subs_hwm` | subscribers (waiters, hwm), publishers (bell) |
/// | 3 | `not_full`: [`Doorbell`] publishers sleep on | publishers (waiters), subscribers and publishers (bell) |
#[derive(Debug, Default)]
#[repr(C)]
pub struct TopicCtl {
    /// Immutable parameters.
    pub meta: Line<TopicMeta>,
    /// Next position to publish at (a hint; the slots are the truth). Every
    /// write is an RMW (see "Joining" in the module docs).
    pub tail: Line<AtomicU64>,
    /// Rung when a message is committed (or a tombstone left).
    pub not_empty: Line<Waiting>,
    /// Rung when a lossless subscriber moves on, a subscriber leaves or a
    /// message is committed.
    pub not_full: Line<Doorbell>,
}

/// Line 2 of the control block: the subscribers' doorbell and the table's
/// high-water mark.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Waiting {
    /// The doorbell subscribers sleep on.
    pub bell: Doorbell,
    /// One more than the highest subscriber entry ever claimed: publishers
    /// scan entries below it only. Raised with `fetch_max` by subscribers.
    pub subs_hwm: AtomicU64,
}

impl core::ops::Deref for Waiting {
    type Target = Doorbell;
    fn deref(&self) -> &Doorbell {
        &self.bell
    }
}

/// One subscriber entry (its own line).
///
/// | field | meaning |
/// |---|---|
/// | `owner` | 0: free; else the owner tag of the subscriber's process |
/// | `cursor` | the next position the subscriber reads (below it: done with) |
#[derive(Debug, Default)]
#[repr(C)]
pub struct SubEntry {
    /// Owner tag (peer slot + 1), 0 when free.
    pub owner: AtomicU64,
    /// Next position the subscriber will read.
    pub cursor: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<TopicCtl>() as u64 == super::CTL_SIZE);
    assert!(align_of::<TopicCtl>() == 128);
    assert!(size_of::<TopicMeta>() == 32);
    assert!(offset_of!(TopicCtl, tail) == 128);
    assert!(offset_of!(TopicCtl, not_empty) == 256);
    assert!(offset_of!(Waiting, subs_hwm) == 8);
    assert!(offset_of!(TopicCtl, not_full) == 384);
    assert!(size_of::<Line<SubEntry>>() as u64 == super::ENTRY_SIZE);
};

/// Snapshot of a topic for listings (approximate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicStats {
    /// Number of slots.
    pub slots: u64,
    /// Slot payload size in bytes.
    pub slot_size: u64,
    /// Whether the topic is lossy.
    pub lossy: bool,
    /// Entries in the subscriber table.
    pub max_subscribers: u64,
    /// Subscribers now registered.
    pub subscribers: u64,
    /// `tail`: positions ever claimed (tombstones included).
    pub tail: u64,
    /// How far the slowest subscriber is behind `tail` (0 with none).
    pub max_lag: u64,
}

/// What [`TopicCtl::recover_owner`] repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicRecovery {
    /// Publish claims turned into tombstones.
    pub tombstoned: u32,
    /// Subscriber entries freed.
    pub unsubscribed: u32,
}

impl TopicCtl {
    /// Initialises a zeroed control block (daemon only, before the directory
    /// entry is published). The slots and entries are set by [`Ring::init`].
    pub fn init(&self, slots: u64, slot_size: u64, mode: u64) {
        debug_assert!(check_params(slots, slot_size, mode).is_ok());
        let (lossy, subs) = split_mode(mode);
        // Relaxed: published to clients by the Release store of the directory
        // entry's state.
        self.meta.slots.store(slots, Ordering::Relaxed);
        self.meta.slot_size.store(slot_size, Ordering::Relaxed);
        self.meta.max_subscribers.store(subs, Ordering::Relaxed);
        self.meta.flags.store(u32::from(lossy), Ordering::Relaxed);
        self.meta.magic.store(TOPIC_MAGIC, Ordering::Relaxed);
    }

    /// Reads and checks the immutable parameters against what the directory
    /// says and the space the body has (`body`).
    ///
    /// # Errors
    /// `Err` naming the first inconsistency.
    pub fn check(
        &self,
        slots: u64,
        slot_size: u64,
        mode: u64,
        body: u64,
    ) -> Result<(), &'static str> {
        // Relaxed: immutable after creation, published by the entry's Release.
        if self.meta.magic.load(Ordering::Relaxed) != TOPIC_MAGIC {
            return Err("bad magic in the topic's control block");
        }
        let s = self.meta.slots.load(Ordering::Relaxed);
        let z = self.meta.slot_size.load(Ordering::Relaxed);
        let n = self.meta.max_subscribers.load(Ordering::Relaxed);
        let f = self.meta.flags.load(Ordering::Relaxed);
        let m = n | if f == 1 { LOSSY } else { 0 };
        if s != slots || z != slot_size || m != mode || f > 1 || check_params(s, z, m).is_err() {
            return Err("parameters in the topic's control block disagree with the directory");
        }
        if body < super::body_len(s, z, m) {
            return Err("slots extend past the channel's allocation");
        }
        Ok(())
    }

    /// A snapshot for listings.
    pub fn stats(&self, ring: &Ring) -> TopicStats {
        // Relaxed: a snapshot.
        let tail = self.tail.load(Ordering::Relaxed);
        let mut subscribers = 0;
        let mut max_lag = 0;
        for k in 0..ring.max_subs {
            let e = ring.entry(k);
            // Relaxed: a snapshot.
            if e.owner.load(Ordering::Relaxed) != 0 {
                subscribers += 1;
                let lag = tail.wrapping_sub(e.cursor.load(Ordering::Relaxed));
                if (lag as i64) > 0 {
                    max_lag = max_lag.max(lag);
                }
            }
        }
        TopicStats {
            slots: ring.slots,
            slot_size: ring.slot_size,
            lossy: ring.lossy,
            max_subscribers: ring.max_subs,
            subscribers,
            tail,
            max_lag,
        }
    }

    /// Wakes every sleeper (daemon shutdown, recovery).
    pub fn wake_all(&self) {
        self.not_empty.ring();
        self.not_full.ring();
    }

    /// Notifies both doorbells after one barrier: a commit may free a
    /// publisher waiting for the previous lap's slot as well as wake
    /// subscribers.
    #[inline(always)]
    pub(super) fn notify_committed(&self) {
        // Light barrier: as in `Doorbell::notify`, one for both loads.
        light_barrier();
        // Relaxed: ordered by the barrier pair (see `Doorbell::notify`).
        if self.not_empty.waiters.load(Ordering::Relaxed) != 0 {
            self.not_empty.ring();
        }
        // Relaxed: as above.
        if self.not_full.waiters.load(Ordering::Relaxed) != 0 {
            self.not_full.ring();
        }
    }

    /// Repairs everything `owner` held (daemon recovery, only after the death
    /// of that peer is confirmed):
    /// - a publish claim `(pos, owner)` becomes the tombstone `(pos+1, TOMB)`,
    ///   and `tail` is advanced past `pos` if its claimer died before doing
    ///   so;
    /// - every subscriber entry of `owner` is freed, so that it no longer
    ///   holds lossless publishers back.
    ///
    /// Then rings both doorbells, whatever it repaired.
    pub fn recover_owner(&self, ring: &Ring, owner_tag: u16) -> TopicRecovery {
        let mut r = TopicRecovery::default();
        if owner_tag == 0 || owner_tag == TOMB {
            return r;
        }
        let mask = ring.slots - 1;
        for i in 0..ring.slots {
            let st = ring.state(i);
            // Acquire: the dead peer's last store; a CAS below fails
            // harmlessly if anything changed since.
            let w = st.load(Ordering::Acquire);
            let s = seq(w);
            if owner(w) != owner_tag || s & mask != i {
                continue;
            }
            // AcqRel: Release hands the tombstone to the subscribers and the
            // next lap's publisher (pairs with their Acquire loads).
            if st
                .compare_exchange(w, pack(s + 1, TOMB), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                r.tombstoned += 1;
                // Acquire: as in `Publisher::claim`.
                let t = self.tail.load(Ordering::Acquire);
                if diff(t, s) == 0 {
                    // AcqRel: as every move of `tail`; fails if a helper won.
                    let _ = self.tail.compare_exchange(
                        t,
                        t.wrapping_add(1),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
            }
        }
        for k in 0..ring.max_subs {
            let e = ring.entry(k);
            // Release: the dead subscriber read nothing more; AcqRel keeps
            // the CAS simple.
            if e.owner
                .compare_exchange(u64::from(owner_tag), 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                r.unsubscribed += 1;
            }
        }
        self.wake_all();
        r
    }
}
