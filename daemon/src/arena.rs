//! The arena's free space: a first-fit free list with coalescing.
//!
//! Every block is a whole number of 128-byte lines ([`LINE`]) and starts on
//! a line, so every channel body is line-aligned. The list holds the free
//! blocks in address order; two free blocks never touch (a freed block is
//! merged with the free neighbours on both sides at once), so the list is as
//! short as the free space is fragmented.
//!
//! - **Allocate**: the first free block, in address order, that is large
//!   enough; the body takes its start and the rest stays free. O(free blocks).
//! - **Free**: the block goes back into the list and is merged with the free
//!   blocks just before and after it. O(log free blocks).
//!
//! # Fragmentation
//! Bodies never move: clients map them by offset for as long as they hold
//! them, so there is no compaction. Freed space is reusable by channels of
//! any size and kind, but a request needs one free block at least as large
//! as the body: after many channels of mixed sizes come and go, the arena may
//! have enough free bytes in total and still refuse a large channel, until
//! the channels between the holes are removed too. A refusal reports both
//! figures (bytes free, largest free block). First fit keeps the low end of
//! the arena packed and the large block at its end intact for as long as the
//! small requests fit in the holes below it; a workload that only ever
//! re-creates channels of the sizes it removed reuses the same holes and
//! does not fragment.
//!
//! [`LINE`]: shmbus::layout::LINE

use std::collections::BTreeMap;

use shmbus::layout::LINE;

/// Rounds an arena allocation up to a whole line.
pub(crate) fn align_line(v: u64) -> u64 {
    v.saturating_add(LINE - 1) & !(LINE - 1)
}

/// The free blocks of an arena.
#[derive(Debug)]
pub(crate) struct FreeList {
    /// Start of the arena (line-aligned).
    start: u64,
    /// Usable length of the arena (whole lines).
    len: u64,
    /// Free blocks: offset → length, neither zero nor touching each other.
    blocks: BTreeMap<u64, u64>,
    /// Sum of the blocks' lengths.
    free: u64,
}

/// No free block is large enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoBlock {
    /// Bytes free in total.
    pub(crate) free: u64,
    /// The largest free block.
    pub(crate) largest: u64,
}

impl FreeList {
    /// An empty arena of `len` bytes at `start` (both rounded inwards to
    /// whole lines).
    pub(crate) fn new(start: u64, len: u64) -> Self {
        let first = start.next_multiple_of(LINE);
        let len = (start + len).saturating_sub(first) / LINE * LINE;
        let mut blocks = BTreeMap::new();
        if len > 0 {
            blocks.insert(first, len);
        }
        Self {
            start: first,
            len,
            blocks,
            free: len,
        }
    }

    /// Bytes free in total.
    pub(crate) fn free(&self) -> u64 {
        self.free
    }

    /// Bytes handed out.
    pub(crate) fn used(&self) -> u64 {
        self.len - self.free
    }

    /// The largest free block.
    pub(crate) fn largest(&self) -> u64 {
        self.blocks.values().copied().max().unwrap_or(0)
    }

    /// Number of free blocks (1 for an empty arena: a measure of
    /// fragmentation).
    pub(crate) fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Takes `need` bytes (a multiple of [`LINE`], not 0) from the first free
    /// block large enough; returns their offset.
    ///
    /// # Errors
    /// [`NoBlock`] if no free block is large enough; nothing changes then.
    pub(crate) fn alloc(&mut self, need: u64) -> Result<u64, NoBlock> {
        debug_assert!(
            need > 0 && need.is_multiple_of(LINE),
            "allocation of {need} bytes"
        );
        let found = self
            .blocks
            .iter()
            .find(|&(_, &len)| len >= need)
            .map(|(&off, &len)| (off, len));
        let Some((off, len)) = found else {
            return Err(NoBlock {
                free: self.free,
                largest: self.largest(),
            });
        };
        self.blocks.remove(&off);
        if len > need {
            self.blocks.insert(off + need, len - need);
        }
        self.free -= need;
        Ok(off)
    }

    /// Gives back the `len` bytes at `off` that [`alloc`](Self::alloc)
    /// handed out, merging them with the free blocks around them.
    ///
    /// # Panics
    /// If the block was not handed out (overlaps a free block or lies outside
    /// the arena): a daemon bug.
    pub(crate) fn release(&mut self, off: u64, len: u64) {
        assert!(
            len > 0
                && len.is_multiple_of(LINE)
                && off >= self.start
                && off + len <= self.start + self.len,
            "freeing {len} bytes at {off}, outside the arena"
        );
        let mut start = off;
        let mut end = off + len;
        if let Some((&p, &plen)) = self.blocks.range(..off).next_back() {
            assert!(p + plen <= off, "double free at {off}");
            if p + plen == off {
                self.blocks.remove(&p);
                start = p;
            }
        }
        if let Some((&n, &nlen)) = self.blocks.range(off..).next() {
            assert!(n >= end, "double free at {off}");
            if n == end {
                self.blocks.remove(&n);
                end = n + nlen;
            }
        }
        self.blocks.insert(start, end - start);
        self.free += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: u64 = LINE;

    #[test]
    fn first_fit_and_rounding() {
        // Start rounded up to a line, the end down.
        let mut f = FreeList::new(100, 10 * L + 20);
        assert_eq!((f.free(), f.used(), f.blocks()), (9 * L, 0, 1));
        assert_eq!(f.alloc(2 * L), Ok(L));
        assert_eq!(f.alloc(3 * L), Ok(3 * L));
        assert_eq!(f.free(), 4 * L);
        assert_eq!(
            f.alloc(5 * L),
            Err(NoBlock {
                free: 4 * L,
                largest: 4 * L
            })
        );
        assert_eq!(f.alloc(4 * L), Ok(6 * L));
        assert_eq!(f.free(), 0);
        assert_eq!(
            f.alloc(L),
            Err(NoBlock {
                free: 0,
                largest: 0
            })
        );
    }

    #[test]
    fn coalesces_both_sides() {
        let mut f = FreeList::new(0, 8 * L);
        let a = f.alloc(2 * L).unwrap();
        let b = f.alloc(2 * L).unwrap();
        let c = f.alloc(2 * L).unwrap();
        let _d = f.alloc(2 * L).unwrap();
        f.release(a, 2 * L);
        f.release(c, 2 * L);
        // Two holes of 2 lines: 4 free, but no block of 3.
        assert_eq!((f.free(), f.largest(), f.blocks()), (4 * L, 2 * L, 2));
        assert_eq!(
            f.alloc(3 * L),
            Err(NoBlock {
                free: 4 * L,
                largest: 2 * L
            })
        );
        // Freeing b merges a, b and c into one block of 6 lines.
        f.release(b, 2 * L);
        assert_eq!((f.free(), f.largest(), f.blocks()), (6 * L, 6 * L, 1));
        assert_eq!(f.alloc(6 * L), Ok(a));
    }

    #[test]
    fn freed_space_serves_other_sizes() {
        let mut f = FreeList::new(0, 16 * L);
        let big = f.alloc(16 * L).unwrap();
        f.release(big, 16 * L);
        // The space of one large body holds several small ones of mixed sizes.
        let small: Vec<u64> = [1, 3, 2, 5, 4, 1]
            .iter()
            .map(|&n| f.alloc(n * L).unwrap())
            .collect();
        assert_eq!(f.free(), 0);
        for (off, n) in small.iter().zip([1, 3, 2, 5, 4, 1]) {
            f.release(*off, n * L);
        }
        // ... and, all freed in any order, merge back into one.
        assert_eq!((f.free(), f.blocks()), (16 * L, 1));
        assert_eq!(f.alloc(16 * L), Ok(big));
    }

    #[test]
    fn many_cycles_never_leak() {
        let mut f = FreeList::new(0, 64 * L);
        let mut live: Vec<(u64, u64)> = Vec::new();
        // A deterministic mix of sizes, creating and freeing far more than
        // the arena holds at once.
        let mut x = 12345u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (x >> 33) % 8 + 1;
            if live.len() > 4 || (x >> 20).is_multiple_of(3) {
                if !live.is_empty() {
                    let (off, len) = live.swap_remove(((x >> 40) as usize) % live.len());
                    f.release(off, len);
                }
            } else if let Ok(off) = f.alloc(n * L) {
                live.push((off, n * L));
            }
        }
        for (off, len) in live {
            f.release(off, len);
        }
        assert_eq!((f.free(), f.blocks()), (64 * L, 1));
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_is_caught() {
        let mut f = FreeList::new(0, 4 * L);
        let a = f.alloc(L).unwrap();
        f.release(a, L);
        f.release(a, L);
    }
}
