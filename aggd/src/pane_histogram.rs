//! The histogram column: per pane, an exponential histogram of the pane's samples (quantiles
//! and the histogram statistic are read from the window's merge of them).
//!
//! Each pane's histogram is one [`Frame`] word (scale, each sign's span, the budget) and the
//! budget's `u32` counts, two to a word: `1 + ⌈B/2⌉` words, 72 bytes at the default 16 buckets.
//! Zeros are not stored: a pane's zero count is its count (the count column) less its buckets'.
//! The fold, downscaling and merge are `records::exp_histogram`'s, the same code a window's and
//! a merger's histograms run, so a window's histogram (the merge of its panes', each downscaled
//! by the same rule to the same budget) equals the histogram of the window's samples, and the
//! merge of k pipelines' partials equals one pipeline's.
//!
//! A bucket never overflows its `u32`: the buckets of a pane add up to at most its count, which
//! the fold keeps below `u32::MAX` ([`crate::pane::Panes::fold`]).

use records::exp_histogram::{Frame, MIN_BUDGET};
use records::ExpHistogram;

/// Words of one pane's histogram of `buckets` buckets (0: no histogram).
pub const fn words_per_pane(buckets: usize) -> usize {
    if buckets == 0 {
        0
    } else {
        1 + buckets.div_ceil(2)
    }
}

/// The histogram column of one row: `panes` histograms (or none).
pub struct Histograms<'a> {
    words: &'a mut [u64],
    per_pane: usize,
    budget: u32,
}

impl<'a> Histograms<'a> {
    /// The column over `words` (`panes × words_per_pane(buckets)` words, or none).
    #[inline]
    pub fn new(words: &'a mut [u64], buckets: usize) -> Histograms<'a> {
        debug_assert!(buckets == 0 || buckets >= MIN_BUDGET as usize);
        Histograms {
            words,
            per_pane: words_per_pane(buckets),
            budget: buckets as u32,
        }
    }

    /// True if the row stores histograms.
    #[inline]
    pub fn stored(&self) -> bool {
        !self.words.is_empty()
    }

    /// Slot `slot`'s words: the frame, then the counts.
    #[inline]
    fn pane_words(&self, slot: usize) -> &[u64] {
        &self.words[slot * self.per_pane..(slot + 1) * self.per_pane]
    }

    /// Adds `v` to slot `slot`'s histogram; `first`: the pane was empty, so its histogram is
    /// cleared first (an empty pane's words are left over from an older pane).
    #[inline]
    pub fn fold(&mut self, slot: usize, v: f64, first: bool) {
        if !self.stored() {
            return;
        }
        let budget = self.budget;
        let words = &mut self.words[slot * self.per_pane..(slot + 1) * self.per_pane];
        let (frame_word, counts) = words.split_first_mut().expect("a frame word");
        let counts: &mut [u32] = bytemuck::cast_slice_mut(counts);
        let mut frame = if first {
            counts.fill(0);
            Frame::empty(budget)
        } else {
            Frame::from_word(*frame_word)
        };
        if v != 0.0 {
            frame.fold(counts, v);
        }
        *frame_word = frame.to_word();
    }

    /// Merges slot `slot`'s histogram, of a pane of `count` samples (not empty), into `into`.
    #[inline]
    pub fn merge_into(&self, slot: usize, count: u64, into: &mut ExpHistogram) {
        if !self.stored() {
            return;
        }
        let (frame_word, counts) = self.pane_words(slot).split_first().expect("a frame word");
        let counts: &[u32] = bytemuck::cast_slice(counts);
        let frame = Frame::from_word(*frame_word);
        let zero = count - frame.total(counts);
        into.merge_buckets(&frame, counts, zero);
    }

    /// Slot `slot`'s words, for the undo journal (empty if no histogram is stored).
    pub fn save(&self, slot: usize) -> &[u64] {
        if self.stored() {
            self.pane_words(slot)
        } else {
            &[]
        }
    }

    /// Puts back what [`Histograms::save`] returned.
    pub fn restore(&mut self, slot: usize, saved: &[u64]) {
        if self.stored() {
            self.words[slot * self.per_pane..(slot + 1) * self.per_pane].copy_from_slice(saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pane_folds_like_a_window_histogram_and_clears_on_its_first_sample() {
        let buckets = 16;
        let mut words = vec![u64::MAX; 2 * words_per_pane(buckets)];
        assert_eq!(words.len(), 2 * 9, "72 bytes a pane at 16 buckets");
        let mut h = Histograms::new(&mut words, buckets);
        let mut reference = ExpHistogram::new(buckets as u32);
        let values = [20.5, 21.0, 0.0, -3.0, 24.9, 20.5, 1e6];
        for (i, &v) in values.iter().enumerate() {
            h.fold(1, v, i == 0);
            reference.fold(v);
        }
        let mut window = ExpHistogram::new(buckets as u32);
        h.merge_into(1, values.len() as u64, &mut window);
        assert_eq!(window, reference, "the zero is the count less the buckets");
        let saved = h.save(1).to_vec();
        h.fold(1, 5.0, false);
        h.restore(1, &saved);
        let mut again = ExpHistogram::new(buckets as u32);
        h.merge_into(1, values.len() as u64, &mut again);
        assert_eq!(again, reference);
        assert!(Histograms::new(&mut [], 0).save(0).is_empty());
    }
}
