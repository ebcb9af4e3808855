//! `Statistics`: which of an aggregate's statistics are chosen (`[aggd] statistics`), carried in
//! each `Aggregate` so that emitd publishes exactly those fields.

/// A set of statistics, one bit each.
///
/// ```
/// use records::Statistics;
/// let s = Statistics::COUNT | Statistics::MEAN;
/// assert!(s.contains(Statistics::MEAN) && !s.contains(Statistics::SUM));
/// assert_eq!(Statistics::from_name("stddev"), Some(Statistics::STDDEV));
/// assert_eq!(Statistics::ALL.names().count(), 7);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Statistics(u8);

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
    /// None.
    pub const NONE: Statistics = Statistics(0);
    /// Every statistic (the default).
    pub const ALL: Statistics = Statistics(0x7f);

    const NAMED: [(&'static str, Statistics); 7] = [
        ("count", Statistics::COUNT),
        ("sum", Statistics::SUM),
        ("mean", Statistics::MEAN),
        ("min", Statistics::MIN),
        ("max", Statistics::MAX),
        ("stddev", Statistics::STDDEV),
        ("last", Statistics::LAST),
    ];

    /// The set's bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set of `bits` (bits that name no statistic are dropped).
    pub const fn from_bits(bits: u8) -> Statistics {
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

    /// The statistic called `name` (`count`, `sum`, `mean`, `min`, `max`, `stddev`, `last`).
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
        assert_eq!(Statistics::from_bits(0xff), Statistics::ALL);
        assert_eq!((Statistics::MIN | Statistics::LAST).to_string(), "[min, last]");
        assert!(!Statistics::NONE.intersects(Statistics::ALL));
        assert_eq!(
            Statistics::ALL & (Statistics::MIN | Statistics::LAST),
            Statistics::MIN | Statistics::LAST
        );
    }
}
