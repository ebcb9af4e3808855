//! The seed's method as a test oracle: every raw sample kept with the pane it was assigned, and
//! each window computed from scratch at each boundary. The property tests feed the same random
//! streams (random keys, values, stamps late and early, random emission times) to it and to
//! [`Windows`], and require the same aggregates: count, min, max, last, `last_ms` and every
//! histogram count (the window's samples folded into one histogram) exactly, sum, mean and M2
//! (two-pass, here) up to float rounding. A second property kills the implementation at
//! random points (every `kill_point!` of `fold.rs`, `emit.rs` and `journal.rs`), reopens its store as a restarted process
//! would, and still requires exactly the crash-free oracle's aggregates: no reading lost or
//! folded twice, no aggregate lost or emitted twice.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use records::{Aggregate, ExpHistogram, FixedText, Reading, Statistics};

use crate::clock::Panes;
use crate::kill;
use crate::store::MemStore;
use crate::window::tests::fold;
use crate::window::{WindowConfig, Windows};

const T0: u64 = 1_700_000_000_000;

/// One aggregate, as either side emitted it.
#[derive(Clone, Debug)]
struct Agg {
    end: u64,
    start: u64,
    key: String,
    count: u64,
    sum: f64,
    m2: f64,
    min: f64,
    max: f64,
    last: f64,
    last_ms: u64,
    histogram: ExpHistogram,
    /// Σ|v| (oracle only): the scale of the summation error.
    abs: f64,
    /// Σv² (oracle only): the scale of M2's rounding.
    sq: f64,
}

impl Agg {
    fn of(a: &Aggregate) -> Agg {
        Agg {
            end: a.window_end_ms,
            start: a.window_start_ms,
            key: a.device().text().into_owned(),
            count: a.count,
            sum: a.sum,
            m2: a.m2,
            min: a.min,
            max: a.max,
            last: a.last,
            last_ms: a.last_ms,
            histogram: a.histogram,
            abs: f64::NAN,
            sq: f64::NAN,
        }
    }
}

/// The raw-sample oracle.
struct Oracle {
    panes: Panes,
    buckets: u32,
    sealed: u64,
    /// (key, assigned pane, value, time), in arrival order.
    samples: Vec<(u8, u64, f64, u64)>,
    out: Vec<Agg>,
}

impl Oracle {
    fn new(panes: Panes, buckets: u32, now: u64) -> Oracle {
        Oracle {
            panes,
            buckets,
            sealed: now / panes.emit_every_ms,
            samples: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The documented policy, restated: late readings go to the open pane; readings ahead of it
    /// emit the boundaries before their pane, but never past the wall clock.
    fn read(&mut self, key: u8, value: f64, t: u64, now: u64) {
        let e = self.panes.emit_every_ms;
        let mut p = t / e;
        if p < self.sealed {
            p = self.sealed;
        } else {
            p = p.min((now / e).max(self.sealed));
            self.advance(p);
        }
        self.samples.push((key, p, value, t));
    }

    fn drain(&mut self, now: u64) {
        self.advance(now / self.panes.emit_every_ms);
    }

    fn advance(&mut self, target: u64) {
        while self.sealed < target {
            self.sealed += 1;
            self.emit(self.sealed);
        }
    }

    fn emit(&mut self, b: u64) {
        let lo = b.saturating_sub(self.panes.panes);
        let mut keys: Vec<u8> = self.samples.iter().map(|s| s.0).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let in_window: Vec<(f64, u64)> = self
                .samples
                .iter()
                .filter(|s| s.0 == key && lo <= s.1 && s.1 < b)
                .map(|s| (s.2, s.3))
                .collect();
            let Some(&(last, last_ms)) = in_window.last() else {
                continue;
            };
            let vals: Vec<f64> = in_window.iter().map(|s| s.0).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let (start, end) = self.panes.window_at(b);
            let mut histogram = ExpHistogram::new(self.buckets);
            vals.iter().for_each(|&v| histogram.fold(v));
            self.out.push(Agg {
                end,
                start,
                key: format!("k{key}"),
                count: vals.len() as u64,
                sum: vals.iter().sum(),
                m2: vals.iter().map(|v| (v - mean) * (v - mean)).sum(),
                min: vals.iter().copied().fold(f64::INFINITY, f64::min),
                max: vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                last,
                last_ms,
                histogram,
                abs: vals.iter().map(|v| v.abs()).sum(),
                sq: vals.iter().map(|v| v * v).sum(),
            });
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A reading of key `k<key>` stamped `now + offset`.
    Read { key: u8, value: f64, offset: i64 },
    /// The wall clock moves on.
    Advance(u64),
    /// The readings ring is drained: emit what the wall clock says is due.
    Drain,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-400i32..400).prop_map(|x| f64::from(x) / 4.0),
        -1e6f64..1e6f64,
        Just(0.0)
    ]
}

fn ops(e: u64) -> impl Strategy<Value = Vec<Op>> {
    let e = e as i64;
    let op = prop_oneof![
        6 => (0u8..5, value(), -3 * e..=3 * e).prop_map(|(key, value, offset)| Op::Read { key, value, offset }),
        2 => (0..=3 * e as u64).prop_map(Op::Advance),
        1 => Just(Op::Drain),
    ];
    proptest::collection::vec(op, 0..150)
}

fn shape() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    // (emit_every_ms, panes, extra idle panes, start offset)
    (
        prop_oneof![Just(1u64), Just(2), Just(5), Just(10), Just(100)],
        1u64..=8,
        0u64..3,
        0u64..1000,
    )
}

fn config((e, p, extra, _): (u64, u64, u64, u64)) -> WindowConfig {
    WindowConfig {
        panes: Panes::new(e * p, e).unwrap(),
        max_keys: 5,
        idle_ttl_ms: e * (p + extra),
        statistics: Statistics::ALL,
        histogram_buckets: 8,
    }
}

fn reading(key: u8, value: f64, t: u64) -> Reading {
    let mut r = Reading::new(format!("k{key}").as_bytes(), b"s", b"u", value, 0).unwrap();
    r.received_ms = t;
    r
}

/// Applies one op to the implementation. `pos` is the reading's ring position.
fn apply(w: &mut Windows<MemStore>, op: &Op, now: &mut u64, pos: Option<u64>, out: &mut Vec<Aggregate>) {
    match *op {
        Op::Read { key, value, offset } => {
            let t = now.saturating_add_signed(offset);
            fold(
                w,
                pos.expect("a read has a position"),
                &reading(key, value, t),
                *now,
                out,
            )
            .unwrap();
        }
        Op::Advance(ms) => *now += ms,
        Op::Drain => w.emit_due(*now, out),
    }
}

fn oracle(cfg: &WindowConfig, start: u64, ops: &[Op]) -> Vec<Agg> {
    let mut o = Oracle::new(cfg.panes, cfg.histogram_buckets, start);
    let mut now = start;
    for op in ops {
        match *op {
            Op::Read { key, value, offset } => o.read(key, value, now.saturating_add_signed(offset), now),
            Op::Advance(ms) => now += ms,
            Op::Drain => o.drain(now),
        }
    }
    o.drain(now + cfg.panes.window_ms() + cfg.panes.emit_every_ms);
    o.out
}

fn positions(ops: &[Op]) -> Vec<Option<u64>> {
    let mut next = 0;
    ops.iter()
        .map(|op| {
            matches!(op, Op::Read { .. }).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

fn same(got: Vec<Agg>, want: Vec<Agg>) -> Result<(), TestCaseError> {
    same_chosen(got, want, Statistics::ALL)
}

/// [`same`] for the fields `chosen` needs (the count always: it decides what is emitted).
fn same_chosen(mut got: Vec<Agg>, mut want: Vec<Agg>, chosen: Statistics) -> Result<(), TestCaseError> {
    let has = |s| chosen.contains(s);
    let order = |a: &Agg, b: &Agg| (a.end, &a.key).cmp(&(b.end, &b.key));
    got.sort_by(order);
    want.sort_by(order);
    prop_assert_eq!(got.len(), want.len(), "got {:?}\nwant {:?}", got, want);
    for (g, w) in got.iter().zip(&want) {
        prop_assert_eq!(
            (g.end, g.start, &g.key, g.count),
            (w.end, w.start, &w.key, w.count),
            "{:?} vs {:?}",
            g,
            w
        );
        prop_assert!(
            (!has(Statistics::MIN) || g.min == w.min)
                && (!has(Statistics::MAX) || g.max == w.max)
                && (!has(Statistics::LAST) || (g.last, g.last_ms) == (w.last, w.last_ms)),
            "{:?} vs {:?}",
            g,
            w
        );
        if chosen.intersects(Statistics::QUANTILES | Statistics::HISTOGRAM) {
            prop_assert_eq!(g.histogram, w.histogram, "histograms of {:?} vs {:?}", g, w);
        }
        let tol = 1e-12 * (w.count as f64) * (w.abs + 1.0);
        if has(Statistics::SUM) || has(Statistics::MEAN) || has(Statistics::STDDEV) {
            prop_assert!((g.sum - w.sum).abs() <= tol, "sum {:?} vs {:?}", g, w);
            prop_assert!(
                (g.sum / g.count as f64 - w.sum / w.count as f64).abs() <= tol,
                "mean {:?} vs {:?}",
                g,
                w
            );
        }
        if has(Statistics::STDDEV) {
            let tol_sq = 1e-12 * (w.count as f64) * (w.sq + 1.0);
            prop_assert!(g.m2 >= 0.0 && (g.m2 - w.m2).abs() <= tol_sq, "m2 {:?} vs {:?}", g, w);
        }
    }
    Ok(())
}

fn quiet_kills() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<kill::Killed>() {
                previous(info)
            }
        }));
    });
}

fn case() -> impl Strategy<Value = ((u64, u64, u64, u64), Vec<Op>)> {
    shape().prop_flat_map(|s| (Just(s), ops(s.0)))
}

fn open(cfg: WindowConfig, start: u64) -> Windows<MemStore> {
    Windows::open(MemStore::tables(&cfg), cfg, start).ok().unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn panes_give_the_raw_sample_aggregates((shape, ops) in case()) {
        let cfg = config(shape);
        let start = T0 + shape.3;
        let mut w = open(cfg, start);
        let mut out = Vec::new();
        let mut now = start;
        for (op, pos) in ops.iter().zip(positions(&ops)) {
            apply(&mut w, op, &mut now, pos, &mut out);
        }
        w.emit_due(now + cfg.panes.window_ms() + cfg.panes.emit_every_ms, &mut out);
        same(out.iter().map(Agg::of).collect(), oracle(&cfg, start, &ops))?;
    }

    #[test]
    fn a_kill_anywhere_loses_and_repeats_nothing(
        (shape, ops) in case(),
        kills in proptest::collection::vec(1u64..80, 1..6),
    ) {
        let cfg = config(shape);
        let start = T0 + shape.3;
        let out = run_with_kills(cfg, start, &ops, kills);
        same(out.iter().map(Agg::of).collect(), oracle(&cfg, start, &ops))?;
    }

    #[test]
    fn any_statistics_survive_kills_exactly(
        (shape, ops) in case(),
        kills in proptest::collection::vec(1u64..80, 0..4),
        bits in 1u16..=0x1ff,
        buckets in prop_oneof![Just(8u32), Just(16), Just(32)],
    ) {
        let cfg = WindowConfig {
            statistics: Statistics::from_bits(bits),
            histogram_buckets: buckets,
            ..config(shape)
        };
        let start = T0 + shape.3;
        let out = run_with_kills(cfg, start, &ops, kills);
        prop_assert!(out.iter().all(|a| a.statistics() == cfg.statistics));
        same_chosen(out.iter().map(Agg::of).collect(), oracle(&cfg, start, &ops), cfg.statistics)?;
    }
}

/// Runs `ops`, killed at each of the `kills` countdowns in turn, and returns every aggregate
/// handed on, after a final emission that closes every window.
fn run_with_kills(cfg: WindowConfig, start: u64, ops: &[Op], kills: Vec<u64>) -> Vec<Aggregate> {
    quiet_kills();
    let mut w = open(cfg, start);
    let mut out = Vec::new();
    let mut now = start;
    let pos = positions(ops);
    let mut kills = kills.into_iter();
    kill::arm(kills.next().unwrap_or(0));
    let mut i = 0;
    while i < ops.len() {
        match catch_unwind(AssertUnwindSafe(|| apply(&mut w, &ops[i], &mut now, pos[i], &mut out))) {
            Ok(()) => i += 1,
            Err(payload) if payload.is::<kill::Killed>() => {
                // A new process: the store survives, the heap does not. It first finishes an
                // interrupted emission, then redoes the op it was killed in, unless that was
                // a reading it had already folded (the ring resumes at FOLDED).
                w = Windows::open(w.into_store(), cfg, now).ok().unwrap().0;
                w.finish_interrupted_emission(&mut out);
                if pos[i].is_some_and(|p| p < w.folded()) {
                    i += 1;
                }
                kill::arm(kills.next().unwrap_or(0));
            }
            Err(payload) => resume_unwind(payload),
        }
    }
    kill::arm(0);
    w.emit_due(now + cfg.panes.window_ms() + cfg.panes.emit_every_ms, &mut out);
    out
}

#[test]
fn every_kill_point_of_a_fold_is_recovered_exactly() {
    quiet_kills();
    let cfg = config((10, 3, 0, 0));
    let read = |value, offset| Op::Read { key: 1, value, offset };
    let mut undone = 0;
    let mut points = 0;
    for n in 1..100 {
        let mut w = open(cfg, T0);
        let mut out = Vec::new();
        let mut now = T0;
        apply(&mut w, &read(2.0, 0), &mut now, Some(0), &mut out);
        kill::arm(n);
        let hit = catch_unwind(AssertUnwindSafe(|| {
            apply(&mut w, &read(5.0, 1), &mut now, Some(1), &mut out)
        }))
        .is_err();
        kill::arm(0);
        if !hit {
            break;
        }
        points += 1;
        let (mut w, opened) = Windows::open(w.into_store(), cfg, now).ok().unwrap();
        undone += usize::from(opened.journal_undone);
        if opened.journal_undone {
            let rm = w.rows_mut().row_mut(0);
            assert_eq!(
                (
                    rm.panes.get(cfg.panes.slot_of(cfg.panes.pane_of(T0))).count,
                    rm.header.last,
                    rm.last_ms.as_deref().copied()
                ),
                (1, 2.0, Some(T0)),
                "the journal puts back the pane, last and its time (kill point {n})"
            );
        }
        if w.folded() == 1 {
            apply(&mut w, &read(5.0, 1), &mut now, Some(1), &mut out);
        }
        w.emit_due(now + 10, &mut out);
        let a = out.pop().unwrap();
        assert_eq!(
            (a.count, a.sum, a.min, a.max, a.last, a.last_ms),
            (2, 7.0, 2.0, 5.0, 5.0, T0 + 1),
            "after a kill at point {n}"
        );
    }
    assert!(points >= 4, "only {points} kill points in a fold");
    assert!(undone >= 3, "the journal undid {undone} folds");
}

#[test]
fn every_kill_point_of_the_key_text_is_recovered_exactly() {
    // One row: k1 (unit "u"), then k2 (unit "v") evicts k1 and takes its row, then k2 again in
    // unit "w". Killed at each kill point in turn (text written, row named, text released...),
    // the restarted windows must give k2's exact window, and exactly the text the rows name.
    quiet_kills();
    let cfg = WindowConfig {
        max_keys: 1,
        ..config((10, 3, 0, 0))
    };
    let reads = [(1u8, "u", 2.0), (2, "v", 5.0), (2, "w", 7.0)];
    let read = |i: usize| {
        let (key, unit, value) = reads[i];
        let mut r = Reading::new(format!("k{key}").as_bytes(), b"s", unit.as_bytes(), value, 0).unwrap();
        r.received_ms = T0;
        r
    };
    let mut points = 0;
    for n in 1..300 {
        let mut w = open(cfg, T0);
        let mut out = Vec::new();
        kill::arm(n);
        let mut killed = false;
        let mut i = 0;
        while i < reads.len() {
            match catch_unwind(AssertUnwindSafe(|| fold(&mut w, i as u64, &read(i), T0, &mut out))) {
                Ok(verdict) => {
                    verdict.unwrap();
                    i += 1;
                }
                Err(payload) if payload.is::<kill::Killed>() => {
                    killed = true;
                    w = Windows::open(w.into_store(), cfg, T0).ok().unwrap().0;
                    w.finish_interrupted_emission(&mut out);
                    if (i as u64) < w.folded() {
                        i += 1;
                    }
                }
                Err(payload) => resume_unwind(payload),
            }
        }
        kill::arm(0);
        if !killed {
            break;
        }
        points += 1;
        assert_eq!(
            w.texts(),
            3,
            "k2, s and w are named; k1, u and v are free (kill point {n})"
        );
        let mut w = Windows::open(w.into_store(), cfg, T0).ok().unwrap().0;
        assert_eq!(w.texts(), 3, "a restart agrees (kill point {n})");
        w.emit_due(T0 + 10, &mut out);
        let a = out.last().unwrap();
        assert_eq!(
            (a.device().text(), a.unit().text(), a.count, a.sum, a.last),
            ("k2".into(), "w".into(), 2, 12.0, 7.0),
            "after a kill at point {n}"
        );
    }
    assert!(points >= 12, "only {points} kill points");
}
