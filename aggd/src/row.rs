//! A key's row in the windows table: a 32-byte header (its validity tag, its newest pane, its
//! latest value, and the ids of its key's text in the string table) followed by its pane columns
//! (see [`crate::pane`]).
//!
//! | words | contents |
//! |---|---|
//! | 0 | `tag` (32 bits): 0 = free row; otherwise [`key_hash`] of the key (never 0); and the id of the unit text (0: empty) |
//! | 1 | `head`: the newest pane index this key has touched |
//! | 2 | `last`: the key's most recent value |
//! | 3 | ids of the device and the sensor text ([`crate::strings`]) |
//! | 4… | pane columns: `⌈P/2⌉ + k·P` words, `k` the `f64` columns the statistics need |
//!
//! The tag is the row's validity marker. A row is filled with everything else first and its tag
//! written last (after a compiler fence), and a row is freed by clearing its tag first, so a
//! process killed at any instruction leaves each row either free or complete. A row whose tag
//! does not match the hash of its key's text (torn by something else, foreign bytes, or text
//! ids that name nothing) is refused on attach.

use bytemuck::{Pod, Zeroable};

use crate::pane::{pane_words, Columns, Panes};
use crate::strings;

/// Words of the row header.
pub const HEADER_WORDS: usize = 4;

/// The layout of every row of a table: panes per row and the pane columns stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowShape {
    /// Panes per window.
    pub panes: usize,
    /// The optional pane columns stored.
    pub columns: Columns,
}

impl RowShape {
    /// Rows of `panes` panes with every column.
    pub const fn full(panes: usize) -> RowShape {
        RowShape {
            panes,
            columns: Columns::ALL,
        }
    }

    /// Words of one row.
    #[inline]
    pub const fn words(self) -> usize {
        HEADER_WORDS + pane_words(self.panes, self.columns)
    }
}

/// Words of one row of `shape`.
pub const fn row_words(shape: RowShape) -> usize {
    shape.words()
}

/// The fixed part of a row.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct RowHeader {
    /// 0 for a free row, else the key's hash.
    pub tag: u32,
    /// The unit text's id (of the key's latest reading; 0 for none). In the tag's word, so that
    /// freeing the row (one store of 0) leaves nothing to name.
    pub unit: u32,
    /// The newest pane index touched by this key.
    pub head: u64,
    /// The key's most recent value.
    pub last: f64,
    /// The device text's id.
    pub device: u32,
    /// The sensor text's id.
    pub sensor: u32,
}

const _: () = assert!(std::mem::size_of::<RowHeader>() == HEADER_WORDS * 8);

impl RowHeader {
    /// True if this row holds this key (`strings`: the string table's words).
    #[inline]
    pub fn holds(&self, strings: &[u64], tag: u64, device: &[u8], sensor: &[u8]) -> bool {
        u64::from(self.tag) == tag
            && strings::text(strings, self.device) == device
            && strings::text(strings, self.sensor) == sensor
    }

    /// True if the row is in use and complete: its ids name non-empty texts whose hash is the
    /// tag.
    pub fn is_valid(&self, strings: &[u64]) -> bool {
        let (d, s) = (strings::text(strings, self.device), strings::text(strings, self.sensor));
        self.tag != 0 && !d.is_empty() && !s.is_empty() && key_hash(d, s) == u64::from(self.tag)
    }

    /// The ids this row names (device, sensor, unit), for reference counting.
    #[inline]
    pub fn ids(&self) -> [u32; 3] {
        [self.device, self.sensor, self.unit]
    }
}

/// A row's header and panes, borrowed from the table's words.
pub struct RowMut<'a> {
    /// The header.
    pub header: &'a mut RowHeader,
    /// The pane columns.
    pub panes: Panes<'a>,
}

impl<'a> RowMut<'a> {
    /// Row `row` of `words`, rows of `shape`.
    #[inline]
    pub fn new(words: &'a mut [u64], row: usize, shape: RowShape) -> RowMut<'a> {
        let len = shape.words();
        let (head, rest) = words[row * len..(row + 1) * len].split_at_mut(HEADER_WORDS);
        let head: &mut [u64; HEADER_WORDS] = head.try_into().expect("header words");
        RowMut {
            header: bytemuck::cast_mut(head),
            panes: Panes::new(rest, shape.panes, shape.columns),
        }
    }
}

/// Row `row`'s header, read-only.
#[inline]
pub fn header(words: &[u64], row: usize, shape: RowShape) -> &RowHeader {
    let start = row * shape.words();
    let head: &[u64; HEADER_WORDS] = words[start..start + HEADER_WORDS].try_into().expect("header words");
    bytemuck::cast_ref(head)
}

/// Starts loading what folding a sample into pane `slot` of row `row` touches: the row's header
/// and that pane's words in each column. A hint: out-of-range rows are ignored.
#[inline]
pub fn prefetch(words: &[u64], row: usize, shape: RowShape, slot: usize) {
    let start = row * shape.words();
    let (panes, counts) = (shape.panes, start + HEADER_WORDS);
    let f64s = counts + panes.div_ceil(2);
    let mut lines = [
        start,
        start + 8,
        counts + slot / 2,
        usize::MAX,
        usize::MAX,
        usize::MAX,
        usize::MAX,
    ];
    for (i, line) in lines[3..3 + shape.columns.f64_columns()].iter_mut().enumerate() {
        *line = f64s + i * panes + slot;
    }
    for w in lines {
        if let Some(x) = words.get(w) {
            crate::prefetch::line(x);
        }
    }
}

/// Row `row`'s tag (one load, for sweeps).
#[inline]
pub fn tag(words: &[u64], row: usize, shape: RowShape) -> u64 {
    u64::from(header(words, row, shape).tag)
}

/// Frees row `row` with one store: clears its tag (and the unit id beside it).
#[inline]
pub fn clear_tag(words: &mut [u64], row: usize, shape: RowShape) {
    words[row * shape.words()] = 0;
}

/// The hash of a key, 32 bits and never 0: the row's validity tag. Fixed (not seeded), because it must be
/// recomputed to validate the row after a restart; the in-memory index mixes it with a per-process
/// seed. The lengths are hashed too, so ("ab", "c") and ("a", "bc") differ.
pub fn key_hash(device: &[u8], sensor: &[u8]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3u64 ^ ((device.len() as u64) << 8 | sensor.len() as u64);
    for part in [device, sensor] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h ^ u64::from_le_bytes(buf)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
        }
        h = h.rotate_left(17) ^ 0xA5A5_A5A5;
    }
    (mix64(h) >> 32) | 1
}

/// The splitmix64 finalizer: every input bit affects every output bit.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_and_validates() {
        let panes = RowShape::full(12);
        let mut words = vec![0u64; 3 * row_words(panes)];
        assert_eq!(row_words(panes), 4 + 54, "the full set: 464 bytes");
        let mean = RowShape {
            panes: 12,
            columns: Columns::SUM,
        };
        assert_eq!(row_words(mean), 4 + 6 + 12, "count and mean: 176 bytes");
        let mut texts = vec![0u64; strings::words_for(3) as usize];
        let mut interner = strings::Interner::rebuild(&texts, strings::slots_for(3), std::iter::empty());
        let (d, s, u) = (
            interner.intern(&mut texts, b"dev00001"),
            interner.intern(&mut texts, b"sen002"),
            interner.intern(&mut texts, b"C"),
        );
        {
            let row = RowMut::new(&mut words, 1, panes);
            (row.header.device, row.header.sensor, row.header.unit) = (d, s, u);
        }
        assert_eq!(tag(&words, 1, panes), 0, "the unit id beside the tag is not a tag");
        {
            let row = RowMut::new(&mut words, 1, panes);
            assert!(!row.header.is_valid(&texts), "no tag yet");
            row.header.tag = key_hash(b"dev00001", b"sen002") as u32;
            row.header.head = 9;
        }
        let h = header(&words, 1, panes);
        assert!(h.is_valid(&texts));
        assert!(h.holds(&texts, key_hash(b"dev00001", b"sen002"), b"dev00001", b"sen002"));
        assert!(!h.holds(&texts, key_hash(b"dev00001", b"sen002"), b"dev00001", b"sen003"));
        assert_eq!((h.ids(), h.head), ([d, s, u], 9));
        assert_eq!(tag(&words, 0, panes), 0);
        // A row naming text that is not its key's (a torn or reused slot) is refused.
        RowMut::new(&mut words, 1, panes).header.device = u;
        assert!(!header(&words, 1, panes).is_valid(&texts));
        RowMut::new(&mut words, 1, panes).header.device = 99;
        assert!(!header(&words, 1, panes).is_valid(&texts), "an id out of range");
        clear_tag(&mut words, 1, panes);
        assert_eq!(tag(&words, 1, panes), 0);
    }

    #[test]
    fn hashes_separate_the_two_ids_and_are_never_zero() {
        assert_ne!(key_hash(b"ab", b"c"), key_hash(b"a", b"bc"));
        assert_ne!(key_hash(b"dev1", b"t"), key_hash(b"dev2", b"t"));
        assert_ne!(key_hash(b"dev00000001", b"t"), key_hash(b"dev00000002", b"t"));
        assert_eq!(key_hash(b"dev1", b"t"), key_hash(b"dev1", b"t"));
        assert_eq!(key_hash(b"", b"") & 1, 1);
        assert!(key_hash(b"dev1", b"t") <= u64::from(u32::MAX));
    }
}
