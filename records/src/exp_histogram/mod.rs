//! `ExpHistogram`: an OpenTelemetry base-2 exponential histogram (OTLP's
//! `ExponentialHistogramDataPoint`: scale, zero count, positive and negative buckets as an offset
//! and counts), the state quantiles are read from and that merges exactly.
//!
//! At scale `s` the base is `γ = 2^(2^-s)` and bucket `i` of a sign holds the magnitudes in
//! `(γ^i, γ^(i+1)]`. Every index is computed at [`MAX_SCALE`] ([`index`]) and shifted down to
//! the histogram's scale (`i >> (MAX_SCALE − s)`, a floor), so a value lands in the same bucket
//! whichever way the histogram reached its scale: folded there directly, or downscaled, or
//! merged. That is what makes merging exact: histograms of different scales merge by downscaling
//! the finer one (adding runs of adjacent buckets), then adding counts.
//!
//! **The downscaling rule.** A histogram keeps at most `budget` buckets, both signs together
//! (at most [`CAPACITY`], 32). A value (or a merge) that would need more lowers the scale by the
//! fewest steps that make both signs fit. The scale a histogram ends at is therefore a function
//! of its values alone: the largest scale ≤ [`MAX_SCALE`] at which its magnitudes span at most
//! `budget` buckets. One pipeline's histogram and the merge of several pipelines' partials (of
//! the same budget) hold identical counts; so do a window's histogram and the merge of its
//! panes' ([`Frame`] is the one implementation both use).
//!
//! **Accuracy.** A quantile is read as the nearest-rank sample's bucket, estimated by the
//! harmonic mean of the bucket's bounds: relative error at most `(γ − 1)/(γ + 1)`, 0.54 % at
//! [`MAX_SCALE`] 6, 1.08 % at 5, 2.2 % at 4, 4.3 % at 3 ([`relative_error`]). A window whose
//! magnitudes span a ratio `r` (one sign) keeps scale 6 while `64·log2(r) < budget`: at the
//! default 16 buckets, `r` up to 1.19 at scale 6 and 1.41 at scale 5 (a temperature between 20
//! and 25 °C: scale 5), 2 at scale 4, 4 at scale 3. The scale travels with the histogram, so a
//! reader knows the bound of every quantile. Zeros are counted apart (zero threshold 0).
//!
//! Tested against exact sorted quantiles and, bucket by bucket, against Datadog's DDSketch with
//! the same γ (`tests/ddsketch.rs`).

mod frame;
mod index;

use bytemuck::{Pod, Zeroable};

pub use frame::{Counts, Frame, Span, CAPACITY, MIN_BUDGET};
pub use index::index;

/// The finest scale: 64 buckets per power of two.
pub const MAX_SCALE: i8 = 6;
/// The coarsest scale: 2¹⁰²⁴ per bucket, so a sign's finite magnitudes span at most 3 buckets.
pub const MIN_SCALE: i8 = -10;

/// The worst-case relative error of a quantile read at `scale` (1 at [`MIN_SCALE`], where γ is
/// 2¹⁰²⁴ and not a finite `f64`).
pub fn relative_error(scale: i8) -> f64 {
    let gamma = 2f64.powf(2f64.powi(-i32::from(scale)));
    if gamma.is_finite() {
        (gamma - 1.0) / (gamma + 1.0)
    } else {
        1.0
    }
}

/// A sign's OTLP buckets without the zero counts at either end (the offset moved past the leading
/// ones; `None` if it overflows).
fn trim_zeros((offset, counts): (i32, &[u64])) -> (Option<i32>, &[u64]) {
    let first = counts.iter().position(|&c| c != 0).unwrap_or(counts.len());
    let last = counts.iter().rposition(|&c| c != 0).map_or(first, |i| i + 1);
    let offset = i32::try_from(first).ok().and_then(|f| offset.checked_add(f));
    (offset, &counts[first..last])
}

/// A base-2 exponential histogram of at most [`CAPACITY`] buckets, fixed-size (272 bytes) so
/// that it travels inside an [`crate::Aggregate`] through the rings.
///
/// ```
/// use records::ExpHistogram;
/// let mut h = ExpHistogram::new(16);
/// for v in 200..=230 { h.fold(f64::from(v)) }
/// assert_eq!(h.scale(), 6, "a ratio of 1.15 fits 16 buckets at the finest scale");
/// let p90 = h.quantile(0.9); // the 28th of 31: 227
/// assert!((p90 - 227.0).abs() <= 0.0055 * 227.0, "{p90}");
/// for v in 1..200 { h.fold(f64::from(v)) }
/// assert_eq!(h.scale(), 0, "a ratio of 230 does not: one bucket a power of two");
/// let (offset, counts) = h.positive();
/// assert_eq!((offset, counts.len(), counts.sum::<u64>()), (-1, 9, 230));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ExpHistogram {
    /// The [`Frame`] as a word (0: empty, at [`MAX_SCALE`], budget [`CAPACITY`]).
    frame: u64,
    /// Samples equal to 0.
    pub zero_count: u64,
    /// The buckets' counts: positive from the start, negative from the end of the first
    /// `budget` (see [`Frame`]); the rest are 0.
    counts: [u64; CAPACITY],
}

const _: () = assert!(std::mem::size_of::<ExpHistogram>() == 272);

impl Default for ExpHistogram {
    fn default() -> Self {
        ExpHistogram::zeroed()
    }
}

impl ExpHistogram {
    /// An empty histogram keeping at most `budget` buckets (clamped to [`MIN_BUDGET`] ..=
    /// [`CAPACITY`]).
    pub fn new(budget: u32) -> ExpHistogram {
        let mut h = ExpHistogram::zeroed();
        h.frame = Frame::empty(budget).to_word();
        h
    }

    /// Empties it and sets its budget, writing one word: for a histogram whose counts are
    /// known to be 0 (a zeroed one, as in a new `Aggregate`).
    #[inline]
    pub(crate) fn empty_zeroed(&mut self, budget: u32) {
        debug_assert!(self.counts.iter().all(|&c| c == 0) && self.zero_count == 0);
        self.frame = Frame::empty(budget).to_word();
    }

    /// Where the buckets are.
    pub fn frame(&self) -> Frame {
        Frame::from_word(self.frame)
    }

    /// The scale: `γ = 2^(2^-scale)`.
    pub fn scale(&self) -> i8 {
        self.frame().scale
    }

    /// The most buckets it keeps.
    pub fn budget(&self) -> u32 {
        self.frame().budget
    }

    /// The bucket of magnitude `m` (positive, finite) at [`MAX_SCALE`] ([`index`]).
    pub fn index(m: f64) -> i32 {
        index(m)
    }

    /// Samples held.
    pub fn count(&self) -> u64 {
        self.zero_count + self.frame().total(&self.counts[..])
    }

    /// Adds one finite sample.
    #[inline]
    pub fn fold(&mut self, v: f64) {
        if v == 0.0 {
            self.zero_count += 1;
            return;
        }
        let mut f = self.frame();
        f.fold(&mut self.counts[..], v);
        self.frame = f.to_word();
    }

    /// Adds another histogram's counts, at the finest scale both fit at within this one's
    /// budget.
    pub fn merge(&mut self, other: &ExpHistogram) {
        self.merge_buckets(&other.frame(), &other.counts[..], other.zero_count);
    }

    /// Adds buckets held elsewhere (aggd's panes), and `zero` samples equal to 0.
    pub fn merge_buckets<C: Counts + ?Sized>(&mut self, frame: &Frame, counts: &C, zero: u64) {
        let mut f = self.frame();
        f.merge(&mut self.counts[..], frame, counts);
        self.frame = f.to_word();
        self.zero_count += zero;
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) by nearest rank: the bucket of the `⌈q·n⌉`-th smallest
    /// sample (the first for q = 0), estimated within [`relative_error`]; NaN if empty.
    pub fn quantile(&self, q: f64) -> f64 {
        self.frame().quantile(&self.counts[..], self.zero_count, q)
    }

    /// A histogram from its OTLP form (a payload's `histogram`: scale, zero count, each sign's
    /// offset and counts), keeping at most `budget` buckets (`[aggd] histogram_buckets` of the
    /// pipeline that emitted it). Zero counts at either end of a sign are dropped. `None` if
    /// the scale is out of range or the buckets do not fit the budget.
    ///
    /// ```
    /// use records::ExpHistogram;
    /// let mut h = ExpHistogram::new(16);
    /// [-2.0, 0.0, 3.0, 3.5].map(|v| h.fold(v));
    /// let ((po, p), (no, n)) = (h.positive(), h.negative());
    /// let (p, n): (Vec<u64>, Vec<u64>) = (p.collect(), n.collect());
    /// let back = ExpHistogram::from_otlp(h.scale(), h.zero_count, (po, &p), (no, &n), 16);
    /// assert_eq!(back, Some(h));
    /// assert_eq!(ExpHistogram::from_otlp(6, 0, (0, &[1; 17]), (0, &[]), 16), None, "over budget");
    /// assert_eq!(ExpHistogram::from_otlp(6, 0, (1 << 20, &[1]), (0, &[]), 16), None, "no such bucket");
    /// ```
    pub fn from_otlp(
        scale: i8,
        zero_count: u64,
        positive: (i32, &[u64]),
        negative: (i32, &[u64]),
        budget: u32,
    ) -> Option<ExpHistogram> {
        if !(MIN_SCALE..=MAX_SCALE).contains(&scale) {
            return None;
        }
        let mut frame = Frame::empty(budget);
        frame.scale = scale;
        let (positive, negative) = (trim_zeros(positive), trim_zeros(negative));
        if positive.1.len() + negative.1.len() > frame.budget as usize {
            return None;
        }
        let mut h = ExpHistogram::new(budget);
        for (side, (offset, counts)) in [(&mut frame.positive, positive), (&mut frame.negative, negative)] {
            if !counts.is_empty() {
                // A frame word keeps 20-bit offsets: every finite value's index fits.
                let offset = offset.filter(|o| (-(1 << 19)..(1 << 19) - 32).contains(o))?;
                *side = Span {
                    offset,
                    len: counts.len() as u32,
                };
            }
        }
        let b = frame.budget as usize;
        h.counts[..positive.1.len()].copy_from_slice(positive.1);
        for (k, &c) in negative.1.iter().enumerate() {
            h.counts[b - 1 - k] = c;
        }
        h.frame = frame.to_word();
        h.zero_count = zero_count;
        Some(h)
    }

    /// The positive buckets: the first one's index and the counts, in OTLP's order, read in
    /// place (no allocation: emitd serializes them for every aggregate).
    pub fn positive(&self) -> (i32, SignCounts<'_>) {
        self.side(false)
    }

    /// The negative buckets, by magnitude: the first one's index and the counts.
    pub fn negative(&self) -> (i32, SignCounts<'_>) {
        self.side(true)
    }

    fn side(&self, negative: bool) -> (i32, SignCounts<'_>) {
        let frame = self.frame();
        let span = if negative { frame.negative } else { frame.positive };
        let counts = SignCounts {
            frame,
            counts: &self.counts,
            negative,
            next: 0,
            len: span.len,
        };
        (if span.len == 0 { 0 } else { span.offset }, counts)
    }
}

/// One sign's bucket counts, from its first bucket up ([`ExpHistogram::positive`],
/// [`ExpHistogram::negative`]).
#[derive(Clone, Debug)]
pub struct SignCounts<'a> {
    frame: Frame,
    counts: &'a [u64],
    negative: bool,
    next: u32,
    len: u32,
}

impl Iterator for SignCounts<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        (self.next < self.len).then(|| {
            self.next += 1;
            self.frame.bucket(self.counts, self.negative, self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.len - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for SignCounts<'_> {}
