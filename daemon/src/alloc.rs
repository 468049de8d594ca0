//! The arena and the directory: where channel bodies live and what they are
//! called.
//!
//! The daemon is the only writer of both (DESIGN.md §1). It never reads them
//! back from the segment: clients map the segment read-write and could scribble
//! on it, so the truth is this module's private mirror ([`Channels`]), and the
//! segment's copy is written for the clients to read.
//!
//! # Arena
//! A bump allocator: each body starts on a 128-byte line ([`LINE`]) and nothing
//! is ever freed (channels cannot be deleted yet). Because memory is never
//! reused, a new body is still all zero, as `fallocate` left it, which is the
//! state `PipeCtl::init` expects. `Header::arena_used` shows the bytes handed
//! out.
//!
//! # Publishing an entry
//! | step | store | ordering | daemon lock |
//! |---|---|---|---|
//! | 1 [`reserve`](Channels::reserve) | `state = INITIALIZING`; kind, generation, name, offset, length, params; arena range taken | Relaxed: clients skip any entry that is not `LIVE` | held |
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
//! [`LINE`]: shmbus::layout::LINE

use std::collections::HashMap;

use shmbus::layout::{self, entry_state, Geometry, Kind};
use shmbus::sync::Ordering;

use crate::config::{align_line, ChannelParams};
use crate::run::Segment;

/// A channel, as the daemon knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Channel {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) generation: u32,
    /// Offset of the body from the segment base.
    pub(crate) offset: u64,
    /// Length of the body (not rounded up to a line).
    pub(crate) length: u64,
    pub(crate) params: [u64; 3],
}

/// Why a channel cannot be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// Every directory entry is in use.
    Full { entries: u32 },
    /// The arena has `free` bytes left, the body needs `need`.
    NoSpace { need: u64, free: u64 },
}

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
            // The body is still zero (the arena never reuses memory), as `init`
            // requires; its stores are published by the Release in `publish`.
            ChannelParams::Pipe { capacity } => seg.pipe(offset).init(capacity),
            ChannelParams::Queue { slots, slot_size } => {
                let (ctl, cells) = seg.queue(offset, slots, slot_size);
                ctl.init(slots, slot_size);
                cells.init();
            }
            ChannelParams::Table { elem, len, .. } => seg.seqlock(offset).init(elem, len),
        }
    }
}

/// The directory and arena mirror.
#[derive(Debug)]
pub(crate) struct Channels {
    arena_off: u64,
    arena_len: u64,
    /// Bytes of the arena handed out; the next body starts at `arena_off + used`.
    used: u64,
    /// One per directory entry; `None` = free.
    entries: Vec<Option<Channel>>,
    /// Generation each entry had when last used (0 = never used).
    generations: Vec<u32>,
    by_name: HashMap<String, u32>,
    /// Per directory entry: reserved but not yet published.
    creating: Vec<bool>,
}

impl Channels {
    /// An empty directory and arena for a segment laid out as `g`.
    pub(crate) fn new(g: &Geometry) -> Self {
        let n = g.dir_count as usize;
        Self {
            arena_off: g.arena_off,
            arena_len: g.arena_len,
            used: 0,
            entries: vec![None; n],
            generations: vec![0; n],
            by_name: HashMap::new(),
            creating: vec![false; n],
        }
    }

    /// The published channel called `name`, with its directory index.
    pub(crate) fn get(&self, name: &str) -> Option<(u32, &Channel)> {
        let &i = self.by_name.get(name)?;
        if self.creating[i as usize] {
            return None;
        }
        self.entries[i as usize].as_ref().map(|c| (i, c))
    }

    /// True while channel `name` is reserved but not yet published.
    pub(crate) fn creating(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| self.creating[i as usize])
    }

    /// Every published channel.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.entries
            .iter()
            .zip(&self.creating)
            .filter_map(|(c, &creating)| c.as_ref().filter(|_| !creating))
    }

    /// Number of channels, published or being created.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Bytes of the arena not yet handed out.
    pub(crate) fn arena_free(&self) -> u64 {
        self.arena_len - self.used
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
        if need > self.arena_free() {
            return Err(AllocError::NoSpace {
                need,
                free: self.arena_free(),
            });
        }
        let offset = self.arena_off + self.used;
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

        self.used += need;
        // Relaxed: informational (listings), no one synchronises on it.
        seg.header().arena_used.store(self.used, Ordering::Relaxed);
        self.generations[index] = generation;
        self.by_name.insert(name.to_owned(), i);
        self.creating[index] = true;
        self.entries[index] = Some(Channel {
            name: name.to_owned(),
            kind,
            generation,
            offset,
            length,
            params: words,
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
        let ch = self.entries[i]
            .as_ref()
            .expect("a reserved entry stays until published");
        (p.index, ch)
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
                free
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
}
