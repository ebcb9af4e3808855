//! Panes: one partial aggregate per emit interval, and the window as their merge.
//!
//! A pane holds what the window needs of the samples that fell into it, and nothing else: the
//! count (`u32`), the sum, M2 (the sum of squared deviations from the pane's mean: see
//! [`records::Moments`], never a sum of squares), the minimum and the maximum (`f64` each), 36 bytes.
//! Raw samples are never stored. The most recent value is kept once per key, not per pane (see
//! [`crate::row`]): the key's latest sample is always in its newest pane, which is in every
//! window that is not empty.
//!
//! In a row the panes are stored column by column (`counts[P]`, `sums[P]`, `m2s[P]`,
//! `mins[P]`, `maxs[P]`), so the `u32` counts pack two to a word without padding. A pane whose
//! count is 0 is empty and its other fields are meaningless: clearing a pane is one store.
//!
//! Only the columns the chosen statistics need are stored ([`Columns`], from `[aggd]
//! statistics`): the counts always (a pane's count says whether it is empty); the sums for sum,
//! mean and stddev; M2 for stddev; the minima for min; the maxima for max; an exponential
//! histogram per pane for quantiles and the histogram ([`crate::pane_histogram`], after the
//! other columns). A column that is not stored reads as its empty value (0 for sums, ±∞ for the
//! extremes).

use records::{ExpHistogram, Moments, Statistics};

use crate::pane_histogram::{words_per_pane, Histograms};

/// One pane's or one window's partial aggregate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partial {
    /// Samples.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Σ (x − mean)² (see [`Moments`]).
    pub m2: f64,
    /// The smallest (meaningless when `count` is 0).
    pub min: f64,
    /// The largest (meaningless when `count` is 0).
    pub max: f64,
}

impl Partial {
    /// No samples.
    pub const EMPTY: Partial = Partial {
        count: 0,
        sum: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    /// Adds another partial (of disjoint samples): the rules of [`records::merge`].
    #[inline]
    pub fn merge(&mut self, other: &Partial) {
        if other.count == 0 {
            return;
        }
        let mut m = self.moments();
        m.merge(&other.moments());
        (self.count, self.sum, self.m2) = (m.count, m.sum, m.m2);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Count, sum and M2.
    #[inline]
    pub fn moments(&self) -> Moments {
        Moments::new(self.count, self.sum, self.m2)
    }
}

/// Which optional pane columns a row stores (the counts are always stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Columns(u8);

impl Columns {
    /// Per-pane sums.
    pub const SUM: Columns = Columns(1);
    /// Per-pane M2 (needs the sums: the fold reads the pane's mean).
    pub const M2: Columns = Columns(1 << 1);
    /// Per-pane minima.
    pub const MIN: Columns = Columns(1 << 2);
    /// Per-pane maxima.
    pub const MAX: Columns = Columns(1 << 3);
    /// Not a pane column: one word per row, the time of the key's latest value (`last_ms`,
    /// what a merge of partial aggregates orders `last` by), stored when `last` is chosen.
    pub const LAST_MS: Columns = Columns(1 << 4);
    /// Per-pane exponential histograms (`[aggd] histogram_buckets` buckets each).
    pub const HISTOGRAM: Columns = Columns(1 << 5);
    /// Every column: what the full set of statistics needs.
    pub const ALL: Columns = Columns(0x3f);
    /// The `f64` pane columns.
    const PANE_F64: u8 = 0xf;

    /// The columns that `statistics` need.
    pub fn needed_by(statistics: Statistics) -> Columns {
        let mut c = 0;
        if statistics.intersects(Statistics::SUM | Statistics::MEAN | Statistics::STDDEV) {
            c |= Columns::SUM.0;
        }
        if statistics.contains(Statistics::STDDEV) {
            c |= Columns::M2.0;
        }
        if statistics.contains(Statistics::MIN) {
            c |= Columns::MIN.0;
        }
        if statistics.contains(Statistics::MAX) {
            c |= Columns::MAX.0;
        }
        if statistics.contains(Statistics::LAST) {
            c |= Columns::LAST_MS.0;
        }
        if statistics.intersects(Statistics::QUANTILES | Statistics::HISTOGRAM) {
            c |= Columns::HISTOGRAM.0;
        }
        Columns(c)
    }

    /// True if `column` is stored.
    #[inline]
    pub const fn has(self, column: Columns) -> bool {
        self.0 & column.0 == column.0
    }

    /// The columns *not* stored, as bits (0 for all of them: the layout before columns were
    /// optional, so older tables read as full).
    pub const fn omitted_bits(self) -> u64 {
        (!self.0 & Columns::ALL.0) as u64
    }

    /// The inverse of [`Columns::omitted_bits`].
    pub const fn from_omitted_bits(bits: u64) -> Columns {
        Columns(!(bits as u8) & Columns::ALL.0)
    }

    /// `f64` pane columns stored.
    pub const fn f64_columns(self) -> usize {
        (self.0 & Columns::PANE_F64).count_ones() as usize
    }

    /// Words stored once per row, after the header (the time of the latest value).
    pub const fn row_words(self) -> usize {
        self.has(Columns::LAST_MS) as usize
    }
}

impl std::fmt::Display for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Columns::SUM, "sum"),
            (Columns::M2, "m2"),
            (Columns::MIN, "min"),
            (Columns::MAX, "max"),
            (Columns::LAST_MS, "time of last"),
            (Columns::HISTOGRAM, "histogram"),
        ];
        f.write_str("count")?;
        for (c, name) in names {
            if self.has(c) {
                write!(f, ", {name}")?;
            }
        }
        Ok(())
    }
}

/// The pane columns of one row, for reading and writing. A column that is not stored is an
/// empty slice.
pub struct Panes<'a> {
    counts: &'a mut [u32],
    sums: &'a mut [f64],
    m2s: &'a mut [f64],
    mins: &'a mut [f64],
    maxs: &'a mut [f64],
    histograms: Histograms<'a>,
}

/// A pane's fields as raw words, for the undo journal: count, sum, M2, min, max.
pub type PaneWords = [u64; 5];

/// Words the pane columns of `panes` panes take in a row, with histograms of `buckets` buckets
/// if [`Columns::HISTOGRAM`] is stored.
pub const fn pane_words(panes: usize, columns: Columns, buckets: usize) -> usize {
    let histograms = if columns.has(Columns::HISTOGRAM) {
        words_per_pane(buckets) * panes
    } else {
        0
    };
    panes.div_ceil(2) + columns.f64_columns() * panes + histograms
}

impl<'a> Panes<'a> {
    /// Carves the columns out of the `pane_words(panes, columns, buckets)` words `words`.
    #[inline]
    pub fn new(words: &'a mut [u64], panes: usize, columns: Columns, buckets: usize) -> Panes<'a> {
        let (counts, mut rest) = words.split_at_mut(panes.div_ceil(2));
        let mut column = |c: Columns| -> &'a mut [f64] {
            let len = if columns.has(c) { panes } else { 0 };
            let (col, more) = std::mem::take(&mut rest).split_at_mut(len);
            rest = more;
            bytemuck::cast_slice_mut(col)
        };
        let sums = column(Columns::SUM);
        let m2s = column(Columns::M2);
        let mins = column(Columns::MIN);
        let maxs = column(Columns::MAX);
        let buckets = if columns.has(Columns::HISTOGRAM) { buckets } else { 0 };
        Panes {
            counts: &mut bytemuck::cast_slice_mut::<u64, u32>(counts)[..panes],
            sums,
            m2s,
            mins,
            maxs,
            histograms: Histograms::new(rest, buckets),
        }
    }

    /// Adds `v` to pane slot `slot`; `false` (and nothing changed) if the pane already holds
    /// `u32::MAX` samples.
    #[inline]
    pub fn fold(&mut self, slot: usize, v: f64) -> bool {
        let n = self.counts[slot];
        if n == u32::MAX {
            return false;
        }
        let first = n == 0;
        if let Some(m2) = self.m2s.get_mut(slot) {
            // Welford's update, on the sum (stored whenever M2 is: `Columns::needed_by`).
            let m = Moments {
                count: u64::from(n),
                sum: self.sums.get(slot).copied().unwrap_or(0.0),
                m2: *m2,
            };
            *m2 = m.folded(v).m2;
        }
        if let Some(s) = self.sums.get_mut(slot) {
            *s = if first { v } else { *s + v };
        }
        if let Some(m) = self.mins.get_mut(slot) {
            if first || v < *m {
                *m = v;
            }
        }
        if let Some(m) = self.maxs.get_mut(slot) {
            if first || v > *m {
                *m = v;
            }
        }
        self.histograms.fold(slot, v, first);
        self.counts[slot] = n + 1;
        true
    }

    /// Empties slot `slot`.
    #[inline]
    pub fn clear(&mut self, slot: usize) {
        self.counts[slot] = 0;
    }

    /// Empties every slot.
    pub fn clear_all(&mut self) {
        self.counts.fill(0);
    }

    /// Slot `slot` as a partial (columns not stored read as in [`Partial::EMPTY`]).
    #[inline]
    pub fn get(&self, slot: usize) -> Partial {
        if self.counts[slot] == 0 {
            return Partial::EMPTY;
        }
        let e = Partial::EMPTY;
        Partial {
            count: u64::from(self.counts[slot]),
            sum: self.sums.get(slot).copied().unwrap_or(e.sum),
            m2: self.m2s.get(slot).copied().unwrap_or(e.m2),
            min: self.mins.get(slot).copied().unwrap_or(e.min),
            max: self.maxs.get(slot).copied().unwrap_or(e.max),
        }
    }

    /// Merges slot `slot`'s histogram into `into` (nothing if the slot is empty or no
    /// histogram is stored).
    #[inline]
    pub fn merge_histogram(&self, slot: usize, into: &mut ExpHistogram) {
        if self.counts[slot] != 0 {
            self.histograms.merge_into(slot, u64::from(self.counts[slot]), into);
        }
    }

    /// Slot `slot`'s histogram words, for the undo journal (empty if none is stored).
    pub fn save_histogram(&self, slot: usize) -> &[u64] {
        self.histograms.save(slot)
    }

    /// Puts back what [`Panes::save_histogram`] returned.
    pub fn restore_histogram(&mut self, slot: usize, saved: &[u64]) {
        self.histograms.restore(slot, saved)
    }

    /// Slot `slot`'s fields as raw words (for the undo journal; 0 for columns not stored).
    pub fn save(&self, slot: usize) -> PaneWords {
        let bits = |col: &[f64]| col.get(slot).map_or(0, |x| x.to_bits());
        [
            u64::from(self.counts[slot]),
            bits(self.sums),
            bits(self.m2s),
            bits(self.mins),
            bits(self.maxs),
        ]
    }

    /// Puts back what [`Panes::save`] returned.
    pub fn restore(&mut self, slot: usize, w: PaneWords) {
        self.counts[slot] = w[0] as u32;
        for (col, bits) in [&mut *self.sums, &mut *self.m2s, &mut *self.mins, &mut *self.maxs]
            .into_iter()
            .zip(&w[1..])
        {
            if let Some(x) = col.get_mut(slot) {
                *x = f64::from_bits(*bits);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_pack_without_padding() {
        assert_eq!(pane_words(12, Columns::ALL, 0), 6 + 48);
        assert_eq!(pane_words(1, Columns::ALL, 0), 1 + 4);
        assert_eq!(pane_words(64, Columns::ALL, 0), 32 + 256);
    }

    #[test]
    fn fold_get_clear_and_journal_round_trip() {
        let mut words = vec![0u64; pane_words(3, Columns::ALL, 0)];
        let mut p = Panes::new(&mut words, 3, Columns::ALL, 0);
        assert_eq!(p.get(1), Partial::EMPTY);
        for v in [2.0, -1.5, 4.0] {
            assert!(p.fold(1, v));
        }
        let saved = p.save(1);
        assert_eq!(
            p.get(1),
            Partial {
                count: 3,
                sum: 4.5,
                // Deviations from the mean 1.5: 0.5, −3, 2.5.
                m2: 0.25 + 9.0 + 6.25,
                min: -1.5,
                max: 4.0
            }
        );
        p.fold(1, 100.0);
        p.restore(1, saved);
        assert_eq!(p.get(1).count, 3);
        assert_eq!(p.get(1).max, 4.0);
        p.clear(1);
        assert_eq!(p.get(1), Partial::EMPTY);
        // A cleared pane starts afresh: stale min/max do not leak.
        p.fold(1, 7.0);
        assert_eq!((p.get(1).min, p.get(1).max, p.get(1).count), (7.0, 7.0, 1));
        assert_eq!(p.get(0), Partial::EMPTY);
        assert_eq!(p.get(2), Partial::EMPTY);
    }

    #[test]
    fn a_full_pane_refuses() {
        let mut words = vec![0u64; pane_words(1, Columns::ALL, 0)];
        let mut p = Panes::new(&mut words, 1, Columns::ALL, 0);
        p.fold(0, 1.0);
        let mut w = p.save(0);
        w[0] = u64::from(u32::MAX);
        p.restore(0, w);
        assert!(!p.fold(0, 1.0));
        assert_eq!(p.get(0).count, u64::from(u32::MAX));
    }

    #[test]
    fn only_the_needed_columns_are_stored() {
        let mean = Columns::needed_by(Statistics::COUNT | Statistics::MEAN);
        assert_eq!(mean, Columns::SUM);
        assert_eq!(pane_words(12, mean, 0), 6 + 12);
        assert_eq!(Columns::needed_by(Statistics::ALL), Columns::ALL);
        assert_eq!(
            Columns::needed_by(Statistics::DEFAULT),
            Columns(Columns::ALL.0 & !Columns::HISTOGRAM.0)
        );
        let quantiles = Columns::needed_by(Statistics::COUNT | Statistics::QUANTILES);
        assert_eq!(quantiles, Columns::HISTOGRAM);
        assert_eq!(
            pane_words(12, quantiles, 16),
            6 + 12 * 9,
            "count and quantiles: 912 bytes"
        );
        assert_eq!(
            pane_words(12, Columns::SUM, 16),
            6 + 12,
            "no histogram, no histogram words"
        );
        let last = Columns::needed_by(Statistics::COUNT | Statistics::LAST);
        assert_eq!((last.f64_columns(), last.row_words()), (0, 1));
        assert_eq!((mean.row_words(), Columns::ALL.f64_columns()), (0, 4));
        assert_eq!(Columns::needed_by(Statistics::STDDEV), Columns(3));
        assert_eq!(Columns::ALL.omitted_bits(), 0, "a full table reads as before");
        for c in 0..64 {
            assert_eq!(Columns::from_omitted_bits(Columns(c).omitted_bits()), Columns(c));
        }
        // Min and max only: the other columns read as empty, and the journal round-trips.
        let extremes = Columns(Columns::MIN.0 | Columns::MAX.0);
        let mut words = vec![0u64; pane_words(3, extremes, 0)];
        assert_eq!(words.len(), 2 + 6);
        let mut p = Panes::new(&mut words, 3, extremes, 0);
        for v in [21.123456789, -3.0, 8.5] {
            p.fold(2, v);
        }
        let got = p.get(2);
        assert_eq!((got.count, got.min, got.max, got.sum), (3, -3.0, 21.123456789, 0.0));
        let saved = p.save(2);
        p.fold(2, -100.0);
        p.restore(2, saved);
        assert_eq!(p.get(2), got);
        assert_eq!(p.get(0), Partial::EMPTY);
        assert_eq!(extremes.to_string(), "count, min, max");
    }

    #[test]
    fn merge_skips_empty_partials() {
        let mut a = Partial::EMPTY;
        a.merge(&Partial::EMPTY);
        assert_eq!(a, Partial::EMPTY);
        a.merge(&Partial {
            count: 2,
            sum: 3.0,
            m2: 0.5,
            min: 1.0,
            max: 2.0,
        });
        a.merge(&Partial {
            count: 1,
            sum: -4.0,
            m2: 0.0,
            min: -4.0,
            max: -4.0,
        });
        assert_eq!((a.count, a.sum, a.min, a.max), (3, -1.0, -4.0, 2.0));
        // {1, 2} and {-4}: mean −1/3, deviations 4/3, 7/3, −11/3.
        assert!((a.m2 - 186.0 / 9.0).abs() < 1e-12, "{}", a.m2);
    }
}
