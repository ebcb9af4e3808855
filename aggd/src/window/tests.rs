//! Tests of the windows: folding, emission, eviction, the clock, the table's shape and the
//! statistics' layouts (the crash tests are in `crate::reference`).

use super::*;
use crate::clock::Panes;
use crate::row;
use crate::sink::{Bounded, Sink};
use crate::store::MemStore;
use records::Statistics;

const T0: u64 = 1_700_000_000_000;

fn cfg(window_ms: u64, emit_every_ms: u64, max_keys: u32) -> WindowConfig {
    WindowConfig {
        panes: Panes::new(window_ms, emit_every_ms).unwrap(),
        max_keys,
        idle_ttl_ms: window_ms,
        statistics: Statistics::ALL,
        histogram_buckets: 16,
    }
}

fn open(c: WindowConfig, now: u64) -> Windows<MemStore> {
    let (w, opened) = Windows::open(MemStore::tables(&c), c, now).ok().unwrap();
    assert!(opened.fresh);
    w
}

fn reading(dev: &str, value: f64, t: u64) -> Reading {
    let mut r = Reading::new(dev.as_bytes(), b"temp", b"C", value, 0).unwrap();
    r.received_ms = t;
    r
}

/// What the stage loop does with the reading at ring position `pos` when the wall clock
/// says `now`: emit what is due, then fold.
pub(crate) fn fold<K: Sink>(
    w: &mut Windows<MemStore>,
    pos: u64,
    r: &Reading,
    now: u64,
    sink: &mut K,
) -> Result<(), Reject> {
    let mut cached = now;
    if let Some(b) = w.due_before(r, &mut cached, &mut || now) {
        w.emit_through(b, sink);
    }
    w.fold(pos, r)
}

#[test]
fn a_window_slides_pane_by_pane() {
    // 3 panes of 100 ms.
    let mut w = open(cfg(300, 100, 8), T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 10, &mut out).unwrap();
    fold(&mut w, 1, &reading("a", 5.0, T0 + 20), T0 + 20, &mut out).unwrap();
    assert!(out.is_empty());
    w.emit_due(T0 + 100, &mut out);
    assert_eq!(out.len(), 1);
    let a = out[0];
    assert_eq!((a.window_start_ms, a.window_end_ms), (T0 - 200, T0 + 100));
    assert_eq!(
        (a.count, a.sum, a.min, a.max, a.last, a.mean()),
        (2, 6.0, 1.0, 5.0, 5.0, 3.0)
    );
    assert_eq!(a.device().text(), "a");
    assert_eq!(a.unit().text(), "C");
    fold(&mut w, 2, &reading("a", -2.0, T0 + 150), T0 + 150, &mut out).unwrap();
    w.emit_due(T0 + 200, &mut out);
    assert_eq!(
        (out[1].count, out[1].min, out[1].max, out[1].last),
        (3, -2.0, 5.0, -2.0)
    );
    // T0+300 still covers T0..T0+300; T0+400 keeps -2 only; T0+500 is empty.
    w.emit_due(T0 + 300, &mut out);
    w.emit_due(T0 + 400, &mut out);
    w.emit_due(T0 + 500, &mut out);
    let counts: Vec<u64> = out.iter().map(|a| a.count).collect();
    assert_eq!(counts, [2, 3, 3, 1]);
    assert_eq!(out[3].min, -2.0);
    // Empty windows are not emitted; the idle key is evicted once idle_ttl has passed.
    w.emit_due(T0 + 600, &mut out);
    assert_eq!(out.len(), 4);
    assert_eq!(w.keys(), 0);
    assert_eq!(w.take_tally().evicted_idle, 1);
}

#[test]
fn late_readings_go_to_the_open_pane_and_early_ones_to_the_wall_clock_pane() {
    let mut w = open(cfg(300, 100, 8), T0 + 50);
    let mut out = Vec::new();
    w.emit_due(T0 + 250, &mut out); // open pane: T0+200..T0+300
    fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 260, &mut out).unwrap(); // late
    fold(&mut w, 1, &reading("a", 2.0, T0 + 10_000), T0 + 260, &mut out).unwrap(); // future
    let t = w.take_tally();
    assert_eq!((t.late, t.early), (1, 1));
    assert!(out.is_empty(), "a future stamp emits nothing early");
    w.emit_due(T0 + 300, &mut out);
    assert_eq!((out[0].count, out[0].window_end_ms), (2, T0 + 300));
}

#[test]
fn a_reading_ahead_of_the_open_pane_emits_the_boundaries_before_it() {
    let mut w = open(cfg(300, 100, 8), T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 10, &mut out).unwrap();
    // The clock says T0+250; the next reading is stamped T0+120: boundary T0+100 first.
    fold(&mut w, 1, &reading("a", 3.0, T0 + 120), T0 + 250, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].window_end_ms, out[0].count), (T0 + 100, 1));
    w.emit_due(T0 + 250, &mut out);
    assert_eq!((out[1].window_end_ms, out[1].count, out[1].sum), (T0 + 200, 2, 4.0));
}

#[test]
fn bad_readings_are_rejected_and_still_consumed() {
    let mut w = open(cfg(300, 100, 8), T0);
    let mut out = Vec::new();
    assert_eq!(
        fold(&mut w, 0, &reading("a", f64::NAN, T0), T0, &mut out),
        Err(Reject::NonFinite)
    );
    let mut r = reading("a", 1.0, T0);
    r.set_ids(b"", b"temp", b"").unwrap();
    assert_eq!(fold(&mut w, 1, &r, T0, &mut out), Err(Reject::EmptyId));
    assert_eq!(w.folded(), 2);
    assert_eq!(w.keys(), 0);
}

#[test]
fn a_full_table_evicts_the_least_recently_seen_key() {
    let mut w = open(cfg(300, 100, 2), T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("old", 1.0, T0), T0, &mut out).unwrap();
    fold(&mut w, 1, &reading("mid", 2.0, T0 + 100), T0 + 100, &mut out).unwrap();
    fold(&mut w, 2, &reading("new", 3.0, T0 + 200), T0 + 200, &mut out).unwrap();
    let t = w.take_tally();
    assert_eq!((t.evicted_capacity, t.inserted), (1, 3));
    out.clear();
    w.emit_due(T0 + 300, &mut out);
    let mut keys: Vec<String> = out.iter().map(|a| a.device().text().into_owned()).collect();
    keys.sort();
    assert_eq!(keys, ["mid", "new"]);
}

#[test]
fn a_full_aggregates_ring_drops_and_counts_but_folding_goes_on() {
    let mut w = open(cfg(300, 100, 8), T0);
    let mut sink = Bounded {
        room: 2,
        ..Default::default()
    };
    for (i, d) in ["a", "b", "c", "d"].into_iter().enumerate() {
        fold(&mut w, i as u64, &reading(d, 1.0, T0), T0, &mut sink).unwrap();
    }
    w.emit_due(T0 + 100, &mut sink);
    let t = w.take_tally();
    assert_eq!((t.emitted, t.dropped), (2, 2));
    assert_eq!(w.sealed(), (T0 + 100) / 100);
}

#[test]
fn a_long_gap_emits_at_most_one_window_of_boundaries() {
    let mut w = open(cfg(300, 100, 8), T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("a", 1.0, T0), T0, &mut out).unwrap();
    w.emit_due(T0 + 3_600_000, &mut out);
    assert_eq!(out.iter().map(|a| a.count).collect::<Vec<_>>(), [1, 1, 1]);
    assert_eq!(w.sealed(), (T0 + 3_600_000) / 100);
    assert_eq!(w.ms_until_next_boundary(T0 + 3_600_040), 60);
}

#[test]
fn heads_stay_exact_across_a_multiple_of_two_to_the_40_panes() {
    // Rows keep their newest pane modulo 2⁴⁰: fold, evict, emit and reopen across the wrap.
    let wrap = (1u64 << row::HEAD_BITS) * 100;
    let t = wrap - 100; // pane 2⁴⁰ − 1
    let c = cfg(300, 100, 2);
    let mut w = open(c, t);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("old", 1.0, t), t, &mut out).unwrap();
    fold(&mut w, 1, &reading("mid", 2.0, t), t, &mut out).unwrap();
    fold(&mut w, 2, &reading("mid", 3.0, t + 100), t + 100, &mut out).unwrap();
    fold(&mut w, 3, &reading("new", 4.0, t + 200), t + 200, &mut out).unwrap();
    assert_eq!(
        w.take_tally().evicted_capacity,
        1,
        "the least recently seen across the wrap"
    );
    let (mut w, opened) = Windows::open(w.into_store(), c, t + 250).ok().unwrap();
    assert_eq!((opened.rows.live, opened.rows.invalid), (2, 0));
    fold(&mut w, 4, &reading("mid", 5.0, t + 250), t + 250, &mut out).unwrap();
    out.clear();
    w.emit_due(t + 300, &mut out);
    let mut got: Vec<(String, u64, f64)> = out
        .iter()
        .map(|a| (a.device().text().into_owned(), a.count, a.sum))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [("mid".into(), 3, 10.0), ("new".into(), 1, 4.0)]);
}

#[test]
fn skipping_2_to_the_39_panes_forgets_every_key_first() {
    let c = WindowConfig {
        idle_ttl_ms: u64::MAX / 2, // clamped to row::MAX_IDLE_PANES panes
        ..cfg(300, 100, 4)
    };
    let mut w = open(c, T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("a", 1.0, T0), T0, &mut out).unwrap();
    w.emit_due(T0 + 3_600_000, &mut out);
    assert_eq!((w.keys(), out.len()), (1, 3), "an hour idle: kept, as configured");
    let far = T0 + (row::SKIP_FORGETS + 3 + 36_000) * 100;
    w.emit_due(far, &mut out);
    assert_eq!((w.keys(), w.take_tally().evicted_idle, w.sealed()), (0, 1, far / 100));
    fold(&mut w, 1, &reading("a", 2.0, far), far, &mut out).unwrap();
    w.emit_due(far + 100, &mut out);
    assert_eq!((out.len(), out[3].count, out[3].sum), (4, 1, 2.0));
}

#[test]
fn a_clock_stepped_back_by_more_than_a_window_restarts_the_windows() {
    let mut w = open(cfg(300, 100, 8), T0);
    let mut out = Vec::new();
    fold(&mut w, 0, &reading("a", 1.0, T0), T0, &mut out).unwrap();
    w.emit_due(T0 - 250, &mut out); // back, but less than a window: wait for the clock
    assert_eq!((w.keys(), w.sealed()), (1, T0 / 100));
    w.emit_due(T0 - 3_600_000, &mut out);
    assert_eq!((w.keys(), w.sealed()), (0, (T0 - 3_600_000) / 100));
    assert_eq!(w.take_tally().evicted_clock, 1);
    fold(&mut w, 1, &reading("a", 2.0, T0 - 3_600_000), T0 - 3_600_000, &mut out).unwrap();
    w.emit_due(T0 - 3_600_000 + 100, &mut out);
    assert_eq!((out.len(), out[0].count, out[0].sum), (1, 1, 2.0));
}

#[test]
fn another_shape_is_refused() {
    let c = cfg(300, 100, 4);
    let w = open(c, T0);
    let store = w.into_store();
    let other = WindowConfig {
        panes: Panes::new(300, 150).unwrap(),
        ..c
    };
    let store = match Windows::open(store, WindowConfig { max_keys: 4, ..other }, T0) {
        Err(m) => {
            assert!(m.reason.contains("words"), "{}", m.reason);
            m.store
        }
        Ok(_) => panic!("a store of another size was accepted"),
    };
    let mut other_e = c;
    other_e.panes.emit_every_ms = 50;
    other_e.panes.panes = 3;
    match Windows::open(store, other_e, T0) {
        Err(m) => assert!(m.reason.contains("emit_every_ms"), "{}", m.reason),
        Ok(_) => panic!("another emit_every_ms was accepted"),
    }
}

#[test]
fn the_rows_hold_only_what_the_chosen_statistics_need() {
    let full = cfg(300, 100, 4);
    let mean = WindowConfig {
        statistics: Statistics::COUNT | Statistics::MEAN,
        ..full
    };
    assert_eq!(mean.words(), 4 * (3 + 2 + 3));
    let mut w = open(mean, T0);
    let mut out = Vec::new();
    for (i, v) in [21.123456789, 4.0, -1.0].into_iter().enumerate() {
        fold(&mut w, i as u64, &reading("a", v, T0 + 10 * i as u64), T0, &mut out).unwrap();
    }
    w.emit_due(T0 + 100, &mut out);
    let a = out[0];
    assert_eq!(a.statistics(), Statistics::COUNT | Statistics::MEAN);
    assert_eq!((a.count, a.mean()), (3, (21.123456789 + 4.0 - 1.0) / 3.0));
    // Min and max only: extremes exact, no sums stored.
    let extremes = WindowConfig {
        statistics: Statistics::MIN | Statistics::MAX,
        ..full
    };
    assert_eq!(extremes.words(), 4 * (3 + 2 + 6));
    let mut w = open(extremes, T0);
    let mut out = Vec::new();
    for (i, v) in [21.123456789, 4.0, -1.0].into_iter().enumerate() {
        fold(&mut w, i as u64, &reading("a", v, T0), T0, &mut out).unwrap();
    }
    w.emit_due(T0 + 100, &mut out);
    let a = out[0];
    assert_eq!(a.statistics(), Statistics::MIN | Statistics::MAX);
    assert_eq!((a.min, a.max), (-1.0, 21.123456789));
}

#[test]
fn a_table_of_other_pane_columns_is_refused_naming_the_statistics() {
    let min = WindowConfig {
        statistics: Statistics::COUNT | Statistics::MIN,
        ..cfg(300, 100, 4)
    };
    let max = WindowConfig {
        statistics: Statistics::COUNT | Statistics::MAX,
        ..min
    };
    assert_eq!(min.words(), max.words(), "same size, other layout");
    let store = open(min, T0).into_store();
    match Windows::open(store, max, T0) {
        Err(m) => {
            assert!(m.reason.contains("aggd.statistics = [count, max]"), "{}", m.reason);
            assert!(m.reason.contains("(count, min)"), "{}", m.reason);
        }
        Ok(_) => panic!("a table of other columns was accepted"),
    }
    // Sets that need the same columns share a table.
    let same = WindowConfig {
        statistics: Statistics::MIN,
        ..min
    };
    let store = open(min, T0).into_store();
    assert!(Windows::open(store, same, T0).is_ok());
    // Last keeps its time in every row: another layout.
    let last = WindowConfig {
        statistics: Statistics::LAST | Statistics::MIN,
        ..min
    };
    assert_eq!(last.words(), min.words() + 4, "one word per row");
    let store = open(min, T0).into_store();
    assert!(Windows::open(store, last, T0).is_err());
    // Histograms of another budget: another layout, named.
    let quantiles = WindowConfig {
        statistics: Statistics::COUNT | Statistics::QUANTILES,
        histogram_buckets: 16,
        ..min
    };
    assert_eq!(
        quantiles.words(),
        4 * (3 + 2 + 3 * 9) + 9,
        "the rows and the histogram journal"
    );
    let finer = WindowConfig {
        histogram_buckets: 32,
        ..quantiles
    };
    let store = open(quantiles, T0).into_store();
    match Windows::open(store, finer, T0) {
        Err(m) => assert!(m.reason.contains("137 words, 241 expected"), "{}", m.reason),
        Ok(_) => panic!("histograms of another budget were accepted"),
    }
    // The same size, other columns: named with the budget.
    let sums = WindowConfig {
        statistics: Statistics::SUM | Statistics::LAST,
        max_keys: 33,
        ..min
    };
    let nine = WindowConfig {
        max_keys: 9,
        ..quantiles
    };
    assert_eq!(sums.words(), nine.words(), "9 words × 33 rows = 32 × 9 + 9");
    let store = open(sums, T0).into_store();
    match Windows::open(store, nine, T0) {
        Err(m) => assert!(m.reason.contains("(count, histogram of 16 buckets)"), "{}", m.reason),
        Ok(_) => panic!("another layout of the same size was accepted"),
    }
}

#[test]
fn the_state_survives_reopening() {
    let c = cfg(300, 100, 4);
    let mut w = open(c, T0);
    let mut out = Vec::new();
    fold(&mut w, 7, &reading("a", 4.0, T0), T0, &mut out).unwrap();
    let (mut w, opened) = Windows::open(w.into_store(), c, T0 + 50).ok().unwrap();
    assert!(!opened.fresh && !opened.journal_undone);
    assert_eq!((opened.rows.live, w.folded()), (1, 8));
    w.emit_due(T0 + 100, &mut out);
    assert_eq!((out[0].count, out[0].sum), (1, 4.0));
}
