//! The merge property: a stream of samples split at random over k = 1…8 pipelines (and, within
//! each, over panes of a window, as aggd folds them), each emitting a partial aggregate, merges
//! back into the aggregate one pipeline gives over the whole stream.
//!
//! - count, min, max, last and `last_ms`: identical, for every stream;
//! - sum and mean: identical where float addition of the samples is exact (the grid streams:
//!   multiples of 2⁻⁷ below 2²⁰ in magnitude), else within 1e-12 relative to the samples' mean
//!   magnitude Σ|x|/n (the wide streams, over 300 decades);
//! - stddev: within 1e-12 relative to the samples' root mean square √(Σx²/n), the scale float
//!   arithmetic on them rounds at (a spread far below the mean is rounded by the single pipeline
//!   too, by as much).
//!
//! The single pipeline sees the samples in time order, and samples of equal time from two
//! pipelines in the order of their instance names: the tie rule of `last`.

use proptest::prelude::*;
use records::{merge_partials, Aggregate};

const T0: u64 = 1_700_000_000_000;
/// Panes of the window (ms).
const PANE_MS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Grid values: every partial sum is exact.
    Grid,
    /// Magnitudes from 1e-150 to 1e150, both signs, and zeros.
    Wide,
}

/// One sample: value, time step from the previous sample (0: the same ms), instance.
type Sample = (f64, u64, usize);

fn grid() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-(1i64 << 20)..(1i64 << 20), 0u32..8).prop_map(|(m, k)| m as f64 / f64::from(1u32 << k)),
        1 => Just(0.0),
        1 => (-3i64..3).prop_map(|m| m as f64),
    ]
}

fn wide() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (any::<bool>(), 1.0f64..10.0, -150i32..150)
            .prop_map(|(neg, m, e)| (if neg { -m } else { m }) * 10f64.powi(e)),
        1 => Just(0.0),
        1 => -1e6f64..1e6,
    ]
}

fn values(kind: Kind) -> BoxedStrategy<Vec<f64>> {
    let n = 1usize..200;
    match kind {
        Kind::Grid => prop_oneof![
            3 => proptest::collection::vec(grid(), n.clone()),
            // Equal values (one sample among them).
            1 => (grid(), n.clone()).prop_map(|(v, n)| vec![v; n]),
            1 => (grid(), 1usize..3).prop_map(|(v, n)| vec![v; n]),
        ]
        .boxed(),
        Kind::Wide => prop_oneof![
            3 => proptest::collection::vec(wide(), n.clone()),
            1 => (wide(), n).prop_map(|(v, n)| vec![v; n]),
        ]
        .boxed(),
    }
}

fn case() -> impl Strategy<Value = (Kind, usize, Vec<Sample>, Vec<usize>)> {
    (prop_oneof![Just(Kind::Grid), Just(Kind::Wide)], 1usize..=8).prop_flat_map(|(kind, k)| {
        values(kind).prop_flat_map(move |vals| {
            let n = vals.len();
            (
                Just(kind),
                Just(k),
                (proptest::collection::vec((0u64..4, 0..k), n)).prop_map(move |steps| {
                    vals.iter()
                        .zip(steps)
                        .map(|(&v, (dt, i))| (v, dt, i))
                        .collect::<Vec<Sample>>()
                }),
                // The order the partials are merged in.
                Just((0..k).collect::<Vec<usize>>()).prop_shuffle(),
            )
        })
    })
}

fn instance(i: usize) -> String {
    format!("edge-{i}")
}

/// The samples with their times, in the order one pipeline would fold them: by time, and at
/// equal times by instance.
fn timed(samples: &[Sample]) -> Vec<(f64, u64, usize)> {
    let mut t = T0;
    let mut out: Vec<(f64, u64, usize)> = samples
        .iter()
        .map(|&(v, dt, i)| {
            t += dt;
            (v, t, i)
        })
        .collect();
    out.sort_by_key(|&(_, t, i)| (t, i));
    out
}

/// What one pipeline emits for these samples (in fold order): one aggregate per pane, merged
/// pane after pane as aggd merges a window's panes.
fn pipeline(samples: impl Iterator<Item = (f64, u64)>) -> Aggregate {
    let fresh = || {
        let mut a = Aggregate::new(b"dev", b"s", b"u").unwrap();
        (a.window_start_ms, a.window_end_ms) = (T0, T0 + 1000);
        a
    };
    let mut window = fresh();
    let mut pane: Option<(u64, Aggregate)> = None;
    for (v, t) in samples {
        let p = t / PANE_MS;
        if let Some((q, a)) = &mut pane {
            if *q == p {
                a.fold(v, t);
                continue;
            }
        }
        if let Some((_, a)) = pane.take() {
            window.merge(&a, true);
        }
        let mut a = fresh();
        a.fold(v, t);
        pane = Some((p, a));
    }
    if let Some((_, a)) = pane {
        window.merge(&a, true);
    }
    window
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn merged_partials_give_the_single_pipelines_aggregate((kind, k, samples, order) in case()) {
        let all = timed(&samples);
        let single = pipeline(all.iter().map(|&(v, t, _)| (v, t)));
        let partials: Vec<Aggregate> = (0..k)
            .map(|i| pipeline(all.iter().filter(|s| s.2 == i).map(|&(v, t, _)| (v, t))))
            .collect();
        let names: Vec<String> = (0..k).map(instance).collect();
        let (merged, from) = merge_partials(order.iter().map(|&i| (names[i].as_str(), &partials[i]))).unwrap();

        let last = all.last().unwrap();
        prop_assert_eq!(from, names[last.2].as_str());
        prop_assert_eq!(
            (merged.count, merged.min, merged.max, merged.last.to_bits(), merged.last_ms),
            (single.count, single.min, single.max, single.last.to_bits(), single.last_ms)
        );
        prop_assert_eq!((single.count, single.last, single.last_ms), (all.len() as u64, last.0, last.1));
        // Every histogram count, hence every quantile: identical.
        prop_assert_eq!(merged.histogram, single.histogram);
        prop_assert_eq!(single.histogram.count(), single.count);
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            prop_assert_eq!(merged.histogram.quantile(q).to_bits(), single.histogram.quantile(q).to_bits());
        }

        let n = all.len() as f64;
        let mean_abs = all.iter().map(|s| s.0.abs()).sum::<f64>() / n;
        let rms = (all.iter().map(|s| s.0 * s.0).sum::<f64>() / n).sqrt();
        if kind == Kind::Grid {
            prop_assert_eq!(merged.sum.to_bits(), single.sum.to_bits());
            prop_assert_eq!(merged.mean().to_bits(), single.mean().to_bits());
        } else {
            prop_assert!((merged.sum - single.sum).abs() <= 1e-12 * mean_abs * n, "sum {} vs {}", merged.sum, single.sum);
            prop_assert!((merged.mean() - single.mean()).abs() <= 1e-12 * mean_abs, "mean {} vs {}", merged.mean(), single.mean());
        }
        let (sm, ss) = (merged.stddev(), single.stddev());
        prop_assert!(sm.is_finite() && ss.is_finite());
        prop_assert!((sm - ss).abs() <= 1e-12 * rms, "stddev {} vs {} (rms {})", sm, ss, rms);
        if kind == Kind::Grid && all.iter().all(|s| s.0 == all[0].0) {
            prop_assert_eq!((sm, ss), (0.0, 0.0), "equal samples");
        }
    }
}

#[test]
fn a_stddev_far_below_the_mean_survives_the_merge() {
    // Where a sum of squares keeps no digit (see `Moments`): 1e6 ± 0.001 over four pipelines.
    let samples: Vec<(f64, u64)> = (0..4000)
        .map(|i| (1e6 + f64::from(i % 2) * 0.002, T0 + i as u64))
        .collect();
    let single = pipeline(samples.iter().copied());
    let partials: Vec<Aggregate> = (0..4)
        .map(|k| pipeline(samples.iter().copied().skip(k).step_by(4)))
        .collect();
    let names: Vec<String> = (0..4).map(instance).collect();
    let (merged, _) = merge_partials(names.iter().map(String::as_str).zip(&partials)).unwrap();
    for a in [single, merged] {
        assert!((a.stddev() - 0.001).abs() < 1e-4 * 0.001, "{}", a.stddev());
    }
}
