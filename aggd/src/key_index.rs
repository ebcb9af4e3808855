//! The key index: from a key's hash to the row that holds it, on the heap, rebuilt from the rows
//! on every start (see [`crate::keys`]).
//!
//! Open addressing with linear probing over `max_keys + ⌈max_keys / 4⌉ + 1` `u32` slots (load
//! factor ≤ 0.8; any table size: the probe starts at a multiply-shift of the hash, not a mask).
//! A slot is 0 when empty; otherwise, from the low bits up:
//!
//! | bits | contents |
//! |---|---|
//! | `row_bits` (enough for `max_keys`) | `row + 1` |
//! | 5 | the entry's distance from its home slot, 31 meaning "31 or more" |
//! | the rest | a fingerprint of the key's hash (7 bits at 1M keys, at least 4) |
//!
//! A lookup reads a row only for an entry whose fingerprint matches and whose home is the key's
//! (at 1M keys, about one row in 128 probed in vain among the few entries with the same home).
//! Deletion shifts the later entries of the run back (no tombstones; `probe::remove_at`), using
//! the distances; only
//! an entry 31 or more slots from home has its home recomputed from its row's text. A
//! per-process random seed is mixed into the hash.

use crate::probe;
use crate::row::{self, mix64, RowShape};

/// Bits of an entry's distance from home.
const DIST_BITS: u32 = 5;
/// The stored distance meaning "this many or more": the home must be recomputed.
const DIST_FAR: u32 = (1 << DIST_BITS) - 1;

/// The index from key hashes to rows.
pub struct KeyIndex {
    slots: Vec<u32>,
    layout: Layout,
}

/// How entries are placed and encoded (copied into the deletion's closures).
#[derive(Clone, Copy)]
struct Layout {
    /// Slots in the table.
    len: usize,
    /// Bits of `row + 1`.
    row_bits: u32,
    seed: u64,
}

impl Layout {
    #[inline]
    fn row_mask(self) -> u32 {
        (1 << self.row_bits) - 1
    }

    /// The row of (non-empty) entry `e`.
    #[inline]
    fn row_of(self, e: u32) -> u32 {
        (e & self.row_mask()) - 1
    }

    /// The stored distance of entry `e` (`DIST_FAR`: that or more).
    #[inline]
    fn dist_of(self, e: u32) -> u32 {
        (e >> self.row_bits) & DIST_FAR
    }

    /// Entry `e` with its distance set to `dist` (saturated).
    #[inline]
    fn with_dist(self, e: u32, dist: usize) -> u32 {
        (e & !(DIST_FAR << self.row_bits)) | (dist.min(DIST_FAR as usize) as u32) << self.row_bits
    }

    /// The home slot of hash `tag`, and the fingerprint its entry carries.
    #[inline]
    fn home(self, tag: u64) -> (usize, u32) {
        let m = mix64(tag ^ self.seed);
        let home = ((m >> 32) * self.len as u64) >> 32;
        (home as usize, m as u32 & (u32::MAX << (self.row_bits + DIST_BITS)))
    }
}

impl KeyIndex {
    /// An empty index for up to `max_keys` rows (at most [`row::MAX_KEYS`]).
    pub fn new(max_keys: u32, seed: u64) -> KeyIndex {
        debug_assert!(max_keys <= row::MAX_KEYS);
        let len = max_keys as usize + (max_keys as usize).div_ceil(4) + 1;
        KeyIndex {
            slots: vec![0; len],
            layout: Layout {
                len,
                row_bits: u32::BITS - max_keys.leading_zeros(),
                seed,
            },
        }
    }

    /// The row holding (device, sensor), whose hash is `tag`, in `words` (rows of `shape`)
    /// naming text in `strings`.
    #[inline]
    pub fn find(
        &self,
        words: &[u64],
        strings: &[u64],
        shape: RowShape,
        tag: u64,
        device: &[u8],
        sensor: &[u8],
    ) -> Option<u32> {
        let l = self.layout;
        let (mut i, fingerprint) = l.home(tag);
        // The entry this key would have here, without its row: fingerprint and distance, so one
        // masked compare tests both. The distance field is stepped in place, up to DIST_FAR.
        let (row_mask, one, far) = (l.row_mask(), 1 << l.row_bits, DIST_FAR << l.row_bits);
        let mut want = fingerprint;
        loop {
            let e = self.slots[i];
            if e == 0 {
                return None;
            }
            if e & !row_mask == want {
                let r = l.row_of(e);
                if row::header(words, r as usize, shape).holds(strings, tag, device, sensor) {
                    return Some(r);
                }
            }
            i = probe::next(i, l.len);
            if want & far != far {
                want += one;
            }
        }
    }

    /// Enters `row`, holding a key whose hash is `tag`.
    pub fn insert(&mut self, tag: u64, row: u32) {
        let l = self.layout;
        let (home, fingerprint) = l.home(tag);
        let mut i = home;
        while self.slots[i] != 0 {
            i = probe::next(i, l.len);
        }
        self.slots[i] = l.with_dist(fingerprint | (row + 1), probe::distance(home, i, l.len));
    }

    /// Removes `row`, which held a key whose hash is `tag`. `words` and `strings` give the
    /// other rows' text, for the rare entry whose home must be recomputed.
    pub fn remove(&mut self, words: &[u64], strings: &[u64], shape: RowShape, tag: u64, row: u32) {
        let l = self.layout;
        let (mut i, _) = l.home(tag);
        while self.slots[i] & l.row_mask() != row + 1 {
            debug_assert_ne!(self.slots[i], 0, "row {row} is not indexed");
            if self.slots[i] == 0 {
                return;
            }
            i = probe::next(i, l.len);
        }
        let dist = |e: u32, j: usize| match l.dist_of(e) {
            DIST_FAR => {
                let tag = row::header(words, l.row_of(e) as usize, shape).tag(strings);
                probe::distance(l.home(tag).0, j, l.len)
            }
            d => d as usize,
        };
        probe::remove_at(&mut self.slots, i, dist, |e, d| l.with_dist(e, d));
    }

    /// Starts loading the slot where the search for `tag` begins (a hint).
    #[inline]
    pub fn prefetch_slot(&self, tag: u64) {
        crate::prefetch::line(&self.slots[self.layout.home(tag).0]);
    }

    /// The row in the slot where the search for `tag` begins, if any: most likely the key's
    /// row, for prefetching it (not verified).
    #[inline]
    pub fn likely_row(&self, tag: u64) -> Option<usize> {
        (self.slots[self.layout.home(tag).0] & self.layout.row_mask())
            .checked_sub(1)
            .map(|r| r as usize)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{key_hash, row_words, RowHeader, RowMut, RowShape};
    use crate::strings;

    const P: RowShape = RowShape::full(1);

    /// Rows holding the keys `names[i]`/`s`, and their text.
    fn rows(names: &[String]) -> (Vec<u64>, Vec<u64>) {
        let n = names.len() as u32;
        let mut words = vec![0u64; names.len() * row_words(P)];
        let mut texts = vec![0u64; strings::words_for(n) as usize];
        let mut interner = strings::Interner::rebuild(&texts, strings::slots_for(n), std::iter::empty());
        let s = interner.intern(&mut texts, b"s");
        for (i, name) in names.iter().enumerate() {
            let d = interner.intern(&mut texts, name.as_bytes());
            RowMut::new(&mut words, i, P)
                .header
                .set_key(RowHeader::key_word(d, s, key_hash(name.as_bytes(), b"s")));
        }
        (words, texts)
    }

    fn tag(name: &str) -> u64 {
        key_hash(name.as_bytes(), b"s")
    }

    #[test]
    fn runs_past_the_stored_distance_are_found_and_shifted_exactly() {
        // 200 keys: 45 that share one home slot (a run far longer than the 31 slots a distance
        // can say, so removal must recompute homes from the text) and 155 others.
        let (max_keys, seed) = (200u32, 7);
        let sizing = KeyIndex::new(max_keys, seed);
        let crowded = sizing.layout.home(tag("d0")).0;
        let (mut same, mut other) = (Vec::new(), Vec::new());
        for i in 0.. {
            let name = format!("d{i}");
            if sizing.layout.home(tag(&name)).0 == crowded {
                same.push(name);
            } else if other.len() < 155 {
                other.push(name);
            }
            if same.len() == 45 && other.len() == 155 {
                break;
            }
        }
        let names: Vec<String> = same
            .into_iter()
            .zip(other.iter().cloned())
            .flat_map(|(a, b)| [a, b])
            .chain(other[45..].iter().cloned())
            .collect();
        assert_eq!(names.len(), 200);
        let (words, texts) = rows(&names);
        let mut index = KeyIndex::new(max_keys, seed);
        for (r, name) in names.iter().enumerate() {
            index.insert(tag(name), r as u32);
        }
        let find = |index: &KeyIndex, r: usize| {
            let name = names[r].as_bytes();
            index.find(&words, &texts, P, tag(&names[r]), name, b"s")
        };
        assert!(index
            .slots
            .iter()
            .any(|&e| e != 0 && index.layout.dist_of(e) == DIST_FAR));
        for (r, name) in names.iter().enumerate() {
            assert_eq!(find(&index, r), Some(r as u32), "{name}");
        }
        let mut gone = vec![false; names.len()];
        for r in (0..names.len()).filter(|r| r % 4 != 3) {
            index.remove(&words, &texts, P, tag(&names[r]), r as u32);
            gone[r] = true;
            for k in 0..names.len() {
                let want = (!gone[k]).then_some(k as u32);
                assert_eq!(find(&index, k), want, "{} after removing {}", names[k], names[r]);
            }
            // Every stored distance is still exact (or "31 or more").
            for (slot, &e) in index.slots.iter().enumerate().filter(|(_, &e)| e != 0) {
                let (l, k) = (index.layout, index.layout.row_of(e) as usize);
                let dist = probe::distance(l.home(tag(&names[k])).0, slot, l.len);
                assert_eq!(l.dist_of(e) as usize, dist.min(DIST_FAR as usize), "{}", names[k]);
            }
        }
        assert_eq!(index.slots.iter().filter(|&&e| e != 0).count(), 50);
    }
}
