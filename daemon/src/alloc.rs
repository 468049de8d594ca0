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
//! | step | store | ordering |
//! |---|---|---|
//! | 1 | `state = INITIALIZING` | Relaxed: clients skip any entry that is not `LIVE` |
//! | 2 | kind, generation, name, offset, length, params; body initialised | Relaxed |
//! | 3 | `state = LIVE` | Release: pairs with the client's Acquire load of `state` before it reads the rest |
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
        }
    }

    /// The channel called `name`, with its directory index.
    pub(crate) fn get(&self, name: &str) -> Option<(u32, &Channel)> {
        let &i = self.by_name.get(name)?;
        self.entries[i as usize].as_ref().map(|c| (i, c))
    }

    /// Every live channel.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.entries.iter().flatten()
    }

    /// Number of live channels.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Bytes of the arena not yet handed out.
    pub(crate) fn arena_free(&self) -> u64 {
        self.arena_len - self.used
    }

    /// Creates channel `name` (validated, not yet present) with `params`
    /// (validated): allocates its body, initialises it and publishes its
    /// directory entry, as the module docs describe.
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
        debug_assert!(self.get(name).is_none());
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
        // Relaxed, all of them: published by the Release store of LIVE below.
        e.kind.store(kind as u32, Ordering::Relaxed);
        e.generation.store(generation, Ordering::Relaxed);
        layout::write_name(e, name.as_bytes());
        e.offset.store(offset, Ordering::Relaxed);
        e.length.store(length, Ordering::Relaxed);
        for (w, v) in e.params.iter().zip(words.iter().chain([0].iter())) {
            w.store(*v, Ordering::Relaxed);
        }
        match params {
            // The body is still zero (the arena never reuses memory), as `init`
            // requires; its stores are published by the Release below too.
            ChannelParams::Pipe { capacity } => seg.pipe(offset).init(capacity),
            ChannelParams::Queue { slots, slot_size } => {
                let (ctl, cells) = seg.queue(offset, slots, slot_size);
                ctl.init(slots, slot_size);
                cells.init();
            }
            ChannelParams::Table { elem, len, .. } => seg.seqlock(offset).init(elem, len),
        }
        // Release: publishes everything above; pairs with the client's Acquire
        // load of the entry's state.
        e.state.store(entry_state::LIVE, Ordering::Release);

        self.used += need;
        // Relaxed: informational (listings), no one synchronises on it.
        seg.header().arena_used.store(self.used, Ordering::Relaxed);
        self.generations[index] = generation;
        self.by_name.insert(name.to_owned(), i);
        let ch = self.entries[index].insert(Channel {
            name: name.to_owned(),
            kind,
            generation,
            offset,
            length,
            params: words,
        });
        Ok((i, ch))
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
