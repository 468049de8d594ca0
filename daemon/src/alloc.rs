//! The arena and the directory: where channel bodies live and what they are
//! called.
//!
//! The daemon is the only writer of both (DESIGN.md §1). It never reads them
//! back from the segment: clients map the segment read-write and could scribble
//! on it, so the truth is this module's private mirror ([`Channels`]), and the
//! segment's copy is written for the clients to read.
//!
//! # Arena
//! Bodies are allocated from a first-fit free list with coalescing
//! ([`crate::arena`], which documents its fragmentation behaviour); each
//! starts on a 128-byte line ([`LINE`]). Free space is always all zero:
//! `fallocate` left it so, and a removed channel's body is zeroed (with
//! atomic stores) before its space goes back on the list. A new body is
//! therefore zero, which is the state `PipeCtl::init` and the others expect.
//! `Header::arena_used` shows the bytes handed out.
//!
//! # Publishing an entry
//! | step | store | ordering | daemon lock |
//! |---|---|---|---|
//! | 1 [`reserve`](Channels::reserve) | `state = INITIALIZING`; kind, generation, name, offset, length, params, holders = 0; arena range taken | Relaxed: clients skip any entry that is not `LIVE` | held |
//! | 2 [`Pending::init_body`] | the body initialised | Relaxed | **not** held |
//! | 3 [`publish`](Channels::publish) | `state = LIVE` | Release: pairs with the client's Acquire load of `state` before it reads the rest | held |
//!
//! Step 2 runs without the daemon's lock: initialising a queue of 2^24
//! cells writes every cell's state word (seconds for the largest queues),
//! and `HELLO`, other `OPEN`s and the recovery of dead clients must not wait
//! for it. Until step 3 the channel is invisible to everything that takes
//! the lock: [`Channels::get`] and [`Channels::iter`] (recovery, shutdown)
//! skip it, and an `OPEN` of its name waits for it
//! ([`Channels::creating`]). Nobody else writes the reserved range: clients
//! cannot reach it (the entry is not `LIVE`) and the arena never hands it out
//! twice. Steps 2 and 3 run on one thread, so step 2's stores come before the
//! Release of step 3.
//!
//! # Holders and removal (`unlink` semantics)
//! The daemon counts, per channel and per peer slot, the `OPEN`s it granted
//! that the client has not given back (`CLOSE`, or the recovery of its slot).
//! `DirEntry::holders` shows the number of slots with a non-zero count.
//!
//! | event | entry | body |
//! |---|---|---|
//! | `REMOVE`, no holder | `state = FREE` | zeroed, space back on the free list |
//! | `REMOVE`, holders | `state = REMOVED` (Release); the name is free at once | untouched: holders keep using it |
//! | last holder gone (`CLOSE`, slot recovered) of a `REMOVED` entry | `state = FREE` | zeroed, space back on the free list |
//!
//! The daemon never touches a removed body while a holder has it: the holders'
//! pipe ends, queue cells and sleepers behave exactly as before the removal
//! (a pipe whose sender is gone still reports end of file to its receiver,
//! and so on). A slot that dies holding it is recovered as for a live
//! channel (ends released, cells repaired) before its holds are dropped.
//!
//! [`LINE`]: shmbus::layout::LINE

use std::collections::{BTreeMap, HashMap};

use shmbus::layout::{self, entry_state, Geometry, Kind};
use shmbus::params::ChannelParams;
use shmbus::sync::Ordering;

use crate::arena::{align_line, FreeList, NoBlock};
use crate::segment::Segment;

/// A channel, as the daemon knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Channel {
    pub(crate) name: String,
    pub(crate) generation: u32,
    /// Offset of the body from the segment base.
    pub(crate) offset: u64,
    /// Length of the body (not rounded up to a line).
    pub(crate) length: u64,
    /// What it was created with (its kind among them).
    pub(crate) params: ChannelParams,
}

impl Channel {
    /// Its kind.
    pub(crate) fn kind(&self) -> Kind {
        self.params.kind()
    }
}

/// An allocated directory entry.
#[derive(Debug)]
struct Slot {
    ch: Channel,
    /// Removed: no longer found by name, freed when `holders` empties.
    removed: bool,
    /// Open counts per peer slot (entries are never 0).
    holders: BTreeMap<u16, u32>,
}

/// Why a channel cannot be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// Every directory entry is in use.
    Full { entries: u32 },
    /// No free block of the arena holds `need` bytes: `free` bytes are free
    /// in all, the largest free block has `largest`.
    NoSpace { need: u64, free: u64, largest: u64 },
}

/// What a `REMOVE` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) index: u32,
    pub(crate) channel: Channel,
    /// Peer slots still holding it; 0 = freed at once.
    pub(crate) holders: u64,
}

/// A `CLOSE` that matches no open of this peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotHeld;

/// A channel reserved by [`Channels::reserve`] whose body is not yet
/// initialised: [`init_body`](Self::init_body) (without the daemon's lock),
/// then [`Channels::publish`].
#[derive(Debug)]
#[must_use = "a reserved channel stays invisible until it is published"]
pub(crate) struct Pending {
    index: u32,
    offset: u64,
    params: ChannelParams,
}

impl Pending {
    /// Initialises the channel's body. Needs no lock: the body's range is
    /// this channel's alone until it is published (see the module docs).
    pub(crate) fn init_body(&self, seg: &Segment) {
        let offset = self.offset;
        match self.params {
            // The body is still zero (free space always is, see the module
            // docs), as `init` requires; its stores are published by the
            // Release in `publish`.
            ChannelParams::Pipe { capacity } => seg.pipe(offset).init(capacity),
            ChannelParams::Queue { slots, slot_size } => {
                let (ctl, cells) = seg.queue(offset, slots, slot_size);
                ctl.init(slots, slot_size);
                cells.init();
            }
            ChannelParams::Value { elem } => seg.seqlock(offset).init(elem, 1),
            ChannelParams::Array { elem, len } => seg.seqlock(offset).init(elem, len),
            ChannelParams::Topic {
                slots,
                slot_size,
                mode,
            } => {
                let (ctl, ring) = seg.topic(offset, slots, slot_size, mode);
                ctl.init(slots, slot_size, mode);
                ring.init();
            }
        }
    }
}

/// The directory and arena mirror.
#[derive(Debug)]
pub(crate) struct Channels {
    arena: FreeList,
    /// One per directory entry; `None` = free.
    entries: Vec<Option<Slot>>,
    /// Generation each entry had when last used (0 = never used).
    generations: Vec<u32>,
    /// Live (not removed) channels by name.
    by_name: HashMap<String, u32>,
    /// Per directory entry: reserved but not yet published.
    creating: Vec<bool>,
}

impl Channels {
    /// An empty directory and arena for a segment laid out as `g`.
    pub(crate) fn new(g: &Geometry) -> Self {
        let n = g.dir_count as usize;
        Self {
            arena: FreeList::new(g.arena_off, g.arena_len),
            entries: (0..n).map(|_| None).collect(),
            generations: vec![0; n],
            by_name: HashMap::new(),
            creating: vec![false; n],
        }
    }

    /// The published, not removed, channel called `name`, with its
    /// directory index.
    pub(crate) fn get(&self, name: &str) -> Option<(u32, &Channel)> {
        let &i = self.by_name.get(name)?;
        if self.creating[i as usize] {
            return None;
        }
        self.entries[i as usize].as_ref().map(|s| (i, &s.ch))
    }

    /// True while channel `name` is reserved but not yet published.
    pub(crate) fn creating(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| self.creating[i as usize])
    }

    /// Every published channel with a body: live ones and removed ones
    /// still held (recovery and shutdown must reach both).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.entries
            .iter()
            .zip(&self.creating)
            .filter_map(|(s, &creating)| s.as_ref().filter(|_| !creating).map(|s| &s.ch))
    }

    /// Number of channels, published or being created.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Number of removed channels still held.
    pub(crate) fn pending_removal(&self) -> usize {
        self.entries.iter().flatten().filter(|s| s.removed).count()
    }

    /// Number of free blocks of the arena (1 = not fragmented).
    pub(crate) fn arena_blocks(&self) -> usize {
        self.arena.blocks()
    }

    /// Bytes of the arena free (in all blocks).
    pub(crate) fn arena_free(&self) -> u64 {
        self.arena.free()
    }

    /// Creates channel `name` (validated, not yet present) with `params`
    /// (validated) in one go: [`reserve`](Self::reserve),
    /// [`Pending::init_body`], [`publish`](Self::publish). For channels
    /// declared at start-up, before any client can connect.
    ///
    /// # Errors
    /// [`AllocError`] if the directory or the arena is full; nothing is
    /// written then.
    pub(crate) fn create(
        &mut self,
        seg: &Segment,
        name: &str,
        params: ChannelParams,
    ) -> Result<(u32, &Channel), AllocError> {
        let p = self.reserve(seg, name, params)?;
        p.init_body(seg);
        Ok(self.publish(seg, &p))
    }

    /// Steps 1 of the module docs: takes a directory entry and an arena
    /// range for channel `name` (validated, not yet present) with `params`
    /// (validated), and writes the entry, still `INITIALIZING`.
    ///
    /// # Errors
    /// [`AllocError`] if the directory or the arena is full; nothing is
    /// written then.
    pub(crate) fn reserve(
        &mut self,
        seg: &Segment,
        name: &str,
        params: ChannelParams,
    ) -> Result<Pending, AllocError> {
        debug_assert!(!self.by_name.contains_key(name));
        let index = self
            .entries
            .iter()
            .position(Option::is_none)
            .ok_or(AllocError::Full {
                entries: self.entries.len() as u32,
            })?;
        let length = params.body_len();
        let need = align_line(length);
        let offset = self
            .arena
            .alloc(need)
            .map_err(|NoBlock { free, largest }| AllocError::NoSpace {
                need,
                free,
                largest,
            })?;
        let generation = self.generations[index].wrapping_add(1).max(1);
        let kind = params.kind();
        let words = params.words();

        let i = index as u32;
        let e = seg.entry(i);
        // Relaxed: clients ignore entries that are not LIVE (see the table).
        e.state.store(entry_state::INITIALIZING, Ordering::Relaxed);
        // Relaxed, all of them: published by the Release store of LIVE in
        // `publish`.
        e.kind.store(kind as u32, Ordering::Relaxed);
        e.generation.store(generation, Ordering::Relaxed);
        layout::write_name(e, name.as_bytes());
        e.offset.store(offset, Ordering::Relaxed);
        e.length.store(length, Ordering::Relaxed);
        for (w, v) in e.params.iter().zip(words.iter().chain([0].iter())) {
            w.store(*v, Ordering::Relaxed);
        }
        e.holders.store(0, Ordering::Relaxed);

        // Relaxed: informational (listings), no one synchronises on it.
        seg.header()
            .arena_used
            .store(self.arena.used(), Ordering::Relaxed);
        self.generations[index] = generation;
        self.by_name.insert(name.to_owned(), i);
        self.creating[index] = true;
        self.entries[index] = Some(Slot {
            ch: Channel {
                name: name.to_owned(),
                generation,
                offset,
                length,
                params,
            },
            removed: false,
            holders: BTreeMap::new(),
        });
        Ok(Pending {
            index: i,
            offset,
            params,
        })
    }

    /// Step 3 of the module docs: marks the channel `p` reserved, whose body
    /// [`Pending::init_body`] initialised, `LIVE`.
    pub(crate) fn publish(&mut self, seg: &Segment, p: &Pending) -> (u32, &Channel) {
        let i = p.index as usize;
        debug_assert!(self.creating[i]);
        // Release: publishes the entry (written by `reserve`) and the body
        // (by `init_body`, on this thread before this store); pairs with the
        // client's Acquire load of the entry's state.
        seg.entry(p.index)
            .state
            .store(entry_state::LIVE, Ordering::Release);
        self.creating[i] = false;
        let s = self.entries[i]
            .as_ref()
            .expect("a reserved entry stays until published");
        (p.index, &s.ch)
    }

    /// Counts one `OPEN` of entry `index` (which must be allocated) granted
    /// to peer `slot`.
    pub(crate) fn hold(&mut self, seg: &Segment, index: u32, slot: u16) {
        if let Some(s) = self.entries[index as usize].as_mut() {
            *s.holders.entry(slot).or_insert(0) += 1;
            // Relaxed: informational (listings).
            seg.entry(index)
                .holders
                .store(s.holders.len() as u64, Ordering::Relaxed);
        }
    }

    /// Gives back one `OPEN` of entry `index` of `generation` by peer `slot`;
    /// frees the channel if it was removed and this was its last holder, and
    /// returns it then.
    ///
    /// # Errors
    /// [`NotHeld`] if `slot` holds no such entry (nothing changes).
    pub(crate) fn close(
        &mut self,
        seg: &Segment,
        index: u32,
        generation: u32,
        slot: u16,
    ) -> Result<Option<Channel>, NotHeld> {
        let s = self
            .entries
            .get_mut(index as usize)
            .and_then(Option::as_mut)
            .filter(|s| s.ch.generation == generation)
            .ok_or(NotHeld)?;
        let n = s.holders.get_mut(&slot).ok_or(NotHeld)?;
        *n -= 1;
        if *n == 0 {
            s.holders.remove(&slot);
        }
        Ok(self.settle(seg, index))
    }

    /// Removes the live channel `name`, as `unlink`: its name is free at
    /// once; its body is freed now if nobody holds it, else when the last
    /// holder is gone. `None` if there is no live channel of that name.
    /// A channel still being created is not found: its creator must publish
    /// it first (the server waits for that, see `state_once_created`).
    pub(crate) fn remove(&mut self, seg: &Segment, name: &str) -> Option<Removed> {
        if self.creating(name) {
            return None;
        }
        let index = self.by_name.remove(name)?;
        let s = self.entries[index as usize].as_mut()?;
        s.removed = true;
        let holders = s.holders.len() as u64;
        let channel = s.ch.clone();
        // Release: pairs with the client's Acquire load of the state in its
        // listing; nothing else changes in the entry.
        seg.entry(index)
            .state
            .store(entry_state::REMOVED, Ordering::Release);
        self.settle(seg, index);
        Some(Removed {
            index,
            channel,
            holders,
        })
    }

    /// Drops every hold of peer `slot` (its slot was recovered); returns the
    /// removed channels that this freed.
    pub(crate) fn release_peer(&mut self, seg: &Segment, slot: u16) -> Vec<Channel> {
        let mut freed = Vec::new();
        for i in 0..self.entries.len() {
            let Some(s) = self.entries[i].as_mut() else {
                continue;
            };
            if s.holders.remove(&slot).is_some() {
                if let Some(c) = self.settle(seg, i as u32) {
                    freed.push(c);
                }
            }
        }
        freed
    }

    /// After entry `index`'s holders changed: publishes their number, and
    /// frees the entry if it is removed and nobody holds it any more.
    fn settle(&mut self, seg: &Segment, index: u32) -> Option<Channel> {
        let s = self.entries[index as usize].as_ref()?;
        let e = seg.entry(index);
        // Relaxed: informational (listings).
        e.holders.store(s.holders.len() as u64, Ordering::Relaxed);
        if !s.removed || !s.holders.is_empty() {
            return None;
        }
        let s = self.entries[index as usize].take()?;
        // Relaxed: a client that still reads the entry re-checks the state
        // after reading it, and only lists it (`OPEN` goes to the daemon).
        e.state.store(entry_state::FREE, Ordering::Relaxed);
        e.holders.store(0, Ordering::Relaxed);
        let need = align_line(s.ch.length);
        // Nobody holds the body any more: free space must be zero (module
        // docs), so that the next channel placed here starts from zero.
        seg.zero(s.ch.offset, need);
        self.arena.release(s.ch.offset, need);
        // Relaxed: informational (listings).
        seg.header()
            .arena_used
            .store(self.arena.used(), Ordering::Relaxed);
        Some(s.ch)
    }
}

// Not under loom: these view real (anonymous) mappings as segment structs.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use memmap2::{MmapOptions, MmapRaw};
    use shmbus::layout::LINE;
    use shmbus::pipe::{body_len, PIPE_MAGIC};

    fn segment(size: u64, peers: u32, channels: u32) -> Segment {
        let g = Geometry::plan(size, peers, channels).unwrap();
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
    fn creates_and_publishes_pipes() {
        let seg = segment(1 << 20, 4, 4);
        let g = *seg.geometry();
        let mut ch = Channels::new(&g);
        let (i, c) = ch
            .create(&seg, "a", ChannelParams::Pipe { capacity: 64 })
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        assert_eq!((i, c.offset, c.length), (0, g.arena_off, body_len(64)));
        let (j, d) = ch
            .create(&seg, "b", ChannelParams::Pipe { capacity: 4096 })
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        assert_eq!(j, 1);
        // 768 + 64 = 832 rounds up to 896, a multiple of LINE.
        assert_eq!(d.offset, g.arena_off + 896);
        assert_eq!(d.offset % LINE, 0);
        assert_eq!(ch.get("b").map(|(i, _)| i), Some(1));
        assert_eq!(ch.len(), 2);

        let e = seg.entry(1);
        assert_eq!(e.state.load(Ordering::Acquire), entry_state::LIVE);
        assert_eq!(e.kind.load(Ordering::Relaxed), Kind::Pipe as u32);
        assert_eq!(e.generation.load(Ordering::Relaxed), 1);
        assert_eq!(layout::read_name(e).as_deref(), Some(&b"b"[..]));
        assert_eq!(e.offset.load(Ordering::Relaxed), d.offset);
        assert_eq!(e.params[0].load(Ordering::Relaxed), 4096);
        let p = seg.pipe(d.offset);
        assert_eq!(p.meta.magic.load(Ordering::Relaxed), PIPE_MAGIC);
        assert_eq!(p.check(4096, d.length), Ok(4096));
        assert_eq!(
            seg.header().arena_used.load(Ordering::Relaxed),
            896 + align_line(body_len(4096))
        );
    }

    #[test]
    fn a_reserved_channel_is_invisible_until_published() {
        let seg = segment(1 << 20, 4, 4);
        let mut ch = Channels::new(seg.geometry());
        let p = ch
            .reserve(
                &seg,
                "q",
                ChannelParams::Queue {
                    slots: 4,
                    slot_size: 8,
                },
            )
            .unwrap();
        assert!(ch.creating("q") && ch.get("q").is_none());
        assert_eq!(ch.iter().count(), 0, "recovery and shutdown skip it");
        assert_eq!(
            seg.entry(0).state.load(Ordering::Relaxed),
            entry_state::INITIALIZING
        );
        // Another channel can be made meanwhile, after it in the arena.
        let (_, b) = ch
            .create(&seg, "b", ChannelParams::Pipe { capacity: 64 })
            .unwrap();
        assert!(b.offset > seg.geometry().arena_off);
        p.init_body(&seg);
        let (i, q) = ch.publish(&seg, &p);
        assert_eq!((i, q.offset), (0, seg.geometry().arena_off));
        assert!(!ch.creating("q") && ch.get("q").is_some());
        assert_eq!(ch.iter().count(), 2);
        assert_eq!(
            seg.entry(0).state.load(Ordering::Acquire),
            entry_state::LIVE
        );
    }

    #[test]
    fn full_directory_and_arena() {
        let seg = segment(1 << 20, 4, 2);
        let mut ch = Channels::new(seg.geometry());
        let big = ChannelParams::Pipe { capacity: 1 << 19 };
        ch.create(&seg, "a", big).unwrap();
        let free = ch.arena_free();
        assert_eq!(
            ch.create(&seg, "b", big).unwrap_err(),
            AllocError::NoSpace {
                need: align_line(body_len(1 << 19)),
                free,
                largest: free,
            }
        );
        // Nothing was written for the failed create.
        assert_eq!(
            seg.entry(1).state.load(Ordering::Relaxed),
            entry_state::FREE
        );
        ch.create(&seg, "c", ChannelParams::Pipe { capacity: 64 })
            .unwrap();
        assert_eq!(
            ch.create(&seg, "d", ChannelParams::Pipe { capacity: 64 })
                .unwrap_err(),
            AllocError::Full { entries: 2 }
        );
    }

    #[test]
    fn remove_unheld_frees_at_once_and_zeroes() {
        let seg = segment(1 << 20, 4, 2);
        let g = *seg.geometry();
        let mut ch = Channels::new(&g);
        let q = ChannelParams::Queue {
            slots: 4,
            slot_size: 64,
        };
        let (i, c) = ch
            .create(&seg, "jobs", q)
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        // Leftovers of a run: an item put and never done.
        let (ctl, cells) = seg.queue(c.offset, 4, 64);
        let owner = 1;
        // SAFETY: `ctl` and `cells` are the queue just created, mapped for
        // the test's whole life.
        let handle =
            unsafe { shmbus::queue::Queue::attach(core::ptr::NonNull::from(ctl), cells, owner) };
        handle.try_put(b"x").unwrap();
        assert_eq!(ctl.stats().unfinished, 1);

        let r = ch.remove(&seg, "jobs").unwrap();
        assert_eq!((r.index, r.holders), (i, 0));
        assert!(ch.get("jobs").is_none() && ch.iter().next().is_none());
        assert_eq!(
            seg.entry(i).state.load(Ordering::Acquire),
            entry_state::FREE
        );
        assert_eq!(
            ch.arena_free(),
            FreeList::new(g.arena_off, g.arena_len).free()
        );
        assert_eq!(ch.remove(&seg, "jobs"), None);

        // Re-created in the same place, as a fresh queue: no unfinished item.
        let (j, d) = ch
            .create(&seg, "jobs", q)
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        assert_eq!((j, d.offset), (i, c.offset));
        assert_eq!(d.generation, c.generation + 1);
        let (ctl, _) = seg.queue(d.offset, 4, 64);
        assert_eq!(ctl.stats().unfinished, 0);
        assert_eq!(ctl.stats().depth, 0);
    }

    #[test]
    fn removed_while_held_waits_for_the_last_holder() {
        let seg = segment(1 << 20, 4, 4);
        let mut ch = Channels::new(seg.geometry());
        let p = ChannelParams::Pipe { capacity: 64 };
        let (i, c) = ch
            .create(&seg, "p", p)
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        ch.hold(&seg, i, 0);
        ch.hold(&seg, i, 0);
        ch.hold(&seg, i, 2);
        assert_eq!(seg.entry(i).holders.load(Ordering::Relaxed), 2);
        let free = ch.arena_free();

        let r = ch.remove(&seg, "p").unwrap();
        assert_eq!(r.holders, 2);
        assert_eq!(
            seg.entry(i).state.load(Ordering::Acquire),
            entry_state::REMOVED
        );
        assert_eq!(ch.pending_removal(), 1);
        assert!(ch.get("p").is_none());
        // Still reachable for recovery and shutdown.
        assert_eq!(ch.iter().count(), 1);
        // The name is free: a new pipe of that name takes another entry and
        // other space.
        let (j, d) = ch
            .create(&seg, "p", p)
            .map(|(i, c)| (i, c.clone()))
            .unwrap();
        assert_ne!((j, d.offset), (i, c.offset));

        // A CLOSE of something not held changes nothing.
        assert_eq!(ch.close(&seg, i, c.generation + 1, 0), Err(NotHeld));
        assert_eq!(ch.close(&seg, i, c.generation, 1), Err(NotHeld));
        assert_eq!(ch.close(&seg, 99, 1, 0), Err(NotHeld));
        assert_eq!(ch.close(&seg, i, c.generation, 0), Ok(None));
        assert_eq!(ch.close(&seg, i, c.generation, 0), Ok(None));
        assert_eq!(seg.entry(i).holders.load(Ordering::Relaxed), 1);
        // The last holder, slot 2, dies: its recovery frees the body.
        let before = ch.arena_free();
        assert_eq!(ch.release_peer(&seg, 2), vec![c.clone()]);
        assert_eq!(
            seg.entry(i).state.load(Ordering::Acquire),
            entry_state::FREE
        );
        assert_eq!(ch.arena_free(), before + align_line(c.length));
        assert_eq!(ch.pending_removal(), 0);
        assert_eq!(ch.close(&seg, i, c.generation, 0), Err(NotHeld));
        // Removing the new one too gives all the space back.
        ch.remove(&seg, "p").unwrap();
        assert_eq!(ch.arena_free(), free + align_line(c.length));
    }

    #[test]
    fn cycles_far_beyond_directory_and_arena() {
        // 2 entries and room for about one large pipe: 1000 cycles of mixed
        // sizes and kinds work only if entries and space are reused.
        let seg = segment(1 << 20, 4, 2);
        let mut ch = Channels::new(seg.geometry());
        let sizes = [1 << 19, 64, 1 << 12, 1 << 18];
        for n in 0..1000 {
            let p = if n % 3 == 0 {
                ChannelParams::Queue {
                    slots: 64,
                    slot_size: 256,
                }
            } else {
                ChannelParams::Pipe {
                    capacity: sizes[n % sizes.len()],
                }
            };
            let (i, c) = ch.create(&seg, "c", p).unwrap();
            let (i, c) = (i, c.clone());
            ch.hold(&seg, i, 1);
            assert_eq!(ch.remove(&seg, "c").unwrap().holders, 1);
            assert_eq!(ch.close(&seg, i, c.generation, 1), Ok(Some(c)));
        }
        assert_eq!(ch.arena_blocks(), 1);
        assert_eq!(seg.header().arena_used.load(Ordering::Relaxed), 0);
    }
}
