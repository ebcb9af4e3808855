//! Panes: one partial aggregate per emit interval, and the window as their merge.
//!
//! A pane holds what the window needs of the samples that fell into it, and nothing else: the
//! count (`u32`), the sum, the sum of squares, the minimum and the maximum (`f64` each), 36 bytes.
//! Raw samples are never stored. The most recent value is kept once per key, not per pane (see
//! [`crate::row`]): the key's latest sample is always in its newest pane, which is in every
//! window that is not empty.
//!
//! In a row the panes are stored column by column (`counts[P]`, `sums[P]`, `sum_sq[P]`,
//! `mins[P]`, `maxs[P]`), so the `u32` counts pack two to a word without padding. A pane whose
//! count is 0 is empty and its other fields are meaningless: clearing a pane is one store.

/// One pane's or one window's partial aggregate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partial {
    /// Samples.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
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
        sum_sq: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    /// Adds another partial (of disjoint samples).
    #[inline]
    pub fn merge(&mut self, other: &Partial) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// The pane columns of one row, for reading and writing.
pub struct Panes<'a> {
    counts: &'a mut [u32],
    sums: &'a mut [f64],
    sum_sq: &'a mut [f64],
    mins: &'a mut [f64],
    maxs: &'a mut [f64],
}

/// A pane's fields as raw words, for the undo journal: count, sum, sum_sq, min, max.
pub type PaneWords = [u64; 5];

/// Words the pane columns of `panes` panes take in a row.
pub const fn pane_words(panes: usize) -> usize {
    panes.div_ceil(2) + 4 * panes
}

impl<'a> Panes<'a> {
    /// Carves the columns out of the `pane_words(panes)` words `words`.
    pub fn new(words: &'a mut [u64], panes: usize) -> Panes<'a> {
        let (counts, rest) = words.split_at_mut(panes.div_ceil(2));
        let (sums, rest) = rest.split_at_mut(panes);
        let (sum_sq, rest) = rest.split_at_mut(panes);
        let (mins, maxs) = rest.split_at_mut(panes);
        Panes {
            counts: &mut bytemuck::cast_slice_mut::<u64, u32>(counts)[..panes],
            sums: bytemuck::cast_slice_mut(sums),
            sum_sq: bytemuck::cast_slice_mut(sum_sq),
            mins: bytemuck::cast_slice_mut(mins),
            maxs: &mut bytemuck::cast_slice_mut(maxs)[..panes],
        }
    }

    /// Adds `v` to pane slot `slot`; `false` (and nothing changed) if the pane already holds
    /// `u32::MAX` samples.
    #[inline]
    pub fn fold(&mut self, slot: usize, v: f64) -> bool {
        let n = self.counts[slot];
        if n == 0 {
            self.sums[slot] = v;
            self.sum_sq[slot] = v * v;
            self.mins[slot] = v;
            self.maxs[slot] = v;
        } else if n == u32::MAX {
            return false;
        } else {
            self.sums[slot] += v;
            self.sum_sq[slot] += v * v;
            if v < self.mins[slot] {
                self.mins[slot] = v;
            }
            if v > self.maxs[slot] {
                self.maxs[slot] = v;
            }
        }
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

    /// Slot `slot` as a partial.
    #[inline]
    pub fn get(&self, slot: usize) -> Partial {
        if self.counts[slot] == 0 {
            return Partial::EMPTY;
        }
        Partial {
            count: u64::from(self.counts[slot]),
            sum: self.sums[slot],
            sum_sq: self.sum_sq[slot],
            min: self.mins[slot],
            max: self.maxs[slot],
        }
    }

    /// Slot `slot`'s fields as raw words (for the undo journal).
    pub fn save(&self, slot: usize) -> PaneWords {
        [
            u64::from(self.counts[slot]),
            self.sums[slot].to_bits(),
            self.sum_sq[slot].to_bits(),
            self.mins[slot].to_bits(),
            self.maxs[slot].to_bits(),
        ]
    }

    /// Puts back what [`Panes::save`] returned.
    pub fn restore(&mut self, slot: usize, w: PaneWords) {
        self.counts[slot] = w[0] as u32;
        self.sums[slot] = f64::from_bits(w[1]);
        self.sum_sq[slot] = f64::from_bits(w[2]);
        self.mins[slot] = f64::from_bits(w[3]);
        self.maxs[slot] = f64::from_bits(w[4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_pack_without_padding() {
        assert_eq!(pane_words(12), 6 + 48);
        assert_eq!(pane_words(1), 1 + 4);
        assert_eq!(pane_words(64), 32 + 256);
    }

    #[test]
    fn fold_get_clear_and_journal_round_trip() {
        let mut words = vec![0u64; pane_words(3)];
        let mut p = Panes::new(&mut words, 3);
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
                sum_sq: 4.0 + 2.25 + 16.0,
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
        let mut words = vec![0u64; pane_words(1)];
        let mut p = Panes::new(&mut words, 1);
        p.fold(0, 1.0);
        let mut w = p.save(0);
        w[0] = u64::from(u32::MAX);
        p.restore(0, w);
        assert!(!p.fold(0, 1.0));
        assert_eq!(p.get(0).count, u64::from(u32::MAX));
    }

    #[test]
    fn merge_skips_empty_partials() {
        let mut a = Partial::EMPTY;
        a.merge(&Partial::EMPTY);
        assert_eq!(a, Partial::EMPTY);
        a.merge(&Partial {
            count: 2,
            sum: 3.0,
            sum_sq: 5.0,
            min: 1.0,
            max: 2.0,
        });
        a.merge(&Partial {
            count: 1,
            sum: -4.0,
            sum_sq: 16.0,
            min: -4.0,
            max: -4.0,
        });
        assert_eq!((a.count, a.sum, a.sum_sq, a.min, a.max), (3, -1.0, 21.0, -4.0, 2.0));
    }
}
