//! The key table: which row of the windows table holds which (device, sensor), which rows are
//! free, and which key to evict when all `max_keys` rows are taken.
//!
//! The rows themselves are the only persistent truth (each carries its key's text ids and a
//! check of its key's hash, see [`crate::row`] and [`crate::strings`]). Everything here is
//! derived from them and lives on the heap: it is rebuilt from the rows on every start
//! ([`Keys::rebuild`], one pass over the rows), which also re-validates every row. So a kill
//! can never leave this index inconsistent with the rows, and the index needs no crash
//! protocol of its own.
//!
//! - **Index**: from a key's hash to its row ([`crate::key_index`]: 4 bytes per slot, load
//!   factor ≤ 0.8).
//! - **Free rows**: a bit set; the lowest free row is allocated first, so the rows in use stay
//!   packed at the start of the table and sweeps stop at the high-water mark.
//! - **Eviction order**: least recently seen first, at pane granularity (a row's `head`). The
//!   oldest rows are found by a scan that keeps a batch of candidates, so a table that stays full
//!   pays one scan per batch of insertions, not one per insertion.

use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use crate::key_index::KeyIndex;
use crate::row::{self, RowShape};

/// The in-memory index over the rows of the windows table.
pub struct Keys {
    index: KeyIndex,
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
    /// Rows whose key word failed validation; freed.
    pub invalid: u32,
    /// Rows holding a key an earlier row already holds; freed.
    pub duplicate: u32,
}

impl Keys {
    /// Indexes the rows of `words` (`max_keys` rows of `shape`), freeing (clearing the key
    /// word of) every row that is not valid, holds a key twice, or claims a pane newer than `sealed`.
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
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x61676764u64);
        let mut keys = Keys {
            index: KeyIndex::new(max_keys, seed),
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
            let h = row::header(words, r, shape);
            if !h.in_use() {
                keys.free[r / 64] |= 1 << (r % 64);
                continue;
            }
            let valid = h.valid_tag(strings).filter(|_| h.head(sealed).is_some());
            if let Some(tag) = valid {
                let (d, s) = h.key_text(strings);
                if keys.find(words, strings, tag, d, s).is_some() {
                    report.duplicate += 1;
                } else {
                    keys.insert(tag, r as u32);
                    keys.live += 1;
                    keys.high_water = r as u32 + 1;
                    continue;
                }
            } else {
                report.invalid += 1;
            }
            row::clear_key(words, r, shape);
            keys.free[r / 64] |= 1 << (r % 64);
        }
        report.live = keys.live;
        (keys, report)
    }

    /// The row holding (device, sensor), whose hash is `tag` (`strings`: the string table).
    #[inline]
    pub fn find(&self, words: &[u64], strings: &[u64], tag: u64, device: &[u8], sensor: &[u8]) -> Option<u32> {
        self.index.find(words, strings, self.shape, tag, device, sensor)
    }

    /// Starts loading the index slot where the search for `tag` begins (a hint).
    #[inline]
    pub fn prefetch_slot(&self, tag: u64) {
        self.index.prefetch_slot(tag);
    }

    /// The row in the index slot where the search for `tag` begins, if any: most likely the
    /// key's row, for prefetching it (not verified; use [`Keys::find`] for the answer).
    #[inline]
    pub fn likely_row(&self, tag: u64) -> Option<usize> {
        self.index.likely_row(tag)
    }

    /// Enters `row` (holding a key whose hash is `tag`) into the index.
    fn insert(&mut self, tag: u64, row: u32) {
        self.index.insert(tag, row);
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

    /// Records that `row`, taken with [`Keys::alloc`], now holds a key with hash `tag` (its key
    /// word is written).
    pub fn added(&mut self, tag: u64, row: u32) {
        self.insert(tag, row);
        self.live += 1;
    }

    /// Removes `row`, which held a key with hash `tag`, from the index and frees it. The row's
    /// own key word must already be cleared (or about to be reused); `words` and `strings`
    /// supply the other rows' text, whose hashes place them in the backward shift.
    pub fn removed(&mut self, words: &[u64], strings: &[u64], tag: u64, row: u32) {
        self.index.remove(words, strings, self.shape, tag, row);
        let r = row as usize;
        self.free[r / 64] |= 1 << (r % 64);
        self.free_hint = self.free_hint.min(r / 64);
        self.live -= 1;
    }

    /// The least recently seen row (smallest `head`; `open`: the open pane), to evict when the
    /// table is full.
    pub fn lru_victim(&mut self, words: &[u64], open: u64) -> Option<u32> {
        for refilled in [false, true] {
            while let Some((head, r)) = self.candidates.pop() {
                let h = row::header(words, r as usize, self.shape);
                if h.in_use() && h.head(open) == Some(head) {
                    return Some(r);
                }
            }
            if refilled {
                break;
            }
            self.refill(words, open);
        }
        None
    }

    /// Finds the `batch` oldest rows.
    fn refill(&mut self, words: &[u64], open: u64) {
        let mut heap = BinaryHeap::from(std::mem::take(&mut self.candidates));
        heap.clear();
        for r in 0..self.high_water as usize {
            let h = row::header(words, r, self.shape);
            let Some(head) = h.head(open).filter(|_| h.in_use()) else {
                continue;
            };
            let entry = (head, r as u32);
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
        self.index.heap_bytes() + self.free.capacity() * 8 + self.batch * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{key_hash, row_words, RowHeader, RowMut, RowShape};
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
        let tag = key_hash(dev.as_bytes(), b"s");
        let (d, s) = (texts.id(dev), texts.id("s"));
        let row = RowMut::new(words, r, P);
        row.header.set_head(head);
        row.header.set_key(RowHeader::key_word(d, s, tag));
        tag
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
        // A row naming another text than its check's: refused.
        let d = row::header(&words, 5, P).device();
        let x = texts.id("x");
        RowMut::new(&mut words, 5, P)
            .header
            .set_key(RowHeader::key_word(d, x, key_hash(b"d", b"s")));
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
            assert!(!row::in_use(&words, r, P), "row {r} freed");
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
                row::clear_key(&mut words, r as usize, P);
                keys.removed(&words, &texts.words, tag, r);
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
            let r = keys.lru_victim(words, 100)?;
            let tag = row::header(words, r as usize, P).tag(&texts.words);
            row::clear_key(words, r as usize, P);
            keys.removed(words, &texts.words, tag, r);
            Some(r)
        };
        assert_eq!(evict(&mut keys, &mut words), Some(1));
        // A candidate seen again since the scan is skipped.
        RowMut::new(&mut words, 3, P).header.set_head(10);
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
