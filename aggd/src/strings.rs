//! Interned key text: the device, sensor and unit strings of the rows, each stored once in the
//! `strings` table segment and named by a small id in every row that uses it (10 sensors of one
//! device share its text).
//!
//! The segment is an array of slots of [`SLOT_WORDS`] words: the text's length, then up to
//! [`TEXT_MAX`] bytes of text. Slot 0 is never written: id 0 is the empty text (a unit may be
//! empty; ids may not).
//!
//! # Crash safety: the rows are the truth
//!
//! Nothing here but the slots' text is persistent. Which slots are in use, their reference
//! counts and the text → id index live on the heap ([`Interner`]) and are rebuilt on start from
//! the valid rows, like the key index ([`crate::keys`]). So:
//!
//! - a slot is written completely (text, fence, then length) before any row that names it gets
//!   its tag, so a valid row never names a torn slot;
//! - a slot is rewritten only when no row names it (its count is 0), so a valid row's text never
//!   changes under it;
//! - a kill after a slot was written but before a row naming it was tagged leaves a slot that no
//!   valid row names: the rebuild finds it free.
//!
//! Eviction releases a row's ids; a slot whose count reaches 0 leaves the index and is reused.
//! That is O(1) per eviction: no scan, on the hot path or elsewhere.

use std::hash::BuildHasher;
use std::sync::atomic::{compiler_fence, Ordering};

use crate::row::{key_hash, mix64, ID_BITS, ID_MAX};

/// Words of one slot.
pub const SLOT_WORDS: usize = 7;
/// Longest text a slot holds (the longest id, a device's).
pub const TEXT_MAX: usize = (SLOT_WORDS - 1) * 8;

const _: () =
    assert!(TEXT_MAX >= records::DEVICE_MAX && TEXT_MAX >= records::SENSOR_MAX && TEXT_MAX >= records::UNIT_MAX);

/// Slots of the segment for a table of `max_keys` rows: three texts per row, one more that a
/// fold may intern before it releases the one it replaces, and slot 0.
pub const fn slots_for(max_keys: u32) -> u64 {
    3 * max_keys as u64 + 2
}

/// Words of the segment for a table of `max_keys` rows.
pub const fn words_for(max_keys: u32) -> u64 {
    slots_for(max_keys) * SLOT_WORDS as u64
}

/// The text of slot `id` (empty for id 0, an id out of range, or a length out of range).
#[inline]
pub fn text(words: &[u64], id: u32) -> &[u8] {
    let start = id as usize * SLOT_WORDS;
    let Some(slot) = words.get(start..start + SLOT_WORDS) else {
        return &[];
    };
    let len = slot[0] as usize;
    if len > TEXT_MAX {
        return &[];
    }
    &bytemuck::cast_slice::<u64, u8>(&slot[1..])[..len]
}

/// Starts loading slot `id`'s first line (a hint).
#[inline]
pub fn prefetch(words: &[u64], id: u32) {
    if let Some(x) = words.get(id as usize * SLOT_WORDS) {
        crate::prefetch::line(x);
    }
}

/// The heap side of the string table: reference counts, free slots, and the text → id index.
pub struct Interner {
    /// Open addressing, linear probing, at most half full: `fingerprint << 24 | id` (ids are 24
    /// bits; the fingerprint is the hash's top 8 bits), 0 = empty. An entry's home slot is
    /// recomputed from its text when entries move.
    index: Vec<u32>,
    seed: u64,
    indexed: usize,
    /// Reference counts by id (up to the highest id used).
    refs: Vec<u32>,
    /// Free ids below `refs.len()`.
    free: Vec<u32>,
    slots: u64,
}

impl Interner {
    /// Rebuilds the counts from the ids the valid rows name (`named`, one entry per use), over
    /// the segment's `words` of `slots` slots. Slots no row names are free.
    pub fn rebuild(words: &[u64], slots: u64, named: impl Iterator<Item = u32>) -> Interner {
        let mut s = Interner {
            index: vec![0; 64],
            seed: std::collections::hash_map::RandomState::new().hash_one(0x7374_7273u64),
            indexed: 0,
            refs: vec![0; 1],
            free: Vec::new(),
            slots,
        };
        for id in named {
            if id == 0 {
                continue;
            }
            let i = id as usize;
            if i >= s.refs.len() {
                s.refs.resize(i + 1, 0);
            }
            s.refs[i] += 1;
        }
        for id in (1..s.refs.len() as u32).rev() {
            if s.refs[id as usize] == 0 {
                s.free.push(id);
            } else {
                let h = s.hash(text(words, id));
                if s.find_hashed(words, h, text(words, id)).is_none() {
                    s.insert(words, h, id);
                }
            }
        }
        s
    }

    #[inline]
    fn hash(&self, text: &[u8]) -> u32 {
        text_hash(self.seed, text)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The index entry of `id`, whose text's hash is `h`.
    #[inline]
    fn entry(h: u32, id: u32) -> u32 {
        (h & !ID_MAX) | id
    }

    fn find_hashed(&self, words: &[u64], h: u32, t: &[u8]) -> Option<u32> {
        let mut i = h as usize & self.mask();
        loop {
            let e = self.index[i];
            if e == 0 {
                return None;
            }
            if e >> ID_BITS == h >> ID_BITS && text(words, e & ID_MAX) == t {
                return Some(e & ID_MAX);
            }
            i = (i + 1) & self.mask();
        }
    }

    fn insert(&mut self, words: &[u64], h: u32, id: u32) {
        if (self.indexed + 1) * 2 > self.index.len() {
            let grown = vec![0; self.index.len() * 2];
            let old = std::mem::replace(&mut self.index, grown);
            for e in old.into_iter().filter(|&e| e != 0) {
                let id = e & ID_MAX;
                self.place(self.hash(text(words, id)), id);
            }
        }
        self.place(h, id);
        self.indexed += 1;
    }

    /// Enters `id`, whose text's hash is `h`, in the first free slot from its home.
    fn place(&mut self, h: u32, id: u32) {
        let mut i = h as usize & self.mask();
        while self.index[i] != 0 {
            i = (i + 1) & self.mask();
        }
        self.index[i] = Interner::entry(h, id);
    }

    /// The id of `t`, if interned.
    pub fn find(&self, words: &[u64], t: &[u8]) -> Option<u32> {
        if t.is_empty() {
            return Some(0);
        }
        self.find_hashed(words, self.hash(t), t)
    }

    /// The id of `t`, writing it into a free slot if it is not interned yet, with one more
    /// reference. `t` must be at most [`TEXT_MAX`] bytes (every id of a `Reading` is).
    pub fn intern(&mut self, words: &mut [u64], t: &[u8]) -> u32 {
        if t.is_empty() {
            return 0;
        }
        let h = self.hash(t);
        let id = match self.find_hashed(words, h, t) {
            Some(id) => id,
            None => {
                let id = self.alloc();
                let start = id as usize * SLOT_WORDS;
                let slot = &mut words[start..start + SLOT_WORDS];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut slot[1..]);
                bytes[..t.len()].copy_from_slice(t);
                bytes[t.len()..].fill(0);
                compiler_fence(Ordering::SeqCst);
                kill_point!();
                slot[0] = t.len() as u64;
                compiler_fence(Ordering::SeqCst);
                self.insert(words, h, id);
                id
            }
        };
        self.refs[id as usize] += 1;
        id
    }

    fn alloc(&mut self) -> u32 {
        if let Some(id) = self.free.pop() {
            return id;
        }
        let id = self.refs.len() as u32;
        assert!(
            u64::from(id) < self.slots,
            "the strings table is sized for three texts per row; it cannot be full"
        );
        self.refs.push(0);
        id
    }

    /// Drops one reference to `id`; at 0 its slot leaves the index and becomes free (its text
    /// stays until the slot is reused).
    pub fn release(&mut self, words: &[u64], id: u32) {
        let Some(n) = self.refs.get_mut(id as usize).filter(|n| id != 0 && **n > 0) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.free.push(id);
        let mask = self.mask();
        let mut i = self.hash(text(words, id)) as usize & mask;
        while self.index[i] & ID_MAX != id {
            if self.index[i] == 0 {
                return;
            }
            i = (i + 1) & mask;
        }
        let seed = self.seed;
        crate::probe::remove_at(
            &mut self.index,
            i,
            |e, j| j.wrapping_sub(text_hash(seed, text(words, e & ID_MAX)) as usize) & mask,
            |e, _| e,
        );
        self.indexed -= 1;
    }

    /// References to `id`.
    pub fn refs(&self, id: u32) -> u32 {
        self.refs.get(id as usize).copied().unwrap_or(0)
    }

    /// Texts interned (with at least one reference).
    pub fn live(&self) -> usize {
        self.indexed
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.index.capacity() * 4 + self.refs.capacity() * 4 + self.free.capacity() * 4
    }
}

/// A text's hash in the index: its home slot in the low bits, its fingerprint in the top 8.
#[inline]
fn text_hash(seed: u64, text: &[u8]) -> u32 {
    (mix64(key_hash(text, b"") ^ seed) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_shared_counted_and_freed() {
        let mut words = vec![0u64; words_for(4) as usize];
        let mut s = Interner::rebuild(&words, slots_for(4), std::iter::empty());
        let a = s.intern(&mut words, b"device-0001");
        let b = s.intern(&mut words, b"temp");
        assert_eq!(s.intern(&mut words, b"device-0001"), a, "shared");
        assert_eq!((s.refs(a), s.refs(b), s.live()), (2, 1, 2));
        assert_eq!(text(&words, a), b"device-0001");
        assert_eq!((s.intern(&mut words, b""), text(&words, 0)), (0, &b""[..]));
        s.release(&words, a);
        assert_eq!(s.find(&words, b"device-0001"), Some(a));
        s.release(&words, a);
        assert_eq!((s.find(&words, b"device-0001"), s.live()), (None, 1));
        // The freed slot is reused for the next new text.
        let c = s.intern(&mut words, b"another device id that is long: 48 bytes long!!!");
        assert_eq!(c, a);
        assert_eq!(text(&words, c).len(), 48);
        assert_eq!(s.find(&words, b"temp"), Some(b));
    }

    #[test]
    fn the_rebuild_counts_what_rows_name_and_frees_the_rest() {
        let mut words = vec![0u64; words_for(8) as usize];
        let mut s = Interner::rebuild(&words, slots_for(8), std::iter::empty());
        let ids: Vec<u32> = (0..6)
            .map(|i| s.intern(&mut words, format!("text{i}").as_bytes()))
            .collect();
        // Rows name ids 0, 2 (twice) and 5: 1, 3 and 4 were orphaned by a kill.
        let s = Interner::rebuild(&words, slots_for(8), [ids[0], ids[2], ids[2], ids[5], 0].into_iter());
        assert_eq!((s.refs(ids[0]), s.refs(ids[2]), s.refs(ids[1])), (1, 2, 0));
        assert_eq!(s.find(&words, b"text2"), Some(ids[2]));
        assert_eq!(s.find(&words, b"text1"), None);
        assert_eq!(s.live(), 3);
    }

    #[test]
    fn many_texts_grow_the_index_and_deletions_keep_the_rest_findable() {
        let n = 500u32;
        let mut words = vec![0u64; words_for(n) as usize];
        let mut s = Interner::rebuild(&words, slots_for(n), std::iter::empty());
        let ids: Vec<u32> = (0..n)
            .map(|i| s.intern(&mut words, format!("d{i}").as_bytes()))
            .collect();
        for i in (0..n).step_by(3) {
            s.release(&words, ids[i as usize]);
        }
        for i in 0..n {
            let found = s.find(&words, format!("d{i}").as_bytes());
            assert_eq!(found.is_some(), i % 3 != 0, "d{i}");
        }
        assert_eq!(s.live(), (n - n.div_ceil(3)) as usize);
    }
}
