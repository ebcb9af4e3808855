//! A key's row in the windows table: a 128-byte header (the key, its validity tag, its newest
//! pane, its latest value) followed by its pane columns (see [`crate::pane`]).
//!
//! | words | contents |
//! |---|---|
//! | 0 | `tag`: 0 = free row; otherwise [`key_hash`] of the key (never 0) |
//! | 1 | `head`: the newest pane index this key has touched |
//! | 2 | `last`: the key's most recent value |
//! | 3 | lengths of device, sensor and unit |
//! | 4–15 | device (48 bytes), sensor (32), unit (16), zero-padded |
//! | 16… | pane columns: `⌈P/2⌉ + k·P` words, `k` the `f64` columns the statistics need |
//!
//! The tag is the row's validity marker. A row is filled with everything else first and its tag
//! written last (after a compiler fence), and a row is freed by clearing its tag first, so a
//! process killed at any instruction leaves each row either free or complete. A row whose tag
//! does not match the hash of its key (torn by something else, or foreign bytes) is refused on
//! attach.

use bytemuck::{Pod, Zeroable};
use records::{DEVICE_MAX, SENSOR_MAX, UNIT_MAX};

use crate::pane::{pane_words, Columns, Panes};

/// Words of the row header.
pub const HEADER_WORDS: usize = 16;

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
    pub tag: u64,
    /// The newest pane index touched by this key.
    pub head: u64,
    /// The key's most recent value.
    pub last: f64,
    /// Lengths of device, sensor and unit, then zeros.
    pub lens: [u8; 8],
    /// Device id, zero-padded.
    pub device: [u8; DEVICE_MAX],
    /// Sensor name, zero-padded.
    pub sensor: [u8; SENSOR_MAX],
    /// Unit of the key's latest reading, zero-padded.
    pub unit: [u8; UNIT_MAX],
}

const _: () = assert!(std::mem::size_of::<RowHeader>() == HEADER_WORDS * 8);

impl RowHeader {
    /// The device id.
    pub fn device(&self) -> &[u8] {
        &self.device[..(self.lens[0] as usize).min(DEVICE_MAX)]
    }

    /// The sensor name.
    pub fn sensor(&self) -> &[u8] {
        &self.sensor[..(self.lens[1] as usize).min(SENSOR_MAX)]
    }

    /// The unit.
    pub fn unit(&self) -> &[u8] {
        &self.unit[..(self.lens[2] as usize).min(UNIT_MAX)]
    }

    /// True if this row holds this key.
    #[inline]
    pub fn holds(&self, tag: u64, device: &[u8], sensor: &[u8]) -> bool {
        self.tag == tag && self.device() == device && self.sensor() == sensor
    }

    /// Writes the key and unit text (not the tag). The ids must fit (a `Reading` guarantees it).
    pub fn set_key(&mut self, device: &[u8], sensor: &[u8], unit: &[u8]) {
        store(&mut self.device, device);
        store(&mut self.sensor, sensor);
        self.lens = [device.len() as u8, sensor.len() as u8, 0, 0, 0, 0, 0, 0];
        self.set_unit(unit);
    }

    /// Replaces the unit text if it differs.
    #[inline]
    pub fn set_unit(&mut self, unit: &[u8]) {
        if self.unit() != unit {
            store(&mut self.unit, unit);
            self.lens[2] = unit.len() as u8;
        }
    }

    /// True if the row is in use and complete: lengths in range and the tag matching the key.
    pub fn is_valid(&self) -> bool {
        self.tag != 0
            && (self.lens[0] as usize) <= DEVICE_MAX
            && (self.lens[1] as usize) <= SENSOR_MAX
            && (self.lens[2] as usize) <= UNIT_MAX
            && self.lens[0] > 0
            && self.lens[1] > 0
            && key_hash(self.device(), self.sensor()) == self.tag
    }
}

fn store(dst: &mut [u8], src: &[u8]) {
    dst[..src.len()].copy_from_slice(src);
    dst[src.len()..].fill(0);
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
    words[row * shape.words()]
}

/// Frees row `row` with one store: clears its tag.
#[inline]
pub fn clear_tag(words: &mut [u64], row: usize, shape: RowShape) {
    words[row * shape.words()] = 0;
}

/// The hash of a key, never 0: the row's validity tag. Fixed (not seeded), because it must be
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
    mix64(h) | 1
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
        assert_eq!(row_words(panes), 70);
        let mean = RowShape {
            panes: 12,
            columns: Columns::SUM,
        };
        assert_eq!(row_words(mean), 16 + 6 + 12, "count and mean: 272 bytes");
        {
            let row = RowMut::new(&mut words, 1, panes);
            row.header.set_key(b"dev00001", b"sen002", b"C");
            assert!(!row.header.is_valid(), "no tag yet");
            row.header.tag = key_hash(b"dev00001", b"sen002");
            row.header.head = 9;
        }
        let h = header(&words, 1, panes);
        assert!(h.is_valid());
        assert!(h.holds(key_hash(b"dev00001", b"sen002"), b"dev00001", b"sen002"));
        assert_eq!(
            (h.device(), h.sensor(), h.unit(), h.head),
            (&b"dev00001"[..], &b"sen002"[..], &b"C"[..], 9)
        );
        assert_eq!(tag(&words, 0, panes), 0);
        // A torn key (text changed after the tag was written) is refused.
        RowMut::new(&mut words, 1, panes).header.device[0] = b'x';
        assert!(!header(&words, 1, panes).is_valid());
        clear_tag(&mut words, 1, panes);
        assert_eq!(tag(&words, 1, panes), 0);
    }

    #[test]
    fn unit_changes_are_kept() {
        let mut words = vec![0u64; row_words(RowShape::full(1))];
        let row = RowMut::new(&mut words, 0, RowShape::full(1));
        row.header.set_key(b"d", b"s", b"degC");
        row.header.set_unit(b"K");
        assert_eq!(row.header.unit(), b"K");
        assert_eq!(row.header.unit, *b"K\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn hashes_separate_the_two_ids_and_are_never_zero() {
        assert_ne!(key_hash(b"ab", b"c"), key_hash(b"a", b"bc"));
        assert_ne!(key_hash(b"dev1", b"t"), key_hash(b"dev2", b"t"));
        assert_ne!(key_hash(b"dev00000001", b"t"), key_hash(b"dev00000002", b"t"));
        assert_eq!(key_hash(b"dev1", b"t"), key_hash(b"dev1", b"t"));
        assert_eq!(key_hash(b"", b"") & 1, 1);
    }
}
