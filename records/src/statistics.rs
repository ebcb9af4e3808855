//! `Statistics`: which of an aggregate's statistics are chosen (`[aggd] statistics`), carried in
//! each `Aggregate` so that emitd publishes exactly those fields.

/// A set of statistics, one bit each.
///
/// ```
/// use records::Statistics;
/// let s = Statistics::COUNT | Statistics::MEAN;
/// assert!(s.contains(Statistics::MEAN) && !s.contains(Statistics::SUM));
/// assert_eq!(Statistics::from_name("stddev"), Some(Statistics::STDDEV));
/// assert_eq!(Statistics::DEFAULT.names().count(), 7);
/// assert_eq!(Statistics::ALL.names().count(), 9);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Statistics(u16);

impl Statistics {
    /// Samples in the window.
    pub const COUNT: Statistics = Statistics(1);
    /// Their sum.
    pub const SUM: Statistics = Statistics(1 << 1);
    /// Their mean.
    pub const MEAN: Statistics = Statistics(1 << 2);
    /// The smallest sample.
    pub const MIN: Statistics = Statistics(1 << 3);
    /// The largest sample.
    pub const MAX: Statistics = Statistics(1 << 4);
    /// The population standard deviation.
    pub const STDDEV: Statistics = Statistics(1 << 5);
    /// The most recent sample.
    pub const LAST: Statistics = Statistics(1 << 6);
    /// Quantiles (`[aggd] quantiles`), read from the window's exponential histogram.
    pub const QUANTILES: Statistics = Statistics(1 << 7);
    /// The window's exponential histogram itself (OTLP's form).
    pub const HISTOGRAM: Statistics = Statistics(1 << 8);
    /// None.
    pub const NONE: Statistics = Statistics(0);
    /// The default set: count to last (no quantiles, no histogram).
    pub const DEFAULT: Statistics = Statistics(0x7f);
    /// Every statistic.
    pub const ALL: Statistics = Statistics(0x1ff);

    const NAMED: [(&'static str, Statistics); 9] = [
        ("count", Statistics::COUNT),
        ("sum", Statistics::SUM),
        ("mean", Statistics::MEAN),
        ("min", Statistics::MIN),
        ("max", Statistics::MAX),
        ("stddev", Statistics::STDDEV),
        ("last", Statistics::LAST),
        ("quantiles", Statistics::QUANTILES),
        ("histogram", Statistics::HISTOGRAM),
    ];

    /// The set's bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The set of `bits` (bits that name no statistic are dropped).
    pub const fn from_bits(bits: u16) -> Statistics {
        Statistics(bits & Statistics::ALL.0)
    }

    /// True if every statistic of `other` is in the set.
    pub const fn contains(self, other: Statistics) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any statistic of `other` is in the set.
    pub const fn intersects(self, other: Statistics) -> bool {
        self.0 & other.0 != 0
    }

    /// The statistic called `name` (`count`, `sum`, `mean`, `min`, `max`, `stddev`, `last`,
    /// `quantiles`, `histogram`).
    pub fn from_name(name: &str) -> Option<Statistics> {
        Statistics::NAMED.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
    }

    /// The names of the set's statistics, in the order above.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Statistics::NAMED
            .into_iter()
            .filter(move |&(_, s)| self.contains(s))
            .map(|(n, _)| n)
    }
}

/// The aggregate's field for quantile `q` (0 ≤ q ≤ 1): `p` and 100·q as the shortest decimal,
/// shifted in the text of `q` rather than multiplied, so that no float rounding shows.
///
/// ```
/// use records::statistics::quantile_field;
/// let names: Vec<String> = [0.5, 0.9, 0.99, 0.999, 0.07, 0.0, 1.0, 0.00001].map(quantile_field).into();
/// assert_eq!(names, ["p50", "p90", "p99", "p99.9", "p7", "p0", "p100", "p0.001"]);
/// ```
pub fn quantile_field(q: f64) -> String {
    // Display of an f64 is its shortest round-trip decimal, never in exponent form.
    let text = q.to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() + 2;
    let padded = format!("{digits:0<point$}");
    let (whole, fraction) = padded.split_at(point);
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    if fraction.is_empty() {
        format!("p{whole}")
    } else {
        format!("p{whole}.{fraction}")
    }
}

impl std::ops::BitOr for Statistics {
    type Output = Statistics;
    fn bitor(self, rhs: Statistics) -> Statistics {
        Statistics(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for Statistics {
    type Output = Statistics;
    fn bitand(self, rhs: Statistics) -> Statistics {
        Statistics(self.0 & rhs.0)
    }
}

impl std::fmt::Display for Statistics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.names().collect();
        write!(f, "[{}]", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_bits_drop() {
        for name in Statistics::ALL.names() {
            let s = Statistics::from_name(name).unwrap();
            assert_eq!(s.names().collect::<Vec<_>>(), [name]);
        }
        assert_eq!(Statistics::from_name("median"), None);
        assert_eq!(Statistics::from_bits(0xffff), Statistics::ALL);
        assert_eq!((Statistics::MIN | Statistics::LAST).to_string(), "[min, last]");
        assert!(!Statistics::NONE.intersects(Statistics::ALL));
        assert_eq!(
            Statistics::ALL & (Statistics::MIN | Statistics::LAST),
            Statistics::MIN | Statistics::LAST
        );
    }
}
