//! A key's row in the windows table: a 24-byte header (the ids of its key's text in the string
//! table, its newest pane and its latest value), the time of that value when `last` is chosen,
//! and its pane columns (see [`crate::pane`]).
//!
//! | word | bits | contents |
//! |---|---|---|
//! | 0, `key` | 0–23, 24–47, 48–63 | device text id, sensor text id ([`crate::strings`]), 16-bit check of the key's hash; the whole word 0 = free row |
//! | 1 | 0–39, 40–63 | `head`: the newest pane this key has touched, modulo 2⁴⁰; the unit text's id (0: empty) |
//! | 2 | | `last`: the key's most recent value |
//! | 3 | | `last_ms`: the `received_ms` of the key's most recent value, only if `last` is chosen ([`Columns::LAST_MS`]) |
//! | 3… or 4… | | pane columns: `⌈P/2⌉ + k·P` words, `k` the `f64` columns the statistics need, then `(1 + ⌈B/2⌉)·P` words of histograms if quantiles or the histogram are chosen ([`crate::pane_histogram`]) |
//!
//! The key word is the row's validity marker. A row is filled with everything else first and
//! its key word written last, with one store (after a compiler fence), and a row is freed by
//! clearing that word first, so a process killed at any instruction leaves each row either
//! free or complete. A row whose ids name no text, or whose check does not match the hash of
//! the text they name (foreign bytes, or ids that name the wrong slot), is refused on attach.
//!
//! Ids are 24 bits, so a table has at most [`MAX_KEYS`] rows (three texts per row). The head is
//! kept modulo 2⁴⁰ and read back relative to the open pane, which no head is ever after: exact as
//! long as no row is more than 2⁴⁰ panes old, which emission guarantees (it evicts a row idle
//! for `idle_ttl_ms`, at most [`MAX_IDLE_PANES`] panes, and forgets every row before skipping
//! the open pane forward by 2³⁹ panes or more; see [`crate::emit`]).

use bytemuck::{Pod, Zeroable};

use crate::pane::{pane_words, Columns, Panes};
use crate::strings;

/// Words of the row header.
pub const HEADER_WORDS: usize = 3;

/// Bits of a text id.
pub const ID_BITS: u32 = 24;
/// The largest text id.
pub const ID_MAX: u32 = (1 << ID_BITS) - 1;
/// The most rows a table may have: every id of three texts per row, and the spare, fit in
/// [`ID_BITS`] (see [`strings::slots_for`]).
pub const MAX_KEYS: u32 = telemetry_config::Aggd::MAX_KEYS;
const _: () = assert!(strings::slots_for(MAX_KEYS) <= ID_MAX as u64 + 1);

/// Bits of the stored head.
pub const HEAD_BITS: u32 = 40;
const HEAD_MASK: u64 = (1 << HEAD_BITS) - 1;
/// The longest idle time, in panes, a row may be kept: its age must stay below 2⁴⁰ panes.
pub const MAX_IDLE_PANES: u64 = 1 << 38;
/// Skipping the open pane forward by this many panes or more forgets every row first.
pub const SKIP_FORGETS: u64 = 1 << 39;

/// The layout of every row of a table: panes per row and the pane columns stored. The row's
/// length is computed once, here: every row access needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowShape {
    /// Panes per window.
    pub panes: usize,
    /// The optional pane columns stored.
    pub columns: Columns,
    /// Buckets of each pane's histogram, if [`Columns::HISTOGRAM`] is stored.
    pub buckets: usize,
    /// Words of one row.
    words: usize,
}

impl RowShape {
    /// Rows of `panes` panes with every column, histograms of the default budget.
    pub const fn full(panes: usize) -> RowShape {
        RowShape::of(panes, Columns::ALL, records::Aggregate::HISTOGRAM_BUDGET as usize)
    }

    /// Rows of `panes` panes with the columns of `columns`, histograms of `buckets` buckets
    /// if stored.
    pub const fn of(panes: usize, columns: Columns, buckets: usize) -> RowShape {
        let buckets = if columns.has(Columns::HISTOGRAM) { buckets } else { 0 };
        RowShape {
            panes,
            columns,
            buckets,
            words: HEADER_WORDS + columns.row_words() + pane_words(panes, columns, buckets),
        }
    }

    /// Words of one row.
    #[inline]
    pub const fn words(self) -> usize {
        self.words
    }

    /// Where the pane columns start in a row (after the header and the per-row words).
    #[inline]
    pub const fn panes_at(self) -> usize {
        HEADER_WORDS + self.columns.row_words()
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
    /// 0 for a free row, else the device and sensor ids and the check (see the module docs).
    key: u64,
    /// The head (low 40 bits) and the unit's id (high 24).
    head_unit: u64,
    /// The key's most recent value.
    pub last: f64,
}

const _: () = assert!(std::mem::size_of::<RowHeader>() == HEADER_WORDS * 8);

/// The 16-bit check a row keeps of its key's hash (`tag`, from [`key_hash`]).
#[inline]
pub fn check_of(tag: u64) -> u64 {
    (tag >> 16) & 0xffff
}

impl RowHeader {
    /// The key word of a row holding device id `device` and sensor id `sensor`, whose key's
    /// hash is `tag`: never 0 for a non-zero device id.
    #[inline]
    pub fn key_word(device: u32, sensor: u32, tag: u64) -> u64 {
        debug_assert!(device != 0 && device <= ID_MAX && sensor <= ID_MAX);
        check_of(tag) << 48 | u64::from(sensor) << 24 | u64::from(device)
    }

    /// True if the row is in use (its key word is written).
    #[inline]
    pub fn in_use(&self) -> bool {
        self.key != 0
    }

    /// Marks the row as holding a key (the one store that makes it valid; write it last).
    #[inline]
    pub fn set_key(&mut self, key_word: u64) {
        self.key = key_word;
    }

    /// The device text's id.
    #[inline]
    pub fn device(&self) -> u32 {
        (self.key & u64::from(ID_MAX)) as u32
    }

    /// The sensor text's id.
    #[inline]
    pub fn sensor(&self) -> u32 {
        ((self.key >> 24) & u64::from(ID_MAX)) as u32
    }

    /// The unit text's id (of the key's latest reading; 0 for none).
    #[inline]
    pub fn unit(&self) -> u32 {
        (self.head_unit >> HEAD_BITS) as u32
    }

    /// Names another unit text (one store; the head is kept).
    #[inline]
    pub fn set_unit(&mut self, id: u32) {
        debug_assert!(id <= ID_MAX);
        self.head_unit = u64::from(id) << HEAD_BITS | (self.head_unit & HEAD_MASK);
    }

    /// The newest pane this key has touched, read relative to the open pane `open` (no head is
    /// after it); `None` if the stored head cannot be a pane at or before `open`.
    #[inline]
    pub fn head(&self, open: u64) -> Option<u64> {
        open.checked_sub(open.wrapping_sub(self.head_unit) & HEAD_MASK)
    }

    /// The stored head (modulo 2⁴⁰), for telling whether it changed.
    #[inline]
    pub fn head_bits(&self) -> u64 {
        self.head_unit & HEAD_MASK
    }

    /// Sets the newest pane (one store; the unit is kept).
    #[inline]
    pub fn set_head(&mut self, pane: u64) {
        self.head_unit = (self.head_unit & !HEAD_MASK) | (pane & HEAD_MASK);
    }

    /// True if this row holds this key (`strings`: the string table's words; `tag`: the key's
    /// [`key_hash`]).
    #[inline]
    pub fn holds(&self, strings: &[u64], tag: u64, device: &[u8], sensor: &[u8]) -> bool {
        self.key >> 48 == check_of(tag)
            && strings::text(strings, self.device()) == device
            && strings::text(strings, self.sensor()) == sensor
    }

    /// The device and sensor text the ids name (`strings`: the string table's words).
    #[inline]
    pub fn key_text<'a>(&self, strings: &'a [u64]) -> (&'a [u8], &'a [u8]) {
        (
            strings::text(strings, self.device()),
            strings::text(strings, self.sensor()),
        )
    }

    /// The key's hash if the row is in use and complete: its ids name non-empty texts whose
    /// hash matches the check.
    pub fn valid_tag(&self, strings: &[u64]) -> Option<u64> {
        let (d, s) = self.key_text(strings);
        if !self.in_use() || d.is_empty() || s.is_empty() {
            return None;
        }
        let tag = key_hash(d, s);
        (check_of(tag) == self.key >> 48).then_some(tag)
    }

    /// The key's hash, from the text the ids name (for a row in use).
    #[inline]
    pub fn tag(&self, strings: &[u64]) -> u64 {
        let (d, s) = self.key_text(strings);
        key_hash(d, s)
    }

    /// The ids this row names (device, sensor, unit), for reference counting.
    #[inline]
    pub fn ids(&self) -> [u32; 3] {
        [self.device(), self.sensor(), self.unit()]
    }
}

/// A row's header and panes, borrowed from the table's words.
pub struct RowMut<'a> {
    /// The header.
    pub header: &'a mut RowHeader,
    /// The time of the key's latest value, if stored ([`Columns::LAST_MS`]).
    pub last_ms: Option<&'a mut u64>,
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
        let (per_row, rest) = rest.split_at_mut(shape.columns.row_words());
        RowMut {
            header: bytemuck::cast_mut(head),
            last_ms: per_row.first_mut(),
            panes: Panes::new(rest, shape.panes, shape.columns, shape.buckets),
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
    let (panes, counts) = (shape.panes, start + shape.panes_at());
    let f64s = counts + panes.div_ceil(2);
    let f64_columns = shape.columns.f64_columns();
    let mut lines = [
        start,
        start + 8,
        counts + slot / 2,
        usize::MAX,
        usize::MAX,
        usize::MAX,
        usize::MAX,
        usize::MAX,
    ];
    for (i, line) in lines[3..3 + f64_columns].iter_mut().enumerate() {
        *line = f64s + i * panes + slot;
    }
    if shape.buckets > 0 {
        // The pane's histogram: its frame word (its counts follow, on the same or next line).
        let per_pane = crate::pane_histogram::words_per_pane(shape.buckets);
        lines[3 + f64_columns] = f64s + f64_columns * panes + slot * per_pane;
    }
    for w in lines {
        if let Some(x) = words.get(w) {
            crate::prefetch::line(x);
        }
    }
}

/// True if row `row` is in use (one load, for sweeps).
#[inline]
pub fn in_use(words: &[u64], row: usize, shape: RowShape) -> bool {
    words[row * shape.words()] != 0
}

/// Frees row `row` with one store: clears its key word.
#[inline]
pub fn clear_key(words: &mut [u64], row: usize, shape: RowShape) {
    words[row * shape.words()] = 0;
}

/// The hash of a key, 32 bits and never 0 (the key index's hash, and the row's check).
/// Fixed (not seeded), because it must be recomputed to check the row after a restart; the
/// in-memory index mixes it with a per-process seed. The lengths are hashed too, so ("ab",
/// "c") and ("a", "bc") differ.
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
        assert_eq!(row_words(panes), 3 + 1 + 54 + 12 * 9, "every statistic: 1328 bytes");
        let mean = RowShape::of(12, Columns::SUM, 16);
        assert_eq!(row_words(mean), 3 + 6 + 12, "count and mean: 168 bytes");
        let quantiles = RowShape::of(12, Columns::HISTOGRAM, 16);
        assert_eq!(row_words(quantiles), 3 + 6 + 12 * 9, "count and quantiles: 936 bytes");
        let default = RowShape::of(12, Columns::needed_by(records::Statistics::DEFAULT), 16);
        assert_eq!(row_words(default), 3 + 1 + 54, "the default set: 464 bytes");
        let mut texts = vec![0u64; strings::words_for(3) as usize];
        let mut interner = strings::Interner::rebuild(&texts, strings::slots_for(3), std::iter::empty());
        let (d, s, u) = (
            interner.intern(&mut texts, b"dev00001"),
            interner.intern(&mut texts, b"sen002"),
            interner.intern(&mut texts, b"C"),
        );
        let tag = key_hash(b"dev00001", b"sen002");
        {
            let row = RowMut::new(&mut words, 1, panes);
            row.header.set_unit(u);
            row.header.set_head(9);
        }
        assert!(!in_use(&words, 1, panes), "the unit and head are not a key");
        assert_eq!(header(&words, 1, panes).valid_tag(&texts), None, "no key yet");
        RowMut::new(&mut words, 1, panes)
            .header
            .set_key(RowHeader::key_word(d, s, tag));
        let h = header(&words, 1, panes);
        assert_eq!(h.valid_tag(&texts), Some(tag));
        assert!(h.holds(&texts, tag, b"dev00001", b"sen002"));
        assert!(!h.holds(&texts, tag, b"dev00001", b"sen003"));
        assert_eq!((h.ids(), h.head(9), h.head(20)), ([d, s, u], Some(9), Some(9)));
        assert!(!in_use(&words, 0, panes));
        // A row naming text that is not its key's (a wrong slot) is refused.
        RowMut::new(&mut words, 1, panes)
            .header
            .set_key(RowHeader::key_word(u, s, tag));
        assert_eq!(header(&words, 1, panes).valid_tag(&texts), None);
        RowMut::new(&mut words, 1, panes)
            .header
            .set_key(RowHeader::key_word(99, s, tag));
        assert_eq!(header(&words, 1, panes).valid_tag(&texts), None, "an id out of range");
        clear_key(&mut words, 1, panes);
        assert!(!in_use(&words, 1, panes));
        assert_eq!(
            header(&words, 1, panes).unit(),
            u,
            "freeing is one store, of the key word"
        );
    }

    #[test]
    fn the_head_is_exact_relative_to_the_open_pane_and_keeps_the_unit() {
        let mut h = RowHeader::zeroed();
        h.set_unit(ID_MAX);
        let open = 5 << HEAD_BITS | 17; // a pane far beyond 2⁴⁰
        for head in [
            open,
            open - 1,
            open - 17,
            open - 18,
            open - MAX_IDLE_PANES,
            open - SKIP_FORGETS,
        ] {
            h.set_head(head);
            assert_eq!((h.head(open), h.unit()), (Some(head), ID_MAX), "{head}");
        }
        h.set_head(7);
        assert_eq!(h.head(7), Some(7));
        assert_eq!(h.head(100), Some(7));
        assert_eq!(h.head(3), None, "after the open pane: not a head");
        h.set_unit(0);
        assert_eq!((h.head(7), h.unit()), (Some(7), 0));
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
