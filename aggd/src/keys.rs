//! The key table: which row of the windows table holds which (device, sensor), which rows are
//! free, and which key to evict when all `max_keys` rows are taken.
//!
//! The rows themselves are the only persistent truth (each carries its key's text ids and
//! validity tag, see [`crate::row`] and [`crate::strings`]). Everything here is derived from them and lives on the heap: it is
//! rebuilt from the rows on every start ([`Keys::rebuild`], one pass over the rows), which also
//! re-validates every row. So a kill can never leave this index inconsistent with the rows, and
//! the index needs no crash protocol of its own.
//!
//! - **Index**: open addressing with linear probing, `u32` slots (`row + 1`, 0 = empty), at
//!   least twice as many slots as `max_keys` (load factor ≤ ½), a per-process random seed mixed
//!   into the probe start. Deletion shifts entries back (no tombstones).
//! - **Free rows**: a bit set; the lowest free row is allocated first, so the rows in use stay
//!   packed at the start of the table and sweeps stop at the high-water mark.
//! - **Eviction order**: least recently seen first, at pane granularity (a row's `head`). The
//!   oldest rows are found by a scan that keeps a batch of candidates, so a table that stays full
//!   pays one scan per batch of insertions, not one per insertion.

use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use crate::row::{self, mix64, RowShape};

/// The in-memory index over the rows of the windows table.
pub struct Keys {
    index: Vec<u32>,
    mask: usize,
    seed: u64,
    /// Bit set: 1 = free row.
    free: Vec<u64>,
    /// No free bit before this word.
    free_hint: usize,
    live: u32,
    high_water: u32,
    max_keys: u32,
    shape: RowShape,
    /// Eviction candidates `(head, row)`, oldest last.
    candidates: Vec<(u64, u32)>,
    batch: usize,
}

/// What [`Keys::rebuild`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Valid rows, now indexed.
    pub live: u32,
    /// Rows with a tag that failed validation; freed.
    pub invalid: u32,
    /// Rows holding a key an earlier row already holds; freed.
    pub duplicate: u32,
}

impl Keys {
    /// Indexes the rows of `words` (`max_keys` rows of `shape`), freeing (clearing the tag
    /// of) every row that is not valid, holds a key twice, or claims a pane newer than `sealed`.
    /// Rows from `rows_used` on were never used and are not read (so a new table's pages stay
    /// untouched).
    pub fn rebuild(
        words: &mut [u64],
        strings: &[u64],
        max_keys: u32,
        shape: RowShape,
        sealed: u64,
        rows_used: u64,
    ) -> (Keys, Rebuilt) {
        let slots = (max_keys as usize * 2).next_power_of_two().max(2);
        let mut keys = Keys {
            index: vec![0; slots],
            mask: slots - 1,
            seed: std::collections::hash_map::RandomState::new().hash_one(0x61676764u64),
            free: vec![0; (max_keys as usize).div_ceil(64)],
            free_hint: 0,
            live: 0,
            high_water: 0,
            max_keys,
            shape,
            candidates: Vec::new(),
            batch: (max_keys as usize / 64).clamp(16, 4096),
        };
        let mut report = Rebuilt::default();
        let scanned = rows_used.min(u64::from(max_keys)) as usize;
        for r in scanned..max_keys as usize {
            keys.free[r / 64] |= 1 << (r % 64);
        }
        for r in 0..scanned {
            let (tag, ok) = {
                let h = row::header(words, r, shape);
                (u64::from(h.tag), h.is_valid(strings) && h.head <= sealed)
            };
            if tag == 0 {
                keys.free[r / 64] |= 1 << (r % 64);
                continue;
            }
            if !ok {
                report.invalid += 1;
            } else {
                let h = row::header(words, r, shape);
                let (d, s) = (
                    crate::strings::text(strings, h.device),
                    crate::strings::text(strings, h.sensor),
                );
                if keys.find(words, strings, tag, d, s).is_some() {
                    report.duplicate += 1;
                } else {
                    keys.insert(tag, r as u32);
                    keys.live += 1;
                    keys.high_water = r as u32 + 1;
                    continue;
                }
            }
            row::clear_tag(words, r, shape);
            keys.free[r / 64] |= 1 << (r % 64);
        }
        report.live = keys.live;
        (keys, report)
    }

    /// Where the search for `tag` begins (what `probe::remove_at`'s `home` computes too).
    #[inline]
    fn home(&self, tag: u64) -> usize {
        mix64(tag ^ self.seed) as usize & self.mask
    }

    /// The row holding (device, sensor), whose hash is `tag` (`strings`: the string table).
    #[inline]
    pub fn find(&self, words: &[u64], strings: &[u64], tag: u64, device: &[u8], sensor: &[u8]) -> Option<u32> {
        let mut i = self.home(tag);
        loop {
            let e = self.index[i];
            if e == 0 {
                return None;
            }
            let r = (e - 1) as usize;
            if row::tag(words, r, self.shape) == tag
                && row::header(words, r, self.shape).holds(strings, tag, device, sensor)
            {
                return Some(e - 1);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Starts loading the index slot where the search for `tag` begins (a hint).
    #[inline]
    pub fn prefetch_slot(&self, tag: u64) {
        crate::prefetch::line(&self.index[self.home(tag)]);
    }

    /// The row in the index slot where the search for `tag` begins, if any: most likely the
    /// key's row, for prefetching it (not verified; use [`Keys::find`] for the answer).
    #[inline]
    pub fn likely_row(&self, tag: u64) -> Option<usize> {
        self.index[self.home(tag)].checked_sub(1).map(|r| r as usize)
    }

    /// Enters `row` (holding a key whose hash is `tag`) into the index.
    fn insert(&mut self, tag: u64, row: u32) {
        let mut i = self.home(tag);
        while self.index[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.index[i] = row + 1;
    }

    /// Takes the lowest free row, or `None` if all `max_keys` are in use.
    pub fn alloc(&mut self) -> Option<u32> {
        while self.free_hint < self.free.len() {
            let bits = self.free[self.free_hint];
            if bits != 0 {
                let b = bits.trailing_zeros() as usize;
                let r = self.free_hint * 64 + b;
                if r >= self.max_keys as usize {
                    return None;
                }
                self.free[self.free_hint] &= !(1 << b);
                self.high_water = self.high_water.max(r as u32 + 1);
                return Some(r as u32);
            }
            self.free_hint += 1;
        }
        None
    }

    /// Records that `row`, taken with [`Keys::alloc`], now holds a key with hash `tag` (its tag
    /// is written).
    pub fn added(&mut self, tag: u64, row: u32) {
        self.insert(tag, row);
        self.live += 1;
    }

    /// Removes `row`, which held a key with hash `tag`, from the index and frees it. The row's
    /// own tag must already be cleared (or about to be reused); `words` supplies the other rows'
    /// tags for the backward shift.
    pub fn removed(&mut self, words: &[u64], tag: u64, row: u32) {
        let mut i = self.home(tag);
        while self.index[i] != row + 1 {
            debug_assert_ne!(self.index[i], 0, "row {row} is not indexed");
            if self.index[i] == 0 {
                return;
            }
            i = (i + 1) & self.mask;
        }
        let (seed, shape) = (self.seed, self.shape);
        crate::probe::remove_at(&mut self.index, i, |e| {
            mix64(row::tag(words, (e - 1) as usize, shape) ^ seed) as usize
        });
        let r = row as usize;
        self.free[r / 64] |= 1 << (r % 64);
        self.free_hint = self.free_hint.min(r / 64);
        self.live -= 1;
    }

    /// The least recently seen row (smallest `head`), to evict when the table is full.
    pub fn lru_victim(&mut self, words: &[u64]) -> Option<u32> {
        for refilled in [false, true] {
            while let Some((head, r)) = self.candidates.pop() {
                let h = row::header(words, r as usize, self.shape);
                if h.tag != 0 && h.head == head {
                    return Some(r);
                }
            }
            if refilled {
                break;
            }
            self.refill(words);
        }
        None
    }

    /// Finds the `batch` oldest rows.
    fn refill(&mut self, words: &[u64]) {
        let mut heap = BinaryHeap::from(std::mem::take(&mut self.candidates));
        heap.clear();
        for r in 0..self.high_water as usize {
            if row::tag(words, r, self.shape) == 0 {
                continue;
            }
            let entry = (row::header(words, r, self.shape).head, r as u32);
            if heap.len() < self.batch {
                heap.push(entry);
            } else if heap.peek().is_some_and(|top| entry < *top) {
                heap.pop();
                heap.push(entry);
            }
        }
        let mut v = heap.into_sorted_vec();
        v.reverse();
        self.candidates = v;
    }

    /// Rows from this one up are all free: sweeps stop here.
    pub fn high_water(&self) -> u32 {
        self.high_water
    }

    /// Lowers the high-water mark after a sweep found no valid row at or above `hw`.
    pub fn shrink_high_water(&mut self, hw: u32) {
        self.high_water = self.high_water.min(hw);
    }

    /// Keys tracked.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Heap bytes held by the index, the free set and the eviction candidates.
    pub fn heap_bytes(&self) -> usize {
        self.index.capacity() * 4 + self.free.capacity() * 8 + self.batch * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{key_hash, row_words, RowMut, RowShape};
    use crate::strings;

    const P: RowShape = RowShape::full(2);

    /// A string table for the tests' rows.
    struct Texts {
        words: Vec<u64>,
        interner: strings::Interner,
    }

    impl Texts {
        fn new() -> Texts {
            let words = vec![0u64; strings::words_for(100) as usize];
            let interner = strings::Interner::rebuild(&words, strings::slots_for(100), std::iter::empty());
            Texts { words, interner }
        }

        fn id(&mut self, text: &str) -> u32 {
            self.interner.intern(&mut self.words, text.as_bytes())
        }
    }

    fn put(words: &mut [u64], texts: &mut Texts, r: usize, dev: &str, head: u64) -> u64 {
        let row = RowMut::new(words, r, P);
        (row.header.device, row.header.sensor) = (texts.id(dev), texts.id("s"));
        row.header.head = head;
        row.header.tag = key_hash(dev.as_bytes(), b"s") as u32;
        u64::from(row.header.tag)
    }

    #[test]
    fn rebuild_indexes_valid_rows_and_frees_the_rest() {
        let mut words = vec![0u64; 6 * row_words(P)];
        let mut texts = Texts::new();
        put(&mut words, &mut texts, 0, "a", 1);
        put(&mut words, &mut texts, 2, "b", 1);
        put(&mut words, &mut texts, 3, "a", 1); // duplicate of row 0
        put(&mut words, &mut texts, 4, "c", 99); // newer than sealed: impossible, so corrupt
        put(&mut words, &mut texts, 5, "d", 1);
        RowMut::new(&mut words, 5, P).header.sensor = texts.id("x"); // torn: tag no longer matches
        let (mut keys, report) = Keys::rebuild(&mut words, &texts.words, 6, P, 10, 6);
        assert_eq!(
            report,
            Rebuilt {
                live: 2,
                invalid: 2,
                duplicate: 1
            }
        );
        assert_eq!(
            keys.find(&words, &texts.words, key_hash(b"a", b"s"), b"a", b"s"),
            Some(0)
        );
        assert_eq!(
            keys.find(&words, &texts.words, key_hash(b"b", b"s"), b"b", b"s"),
            Some(2)
        );
        assert_eq!(keys.find(&words, &texts.words, key_hash(b"c", b"s"), b"c", b"s"), None);
        for r in [3, 4, 5] {
            assert_eq!(row::tag(&words, r, P), 0, "row {r} freed");
        }
        assert_eq!(keys.high_water(), 3);
        assert_eq!(
            (keys.alloc(), keys.alloc(), keys.alloc(), keys.alloc(), keys.alloc()),
            (Some(1), Some(3), Some(4), Some(5), None)
        );
    }

    #[test]
    fn removal_keeps_every_other_key_findable() {
        // Many keys in a small index force long probe runs that wrap around.
        let n = 40u32;
        let mut words = vec![0u64; n as usize * row_words(P)];
        let mut texts = Texts::new();
        let (mut keys, _) = Keys::rebuild(&mut words, &texts.words, n, P, 0, 0);
        let names: Vec<String> = (0..n).map(|i| format!("dev{i}")).collect();
        for name in &names {
            let r = keys.alloc().unwrap();
            let tag = put(&mut words, &mut texts, r as usize, name, 0);
            keys.added(tag, r);
        }
        assert_eq!(keys.alloc(), None);
        for (i, name) in names.iter().enumerate() {
            if i % 3 == 0 {
                let tag = key_hash(name.as_bytes(), b"s");
                let r = keys.find(&words, &texts.words, tag, name.as_bytes(), b"s").unwrap();
                row::clear_tag(&mut words, r as usize, P);
                keys.removed(&words, tag, r);
            }
        }
        for (i, name) in names.iter().enumerate() {
            let found = keys.find(
                &words,
                &texts.words,
                key_hash(name.as_bytes(), b"s"),
                name.as_bytes(),
                b"s",
            );
            assert_eq!(found.is_some(), i % 3 != 0, "{name}");
        }
        assert_eq!(keys.live(), n - n.div_ceil(3));
        assert_eq!(keys.alloc(), Some(0), "lowest free row first");
    }

    #[test]
    fn the_least_recently_seen_row_is_the_victim() {
        let mut words = vec![0u64; 4 * row_words(P)];
        let mut texts = Texts::new();
        let (mut keys, _) = Keys::rebuild(&mut words, &texts.words, 4, P, 100, 0);
        for (i, head) in [7u64, 3, 9, 5].into_iter().enumerate() {
            let r = keys.alloc().unwrap();
            let tag = put(&mut words, &mut texts, r as usize, &format!("k{i}"), head);
            keys.added(tag, r);
        }
        let evict = |keys: &mut Keys, words: &mut Vec<u64>| {
            let r = keys.lru_victim(words)?;
            let tag = row::tag(words, r as usize, P);
            row::clear_tag(words, r as usize, P);
            keys.removed(words, tag, r);
            Some(r)
        };
        assert_eq!(evict(&mut keys, &mut words), Some(1));
        // A candidate seen again since the scan is skipped.
        RowMut::new(&mut words, 3, P).header.head = 10;
        assert_eq!(evict(&mut keys, &mut words), Some(0));
        assert_eq!(evict(&mut keys, &mut words), Some(2));
        assert_eq!(
            evict(&mut keys, &mut words),
            Some(3),
            "a fresh scan when the batch runs out"
        );
        assert_eq!(evict(&mut keys, &mut words), None);
    }
}
