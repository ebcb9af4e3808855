//! [`Frame`]: where a histogram's buckets are (its scale, each sign's first bucket and length,
//! its budget), and the algorithms over a flat area of counts: fold, downscale, merge and the
//! quantile. Written once over [`Counts`], so that a window's histogram (`u64` counts, in an
//! aggregate) and aggd's per-pane histograms (`u32` counts, in shared memory) follow exactly
//! the same rule, which is what makes k merged partials equal one pipeline's histogram.
//!
//! An area of `budget` counts holds both signs: the positive buckets from its start upwards,
//! the negative ones from its end downwards (bucket `offset + k` of a sign at position `k`, or
//! `budget − 1 − k`), so either sign grows without moving the other. Positions outside both
//! spans are 0, and each span's first and last buckets are not 0, so a histogram's frame and
//! counts are a function of its values: equal values give equal words.

use super::index::index;
use super::{MAX_SCALE, MIN_SCALE};

/// The most buckets a histogram keeps, both signs together.
pub const CAPACITY: usize = 32;
/// The fewest: at [`MIN_SCALE`] one sign's magnitudes (subnormals included) span 3 buckets.
pub const MIN_BUDGET: u32 = 6;

/// A flat area of bucket counts.
pub trait Counts {
    /// The count at position `i`.
    fn count(&self, i: usize) -> u64;
    /// Sets the count at position `i` (the caller knows it fits).
    fn set_count(&mut self, i: usize, n: u64);
}

impl Counts for [u64] {
    #[inline]
    fn count(&self, i: usize) -> u64 {
        self[i]
    }
    #[inline]
    fn set_count(&mut self, i: usize, n: u64) {
        self[i] = n;
    }
}

impl Counts for [u32] {
    #[inline]
    fn count(&self, i: usize) -> u64 {
        u64::from(self[i])
    }
    #[inline]
    fn set_count(&mut self, i: usize, n: u64) {
        // A pane's buckets add up to its count, a u32 that aggd never lets overflow.
        debug_assert!(n <= u64::from(u32::MAX));
        self[i] = n as u32;
    }
}

/// One sign's buckets: `len` consecutive buckets from index `offset` (at the histogram's scale).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// The index of the first bucket.
    pub offset: i32,
    /// Buckets held (0: no value of this sign).
    pub len: u32,
}

impl Span {
    /// The first and last index after a downscale by `d`, if any bucket is held.
    fn range_at(self, d: u32) -> Option<(i32, i32)> {
        (self.len > 0).then(|| (self.offset >> d, (self.offset + self.len as i32 - 1) >> d))
    }
}

/// Where a histogram's buckets are. Packs into one word ([`Frame::to_word`]); the all-zero word
/// is an empty histogram at [`MAX_SCALE`] with a budget of [`CAPACITY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The scale: `γ = 2^(2^-scale)`.
    pub scale: i8,
    /// The positive buckets.
    pub positive: Span,
    /// The negative buckets, by magnitude.
    pub negative: Span,
    /// The most buckets kept, both signs together ([`MIN_BUDGET`] ..= [`CAPACITY`]).
    pub budget: u32,
}

const OFFSET_BITS: u32 = 20;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;

impl Frame {
    /// An empty histogram keeping at most `budget` buckets (clamped to
    /// [`MIN_BUDGET`] ..= [`CAPACITY`]).
    pub fn empty(budget: u32) -> Frame {
        Frame {
            scale: MAX_SCALE,
            positive: Span::default(),
            negative: Span::default(),
            budget: budget.clamp(MIN_BUDGET, CAPACITY as u32),
        }
    }

    /// The frame as one word: `MAX_SCALE − scale` (5 bits), the lengths (6 bits each), the
    /// offsets (20 bits each, two's complement: |index| < 2¹⁷ at any scale) and `CAPACITY −
    /// budget` (6 bits).
    pub fn to_word(self) -> u64 {
        let offset = |o: i32| (o as u64) & OFFSET_MASK;
        (MAX_SCALE - self.scale) as u64
            | u64::from(self.positive.len) << 5
            | u64::from(self.negative.len) << 11
            | offset(self.positive.offset) << 17
            | offset(self.negative.offset) << 37
            | (CAPACITY as u64 - u64::from(self.budget)) << 57
    }

    /// The inverse of [`Frame::to_word`].
    pub fn from_word(w: u64) -> Frame {
        let offset = |bits: u64| (((bits & OFFSET_MASK) << (64 - OFFSET_BITS)) as i64 >> (64 - OFFSET_BITS)) as i32;
        Frame {
            scale: MAX_SCALE - (w & 0x1f) as i8,
            positive: Span {
                offset: offset(w >> 17),
                len: ((w >> 5) & 0x3f) as u32,
            },
            negative: Span {
                offset: offset(w >> 37),
                len: ((w >> 11) & 0x3f) as u32,
            },
            budget: CAPACITY as u32 - ((w >> 57) & 0x3f) as u32,
        }
    }

    fn span(&self, negative: bool) -> Span {
        if negative {
            self.negative
        } else {
            self.positive
        }
    }

    fn span_mut(&mut self, negative: bool) -> &mut Span {
        if negative {
            &mut self.negative
        } else {
            &mut self.positive
        }
    }

    /// The position of a sign's `k`-th bucket in the area.
    #[inline]
    fn at(&self, negative: bool, k: u32) -> usize {
        if negative {
            (self.budget - 1 - k) as usize
        } else {
            k as usize
        }
    }

    /// The count of a sign's `k`-th bucket (`k < len`).
    #[inline]
    pub fn bucket<C: Counts + ?Sized>(&self, counts: &C, negative: bool, k: u32) -> u64 {
        counts.count(self.at(negative, k))
    }

    /// Empties the histogram: zeroes its area and its spans, back to [`MAX_SCALE`].
    pub fn clear<C: Counts + ?Sized>(&mut self, counts: &mut C) {
        for i in 0..self.budget as usize {
            counts.set_count(i, 0);
        }
        *self = Frame::empty(self.budget);
    }

    /// Samples in the buckets (zeros are counted apart, by the owner).
    pub fn total<C: Counts + ?Sized>(&self, counts: &C) -> u64 {
        [false, true]
            .into_iter()
            .flat_map(|neg| (0..self.span(neg).len).map(move |k| (neg, k)))
            .map(|(neg, k)| self.bucket(counts, neg, k))
            .sum()
    }

    /// Adds one finite, non-zero sample (zeros are counted apart, by the owner).
    #[inline]
    pub fn fold<C: Counts + ?Sized>(&mut self, counts: &mut C, v: f64) {
        debug_assert!(v != 0.0 && v.is_finite());
        let negative = v < 0.0;
        let i = index(v.abs()) >> (MAX_SCALE - self.scale) as u32;
        let (same, other) = (self.span(negative), self.span(!negative));
        let k = i.wrapping_sub(same.offset) as u32;
        if k < same.len {
            // Inside the sign's buckets (the common case): one count, no change of frame.
            let at = self.at(negative, k);
            counts.set_count(at, counts.count(at) + 1);
            return;
        }
        let widened = match same.range_at(0) {
            None => (i, i),
            Some((lo, hi)) => (lo.min(i), hi.max(i)),
        };
        let d = self.fitting_downscale(self.scale, [Some(widened), other.range_at(0)]);
        self.downscale(counts, d);
        self.add(counts, negative, i >> d, 1);
    }

    /// Adds another histogram's buckets, at the finest scale both fit at within this budget.
    pub fn merge<C: Counts + ?Sized, D: Counts + ?Sized>(&mut self, counts: &mut C, other: &Frame, theirs: &D) {
        let common = self.scale.min(other.scale);
        let (mine_d, their_d) = ((self.scale - common) as u32, (other.scale - common) as u32);
        let union = |a: Option<(i32, i32)>, b: Option<(i32, i32)>| match (a, b) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        let ranges = [
            union(self.positive.range_at(mine_d), other.positive.range_at(their_d)),
            union(self.negative.range_at(mine_d), other.negative.range_at(their_d)),
        ];
        let d = self.fitting_downscale(common, ranges);
        self.downscale(counts, mine_d + d);
        for negative in [false, true] {
            let span = other.span(negative);
            for k in 0..span.len {
                let c = other.bucket(theirs, negative, k);
                if c != 0 {
                    self.add(counts, negative, (span.offset + k as i32) >> (their_d + d), c);
                }
            }
        }
    }

    /// The fewest downscaling steps from `scale` after which the ranges (indices at `scale`)
    /// span at most `budget` buckets together.
    fn fitting_downscale(&self, scale: i8, ranges: [Option<(i32, i32)>; 2]) -> u32 {
        let most = (scale - MIN_SCALE) as u32;
        (0..=most)
            .find(|&d| {
                let spans = ranges
                    .iter()
                    .flatten()
                    .map(|&(lo, hi)| ((hi >> d) - (lo >> d) + 1) as u32);
                spans.sum::<u32>() <= self.budget
            })
            .expect("every pair of ranges fits MIN_BUDGET at MIN_SCALE")
    }

    /// Lowers the scale by `d`, adding each run of 2^d adjacent buckets into one.
    fn downscale<C: Counts + ?Sized>(&mut self, counts: &mut C, d: u32) {
        if d == 0 {
            return;
        }
        for negative in [false, true] {
            let span = self.span(negative);
            let Some((lo, hi)) = span.range_at(d) else {
                continue;
            };
            // Ascending: bucket k moves to k' ≤ k, into a position already emptied or its own.
            for k in 0..span.len {
                let from = self.at(negative, k);
                let c = counts.count(from);
                counts.set_count(from, 0);
                let to = self.at(negative, (((span.offset + k as i32) >> d) - lo) as u32);
                counts.set_count(to, counts.count(to) + c);
            }
            *self.span_mut(negative) = Span {
                offset: lo,
                len: (hi - lo + 1) as u32,
            };
        }
        self.scale -= d as i8;
    }

    /// Adds `n` to bucket `i` of a sign (which the caller made fit the budget).
    fn add<C: Counts + ?Sized>(&mut self, counts: &mut C, negative: bool, i: i32, n: u64) {
        let span = self.span(negative);
        if span.len == 0 {
            *self.span_mut(negative) = Span { offset: i, len: 1 };
        } else if i < span.offset {
            let grow = (span.offset - i) as u32;
            for k in (0..span.len).rev() {
                let c = counts.count(self.at(negative, k));
                counts.set_count(self.at(negative, k + grow), c);
            }
            for k in 0..grow {
                counts.set_count(self.at(negative, k), 0);
            }
            *self.span_mut(negative) = Span {
                offset: i,
                len: span.len + grow,
            };
        } else if i >= span.offset + span.len as i32 {
            self.span_mut(negative).len = (i - span.offset + 1) as u32;
        }
        debug_assert!(self.positive.len + self.negative.len <= self.budget);
        let at = self.at(negative, (i - self.span(negative).offset) as u32);
        counts.set_count(at, counts.count(at) + n);
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) by nearest rank, `zero` samples being 0: the bucket of the
    /// `⌈q·n⌉`-th smallest sample (the first for q = 0), estimated by the harmonic mean of its
    /// bounds, within [`super::relative_error`]; NaN if empty.
    pub fn quantile<C: Counts + ?Sized>(&self, counts: &C, zero: u64, q: f64) -> f64 {
        let n = zero + self.total(counts);
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        // The harmonic mean of the bounds γ^i and γ^(i+1), as γ^i·2/(1 + 1/γ) (no overflow).
        let gamma_log2 = 2f64.powi(-i32::from(self.scale));
        let factor = 2.0 / (1.0 + (-gamma_log2).exp2());
        let estimate = |i: i32| (f64::from(i) * gamma_log2).exp2() * factor;
        let mut seen = 0u64;
        for k in (0..self.negative.len).rev() {
            seen += self.bucket(counts, true, k);
            if seen >= rank {
                return -estimate(self.negative.offset + k as i32);
            }
        }
        seen += zero;
        if seen >= rank {
            return 0.0;
        }
        for k in 0..self.positive.len {
            seen += self.bucket(counts, false, k);
            if seen >= rank {
                return estimate(self.positive.offset + k as i32);
            }
        }
        unreachable!("the ranks add up to the count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_round_trips_through_its_word() {
        assert_eq!(Frame::from_word(0), Frame::empty(CAPACITY as u32));
        for f in [
            Frame::empty(6),
            Frame {
                scale: MIN_SCALE,
                positive: Span {
                    offset: -68_737,
                    len: 3,
                },
                negative: Span {
                    offset: 65_535,
                    len: 29,
                },
                budget: 32,
            },
            Frame {
                scale: 0,
                positive: Span { offset: 0, len: 0 },
                negative: Span { offset: -1, len: 16 },
                budget: 16,
            },
        ] {
            assert_eq!(Frame::from_word(f.to_word()), f);
        }
    }

    #[test]
    fn both_signs_share_one_area_and_u32_counts_match_u64() {
        let (mut a, mut b) = (Frame::empty(8), Frame::empty(8));
        let (mut wide, mut narrow) = ([0u64; 8], [0u32; 8]);
        for v in [1.5, -1.5, 1.6, -3.0, 1.7, -1.5, 1.5] {
            a.fold(&mut wide[..], v);
            b.fold(&mut narrow[..], v);
        }
        assert_eq!(a, b);
        assert!(wide.iter().zip(narrow).all(|(w, n)| *w == u64::from(n)));
        assert_eq!(a.total(&wide[..]), 7);
        assert!(a.positive.len + a.negative.len <= 8, "{a:?}");
        assert_eq!(a.quantile(&wide[..], 0, 0.0), -a.quantile(&wide[..], 0, 0.0).abs());
        assert!(a.quantile(&wide[..], 0, 1.0) > 1.6);
        a.clear(&mut wide[..]);
        assert_eq!((a, wide), (Frame::empty(8), [0; 8]));
    }
}
