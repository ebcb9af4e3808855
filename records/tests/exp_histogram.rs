//! The exponential histogram against exact sorted quantiles, and its merge: split at random over
//! k = 1…8 histograms and merged in any order, the counts are identical to one histogram's.

use proptest::prelude::*;
use records::exp_histogram::{relative_error, CAPACITY, MAX_SCALE};
use records::ExpHistogram;

const QUANTILES: [f64; 7] = [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0];

/// The nearest-rank quantile of sorted samples (the definition `ExpHistogram::quantile` reads).
fn exact(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len() as u64;
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    sorted[rank as usize - 1]
}

fn narrow() -> impl Strategy<Value = f64> {
    // Both signs, zeros, magnitudes within a ratio of 1.18 (at most 16 buckets a sign at scale 6).
    prop_oneof![
        6 => 1.0f64..1.18,
        2 => -1.18f64..-1.0,
        1 => Just(0.0),
        1 => Just(1.125),
    ]
}

fn moderate() -> impl Strategy<Value = f64> {
    // One sign, a ratio of 5: downscaled to scale 3 in 32 buckets, 2 in 16.
    prop_oneof![9 => 20.0f64..100.0, 1 => Just(0.0)]
}

fn wide() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (any::<bool>(), 1.0f64..10.0, -300i32..300)
            .prop_map(|(neg, m, e)| (if neg { -m } else { m }) * 10f64.powi(e)),
        1 => Just(0.0),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE / 4.0),
    ]
}

fn check(values: &[f64], h: &ExpHistogram) -> Result<(), TestCaseError> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    prop_assert_eq!(h.count(), values.len() as u64);
    let bound = relative_error(h.scale()) * (1.0 + 1e-9);
    for q in QUANTILES {
        let (want, got) = (exact(&sorted, q), h.quantile(q));
        if want == 0.0 {
            prop_assert_eq!(got, 0.0);
        } else {
            prop_assert!(got.signum() == want.signum(), "q {}: {} vs {}", q, got, want);
            prop_assert!(
                ((got - want) / want).abs() <= bound,
                "q {} at scale {}: {} vs {}",
                q,
                h.scale(),
                got,
                want
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn quantiles_are_within_one_percent_where_the_range_allows(values in proptest::collection::vec(narrow(), 1..500)) {
        let mut h = ExpHistogram::new(32);
        for &v in &values {
            h.fold(v);
        }
        prop_assert_eq!(h.scale(), MAX_SCALE, "a ratio of 1.18 a sign fits 32 buckets at scale 6");
        prop_assert!(relative_error(h.scale()) <= 0.01);
        check(&values, &h)?;
    }

    #[test]
    fn wider_ranges_downscale_and_keep_the_scales_bound(
        values in prop_oneof![proptest::collection::vec(wide(), 1..300), proptest::collection::vec(moderate(), 1..300)],
        budget in prop_oneof![Just(6u32), Just(16), Just(32)],
    ) {
        let mut h = ExpHistogram::new(budget);
        for &v in &values {
            h.fold(v);
        }
        let f = h.frame();
        prop_assert!(f.positive.len + f.negative.len <= budget);
        check(&values, &h)?;
    }

    #[test]
    fn merged_partials_hold_one_histograms_counts(
        values in prop_oneof![
            proptest::collection::vec(narrow(), 1..400),
            proptest::collection::vec(moderate(), 1..400),
            proptest::collection::vec(wide(), 1..400),
        ],
        k in 1usize..=8,
        seed in any::<u64>(),
        budget in prop_oneof![Just(6u32), Just(16), Just(CAPACITY as u32)],
    ) {
        let mut single = ExpHistogram::new(budget);
        let mut parts = vec![ExpHistogram::new(budget); k];
        let mut x = seed | 1;
        for &v in &values {
            single.fold(v);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            parts[(x % k as u64) as usize].fold(v);
        }
        // Merge in a seed-chosen order, into the first or into an empty one.
        let mut order: Vec<usize> = (0..k).collect();
        order.rotate_left((seed % k as u64) as usize);
        let mut merged = ExpHistogram::new(budget);
        for i in order {
            merged.merge(&parts[i]);
        }
        prop_assert_eq!(&merged, &single);
        for q in QUANTILES {
            prop_assert_eq!(merged.quantile(q).to_bits(), single.quantile(q).to_bits());
        }
    }
}

#[test]
fn histograms_of_different_scales_merge_by_downscaling_the_finer() {
    let (mut fine, mut coarse) = (ExpHistogram::new(32), ExpHistogram::new(32));
    for v in [1.05, 1.06, 1.07] {
        fine.fold(v);
    }
    for v in [1.0e-3, 1.0, 1.0e3] {
        coarse.fold(v);
    }
    assert_eq!(fine.scale(), MAX_SCALE);
    assert_eq!(coarse.scale(), 0, "20 octaves in 32 buckets: one a power of two");
    let mut m = fine;
    m.merge(&coarse);
    assert_eq!((m.scale(), m.count()), (coarse.scale(), 6));
    let mut back = coarse;
    back.merge(&fine);
    assert_eq!(m, back, "either way round");
}

#[test]
fn powers_of_two_are_upper_bounds() {
    // OTLP: bucket i holds (γ^i, γ^(i+1)], so 1.0 is the last value of bucket −1.
    assert_eq!(ExpHistogram::index(1.0), -1);
    assert_eq!(ExpHistogram::index(2.0), (1 << MAX_SCALE) - 1);
    assert_eq!(ExpHistogram::index(1.0 + f64::EPSILON), 0);
    assert_eq!(ExpHistogram::index(f64::MAX), (1024 << MAX_SCALE) - 1);
}
