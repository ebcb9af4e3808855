//! Several aggd instances, one stream: readings of a few keys split at random over k = 1…8
//! pipelines (a shared subscription), each folding its share into its own windows and emitting
//! partial aggregates; `records::merge_partials` over each (key, window)'s partials gives the
//! aggregate one aggd emits over the whole stream. Count, sum (grid values: every float sum is
//! exact), min, max, last, `last_ms` and every histogram count (so every quantile) identical; stddev within 1e-12 of the samples' largest
//! magnitude. The single aggd sees readings of equal time in the order of their pipelines'
//! instance names, the tie rule of `last`.

use std::collections::BTreeMap;

use aggd::clock::Panes;
use aggd::store::MemStore;
use aggd::{WindowConfig, Windows};
use proptest::prelude::*;
use records::{merge_partials, Aggregate, FixedText, Reading, Statistics};

const T0: u64 = 1_700_000_000_000;

fn config() -> WindowConfig {
    WindowConfig {
        panes: Panes::new(400, 100).unwrap(),
        max_keys: 8,
        idle_ttl_ms: 400,
        statistics: Statistics::ALL,
        histogram_buckets: 16,
    }
}

/// What one aggd emits for these readings (value, key, time), in order, the wall clock at
/// each reading's time, and everything closed at the end.
fn aggd(readings: impl Iterator<Item = (f64, u8, u64)>) -> Vec<Aggregate> {
    let cfg = config();
    let mut w = Windows::open(MemStore::tables(&cfg), cfg, T0).ok().unwrap().0;
    let mut out = Vec::new();
    let mut end = T0;
    for (pos, (value, key, t)) in readings.enumerate() {
        let mut r = Reading::new(format!("k{key}").as_bytes(), b"s", b"u", value, 0).unwrap();
        r.received_ms = t;
        let mut now = t;
        if let Some(b) = w.due_before(&r, &mut now, &mut || t) {
            w.emit_through(b, &mut out);
        }
        w.fold(pos as u64, &r).unwrap();
        end = t;
    }
    w.emit_due(end + 1000, &mut out);
    out
}

fn grid() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-(1i64 << 20)..(1i64 << 20), 0u32..8).prop_map(|(m, k)| m as f64 / f64::from(1u32 << k)),
        1 => Just(0.0),
        1 => Just(-2.5),
    ]
}

/// (k, readings as (value, key, time step, pipeline)).
fn case() -> impl Strategy<Value = (usize, Vec<(f64, u8, u64, usize)>)> {
    (1usize..=8).prop_flat_map(|k| {
        (
            Just(k),
            proptest::collection::vec((grid(), 0u8..3, 0u64..40, 0..k), 1..300),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn merged_partials_of_k_aggds_give_one_aggds_aggregates((k, steps) in case()) {
        let mut t = T0;
        let mut all: Vec<(f64, u8, u64, usize)> = steps
            .into_iter()
            .map(|(v, key, dt, i)| {
                t += dt;
                (v, key, t, i)
            })
            .collect();
        all.sort_by_key(|&(_, _, t, i)| (t, i));
        let single = aggd(all.iter().map(|&(v, key, t, _)| (v, key, t)));
        let names: Vec<String> = (0..k).map(|i| format!("edge-{i}")).collect();
        let mut partials: BTreeMap<(String, u64), Vec<(usize, Aggregate)>> = BTreeMap::new();
        for i in 0..k {
            for a in aggd(all.iter().filter(|r| r.3 == i).map(|&(v, key, t, _)| (v, key, t))) {
                partials.entry((a.device().text().into_owned(), a.window_end_ms)).or_default().push((i, a));
            }
        }
        prop_assert_eq!(partials.len(), single.len(), "the same (key, window)s");
        let scale = all.iter().map(|r| r.0.abs()).fold(0.0, f64::max);
        for s in &single {
            let parts = &partials[&(s.device().text().into_owned(), s.window_end_ms)];
            let (m, _) = merge_partials(parts.iter().map(|(i, a)| (names[*i].as_str(), a))).unwrap();
            prop_assert_eq!(
                (m.count, m.sum.to_bits(), m.min, m.max, m.last.to_bits(), m.last_ms),
                (s.count, s.sum.to_bits(), s.min, s.max, s.last.to_bits(), s.last_ms),
                "{:?} vs {:?}", m, s
            );
            prop_assert_eq!((m.window_start_ms, m.statistics()), (s.window_start_ms, s.statistics()));
            prop_assert!((m.stddev() - s.stddev()).abs() <= 1e-12 * scale, "{:?} vs {:?}", m, s);
            // Every histogram count, so every quantile: identical.
            prop_assert_eq!(m.histogram, s.histogram);
            prop_assert_eq!(s.histogram.count(), s.count);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(m.histogram.quantile(q).to_bits(), s.histogram.quantile(q).to_bits());
            }
        }
    }
}
