//! `ExpHistogram`: an OpenTelemetry base-2 exponential histogram (OTLP's
//! `ExponentialHistogramDataPoint`: scale, zero count, positive and negative buckets as an offset
//! and counts), the state quantiles are read from and that merges exactly.
//!
//! At scale `s` the base is `γ = 2^(2^-s)` and bucket `i` of a sign holds the magnitudes in
//! `(γ^i, γ^(i+1)]`. Every index is computed at [`MAX_SCALE`] and shifted down to the
//! histogram's scale (`i >> (MAX_SCALE − s)`, a floor), so a value lands in the same bucket
//! whichever way the histogram reached its scale: folded there directly, or downscaled, or
//! merged. That is what makes merging exact: histograms of different scales merge by downscaling
//! the finer one (adding pairs of adjacent buckets), then adding counts.
//!
//! **The downscaling rule.** Each sign keeps at most `max_buckets` consecutive buckets. A value
//! (or a merge) that would need more lowers the scale by the fewest steps that make both signs
//! fit. The scale a histogram ends at is therefore a function of its values alone: the largest
//! scale ≤ [`MAX_SCALE`] at which each sign's magnitudes span at most `max_buckets` buckets. One
//! pipeline's histogram and the merge of several pipelines' partials hold identical counts.
//!
//! **Accuracy.** A quantile is read as the nearest-rank sample's bucket, estimated by the
//! harmonic mean of the bucket's bounds: relative error at most `(γ − 1)/(γ + 1)`, 0.54 % at
//! [`MAX_SCALE`] 6, 1.08 % at 5, 2.2 % at 4 ([`relative_error`]). ≤ 1 % therefore holds while
//! each sign's magnitudes span at most `max_buckets / 64` octaves (160 buckets: a ratio of 5.6
//! between the smallest and the largest); a wider range is downscaled and says so by its scale.
//! Zeros are counted apart (zero threshold 0).
//!
//! Tested against exact sorted quantiles and, bucket by bucket, against Datadog's DDSketch with
//! the same γ (`tests/ddsketch.rs`). Not yet folded by aggd: the pane layout, its undo journal
//! and the aggregate's fields for quantiles are the rest of issue 21 (docs/decisions.md D23).

/// The finest scale: 64 buckets per power of two.
pub const MAX_SCALE: i8 = 6;
/// The coarsest scale: 2¹⁰²⁴ per bucket, so every finite f64 fits in two buckets.
pub const MIN_SCALE: i8 = -10;

/// The worst-case relative error of a quantile read at `scale`.
pub fn relative_error(scale: i8) -> f64 {
    let gamma = 2f64.powf(2f64.powi(-i32::from(scale)));
    (gamma - 1.0) / (gamma + 1.0)
}

/// One sign's buckets: `counts[k]` is bucket `offset + k`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buckets {
    /// The index of the first bucket.
    pub offset: i32,
    /// Counts of consecutive buckets (empty: no value of this sign).
    pub counts: Vec<u64>,
}

impl Buckets {
    fn end(&self) -> i32 {
        self.offset + self.counts.len() as i32
    }

    /// The range of indices after a downscale by `d`, if any bucket is held.
    fn range_at(&self, d: u32) -> Option<(i32, i32)> {
        (!self.counts.is_empty()).then(|| (self.offset >> d, (self.end() - 1) >> d))
    }

    fn downscale(&mut self, d: u32) {
        if d == 0 || self.counts.is_empty() {
            return;
        }
        let offset = self.offset >> d;
        let mut counts = vec![0u64; (((self.end() - 1) >> d) - offset + 1) as usize];
        for (k, &c) in self.counts.iter().enumerate() {
            counts[(((self.offset + k as i32) >> d) - offset) as usize] += c;
        }
        (self.offset, self.counts) = (offset, counts);
    }

    /// Adds `n` to bucket `i` (which the caller made fit).
    fn add(&mut self, i: i32, n: u64) {
        if self.counts.is_empty() {
            (self.offset, self.counts) = (i, vec![n]);
            return;
        }
        if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        } else if i >= self.end() {
            let len = (i - self.offset + 1) as usize;
            self.counts.resize(len, 0);
        }
        self.counts[(i - self.offset) as usize] += n;
    }
}

/// A base-2 exponential histogram.
///
/// ```
/// use records::ExpHistogram;
/// let mut h = ExpHistogram::new(160);
/// for v in 200..=1000 { h.fold(f64::from(v)) }
/// assert_eq!(h.scale, 6, "a ratio of 5 fits 160 buckets at the finest scale");
/// let p99 = h.quantile(0.99); // the 793rd of 801: 992
/// assert!((p99 - 992.0).abs() <= 0.0055 * 992.0, "{p99}");
/// for v in 1..200 { h.fold(f64::from(v)) }
/// assert_eq!(h.scale, 3, "a ratio of 1000 does not: 8 buckets a power of two");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpHistogram {
    /// The scale: `γ = 2^(2^-scale)`.
    pub scale: i8,
    /// Samples equal to 0.
    pub zero_count: u64,
    /// Buckets of positive samples.
    pub positive: Buckets,
    /// Buckets of negative samples, by magnitude.
    pub negative: Buckets,
    max_buckets: u32,
}

impl ExpHistogram {
    /// An empty histogram keeping at most `max_buckets` (at least 4) buckets per sign.
    pub fn new(max_buckets: u32) -> ExpHistogram {
        ExpHistogram {
            scale: MAX_SCALE,
            zero_count: 0,
            positive: Buckets::default(),
            negative: Buckets::default(),
            max_buckets: max_buckets.max(4),
        }
    }

    /// The bucket of magnitude `m` (positive, finite) at [`MAX_SCALE`].
    pub fn index(m: f64) -> i32 {
        debug_assert!(m > 0.0 && m.is_finite());
        let bits = m.to_bits();
        let (exp, mantissa) = (((bits >> 52) & 0x7ff) as i32, bits & ((1 << 52) - 1));
        if exp != 0 && mantissa == 0 {
            // An exact power of two is the upper bound of its bucket.
            return ((exp - 1023) << MAX_SCALE) - 1;
        }
        let i = (m.log2() * f64::from(1u32 << MAX_SCALE)).floor() as i32;
        // log2 may round across a bound: put the value where the bounds say.
        let bound = |i: i32| 2f64.powf(f64::from(i) / f64::from(1u32 << MAX_SCALE));
        if m <= bound(i) {
            i - 1
        } else if m > bound(i + 1) {
            i + 1
        } else {
            i
        }
    }

    /// Samples held.
    pub fn count(&self) -> u64 {
        let sum = |b: &Buckets| b.counts.iter().sum::<u64>();
        self.zero_count + sum(&self.positive) + sum(&self.negative)
    }

    /// Adds one finite sample.
    pub fn fold(&mut self, v: f64) {
        if v == 0.0 {
            self.zero_count += 1;
            return;
        }
        let i = ExpHistogram::index(v.abs()) >> (MAX_SCALE - self.scale) as u32;
        let (same, other) = if v > 0.0 {
            (&self.positive, &self.negative)
        } else {
            (&self.negative, &self.positive)
        };
        let widened = match same.range_at(0) {
            None => (i, i),
            Some((lo, hi)) => (lo.min(i), hi.max(i)),
        };
        let d = self.fitting_downscale(&[Some(widened), other.range_at(0)]);
        self.downscale(d);
        let i = i >> d;
        if v > 0.0 {
            self.positive.add(i, 1)
        } else {
            self.negative.add(i, 1)
        }
    }

    /// Adds another histogram's counts, at the finest scale both fit at.
    pub fn merge(&mut self, other: &ExpHistogram) {
        let common = self.scale.min(other.scale);
        let (ds, dothers) = ((self.scale - common) as u32, (other.scale - common) as u32);
        let union = |a: Option<(i32, i32)>, b: Option<(i32, i32)>| match (a, b) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        let ranges = [
            union(self.positive.range_at(ds), other.positive.range_at(dothers)),
            union(self.negative.range_at(ds), other.negative.range_at(dothers)),
        ];
        let d = self.fitting_downscale(&ranges);
        self.downscale(ds + d);
        let mut theirs = other.clone();
        theirs.downscale(dothers + d);
        for (mine, their) in [
            (&mut self.positive, &theirs.positive),
            (&mut self.negative, &theirs.negative),
        ] {
            for (k, &c) in their.counts.iter().enumerate() {
                if c != 0 {
                    mine.add(their.offset + k as i32, c);
                }
            }
        }
        self.zero_count += other.zero_count;
    }

    /// The fewest downscaling steps after which every range (indices at the current scale)
    /// spans at most `max_buckets` buckets.
    fn fitting_downscale(&self, ranges: &[Option<(i32, i32)>]) -> u32 {
        let most = (self.scale - MIN_SCALE) as u32;
        (0..=most)
            .find(|&d| {
                ranges
                    .iter()
                    .flatten()
                    .all(|&(lo, hi)| (((hi >> d) - (lo >> d)) as u32) < self.max_buckets)
            })
            .unwrap_or(most)
    }

    fn downscale(&mut self, d: u32) {
        if d > 0 {
            self.positive.downscale(d);
            self.negative.downscale(d);
            self.scale -= d as i8;
        }
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) by nearest rank: the bucket of the `⌈q·n⌉`-th smallest
    /// sample (the first for q = 0), estimated within [`relative_error`]; NaN if empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        // The harmonic mean of the bounds γ^i and γ^(i+1), as γ^i·2/(1 + 1/γ) (no overflow).
        let gamma_log2 = 2f64.powi(-i32::from(self.scale));
        let factor = 2.0 / (1.0 + (-gamma_log2).exp2());
        let estimate = |i: i32| (f64::from(i) * gamma_log2).exp2() * factor;
        let mut seen = 0u64;
        for (k, &c) in self.negative.counts.iter().enumerate().rev() {
            seen += c;
            if seen >= rank {
                return -estimate(self.negative.offset + k as i32);
            }
        }
        seen += self.zero_count;
        if seen >= rank {
            return 0.0;
        }
        for (k, &c) in self.positive.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return estimate(self.positive.offset + k as i32);
            }
        }
        unreachable!("the ranks add up to the count")
    }
}
