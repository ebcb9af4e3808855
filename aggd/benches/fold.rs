//! The cost of a statistic set in aggd's fold and emission, in process (no rings, no other
//! stage): `Windows` over process memory folds the same readings for each `[aggd] statistics`
//! set, sets interleaved rep by rep, and prints ns per reading for the fold and ns per
//! aggregate for the emission, with each set's ratio to the default set measured in the same
//! run. The end-to-end figure (decoded + aggd as processes, fed by `inject`) is
//! `scripts/bench-pipeline.sh` with `STATISTICS=...`; docs/benchmarks.md has both.
//!
//! `cargo bench -p aggd --bench fold` (knobs: `KEYS` [10000], `READINGS` [4000000], `REPS` [5]).
//! Readings are loadgen's values (`d·100 + s ± amp`) over KEYS keys, 10 sensors a device, stamped
//! over 120 s, so each key folds into every pane of two windows; the window is 60 s of 5 s
//! panes, as by default.

use std::time::Instant;

use aggd::clock::Panes;
use aggd::store::MemStore;
use aggd::{WindowConfig, Windows};
use records::{Aggregate, Reading, Statistics};

/// A sink that takes everything and keeps only the last (the stage's ring, without its memory
/// traffic: the bench measures the windows, not a growing Vec).
#[derive(Default)]
struct Counting {
    taken: usize,
    last: Option<Aggregate>,
}

impl aggd::sink::Sink for Counting {
    fn offer(&mut self, aggs: &[Aggregate]) -> usize {
        self.taken += aggs.len();
        self.last = aggs.last().copied();
        aggs.len()
    }

    fn last_handed_on(&self) -> Option<Aggregate> {
        self.last
    }
}

const T0: u64 = 1_700_000_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn readings(keys: u64, n: u64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            let k = i % keys;
            let (d, s) = (k / 10, k % 10);
            let value = (d * 100 + s) as f64 + 0.5 * ((i / keys % 11) as f64 - 5.0) / 5.0;
            let mut r = Reading::new(
                format!("dev{d:05}").as_bytes(),
                format!("sen{s:03}").as_bytes(),
                b"C",
                value,
                0,
            )
            .expect("ids fit");
            // Two windows of stamps over the run: each key lands in every pane.
            r.received_ms = T0 + i * 120_000 / n;
            r
        })
        .collect()
}

/// Folds every reading (emitting each boundary as the stamps pass it); returns (fold ns per
/// reading, emission ns per aggregate, aggregates).
fn run(statistics: Statistics, keys: u64, readings: &[Reading]) -> (f64, f64, usize) {
    let cfg = WindowConfig {
        panes: Panes::new(60_000, 5_000).expect("panes"),
        max_keys: keys as u32,
        idle_ttl_ms: 600_000,
        statistics,
        histogram_buckets: 16,
    };
    let mut w = Windows::open(MemStore::tables(&cfg), cfg, T0)
        .ok()
        .expect("a fresh table")
        .0;
    let mut out = Counting::default();
    let (mut fold_ns, mut emit_ns) = (0u128, 0u128);
    let mut start = Instant::now();
    for (pos, r) in readings.iter().enumerate() {
        let t = r.received_ms;
        let mut now = t;
        if let Some(b) = w.due_before(r, &mut now, &mut || t) {
            fold_ns += start.elapsed().as_nanos();
            let e = Instant::now();
            w.emit_through(b, &mut out);
            emit_ns += e.elapsed().as_nanos();
            start = Instant::now();
        }
        w.fold(pos as u64, r).expect("a good reading");
    }
    fold_ns += start.elapsed().as_nanos();
    let n = out.taken.max(1);
    (
        fold_ns as f64 / readings.len() as f64,
        emit_ns as f64 / n as f64,
        out.taken,
    )
}

fn main() {
    let (keys, n, reps) = (env("KEYS", 10_000), env("READINGS", 4_000_000), env("REPS", 5));
    let sets = [
        ("default", Statistics::DEFAULT),
        ("default+quantiles", Statistics::DEFAULT | Statistics::QUANTILES),
        ("count+mean", Statistics::COUNT | Statistics::MEAN),
        ("count+quantiles", Statistics::COUNT | Statistics::QUANTILES),
    ];
    let readings = readings(keys, n);
    let mut fold = vec![Vec::new(); sets.len()];
    let mut emit = vec![Vec::new(); sets.len()];
    for rep in 0..reps {
        for (i, (name, set)) in sets.iter().enumerate() {
            let (f, e, aggs) = run(*set, keys, &readings);
            println!("rep={rep} set={name} fold_ns_per_reading={f:.1} emit_ns_per_aggregate={e:.1} aggregates={aggs}");
            fold[i].push(f);
            emit[i].push(e);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f0, e0) = (median(&mut fold[0].clone()), median(&mut emit[0].clone()));
    for (i, (name, _)) in sets.iter().enumerate() {
        let (f, e) = (median(&mut fold[i]), median(&mut emit[i]));
        println!(
            "fold set={name} keys={keys} readings={n} reps={reps} fold_ns_median={f:.1} fold_ratio_to_default={:.2} emit_ns_median={e:.1} emit_ratio_to_default={:.2}",
            f / f0,
            e / e0
        );
    }
}
