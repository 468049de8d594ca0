//! Peer slots, and what happens when a client goes away.
//!
//! A client gets a peer slot when its `HELLO` is accepted and keeps it until
//! the daemon is sure it is done with it (DESIGN.md §1, §5). The connection is
//! the first signal, a pidfd of the client's process the proof: pid + start
//! time identify a process, a bare pid never does (`crate::process`).
//!
//! # When a slot is recovered
//! | what the daemon sees | what it does |
//! |---|---|
//! | `BYE`, then EOF | recover now: a clean detach (the client released its ends first) |
//! | EOF (or a protocol error, or an I/O error) without `BYE`, pidfd readable within 500 ms | recover now: the process died (a SIGKILLed process closes its files just before its pidfd turns readable) |
//! | EOF without `BYE`, process still running | keep the slot and every end it holds; log it; keep polling the pidfd and recover when the process exits. Something closed its socket under it, or it exec'd: it may still use its ends |
//! | pidfd readable while the connection is still open | recover now and close the connection: the process exited and a child it forked inherited the socket. That child must connect its own `Bus`; closing tells it the bus is gone for it |
//! | the process is stopped (SIGSTOP) | nothing: no EOF, pidfd not readable. Its ends stay held (a second sender is refused as busy) until it goes on or dies |
//! | the daemon shuts down | recover every slot as its connection is closed |
//!
//! Recovery, in [`recover`]:
//!
//! 1. the slot is marked `RECOVERING`;
//! 2. every live pipe gets `PipeCtl::release_owner(slot + 1)`: the ends the
//!    peer held are freed and the other side is woken, so it sees
//!    `Disconnected` once it has read everything; every live value and array
//!    gets `SeqlockCtl::recover_owner(slot + 1)`: a writer lock the peer held
//!    is cleared without publishing its half-written copy; every live queue
//!    gets `QueueCtl::recover_owner(slot + 1)`: a cell the peer was writing
//!    becomes a tombstone that consumers skip, a cell it was reading is
//!    released, and sleepers on both sides are woken; and the sleeper counts
//!    the peer left in doorbells (it died asleep) are taken back from its
//!    wait records by `shmbus::futex::recover_records`, matching each
//!    recorded offset against the doorbells of the daemon's own channels;
//! 3. the slot's pid, uid and start time are cleared, its generation is bumped
//!    and it is marked `FREE`, ready to be handed out again.
//!
//! Every channel with a body is visited, removed ones still held included
//! (see `crate::alloc`). Right after [`recover`], under the same lock, the
//! connection's thread drops the slot's holds on channels
//! (`Channels::release_peer`): a removed channel whose last holder it was
//! is zeroed and its space reused.
//!
//! # Limits
//! - A client whose connection ended without `BYE` and that never exits keeps
//!   its slot for good (a peer table slot and a daemon thread asleep in one
//!   `poll`, which costs no CPU): that is the price of never recovering a
//!   live process's ends under it. This includes a client the daemon
//!   disconnected for a protocol error: that it broke the control protocol
//!   says nothing about what it still does in shared memory (it may be
//!   half-way through a frame, a locked write or a queue cell), and
//!   recovering would hand those to other peers while it writes on. So one
//!   uid may have at most `shmbus::protocol::KEPT_PER_UID` slots kept this way; past
//!   that its `HELLO`s are refused (`ERR full`, logged) until one of those
//!   processes exits, and other uids are unaffected.
//! - The slot's pid and start time (`/proc/PID/stat` field 22, confirmed by
//!   the pidfd) are recorded for listings; decisions use the pidfd itself.
//!
//! # Peer slot stores
//! | event | stores | ordering |
//! |---|---|---|
//! | register | generation, pid, uid, start time, wait records = 0; then `state = LIVE` | Relaxed, then Release (pairs with readers' Acquire of `state`) |
//! | recover | `state = RECOVERING`; release pipe ends; clear pid, uid, start time; bump generation; then `state = FREE` | Relaxed, then Release |

use shmbus::layout::peer_state;
use shmbus::params::ChannelParams;
use shmbus::sync::Ordering;

use crate::alloc::Channels;
use crate::segment::Segment;

/// A registered client, as the daemon knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) pid: u32,
    pub(crate) uid: u32,
    pub(crate) start_time: u64,
    pub(crate) generation: u32,
}

/// The peer table mirror: the daemon's truth about which slots are taken.
#[derive(Debug)]
pub(crate) struct Peers {
    slots: Vec<Option<Peer>>,
    /// Last generation each slot had (0 = never used).
    generations: Vec<u32>,
}

/// Every peer slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeersFull {
    pub(crate) slots: u32,
}

/// What [`recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Pipe ends the peer held that were released.
    pub(crate) released_ends: u32,
    /// Value/array writer locks the peer held that were cleared.
    pub(crate) cleared_locks: u32,
    /// Queue cells the peer held that were repaired (tombstoned or released).
    pub(crate) repaired_cells: u32,
    /// Sleeper counts the peer left in doorbells (it died asleep) that were
    /// taken back, from its wait records.
    pub(crate) cleared_waits: u32,
    /// Non-zero wait records that named no doorbell of a live channel, or one
    /// with no count left (only if the peer scribbled on its records).
    pub(crate) ignored_waits: u32,
}

impl Peers {
    /// `count` free slots.
    pub(crate) fn new(count: u32) -> Self {
        Self {
            slots: vec![None; count as usize],
            generations: vec![0; count as usize],
        }
    }

    /// Number of registered peers.
    pub(crate) fn live(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Hands the lowest free slot to a client and publishes it in the segment.
    /// Returns the slot index and its new generation.
    ///
    /// # Errors
    /// [`PeersFull`] if every slot is taken.
    pub(crate) fn register(
        &mut self,
        seg: &Segment,
        pid: u32,
        uid: u32,
        start_time: u64,
    ) -> Result<(u16, u32), PeersFull> {
        let full = PeersFull {
            slots: self.slots.len() as u32,
        };
        let i = self.slots.iter().position(Option::is_none).ok_or(full)?;
        // Peer counts are at most `layout::MAX_PEERS` (4096), checked by
        // `Geometry::plan`, so the index fits the protocol's u16.
        let slot = u16::try_from(i).map_err(|_| full)?;
        let generation = self.generations[i].wrapping_add(1);
        self.generations[i] = generation;
        let p = seg.peer(u32::from(slot));
        // Relaxed: published by the Release store of LIVE below.
        p.generation.store(generation, Ordering::Relaxed);
        p.pid.store(pid, Ordering::Relaxed);
        p.uid.store(uid, Ordering::Relaxed);
        p.start_time.store(start_time, Ordering::Relaxed);
        // A new holder starts with no wait records (recovery cleared them;
        // this also covers anything left by a peer that scribbled on them).
        for w in &p.waits {
            w.store(0, Ordering::Relaxed);
        }
        // Release: publishes the fields above; pairs with readers' Acquire load
        // of the slot's state.
        p.state.store(peer_state::LIVE, Ordering::Release);
        self.slots[i] = Some(Peer {
            pid,
            uid,
            start_time,
            generation,
        });
        Ok((slot, generation))
    }

    /// The peer in `slot`, if registered.
    pub(crate) fn get(&self, slot: u16) -> Option<&Peer> {
        self.slots.get(usize::from(slot))?.as_ref()
    }
}

/// Runs recovery for `slot` once its client is known to be done with it (it
/// said `BYE`, or its pidfd says it exited; see the module docs) and frees the
/// slot. Does nothing for a slot that is not registered.
pub(crate) fn recover(
    peers: &mut Peers,
    channels: &Channels,
    seg: &Segment,
    slot: u16,
) -> Recovery {
    let i = usize::from(slot);
    let mut r = Recovery {
        released_ends: 0,
        cleared_locks: 0,
        repaired_cells: 0,
        cleared_waits: 0,
        ignored_waits: 0,
    };
    if peers.slots.get(i).is_none_or(Option::is_none) {
        return r;
    }
    let p = seg.peer(u32::from(slot));
    // Relaxed: informational for listings; the Release store of FREE orders it.
    p.state.store(peer_state::RECOVERING, Ordering::Relaxed);
    let owner = slot + 1;
    // Sleeper counts the peer left in doorbells: each non-zero wait record
    // names the offset of a doorbell it was asleep on. The records are
    // untrusted, so an offset counts only if it is that of a doorbell of a
    // live channel in the daemon's own mirror; the address comes from the
    // mirror, never from the record.
    let find = |off: u64| {
        use core::mem::offset_of;
        use shmbus::futex::Doorbell;
        use shmbus::{pipe::PipeCtl, queue::QueueCtl, seqlock::SeqlockCtl, topic::TopicCtl};
        channels.iter().find_map(|c| {
            let bells: [(usize, &Doorbell); 3] = match c.params {
                ChannelParams::Pipe { .. } => {
                    let ctl = seg.pipe(c.offset);
                    [
                        (offset_of!(PipeCtl, readable), &ctl.readable),
                        (offset_of!(PipeCtl, writable), &ctl.writable),
                        (offset_of!(PipeCtl, writable), &ctl.writable),
                    ]
                }
                ChannelParams::Queue { slots, slot_size } => {
                    let (ctl, _) = seg.queue(c.offset, slots, slot_size);
                    [
                        (offset_of!(QueueCtl, not_empty), &ctl.not_empty),
                        (offset_of!(QueueCtl, not_full), &ctl.not_full),
                        (offset_of!(QueueCtl, all_done), &ctl.all_done),
                    ]
                }
                ChannelParams::Topic {
                    slots,
                    slot_size,
                    mode,
                } => {
                    let (ctl, _) = seg.topic(c.offset, slots, slot_size, mode);
                    // `Waiting` is `repr(C)` with its doorbell at offset 0.
                    [
                        (offset_of!(TopicCtl, not_empty), &ctl.not_empty.bell),
                        (offset_of!(TopicCtl, not_full), &ctl.not_full),
                        (offset_of!(TopicCtl, not_full), &ctl.not_full),
                    ]
                }
                ChannelParams::Value { .. } | ChannelParams::Array { .. } => {
                    let ctl = seg.seqlock(c.offset);
                    [
                        (offset_of!(SeqlockCtl, changed), &ctl.changed),
                        (offset_of!(SeqlockCtl, unlocked), &ctl.unlocked),
                        (offset_of!(SeqlockCtl, unlocked), &ctl.unlocked),
                    ]
                }
            };
            // `Line<Doorbell>` is `repr(C)` with the doorbell at offset 0.
            bells
                .into_iter()
                .find(|&(field, _)| c.offset + field as u64 == off)
                .map(|(_, bell)| bell)
        })
    };
    // Takes back one count per matching record (never below 0), clears
    // every record and rings those doorbells.
    let w = shmbus::futex::recover_records(&p.waits, find);
    r.cleared_waits = w.released;
    r.ignored_waits = w.ignored;
    for c in channels.iter() {
        match c.params {
            ChannelParams::Pipe { .. } => {
                // `release_owner` CASes the ends with Release and rings the
                // other side's doorbell, so a sleeping peer wakes up and sees
                // the end gone.
                r.released_ends += seg.pipe(c.offset).release_owner(owner);
            }
            ChannelParams::Value { .. } | ChannelParams::Array { .. } => {
                // Clears the writer lock the peer held, without publishing its
                // half-written copy, and wakes writers waiting for the lock.
                r.cleared_locks += u32::from(seg.seqlock(c.offset).recover_owner(owner));
            }
            ChannelParams::Queue { slots, slot_size } => {
                // Tombstones the cells the peer was writing and releases those
                // it was reading (CAS with Release), then wakes sleepers on
                // both sides.
                let (ctl, cells) = seg.queue(c.offset, slots, slot_size);
                let q = ctl.recover_owner(&cells, owner);
                r.repaired_cells += q.tombstoned + q.released;
            }
            ChannelParams::Topic {
                slots,
                slot_size,
                mode,
            } => {
                // Tombstones the slots the peer was publishing into and frees
                // its subscriber entries (so that lossless publishers no
                // longer wait for it), then wakes both sides.
                let (ctl, ring) = seg.topic(c.offset, slots, slot_size, mode);
                let t = ctl.recover_owner(&ring, owner);
                r.repaired_cells += t.tombstoned + t.unsubscribed;
            }
        }
    }
    let generation = peers.generations[i].wrapping_add(1);
    peers.generations[i] = generation;
    // Relaxed: published by the Release store of FREE below.
    p.pid.store(0, Ordering::Relaxed);
    p.uid.store(0, Ordering::Relaxed);
    p.start_time.store(0, Ordering::Relaxed);
    p.generation.store(generation, Ordering::Relaxed);
    // Release: pairs with readers' Acquire load of the slot's state.
    p.state.store(peer_state::FREE, Ordering::Release);
    peers.slots[i] = None;
    r
}

// Not under loom: these view real (anonymous) mappings as segment structs.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use memmap2::{MmapOptions, MmapRaw};
    use shmbus::layout::{self, Geometry};
    use shmbus::pipe::end;

    fn segment() -> Segment {
        let g = Geometry::plan(1 << 20, 3, 4).unwrap();
        let map: MmapRaw = MmapOptions::new()
            .len(g.total_size as usize)
            .map_anon()
            .unwrap()
            .into();
        let seg = Segment::new(map, g).unwrap();
        layout::init(seg.header(), &g, 7, 1, 1);
        seg
    }

    #[test]
    fn register_until_full_and_reuse() {
        let seg = segment();
        let ch = Channels::new(seg.geometry());
        let mut peers = Peers::new(3);
        assert_eq!(peers.register(&seg, 10, 0, 5), Ok((0, 1)));
        assert_eq!(peers.register(&seg, 11, 0, 5), Ok((1, 1)));
        assert_eq!(peers.register(&seg, 12, 0, 5), Ok((2, 1)));
        assert_eq!(peers.register(&seg, 13, 0, 5), Err(PeersFull { slots: 3 }));
        assert_eq!(peers.live(), 3);
        let s = seg.peer(1);
        assert_eq!(s.state.load(Ordering::Acquire), peer_state::LIVE);
        assert_eq!(s.pid.load(Ordering::Relaxed), 11);

        recover(&mut peers, &ch, &seg, 1);
        assert_eq!(s.state.load(Ordering::Acquire), peer_state::FREE);
        assert_eq!(s.generation.load(Ordering::Relaxed), 2);
        assert_eq!(s.pid.load(Ordering::Relaxed), 0);
        assert!(peers.get(1).is_none());
        // Recovering a free slot is a no-op.
        recover(&mut peers, &ch, &seg, 1);
        assert_eq!(s.generation.load(Ordering::Relaxed), 2);
        // The slot is handed out again with a newer generation.
        assert_eq!(peers.register(&seg, 14, 0, 5), Ok((1, 3)));
        assert_eq!(peers.get(1).map(|p| p.pid), Some(14));
    }

    #[test]
    fn recovery_releases_pipe_ends() {
        let seg = segment();
        let mut ch = Channels::new(seg.geometry());
        let mut peers = Peers::new(3);
        let (a, _) = peers.register(&seg, 10, 0, 5).unwrap();
        let (b, _) = peers.register(&seg, 11, 0, 5).unwrap();
        let off = ch
            .create(&seg, "p", ChannelParams::Pipe { capacity: 64 })
            .unwrap()
            .1
            .offset;
        let ctl = seg.pipe(off);
        // a is the producer, b the consumer (as `attach` would leave them).
        ctl.ends
            .producer
            .store(end::ATTACH_ONE | u64::from(a + 1), Ordering::Relaxed);
        ctl.ends
            .consumer
            .store(end::ATTACH_ONE | u64::from(b + 1), Ordering::Relaxed);
        let r = recover(&mut peers, &ch, &seg, a);
        assert_eq!(r.released_ends, 1);
        let p = ctl.ends.producer.load(Ordering::Relaxed);
        assert!(end::gone(p), "{p:#x}");
        assert_eq!(end::owner(ctl.ends.consumer.load(Ordering::Relaxed)), b + 1);
    }

    #[test]
    fn recovery_takes_back_recorded_sleeper_counts() {
        use core::mem::offset_of;
        use shmbus::queue::QueueCtl;
        let seg = segment();
        let mut ch = Channels::new(seg.geometry());
        let mut peers = Peers::new(3);
        let (a, _) = peers.register(&seg, 10, 0, 5).unwrap();
        let c = ch
            .create(
                &seg,
                "q",
                ChannelParams::Queue {
                    slots: 4,
                    slot_size: 64,
                },
            )
            .unwrap()
            .1
            .clone();
        let (ctl, _) = seg.queue(c.offset, 4, 64);
        // `a` died asleep on `not_empty`; another peer sleeps there too.
        ctl.not_empty.waiters.store(2, Ordering::Relaxed);
        let bell = c.offset + offset_of!(QueueCtl, not_empty) as u64;
        let p = seg.peer(u32::from(a));
        p.waits[0].store(bell, Ordering::Relaxed);
        // Hostile records: the daemon must not touch what they point at,
        // whether a word outside any doorbell (the peer slot's own pid, of
        // a second peer) or a real doorbell's neighbour.
        let (b, _) = peers.register(&seg, 11, 0, 5).unwrap();
        let pid_off = seg.geometry().peers_off + 128 * u64::from(b) + 8;
        p.waits[3].store(pid_off, Ordering::Relaxed);
        p.waits[5].store(bell + 4, Ordering::Relaxed);
        p.waits[11].store(u64::MAX, Ordering::Relaxed);
        let before = ctl.not_empty.bell.load(Ordering::Relaxed);

        let r = recover(&mut peers, &ch, &seg, a);
        assert_eq!((r.cleared_waits, r.ignored_waits), (1, 3));
        // Only the dead peer's count went, and its sleepers were woken.
        assert_eq!(ctl.not_empty.waiters.load(Ordering::Relaxed), 1);
        assert_ne!(ctl.not_empty.bell.load(Ordering::Relaxed), before);
        assert_eq!(seg.peer(u32::from(b)).pid.load(Ordering::Relaxed), 11);
        assert!(p.waits.iter().all(|w| w.load(Ordering::Relaxed) == 0));

        // A count already gone is never taken below 0.
        let (a2, _) = peers.register(&seg, 12, 0, 5).unwrap();
        assert_eq!(a2, a);
        ctl.not_full.waiters.store(0, Ordering::Relaxed);
        let full = c.offset + offset_of!(QueueCtl, not_full) as u64;
        p.waits[1].store(full, Ordering::Relaxed);
        let r = recover(&mut peers, &ch, &seg, a);
        assert_eq!((r.cleared_waits, r.ignored_waits), (0, 1));
        assert_eq!(ctl.not_full.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn register_clears_wait_records() {
        let seg = segment();
        let mut peers = Peers::new(3);
        seg.peer(0).waits[7].store(4096, Ordering::Relaxed);
        assert_eq!(peers.register(&seg, 10, 0, 5), Ok((0, 1)));
        let p = seg.peer(0);
        assert!(p.waits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }
}
