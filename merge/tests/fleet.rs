//! The merger's core against one pipeline: a stream of samples over a few keys and windows,
//! split at random over k = 1…5 pipelines, each pipeline's partials (and its watermark after
//! each window) fed in a random interleaving that keeps each pipeline's own order. Every
//! (key, window) is merged exactly once, and equals the aggregate one pipeline computes over
//! all of its samples: count, min, max, last, `last_ms` and every histogram count identical, the
//! sum identical on grid values, stddev within 1e-9. Then a pipeline that falls silent past the
//! timeout: the windows merge without it, its partials arrive late, and the last revision of
//! each (key, window) is again the single pipeline's; redelivered partials change nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use records::{Aggregate, FixedText};
use telemetry_merge::{Merged, Merger, Partial, Verdict};

const WINDOW_MS: u64 = 1000;

/// (value, key, window, pipeline, time within the window)
type Sample = (f64, u8, u64, usize, u64);

enum Event {
    Partial(Box<Partial>),
    Watermark(String, u64),
}

fn name(i: usize) -> String {
    format!("edge-{i}")
}

fn fresh(key: u8, w: u64) -> Aggregate {
    let mut a = Aggregate::new(format!("dev{key}").as_bytes(), b"temp", b"C").unwrap();
    (a.window_start_ms, a.window_end_ms) = (w * WINDOW_MS, (w + 1) * WINDOW_MS);
    a
}

/// Folds the samples, in time order (ties by pipeline, the `last` rule), per (key, window).
fn aggregates<'a>(samples: impl Iterator<Item = &'a Sample>) -> BTreeMap<(u8, u64), Aggregate> {
    let mut sorted: Vec<&Sample> = samples.collect();
    sorted.sort_by_key(|s| (s.2, s.4, s.3));
    let mut out = BTreeMap::new();
    for &&(v, key, w, _, t) in &sorted {
        out.entry((key, w))
            .or_insert_with(|| fresh(key, w))
            .fold(v, w * WINDOW_MS + t);
    }
    out
}

/// Each pipeline's events: its partials of window w, then its watermark for w.
fn events(samples: &[Sample], k: usize, windows: u64) -> Vec<Vec<Event>> {
    (0..k)
        .map(|i| {
            let mine = aggregates(samples.iter().filter(|s| s.3 == i));
            let mut out = Vec::new();
            for w in 0..windows {
                for ((_, pw), a) in &mine {
                    if *pw == w {
                        let mut a = *a;
                        a.set_statistics(records::Statistics::ALL);
                        let p = Partial {
                            instance: name(i),
                            aggregate: a,
                        };
                        out.push(Event::Partial(Box::new(p)));
                    }
                }
                out.push(Event::Watermark(name(i), (w + 1) * WINDOW_MS));
            }
            out
        })
        .collect()
}

fn feed(m: &mut Merger, e: Event, now: u64, out: &mut Vec<Merged>) {
    match e {
        Event::Partial(p) => match m.partial(*p, now) {
            Verdict::Late(merged) => out.push(*merged),
            Verdict::Pending => {}
            Verdict::Duplicate => panic!("no duplicate was sent"),
        },
        Event::Watermark(i, w) => m.watermark(&i, w, now),
    }
    out.extend(m.complete(now));
}

fn assert_same(m: &Aggregate, s: &Aggregate) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        (m.count, m.sum.to_bits(), m.min, m.max, m.last.to_bits(), m.last_ms),
        (s.count, s.sum.to_bits(), s.min, s.max, s.last.to_bits(), s.last_ms)
    );
    prop_assert_eq!(m.histogram, s.histogram);
    prop_assert!(
        (m.stddev() - s.stddev()).abs() <= 1e-9 * s.stddev().max(1.0),
        "{} vs {}",
        m.stddev(),
        s.stddev()
    );
    Ok(())
}

/// The last revision of each (key, window).
fn last_revisions(out: &[Merged]) -> BTreeMap<(String, u64), &Merged> {
    let mut by_key: BTreeMap<(String, u64), &Merged> = BTreeMap::new();
    for m in out {
        let k = (m.aggregate.device().text().into_owned(), m.aggregate.window_end_ms);
        let e = by_key.entry(k).or_insert(m);
        if m.revision >= e.revision {
            *e = m;
        }
    }
    by_key
}

fn case() -> impl Strategy<Value = (usize, u64, Vec<Sample>, u64)> {
    (1usize..=5, 1u64..5).prop_flat_map(|(k, windows)| {
        let sample = (
            (-400i32..400).prop_map(|x| f64::from(x) / 4.0),
            0u8..3,
            0..windows,
            0..k,
            0u64..WINDOW_MS,
        );
        (
            Just(k),
            Just(windows),
            proptest::collection::vec(sample, 1..200),
            any::<u64>(),
        )
    })
}

/// A random interleaving of the pipelines' event lists, each kept in its order.
fn interleave(mut lists: Vec<Vec<Event>>, mut seed: u64) -> Vec<Event> {
    lists.iter_mut().for_each(|l| l.reverse());
    let mut out = Vec::new();
    while lists.iter().any(|l| !l.is_empty()) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let live: Vec<usize> = (0..lists.len()).filter(|&i| !lists[i].is_empty()).collect();
        let i = live[(seed % live.len() as u64) as usize];
        out.push(lists[i].pop().unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn every_window_merges_once_into_the_single_pipelines_aggregate((k, windows, samples, seed) in case()) {
        let single = aggregates(samples.iter());
        let mut m = Merger::new(10_000, u64::MAX, 0);
        let mut out = Vec::new();
        // Every pipeline's heartbeat was seen before its first partial (watermarks go out at
        // every emission, with or without partials), then past the start-up grace.
        (0..k).for_each(|i| m.watermark(&name(i), 0, 9_000));
        for e in interleave(events(&samples, k, windows), seed) {
            feed(&mut m, e, 10_000, &mut out);
        }
        prop_assert_eq!(out.len(), single.len(), "each (key, window) once");
        prop_assert!(out.iter().all(|o| o.revision == 0));
        for o in &out {
            let key = (o.aggregate.device().bytes()[3] - b'0', o.aggregate.window_end_ms / WINDOW_MS - 1);
            assert_same(&o.aggregate, &single[&key])?;
        }
        prop_assert_eq!(m.pending(), 0);
        prop_assert_eq!(m.counts().merged, single.len() as u64);
    }

    #[test]
    fn a_silent_pipelines_partials_come_late_as_revisions((k, windows, samples, seed) in case()) {
        prop_assume!(k >= 2);
        let single = aggregates(samples.iter());
        let mut lists = events(&samples, k, windows);
        let silent = lists.remove(0);
        let mut m = Merger::new(1_000, u64::MAX, 0);
        let mut out = Vec::new();
        // edge-0 announces itself, then says nothing for longer than the timeout; the others'
        // heartbeats are recent.
        m.watermark("edge-0", 0, 0);
        (1..k).for_each(|i| m.watermark(&name(i), 0, 4_500));
        for e in interleave(lists, seed) {
            feed(&mut m, e, 5_000, &mut out);
        }
        prop_assert_eq!(m.counts().timed_out, 1);
        prop_assert_eq!(m.live_instances(), k - 1, "edge-0 is not waited for");
        let late_before = m.counts().late;
        for e in silent {
            feed(&mut m, e, 5_500, &mut out);
        }
        let last = last_revisions(&out);
        prop_assert_eq!(last.len(), single.len());
        for ((device, end), o) in &last {
            let key = (device.as_bytes()[3] - b'0', end / WINDOW_MS - 1);
            assert_same(&o.aggregate, &single[&key])?;
        }
        let revisions: u64 = last.values().map(|o| u64::from(o.revision)).sum();
        prop_assert_eq!(revisions, m.counts().late - late_before, "one revision per late partial");
        prop_assert_eq!(m.live_instances(), k, "edge-0 is waited for again from its next message");
        // A merger restarted with the merged windows restored takes a late partial as the next
        // revision of what was restored, and a redelivered one as a duplicate.
        let mut restarted = Merger::new(1_000, u64::MAX, 0);
        last.values().for_each(|o| restarted.restore((*o).clone()));
        if let Some(((device, end), o)) = last.iter().next() {
            let again = o.instances[0].clone();
            let (key, w) = (device.as_bytes()[3] - b'0', end / WINDOW_MS - 1);
            let own = aggregates(samples.iter().filter(|s| name(s.3) == again))[&(key, w)];
            let verdict = restarted.partial(Partial { instance: again, aggregate: own }, 7_000);
            prop_assert!(matches!(verdict, Verdict::Duplicate), "{:?}", verdict);
        }
        // A redelivered partial changes nothing.
        for (key, a) in aggregates(samples.iter().filter(|s| s.3 == 0)) {
            let again = Partial { instance: name(0), aggregate: a };
            prop_assert!(matches!(m.partial(again, 7_000), Verdict::Duplicate), "{:?}", key);
        }
    }
}
