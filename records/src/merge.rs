//! The merge of partial aggregates. When several pipelines share one subscription (MQTT
//! `$share/...`), each emits, per key and window, a *partial* aggregate of the samples it
//! received (the payload's `instance` tells them apart); their merge is the aggregate one
//! pipeline would have emitted over all the samples. The rule per statistic, written once:
//!
//! | statistic | the partials carry | merged |
//! |---|---|---|
//! | `count` | count | the sum of the counts: exact |
//! | `sum` | sum | the sum of the sums: exact wherever float addition is (else within its rounding) |
//! | `mean` | count, sum | merged sum / merged count |
//! | `stddev` | count, sum, M2 | Chan et al.: `M2 = M2ₐ + M2_b + δ²·nₐ·n_b/n`, `δ = mean_b − meanₐ` ([`Moments::merge`]); never a sum of squares |
//! | `min`, `max` | min, max | the smaller, the larger: exact |
//! | `last` | last, `last_ms`, instance | the partial whose `last_ms` is the latest; at equal `last_ms`, the one of the greater instance name (byte order) ([`is_later`]) |
//! | `histogram` | the exponential histogram | the finer of two scales downscaled to the coarser (and further if the union needs it, by the rule of [`crate::exp_histogram`]), then counts added: exact |
//! | `quantiles` | the histogram | read from the merged histogram: a pure function of its counts, so identical |
//!
//! Partials of no samples (count 0) carry nothing and are skipped. The merged aggregate carries
//! the statistics that every partial carried, and the unit of its `last`'s partial (a key's
//! unit is that of its latest reading). Merging is exact in count, min, max, last, `last_ms`
//! and every histogram count whatever the order (given partials of one histogram budget,
//! `[aggd] histogram_buckets`); sum, mean and stddev are what float arithmetic gives, within
//! 1e-12 of the single pipeline's relative to the samples' magnitude (`tests/merge.rs`).
//!
//! Downstream, from published payloads: a partial's `count`, `mean` and `stddev` give its
//! moments ([`Moments::from_published`]), so choose `count` and `mean` with `stddev`, and
//! `last` (which brings `last_ms`) with the instance, if the payloads are to be merged.

use crate::aggregate::Aggregate;
use crate::reading::Field;

/// Why a set of partials cannot be merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotMergeable {
    /// There were no partials.
    Nothing,
    /// They are of different keys (device, sensor).
    OtherKeys,
    /// They are of different windows.
    OtherWindows,
}

/// True if a `last` received at `a_ms` by instance `a` is later than one received at `b_ms` by
/// instance `b`: the later time, and at equal times the greater instance name (byte order).
#[inline]
pub fn is_later(a_ms: u64, a: &str, b_ms: u64, b: &str) -> bool {
    (a_ms, a.as_bytes()) > (b_ms, b.as_bytes())
}

impl Aggregate {
    /// Merges `other`, a partial of the same key and window over other samples, into this one
    /// (the rules are in [`crate::merge`]). `other_is_later`: `other`'s `last` is the later of
    /// the two ([`is_later`]); the caller knows the instances.
    pub fn merge(&mut self, other: &Aggregate, other_is_later: bool) {
        let statistics = self.statistics() & other.statistics();
        if other.count != 0 {
            if self.count == 0 {
                let window = (self.window_start_ms, self.window_end_ms);
                *self = *other;
                (self.window_start_ms, self.window_end_ms) = window;
            } else {
                let mut m = self.moments();
                m.merge(&other.moments());
                self.set_moments(m);
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
                if other_is_later {
                    (self.last, self.last_ms) = (other.last, other.last_ms);
                    (self.unit, self.unit_len) = (other.unit, other.unit_len);
                }
                self.histogram.merge(&other.histogram);
            }
        }
        self.set_statistics(statistics);
    }
}

/// Merges the partials of one key and window, each with the instance that emitted it, in the
/// order given. Returns the merged aggregate and the instance whose `last` it carries.
///
/// ```
/// use records::{merge_partials, Aggregate};
/// let (mut a, mut b) = (Aggregate::new(b"d", b"s", b"C").unwrap(), Aggregate::new(b"d", b"s", b"C").unwrap());
/// a.fold(1.0, 10);
/// a.fold(5.0, 30);
/// b.fold(3.0, 30);
/// let (m, from) = merge_partials([("edge-a", &a), ("edge-b", &b)]).unwrap();
/// assert_eq!((m.count, m.sum, m.min, m.max), (3, 9.0, 1.0, 5.0));
/// assert_eq!((m.last, m.last_ms, from), (3.0, 30, "edge-b"), "a tie in time goes to the greater instance");
/// ```
pub fn merge_partials<'a>(
    partials: impl IntoIterator<Item = (&'a str, &'a Aggregate)>,
) -> Result<(Aggregate, &'a str), NotMergeable> {
    let mut partials = partials.into_iter();
    let (mut from, first) = partials.next().ok_or(NotMergeable::Nothing)?;
    let mut merged = *first;
    let key = |a: &'a Aggregate| -> (Field<'a>, Field<'a>) { (a.device(), a.sensor()) };
    for (instance, p) in partials {
        if key(p) != key(first) {
            return Err(NotMergeable::OtherKeys);
        }
        if (p.window_start_ms, p.window_end_ms) != (first.window_start_ms, first.window_end_ms) {
            return Err(NotMergeable::OtherWindows);
        }
        let later = p.count != 0 && (merged.count == 0 || is_later(p.last_ms, instance, merged.last_ms, from));
        merged.merge(p, later);
        if later {
            from = instance;
        }
    }
    Ok((merged, from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedText, Statistics};

    fn partial(unit: &[u8], samples: &[(f64, u64)]) -> Aggregate {
        let mut a = Aggregate::new(b"d", b"s", unit).unwrap();
        (a.window_start_ms, a.window_end_ms) = (0, 60_000);
        for &(v, t) in samples {
            a.fold(v, t);
        }
        a
    }

    #[test]
    fn the_later_last_wins_and_brings_its_unit() {
        let a = partial(b"C", &[(1.0, 5), (2.0, 20)]);
        let b = partial(b"F", &[(70.0, 10), (71.0, 21)]);
        for order in [[("x", &a), ("y", &b)], [("y", &b), ("x", &a)]] {
            let (m, from) = merge_partials(order).unwrap();
            assert_eq!((m.last, m.last_ms, from, m.unit().text()), (71.0, 21, "y", "F".into()));
            assert_eq!((m.count, m.min, m.max), (4, 1.0, 71.0));
        }
        let tie = partial(b"K", &[(300.0, 21)]);
        let (m, from) = merge_partials([("z", &tie), ("y", &b)]).unwrap();
        assert_eq!((m.last, from), (300.0, "z"), "equal times: the greater instance");
        let (m, from) = merge_partials([("a", &tie), ("y", &b)]).unwrap();
        assert_eq!((m.last, from), (71.0, "y"));
    }

    #[test]
    fn empty_partials_are_skipped_and_statistics_intersect() {
        let mut a = partial(b"C", &[(4.0, 5)]);
        a.set_statistics(Statistics::COUNT | Statistics::MIN | Statistics::LAST);
        let empty = partial(b"F", &[]);
        let (m, from) = merge_partials([("z", &empty), ("a", &a), ("zz", &empty)]).unwrap();
        assert_eq!(
            (m.count, m.min, m.last, from, m.unit().text()),
            (1, 4.0, 4.0, "a", "C".into())
        );
        assert_eq!((m.window_start_ms, m.window_end_ms), (0, 60_000));
        assert_eq!(m.statistics(), Statistics::COUNT | Statistics::MIN | Statistics::LAST);
        let mut b = partial(b"C", &[(1.0, 1)]);
        b.set_statistics(Statistics::MIN | Statistics::MAX);
        let (m, _) = merge_partials([("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.statistics(), Statistics::MIN);
    }

    #[test]
    fn other_keys_and_windows_are_refused() {
        let a = partial(b"C", &[(1.0, 1)]);
        let mut other_window = a;
        other_window.window_end_ms += 1;
        let other_key = Aggregate::new(b"d", b"t", b"C").unwrap();
        assert_eq!(merge_partials(std::iter::empty()).unwrap_err(), NotMergeable::Nothing);
        assert_eq!(
            merge_partials([("a", &a), ("b", &other_window)]).unwrap_err(),
            NotMergeable::OtherWindows
        );
        assert_eq!(
            merge_partials([("a", &a), ("b", &other_key)]).unwrap_err(),
            NotMergeable::OtherKeys
        );
    }
}
