//! `Moments`: the count, sum and M2 (sum of squared deviations from the mean) of a set of
//! samples — what count, sum, mean and stddev are read from — with the one-sample update
//! (Welford) and the merge of two disjoint sets (Chan, Golub and LeVeque's parallel update).
//!
//! Why not a sum of squares: the variance as Σx²/n − mean² cancels catastrophically when the
//! mean is large against the spread (readings of 1e6 ± 0.001 lose every digit of it, and two
//! pipelines summing in another order disagree in all of them). M2 keeps the deviations
//! themselves: folding `x` adds `(x − mean_before)·(x − mean_after)`, never negative, and
//! merging two sets adds `δ²·nₐ·n_b/n`, `δ` the difference of their means. The mean is read as
//! `sum / count`, so the sum stays exact wherever float addition is.

/// Count, sum and M2 of a set of samples.
///
/// ```
/// use records::Moments;
/// let (mut a, mut b) = (Moments::EMPTY, Moments::EMPTY);
/// for x in [1.0, 2.0] { a.fold(x) }
/// for x in [3.0, 4.0] { b.fold(x) }
/// a.merge(&b);
/// assert_eq!((a.count, a.sum, a.m2, a.mean()), (4, 10.0, 5.0, 2.5));
/// assert_eq!(a.stddev(), 1.25f64.sqrt());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// Samples.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Σ (x − mean)²: M2 of Welford and of Chan et al.
    pub m2: f64,
}

impl Moments {
    /// No samples.
    pub const EMPTY: Moments = Moments {
        count: 0,
        sum: 0.0,
        m2: 0.0,
    };

    /// The moments `count`, `sum` and `m2`.
    #[inline]
    pub const fn new(count: u64, sum: f64, m2: f64) -> Moments {
        Moments { count, sum, m2 }
    }

    /// Adds one sample (Welford's update, on the sum).
    #[inline]
    pub fn fold(&mut self, x: f64) {
        *self = self.folded(x);
    }

    /// The moments with `x` added.
    #[inline]
    pub fn folded(self, x: f64) -> Moments {
        if self.count == 0 {
            return Moments {
                count: 1,
                sum: x,
                m2: 0.0,
            };
        }
        let before = self.sum / self.count as f64;
        let (count, sum) = (self.count + 1, self.sum + x);
        let after = sum / count as f64;
        Moments {
            count,
            sum,
            m2: self.m2 + (x - before) * (x - after),
        }
    }

    /// Adds the moments of another, disjoint set of samples (Chan et al.'s parallel update).
    #[inline]
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let delta = other.sum / nb - self.sum / na;
        let count = self.count + other.count;
        self.m2 = self.m2 + other.m2 + delta * delta * (na * nb / count as f64);
        self.sum += other.sum;
        self.count = count;
    }

    /// The mean, or NaN for no samples.
    #[inline]
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }

    /// The population standard deviation, `√(M2/n)`, or NaN for no samples.
    #[inline]
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }

    /// The moments a published aggregate's `count`, `mean` and `stddev` stand for (for merging
    /// payloads downstream): `sum = mean·count`, `M2 = stddev²·count`.
    pub fn from_published(count: u64, mean: f64, stddev: f64) -> Moments {
        let n = count as f64;
        Moments {
            count,
            sum: mean * n,
            m2: stddev * stddev * n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_mean_keeps_the_spread() {
        // 1e6 ± 0.001: Σx²/n − mean² has no digit of the variance left (both terms are 1e12,
        // whose rounding step is 1.2e-4 against a variance of 1e-6); M2 keeps the deviations.
        let xs: Vec<f64> = (0..4000).map(|i| 1e6 + f64::from(i % 2) * 0.002).collect();
        let m = xs.iter().fold(Moments::EMPTY, |m, &x| m.folded(x));
        assert!((m.stddev() - 0.001).abs() < 1e-4 * 0.001, "{}", m.stddev());
        let n = xs.len() as f64;
        let sum_sq: f64 = xs.iter().map(|x| x * x).sum();
        let naive = (sum_sq / n - m.mean() * m.mean()).max(0.0).sqrt();
        assert!((naive - 0.001).abs() > 0.1 * 0.001, "a sum of squares got {naive}");
        let equal = [7.25; 5].iter().fold(Moments::EMPTY, |m, &x| m.folded(x));
        assert_eq!((equal.m2, equal.stddev()), (0.0, 0.0), "equal samples: exactly 0");
    }

    #[test]
    fn merging_empties_changes_nothing_and_published_fields_round_trip() {
        let mut m = Moments::EMPTY;
        m.merge(&Moments::EMPTY);
        assert_eq!(m, Moments::EMPTY);
        assert!(m.mean().is_nan() && m.stddev().is_nan());
        let one = Moments::EMPTY.folded(-3.0);
        m.merge(&one);
        assert_eq!(m, one);
        m.merge(&Moments::EMPTY);
        assert_eq!(m, one);
        let m = [1.0, 2.0, 4.0, 8.0].iter().fold(Moments::EMPTY, |m, &x| m.folded(x));
        let back = Moments::from_published(m.count, m.mean(), m.stddev());
        assert_eq!((back.count, back.sum), (4, 15.0));
        assert!((back.m2 - m.m2).abs() <= 1e-12 * m.m2, "{back:?} vs {m:?}");
    }
}
